"""policies/modelplane_policies/pack.py and the pack's files: its rules, and how the engine talks to it.

The protocol tests drive pulumi_policy's own analyzer servicer with the
engine's protobuf messages, in the order Pulumi 3.274 sends them:
ConfigureStack, GetAnalyzerInfo, Configure (the pack's levels with
``--policy-pack-config`` merged over them), then Analyze / AnalyzeStack. The
process tests start ``policies/`` as the Python language host would and talk
to it over gRPC.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel

from modelplane_policies import PACK_NAME, RULES, Pack, servicer_class, stack_from_environment
from policy_support import deployment_object, edited, hpa_object, network_policy_object, pdb_object, urn

POLICIES = Path(__file__).resolve().parent.parent / "policies"
LEVELS = {analyzer_pb2.MANDATORY: "mandatory", analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.DISABLED: "disabled"}
TEST_FILES = sorted(Path(__file__).parent.glob("test_policies_*.py"))


# ----------------------------------------------------------------------------- the rules

def test_the_pack_has_at_least_twenty_rules_each_with_a_description_a_level_and_a_source() -> None:
    pack = Pack()
    names = [policy.name for policy in pack.policies]
    assert len(names) >= 20
    assert len(set(names)) == len(names)
    for rule, policy in zip(pack.rules, pack.policies, strict=True):
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name), rule.name
        assert policy.description.endswith(".") and len(policy.description) > 20, rule.name
        assert isinstance(policy.enforcement_level, EnforcementLevel), rule.name
        assert rule.why and policy.url and policy.url.startswith("https://"), rule.name


def test_every_rule_is_exercised_by_the_rule_tests() -> None:
    calls = re.compile(r"""(?:violations|stack_violations|deployment_violations)\(\s*"([a-z0-9-]+)\"""")
    exercised = {name for path in TEST_FILES for name in calls.findall(path.read_text(encoding="utf-8"))}
    assert {rule.name for rule in RULES} <= exercised


def test_the_pack_names_modelplane_objects_as_modelplane_does(prod_plan: Any, find: Any) -> None:
    # The pack stands alone (no modelplane import), so its copies of modelplane's names are checked here.
    from modelplane.config import MAIN_CONTAINER, PROXY_CONTAINER
    from modelplane.model_api import API_LABEL
    from modelplane.placement import GPU_RESOURCE, NODE_GROUP_LABEL
    from modelplane_policies import _kube, cluster, gpu

    assert (_kube.MAIN_CONTAINER, _kube.PROXY_CONTAINER, _kube.API_LABEL, _kube.GPU_RESOURCE, gpu.NODE_GROUP_TAG) == (
        MAIN_CONTAINER, PROXY_CONTAINER, API_LABEL, GPU_RESOURCE, NODE_GROUP_LABEL)
    labels = find.object(prod_plan, "Deployment", "sentiment")["metadata"]["labels"]
    assert labels[_kube.MANAGED_BY] == _kube.MODELPLANE
    assert cluster.CLUSTER_TAG in find.one(prod_plan, "eks:index:Cluster", "ml-prod").inputs["tags"]


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ValueError, match="rule names must be unique: zone-spread"):
        Pack([*RULES, next(r for r in RULES if r.name == "zone-spread")])


# ----------------------------------------------------------------------------- the pack's files

def test_pulumi_policy_yaml_runs_the_pack_with_python_from_its_own_virtualenv() -> None:
    project = yaml.safe_load((POLICIES / "PulumiPolicy.yaml").read_text(encoding="utf-8"))
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert (POLICIES / "__main__.py").is_file()


def test_requirements_pin_the_policy_sdk_the_tests_use() -> None:
    from importlib.metadata import version

    pins = (POLICIES / "requirements.txt").read_text(encoding="utf-8").split()
    assert f"pulumi-policy=={version('pulumi-policy')}" in pins


def test_the_readme_table_is_the_rules_as_the_pack_describes_them() -> None:
    readme = (POLICIES / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `[a-z0-9-]+` \|.*\|$", readme, flags=re.MULTILINE)
    assert rows == [f"| `{rule.name}` | {rule.description} | {rule.why} | <{rule.source}> |" for rule in RULES]


# ----------------------------------------------------------------------------- the engine protocol

def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def engine_policy_config(info: Any, overrides: dict[str, str]) -> analyzer_pb2.ConfigureAnalyzerRequest:
    """What the engine sends to Configure: each policy's reported level and initial config, overrides on top."""
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for policy in info.policies:
        config = request.policyConfig[policy.name]
        level = overrides.get(policy.name)
        config.enforcementLevel = policy.enforcementLevel if level is None else getattr(analyzer_pb2, level.upper())
        if policy.name in info.initialConfig:
            config.properties.CopyFrom(info.initialConfig[policy.name].properties)
    return request


@pytest.fixture
def servicer() -> Any:
    pack = Pack()
    return servicer_class(pack)(PACK_NAME, "0.1.0", pack.policies, EnforcementLevel.ADVISORY, pack.initial_config)


def configure_stack(servicer: Any, stack: str, guardrails: dict[str, Any] | None = None) -> dict[str, str]:
    """ConfigureStack as the engine sends it, then each policy's level from GetAnalyzerInfo."""
    config = {"aws:region": "eu-west-1"}
    if guardrails is not None:
        config["modelplane:guardrails"] = json.dumps(guardrails)
    servicer.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(stack=stack, project="modelplane",
                                                                       config=config), None)
    info = servicer.GetAnalyzerInfo(empty_pb2.Empty(), None)
    return {policy.name: LEVELS[policy.enforcementLevel] for policy in info.policies}


def test_configure_stack_sets_the_levels_the_engine_then_reads(servicer: Any) -> None:
    assert set(configure_stack(servicer, "prod").values()) == {"mandatory"}
    dev = configure_stack(servicer, "dev", {"rules": {"zone-spread": "mandatory"}})
    assert dev["zone-spread"] == "mandatory"
    assert dev["images-by-digest"] == "disabled"
    assert dev["readiness-probe"] == "advisory"


def analyze(servicer: Any, type_: str, name: str, props: dict[str, Any]) -> list[tuple[str, str]]:
    request = analyzer_pb2.AnalyzeRequest(type=type_, name=name, urn=urn(type_, name), properties=struct(props))
    return [(d.policyName, LEVELS[d.enforcementLevel]) for d in servicer.Analyze(request, None).diagnostics]


def test_policy_pack_config_levels_win_over_the_stack_levels(servicer: Any) -> None:
    configure_stack(servicer, "dev")
    info = servicer.GetAnalyzerInfo(empty_pb2.Empty(), None)
    servicer.Configure(engine_policy_config(info, {"images-by-digest": "mandatory", "zone-spread": "disabled"}), None)
    tagged = edited(deployment_object(), ("spec.template.spec.containers.0.image", "ghcr.io/acme/sentiment:1.4.2"),
                    ("spec.template.spec.topologySpreadConstraints", []))
    assert analyze(servicer, "kubernetes:apps/v1:Deployment", "sentiment", tagged) == [
        ("images-by-digest", "mandatory")]


def test_a_disabled_rule_does_not_run(servicer: Any) -> None:
    configure_stack(servicer, "prod", {"rules": {"images-by-digest": "disabled"}})
    servicer.Configure(engine_policy_config(servicer.GetAnalyzerInfo(empty_pb2.Empty(), None), {}), None)
    tagged = edited(deployment_object(), ("spec.template.spec.containers.0.image", "ghcr.io/acme/sentiment:1.4.2"))
    assert analyze(servicer, "kubernetes:apps/v1:Deployment", "sentiment", tagged) == []


def test_max_gpus_reaches_the_gpu_ceiling_through_the_engine_config(servicer: Any) -> None:
    configure_stack(servicer, "prod", {"maxGpus": 4})
    info = servicer.GetAnalyzerInfo(empty_pb2.Empty(), None)
    assert json.loads(json.dumps(dict(info.initialConfig["gpu-ceiling"].properties))) == {"maxGpus": 4.0}
    servicer.Configure(engine_policy_config(info, {}), None)
    resources = [("kubernetes:apps/v1:Deployment", "sentiment", deployment_object(gpus=1)),
                 ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "sentiment-autoscaling", hpa_object(2, 6)),
                 ("kubernetes:policy/v1:PodDisruptionBudget", "sentiment-pdb", pdb_object()),
                 ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "sentiment-ingress", network_policy_object())]
    request = analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=t, name=n, urn=urn(t, n), properties=struct(p)) for t, n, p in resources])
    found = [(d.policyName, d.urn.rsplit("::", 1)[-1]) for d in servicer.AnalyzeStack(request, None).diagnostics]
    assert found == [("gpu-ceiling", "sentiment")]


def test_the_environment_carries_the_stack_and_its_config() -> None:
    environ = {"PULUMI_STACK": "prod", "PULUMI_CONFIG": json.dumps({"modelplane:guardrails": '{"maxGpus": 8}'})}
    assert stack_from_environment(environ) == ("prod", {"modelplane:guardrails": '{"maxGpus": 8}'})
    assert stack_from_environment({}) == (None, {})


# ----------------------------------------------------------------------------- the pack process

def start_pack(env: dict[str, str]) -> subprocess.Popen[str]:
    """``policies/`` run as the Python language host runs a policy pack: ``python <dir> <engine address>``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    return subprocess.Popen([sys.executable, str(POLICIES), "127.0.0.1:1"], env={**clean, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def pack_process() -> Iterator[Any]:
    guardrails = json.dumps({"rules": {"zone-spread": "advisory"}})
    process = start_pack({"PULUMI_STACK": "prod", "PULUMI_CONFIG": json.dumps({"modelplane:guardrails": guardrails})})
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read() if process.stderr else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=30)


def levels_of(stub: Any) -> dict[str, str]:
    return {p.name: LEVELS[p.enforcementLevel] for p in stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30).policies}


@pytest.mark.timeout(120)
def test_the_pack_process_serves_its_rules_at_the_levels_of_its_stack(pack_process: Any) -> None:
    info = pack_process.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == PACK_NAME and info.supportsConfig
    levels = levels_of(pack_process)
    assert len(levels) == len(RULES) and levels["zone-spread"] == "advisory"
    assert {level for name, level in levels.items() if name != "zone-spread"} == {"mandatory"}

    pack_process.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(stack="dev"), timeout=30)
    assert levels_of(pack_process)["readiness-probe"] == "advisory"

    bad = analyzer_pb2.AnalyzerStackConfigureRequest(stack="dev", config={"modelplane:guardrails": '{"maxGpu": 1}'})
    with pytest.raises(grpc.RpcError) as refused:
        pack_process.ConfigureStack(bad, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == ("stack dev: modelplane:guardrails.maxGpu: unknown key; valid keys: "
                                       "enforcement, rules, maxGpus")


@pytest.mark.timeout(120)
def test_the_pack_process_refuses_malformed_guardrails_with_a_keyed_message() -> None:
    process = start_pack({"PULUMI_STACK": "prod",
                          "PULUMI_CONFIG": json.dumps({"modelplane:guardrails": '{"enforcement": "strict"}'})})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.strip() == ("modelplane guardrails: modelplane:guardrails.enforcement: 'strict' is not one of "
                              "mandatory, advisory")
