"""Whether the GPU groups hold their APIs at peak, with a rollout's surge."""

from __future__ import annotations

from dataclasses import dataclass

from .apis import ApiConfig, api_gpus, surge_replicas
from .node_groups import NodeGroupConfig, gpus_per_node
from .traffic import second_version_replicas


@dataclass(frozen=True)
class GpuDemand:
    """GPUs a group's APIs need at peak, and what the group can give."""

    steady: int
    """GPUs of all the group's APIs at maxReplicas, with their canaries at maxReplicas and their shadows."""
    surge: int
    """GPUs of the largest single rollout surge at maxReplicas (rollouts of different Deployments rarely overlap)."""
    capacity: int
    """maxSize x GPUs per node."""

    @property
    def fits(self) -> bool:
        return self.steady + self.surge <= self.capacity


def gpu_demand(group_name: str, group: NodeGroupConfig, apis: dict[str, ApiConfig]) -> GpuDemand | None:
    """The GPU demand on ``group`` at peak, or None when it is not a GPU group or no GPU API uses it."""
    on_group = [a for a in apis.values() if a.node_group == group_name and api_gpus(a)]
    per_node = gpus_per_node(group)
    if not per_node or not on_group:
        return None
    # A canary or shadow runs the API's pod spec on the API's group: its GPUs count like the API's own.
    return GpuDemand(
        steady=sum((a.autoscaling.max_replicas + second_version_replicas(a)) * api_gpus(a) for a in on_group),
        surge=max(surge_replicas(a, replicas) * api_gpus(a) for a in on_group
                  for replicas in (a.autoscaling.max_replicas, second_version_replicas(a)) if replicas),
        capacity=group.max_size * per_node,
    )


def gpu_headroom_warnings(groups: dict[str, NodeGroupConfig], apis: dict[str, ApiConfig]) -> list[str]:
    """GPU groups whose maximum size cannot hold their APIs at maxReplicas plus a rollout's surge.

    At that point a rollout's new replicas stay Pending and, with maxUnavailable 0,
    the rollout stalls until its deadline: ``pulumi up`` fails.
    """
    warnings = []
    for name, group in groups.items():
        demand = gpu_demand(name, group, apis)
        if demand is None or demand.fits:
            continue
        per_node = gpus_per_node(group)
        needed = -(-(demand.steady + demand.surge) // per_node)
        warnings.append(
            f"node group {name!r}: its APIs at maxReplicas use {demand.steady} GPU(s) and a rollout surges "
            f"{demand.surge} more, but maxSize {group.max_size} x {per_node} GPU(s) gives {demand.capacity}; "
            f"a rollout at peak load would stall (raise maxSize to {needed} or lower maxReplicas)")
    return warnings
