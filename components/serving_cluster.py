"""``ServingCluster``: the EKS cluster that model APIs run on.

Children: the VPC (unless an existing one is given), a KMS key for secrets
envelope encryption, the node IAM role, the ``pulumi_eks.Cluster`` (no default
node group, OIDC provider for IRSA, control-plane logs), a small on-demand
system node group, the Kubernetes provider every in-cluster resource uses, the
cluster autoscaler (so node groups scale, from zero too) and, when GPU groups
need it, the NVIDIA device plugin. When model APIs need them: KEDA (with an
IAM role for SQS depth and Amazon Managed Prometheus queries) and a
kube-prometheus-stack Prometheus that scrapes the request proxies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from .config import KUBERNETES_VERSIONS, SCRAPE_INTERVAL_SECONDS, ClusterConfig, NodeGroupConfig, amp_workspace
from .network import build_network
from .node_group import NodeGroup, NodeGroupArgs
from .irsa import service_account_role
from .placement import NODE_GROUP_LABEL

__all__ = ["AUTOSCALER_IMAGES", "CHARTS", "PROMETHEUS_URL", "SYSTEM_GROUP", "ServingCluster", "ServingClusterArgs",
           "chart_version"]

SYSTEM_GROUP = "system"
"""Node-group label value of the system node group; add-ons are pinned to it."""

CHARTS: dict[str, tuple[str, str | dict[str, str]]] = {
    # The newest chart whose appVersion is that minor's autoscaler. Charts before 9.46.3 lack the
    # volumeattachments RBAC that autoscaler 1.32+ needs (kubernetes/autoscaler#7663): with them it
    # runs but never scales.
    "cluster-autoscaler": ("https://kubernetes.github.io/autoscaler", {
        "1.31": "9.43.1", "1.32": "9.46.6", "1.33": "9.51.0", "1.34": "9.53.0", "1.35": "9.59.0"}),
    "nvidia-device-plugin": ("https://nvidia.github.io/k8s-device-plugin", "0.17.1"),
    # The newest KEDA release tested against that minor (KEDA's compatibility table).
    "keda": ("https://kedacore.github.io/charts", {
        "1.31": "2.18.2", "1.32": "2.19.0", "1.33": "2.20.2", "1.34": "2.20.2", "1.35": "2.20.2"}),
    "kube-prometheus-stack": ("https://prometheus-community.github.io/helm-charts", "88.5.3"),
}
"""Helm charts the cluster installs: name -> (repository, pinned chart version).

Add-ons tied to the control plane's version pin one chart version per Kubernetes minor."""


def chart_version(chart: str, kubernetes_version: str) -> str:
    """The pinned version of one of :data:`CHARTS` for a cluster of ``kubernetes_version``."""
    pinned = CHARTS[chart][1]
    return pinned if isinstance(pinned, str) else pinned[kubernetes_version]


AUTOSCALER_IMAGES = {"1.31": "v1.31.0", "1.32": "v1.32.0", "1.33": "v1.33.0", "1.34": "v1.34.2", "1.35": "v1.35.0"}
"""Cluster-autoscaler image per minor: each chart's own default tag, pinned here so a chart bump cannot move it."""

assert all(set(pinned) == set(KUBERNETES_VERSIONS) for _, pinned in CHARTS.values() if isinstance(pinned, dict))
assert set(AUTOSCALER_IMAGES) == set(KUBERNETES_VERSIONS)

MONITORING_NAMESPACE = "monitoring"
_PROMETHEUS_NAME = "kube-prometheus"
PROMETHEUS_URL = f"http://{_PROMETHEUS_NAME}-prometheus.{MONITORING_NAMESPACE}.svc:9090"
"""In-cluster address of the Prometheus the cluster installs (the chart's ``fullnameOverride`` fixes it)."""

_KEDA_SA = ("keda", "keda-operator")

_NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)

_AUTOSCALER_SA = ("kube-system", "cluster-autoscaler")


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

    def __init__(self, name: str, args: ServingClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:ServingCluster", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        tags = {**spec.tags, "modelplane.io/cluster": spec.name}

        network = build_network(name, spec.vpc, spec.name, tags, parent=self)
        secrets_key = aws.kms.Key(f"{name}-secrets", description=f"EKS secrets encryption for {spec.name}",
                                  enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=child)
        self.node_role = _node_role(name, tags, parent=self)

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
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.cluster.kubeconfig_json,
                                     enable_server_side_apply=True, opts=child)
        add_on = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[system_group])
        if args.cluster_autoscaler:
            _cluster_autoscaler(name, spec, args.region, self.oidc_provider_arn, self.oidc_provider_url,
                                tags, add_on)
        self.device_plugin = _nvidia_device_plugin(name, spec.kubernetes_version, add_on) if args.nvidia_device_plugin else None
        self.keda_role = None
        self.autoscaling_addons = []
        if args.keda:
            self.keda_role, keda = _keda(name, spec, self.oidc_provider_arn, self.oidc_provider_url, tags, add_on)
            self.autoscaling_addons.append(keda)
        self.prometheus_url = spec.prometheus.url
        if args.prometheus:
            self.autoscaling_addons.append(_prometheus(name, spec, add_on))
            self.prometheus_url = PROMETHEUS_URL

        self.register_outputs({
            "private_subnet_ids": self.private_subnet_ids,
            "cluster_name": self.cluster_name,
            "kubeconfig": self.kubeconfig,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_provider_url": self.oidc_provider_url,
        })


def _node_role(name: str, tags: dict[str, str], parent: pulumi.Resource) -> aws.iam.Role:
    opts = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-node",
        assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "sts:AssumeRole"}],
        }),
        tags=tags,
        opts=opts,
    )
    for policy_arn in _NODE_POLICIES:
        aws.iam.RolePolicyAttachment(f"{name}-node-{policy_arn.rsplit('/', 1)[-1]}", role=role.name,
                                     policy_arn=policy_arn, opts=opts)
    return role


def _cluster_autoscaler(name: str, spec: ClusterConfig, region: str, oidc_arn: pulumi.Input[str],
                        oidc_url: pulumi.Input[str], tags: dict[str, str], opts: pulumi.ResourceOptions) -> None:
    namespace, account = _AUTOSCALER_SA
    role = service_account_role(f"{name}-cluster-autoscaler", namespace, account, oidc_arn, oidc_url, tags,
                                parent=opts.parent)  # type: ignore[arg-type]
    aws.iam.RolePolicy(
        f"{name}-cluster-autoscaler",
        role=role.name,
        policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {
                    # Only the groups EKS tagged as this cluster's may be resized.
                    "Effect": "Allow",
                    "Action": ["autoscaling:SetDesiredCapacity",
                               "autoscaling:TerminateInstanceInAutoScalingGroup"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {
                        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{spec.name}": "owned"}},
                },
                {
                    "Effect": "Allow",
                    "Action": ["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                               "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                               "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                               "ec2:DescribeLaunchTemplateVersions",
                               "ec2:GetInstanceTypesFromInstanceRequirements", "eks:DescribeNodegroup"],
                    "Resource": "*",
                },
            ],
        }),
        opts=pulumi.ResourceOptions(parent=opts.parent),
    )
    _chart_release(
        name, "cluster-autoscaler", namespace,
        {
            "cloudProvider": "aws",
            "awsRegion": region,
            "autoDiscovery": {"clusterName": spec.name},
            # The autoscaler's minor version must match the control plane's.
            "image": {"tag": AUTOSCALER_IMAGES[spec.kubernetes_version]},
            "rbac": {"serviceAccount": {"name": account,
                                        "annotations": {"eks.amazonaws.com/role-arn": role.arn}}},
            "extraArgs": {
                "balance-similar-node-groups": True,
                "skip-nodes-with-system-pods": False,
                "expander": "least-waste",
            },
            "nodeSelector": {NODE_GROUP_LABEL: SYSTEM_GROUP},
        },
        opts, spec.kubernetes_version,
    )


def _keda(name: str, spec: ClusterConfig, oidc_arn: pulumi.Input[str], oidc_url: pulumi.Input[str],
          tags: dict[str, str], opts: pulumi.ResourceOptions) -> tuple[aws.iam.Role, k8s.helm.v3.Release]:
    namespace, account = _KEDA_SA
    role = service_account_role(f"{name}-keda", namespace, account, oidc_arn, oidc_url, tags,
                                parent=opts.parent)  # type: ignore[arg-type]
    workspace = amp_workspace(spec.prometheus.url)
    if workspace is not None:
        region, workspace_id = workspace
        aws.iam.RolePolicy(
            f"{name}-keda-amp-query",
            role=role.name,
            policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": ["aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata"],
                "Resource": f"arn:aws:aps:{region}:*:workspace/{workspace_id}",
            }]}),
            opts=pulumi.ResourceOptions(parent=opts.parent),
        )
    # Queue-depth permissions are attached by each queue API, for its own queue only.
    release = _chart_release(
        name, "keda", namespace,
        {
            "podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": role.arn}}},
            "serviceAccount": {"operator": {"name": account}},
            "nodeSelector": {NODE_GROUP_LABEL: SYSTEM_GROUP},
        },
        opts, spec.kubernetes_version, create_namespace=True,
    )
    return role, release


def _prometheus(name: str, spec: ClusterConfig, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    system = {NODE_GROUP_LABEL: SYSTEM_GROUP}
    return _chart_release(
        name, "kube-prometheus-stack", MONITORING_NAMESPACE,
        {
            "fullnameOverride": _PROMETHEUS_NAME,
            "grafana": {"enabled": False},
            "alertmanager": {"enabled": False},
            # The operator and its webhook-certificate Jobs stay on the system nodes too.
            "prometheusOperator": {"nodeSelector": system,
                                   "admissionWebhooks": {"patch": {"nodeSelector": system}}},
            "kube-state-metrics": {"nodeSelector": system},
            "prometheus": {"prometheusSpec": {
                # Scrape every PodMonitor in the cluster, not only those labelled for this release.
                "podMonitorSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "scrapeInterval": f"{SCRAPE_INTERVAL_SECONDS}s",
                "retention": spec.prometheus.retention,
                "nodeSelector": system,
                "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            }},
        },
        opts, spec.kubernetes_version, create_namespace=True,
    )


def _nvidia_device_plugin(name: str, kubernetes_version: str, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    # GPU groups may carry user taints besides nvidia.com/gpu; the plugin must run on every GPU node.
    return _chart_release(name, "nvidia-device-plugin", "kube-system", {"tolerations": [{"operator": "Exists"}]}, opts,
                          kubernetes_version)


def _chart_release(name: str, chart: str, namespace: str, values: dict[str, Any],
                   opts: pulumi.ResourceOptions, kubernetes_version: str,
                   create_namespace: bool = False) -> k8s.helm.v3.Release:
    """A Helm release of one of :data:`CHARTS`, at its version pinned for ``kubernetes_version``."""
    repository = CHARTS[chart][0]
    return k8s.helm.v3.Release(
        f"{name}-{chart}",
        # A fixed release name: autonaming appends a suffix to a name that embeds the cluster name
        # and can exceed Helm's 53-character limit.
        name=chart,
        chart=chart,
        version=chart_version(chart, kubernetes_version),
        repository_opts={"repo": repository},
        namespace=namespace,
        create_namespace=create_namespace,
        values=values,
        opts=opts,
    )
