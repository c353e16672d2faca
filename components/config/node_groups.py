"""``modelplane:nodeGroups``: node groups (or the pools of an existing cluster), and their rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .. import catalog
from ._base import Issue, LabelKey, LabelValue, _did_you_mean, _Model

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


class NodeGroupConfig(_Model):
    """One EKS managed node group (or, on an existing cluster, a description of a pool that is there): an entry of ``modelplane:nodeGroups``, keyed by its name."""

    instance_types: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")]] = Field(
        min_length=1, max_length=20)
    """EC2 instance types, most preferred first (several types make spot capacity easier to get). Required."""
    gpu: bool = False
    """NVIDIA GPU nodes: NVIDIA AMI, ``nvidia.com/gpu`` taint, GPU labels, device plugin."""
    capacity_type: Literal["onDemand", "spot"] = "onDemand"
    """On-demand or spot capacity."""
    min_size: int = Field(1, ge=0, le=1000)
    """Minimum nodes; 0 lets the group scale from zero."""
    desired_size: int | None = Field(None, ge=0, le=1000)
    """Nodes at creation (default: ``minSize``). Ignored afterwards: the cluster autoscaler owns it."""
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


def gpus_per_node(group: NodeGroupConfig) -> int:
    """GPUs per node of a group: stated, else the smallest of its known instance types."""
    if not group.gpu:
        return 0
    if group.gpus_per_node is not None:
        return group.gpus_per_node
    known = [catalog.lookup(t) for t in group.instance_types]
    return min((t.gpus for t in known if t is not None), default=0)


def _check_node_group(group: NodeGroupConfig, path: tuple[str | int, ...]) -> Iterator[Issue]:
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
