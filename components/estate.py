"""``Estate``: a whole validated serving estate, built from one stack's config.

``infra/__main__.py`` is three lines because of this: :func:`load_estate`
validates the entire config before anything is registered (in a real
``pulumi up`` a resource the program did not register would be deleted), then
``Estate`` builds the cluster (an EKS cluster it creates, or an existing one),
the node groups and every model API.
"""

from __future__ import annotations

import os
from typing import Any

import pulumi

from . import catalog, offline
from .config import FALLBACK_SUFFIX, NAMESPACE, ConfigError, EstateConfig, Issue, config_from_pulumi, parse_estate
from .existing_cluster import ExistingCluster, ExistingClusterArgs
from .gpu_node_group import GpuNodeGroup
from .karpenter_node_pool import KarpenterNodePool, KarpenterNodePoolArgs
from .model_api import ModelApi, ModelApiArgs, service_url
from .node_group import NodeGroup, NodeGroupArgs
from .placement import Placement
from .platform_reference import platform_output
from .serving_cluster import ServingCluster, ServingClusterArgs

__all__ = ["Estate", "load_estate"]


def load_estate() -> EstateConfig:
    """The running stack's estate config, validated whole; a config error stops the program cleanly."""
    import pulumi.runtime.config as runtime_config

    source = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
    config = config_from_pulumi()
    from_env = set(runtime_config.get_config_secret_keys_env())
    secret_keys = {k for k in config if k in from_env or runtime_config.is_config_secret(k)}
    if not offline.active():
        _learn_instance_types(config)
    try:
        estate = parse_estate(config, source, secret_keys)
        if not offline.active():
            _check_this_machine(estate)
            # The same warnings `modelplane plan` prints, in the engine's log: `pulumi preview` shows them.
            for warning in estate.warnings:
                pulumi.log.warn(warning)
        return estate
    except ConfigError as exc:
        # RunError is reported by the Pulumi CLI as a message, without a traceback.
        raise pulumi.RunError(exc.render()) from None


def _learn_instance_types(config: dict[str, object]) -> None:
    """Ask EC2 for the facts of the stack's instance types the bundled table lacks (real runs only).

    Read from the raw config before it is validated, so that validation judges every type with
    facts; a type EC2 cannot describe (no credentials, a typo) stays unknown and validation says so.
    """
    names: list[str] = []
    groups = config.get(f"{NAMESPACE}:nodeGroups")
    for group in groups.values() if isinstance(groups, dict) else ():
        types = group.get("instanceTypes") if isinstance(group, dict) else None
        names += [t for t in types if isinstance(t, str)] if isinstance(types, list) else []
    cluster = config.get(f"{NAMESPACE}:cluster")
    system = cluster.get("systemNodeGroup") if isinstance(cluster, dict) else None
    if isinstance(system, dict) and isinstance(system.get("instanceType"), str):
        names.append(system["instanceType"])
    unknown = [n for n in names if catalog.lookup(n) is None]
    if not unknown:
        return
    region = config.get("aws:region")
    catalog.learn_from_aws(unknown, region if isinstance(region, str) else None)


def _check_this_machine(estate: EstateConfig) -> None:
    """What only the machine running ``pulumi`` can tell: the kubeconfig file it is to read exists.

    Offline runs never read it. Without this, the provider takes a missing path for kubeconfig
    contents and reports an unreachable cluster and a JSON error.
    """
    existing = estate.existing
    if existing is None or existing.kubeconfig_path is None:
        return
    if not os.path.isfile(os.path.expanduser(existing.kubeconfig_path)):
        raise ConfigError(estate.source, [Issue(
            (f"{NAMESPACE}:cluster", "existing", "kubeconfigPath"),
            f"{existing.kubeconfig_path!r} is not a file on this machine (the one running pulumi reads it); "
            "fix the path, or store the kubeconfig itself as a secret (existing.kubeconfig)")])


class Estate(pulumi.ComponentResource):
    """The cluster, its node groups and its model APIs, as one stack file describes them."""

    cluster: ServingCluster | ExistingCluster
    """The cluster: created (:class:`ServingCluster`) or existing (:class:`ExistingCluster`)."""
    node_groups: dict[str, NodeGroup]
    """Managed node groups modelplane created, by resource name (GPU groups are :class:`GpuNodeGroup`; a
    ``spotWithFallback`` group's on-demand fallback is ``<group>-on-demand``); none on an existing cluster."""
    node_pools: dict[str, KarpenterNodePool]
    """Karpenter node pools modelplane created, by group name (``capacityEngine: karpenter``)."""
    placements: dict[str, Placement]
    """Where each node group's pods go (selector, tolerations), by group name."""
    apis: dict[str, ModelApi]
    """Model APIs by name."""
    cluster_name: pulumi.Output[str]
    """The cluster's name."""
    kubeconfig: pulumi.Output[str] | None
    """Kubeconfig of a created cluster (secret); None for an existing one (you have it already)."""
    api_urls: pulumi.Output[dict[str, str]]
    """In-cluster URL of each API."""
    external_urls: pulumi.Output[dict[str, str]] | None
    """URL of each exposed API through its load balancer; None when no API is exposed."""
    platform: dict[str, Any]
    """The cluster and node groups as other stacks' :class:`~modelplane.PlatformReference` reads them."""

    def __init__(self, name: str, config: EstateConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:Estate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**config.cluster.tags, "modelplane.io/cluster": config.cluster.name}
        self.node_groups = {}
        self.node_pools = {}
        waits: dict[str, list[pulumi.Resource]] = {}
        if config.existing is not None:
            self.placements = {group: Placement.for_existing_pool(group, spec)
                               for group, spec in config.node_groups.items()}
            self.cluster = ExistingCluster(
                config.cluster.name,
                ExistingClusterArgs(spec=config.cluster, region=config.region,
                                    gpu_pools=[p for p in self.placements.values() if p.gpu],
                                    keda=config.installs_keda, prometheus=config.installs_prometheus,
                                    nvidia_device_plugin=config.installs_device_plugin,
                                    cluster_autoscaler=config.installs_cluster_autoscaler,
                                    load_balancer_controller=config.installs_load_balancer_controller, tags=tags),
                opts=child,
            )
            self.kubeconfig = None
        else:
            assert config.region is not None
            cluster = ServingCluster(
                config.cluster.name,
                ServingClusterArgs(spec=config.cluster, region=config.region,
                                   nvidia_device_plugin=config.installs_device_plugin,
                                   keda=config.installs_keda, prometheus=config.installs_prometheus,
                                   load_balancer_controller=config.installs_load_balancer_controller,
                                   spot_first_groups=config.spot_first_managed_groups),
                opts=child,
            )
            self.cluster = cluster
            self.placements = {}
            for group, spec in config.node_groups.items():
                if cluster.karpenter is not None:
                    pool = KarpenterNodePool(
                        group,
                        KarpenterNodePoolArgs(spec=spec, cluster_name=config.cluster.name,
                                              node_role_name=cluster.karpenter.node_role.name,
                                              controller=cluster.karpenter.release,
                                              subnet_ids=cluster.subnet_ids_for_pools, group=group, tags=tags,
                                              provider=cluster.provider),
                        opts=child,
                    )
                    self.node_pools[group] = pool
                    self.placements[group] = pool.placement
                    waits[group] = [pool.node_pool]
                    continue
                component = GpuNodeGroup if spec.gpu else NodeGroup
                # A spot-first group: the spot group keeps the group's name (and identity); an on-demand twin
                # with the same labels and taints is there for when spot cannot be had.
                members = {group: spec}
                if spec.capacity_type == "spotWithFallback":
                    members[f"{group}{FALLBACK_SUFFIX}"] = spec.model_copy(update={
                        "capacity_type": "onDemand", "min_size": 0, "desired_size": None})
                for resource_name, member in members.items():
                    self.node_groups[resource_name] = component(
                        resource_name,
                        NodeGroupArgs(cluster=cluster.cluster, node_role=cluster.node_role,
                                      subnet_ids=cluster.private_subnet_ids, spec=member, group=group, tags=tags),
                        opts=child,
                    )
                    waits.setdefault(group, []).append(self.node_groups[resource_name].managed_node_group)
                self.placements[group] = self.node_groups[group].placement
            self.kubeconfig = cluster.kubeconfig
        context = self.cluster.context
        self.apis = {}
        for api, spec in config.apis.items():
            self.apis[api] = ModelApi(
                api,
                ModelApiArgs(spec=spec, placement=self.placements[spec.node_group], cluster=context, tags=tags),
                opts=pulumi.ResourceOptions(parent=self, depends_on=waits.get(spec.node_group, [])),
            )
        self.cluster_name = self.cluster.cluster_name
        self.platform = platform_output(context, self.placements)
        # Service URLs follow from the names alone; no need to wait on 500 component outputs.
        self.api_urls = pulumi.Output.from_input({api: service_url(api, api) for api in self.apis})
        exposed = {api: component.external_url for api, component in self.apis.items()
                   if component.external_url is not None}
        self.external_urls = pulumi.Output.all(**exposed) if exposed else None
        self.register_outputs({"cluster_name": self.cluster_name, "api_urls": self.api_urls,
                               **({"external_urls": self.external_urls} if self.external_urls is not None else {}),
                               **({"kubeconfig": self.kubeconfig} if self.kubeconfig is not None else {})})
