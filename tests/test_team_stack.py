"""examples/team-stack: a separate project adds a ModelApi to the platform's cluster through a StackReference."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import yaml

from modelplane import PlatformReference, run_program

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "team-stack"
PLATFORM = "acme/modelplane/dev"


def team_config() -> dict:
    return yaml.safe_load((EXAMPLE / "Pulumi.dev.yaml").read_text())["config"]


def run_team_stack(outputs: dict, config: dict | None = None):
    return run_program(lambda: runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__"),
                       stack="dev", project="team-stack", config=config or team_config(),
                       stack_outputs={PLATFORM: outputs})


@pytest.fixture(scope="module")
def platform_outputs(dev_plan) -> dict:
    """What the repository's dev stack exports, as the team's StackReference reads it."""
    return {"platform": dev_plan.outputs["platform"], "kubeconfig": dev_plan.outputs["kubeconfig"]}


def test_the_api_lands_on_the_platforms_node_group_through_its_kubeconfig(platform_outputs, dev_plan, find) -> None:
    run = run_team_stack(platform_outputs)
    [deployment] = run.by_type("kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    platform_pod = find.object(dev_plan, "Deployment", "sentiment")["spec"]["template"]["spec"]

    assert deployment.name == "ranker"
    # The same node selector and tolerations as the platform's own API on the cpu group.
    assert pod["nodeSelector"] == platform_pod["nodeSelector"] == {"modelplane.io/node-group": "cpu"}
    assert pod.get("tolerations") == platform_pod.get("tolerations")
    # Through a provider made from the platform's kubeconfig; the StackReference is what it read.
    [provider] = run.by_type("pulumi:providers:kubernetes")
    assert provider.name == "platform-k8s"
    assert {r.provider_urn for r in run.resources if r.type.startswith("kubernetes:")} == {provider.urn}
    assert run.outputs["url"] == "http://ranker.ranker.svc.cluster.local"
    # The platform's metrics scrapers are admitted by the API's NetworkPolicy, as for the platform's APIs.
    [policy] = run.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    platform_policy = find.object(dev_plan, "NetworkPolicy", "sentiment")["spec"]
    scrapers = [rule["from"] for rule in platform_policy["ingress"] if rule["ports"][0]["port"] == "metrics"]
    assert scrapers == [[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]]
    assert [rule["from"] for rule in policy.inputs["spec"]["ingress"]
            if rule["ports"][0]["port"] == "metrics"] == scrapers


def test_a_gpu_group_gets_its_taint_toleration(platform_outputs) -> None:
    config = team_config()
    config["team-stack:nodeGroup"] = "gpu-spot"
    config["team-stack:api"] = {**config["team-stack:api"], "compute": {"cpu": "2", "mem": "8Gi", "gpu": 1}}
    [deployment] = run_team_stack(platform_outputs, config).by_type("kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_an_unknown_node_group_names_the_platforms_groups(platform_outputs) -> None:
    config = {**team_config(), "team-stack:nodeGroup": "gpu-xl"}
    with pytest.raises(Exception, match=r"node group 'gpu-xl' is not one of stack 'acme/modelplane/dev''s: cpu, "
                                        r"gpu-spot"):
        run_team_stack(platform_outputs, config)


def test_a_stack_without_the_platform_output_is_refused() -> None:
    def program() -> None:
        PlatformReference("platform", "acme/other/dev")

    with pytest.raises(Exception, match="has no modelplane 'platform' output"):
        run_program(program, stack_outputs={"acme/other/dev": {"url": "x"}})
