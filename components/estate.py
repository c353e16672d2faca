"""``Estate``: a whole validated serving estate, built from one stack's config.

``infra/__main__.py`` is three lines because of this: :func:`load_estate`
validates the entire config before anything is registered (in a real
``pulumi up`` a resource the program did not register would be deleted), then
``Estate`` builds the cluster, the node groups and every model API.
"""

from __future__ import annotations

import pulumi

from .config import ConfigError, EstateConfig, api_gpus, config_from_pulumi, parse_estate
from .gpu_node_group import GpuNodeGroup
from .model_api import ModelApi, ModelApiArgs, service_url
from .node_group import NodeGroup, NodeGroupArgs, ami_type
from .serving_cluster import ServingCluster, ServingClusterArgs

__all__ = ["Estate", "load_estate"]


def load_estate() -> EstateConfig:
    """The running stack's estate config, validated whole; a config error stops the program cleanly."""
    source = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
    try:
        return parse_estate(config_from_pulumi(), source)
    except ConfigError as exc:
        # RunError is reported by the Pulumi CLI as a message, without a traceback.
        raise pulumi.RunError(exc.render()) from None


class Estate(pulumi.ComponentResource):
    """The EKS cluster, its node groups and its model APIs, as one stack file describes them."""

    cluster: ServingCluster
    """The cluster."""
    node_groups: dict[str, NodeGroup]
    """Node groups by name (GPU groups are :class:`GpuNodeGroup`)."""
    apis: dict[str, ModelApi]
    """Model APIs by name."""
    cluster_name: pulumi.Output[str]
    """EKS cluster name."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig of the cluster (secret)."""
    api_urls: pulumi.Output[dict[str, str]]
    """In-cluster URL of each API."""

    def __init__(self, name: str, config: EstateConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:Estate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        needs_device_plugin = any(g.gpu and ami_type(g).startswith("AL2023") for g in config.node_groups.values())
        self.cluster = ServingCluster(
            config.cluster.name,
            ServingClusterArgs(spec=config.cluster, region=config.region, nvidia_device_plugin=needs_device_plugin,
                               keda=config.needs_keda, prometheus=config.installs_prometheus),
            opts=child,
        )
        tags = {**config.cluster.tags, "modelplane.io/cluster": config.cluster.name}
        self.node_groups = {}
        for group, spec in config.node_groups.items():
            component = GpuNodeGroup if spec.gpu else NodeGroup
            self.node_groups[group] = component(
                group,
                NodeGroupArgs(cluster=self.cluster.cluster, node_role=self.cluster.node_role,
                              subnet_ids=self.cluster.private_subnet_ids, spec=spec, group=group, tags=tags),
                opts=child,
            )
        self.apis = {}
        for api, spec in config.apis.items():
            group = self.node_groups[spec.node_group]
            # A GPU replica can only start once the device plugin advertises the node's GPUs.
            gpu_ready = [self.cluster.device_plugin] if api_gpus(spec) and self.cluster.device_plugin else []
            self.apis[api] = ModelApi(
                api,
                ModelApiArgs(spec=spec, placement=group.placement,
                             labels={"app.kubernetes.io/part-of": config.cluster.name},
                             oidc_provider_arn=self.cluster.oidc_provider_arn,
                             oidc_provider_url=self.cluster.oidc_provider_url, tags=tags,
                             region=config.region, cluster_name=config.cluster.name,
                             prometheus_url=self.cluster.prometheus_url,
                             pod_monitor=config.installs_prometheus,
                             keda_role_name=self.cluster.keda_role.name if self.cluster.keda_role else None,
                             kubernetes_version=config.cluster.kubernetes_version,
                             # The KEDA and Prometheus Operator releases bring the CRDs its objects use.
                             addons=self.cluster.autoscaling_addons),
                opts=pulumi.ResourceOptions(parent=self, providers=[self.cluster.provider],
                                            depends_on=[group.managed_node_group, *gpu_ready]),
            )
        self.cluster_name = self.cluster.cluster_name
        self.kubeconfig = self.cluster.kubeconfig
        # Service URLs follow from the names alone; no need to wait on 500 component outputs.
        self.api_urls = pulumi.Output.from_input({api: service_url(api, api) for api in self.apis})
        self.register_outputs({"cluster_name": self.cluster_name, "kubeconfig": self.kubeconfig,
                               "api_urls": self.api_urls})
