"""The README's Python example runs as written (under the mock engine)."""

from __future__ import annotations

import re
from pathlib import Path

import pulumi_kubernetes as k8s

from modelplane import run_program

ROOT = Path(__file__).resolve().parents[1]


def test_component_example_registers_a_model_api() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    example = next(b for b in blocks if "ModelApi(" in b)

    def program() -> None:
        namespace = {"my_k8s_provider": k8s.Provider("my-k8s", kubeconfig="{}")}
        exec(compile(example, "README.md", "exec"), namespace)

    run = run_program(program, stack="readme")
    recorded = run.resources
    registered = {(r.type, r.name) for r in recorded}
    assert ("modelplane:index:ModelApi", "reranker") in registered
    assert ("kubernetes:apps/v1:Deployment", "reranker") in registered
    deployment = next(r for r in recorded if r.type == "kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "gpu-a10g"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod["tolerations"]
    # The context's provider is the one every object goes through.
    provider = next(r.urn for r in recorded if r.name == "my-k8s")
    assert {r.provider_urn for r in recorded if r.type.startswith("kubernetes:")} == {provider}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert run.outputs["rerankerUrl"] == "http://reranker.reranker.svc.cluster.local"


def test_run_program_passes_config_as_pulumi_does() -> None:
    import pulumi

    def program() -> None:
        config = pulumi.Config("team")
        pulumi.export("replicas", config.require_int("replicas"))
        pulumi.export("apis", config.require_object("apis"))

    run = run_program(program, stack="t", config={"team:replicas": 3, "team:apis": {"a": {"x": 1}}})
    assert run.outputs == {"replicas": 3, "apis": {"a": {"x": 1}}}
