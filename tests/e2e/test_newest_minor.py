"""The ``local`` stack on the newest Kubernetes minor modelplane supports, with the binaries' own version.

``test_local_stack`` runs every scenario at the stack's own minor (the 1.35
binaries with ``--emulated-version``); this brings the same stack, moved to
the newest minor, up on a second control plane that emulates nothing. On 1.35
an HPA may carry per-direction tolerances (beta there), so the CPU API sets
one and the stored HPA must keep it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import harness
from .harness import NEWEST_MINOR, Cluster, LiveStack, local_config, object_key, pointed_at, rendered_objects
from .test_local_stack import APIS, available, deployments

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def newest(engine: Path, crd_schemas: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Cluster, LiveStack]]:
    if harness.USER_CLUSTER:
        pytest.skip("runs on a control plane of its own (MODELPLANE_E2E_KUBECONFIG names one cluster)")
    cluster_gen = harness.start_cluster(harness.instance_dir(NEWEST_MINOR), NEWEST_MINOR)
    cluster = next(cluster_gen)
    try:
        workspace = harness.Workspace(tmp_path_factory.mktemp("e2e-newest"), engine)
        config = pointed_at(local_config(), cluster.kubeconfig, cluster.context)
        config["modelplane:cluster"]["kubernetesVersion"] = NEWEST_MINOR
        config[APIS]["sentiment"]["autoscaling"]["upscaleTolerance"] = 0.05
        cluster.prepare(config, crd_schemas)
        stack = workspace.stack("newest", config)
        yield cluster, stack
        if any(r["type"].startswith("kubernetes:") for r in stack.resources()):
            stack.destroy()
    finally:
        next(cluster_gen, None)


def test_the_local_stack_runs_on_the_newest_minor(newest: tuple[Cluster, LiveStack], tmp_path: Path) -> None:
    cluster, stack = newest
    version = json.loads(cluster.kube.run("get", "--raw", "/version").stdout)
    assert f"{version.get('emulationMajor', version['major'])}.{version.get('emulationMinor', version['minor'])}" \
        == f"{version['major']}.{version['minor']}" == NEWEST_MINOR

    _, result = stack.up()
    assert result.summary.result == "succeeded"
    rendered = rendered_objects(stack.render(tmp_path / "render"))
    created = {(r["outputs"]["kind"], r["outputs"]["metadata"].get("namespace", ""), r["outputs"]["metadata"]["name"])
               for r in stack.resources() if r["type"].startswith("kubernetes:") and "kind" in (r.get("outputs") or {})}
    assert {object_key(o) for o in rendered} == created
    cluster.kube.wait_for("every Deployment Available", lambda: all(
        available(d) for d in deployments(cluster.kube).values()) and len(deployments(cluster.kube)) == 3, 180)
    hpa = cluster.kube.get("hpa", "sentiment", "sentiment")
    assert hpa is not None
    assert hpa["spec"]["behavior"]["scaleUp"]["tolerance"] in ("50m", "0.05", 0.05), hpa["spec"]["behavior"]

    stack.destroy()
    cluster.kube.wait_for("the stack's objects gone", lambda: all(
        cluster.kube.get(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) is None
        for o in rendered), 120)
