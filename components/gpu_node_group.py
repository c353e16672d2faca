"""``GpuNodeGroup``: a managed node group of NVIDIA GPU nodes (NVIDIA AMI,
``nvidia.com/gpu`` taint and labels, on-demand or spot, scaling from zero)."""

from __future__ import annotations

from typing import ClassVar

import pulumi

from .config import gpus_per_node
from .node_group import NodeGroup, NodeGroupArgs

__all__ = ["GpuNodeGroup"]


class GpuNodeGroup(NodeGroup):
    """A :class:`NodeGroup` whose nodes carry NVIDIA GPUs."""

    type_token: ClassVar[str] = "modelplane:index:GpuNodeGroup"

    gpus_per_node: int
    """GPUs on each node (from the instance catalog or ``gpusPerNode``)."""

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if not args.spec.gpu:
            raise ValueError(f"GpuNodeGroup {name!r} needs a spec with gpu: true")
        self.gpus_per_node = gpus_per_node(args.spec)
        super().__init__(name, args, opts)
