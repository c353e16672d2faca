"""Instance facts, whole-pod fit and bin-packed headroom (components/catalog.py, config/schedulability.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modelplane import catalog
from modelplane.config import parse_estate
from modelplane.config.schedulability import bin_pack, pod_requests, PodGroup, Resources

from conftest import problems

SOURCE = "stacks/Pulumi.dev.yaml"
APIS = "modelplane:apis"
GROUPS = "modelplane:nodeGroups"
CLUSTER = "modelplane:cluster"



# ------------------------------------------------------------------------ instance facts

@pytest.mark.parametrize(("name", "max_pods", "cpu", "mem"), [
    # 4 ENIs x (15 - 1) + 2 = 58 pods; CPU 4000 - (60 + 10 + 5 + 5); memory 16 GiB x 0.925 - (11 x 58 + 255) - 100.
    ("g5.xlarge", 58, 3920, 15155 - 893 - 100),
    ("g4dn.xlarge", 29, 3920, 15155 - 574 - 100),
    ("m6i.large", 29, 1930, 7577 - 574 - 100),
    ("c6i.2xlarge", 58, 7910, 15155 - 893 - 100),
    # 15 x 49 + 2 = 737 by the ENIs, capped at 250 (48 vCPUs); the memory reserve still counts 737.
    ("g5.12xlarge", 250, 48000 - 190, 181862 - (11 * 737 + 255) - 100),
    # 30 vCPUs or fewer: capped at 110 (c5.4xlarge: 8 x 29 + 2 = 234).
    ("c5.4xlarge", 110, 16000 - 110, 30310 - (11 * 234 + 255) - 100),
])
def test_instance_facts_give_the_eks_kubelets_allocatable(name: str, max_pods: int, cpu: int, mem: int) -> None:
    facts = catalog.lookup(name)

    assert facts is not None
    assert (facts.max_pods, facts.allocatable_cpu_millicores, facts.allocatable_memory_mib) == (max_pods, cpu, mem)


@pytest.mark.parametrize(("vcpus", "reserved"), [(1, 60), (2, 70), (4, 80), (5, 82), (8, 90), (96, 310)])
def test_cpu_reserve_follows_nodeadm(vcpus: int, reserved: int) -> None:
    assert catalog.cpu_reserved_millicores(vcpus) == reserved


def test_gpu_facts() -> None:
    facts = catalog.lookup("p4d.24xlarge")

    assert facts is not None
    assert (facts.gpus, facts.gpu_model, facts.gpu_memory_gib) == (8, "A100", 320)
    assert catalog.architecture("g5g.xlarge") == "arm64" and catalog.lookup("g5g.xlarge") is not None


def test_learn_from_aws_fills_what_the_table_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_aws as aws

    asked: list[str] = []

    def fake(instance_type: str, region: str | None = None) -> Any:
        asked.append(instance_type)
        if instance_type != "g7x.xlarge":
            raise RuntimeError("InvalidInstanceType")
        return SimpleNamespace(default_vcpus=8, memory_size=65536, maximum_network_interfaces=4,
                               maximum_ipv4_addresses_per_interface=15, default_network_card_index=0,
                               network_cards=[SimpleNamespace(index=0, maximum_network_interfaces=4)],
                               gpuses=[SimpleNamespace(count=2, name="X1", memory_size=24576)])

    monkeypatch.setattr(aws.ec2, "get_instance_type", fake)
    monkeypatch.setattr(catalog, "_LEARNED", {})

    missing = catalog.learn_from_aws(["g5.xlarge", "g7x.xlarge", "nope.large"], "us-east-1")

    assert asked == ["g7x.xlarge", "nope.large"]  # the bundled table answers for g5.xlarge
    assert missing == ["nope.large"]
    learnt = catalog.lookup("g7x.xlarge")
    assert learnt is not None and learnt.source == "ec2"
    assert (learnt.vcpus, learnt.memory_gib, learnt.gpus, learnt.gpu_memory_gib, learnt.max_pods) == (8, 64, 2, 48, 58)


def test_a_type_ec2_described_validates(monkeypatch: pytest.MonkeyPatch, stack_configs) -> None:
    monkeypatch.setattr(catalog, "_LEARNED", {})
    config = stack_configs.edited("dev", ((GROUPS, "gpu-spot", "instanceTypes"), ["g7x.xlarge"]))
    assert [i.where() for i in problems(config)] == ["modelplane:nodeGroups.gpu-spot.instanceTypes[0]"]

    catalog.learn(catalog.InstanceType("g7x.xlarge", 8, 64, 1, "X1", 24, 4, 15, source="ec2"))

    assert parse_estate(config, SOURCE).node_shape("gpu-spot").instance_type.name == "g7x.xlarge"


def test_the_offline_run_never_asks_ec2(monkeypatch: pytest.MonkeyPatch, render, stack_configs) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("EC2 asked offline")

    monkeypatch.setattr(catalog, "learn_from_aws", refuse)

    render("dev", stack_configs.load("dev"))


# ------------------------------------------------------------------------ pods

def test_a_pod_counts_every_container_and_the_proxy(stack_configs) -> None:
    estate = parse_estate(stack_configs.load("prod"), "stacks/Pulumi.prod.yaml")

    # recommender: the front-end 500m/1Gi, the bandit-model sidecar 1/2Gi, the proxy 100m/128Mi.
    assert pod_requests(estate.apis["recommender"]) == Resources(1600, 3200, 0, 1)
    # llm-chat runs no proxy.
    assert pod_requests(estate.apis["llm-chat"]) == Resources(40000, 160 * 1024, 4, 1)


def test_daemonsets_by_group(stack_configs) -> None:
    dev = parse_estate(stack_configs.load("dev"), SOURCE)
    local = parse_estate(stack_configs.load("local"), "stacks/Pulumi.local.yaml")

    # dev installs kube-prometheus-stack (image-embed scales on in-flight requests): its node exporter runs too.
    assert [d.name for d in dev.node_shape("gpu-spot").daemonsets] == [
        "aws-node", "kube-proxy", "nvidia-device-plugin", "node-exporter"]
    assert [d.name for d in local.node_shape("cpu").daemonsets] == ["aws-node", "kube-proxy"]
    assert local.node_shape("cpu").room == Resources(3920 - 150, 14162, 0, 58 - 2)


def test_first_fit_decreasing_packs_big_pods_first() -> None:
    room = Resources(4000, 16000, 0, 10)
    pods = [PodGroup("small", Resources(1000, 1000), 4), PodGroup("big", Resources(3000, 1000), 2)]

    # big+small, big+small, small+small.
    assert bin_pack(pods, room) == 3


# ------------------------------------------------------------------------ the fit error

def test_a_pod_bigger_than_a_gpu_node_fails_naming_the_api_the_group_and_the_numbers(stack_configs) -> None:
    config = stack_configs.edited("dev", ((APIS, "image-embed", "compute", "cpu"), "4"))

    [issue] = problems(config)

    assert issue.where() == "modelplane:apis.image-embed.compute.cpu"
    assert issue.message == (
        "API 'image-embed' needs 4.1 CPU, 8.125Gi memory, 1 GPU per pod (model 4 CPU/8Gi, proxy 0.1 CPU/128Mi); "
        "one node of group 'gpu-spot' (g5.xlarge; EKS may launch any of its types) has 3.92 CPU, 13.83Gi memory, "
        "1 GPU, 58 pods allocatable after the kubelet reserve; 3.77 CPU, 13.83Gi, 54 pods after the DaemonSets "
        "(aws-node, kube-proxy, nvidia-device-plugin, node-exporter): not enough CPU. Use a bigger type (the "
        "smallest g5 that holds it: g5.2xlarge, 8 vCPU, 32 GiB) or lower the requests")


def test_a_pod_that_just_fits_is_fine(stack_configs) -> None:
    # 3.6 + 0.1 proxy of 3.77.
    config = stack_configs.edited("dev", ((APIS, "image-embed", "compute", "cpu"), "3600m"))

    parse_estate(config, SOURCE)


def test_every_type_of_a_group_must_hold_the_pod(stack_configs) -> None:
    # g4dn.xlarge holds 29 pods, g5.xlarge 58, both 4 vCPU/16 GiB; memory decides here: 14 GiB fits neither.
    config = stack_configs.edited("dev", ((APIS, "image-embed", "compute", "mem"), "14Gi"))

    [issue] = problems(config)

    assert issue.where() == "modelplane:apis.image-embed.compute.mem"
    assert "not enough memory" in issue.message and "(g5.xlarge;" in issue.message


def test_sidecars_count_in_the_fit(stack_configs) -> None:
    config = stack_configs.edited("local", ((APIS, "recommender", "sidecars", "ranker", "compute", "cpu"), "3600m"))

    [issue] = problems(config)

    assert issue.where() == "modelplane:apis.recommender.compute.cpu"
    assert "needs 3.8 CPU, 320Mi memory per pod (model 0.2 CPU/256Mi, ranker 3.6 CPU/64Mi)" in issue.message


# ------------------------------------------------------------------------ the headroom warning

def test_a_cpu_group_too_small_at_peak_warns_with_the_nodes_needed(stack_configs) -> None:
    # sentiment 0.6 CPU/1.125Gi a pod: 6 a node (3.77 CPU); 30 replicas + 8 surging = 38 pods -> 7 nodes, maxSize 4.
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling", "maxReplicas"), 30))

    estate = parse_estate(config, SOURCE)

    assert estate.warnings == [
        "node group 'cpu': its APIs at maxReplicas run 30 pods (sentiment 30) and a rollout surges 8 more "
        "(sentiment); bin-packed on m6i.xlarge nodes (3.77 CPU, 13.83Gi, 55 pods for API pods after the kubelet "
        "reserve and DaemonSets) they need 7 nodes, but maxSize is 4; a rollout at peak load would stall with pods "
        "Pending (raise maxSize to 7, lower maxReplicas or use a bigger instance type)"]
    assert (estate.node_need("cpu").at_min, estate.node_need("cpu").at_max) == (1, 7)


def test_a_cpu_group_that_holds_its_peak_is_quiet(stack_configs) -> None:
    # 18 + 5 surging = 23 pods -> 4 nodes.
    config = stack_configs.edited("dev", ((APIS, "sentiment", "autoscaling", "maxReplicas"), 18))

    estate = parse_estate(config, SOURCE)

    assert estate.warnings == []
    assert estate.node_need("cpu").at_max == 4


def test_gpu_pods_that_fit_by_gpu_count_but_not_by_cpu_need_more_nodes(stack_configs) -> None:
    # gpusPerNode 2 (a sharing device plugin): by GPUs, 3 nodes hold image-embed's 3 + 1 and doc-embed's 2;
    # by CPU (2.1 + 2 of 3.77) one pod a node: 6 nodes.
    config = stack_configs.edited("dev", ((GROUPS, "gpu-spot", "gpusPerNode"), 2), ((GROUPS, "gpu-spot", "maxSize"), 3))

    estate = parse_estate(config, SOURCE)

    [warning] = estate.warnings
    assert "they need 6 nodes, but maxSize is 3" in warning


def test_the_plan_shows_each_groups_nodes_at_min_and_at_max(render, stack_configs) -> None:
    from modelplane.cli import format_plan

    lines = format_plan(render("prod", stack_configs.load("prod"))).splitlines()
    # The title may carry the capacity engine's note: "Node groups (Karpenter NodePools: ...)".
    start = next(i for i, line in enumerate(lines) if line.startswith("Node groups"))
    table = lines[start + 1:lines.index("Model APIs") - 1]
    header, rows = table[0], {line.split()[0]: line for line in table[2:]}

    assert header.split()[0] == "group" and "nodes needed at min / at max" in header
    assert rows["cpu"].rstrip().endswith("2 / 25")
    assert "7.76 CPU, 13.8Gi, 55 pods (c6i.2xlarge, the smallest)" in rows["cpu"]
    assert rows["gpu-llm"].rstrip().endswith("2 / 4")
    short = format_plan(render("prod", stack_configs.edited("prod", ((GROUPS, "cpu", "maxSize"), 20)))).splitlines()
    assert any(line.startswith("  cpu ") and line.endswith("2 / 25  (short: maxSize 20)") for line in short)


def test_model_api_used_directly_refuses_a_pod_bigger_than_its_nodes() -> None:
    # A stack file gets this as a config error; a ModelApi built in someone's own program gets it here.
    import gc

    import pulumi

    from modelplane import ApiConfig, ClusterContext, ConfigError, ModelApi, ModelApiArgs, NodeGroupConfig, Placement
    from modelplane.offline import start_mock_engine

    start_mock_engine("direct", "us-east-1")
    try:
        pool = Placement.for_existing_pool("cpu", NodeGroupConfig.model_validate({"instanceTypes": ["m6i.large"]}))
        fits = ApiConfig.model_validate({"image": "ghcr.io/acme/x:1", "nodeGroup": "cpu",
                                         "readinessProbe": {"path": "/"}, "compute": {"cpu": "1500m"},
                                         "autoscaling": {"metric": "cpu"}})
        ModelApi("fits", ModelApiArgs(spec=fits, placement=pool, cluster=ClusterContext(name="c")))
        big = fits.model_copy(update={"compute": fits.compute.model_copy(update={"cpu": "2"})})
        with pytest.raises(ConfigError, match=r"ModelApi 'big': spec.compute.cpu: API 'big' needs 2.1 CPU, 128Mi memory per pod .* one "
                                             r"node of group 'cpu' \(m6i.large\) has 1.93 CPU"):
            ModelApi("big", ModelApiArgs(spec=big, placement=pool, cluster=ClusterContext(name="c")))
    finally:
        gc.enable()
        pulumi.runtime.settings.reset_options()
