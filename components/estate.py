"""``Estate``: a whole validated serving estate, built from one stack's config.

``infra/__main__.py`` is three lines because of this: :func:`load_estate`
validates the entire config before anything is registered (in a real
``pulumi up`` a resource the program did not register would be deleted), then
``Estate`` builds the cluster (an EKS cluster it creates, or an existing one),
the node groups and every model API.
"""

from __future__ import annotations

import os

import pulumi

from . import catalog, offline
from .config import NAMESPACE, ConfigError, EstateConfig, Issue, config_from_pulumi, parse_estate
from .existing_cluster import ExistingCluster, ExistingClusterArgs
from .gpu_node_group import GpuNodeGroup
from .model_api import ModelApi, ModelApiArgs, service_url
from .node_group import NodeGroup, NodeGroupArgs
from .placement import Placement
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
    """Node groups modelplane created, by name (GPU groups are :class:`GpuNodeGroup`); none on an existing cluster."""
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

    def __init__(self, name: str, config: EstateConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:Estate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**config.cluster.tags, "modelplane.io/cluster": config.cluster.name}
        self.node_groups = {}
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
                                   load_balancer_controller=config.installs_load_balancer_controller),
                opts=child,
            )
            self.cluster = cluster
            for group, spec in config.node_groups.items():
                component = GpuNodeGroup if spec.gpu else NodeGroup
                self.node_groups[group] = component(
                    group,
                    NodeGroupArgs(cluster=cluster.cluster, node_role=cluster.node_role,
                                  subnet_ids=cluster.private_subnet_ids, spec=spec, group=group, tags=tags),
                    opts=child,
                )
                waits[group] = [self.node_groups[group].managed_node_group]
            self.placements = {group: g.placement for group, g in self.node_groups.items()}
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
        # Service URLs follow from the names alone; no need to wait on 500 component outputs.
        self.api_urls = pulumi.Output.from_input({api: service_url(api, api) for api in self.apis})
        exposed = {api: component.external_url for api, component in self.apis.items()
                   if component.external_url is not None}
        self.external_urls = pulumi.Output.all(**exposed) if exposed else None
        self.register_outputs({"cluster_name": self.cluster_name, "api_urls": self.api_urls,
                               **({"external_urls": self.external_urls} if self.external_urls is not None else {}),
                               **({"kubeconfig": self.kubeconfig} if self.kubeconfig is not None else {})})
