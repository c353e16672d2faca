"""GPU rules: GPU nodes are tainted and GPU pods tolerate it, GPU rollouts surge, and the estate's GPU ceiling."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction

from pulumi_policy import PolicyConfigSchema

from ._kube import DEPLOYMENT, GPU_RESOURCE, WORKLOADS, Workload, autoscalers_of, fix, workloads
from ._rule import Finding, Resource, Rule, Stack
from ._values import UNKNOWN, Unknown, dig, is_unknown, number, quantity, show

__all__ = ["MANAGED_NODE_GROUPS", "RULES", "is_gpu_group"]

MANAGED_NODE_GROUPS = frozenset({"eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup"})
"""The pulumi-eks component and the EKS node group it registers (both reach the pack in a real run)."""

NODE_GROUP_TAG = "modelplane.io/node-group"
"""Tag modelplane puts on its node groups: the group's key under ``modelplane:nodeGroups``."""

_GPU_AMI = re.compile(r"GPU|NVIDIA")
# NVIDIA GPU instance families (p3, p4d, p5, g4dn, g5, g5g, g6, g6e, gr6, ...); g4ad has AMD GPUs.
_GPU_FAMILY = re.compile(r"^(?:p[2-9]|g[3-9]|gr\d)[a-z]*\.")
_REPELLING_EFFECTS = ("NO_SCHEDULE", "NoSchedule", "NO_EXECUTE", "NoExecute")
EKS_GPU_GUIDE = "https://docs.aws.amazon.com/eks/latest/best-practices/aiml-compute.html"


def is_gpu_group(props: dict[str, object]) -> bool:
    """Whether a node group's nodes have NVIDIA GPUs: its AMI type, ``gpu`` flag, instance types or labels say so."""
    ami = props.get("amiType")
    if isinstance(ami, str) and _GPU_AMI.search(ami):
        return True
    if props.get("gpu") is True:
        return True
    types = props.get("instanceTypes")
    if isinstance(types, list) and any(isinstance(t, str) and _GPU_FAMILY.match(t) and not t.startswith("g4ad.")
                                       for t in types):
        return True
    return bool(dig(props, "labels", "nvidia.com/gpu.present") == "true")


NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def _node_pool_as_group(props: dict[str, object]) -> dict[str, object]:
    """A Karpenter NodePool's instance types, labels, taints and group in a node group's terms."""
    template = dig(props, "spec", "template")
    requirements = dig(template, "spec", "requirements")
    types: list[object] = []
    for requirement in requirements if isinstance(requirements, list) else []:
        if dig(requirement, "key") == "node.kubernetes.io/instance-type" and dig(requirement, "operator") == "In":
            values = dig(requirement, "values")
            types += values if isinstance(values, list) else []
    labels = dig(template, "metadata", "labels")
    return {"instanceTypes": types, "labels": labels, "taints": dig(template, "spec", "taints") or [],
            "tags": {NODE_GROUP_TAG: dig(labels, NODE_GROUP_TAG)}}


def _gpu_pool_consolidation(resource: Resource) -> Iterator[str]:
    if not is_gpu_group(_node_pool_as_group(resource.props)):
        return
    policy = dig(resource.props, "spec", "disruption", "consolidationPolicy")
    if is_unknown(policy) or policy == "WhenEmpty":
        return
    group = dig(resource.props, "spec", "template", "metadata", "labels", NODE_GROUP_TAG)
    key = f"modelplane:nodeGroups.{group}.disruption.consolidationPolicy: WhenEmpty" if isinstance(group, str) else None
    shown = "unset: WhenEmptyOrUnderutilized" if policy is None else show(policy)
    yield (f"Set spec.disruption.consolidationPolicy to WhenEmpty in GPU NodePool {resource.name!r} (now {shown}): "
           f"consolidating an underused GPU node moves its pods, and each moved replica loads its model again "
           f"({fix(key, 'spec.disruption.consolidationPolicy')}).")


def _gpu_group_taint(resource: Resource) -> Iterator[str]:
    props = _node_pool_as_group(resource.props) if resource.type == NODE_POOL else resource.props
    if not is_gpu_group(props):
        return
    taints = props.get("taints")
    if is_unknown(taints) or (isinstance(taints, list) and UNKNOWN in taints):
        return
    for taint in taints if isinstance(taints, list) else []:
        effect = dig(taint, "effect")
        if dig(taint, "key") in (GPU_RESOURCE, UNKNOWN) and (is_unknown(effect) or effect in _REPELLING_EFFECTS):
            return
    group = dig(props, "tags", NODE_GROUP_TAG)
    key = f"modelplane:nodeGroups.{group}.gpuTaint: true" if isinstance(group, str) else None
    yield (f"Taint GPU node group {resource.name!r} with {GPU_RESOURCE}=true:NoSchedule: without it pods that need "
           f"no GPU fill its nodes and GPU pods find no room ({fix(key, 'taints')}).")


def _tolerates_gpu_taint(toleration: object) -> bool:
    if is_unknown(toleration):
        return True
    key, operator, effect = dig(toleration, "key"), dig(toleration, "operator"), dig(toleration, "effect")
    if UNKNOWN in (key, operator, effect):
        return True
    key_matches = key == GPU_RESOURCE or (not key and operator == "Exists")
    return key_matches and effect in (None, "", "NoSchedule")


def _gpu_toleration(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    gpus = workload.gpus_per_pod()
    if isinstance(gpus, Unknown) or gpus == 0:
        return
    tolerations = dig(workload.pod_spec, "tolerations")
    if is_unknown(tolerations):
        return
    if not any(_tolerates_gpu_taint(t) for t in tolerations or []):
        yield (f"Add a toleration for the {GPU_RESOURCE}:NoSchedule taint to {workload}: its pods ask for "
               f"{gpus} GPU(s), GPU nodes carry that taint, and without the toleration they never schedule "
               f"(field spec.template.spec.tolerations).")


def _is_zero(value: object) -> bool:
    if isinstance(value, str) and value.endswith("%"):
        return quantity(value[:-1]) == 0
    return number(value) == 0


def _gpu_max_unavailable_zero(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    gpus = workload.gpus_per_pod()
    if isinstance(gpus, Unknown) or gpus == 0:
        return
    strategy = dig(resource.props, "spec", "strategy")
    kind = dig(strategy, "type")
    unavailable = dig(strategy, "rollingUpdate", "maxUnavailable")
    if UNKNOWN in (strategy, kind, unavailable):
        return
    key = workload.key()
    where = fix(key and key + ".updateStrategy.maxUnavailable", "spec.strategy.rollingUpdate.maxUnavailable")
    if kind == "Recreate":
        yield (f"Roll {workload} out with a RollingUpdate and maxUnavailable 0, not Recreate: it runs on GPUs, and "
               f"Recreate stops every replica before a new one is ready ({where}).")
    elif unavailable is None or not _is_zero(unavailable):
        shown = "25% (the default)" if unavailable is None else show(unavailable)
        yield (f"Set maxUnavailable to 0 in the rolling update of {workload} (now {shown}) and surge instead: "
               f"it runs on GPUs, and a replica taken down first is capacity that takes minutes and a new GPU "
               f"node to replace ({where}).")


def _max_replicas(workload: Workload, stack: Stack) -> tuple[float, str] | None:
    """The most replicas a workload can reach and the field that sets it; None when that is not known."""
    autoscalers, maybe = autoscalers_of(workload, stack)
    if maybe:
        return None
    best: tuple[float, str] | None = None
    for autoscaler in autoscalers:
        high = number(autoscaler.max_replicas())
        if high is None:
            return None
        if best is None or high > best[0]:
            best = (high, f"{autoscaler.max_field} of {autoscaler}")
    if best is not None:
        return best
    replicas = dig(workload.resource.props, "spec", "replicas")
    count = 1.0 if replicas is None else number(replicas)
    return None if count is None else (count, "spec.replicas")


def _gpu_ceiling(stack: Stack) -> Iterator[Finding]:
    ceiling = number(stack.config.get("maxGpus"))
    if ceiling is None:
        return
    demands: list[tuple[Workload, Fraction, float, str]] = []
    for workload in workloads(stack):
        gpus = workload.gpus_per_pod()
        if isinstance(gpus, Unknown) or gpus == 0:
            continue
        reach = _max_replicas(workload, stack)
        if reach is not None:
            demands.append((workload, gpus, *reach))
    total = sum(float(gpus) * replicas for _, gpus, replicas, _ in demands)
    if total <= ceiling:
        return
    parts = ", ".join(f"{w} {gpus} x {replicas:g}" for w, gpus, replicas, _ in demands)
    for workload, gpus, replicas, source in demands:
        where = fix(workload.replicas_key("maxReplicas"), source)
        yield Finding(
            f"Lower the GPUs the workloads can reach to the ceiling of {ceiling:g} (they reach {total:g}: {parts}): "
            f"lower the replicas of {workload} ({where}; {gpus} GPU(s) x {replicas:g}), or raise the ceiling "
            f"(modelplane:guardrails.maxGpus).",
            workload.resource.urn)


RULES = [
    Rule("gpu-group-taint", f"GPU node groups are tainted {GPU_RESOURCE}=true:NoSchedule.",
         "GPU nodes are the most expensive capacity; the taint keeps pods that need no GPU off them.",
         EKS_GPU_GUIDE, _gpu_group_taint, MANAGED_NODE_GROUPS | {NODE_POOL}),
    Rule("gpu-pool-consolidation", "Karpenter GPU NodePools consolidate only empty nodes (WhenEmpty).",
         "Consolidating an underused GPU node evicts its replicas to pack them elsewhere; each reloads its model "
         "(minutes to tens of minutes without it) to save part of one node.",
         "https://karpenter.sh/docs/concepts/disruption/#consolidation", _gpu_pool_consolidation,
         frozenset({NODE_POOL})),
    Rule("gpu-toleration", f"Pods that request {GPU_RESOURCE} tolerate the GPU taint.",
         "GPU node groups are tainted, so a GPU pod without the toleration stays Pending forever.",
         EKS_GPU_GUIDE, _gpu_toleration, WORKLOADS),
    Rule("gpu-max-unavailable-zero", "Deployments that use GPUs roll out with maxUnavailable 0.",
         "A GPU replica taken down before its replacement is ready is capacity that needs a new GPU node "
         "(minutes) to come back; surging keeps the API at full strength during a rollout.",
         "https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment",
         _gpu_max_unavailable_zero, frozenset({DEPLOYMENT})),
    Rule("gpu-ceiling", "GPUs per pod x maximum replicas, summed over the workloads, stays within the stack's ceiling.",
         "A per-stack GPU budget (modelplane:guardrails.maxGpus) caps what autoscaling can spend; without a "
         "ceiling the rule does not apply.",
         EKS_GPU_GUIDE, _gpu_ceiling,
         config_schema=PolicyConfigSchema({"maxGpus": {"type": "integer", "minimum": 0,
                                                       "description": "Most GPUs the stack's workloads may reach."}})),
]
