"""Every model API pod passes Pod Security Standards "restricted", judged by the
Kubernetes Pod Security Admission library itself (tests/pod_security, Go)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelplane.offline import kubernetes_objects

CHECKER = Path(__file__).resolve().parent / "pod_security"


@pytest.fixture(scope="session")
def pod_security(tmp_path_factory: pytest.TempPathFactory):
    """Runs the checker on pods; returns (exit code, output)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed; tests/pod_security needs it to build the "
                    "Pod Security Admission checker")
    binary = tmp_path_factory.mktemp("pod-security") / "pod_security"
    build = subprocess.run([go, "build", "-o", str(binary), "."], cwd=CHECKER, capture_output=True, text=True,
                           timeout=900)
    assert build.returncode == 0, build.stderr

    def check(pods: list[dict[str, Any]]) -> tuple[int, str]:
        result = subprocess.run([str(binary)], input=json.dumps(pods), capture_output=True, text=True, timeout=60)
        return result.returncode, result.stdout + result.stderr

    return check


def pod_templates(plan) -> list[dict[str, Any]]:
    return [{"name": f"{plan.stack}/{o['metadata']['name']}", "metadata": o["spec"]["template"]["metadata"],
             "spec": o["spec"]["template"]["spec"]}
            for o in kubernetes_objects(plan) if o["kind"] == "Deployment"]


def test_every_model_api_pod_is_restricted(pod_security, dev_plan, prod_plan) -> None:
    pods = pod_templates(dev_plan) + pod_templates(prod_plan)
    assert len(pods) == len(dev_plan.config.apis) + len(prod_plan.config.apis)

    code, output = pod_security(pods)

    assert code == 0, output
    assert f"{len(pods)} pod(s) pass" in output


@pytest.mark.parametrize("break_it, reason", [
    (lambda pod: pod["spec"]["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
     "allowPrivilegeEscalation != false"),
    (lambda pod: pod["spec"]["securityContext"].pop("runAsNonRoot"), "runAsNonRoot != true"),
    (lambda pod: pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/var"}}), "hostPath"),
    # The proxy is an init container (a native sidecar): the checker must look at it too.
    (lambda pod: pod["spec"]["initContainers"][0]["securityContext"].pop("capabilities"),
     "unrestricted capabilities"),
])
def test_the_checker_rejects_a_weakened_pod(pod_security, dev_plan, break_it, reason: str) -> None:
    # Guards the guard: the same checker must fail a pod that drops one protection.
    [pod] = [copy.deepcopy(p) for p in pod_templates(dev_plan) if p["name"] == "dev/image-embed"]
    break_it(pod)

    code, output = pod_security([pod])

    assert code == 1
    assert reason in output
