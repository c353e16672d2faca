"""``modelplane:nodeGroups``: node groups (or the pools of an existing cluster), and their rules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .. import catalog
from ._base import Duration, Issue, LabelKey, LabelValue, _did_you_mean, _Model, duration_seconds

RESERVED_GROUP = "system"
"""Node-group name taken by the cluster's add-on group."""

GPU_AMI_TYPES = ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA")

CPU_AMI_TYPES = ("AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64",
                 "BOTTLEROCKET_ARM_64")


class TaintConfig(_Model):
    """A Kubernetes taint on every node of a group."""

    key: LabelKey
    """Taint key."""
    value: LabelValue = ""
    """Taint value."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"
    """Taint effect."""


FALLBACK_SUFFIX = "-on-demand"
"""Suffix of the on-demand managed node group a ``spotWithFallback`` group gets."""

CapacityType = Literal["onDemand", "spot", "spotWithFallback"]

DISRUPTION_REASONS = ("Underutilized", "Empty", "Drifted")
"""The voluntary disruptions a Karpenter budget can name."""


class DisruptionBudgetConfig(_Model):
    """How many of a group's nodes Karpenter may disrupt at once (optionally only in a time window, or for some reasons)."""

    nodes: Annotated[str, StringConstraints(pattern=r"^((100|[0-9]{1,2})%|[0-9]+)$")]
    """Nodes (``"1"``) or a share of the group's nodes (``"10%"``) that may be disrupting at the same time; ``"0"`` blocks. Required."""
    schedule: str | None = Field(None, pattern=r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly))|((\S+)\s(\S+)\s(\S+)\s(\S+)\s(\S+))$")
    """When the budget starts to apply, as a cron expression in UTC (``"0 9 * * mon-fri"``). Unset: always. Needs ``duration``."""
    duration: Annotated[str, StringConstraints(pattern=r"^([0-9]+h)?([0-9]+m)?$", min_length=2)] | None = None
    """How long the budget applies from each ``schedule`` hit, in hours and minutes (``"8h"``, ``"1h30m"``). Needs ``schedule``."""
    reasons: list[Literal[DISRUPTION_REASONS]] | None = None  # type: ignore[valid-type]
    """Which voluntary disruptions the budget limits (``Underutilized``, ``Empty``, ``Drifted``). Unset: all of them."""


class DisruptionConfig(_Model):
    """When Karpenter may take a group's nodes away on its own (consolidation, drift), for groups of a ``karpenter`` cluster. Spot interruptions are not voluntary: these settings cannot stop them."""

    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] | None = None
    """``WhenEmpty``: remove a node only once no API pod runs on it; ``WhenEmptyOrUnderutilized``: also move pods off a node to pack them onto fewer or cheaper ones. Unset: ``WhenEmpty`` for GPU groups (a moved GPU pod reloads its model), ``WhenEmptyOrUnderutilized`` for CPU groups."""
    consolidate_after: Duration | None = None
    """How long a node stays empty (or unchanged) before Karpenter consolidates it. Unset: ``10m`` for GPU groups (a warm node for the next scale-up), ``1m`` for CPU groups."""
    budgets: list[DisruptionBudgetConfig] | None = Field(None, max_length=50)
    """Limits on how many nodes are disrupted at once; the most restrictive active one wins. Unset: one node at a time for GPU groups, ``10%`` for CPU groups."""
    protect_starting_pods: bool | None = None
    """Annotate the pods of the APIs on this group with ``karpenter.sh/do-not-disrupt: <startup time>``, so no voluntary disruption evicts a replica while its model loads (spot interruptions still do). Unset: on for GPU groups, off for CPU groups."""
    startup_time: Duration | None = None
    """How long after a pod starts the protection lasts. Unset: each API's own startup budget (``startupProbe`` periodSeconds x failureThreshold), else ``10m``."""


class NodeGroupConfig(_Model):
    """One node group: an EKS managed node group, or a Karpenter NodePool on a ``capacityEngine: karpenter`` cluster (on an existing cluster, a description of a pool that is there): an entry of ``modelplane:nodeGroups``, keyed by its name."""

    instance_types: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")]] = Field(
        min_length=1, max_length=20)
    """EC2 instance types, most preferred first (several types make spot capacity easier to get). Required."""
    gpu: bool = False
    """NVIDIA GPU nodes: NVIDIA AMI, ``nvidia.com/gpu`` taint, GPU labels, device plugin."""
    capacity_type: CapacityType = "onDemand"
    """``onDemand``, ``spot``, or ``spotWithFallback``: spot first, on-demand when spot cannot be had (Karpenter: one NodePool allowing both capacity types; managed node groups: a second, on-demand group ``<name>-on-demand`` that the cluster autoscaler's priority expander uses only when the spot group cannot grow)."""
    min_size: int = Field(1, ge=0, le=1000)
    """Minimum nodes; 0 lets the group scale from zero. Managed node groups only: Karpenter launches nodes for pending pods (the APIs' minReplicas keep them)."""
    desired_size: int | None = Field(None, ge=0, le=1000)
    """Nodes at creation (default: ``minSize``). Ignored afterwards: the cluster autoscaler owns it. Managed node groups only."""
    max_size: int = Field(3, ge=1, le=1000)
    """Maximum nodes."""
    disk_size_gib: int = Field(100, ge=20, le=16384)
    """Root volume size in GiB (encrypted gp3); model images are large."""
    ami_type: Literal[GPU_AMI_TYPES + CPU_AMI_TYPES] | None = None  # type: ignore[valid-type]
    """EKS AMI type (default: AL2023 for the instance types' architecture, NVIDIA variant for GPU groups; Bottlerocket for ARM GPUs)."""
    gpus_per_node: int | None = Field(None, ge=1, le=16)
    """GPUs each node advertises (``nvidia.com/gpu``). Default: the smallest of its instance types' GPU count; set it when the device plugin shares GPUs (time-slicing, MIG) and advertises another count."""
    gpu_taint: bool = True
    """Give GPU nodes the ``nvidia.com/gpu=true:NoSchedule`` taint so only GPU APIs land there."""
    labels: dict[LabelKey, LabelValue] = {}
    """Extra Kubernetes labels on the nodes. On an existing cluster: labels the pool's nodes carry, which the APIs select them by (default ``modelplane.io/node-group: <name>``)."""
    taints: list[TaintConfig] = []
    """Extra Kubernetes taints on the nodes (on an existing cluster: the taints the pool's nodes carry); APIs on this group tolerate them."""
    disruption: DisruptionConfig = DisruptionConfig()
    """When Karpenter may disrupt the group's nodes (``cluster.capacityEngine: karpenter`` only); the defaults are GPU-safe for GPU groups."""


def ami_architecture(ami_type: str) -> str:
    """``arm64`` or ``x86_64``: the CPU architecture an EKS AMI type is built for."""
    return "arm64" if "ARM_64" in ami_type else "x86_64"


def default_ami_type(group: NodeGroupConfig) -> str:
    """The AMI type a group gets: stated, else AL2023 for its architecture (Bottlerocket for ARM GPUs)."""
    if group.ami_type is not None:
        return group.ami_type
    arm = catalog.architecture(group.instance_types[0]) == "arm64"
    if group.gpu:
        return "BOTTLEROCKET_ARM_64_NVIDIA" if arm else "AL2023_x86_64_NVIDIA"
    return "AL2023_ARM_64_STANDARD" if arm else "AL2023_x86_64_STANDARD"


@dataclass(frozen=True)
class Disruption:
    """A group's disruption settings with the defaults for its kind (GPU or CPU) filled in."""

    consolidation_policy: str
    consolidate_after: str
    budgets: tuple[DisruptionBudgetConfig, ...]
    protect_starting_pods: bool
    startup_time: str | None
    """None: each API's own startup budget."""


def effective_disruption(group: NodeGroupConfig) -> Disruption:
    """The disruption settings a group gets: stated, else GPU-safe defaults for GPU groups and Karpenter's for CPU groups."""
    d = group.disruption
    return Disruption(
        consolidation_policy=d.consolidation_policy or ("WhenEmpty" if group.gpu else "WhenEmptyOrUnderutilized"),
        consolidate_after=d.consolidate_after or ("10m" if group.gpu else "1m"),
        budgets=tuple(d.budgets) if d.budgets is not None else (
            DisruptionBudgetConfig(nodes="1" if group.gpu else "10%"),),
        protect_starting_pods=d.protect_starting_pods if d.protect_starting_pods is not None else group.gpu,
        startup_time=d.startup_time,
    )


def gpus_per_node(group: NodeGroupConfig) -> int:
    """GPUs per node of a group: stated, else the smallest of its known instance types."""
    if not group.gpu:
        return 0
    if group.gpus_per_node is not None:
        return group.gpus_per_node
    known = [catalog.lookup(t) for t in group.instance_types]
    return min((t.gpus for t in known if t is not None), default=0)


def _check_node_group(group: NodeGroupConfig, path: tuple[str | int, ...],
                      engine: str = "managedNodeGroups") -> Iterator[Issue]:
    """The rules of one group; ``engine`` is the cluster's capacity engine, or ``existing`` for an existing cluster's pool."""
    yield from _check_engine(group, path, engine)
    if group.min_size > group.max_size:
        yield Issue(path + ("minSize",), f"minSize {group.min_size} is greater than maxSize {group.max_size}")
    if group.desired_size is not None and not group.min_size <= group.desired_size <= group.max_size:
        yield Issue(path + ("desiredSize",), f"desiredSize {group.desired_size} must lie between minSize "
                                             f"{group.min_size} and maxSize {group.max_size}")
    arches = {catalog.architecture(t) for t in group.instance_types}
    if len(arches) > 1:
        yield Issue(path + ("instanceTypes",), f"mixes x86_64 and arm64 (Graviton) types {group.instance_types}; "
                                               "one group runs one AMI, so use one architecture")
    if group.ami_type is not None:
        wanted = GPU_AMI_TYPES if group.gpu else CPU_AMI_TYPES
        if group.ami_type not in wanted:
            yield Issue(path + ("amiType",), f"{group.ami_type} does not suit a {'GPU' if group.gpu else 'CPU'} "
                                             f"group; use one of {', '.join(wanted)}")
        elif len(arches) == 1 and ami_architecture(group.ami_type) not in arches:
            fitting = ", ".join(t for t in wanted if ami_architecture(t) in arches)
            yield Issue(path + ("amiType",), f"{group.ami_type} is an {ami_architecture(group.ami_type)} AMI but "
                                             f"the instance types are {arches.pop()}; use one of {fitting}")
    for index, name in enumerate(group.instance_types):
        if catalog.lookup(name) is None:
            yield unknown_type_issue(name, path + ("instanceTypes", index))
    if not group.gpu:
        if group.gpus_per_node is not None:
            yield Issue(path + ("gpusPerNode",), "only applies to GPU groups (`gpu: true`)")
        return
    for index, name in enumerate(group.instance_types):
        known = catalog.lookup(name)
        if known is not None and known.gpus == 0:
            yield Issue(path + ("instanceTypes", index), f"{name} has no GPU; a GPU group needs GPU "
                                                         "instance types (g4dn, g5, g5g, g6, g6e, p3, p4d, p5)")


def _check_engine(group: NodeGroupConfig, path: tuple[str | int, ...], engine: str) -> Iterator[Issue]:
    """What one capacity engine cannot do with a group."""
    if engine == "karpenter":
        for knob in ("min_size", "desired_size"):
            if knob in group.model_fields_set:
                key = "minSize" if knob == "min_size" else "desiredSize"
                yield Issue(path + (key,), "applies to managed node groups; Karpenter launches nodes for pending "
                                           "pods and removes them by the group's disruption settings (the APIs' "
                                           "minReplicas keep nodes up): remove it, or set cluster.capacityEngine: "
                                           "managedNodeGroups")
        budgets = group.disruption.budgets or []
        for index, budget in enumerate(budgets):
            if (budget.schedule is None) != (budget.duration is None):
                missing = "duration" if budget.duration is None else "schedule"
                yield Issue(path + ("disruption", "budgets", index, missing),
                            "is required: a budget with a schedule needs a duration, and one with a duration a "
                            "schedule (or give neither for a budget that always applies)")
        startup = group.disruption.startup_time
        if startup is not None and duration_seconds(startup) == 0:
            yield Issue(path + ("disruption", "startupTime"), "must be longer than 0s; to protect no starting pod "
                                                              "set protectStartingPods: false")
        return
    if "disruption" in group.model_fields_set and engine == "existing":
        yield Issue(path + ("disruption",), "configures Karpenter NodePools modelplane creates; an existing "
                                            "cluster's pools are disrupted by whatever manages them: remove it")
    elif "disruption" in group.model_fields_set:
        yield Issue(path + ("disruption",), "applies to Karpenter NodePools (cluster.capacityEngine: karpenter); "
                                            "on managed node groups the cluster autoscaler removes only nodes its "
                                            "pods can leave: remove it, or switch the cluster's capacityEngine")


def unknown_type_issue(name: str, path: tuple[str | int, ...]) -> Issue:
    """The error for an instance type modelplane has no facts for (offline, or EC2 did not answer)."""
    family = name.split(".", 1)[0]
    known = catalog.known_types()
    same_family = [t for t in known if t.split(".", 1)[0] == family]
    valid = (f"known {family} sizes: {', '.join(same_family)}" if same_family else
             f"known families: {', '.join(catalog.families())}")
    return Issue(path, f"modelplane has no facts (vCPUs, memory, GPUs, max pods) for {name!r}"
                       f"{_did_you_mean(name, known)}; {valid}. `pulumi preview` and `pulumi up` with AWS "
                       "credentials ask EC2 for a type the bundled table lacks")
