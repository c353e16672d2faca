"""``ServingCluster``: the EKS cluster that model APIs run on.

Children: the VPC (unless an existing one is given), a KMS key for secrets
envelope encryption, the node IAM role, the ``pulumi_eks.Cluster`` (no default
node group, OIDC provider for IRSA, control-plane logs), a small on-demand
system node group, the Kubernetes provider every in-cluster resource uses, the
cluster autoscaler (so node groups scale, from zero too) and, when GPU groups
need it, the NVIDIA device plugin. When model APIs need them: KEDA (with an
IAM role for SQS depth and Amazon Managed Prometheus queries), a
kube-prometheus-stack Prometheus that scrapes the request proxies, and the AWS
Load Balancer Controller (with its IAM role) for exposed APIs. With
``capacityEngine: karpenter``: the Karpenter controller, its IAM roles and its
interruption queue (see :mod:`modelplane.karpenter`), the private subnets
tagged for its discovery; the estate then makes a :class:`KarpenterNodePool` per group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from . import addons
from .addons import PROMETHEUS_URL
from .charts import CHARTS, chart_version
from .cluster_context import ClusterContext, kubernetes_provider
from .config import ClusterConfig, NodeGroupConfig, scraper_peers
from .karpenter import DISCOVERY_TAG, Karpenter, install_karpenter
from .irsa import node_role
from .network import build_network
from .node_group import NodeGroup, NodeGroupArgs
from .placement import NODE_GROUP_LABEL

__all__ = ["CHARTS", "PROMETHEUS_URL", "SYSTEM_GROUP", "ServingCluster", "ServingClusterArgs", "chart_version"]

SYSTEM_GROUP = "system"
"""Node-group label value of the system node group; add-ons are pinned to it."""



@dataclass
class ServingClusterArgs:
    """Inputs of a :class:`ServingCluster`."""

    spec: ClusterConfig
    """The cluster as the stack file declares it."""
    region: str
    """AWS region (used by the cluster autoscaler)."""
    nvidia_device_plugin: bool = False
    """Install the NVIDIA device plugin (AL2023 NVIDIA AMIs need it; Bottlerocket ships it). Default: off."""
    cluster_autoscaler: bool = True
    """Install the cluster autoscaler, which scales node groups (from zero too). Default: on."""
    keda: bool = False
    """Install KEDA, which scales APIs on requests, queues and custom metrics, and to zero. Default: off."""
    prometheus: bool = False
    """Install kube-prometheus-stack (Prometheus Operator and a Prometheus that scrapes every PodMonitor)."""
    load_balancer_controller: bool = False
    """Install the AWS Load Balancer Controller, which makes the load balancers of exposed APIs. Default: off."""
    spot_first_groups: list[str] = field(default_factory=list)
    """Managed ``spotWithFallback`` groups: the cluster autoscaler grows their spot group before its on-demand fallback."""


class ServingCluster(pulumi.ComponentResource):
    """An EKS cluster ready to serve models."""

    cluster: eks.Cluster
    """The pulumi-eks cluster."""
    provider: k8s.Provider
    """Kubernetes provider for everything inside the cluster."""
    node_role: aws.iam.Role
    """IAM role shared by the managed node groups."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Subnets node groups go in."""
    cluster_name: pulumi.Output[str]
    """The EKS cluster name."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig (JSON) for the cluster; a secret."""
    oidc_provider_arn: pulumi.Output[str]
    """ARN of the cluster's IAM OIDC provider, for service-account roles."""
    oidc_provider_url: pulumi.Output[str]
    """Issuer URL of the cluster's OIDC provider."""
    keda_role: aws.iam.Role | None
    """The KEDA operator's IAM role (None without KEDA); APIs attach the queue permissions they need."""
    prometheus_url: str | None
    """Prometheus address for KEDA: the installed one, the configured ``prometheus.url``, or None."""
    autoscaling_addons: list[pulumi.Resource]
    """Releases whose CRDs model APIs use (KEDA, Prometheus Operator): APIs wait for them."""
    device_plugin: k8s.helm.v3.Release | None
    """The NVIDIA device plugin release (None when no GPU group needs it); GPU APIs wait for it."""
    load_balancer_controller: k8s.helm.v3.Release | None
    """The AWS Load Balancer Controller release (None when no API is exposed); Ingresses wait for it."""
    context: ClusterContext
    """The cluster as its model APIs see it."""
    karpenter: Karpenter | None
    """The Karpenter install (``capacityEngine: karpenter``), which node pools use; None for managed node groups."""
    subnet_ids_for_pools: list[pulumi.Input[str]] | None
    """Subnets Karpenter launches into by id (an existing VPC's); None: the private subnets carry its discovery tag."""

    def __init__(self, name: str, args: ServingClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:ServingCluster", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        tags = {**spec.tags, "modelplane.io/cluster": spec.name}

        karpenter = spec.capacity_engine == "karpenter"
        network = build_network(name, spec.vpc, spec.name, tags, parent=self,
                                private_subnet_tags={DISCOVERY_TAG: spec.name} if karpenter else None)
        secrets_key = aws.kms.Key(f"{name}-secrets", description=f"EKS secrets encryption for {spec.name}",
                                  enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=child)
        self.node_role = node_role(f"{name}-node", tags, pulumi.ResourceOptions(parent=self))

        endpoint = spec.endpoint
        self.cluster = eks.Cluster(
            name,
            name=spec.name,
            version=spec.kubernetes_version,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            public_subnet_ids=network.public_subnet_ids or None,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            create_oidc_provider=True,
            authentication_mode="API",
            endpoint_public_access=endpoint.public,
            endpoint_private_access=endpoint.private,
            public_access_cidrs=[str(c) for c in endpoint.public_access_cidrs] if endpoint.public else None,
            enabled_cluster_log_types=list(spec.log_types),
            encryption_config_key_arn=secrets_key.arn,
            # The VPC CNI enforces the APIs' NetworkPolicies only with its network policy agent on.
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
            deletion_protection=spec.deletion_protection,
            tags=tags,
            opts=child,
        )
        self.private_subnet_ids = pulumi.Output.all(*network.private_subnet_ids)
        self.cluster_name = pulumi.Output.from_input(spec.name)
        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig_json)
        self.oidc_provider_arn = self.cluster.oidc_provider_arn
        self.oidc_provider_url = self.cluster.oidc_provider_url

        system = spec.system_node_group
        system_group = NodeGroup(
            f"{name}-system",
            NodeGroupArgs(
                cluster=self.cluster, node_role=self.node_role, subnet_ids=self.private_subnet_ids,
                group=SYSTEM_GROUP, tags=tags,
                spec=NodeGroupConfig.model_validate({
                    "instanceTypes": [system.instance_type], "minSize": system.min_size,
                    "maxSize": system.max_size, "diskSizeGib": 50}),
            ),
            opts=child,
        )
        self.provider = kubernetes_provider(f"{name}-k8s", self.cluster.kubeconfig_json, child)
        add_on = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[system_group])
        on_system = {NODE_GROUP_LABEL: SYSTEM_GROUP}
        if args.cluster_autoscaler:
            # With Karpenter it scales the system group only (the one managed node group).
            addons.cluster_autoscaler(name, spec, args.region, self.oidc_provider_arn, self.oidc_provider_url,
                                      tags, on_system, add_on, spot_first=args.spot_first_groups)
        self.karpenter = install_karpenter(
            name, spec, args.region, self.oidc_provider_arn, self.oidc_provider_url, tags, on_system, add_on,
            eks_cluster=self.cluster) if karpenter else None
        self.subnet_ids_for_pools = list(network.private_subnet_ids) if karpenter and spec.vpc.id is not None else None
        self.device_plugin = addons.nvidia_device_plugin(name, spec, add_on) if args.nvidia_device_plugin else None
        self.keda_role = None
        self.autoscaling_addons = []
        if args.keda:
            self.keda_role, keda = addons.keda(name, spec, (self.oidc_provider_arn, self.oidc_provider_url), tags,
                                               on_system, add_on)
            self.autoscaling_addons.append(keda)
        self.load_balancer_controller = addons.load_balancer_controller(
            name, spec, args.region, network.vpc_id, self.oidc_provider_arn, self.oidc_provider_url, tags, on_system,
            add_on) if args.load_balancer_controller else None
        self.prometheus_url = spec.prometheus.url
        if args.prometheus:
            self.autoscaling_addons.append(addons.prometheus(name, spec, on_system, add_on))
            self.prometheus_url = PROMETHEUS_URL
        self.context = ClusterContext(
            name=spec.name, kubernetes_version=spec.kubernetes_version, provider=self.provider, region=args.region,
            oidc_provider_arn=self.oidc_provider_arn, oidc_provider_url=self.oidc_provider_url,
            prometheus_url=self.prometheus_url, pod_monitors=args.prometheus,
            keda_role_name=self.keda_role.name if self.keda_role is not None else None,
            crd_releases=list(self.autoscaling_addons), device_plugin=self.device_plugin,
            metrics_scrapers=scraper_peers(spec, args.prometheus),
            load_balancer_cidrs=[str(spec.vpc.cidr) if spec.vpc.id is None
                                 else aws.ec2.get_vpc_output(id=spec.vpc.id).cidr_block],
            load_balancer_controller=self.load_balancer_controller)

        self.register_outputs({
            "private_subnet_ids": self.private_subnet_ids,
            "cluster_name": self.cluster_name,
            "kubeconfig": self.kubeconfig,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_provider_url": self.oidc_provider_url,
        })


