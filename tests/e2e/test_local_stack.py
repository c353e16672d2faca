"""The ``local`` stack under the real Pulumi engine, on a real control plane at the stack's own minor.

The tests run in order against one deployed stack: each scenario starts from
the state the previous one left (every one of them leaves the stack deployed
and healthy), and the last destroys it. What the mock engine claims about the
resource graph, the engine and the API server judge here: what ``up``
creates, how an image bump rolls, which changes preview as updates, what a
config error, a removed API, a hand edit and a stalled GPU rollout do.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.automation.errors import CommandError

from modelplane.config import ApiConfig
from modelplane.diff import Side, compare
from modelplane.offline import run_stack
from modelplane.model_api import rollout_timeout

from . import harness
from .harness import Cluster, LiveStack, Step, local_config, object_key, pointed_at, rendered_objects, watching

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

APIS = "modelplane:apis"
STACK = "local"


# --------------------------------------------------------------------------- helpers

def changed(steps: list[Step]) -> dict[tuple[str, str], set[str]]:
    """(type, name) -> the operations the engine planned for it, for every resource that is not ``same``."""
    out: dict[tuple[str, str], set[str]] = {}
    for step in steps:
        if step.op not in ("same", "read", "refresh"):
            out.setdefault((step.type, step.name), set()).add(step.op)
    return out


def deployments(kube: harness.Kube) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in kube.items("deployments")
            if d["metadata"]["namespace"] in local_config()[APIS]}


def available(deployment: dict[str, Any]) -> bool:
    status = deployment.get("status", {})
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    want = deployment["spec"].get("replicas", 1)
    return (conditions.get("Available") == "True" and status.get("updatedReplicas") == want
            and status.get("readyReplicas") == want and status.get("replicas") == want
            and status.get("observedGeneration") == deployment["metadata"]["generation"])


def wait_available(kube: harness.Kube, names: list[str] | None = None, timeout: float = 180) -> None:
    def check() -> bool:
        found = deployments(kube)
        wanted = names or list(local_config()[APIS])
        return all(n in found and available(found[n]) for n in wanted)

    kube.wait_for(f"Deployments {names or 'all'} Available", check, timeout=timeout)


def image_of(kube: harness.Kube, api: str, container: str = "model") -> str:
    deployment = kube.get("deployment", api, api)
    assert deployment is not None
    return next(c["image"] for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == container)


def edited(config: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(config)
    node: Any = config
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[path[-1]] = value
    return config


def state_fingerprint(stack: LiveStack) -> dict[str, str]:
    """URN -> the resource's inputs and outputs in the stack's state (what a failed run must not touch)."""
    return {r["urn"]: json.dumps({"inputs": r.get("inputs"), "outputs": r.get("outputs")}, sort_keys=True)
            for r in stack.resources()}


# --------------------------------------------------------------------------- the deployed stack

@pytest.fixture(scope="module")
def live(cluster: Cluster, crd_schemas: Path, workspace: harness.Workspace) -> Iterator[LiveStack]:
    """The ``local`` stack, pointed at the session's cluster and brought up with the real engine."""
    config = pointed_at(local_config(), cluster.kubeconfig, cluster.context)
    cluster.prepare(config, crd_schemas)
    stack = workspace.stack(STACK, config)
    stack.up()
    yield stack
    if any(r["type"].startswith("kubernetes:") for r in stack.resources()):
        stack.destroy()  # a scenario failed before the destroy test: leave the cluster clean anyway


def test_control_plane_runs_the_stacks_own_minor(cluster: Cluster, live: LiveStack) -> None:
    version = json.loads(cluster.kube.run("get", "--raw", "/version").stdout)
    emulated = f"{version.get('emulationMajor', version['major'])}.{version.get('emulationMinor', version['minor'])}"
    assert emulated == live.config["modelplane:cluster"]["kubernetesVersion"] == cluster.minor


def test_up_creates_every_object_and_every_deployment_becomes_available(cluster: Cluster, live: LiveStack,
                                                                         tmp_path: Path) -> None:
    steps, result = live.ups[0]
    assert result.summary.result == "succeeded"
    assert set(result.summary.resource_changes) == {"create"}, result.summary.resource_changes
    rendered = rendered_objects(live.render(tmp_path / "render"))
    assert len(rendered) >= 3 * 6, "the local stack renders at least six objects per API"
    missing = [object_key(o) for o in rendered
               if cluster.kube.get(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) is None]
    assert missing == []
    wait_available(cluster.kube)
    # The HPA controller (no metrics server here) still lifts a Deployment to minReplicas.
    cluster.kube.wait_for("sentiment at its minReplicas", lambda: deployments(cluster.kube)["sentiment"]["spec"][
        "replicas"] == live.config[APIS]["sentiment"]["autoscaling"]["minReplicas"], timeout=90)
    wait_available(cluster.kube)


def test_gpu_replicas_run_only_on_gpu_nodes_and_every_api_on_its_own_group(cluster: Cluster,
                                                                          live: LiveStack) -> None:
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in cluster.kube.items("nodes")}
    placed: dict[str, set[str]] = {}
    for api, spec in live.config[APIS].items():
        pods = cluster.kube.items("pods", api, f"modelplane.io/api={api}")
        assert pods, f"{api} has no pods"
        for pod in pods:
            node = pod["spec"].get("nodeName")
            assert node, f"{pod['metadata']['name']} is not scheduled"
            placed.setdefault(api, set()).add(nodes[node]["modelplane.io/node-group"])
        gpus = spec.get("compute", {}).get("gpu", 0)
        assert placed[api] == {spec["nodeGroup"]}, f"{api} ({gpus} GPUs) ran on {placed[api]}"
    gpu_apis = [a for a, s in live.config[APIS].items() if s.get("compute", {}).get("gpu")]
    assert gpu_apis and all(placed[a] == {"gpu"} for a in gpu_apis)
    assert "gpu" not in set().union(*(placed[a] for a in live.config[APIS] if a not in gpu_apis))


def test_render_is_what_the_engine_created(cluster: Cluster, live: LiveStack, tmp_path: Path) -> None:
    out = live.render(tmp_path / "render")
    rendered = rendered_objects(out)
    created = {(r["outputs"]["kind"], r["outputs"]["metadata"].get("namespace", ""), r["outputs"]["metadata"]["name"])
               for r in live.resources()
               if r["type"].startswith("kubernetes:") and not r["type"].startswith("pulumi:providers")
               and "kind" in (r.get("outputs") or {})}
    assert {object_key(o) for o in rendered} == created
    # The offline run registers the same resources, under the same URNs, as the engine recorded.
    offline = {r["urn"] for r in json.loads((out / "resources.json").read_text())["resources"]}
    real = {r["urn"] for r in live.resources() if r["type"] != "pulumi:pulumi:Stack"}
    assert offline == real
    # Every rendered field reached the stored object with the rendered value.
    differences = []
    for obj in rendered:
        stored = cluster.kube.get(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        assert stored is not None
        differences += [f"{'/'.join(map(str, object_key(obj)))}: {d}" for d in field_differences(obj, stored, "")]
    assert not differences, "\n".join(differences)


def field_differences(want: Any, have: Any, path: str) -> Iterator[str]:
    if isinstance(want, dict):
        if not isinstance(have, dict):
            yield f"{path}: rendered a mapping, stored {have!r}"
            return
        for key, value in want.items():
            if key not in have:
                yield f"{path}.{key}: rendered {value!r}, missing from the stored object"
            else:
                yield from field_differences(value, have[key], f"{path}.{key}")
    elif isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            yield f"{path}: rendered {want!r}, stored {have!r}"
            return
        for index, (w, h) in enumerate(zip(want, have, strict=True)):
            yield from field_differences(w, h, f"{path}[{index}]")
    elif str(want) != str(have):
        yield f"{path}: rendered {want!r}, stored {have!r}"


def test_image_bump_is_one_deployment_update_and_a_bounded_rolling_update(cluster: Cluster,
                                                                         live: LiveStack) -> None:
    api = "sentiment"
    wait_available(cluster.kube, [api])
    before = deployments(cluster.kube)[api]
    replicas = before["spec"]["replicas"]
    old_hash = before["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    image = "nginxinc/nginx-unprivileged:1.27.5-alpine"
    live.set_config(edited(live.config, (APIS, api, "image"), image))

    assert changed(live.preview()) == {("kubernetes:apps/v1:Deployment", api): {"update"}}
    surge, unavailable = 1, 0  # 25% of 2 replicas: Kubernetes rounds the surge up, unavailability down
    assert replicas == 2
    with watching(cluster.kube, api, f"modelplane.io/api={api}") as watch:
        steps, result = live.up()
    assert changed(steps) == {("kubernetes:apps/v1:Deployment", api): {"update"}}
    assert result.summary.resource_changes.get("update") == 1
    assert watch.samples > 5 and len(watch.hashes) == 2, watch.lines
    assert watch.max_pods <= replicas + surge, watch.lines
    assert watch.min_ready is not None and watch.min_ready >= replicas - unavailable, watch.lines
    assert image_of(cluster.kube, api) == image
    after = deployments(cluster.kube)[api]
    assert after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] != old_hash
    sets = [rs for rs in cluster.kube.items("replicasets", api, f"modelplane.io/api={api}")]
    new_hash = after["spec"]["template"]["metadata"].get("labels", {}).get("pod-template-hash")
    old_sets = [rs for rs in sets if rs["spec"]["template"]["spec"]["containers"][0]["image"] != image]
    assert old_sets and all(rs["spec"]["replicas"] == 0 for rs in old_sets), new_hash


# Every kind of rollout-type change the property tests draw (tests/test_rollout_properties.py), one
# each, on the local stack's APIs: what the engine plans for each, exactly. A content-named ConfigMap
# (model config files, proxy limits) is replaced (created under its new name before the old one goes),
# which is how the new pod template gets it; everything else is an in-place update.
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED = "kubernetes:keda.sh/v1alpha1:ScaledObject"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
REPLACED = {"replace", "create-replacement", "delete-replaced"}
ROLLOUT_CHANGES: list[tuple[str, list[tuple[tuple[str | int, ...], Any]], dict[tuple[str, str], set[str]]]] = [
    ("image tag", [(("sentiment", "image"), "nginxinc/nginx-unprivileged:1.27.3-alpine")],
     {(DEPLOYMENT, "sentiment"): {"update"}}),
    ("image digest", [(("image-embed", "image"), "nginxinc/nginx-unprivileged@sha256:" + "ab" * 32)],
     {(DEPLOYMENT, "image-embed"): {"update"}}),
    ("env", [(("sentiment", "env"), {"MODEL_NAME": "roberta-sst2", "WORKERS": "2"})],
     {(DEPLOYMENT, "sentiment"): {"update"}}),
    ("command and args", [(("image-embed", "command"), ["nginx"]), (("image-embed", "args"), ["-g", "daemon off;"])],
     {(DEPLOYMENT, "image-embed"): {"update"}}),
    ("cpu and memory", [(("sentiment", "compute"), {"cpu": "500m", "mem": "384Mi"})],
     {(DEPLOYMENT, "sentiment"): {"update"}}),
    ("readiness-probe timings", [(("recommender", "readinessProbe"), {"path": "/", "periodSeconds": 7,
                                                                      "failureThreshold": 5})],
     {(DEPLOYMENT, "recommender"): {"update"}}),
    ("sidecar image", [(("recommender", "sidecars", "ranker", "image"), "registry.k8s.io/pause:3.9")],
     {(DEPLOYMENT, "recommender"): {"update"}}),
    ("proxy limits", [(("sentiment", "maxConcurrency"), 8)],
     {(DEPLOYMENT, "sentiment"): {"update"}, (CONFIGMAP, "sentiment-proxy"): REPLACED}),
    ("proxy limits behind an in-flight target", [(("image-embed", "maxQueueLength"), 20)],
     {(DEPLOYMENT, "image-embed"): {"update"}, (CONFIGMAP, "image-embed-proxy"): REPLACED}),
    ("model config files", [(("recommender", "configFiles"), {"arms.yaml": "exploration: 0.1\n"})],
     {(DEPLOYMENT, "recommender"): {"update"}, (CONFIGMAP, "recommender-config"): REPLACED}),
    ("HPA knobs", [(("sentiment", "autoscaling", "maxReplicas"), 3),
                   (("sentiment", "autoscaling", "targetUtilization"), 60),
                   (("sentiment", "autoscaling", "downscaleStabilizationPeriod"), "10m")],
     {(HPA, "sentiment-autoscaling"): {"update"}}),
    ("KEDA knobs", [(("image-embed", "autoscaling", "window"), "120s"),
                    (("image-embed", "autoscaling", "targetInFlight"), 2),
                    (("image-embed", "autoscaling", "maxUpscaleFactor"), 2.0)],
     {(SCALED, "image-embed-autoscaling"): {"update"}}),
]


@pytest.mark.parametrize("what, edits, expected", ROLLOUT_CHANGES, ids=[c[0] for c in ROLLOUT_CHANGES])
def test_every_rollout_change_previews_as_updates_only(live: LiveStack, what: str,
                                                       edits: list[tuple[tuple[str | int, ...], Any]],
                                                       expected: dict[tuple[str, str], set[str]]) -> None:
    baseline = copy.deepcopy(live.config)
    config = baseline
    for path, value in edits:
        config = edited(config, (APIS, *path), value)
    live.set_config(config)
    try:
        plan = changed(live.preview())
    finally:
        live.set_config(baseline)
    # A replacement previews as one "replace" step (and the engine runs it as create-replacement,
    # then delete-replaced after the rollout): allow any of those for a content-named ConfigMap only.
    assert set(plan) == set(expected), f"{what}: {plan}"
    for key, ops in plan.items():
        assert ops <= expected[key], f"{what}: {key} {ops}"
    assert all(ops == {"update"} for (kind, _), ops in plan.items() if kind != CONFIGMAP), plan


ENGINE_OPS = {"rolling update": {"update"}, "scale change": {"update"}, "in-place update": {"update"},
              "node replacement": {"update"},
              "replacement": REPLACED, "create": {"create"}, "delete": {"delete"}}
"""What the engine's preview shows for each verdict of ``modelplane diff``."""

DIFF_CASES = ROLLOUT_CHANGES + [
    ("an API removed", [], {}),
    ("an image bump", [], {}),
]


def offline_side(live: LiveStack, config: dict[str, Any]) -> Side:
    plan = run_stack(STACK, project=live.workspace.project, config_map=config)
    return Side({r.urn: r.as_json() for r in plan.resources}, plan.config)


@pytest.mark.parametrize("what, edits, expected", DIFF_CASES, ids=[c[0] for c in DIFF_CASES])
def test_the_diff_verdicts_are_what_the_engine_previews(live: LiveStack, what: str,
                                                        edits: list[tuple[tuple[str | int, ...], Any]],
                                                        expected: dict[tuple[str, str], set[str]]) -> None:
    baseline = copy.deepcopy(live.config)
    config = copy.deepcopy(baseline)
    for path, value in edits:
        config = edited(config, (APIS, *path), value)
    if what == "an API removed":
        del config[APIS]["recommender"]
    if what == "an image bump":
        # Whatever the earlier scenarios left it at, a different one.
        tags = ["nginxinc/nginx-unprivileged:1.27.4-alpine", "nginxinc/nginx-unprivileged:1.27.3-alpine"]
        config[APIS]["sentiment"]["image"] = next(t for t in tags if t != config[APIS]["sentiment"]["image"])
    ours = compare(STACK, "baseline", offline_side(live, baseline), offline_side(live, config))
    live.set_config(config)
    try:
        steps = live.preview()
    finally:
        live.set_config(baseline)
    engine: dict[str, set[str]] = {}
    for step in steps:
        if step.op not in ("same", "read", "refresh"):
            engine.setdefault(step.urn, set()).add(step.op)
    verdicts = {c.urn: c.verdict for c in ours.changes}
    # modelplane's components and the providers carry no inputs the diff judges; everything else the
    # engine touches has a verdict, and every verdict is what the engine does.
    touched = {u for u in engine if not urn_type(u).startswith(("modelplane:", "pulumi:"))}
    assert verdicts, f"{what}: the diff saw no change"
    assert set(verdicts) == touched, f"{what}: engine {engine}, diff {verdicts}"
    for urn, verdict in verdicts.items():
        assert engine[urn] <= ENGINE_OPS[verdict], f"{what}: {urn}: diff says {verdict}, engine {engine[urn]}"


def urn_type(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>`` -> the resource's own type."""
    return urn.split("::")[2].rsplit("$", 1)[-1]


def test_removing_an_api_previews_deleting_exactly_its_objects(live: LiveStack, tmp_path: Path) -> None:
    baseline = copy.deepcopy(live.config)
    with_it = {r["urn"] for r in json.loads(
        (live.render(tmp_path / "with") / "resources.json").read_text())["resources"]}
    without = copy.deepcopy(baseline)
    del without[APIS]["recommender"]
    live.set_config(without)
    try:
        steps = live.preview()
        without_it = {r["urn"] for r in json.loads(
            (live.render(tmp_path / "without") / "resources.json").read_text())["resources"]}
    finally:
        live.set_config(baseline)
    gone = with_it - without_it
    assert without_it < with_it and len(gone) >= 8, "recommender has its component, policy and objects"
    assert {s.urn for s in steps if s.op == "delete"} == gone
    assert {s.op for s in steps if s.urn not in gone} <= {"same"}


def test_a_config_error_fails_preview_and_up_and_changes_nothing(cluster: Cluster, live: LiveStack) -> None:
    baseline = copy.deepcopy(live.config)
    broken = edited(baseline, (APIS, "sentiment", "autoscaling", "maxReplicas"), 1)
    broken = edited(broken, ("modelplane:cluster", "kubernetesVersoin"), "1.33")
    before_state = state_fingerprint(live)
    before_generation = deployments(cluster.kube)["sentiment"]["metadata"]["generation"]
    live.set_config(broken)
    try:
        for run in (live.preview, live.up):
            with pytest.raises(CommandError) as failure:
                run()
            text = str(failure.value)
            assert "stacks/Pulumi.local.yaml: 2 problem(s) in the estate config" in text
            assert ("modelplane:apis.sentiment.autoscaling.maxReplicas: maxReplicas 1 is less than minReplicas 2"
                    in text)
            assert "modelplane:cluster.kubernetesVersoin: unknown key 'kubernetesVersoin'" in text
            assert "Traceback" not in text
    finally:
        live.set_config(baseline)
    # A kubeconfig file that is not on this machine: a keyed error, not the provider's "unreachable
    # cluster" and a JSON parse error about the path it took for contents.
    missing = edited(baseline, ("modelplane:cluster", "existing", "kubeconfigPath"), "/nonexistent/kubeconfig")
    live.set_config(missing)
    try:
        with pytest.raises(CommandError) as failure:
            live.preview()
        assert ("modelplane:cluster.existing.kubeconfigPath: '/nonexistent/kubeconfig' is not a file on this machine"
                in str(failure.value))
    finally:
        live.set_config(baseline)
    assert state_fingerprint(live) == before_state
    assert deployments(cluster.kube)["sentiment"]["metadata"]["generation"] == before_generation
    assert changed(live.preview()) == {}


# Stack files with keys twice in one mapping, and near-misses that are not duplicates: modelplane must
# refuse exactly the files Pulumi's own reader (Go yaml.v3) refuses, naming the same lines.
DUPLICATE_CASES = {
    "nested key": "config:\n  modelplane:cluster:\n    name: local\n    name: other\n",
    "api defined twice": "config:\n  modelplane:apis:\n    a: {image: x:1}\n    a: {image: y:1}\n",
    "top-level config key": "config:\n  aws:region: us-east-1\n  aws:region: eu-west-1\n",
    "in a list item": "config:\n  modelplane:apis:\n    a:\n      taints:\n        - {key: k, key: j}\n",
    "quoted and plain": "config:\n  a:\n    \"1\": x\n    1: y\n",
    "bool spelled as string": "config:\n  a:\n    true: x\n    \"true\": y\n",
    "two merge keys": "config:\n  a:\n    x: &v {p: 1}\n    y:\n      <<: *v\n      <<: *v\n",
    "config twice": "config:\n  a: 1\nconfig:\n  b: 2\n",
    "not a duplicate: null and ~": "config:\n  a:\n    null: x\n    ~: y\n",
    "not a duplicate: 1 and 01": "config:\n  a:\n    1: x\n    01: y\n",
    "not a duplicate: merge then override": "config:\n  a:\n    x: &v {p: 1}\n    y:\n      <<: *v\n      p: 2\n",
    "not a duplicate: case": "config:\n  a:\n    k: 1\n    K: 2\n",
}


def test_duplicate_keys_are_refused_exactly_where_pulumi_refuses_them(live: LiveStack,
                                                                    workspace: harness.Workspace) -> None:
    probe = "dupes"
    workspace.cli("stack", "init", probe, check=True)
    path = workspace.project / "stacks" / f"Pulumi.{probe}.yaml"
    # Keep the passphrase salt `stack init` wrote; each case is the rest of the file.
    salt = "".join(re.findall(r"^encryptionsalt: .*\n", path.read_text(), re.M)) if path.exists() else ""
    modelplane = [str(Path(sys.executable).parent / "modelplane"), "--project", str(workspace.project)]
    verdicts = {}
    for name, text in DUPLICATE_CASES.items():
        path.write_text(salt + text)
        pulumi = workspace.cli("config", "--json", stack=probe)
        ours = subprocess.run([*modelplane, "validate", "--stack", probe], capture_output=True, text=True)
        pulumi_lines = set(re.findall(r"line (\d+): mapping key \"([^\"]*)\" already defined at line (\d+)",
                                      pulumi.stderr))
        our_lines = set(re.findall(r"line (\d+): mapping key \"([^\"]*)\" already defined at line (\d+)",
                                   ours.stderr))
        verdicts[name] = (pulumi.returncode != 0, bool(our_lines), sorted(pulumi_lines - our_lines))
        assert "Traceback" not in ours.stderr
    # Pulumi refuses exactly the files with a duplicate, and modelplane names every line Pulumi does.
    assert {n: v for n, v in verdicts.items() if v[0] != v[1] or v[2]} == {}
    assert [n for n, v in verdicts.items() if v[0]] == [n for n in DUPLICATE_CASES if not n.startswith("not a")]
    # The real stack's file, with one key twice: preview fails with Pulumi's own reader's message.
    text = live.path.read_text()
    duplicated = re.sub(r"(\n(\s+)targetUtilization: (\d+)\n)", r"\1\2targetUtilization: \3\n", text, count=1)
    assert duplicated != text
    live.write_text(duplicated)
    try:
        with pytest.raises(CommandError) as failure:
            live.preview()
        assert 'mapping key "targetUtilization" already defined at line' in str(failure.value)
    finally:
        live.set_config(live.config)


def test_a_hand_edit_is_shown_by_refresh_and_reverted_by_up(cluster: Cluster, live: LiveStack) -> None:
    api = "sentiment"
    declared = live.config[APIS][api]["image"]
    hand = "nginxinc/nginx-unprivileged:1.27.2-alpine"
    cluster.kube.run("-n", api, "set", "image", f"deployment/{api}", f"model={hand}")
    assert image_of(cluster.kube, api) == hand
    # Pulumi compares the program with its state, not with the cluster: a plain preview sees nothing.
    assert changed(live.preview()) == {}
    # A refresh reads the cluster: the Deployment is the one resource whose state changes.
    steps, result = live.refresh()
    assert result.summary.resource_changes.get("update") == 1, result.summary.resource_changes
    # Now the preview shows the hand edit being reverted, as an update of that Deployment only; forced
    # server-side apply takes the field back from kubectl (no field-manager conflict).
    assert changed(live.preview()) == {(DEPLOYMENT, api): {"update"}}
    steps, _ = live.up()
    assert changed(steps) == {(DEPLOYMENT, api): {"update"}}
    assert image_of(cluster.kube, api) == declared
    managers = {m["manager"] for m in cluster.kube.json("get", "deployment", api, "-n", api,
                                                        "--show-managed-fields")["metadata"]["managedFields"]}
    assert "kubectl-set" not in managers
    wait_available(cluster.kube, [api])
    # `pulumi up --refresh` does both in one run.
    cluster.kube.run("-n", api, "set", "image", f"deployment/{api}", f"model={hand}")
    live.up(refresh=True)
    assert image_of(cluster.kube, api) == declared
    wait_available(cluster.kube, [api])


def test_a_gpu_rollout_with_no_room_fails_up_in_bounded_time_and_the_old_replica_keeps_serving(
        cluster: Cluster, live: LiveStack) -> None:
    api = "image-embed"
    wait_available(cluster.kube, [api])
    baseline = copy.deepcopy(live.config)
    [pod] = cluster.kube.items("pods", api, f"modelplane.io/api={api}")
    free = [n["metadata"]["name"] for n in cluster.kube.items("nodes", selector="modelplane.io/node-group=gpu")
            if n["metadata"]["name"] != pod["spec"]["nodeName"]]
    assert free, "the GPU group has a spare node to take away"
    stalled = edited(baseline, (APIS, api, "updateStrategy"), {"progressDeadlineSeconds": 30})
    stalled = edited(stalled, (APIS, api, "image"), "nginxinc/nginx-unprivileged:1.27.5-alpine")
    timeout = int(rollout_timeout(ApiConfig.model_validate(stalled[APIS][api])).rstrip("s"))
    assert timeout == 30 + 60
    for node in free:
        cluster.kube.run("cordon", node)
    try:
        live.set_config(stalled)
        started = time.time()
        with watching(cluster.kube, api, f"modelplane.io/api={api}") as watch:
            with pytest.raises(CommandError) as failure:
                live.up()
        took = time.time() - started
        text = str(failure.value)
        assert took < timeout + 90, f"pulumi up took {took:.0f}s"
        assert f'"{api}/{api}"' in text or f"'{api}'" in text, text[-2000:]
        assert "ProgressDeadlineExceeded" in text or "timed out" in text, text[-2000:]
        assert watch.min_ready is not None and watch.min_ready >= 1, watch.lines
        pending = [p for p in cluster.kube.items("pods", api, f"modelplane.io/api={api}")
                   if not p["spec"].get("nodeName")]
        assert pending, "the surge replica waits unscheduled"
        assert any("Insufficient nvidia.com/gpu" in c.get("message", "") or "unschedulable" in c.get("message", "")
                   for p in pending for c in p["status"].get("conditions", [])), pending
    finally:
        for node in free:
            cluster.kube.run("uncordon", node)
    # With room again, the same stack finishes the rollout.
    live.set_config(edited(stalled, (APIS, api, "updateStrategy"), {"progressDeadlineSeconds": 600}))
    live.up()
    wait_available(cluster.kube, [api])
    assert image_of(cluster.kube, api) == "nginxinc/nginx-unprivileged:1.27.5-alpine"


def test_destroy_leaves_nothing_of_the_stack_in_the_cluster(cluster: Cluster, live: LiveStack,
                                                           tmp_path: Path) -> None:
    rendered = rendered_objects(live.render(tmp_path / "render"))
    live.destroy()
    assert [r for r in live.resources() if r["type"] != "pulumi:pulumi:Stack"] == []

    def gone() -> bool:
        return all(cluster.kube.get(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) is None
                   for o in rendered)

    cluster.kube.wait_for("every object of the stack to be gone", gone, timeout=120)
    leftover = [p["metadata"]["name"] for api in live.config[APIS] for p in cluster.kube.items("pods", api)]
    assert leftover == []


def test_a_kubeconfig_stored_as_a_secret_reaches_the_cluster(cluster: Cluster, live: LiveStack,
                                                            workspace: harness.Workspace) -> None:
    """The README's `pulumi config set --secret --path ... < kubeconfig` path, as a user runs it."""
    name = "secretive"
    workspace.cli("stack", "init", name, check=True)
    path = workspace.project / "stacks" / f"Pulumi.{name}.yaml"
    config = pointed_at(local_config(), cluster.kubeconfig, cluster.context)
    del config["modelplane:cluster"]["existing"]["kubeconfigPath"]
    document = yaml.safe_load(path.read_text()) or {}
    path.write_text(yaml.safe_dump({**document, "config": config}, sort_keys=False))
    kubeconfig = cluster.kubeconfig.read_text()
    result = subprocess.run([str(workspace.pulumi_root / "bin" / "pulumi"), "config", "set", "--secret", "--path",
                             "modelplane:cluster.existing.kubeconfig", "--stack", name, "--non-interactive"],
                            input=kubeconfig, cwd=workspace.project, env={**os.environ, **workspace.env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    stored = path.read_text()
    assert "secure: v1:" in stored and "client-certificate" not in stored
    # Offline, the ciphertext is all there is: validate and plan accept it without decrypting.
    validate = subprocess.run([str(Path(sys.executable).parent / "modelplane"), "--project", str(workspace.project),
                               "validate", "--stack", name], capture_output=True, text=True)
    assert validate.returncode == 0, validate.stderr
    # Under the engine the program gets the decrypted kubeconfig, marked secret, and reaches the cluster:
    # the preview plans every object of the (destroyed) local stack afresh.
    stack = LiveStack(workspace, name)
    plan = changed(stack.preview())
    assert (DEPLOYMENT, "sentiment") in plan and plan[(DEPLOYMENT, "sentiment")] == {"create"}
    assert {ops.pop() for ops in plan.values()} == {"create"}


def test_the_plans_warnings_show_in_pulumi_preview(live: LiveStack) -> None:
    # image-embed at 2 replicas plus a rollout's surge needs 3 GPUs; the pool has 2: modelplane plan warns,
    # and so must the preview, through the engine's log.
    baseline = copy.deepcopy(live.config)
    live.set_config(edited(baseline, (APIS, "image-embed", "autoscaling", "maxReplicas"), 2))
    try:
        live.preview()
    finally:
        live.set_config(baseline)
    warnings = [line for line in live.output if "node group 'gpu': its APIs at maxReplicas run 2 pods with 2 GPU(s)"
                in line and "they need 3 nodes, but maxSize is 2" in line]
    assert warnings, "".join(live.output)[-3000:]


def test_a_pod_bigger_than_its_nodes_fails_the_preview_naming_the_api_the_group_and_the_numbers(
        live: LiveStack) -> None:
    # 4 CPU + the proxy's 0.1 on a g5.xlarge, which has 3.77 for API pods: the plan's fit error, in the preview.
    baseline = copy.deepcopy(live.config)
    live.set_config(edited(baseline, (APIS, "image-embed", "compute", "cpu"), "4"))
    try:
        with pytest.raises(CommandError) as failure:
            live.preview()
    finally:
        live.set_config(baseline)
    text = str(failure.value)
    assert ("modelplane:apis.image-embed.compute.cpu: API 'image-embed' needs 4.1 CPU, 2.125Gi memory, 1 GPU per "
            "pod" in text), text[-3000:]
    assert "one node of group 'gpu' (g5.xlarge) has 3.92 CPU" in text and "not enough CPU" in text
    assert "Traceback" not in text
