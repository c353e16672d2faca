"""modelplane's component package from another Pulumi language: a YAML program adds a ModelApi.

The program (``runtime: yaml``, run by ``pulumi-language-yaml``, which the toolchain builds) names
``components/`` in its ``packages:``. The engine loads that directory as a plugin through the
``python`` language host (the toolchain's own, ``toolchain/langhost``), which starts
``components/__main__.py``: the Python SDK's component provider host serving
``modelplane.package``. ``pulumi up`` then constructs the package's ModelApi, which builds the
Python ModelApi, on the session's control plane with kwok nodes; the objects are checked on the
API server, and ``pulumi destroy`` removes them.

``pulumi package get-schema components`` gets the schema the same way; the CLI then binds it,
which resolves the ``eks`` and ``aws`` resource types that ServingCluster and GpuNodeGroup
reference (their schemas come from their provider plugins, which cannot be had here), so that
command, and ``pulumi package add``, end with an error after printing the schema. A YAML program
binds only the resources it uses, and the ModelApi references neither.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import harness
from .harness import Cluster, local_config, pointed_at

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

COMPONENTS = harness.PROJECT / "components"
API = "ranker"


def _plugin_python() -> Path:
    """The interpreter PulumiPlugin.yaml's ``runtime.options.virtualenv`` names."""
    options = yaml.safe_load((COMPONENTS / "PulumiPlugin.yaml").read_text())["runtime"]["options"]
    return (COMPONENTS / options["virtualenv"] / "bin" / "python").resolve()


@pytest.fixture(scope="module")
def yaml_host(engine: Path) -> Path:
    host = engine / "bin" / "pulumi-language-yaml"
    if not host.is_file():
        pytest.skip("no pulumi-language-yaml in the toolchain: run tests/e2e/toolchain/build.sh (warm: seconds; "
                    "cold: about 150 s more)")
    python = _plugin_python()
    if not python.is_file():
        pytest.skip(f"components/PulumiPlugin.yaml runs the package in {python.parent.parent}, which does not "
                    "exist: python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]'")
    return host


class YamlProject:
    """A YAML project in a scratch directory, on the tier's file backend and toolchain."""

    def __init__(self, root: Path, workspace: harness.Workspace, program: dict[str, Any]) -> None:
        self.dir = root
        self.env = {**os.environ, **workspace.env}
        assert workspace.pulumi_root is not None
        self.pulumi = str(workspace.pulumi_root / "bin" / "pulumi")
        root.mkdir(parents=True, exist_ok=True)
        (root / "Pulumi.yaml").write_text(yaml.safe_dump(program, sort_keys=False))

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.pulumi, *args, "--non-interactive"], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done


def program() -> dict[str, Any]:
    """The YAML program: one ModelApi on the local stack's cpu pool, through the kubeconfig in config."""
    return {
        "name": "team-yaml",
        "runtime": "yaml",
        # What `pulumi package add <path>` records for a YAML project: the package's directory.
        "packages": {"modelplane": str(COMPONENTS)},
        "config": {"kubeconfig": {"type": "string", "secret": True}},
        "resources": {API: {
            "type": "modelplane:index:ModelApi",
            "properties": {
                "clusterName": "local",
                "kubernetesVersion": "${kubernetesVersion}",
                "kubeconfig": "${kubeconfig}",
                # The local stack's cpu pool, with its instance type: the replicas are checked to fit it.
                "placement": {"group": "cpu", "instanceTypes": ["m6i.xlarge"]},
                "spec": {
                    "image": "nginxinc/nginx-unprivileged:1.27.4-alpine",
                    "readinessProbe": {"path": "/"},
                    "compute": {"cpu": "250m", "mem": "256Mi"},
                    "maxConcurrency": 2,
                    "env": {"MODEL_NAME": "ranker-small"},
                    "autoscaling": {"metric": "cpu", "minReplicas": 2, "maxReplicas": 3},
                    # A percent and a count through the schema's Any, and a list of nested specs.
                    "updateStrategy": {"maxSurge": "50%", "maxUnavailable": 0},
                    "network": {"allowFrom": [{"namespace": "web", "podLabels": {"app": "cart"}}]},
                },
            },
        }},
        "outputs": {"url": f"${{{API}.url}}", "namespace": f"${{{API}.namespace}}"},
    }


@pytest.fixture(scope="module")
def yaml_project(yaml_host: Path, cluster: Cluster, crd_schemas: Path, workspace: harness.Workspace,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[YamlProject]:
    config = pointed_at(local_config(), cluster.kubeconfig, cluster.context)
    cluster.prepare(config, crd_schemas)  # kwok nodes of the local stack's pools
    spec = program()
    spec["config"]["kubernetesVersion"] = {"type": "string", "default": cluster.minor}
    project = YamlProject(tmp_path_factory.mktemp("yaml-program"), workspace, spec)
    project.run("stack", "init", "dev")
    # The secret goes in on stdin: a kubeconfig is no command-line argument.
    done = subprocess.run([project.pulumi, "config", "set", "--secret", "kubeconfig", "--non-interactive"],
                          cwd=project.dir, env=project.env, input=cluster.kubeconfig.read_text(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    yield project
    project.run("destroy", "--yes", "--skip-preview", check=False)
    project.run("stack", "rm", "dev", "--yes", "--force", check=False)


def test_the_cli_gets_the_packages_schema_through_the_language_host(yaml_host: Path,
                                                                     workspace: harness.Workspace,
                                                                     tmp_path: Path) -> None:
    from pulumi.provider.experimental.component import ComponentProvider

    from modelplane import package

    scratch = YamlProject(tmp_path / "schema", workspace, {"name": "schema", "runtime": "yaml"})
    done = scratch.run("package", "get-schema", str(COMPONENTS), check=False, timeout=300)
    served = json.loads(done.stdout)
    expected = json.loads(ComponentProvider(package.COMPONENTS, package.PACKAGE, None, "0").schema)
    assert set(served["resources"]) == set(expected["resources"])
    for token, resource in expected["resources"].items():
        got = served["resources"][token]
        assert {k: v.get("type") or v.get("$ref") for k, v in got["inputProperties"].items()} == \
            {k: v.get("type") or v.get("$ref") for k, v in resource["inputProperties"].items()}, token
        assert got["requiredInputs"] == resource["requiredInputs"], token
        assert got["description"] == resource["description"], token
    # The one failure: binding the eks and aws resource references, whose schemas need those plugins
    # (the CLI binds them in no fixed order, so either is named first).
    assert done.returncode == 1
    assert re.search(r"no resource plugin 'pulumi-resource-(eks|aws)' found", done.stderr), done.stderr


def test_a_yaml_program_adds_a_model_api_through_the_package(yaml_project: YamlProject, cluster: Cluster) -> None:
    preview = yaml_project.run("preview", "--json")
    steps = json.loads(preview.stdout)["steps"]
    created = {(s["newState"]["type"], s["urn"].rsplit("::", 1)[1]) for s in steps if s["op"] == "create"}
    # The package's ModelApi holds the Python ModelApi, whose children are the stack file path's.
    assert {("modelplane:index:ModelApi", API), ("kubernetes:apps/v1:Deployment", API),
            ("kubernetes:core/v1:Service", f"{API}-svc"), ("kubernetes:policy/v1:PodDisruptionBudget", f"{API}-pdb"),
            ("kubernetes:networking.k8s.io/v1:NetworkPolicy", f"{API}-netpol"),
            ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", f"{API}-autoscaling"),
            ("pulumi:providers:kubernetes", f"{API}-k8s")} <= created

    yaml_project.run("up", "--yes", "--skip-preview")
    outputs = json.loads(yaml_project.run("stack", "output", "--json").stdout)
    assert outputs == {"url": f"http://{API}.{API}.svc.cluster.local", "namespace": API}

    kube = cluster.kube
    deployment = kube.get("deployment", API, API)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"modelplane.io/node-group": "cpu"}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MODEL_NAME"] == "ranker-small" and env["MODELPLANE_MAX_CONCURRENCY"] == "2"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "50%", "maxUnavailable": 0}
    policy = kube.get("networkpolicy", f"{API}-netpol", API) or kube.get("networkpolicy", API, API)
    assert policy is not None
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}},
            "podSelector": {"matchLabels": {"app": "cart"}}} in [
        peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])], policy["spec"]["ingress"]
    hpa = kube.get("hpa", f"{API}-autoscaling", API) or kube.get("hpa", API, API)
    assert hpa is not None and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 3)
    namespace = kube.get("namespace", API)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Replicas schedule on the cpu pool's kwok nodes and become available, as the stack file's APIs do.
    kube.wait_for(f"{API} Available", lambda: any(
        c["type"] == "Available" and c["status"] == "True"
        for c in (kube.get("deployment", API, API) or {}).get("status", {}).get("conditions", [])), timeout=180)
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in kube.items("nodes")}
    pods = kube.items("pods", API, f"modelplane.io/api={API}")
    assert pods and {nodes[p["spec"]["nodeName"]].get("modelplane.io/node-group") for p in pods} == {"cpu"}

    yaml_project.run("destroy", "--yes", "--skip-preview")
    kube.wait_for(f"namespace {API} gone", lambda: kube.get("namespace", API) is None, timeout=180)


def test_a_bad_spec_fails_the_preview_with_the_stack_files_message(yaml_project: YamlProject) -> None:
    """A value the schema's types allow but the config model refuses: the same sentence as for a stack file."""
    document = yaml.safe_load((yaml_project.dir / "Pulumi.yaml").read_text())
    spec = document["resources"][API]["properties"]["spec"]
    good = yaml.safe_dump(document, sort_keys=False)
    spec["port"] = 80
    (yaml_project.dir / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        done = yaml_project.run("preview", check=False)
        # Valid alone, refused together (a stack file's cross-key rule), and a pod too big for the pool.
        del spec["port"]
        spec["canary"] = {"image": "nginxinc/nginx-unprivileged:1.27.5-alpine", "weight": 10}
        spec["compute"] = {"cpu": "8", "mem": "256Mi"}
        (yaml_project.dir / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        related = yaml_project.run("preview", check=False)
    finally:
        (yaml_project.dir / "Pulumi.yaml").write_text(good)
    assert done.returncode != 0
    assert (f"modelplane:index:ModelApi '{API}': spec.port: Input should be greater than or equal to 1024; got 80"
            in done.stdout + done.stderr), done.stdout + done.stderr
    assert related.returncode != 0
    said = related.stdout + related.stderr
    assert f"modelplane:index:ModelApi '{API}': 2 problem(s)" in said, said
    assert f"modelplane:index:ModelApi '{API}': spec.canary: splits the load balancer's traffic by weight" in said
    assert f"modelplane:index:ModelApi '{API}': spec.compute.cpu: API '{API}' needs 8.1 CPU" in said
