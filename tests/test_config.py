"""modelplane.config: what a stack file may say, and how a wrong one is reported.

A user reads these messages instead of a traceback, so each test pins the key
path (``Issue.where()``), the bad value and what would have been valid, and
that every problem in a file is reported in one go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelplane.config import (
    ApiConfig,
    AutoscalingConfig,
    ConfigError,
    EstateConfig,
    Issue,
    TaintConfig,
    effective_update_strategy,
    load_stack_file,
    parse_estate,
)

from conftest import problems

SOURCE = "stacks/Pulumi.dev.yaml"
APIS = "modelplane:apis"
GROUPS = "modelplane:nodeGroups"
CLUSTER = "modelplane:cluster"



def only_problem(config: dict[str, Any]) -> Issue:
    found = problems(config)
    assert len(found) == 1, [f"{i.where()}: {i.message}" for i in found]
    return found[0]


def aliases(model: type) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


# ------------------------------------------------------------------------ the committed stacks

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_are_valid_and_raise_no_warnings(stack_configs, stack: str) -> None:
    estate = parse_estate(stack_configs.load(stack), f"stacks/Pulumi.{stack}.yaml")

    assert isinstance(estate, EstateConfig)
    # Both stacks narrow the public endpoint, so the 0.0.0.0/0 warning must not fire.
    assert estate.warnings == []


def test_open_public_endpoint_is_a_warning_not_an_error(stack_configs) -> None:
    config = stack_configs.edited("dev", ((CLUSTER, "endpoint", "publicAccessCidrs"), ["0.0.0.0/0"]))

    estate = parse_estate(config, SOURCE)

    assert len(estate.warnings) == 1
    assert "modelplane:cluster.endpoint" in estate.warnings[0]
    assert "0.0.0.0/0" in estate.warnings[0]


# ------------------------------------------------------------------------ unknown keys

def test_unknown_top_level_key_names_the_valid_sections(stack_configs) -> None:
    config = stack_configs.edited("dev", (("modelplane:foo",), 1))

    issue = only_problem(config)

    assert issue.where() == "modelplane:foo"
    assert "unknown key" in issue.message
    for section in ("modelplane:cluster", "modelplane:nodeGroups", "modelplane:apis"):
        assert section in issue.message


def test_keys_of_other_namespaces_are_left_to_their_owners(stack_configs) -> None:
    config = stack_configs.edited("dev", (("aws:profile",), "ml-dev"))

    parse_estate(config, SOURCE)


def test_misspelt_nested_key_names_its_path_and_lists_the_valid_keys(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscalng"), {"maxReplicas": 3}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.autoscalng"
    assert "unknown key 'autoscalng'" in issue.message
    valid = issue.message.split("valid keys here:", 1)[1]
    assert [k.strip() for k in valid.split(",")] == aliases(ApiConfig)


def test_unknown_key_in_a_nested_model_lists_that_models_keys(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling", "maxReplica"), 3))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.autoscaling.maxReplica"
    valid = issue.message.split("valid keys here:", 1)[1]
    assert [k.strip() for k in valid.split(",")] == aliases(AutoscalingConfig)


def test_unknown_key_in_a_list_item_lists_the_items_keys(stack_configs) -> None:
    config = stack_configs.edited(
        "dev", ((GROUPS, "cpu", "taints"), [{"key": "example.com/dedicated", "efect": "NoSchedule"}]))

    issue = only_problem(config)

    assert issue.where() == "modelplane:nodeGroups.cpu.taints[0].efect"
    valid = issue.message.split("valid keys here:", 1)[1]
    assert [k.strip() for k in valid.split(",")] == aliases(TaintConfig)


# ------------------------------------------------------------------------ wrong types and values

def test_string_where_a_number_belongs_names_the_value(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling", "maxReplicas"), "ten"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.autoscaling.maxReplicas"
    assert "'ten'" in issue.message
    assert "integer" in issue.message


def test_env_value_must_be_a_string(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "env", "WORKERS"), 4))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.env.WORKERS"
    assert "string" in issue.message
    assert issue.message.endswith('got 4 (a number to YAML; quote it for text: "4")')


def test_out_of_range_number_says_the_limit(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "port"), 80))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.port"
    assert "1024" in issue.message
    assert issue.message.endswith("got 80")


def test_missing_required_section_lists_its_required_keys(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "readinessProbe"), stack_configs.DELETE))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.readinessProbe"
    assert issue.message == "is required (required keys: path)"


def test_kubernetes_version_outside_the_supported_list_names_the_supported_ones(stack_configs) -> None:
    # Unquoted in YAML, 1.30 is the float 1.3: the message must show what was read.
    config = stack_configs.edited("dev", ((CLUSTER, "kubernetesVersion"), 1.30))

    issue = only_problem(config)

    assert issue.where() == "modelplane:cluster.kubernetesVersion"
    assert "'1.33'" in issue.message
    assert issue.message.endswith('got 1.3 (a number to YAML; quote it for text: "1.3")')


def test_bad_int_or_percent_is_one_issue_at_the_key(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "updateStrategy"), {"maxSurge": "lots"}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.updateStrategy.maxSurge"
    assert "'lots'" in issue.message
    assert "integer" in issue.message and "%" in issue.message  # what either branch would accept


def test_quoted_number_for_a_scaling_factor_is_an_error(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling", "maxUpscaleFactor"), "2.0"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.autoscaling.maxUpscaleFactor"
    assert issue.message.endswith("got '2.0'")


# ------------------------------------------------------------------------ rules across fields

def test_max_replicas_below_min_replicas(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling"), {"minReplicas": 5, "maxReplicas": 2}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.autoscaling.maxReplicas"
    assert issue.message == "maxReplicas 2 is less than minReplicas 5"


@pytest.mark.parametrize(("canary", "message"), [
    ({"minReplicas": 3, "maxReplicas": 2}, "maxReplicas 2 is less than minReplicas 3; set maxReplicas to 3 or more"),
    # Unset, the canary's maxReplicas is sentiment's 6 x 10 %, rounded up: 1.
    ({"minReplicas": 2}, "maxReplicas 1 (unset: the API's maxReplicas 6 x weight 10%) is less than minReplicas 2; "
                         "set maxReplicas to 2 or more"),
])
def test_canary_max_replicas_below_its_min_replicas(stack_configs, canary: dict[str, Any], message: str) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "expose"), {"allowHttp": True}), (
        (APIS, "sentiment", "canary"), {"image": "ghcr.io/acme/sentiment-api:1.5.0", "weight": 10, **canary}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.canary.maxReplicas"
    assert issue.message == message


def test_unknown_node_group_lists_the_declared_groups(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "nodeGroup"), "cpu-large"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.nodeGroup"
    assert "'cpu-large'" in issue.message
    assert "(declared: cpu, gpu-spot)" in issue.message


def test_api_on_a_group_that_failed_validation_is_not_reported_twice(stack_configs) -> None:
    # The group exists but is itself invalid: one issue, at the group, not a second "does not exist".
    config = stack_configs.edited("dev", ((GROUPS, "cpu", "maxSize"), "four"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:nodeGroups.cpu.maxSize"


def test_gpu_api_on_a_cpu_group_names_the_gpu_groups(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "image-embed", "nodeGroup"), "cpu"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.image-embed.nodeGroup"
    assert "1 GPU(s)" in issue.message
    assert "'cpu' has no GPUs" in issue.message
    assert "(GPU groups: gpu-spot)" in issue.message


def test_gpu_request_larger_than_a_node(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "image-embed", "compute", "gpu"), 2))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.image-embed.compute.gpu"
    assert issue.message == "2 GPUs per replica do not fit on a node of 'gpu-spot', which has 1"


def test_gpus_per_node_comes_from_the_smallest_known_instance_type(stack_configs) -> None:
    # g5.12xlarge has 4 GPUs, g5.xlarge 1: a 2-GPU replica must fit on every node the group may start.
    config = stack_configs.edited("dev", ((GROUPS, "gpu-spot", "instanceTypes"), ["g5.12xlarge", "g5.xlarge"]),
                                  ((APIS, "image-embed", "compute", "gpu"), 2))

    issue = only_problem(config)

    assert issue.message.endswith("which has 1")


@pytest.mark.parametrize("strategy", [
    {"maxSurge": 0, "maxUnavailable": 0},
    {"maxSurge": "0%", "maxUnavailable": 0},
    {"maxSurge": 0, "maxUnavailable": "0%"},
])
def test_rollout_that_can_never_progress(stack_configs, strategy: dict[str, Any]) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "updateStrategy"), strategy))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.updateStrategy"
    assert "maxSurge and maxUnavailable cannot both be 0" in issue.message


def test_gpu_api_with_no_surge_is_stuck_because_its_default_unavailable_is_0(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "image-embed", "updateStrategy"), {"maxSurge": 0}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.image-embed.updateStrategy"


@pytest.mark.parametrize("image", [
    "ghcr.io/acme/sentiment-api",
    "ghcr.io/acme/sentiment-api:latest",
    "registry.acme.internal:5000/sentiment-api",  # a registry port is not a tag
])
def test_image_needs_a_fixed_tag_or_digest(stack_configs, image: str) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "image"), image))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.image"
    assert repr(image) in issue.message
    assert "explicit tag or digest other than latest" in issue.message


@pytest.mark.parametrize("image", [
    "registry.acme.internal:5000/sentiment-api:1.4.2",
    "ghcr.io/acme/sentiment-api@sha256:" + "a" * 64,
])
def test_image_with_tag_behind_a_registry_port_or_a_digest_is_fine(stack_configs, image: str) -> None:
    parse_estate(stack_configs.edited("dev", ((APIS, "sentiment", "image"), image)), SOURCE)


@pytest.mark.parametrize("digest", ["sha256:" + "a" * 63, "sha256:" + "A" * 64, "sha512:" + "a" * 64, ""])
def test_a_malformed_digest_is_refused(stack_configs, digest: str) -> None:
    image = f"ghcr.io/acme/sentiment-api:1.4.2@{digest}"
    with pytest.raises(ConfigError) as caught:
        parse_estate(stack_configs.edited("dev", ((APIS, "sentiment", "image"), image)), SOURCE)
    [issue] = caught.value.issues

    assert issue.where() == "modelplane:apis.sentiment.image"
    assert "malformed digest" in issue.message


def test_reserved_system_group_name(stack_configs) -> None:
    config = stack_configs.edited("dev", ((GROUPS, "system"), {"instanceTypes": ["m6i.large"]}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:nodeGroups.system"
    assert "cluster.systemNodeGroup" in issue.message
    assert "pick another name" in issue.message


@pytest.mark.parametrize("name", ["kube-system", "default"])
def test_api_cannot_take_a_namespace_kubernetes_owns(stack_configs, name: str) -> None:
    config = stack_configs.load("dev")
    config[APIS][name] = config[APIS].pop("sentiment")

    issue = only_problem(config)

    # Each API gets a namespace of its own name: adopting kube-system would label it Pod Security
    # "restricted" (breaking aws-node and kube-proxy) and delete it with the API.
    assert issue.where() == f"modelplane:apis.{name}"
    assert "namespace" in issue.message


def test_existing_vpc_needs_two_private_subnets(stack_configs) -> None:
    config = stack_configs.edited("dev", ((CLUSTER, "vpc"), {"id": "vpc-0abc", "privateSubnetIds": ["subnet-0a"]}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:cluster.vpc.privateSubnetIds"
    assert "at least two private subnets" in issue.message
    assert issue.message.endswith("got 1")


def test_existing_vpc_with_new_vpc_settings(stack_configs) -> None:
    # dev's vpc block has cidr, availabilityZones and natGateways; adding `id` makes them meaningless.
    config = stack_configs.edited("dev", ((CLUSTER, "vpc", "id"), "vpc-0abc"),
                                  ((CLUSTER, "vpc", "privateSubnetIds"), ["subnet-0a", "subnet-0b"]))

    issue = only_problem(config)

    assert issue.where() == "modelplane:cluster.vpc"
    named, rest = issue.message.split(" only apply to a new VPC", 1)
    assert sorted(named.split(", ")) == ["availabilityZones", "cidr", "natGateways"]
    assert "remove `id`" in rest


def test_unknown_instance_type_is_an_error_naming_the_key_and_the_known_sizes(stack_configs) -> None:
    config = stack_configs.edited("dev", ((GROUPS, "gpu-spot", "instanceTypes"), ["g5.xlarge", "g5.xxlarge"]))

    issue = only_problem(config)

    assert issue.where() == "modelplane:nodeGroups.gpu-spot.instanceTypes[1]"
    assert "no facts (vCPUs, memory, GPUs, max pods) for 'g5.xxlarge' (did you mean 'g5.xlarge'?)" in issue.message
    assert "known g5 sizes: g5.12xlarge, g5.16xlarge, g5.24xlarge, g5.2xlarge" in issue.message
    assert "ask EC2" in issue.message


def test_unknown_instance_family_lists_the_known_families(stack_configs) -> None:
    config = stack_configs.edited("dev", ((GROUPS, "cpu", "instanceTypes"), ["x9z.large"]))

    issue = only_problem(config)

    assert issue.where() == "modelplane:nodeGroups.cpu.instanceTypes[0]"
    assert "known families: c5, c5a," in issue.message


def test_unknown_system_node_type_is_an_error_too(stack_configs) -> None:
    config = stack_configs.edited("dev", ((CLUSTER, "systemNodeGroup", "instanceType"), "m6i.larg"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:cluster.systemNodeGroup.instanceType"
    assert "(did you mean 'm6i.large'?)" in issue.message


def test_gpus_per_node_states_what_a_sharing_device_plugin_advertises(stack_configs) -> None:
    config = stack_configs.edited("dev", ((GROUPS, "gpu-spot", "gpusPerNode"), 4))

    estate = parse_estate(config, SOURCE)

    assert estate.gpus_per_node("gpu-spot") == 4
    assert estate.node_shape("gpu-spot").room.gpus == 4


def test_gpu_group_with_a_cpu_instance_type(stack_configs) -> None:
    config = stack_configs.edited("dev", ((GROUPS, "gpu-spot", "instanceTypes"), ["g5.xlarge", "m6i.xlarge"]))

    issue = only_problem(config)

    assert issue.where() == "modelplane:nodeGroups.gpu-spot.instanceTypes[1]"
    assert issue.message.startswith("m6i.xlarge has no GPU")


def test_memory_metric_needs_a_memory_request(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "compute", "mem"), stack_configs.DELETE),
                                  ((APIS, "sentiment", "autoscaling", "metric"), "memory"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.autoscaling.metric"
    assert "set compute.mem" in issue.message


def test_stabilization_period_above_the_kubernetes_limit(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling", "downscaleStabilizationPeriod"), "2h"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.autoscaling.downscaleStabilizationPeriod"
    assert "at most 1h" in issue.message


def test_replica_that_does_not_fit_the_smallest_instance_type(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "compute", "mem"), "20Gi"))

    issue = only_problem(config)

    # cpu group: m6i.xlarge and m5.xlarge, both 4 vCPU / 16 GiB; the proxy's 128Mi counts too.
    assert issue.where() == "modelplane:apis.sentiment.compute.mem"
    assert issue.message.startswith(
        "API 'sentiment' needs 0.6 CPU, 20.125Gi memory per pod (model 0.5 CPU/20Gi, proxy 0.1 CPU/128Mi); one node "
        "of group 'cpu' (m6i.xlarge; EKS may launch any of its types) has 3.92 CPU, 13.83Gi memory, 58 pods "
        "allocatable after the kubelet reserve; 3.77 CPU, 13.83Gi, 55 pods after the DaemonSets")


def test_public_only_endpoint_restricted_to_office_ranges_locks_the_nodes_out(stack_configs) -> None:
    # With the private endpoint off, nodes reach the API server from the NAT gateways' addresses,
    # which are not in dev's publicAccessCidrs (203.0.113.0/24): they would never join.
    config = stack_configs.edited("dev", ((CLUSTER, "endpoint", "private"), False))

    issue = only_problem(config)

    assert issue.where() in ("modelplane:cluster.endpoint", "modelplane:cluster.endpoint.private")
    assert "private" in issue.message


def test_public_only_endpoint_open_to_all_is_allowed(stack_configs) -> None:
    open_endpoint = {"private": False, "publicAccessCidrs": ["0.0.0.0/0"]}
    config = stack_configs.edited("dev", ((CLUSTER, "endpoint"), open_endpoint))

    parse_estate(config, SOURCE)


def test_max_unavailable_above_100_percent(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "updateStrategy"), {"maxUnavailable": "150%"}))

    issue = only_problem(config)

    # Kubernetes rejects maxUnavailable above 100% (maxSurge has no such limit).
    assert issue.where() == "modelplane:apis.sentiment.updateStrategy.maxUnavailable"
    assert "'150%'" in issue.message or "150%" in issue.message


@pytest.mark.parametrize(("group", "ami"), [("cpu", "AL2023_ARM_64_STANDARD"),
                                            ("gpu-spot", "BOTTLEROCKET_ARM_64_NVIDIA")])
def test_arm_ami_on_x86_instance_types(stack_configs, group: str, ami: str) -> None:
    config = stack_configs.edited("dev", ((GROUPS, group, "amiType"), ami))

    issue = only_problem(config)

    # Every instance type here is x86_64; EKS would reject the node group at deploy time.
    assert issue.where() == f"modelplane:nodeGroups.{group}.amiType"
    assert ami in issue.message


def test_one_group_cannot_mix_architectures(stack_configs) -> None:
    config = stack_configs.edited("dev", ((GROUPS, "cpu", "instanceTypes"), ["m6i.xlarge", "m7g.xlarge"]))

    issue = only_problem(config)

    assert issue.where() == "modelplane:nodeGroups.cpu.instanceTypes"
    assert "m7g.xlarge" in issue.message


# ------------------------------------------------------------------------ everything at once

def test_all_problems_of_a_file_are_reported_together(stack_configs) -> None:
    config = stack_configs.edited(
        "dev",
        (("modelplane:foo",), True),
        ((CLUSTER, "kubernetesVersion"), "1.20"),
        ((GROUPS, "system"), {"instanceTypes": ["m6i.large"]}),
        ((GROUPS, "cpu", "minSize"), 9),
        ((APIS, "sentiment", "autoscaling", "maxReplicas"), "ten"),
        ((APIS, "sentiment", "env", "WORKERS"), 4),
        ((APIS, "image-embed", "image"), "ghcr.io/acme/clip-embed:latest"),
        ((APIS, "image-embed", "compute", "gpu"), 2),
    )

    with pytest.raises(ConfigError) as caught:
        parse_estate(config, SOURCE)

    wheres = sorted(i.where() for i in caught.value.issues)
    assert wheres == sorted([
        "modelplane:foo",
        "modelplane:cluster.kubernetesVersion",
        "modelplane:nodeGroups.system",
        "modelplane:nodeGroups.cpu.minSize",
        "modelplane:apis.sentiment.autoscaling.maxReplicas",
        "modelplane:apis.sentiment.env.WORKERS",
        "modelplane:apis.image-embed.image",
        "modelplane:apis.image-embed.compute.gpu",
    ])
    rendered = caught.value.render().splitlines()
    assert rendered[0] == f"{SOURCE}: 8 problem(s) in the estate config:"
    # One line per issue, each naming the file and the key path.
    assert sorted(line.strip() for line in rendered[1:]) == sorted(
        f"{SOURCE}: {i.where()}: {i.message}" for i in caught.value.issues)
    assert "Traceback" not in caught.value.render()


def test_rules_on_one_key_are_reported_even_if_another_key_of_the_api_is_mistyped(stack_configs) -> None:
    # Otherwise the user fixes the type error and only then learns about the :latest tag.
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling", "maxReplicas"), "ten"),
                                  ((APIS, "sentiment", "image"), "ghcr.io/acme/sentiment-api:latest"))

    wheres = sorted(i.where() for i in problems(config))

    assert wheres == ["modelplane:apis.sentiment.autoscaling.maxReplicas", "modelplane:apis.sentiment.image"]


# ------------------------------------------------------------------------ the stack file itself

def test_broken_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.broken.yaml"
    stack.write_text(
        "config:\n"
        "  aws:region: us-east-1\n"
        "  modelplane:cluster:\n"
        "    name: ml-dev\n"
        "   kubernetesVersion: \"1.33\"\n",  # line 5: one space short
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        load_stack_file(stack)

    assert caught.value.source == str(stack)
    [issue] = caught.value.issues
    assert issue.message.startswith("line 5, column 4: the file is not valid YAML")
    assert str(stack) in caught.value.render()


def test_unknown_top_level_key_in_the_stack_file(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.typo.yaml"
    stack.write_text("confg:\n  aws:region: us-east-1\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_stack_file(stack)

    [issue] = caught.value.issues
    assert "['confg']" in issue.message


def test_missing_stack_file_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_file(tmp_path / "Pulumi.nope.yaml")

    assert "cannot read the stack file" in caught.value.render()


# ------------------------------------------------------------------------ defaults

def test_rolling_update_defaults_gpu_apis_surge_one_and_never_go_below_desired(stack_configs) -> None:
    estate = parse_estate(stack_configs.load("dev"), SOURCE)

    assert effective_update_strategy(estate.apis["image-embed"]) == (1, 0)
    assert effective_update_strategy(estate.apis["sentiment"]) == ("25%", "25%")


def test_rolling_update_explicit_values_win(stack_configs) -> None:
    estate = parse_estate(stack_configs.load("prod"), "stacks/Pulumi.prod.yaml")

    assert effective_update_strategy(estate.apis["fraud-score"]) == ("50%", 0)
    assert (estate.max_surge("llm-chat"), estate.max_unavailable("llm-chat")) == (1, 0)


def test_gpu_api_default_applies_per_key(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "image-embed", "updateStrategy"), {"maxUnavailable": 1}))

    estate = parse_estate(config, SOURCE)

    assert effective_update_strategy(estate.apis["image-embed"]) == (1, 1)


def test_autoscaling_defaults_are_cortexs() -> None:
    defaults = AutoscalingConfig()

    assert defaults.min_replicas == 1
    assert defaults.max_replicas == 100
    assert defaults.upscale_stabilization_period == "1m"
    assert defaults.downscale_stabilization_period == "5m"
    assert defaults.max_upscale_factor == 1.5
    assert defaults.max_downscale_factor == 0.75


def test_api_defaults_are_cortexs() -> None:
    api = ApiConfig.model_validate({"image": "ghcr.io/acme/m:1", "nodeGroup": "cpu",
                                    "readinessProbe": {"path": "/healthz"}})

    assert api.port == 8080
    assert api.max_concurrency == 1
    assert api.compute.cpu == "200m"
    assert api.autoscaling == AutoscalingConfig()


def test_cpu_quantity_written_as_a_yaml_number_becomes_a_string(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "compute", "cpu"), 2))

    estate = parse_estate(config, SOURCE)

    assert estate.apis["sentiment"].compute.cpu == "2"


# ------------------------------------------------------------------------ capacity warnings and CPU scaling

def test_gpu_group_too_small_for_a_rollout_at_peak_is_a_warning(stack_configs) -> None:
    # dev's image-embed (3 replicas) and doc-embed (2), 1 GPU each, surge 1 -> needs 6 nodes; shrink to 3.
    config = stack_configs.edited("dev", ((GROUPS, "gpu-spot", "maxSize"), 3))

    estate = parse_estate(config, SOURCE)

    assert estate.warnings == [
        "node group 'gpu-spot': its APIs at maxReplicas run 5 pods with 5 GPU(s) (doc-embed 2, image-embed 3) and a "
        "rollout surges 1 more (doc-embed); bin-packed on the least of g5.xlarge, g6.xlarge, g4dn.xlarge nodes "
        "(1 GPU(s), 3.77 CPU, 13.83Gi, 25 pods for API pods after the kubelet reserve and DaemonSets) they need 6 "
        "nodes, but maxSize is 3; a rollout at peak load would stall with pods Pending (raise maxSize to 6, lower "
        "maxReplicas or use a bigger instance type)"]


def test_percent_surge_counts_replicas_rounded_up(stack_configs) -> None:
    config = stack_configs.edited(
        "dev",
        ((APIS, "image-embed", "updateStrategy"), {"maxSurge": "50%", "maxUnavailable": 0}),
        ((GROUPS, "gpu-spot", "maxSize"), 4),
    )

    estate = parse_estate(config, SOURCE)

    # 3 replicas * 50% = 1.5 -> 2 surge replicas: 5 GPUs needed, 4 available.
    assert len(estate.warnings) == 1 and "surges 2 more" in estate.warnings[0]


def test_cpu_scaling_needs_a_cpu_request(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "compute", "cpu"), "0"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.compute.cpu"
    assert "request some CPU" in issue.message


def test_progress_deadline_must_exceed_min_ready(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "updateStrategy"),
                                          {"minReadySeconds": 600, "progressDeadlineSeconds": 600}))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.updateStrategy.progressDeadlineSeconds"
    assert "greater than minReadySeconds 600" in issue.message


@pytest.mark.parametrize("paths, index, reason", [
    (["/tmp", "/tmp/"], 1, "is listed twice"),
    (["/"], 0, "is the root"),
])
def test_writable_paths_are_distinct_directories(stack_configs, paths, index, reason) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "writablePaths"), paths))

    issue = only_problem(config)

    assert issue.where() == f"modelplane:apis.sentiment.writablePaths[{index}]"
    assert reason in issue.message


def test_shared_memory_must_leave_room_for_the_server(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "image-embed", "compute", "shm"), "8Gi"))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.image-embed.compute.shm"
    assert "memory limit 8Gi" in issue.message


@pytest.mark.parametrize(("edits", "directory"), [
    ([((APIS, "sentiment", "configFiles"), {"labels.txt": "a"})], "/etc/modelplane/config"),
    ([((APIS, "sentiment", "sidecars"), {"helper": {"image": "ghcr.io/acme/helper:1.0.0"}})], "/var/run/modelplane"),
])
def test_writable_path_on_a_directory_modelplane_mounts_is_an_error(stack_configs, edits, directory: str) -> None:
    config = stack_configs.edited("dev", *edits, ((APIS, "sentiment", "writablePaths"), ["/tmp", directory]))

    issue = only_problem(config)

    assert issue.where() == "modelplane:apis.sentiment.writablePaths[1]"
    assert issue.message == f"{directory!r} is a directory modelplane mounts; list distinct directories"


def test_sidecar_probes_need_a_port_and_ports_do_not_clash(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "sentiment", "sidecars"), {
        "a": {"image": "ghcr.io/acme/a:1", "readinessProbe": {"path": "/"}},
        "b": {"image": "ghcr.io/acme/b:1", "port": 8080},
        "c": {"image": "ghcr.io/acme/c:1", "port": 8888},
        "d": {"image": "ghcr.io/acme/d:1", "port": 9100},
        "e": {"image": "ghcr.io/acme/e:1", "port": 9100}}))

    found = {i.where(): i.message for i in problems(config)}

    assert found == {
        "modelplane:apis.sentiment.sidecars.a.readinessProbe": "probes the sidecar over HTTP and needs its `port`; "
                                                               "set the port it listens on, or remove the probe",
        "modelplane:apis.sentiment.sidecars.b.port": "8080 is already the serving container's port in the same pod; "
                                                     "pick another port",
        "modelplane:apis.sentiment.sidecars.c.port": "8888 is already the proxy's port in the same pod; pick another "
                                                     "port",
        "modelplane:apis.sentiment.sidecars.e.port": "9100 is already the port of sidecar 'd' in the same pod; "
                                                     "pick another port",
    }
