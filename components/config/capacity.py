"""The GPUs a group's APIs use at peak, with a rollout's surge (the plan's GPU column; the headroom rule that
bin-packs every resource is :func:`.schedulability.headroom_warnings`)."""

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
