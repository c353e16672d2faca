"""The README's Python example runs as written (under the mock engine)."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from modelplane.offline import start_mock_engine

ROOT = Path(__file__).resolve().parents[1]


def test_component_example_registers_a_model_api() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    example = next(b for b in blocks if "ModelApi(" in b)
    monitor = start_mock_engine("readme", "us-east-1")

    def program() -> None:
        namespace = {"my_k8s_provider": k8s.Provider("my-k8s", kubeconfig="{}")}
        exec(compile(example, "README.md", "exec"), namespace)

    try:
        _sync_await(run_pulumi_func(program))
    finally:
        gc.enable()  # start_mock_engine pauses the collector for the run

    registered = {(r.type, r.name) for r in monitor.recorded}
    assert ("modelplane:index:ModelApi", "reranker") in registered
    assert ("kubernetes:apps/v1:Deployment", "reranker") in registered
    deployment = next(r for r in monitor.recorded if r.type == "kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "gpu-a10g"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod["tolerations"]
    # The context's provider is the one every object goes through.
    provider = next(r.urn for r in monitor.recorded if r.name == "my-k8s")
    assert {r.provider_urn for r in monitor.recorded if r.type.startswith("kubernetes:")} == {provider}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pulumi.runtime.settings.get_root_resource().outputs["rerankerUrl"] is not None
