"""Where an API's pods may run: one object gives a node group its labels and
taints and gives the APIs on it their node selector and tolerations, so the
two sides can never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import NodeGroupConfig, effective_disruption

__all__ = ["GPU_RESOURCE", "NODE_GROUP_LABEL", "Placement", "Taint"]

NODE_GROUP_LABEL = "modelplane.io/node-group"
"""Node label naming the node group; the APIs' node selector matches on it."""

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource the NVIDIA device plugin advertises (and the GPU taint's key)."""

GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
"""Label the NVIDIA device plugin chart's default node affinity looks for."""

_EKS_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE",
               "NoExecute": "NO_EXECUTE"}


@dataclass(frozen=True)
class Taint:
    """A node taint, in Kubernetes terms."""

    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class Placement:
    """Labels and taints of one node group, and the matching pod scheduling fields."""

    group: str
    labels: dict[str, str] = field(default_factory=dict)
    """Labels every node of the group carries."""
    taints: tuple[Taint, ...] = ()
    gpu: bool = False
    selector: dict[str, str] | None = None
    """Labels the pods select the group's nodes by. None: ``modelplane.io/node-group: <group>``."""
    protect_starting_pods: bool = False
    """The group is a Karpenter NodePool whose pods are protected from voluntary disruption while they start."""
    startup_time: str | None = None
    """How long that protection lasts from a pod's start; None: each API's own startup budget."""
    spec: NodeGroupConfig | None = field(default=None, compare=False, repr=False)
    """The group's config (its instance types), for checking that a pod fits its nodes. None: not checked."""

    @classmethod
    def for_group(cls, group: str, spec: NodeGroupConfig, karpenter: bool = False) -> Placement:
        """The placement a node group that modelplane creates, declared as ``spec`` under the name ``group``, gets.

        ``karpenter``: the group is a Karpenter NodePool, and its disruption settings may protect starting pods.
        """
        labels = {**spec.labels, NODE_GROUP_LABEL: group}
        if spec.gpu:
            labels[GPU_PRESENT_LABEL] = "true"
        disruption = effective_disruption(spec)
        protect = karpenter and disruption.protect_starting_pods
        return cls(group=group, labels=labels, taints=_taints(spec), gpu=spec.gpu, protect_starting_pods=protect,
                   startup_time=disruption.startup_time if protect else None, spec=spec)

    @classmethod
    def for_existing_pool(cls, group: str, spec: NodeGroupConfig) -> Placement:
        """The placement of a pool that already runs in an existing cluster, as ``spec`` describes its nodes.

        Its nodes carry ``spec.labels`` (the pods select on all of them) or, when none are
        declared, ``modelplane.io/node-group: <group>``, and ``spec.taints`` (plus the GPU taint).
        """
        labels = dict(spec.labels) or {NODE_GROUP_LABEL: group}
        return cls(group=group, labels=labels, taints=_taints(spec), gpu=spec.gpu, selector=dict(labels), spec=spec)

    def node_selector(self) -> dict[str, str]:
        """Pod ``nodeSelector`` that lands exactly on this group's nodes."""
        return dict(self.selector) if self.selector is not None else {NODE_GROUP_LABEL: self.group}

    def tolerations(self) -> list[dict[str, str]]:
        """Pod ``tolerations`` for every taint of this group."""
        return [{"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
                for t in self.taints]

    def kubernetes_taints(self) -> list[dict[str, str]]:
        """The taints as a Node (and a Karpenter NodePool) spells them."""
        return [{"key": t.key, "value": t.value, "effect": t.effect} for t in self.taints]

    def eks_taints(self) -> list[dict[str, str]]:
        """The taints in the EKS node group API's spelling (``NO_SCHEDULE``)."""
        return [{"key": t.key, "value": t.value, "effect": _EKS_EFFECT[t.effect]} for t in self.taints]


def _taints(spec: NodeGroupConfig) -> tuple[Taint, ...]:
    taints = [Taint(t.key, t.value, t.effect) for t in spec.taints]
    if spec.gpu and spec.gpu_taint:
        taints.insert(0, Taint(GPU_RESOURCE, "true", "NoSchedule"))
    return tuple(taints)
