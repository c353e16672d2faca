"""policies/modelplane_policies/gpu.py: GPU taints and tolerations, GPU rollouts, the GPU ceiling."""

from __future__ import annotations

from policy_support import (
    DELETE,
    UNKNOWN_ARRAY,
    UNKNOWN_STRING,
    deployment_object,
    edited,
    hpa_object,
    managed_node_group_object,
    scaled_object,
    stack_violations,
    violations,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
COMPONENT = "eks:index:ManagedNodeGroup"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
POD = "spec.template.spec"


# ----------------------------------------------------------------------------- gpu-group-taint

def test_gpu_group_taint_passes_on_a_tainted_gpu_group_in_both_shapes() -> None:
    assert violations("gpu-group-taint", COMPONENT, managed_node_group_object()) == []
    assert violations("gpu-group-taint", NODE_GROUP, managed_node_group_object()) == []


def test_gpu_group_taint_fails_on_an_untainted_gpu_group() -> None:
    untainted = edited(managed_node_group_object(), ("taints", []))
    expected = ["Taint GPU node group 'subject' with nvidia.com/gpu=true:NoSchedule: without it pods that need no "
                "GPU fill its nodes and GPU pods find no room (stack file: modelplane:nodeGroups.gpu.gpuTaint: true)."]
    assert violations("gpu-group-taint", COMPONENT, untainted) == expected
    assert violations("gpu-group-taint", NODE_GROUP, untainted) == expected


def test_gpu_group_taint_knows_gpu_groups_by_instance_type_too() -> None:
    soft = [{"key": "nvidia.com/gpu", "value": "true", "effect": "PREFER_NO_SCHEDULE"}]
    by_type = edited(managed_node_group_object(), ("amiType", "AL2023_x86_64_STANDARD"), ("labels", {}),
                     ("tags", {}), ("taints", soft))
    assert violations("gpu-group-taint", NODE_GROUP, by_type) == [
        "Taint GPU node group 'subject' with nvidia.com/gpu=true:NoSchedule: without it pods that need no GPU fill "
        "its nodes and GPU pods find no room (field taints)."]


def test_gpu_group_taint_leaves_cpu_groups_and_unknown_taints_alone() -> None:
    cpu = {"amiType": "AL2023_x86_64_STANDARD", "instanceTypes": ["m6i.xlarge", "g4ad.xlarge"], "taints": []}
    assert violations("gpu-group-taint", NODE_GROUP, cpu) == []
    unknown = edited(managed_node_group_object(), ("taints", UNKNOWN_ARRAY))
    assert violations("gpu-group-taint", COMPONENT, unknown) == []


# ----------------------------------------------------------------------------- gpu-toleration

def test_gpu_toleration_passes_when_gpu_pods_tolerate_the_taint() -> None:
    assert violations("gpu-toleration", DEPLOYMENT, deployment_object(gpus=1)) == []
    # CPU pods need no toleration.
    assert violations("gpu-toleration", DEPLOYMENT, deployment_object(gpus=0)) == []


def test_gpu_toleration_fails_without_the_toleration() -> None:
    untolerated = edited(deployment_object(gpus=2), (f"{POD}.tolerations", []))
    assert violations("gpu-toleration", DEPLOYMENT, untolerated) == [
        "Add a toleration for the nvidia.com/gpu:NoSchedule taint to Deployment sentiment/sentiment: its pods ask "
        "for 2 GPU(s), GPU nodes carry that taint, and without the toleration they never schedule "
        "(field spec.template.spec.tolerations)."]


def test_gpu_toleration_accepts_exists_and_rejects_other_effects() -> None:
    any_effect = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    exists = edited(deployment_object(gpus=1), (f"{POD}.tolerations", any_effect))
    no_execute = edited(deployment_object(gpus=1), (f"{POD}.tolerations.0.effect", "NoExecute"))
    assert violations("gpu-toleration", DEPLOYMENT, exists) == []
    assert len(violations("gpu-toleration", DEPLOYMENT, no_execute)) == 1


def test_gpu_toleration_counts_gpus_given_as_numbers() -> None:
    numeric = edited(deployment_object(gpus=1), (f"{POD}.tolerations", []),
                     (("spec", "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"), 1))
    assert len(violations("gpu-toleration", DEPLOYMENT, numeric)) == 1


# ----------------------------------------------------------------------------- gpu-max-unavailable-zero

def test_gpu_max_unavailable_zero_passes_on_a_surging_gpu_rollout() -> None:
    assert violations("gpu-max-unavailable-zero", DEPLOYMENT, deployment_object(gpus=1)) == []
    # "0%" is zero too, and a CPU Deployment may take replicas down.
    percent = edited(deployment_object(gpus=1), ("spec.strategy.rollingUpdate.maxUnavailable", "0%"))
    assert violations("gpu-max-unavailable-zero", DEPLOYMENT, percent) == []
    cpu = edited(deployment_object(), ("spec.strategy.rollingUpdate.maxUnavailable", "25%"))
    assert violations("gpu-max-unavailable-zero", DEPLOYMENT, cpu) == []


def test_gpu_max_unavailable_zero_fails_on_the_default() -> None:
    default = edited(deployment_object(gpus=1), ("spec.strategy", DELETE))
    assert violations("gpu-max-unavailable-zero", DEPLOYMENT, default) == [
        "Set maxUnavailable to 0 in the rolling update of Deployment sentiment/sentiment (now 25% (the default)) and "
        "surge instead: it runs on GPUs, and a replica taken down first is capacity that takes minutes and a new "
        "GPU node to replace (stack file: modelplane:apis.sentiment.updateStrategy.maxUnavailable)."]


def test_gpu_max_unavailable_zero_fails_on_recreate_and_on_one() -> None:
    recreate = edited(deployment_object(gpus=1), ("spec.strategy", {"type": "Recreate"}))
    one = edited(deployment_object(gpus=1), ("spec.strategy.rollingUpdate.maxUnavailable", 1))
    [message] = violations("gpu-max-unavailable-zero", DEPLOYMENT, recreate)
    assert message.startswith("Roll Deployment sentiment/sentiment out with a RollingUpdate and maxUnavailable 0")
    [message] = violations("gpu-max-unavailable-zero", DEPLOYMENT, one)
    assert "(now 1)" in message


def test_gpu_max_unavailable_zero_waits_for_an_unknown_strategy() -> None:
    unknown = edited(deployment_object(gpus=1), ("spec.strategy.rollingUpdate.maxUnavailable", UNKNOWN_STRING))
    assert violations("gpu-max-unavailable-zero", DEPLOYMENT, unknown) == []


# ----------------------------------------------------------------------------- gpu-ceiling

def gpu_estate(hpa_max: int = 6, keda_max: int = 3) -> list[tuple[str, str, dict]]:
    """Two GPU APIs: 1 GPU per pod up to 6 replicas (HPA), 4 per pod up to 3 (KEDA); 6 + 12 = 18 GPUs."""
    big = edited(deployment_object(gpus=4), ("metadata.name", "llm"), ("metadata.namespace", "llm"),
                 (("metadata", "labels", "modelplane.io/api"), "llm"))
    llm_scaler = edited(scaled_object(1, keda_max), ("metadata.namespace", "llm"),
                        ("spec.scaleTargetRef.name", "llm"))
    return [(DEPLOYMENT, "sentiment", deployment_object(gpus=1)),
            (HPA, "sentiment-autoscaling", hpa_object(2, hpa_max)),
            (DEPLOYMENT, "llm", big), (SCALED_OBJECT, "llm-autoscaling", llm_scaler),
            (DEPLOYMENT, "cpu-only", edited(deployment_object(), ("metadata.name", "cpu-only")))]


def test_gpu_ceiling_passes_at_the_ceiling() -> None:
    assert stack_violations("gpu-ceiling", gpu_estate(), {"maxGpus": 18}) == []


def test_gpu_ceiling_passes_without_a_ceiling() -> None:
    assert stack_violations("gpu-ceiling", gpu_estate(hpa_max=1000)) == []


def test_gpu_ceiling_fails_above_it_and_names_each_api() -> None:
    found = stack_violations("gpu-ceiling", gpu_estate(), {"maxGpus": 17})
    assert [name for name, _ in found] == ["sentiment", "llm"]
    assert found[1][1] == (
        "Lower the GPUs the workloads can reach to the ceiling of 17 (they reach 18: Deployment sentiment/sentiment "
        "1 x 6, Deployment llm/llm 4 x 3): lower the replicas of Deployment llm/llm (stack file: "
        "modelplane:apis.llm.autoscaling.maxReplicas; 4 GPU(s) x 3), or raise the ceiling "
        "(modelplane:guardrails.maxGpus).")


def test_gpu_ceiling_counts_a_deployment_without_autoscaler_by_its_replicas() -> None:
    fixed = [(DEPLOYMENT, "sentiment", edited(deployment_object(gpus=2), ("spec.replicas", 3)))]
    [(_, message)] = stack_violations("gpu-ceiling", fixed, {"maxGpus": 5})
    assert "(they reach 6: Deployment sentiment/sentiment 2 x 3)" in message
    assert stack_violations("gpu-ceiling", fixed, {"maxGpus": 6}) == []


# ----------------------------------------------------------------------------- gpu-group-taint on a Karpenter NodePool

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def node_pool_object(taints: list[dict[str, str]] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                               "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                                 "values": ["g5.xlarge", "g6.xlarge"]}]}
    if taints is not None:
        spec["taints"] = taints
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"}, "spec": {
        "template": {"metadata": {"labels": {"modelplane.io/node-group": "gpu"}}, "spec": spec}}}


def test_gpu_group_taint_passes_on_a_tainted_gpu_pool_and_a_cpu_pool() -> None:
    tainted = node_pool_object([{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
    assert violations("gpu-group-taint", NODE_POOL, tainted) == []
    cpu = edited(node_pool_object(), ("spec.template.spec.requirements.0.values", ["m6i.xlarge"]))
    assert violations("gpu-group-taint", NODE_POOL, cpu) == []


def test_gpu_group_taint_fails_on_an_untainted_gpu_pool_naming_the_key() -> None:
    assert violations("gpu-group-taint", NODE_POOL, node_pool_object(), name="gpu") == [
        "Taint GPU node group 'gpu' with nvidia.com/gpu=true:NoSchedule: without it pods that need no GPU fill its "
        "nodes and GPU pods find no room (stack file: modelplane:nodeGroups.gpu.gpuTaint: true)."]


# ----------------------------------------------------------------------------- gpu-pool-consolidation

def test_gpu_pool_consolidation_passes_when_empty_and_on_cpu_pools() -> None:
    when_empty = edited(node_pool_object(), ("spec.disruption", {"consolidationPolicy": "WhenEmpty"}))
    assert violations("gpu-pool-consolidation", NODE_POOL, when_empty) == []
    cpu = edited(node_pool_object(), ("spec.template.spec.requirements.0.values", ["m6i.xlarge"]),
                 ("spec.disruption", {"consolidationPolicy": "WhenEmptyOrUnderutilized"}))
    assert violations("gpu-pool-consolidation", NODE_POOL, cpu) == []
    unknown = edited(node_pool_object(), ("spec.disruption", {"consolidationPolicy": UNKNOWN_STRING}))
    assert violations("gpu-pool-consolidation", NODE_POOL, unknown) == []


def test_gpu_pool_consolidation_fails_on_underutilized_and_unset_naming_the_key() -> None:
    packing = edited(node_pool_object(), ("spec.disruption", {"consolidationPolicy": "WhenEmptyOrUnderutilized"}))
    assert violations("gpu-pool-consolidation", NODE_POOL, packing, name="gpu") == [
        "Set spec.disruption.consolidationPolicy to WhenEmpty in GPU NodePool 'gpu' (now WhenEmptyOrUnderutilized): "
        "consolidating an underused GPU node moves its pods, and each moved replica loads its model again (stack "
        "file: modelplane:nodeGroups.gpu.disruption.consolidationPolicy: WhenEmpty)."]
    [unset] = violations("gpu-pool-consolidation", NODE_POOL, node_pool_object(), name="gpu")
    assert "(now unset: WhenEmptyOrUnderutilized)" in unset
