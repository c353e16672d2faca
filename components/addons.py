"""The cluster add-ons modelplane installs, as pinned Helm releases.

Plain functions in the pulumi-eks manner: each takes the options its
resources go under (parent, Kubernetes provider, what to wait for) and the
node labels its pods are pinned to, so a created EKS cluster
(:class:`~modelplane.ServingCluster`) and an existing cluster
(:class:`~modelplane.ExistingCluster`) install them the same way. Chart
versions come from :mod:`modelplane.charts`; a stack's
``modelplane:cluster.charts`` may point any chart at a mirror or an OCI
registry.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .charts import AUTOSCALER_IMAGES, CHARTS, chart_version
from .config import FALLBACK_SUFFIX, KEDA_NAMESPACE, MONITORING_NAMESPACE, SCRAPE_INTERVAL_SECONDS, ClusterConfig, amp_workspace
from .irsa import service_account_role

__all__ = ["INGRESS_CLASS", "KEDA_SERVICE_ACCOUNT", "LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT", "MONITORING_NAMESPACE",
           "PROMETHEUS_URL", "chart_release", "chart_source", "cluster_autoscaler", "expander_priorities", "keda",
           "load_balancer_controller", "load_balancer_controller_policy", "nvidia_device_plugin", "prometheus"]

_PROMETHEUS_NAME = "kube-prometheus"
PROMETHEUS_URL = f"http://{_PROMETHEUS_NAME}-prometheus.{MONITORING_NAMESPACE}.svc:9090"
"""In-cluster address of the Prometheus the cluster installs (the chart's ``fullnameOverride`` fixes it)."""

KEDA_SERVICE_ACCOUNT = (KEDA_NAMESPACE, "keda-operator")
"""(namespace, service account) of the KEDA operator modelplane installs."""

_AUTOSCALER_SA = ("kube-system", "cluster-autoscaler")

LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT = ("kube-system", "aws-load-balancer-controller")
"""(namespace, service account) of the AWS Load Balancer Controller modelplane installs; its IAM role trusts only it."""

INGRESS_CLASS = "alb"
"""The IngressClass of the AWS Load Balancer Controller (its chart creates it): the class exposed APIs' Ingresses name."""

_OWNER_TAG = "elbv2.k8s.aws/cluster"
"""The tag the controller puts on every AWS resource it creates, with the cluster's name as value."""


def chart_source(cluster: ClusterConfig, chart: str) -> tuple[str, str, dict[str, str] | None]:
    """(chart reference, version, repository options) of one of :data:`~modelplane.charts.CHARTS` for ``cluster``.

    An OCI registry is part of the chart reference (``oci://host/path/<chart>``) and takes no
    repository options; a Helm repository is given as ``repository_opts.repo``.
    """
    override = cluster.charts.get(chart)
    repository = (override.repository if override else None) or CHARTS[chart][0]
    version = (override.version if override else None) or chart_version(chart, cluster.kubernetes_version)
    if repository.startswith("oci://"):
        return f"{repository.rstrip('/')}/{chart}", version, None
    return chart, version, {"repo": repository}


def chart_release(name: str, chart: str, namespace: str, values: dict[str, Any], opts: pulumi.ResourceOptions,
                  cluster: ClusterConfig, create_namespace: bool = False,
                  skip_crds: bool = False) -> k8s.helm.v3.Release:
    """A Helm release of one of the add-on charts, from the source and at the version ``cluster`` gives it.

    ``skip_crds``: leave out the chart's ``crds/`` (another release installs and upgrades them).
    """
    reference, version, repository = chart_source(cluster, chart)
    return k8s.helm.v3.Release(
        f"{name}-{chart}",
        # A fixed release name: autonaming appends a suffix to a name that embeds the cluster name
        # and can exceed Helm's 53-character limit.
        name=chart,
        chart=reference,
        version=version,
        **({"repository_opts": repository} if repository is not None else {}),
        namespace=namespace,
        create_namespace=create_namespace,
        **({"skip_crds": True} if skip_crds else {}),
        values=values,
        opts=opts,
    )


def _pinned(node_selector: dict[str, str]) -> dict[str, Any]:
    """The ``nodeSelector`` value of a chart whose pods go to ``node_selector`` (none: anywhere)."""
    return {"nodeSelector": dict(node_selector)} if node_selector else {}


def cluster_autoscaler(name: str, cluster: ClusterConfig, region: str, oidc_arn: pulumi.Input[str],
                       oidc_url: pulumi.Input[str], tags: dict[str, str], node_selector: dict[str, str],
                       opts: pulumi.ResourceOptions, spot_first: list[str] | None = None) -> k8s.helm.v3.Release:
    """The Kubernetes cluster autoscaler for the EKS cluster ``cluster.name``, with an IRSA role for its groups only.

    ``spot_first`` names the ``spotWithFallback`` groups: the autoscaler then expands by priority
    (:func:`expander_priorities`), growing such a group's spot group first and its on-demand
    fallback only when the spot group cannot grow; ties fall to least-waste as before.
    """
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
                        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster.name}": "owned"}},
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
    return chart_release(
        name, "cluster-autoscaler", namespace,
        {
            "cloudProvider": "aws",
            "awsRegion": region,
            "autoDiscovery": {"clusterName": cluster.name},
            # The autoscaler's minor version must match the control plane's.
            "image": {"tag": AUTOSCALER_IMAGES[cluster.kubernetes_version]},
            "rbac": {"serviceAccount": {"name": account,
                                        "annotations": {"eks.amazonaws.com/role-arn": role.arn}}},
            "extraArgs": {
                "balance-similar-node-groups": True,
                "skip-nodes-with-system-pods": False,
                "expander": "priority,least-waste" if spot_first else "least-waste",
            },
            # The chart writes these into the cluster-autoscaler-priority-expander ConfigMap of its namespace.
            **({"expanderPriorities": expander_priorities(spot_first)} if spot_first else {}),
            **_pinned(node_selector),
        },
        opts, cluster,
    )


_ASG_OF = "^eks-{group}-([0-9a-f]+-)?[0-9a-f]{{8}}-([0-9a-f]{{4}}-){{3}}[0-9a-f]{{12}}$"
"""The Auto Scaling group EKS makes for a managed node group: ``eks-<node group name>-<uuid>``, where the node
group name is the Pulumi name plus its random suffix."""

SPOT_PRIORITY, FALLBACK_PRIORITY, OTHER_PRIORITY = 30, 20, 10
"""Priorities of a spot-first group's spot group, of its on-demand fallback, and of every other group."""


def expander_priorities(spot_first: list[str]) -> dict[str, list[str]]:
    """The priority expander's table: Auto Scaling group name patterns by priority (higher wins).

    Only groups that can hold a pending pod compete, and a pod of a spot-first group selects exactly
    its spot group and its fallback (both carry its labels), so the table only has to rank those two.
    The suffix of a group's name never matches another group: ``gpu-on-demand``'s ``on-demand`` is not hex.
    """
    return {
        str(SPOT_PRIORITY): [_ASG_OF.format(group=g) for g in sorted(spot_first)],
        str(FALLBACK_PRIORITY): [_ASG_OF.format(group=f"{g}{FALLBACK_SUFFIX}") for g in sorted(spot_first)],
        str(OTHER_PRIORITY): [".*"],
    }


def keda(name: str, cluster: ClusterConfig, oidc: tuple[pulumi.Input[str], pulumi.Input[str]] | None,
         tags: dict[str, str], node_selector: dict[str, str],
         opts: pulumi.ResourceOptions) -> tuple[aws.iam.Role | None, k8s.helm.v3.Release]:
    """KEDA and, when the cluster has an IAM OIDC provider, the operator's IRSA role (for SQS and AMP).

    Queue-depth permissions are attached by each queue API, for its own queue only.
    """
    namespace, account = KEDA_SERVICE_ACCOUNT
    role = None
    irsa: dict[str, Any] = {}
    if oidc is not None:
        role = service_account_role(f"{name}-keda", namespace, account, oidc[0], oidc[1], tags,
                                    parent=opts.parent)  # type: ignore[arg-type]
        irsa = {"podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": role.arn}}}}
        workspace = amp_workspace(cluster.prometheus.url)
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
    release = chart_release(
        name, "keda", namespace,
        {**irsa, "serviceAccount": {"operator": {"name": account}}, **_pinned(node_selector)},
        opts, cluster, create_namespace=True,
    )
    return role, release


def prometheus(name: str, cluster: ClusterConfig, node_selector: dict[str, str],
               opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    """kube-prometheus-stack: the Prometheus Operator and a Prometheus scraping every PodMonitor, for autoscaling."""
    pinned = _pinned(node_selector)
    return chart_release(
        name, "kube-prometheus-stack", MONITORING_NAMESPACE,
        {
            "fullnameOverride": _PROMETHEUS_NAME,
            "grafana": {"enabled": False},
            "alertmanager": {"enabled": False},
            # The operator and its webhook-certificate Jobs stay on the add-on nodes too.
            "prometheusOperator": {**pinned, "admissionWebhooks": {"patch": {**pinned}}},
            "kube-state-metrics": {**pinned},
            "prometheus": {"prometheusSpec": {
                # Scrape every PodMonitor in the cluster, not only those labelled for this release.
                "podMonitorSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "scrapeInterval": f"{SCRAPE_INTERVAL_SECONDS}s",
                "retention": cluster.prometheus.retention,
                **pinned,
                "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            }},
        },
        opts, cluster, create_namespace=True,
    )


def nvidia_device_plugin(name: str, cluster: ClusterConfig, opts: pulumi.ResourceOptions,
                         gpu_node_selectors: list[dict[str, str]] | None = None) -> k8s.helm.v3.Release:
    """The NVIDIA device plugin DaemonSet, which advertises ``nvidia.com/gpu`` on GPU nodes.

    On nodes modelplane creates, the chart's own affinity finds them (they carry
    ``nvidia.com/gpu.present``); ``gpu_node_selectors`` (one per GPU pool of an existing
    cluster) replace it with an affinity for exactly those pools' nodes.
    """
    # GPU groups may carry user taints besides nvidia.com/gpu; the plugin must run on every GPU node.
    values: dict[str, Any] = {"tolerations": [{"operator": "Exists"}]}
    if gpu_node_selectors:
        values["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(sel.items())]}
                for sel in gpu_node_selectors]}}}
    return chart_release(name, "nvidia-device-plugin", "kube-system", values, opts, cluster)


def load_balancer_controller(name: str, cluster: ClusterConfig, region: str, vpc_id: pulumi.Input[str],
                             oidc_arn: pulumi.Input[str], oidc_url: pulumi.Input[str], tags: dict[str, str],
                             node_selector: dict[str, str], opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    """The AWS Load Balancer Controller for the EKS cluster ``cluster.name`` in ``vpc_id``, with its IRSA role.

    It makes an Application Load Balancer for each IngressGroup of :data:`INGRESS_CLASS` and
    registers the pods' IPs as targets; its IAM policy (:func:`load_balancer_controller_policy`)
    allows that and nothing else.
    """
    namespace, account = LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT
    role = service_account_role(f"{name}-aws-load-balancer-controller", namespace, account, oidc_arn, oidc_url, tags,
                                parent=opts.parent)  # type: ignore[arg-type]
    aws.iam.RolePolicy(
        f"{name}-aws-load-balancer-controller",
        role=role.name,
        policy=pulumi.Output.from_input(vpc_id).apply(
            lambda vpc: json.dumps(load_balancer_controller_policy(cluster.name, region, vpc))),
        opts=pulumi.ResourceOptions(parent=opts.parent),
    )
    return chart_release(
        name, "aws-load-balancer-controller", namespace,
        {
            "clusterName": cluster.name,
            # Given, not looked up: pods cannot reach the instance metadata (hop limit 1).
            "region": region,
            "vpcId": vpc_id,
            "serviceAccount": {"create": True, "name": account,
                               "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
            "ingressClass": INGRESS_CLASS,
            "createIngressClassResource": True,
            # With these on, the controller calls WAF and Shield for every ALB; the policy grants neither.
            "enableShield": False,
            "enableWaf": False,
            "enableWafv2": False,
            # Services of type LoadBalancer stay with whoever served them before (the policy grants no NLBs).
            "enableServiceMutatorWebhook": False,
            # A new webhook certificate on every upgrade would leave the webhook unreachable until the
            # pods reload it, failing the Ingress changes of the same `pulumi up`.
            "keepTLSSecret": True,
            **_pinned(node_selector),
        },
        opts, cluster,
    )


def load_balancer_controller_policy(cluster_name: str, region: str, vpc_id: str) -> dict[str, Any]:
    """The IAM policy of the AWS Load Balancer Controller: ALB Ingresses with IP targets in one VPC, nothing more.

    Derived from the AWS calls controller v3.5 makes for them. Left out: NLBs, WAF, Shield and
    Cognito (off in its values), ACM certificate discovery (every HTTPS Ingress names its
    certificate's ARN), mTLS trust stores, IPAM pools and capacity reservations. The load
    balancers, target groups and security groups it creates carry the tag
    ``elbv2.k8s.aws/cluster: <cluster>``; only those it may change or delete, and the tag it cannot
    move. Listeners and rules it may manage on the region's ALBs; security-group rules (its own
    groups' and the pods', which it opens to its load balancers) only in this VPC.
    """
    arn = f"arn:{_partition(region)}"
    elb = f"{arn}:elasticloadbalancing:{region}:*"
    balancers = [f"{elb}:loadbalancer/app/*/*", f"{elb}:targetgroup/*/*"]
    listeners = [f"{elb}:listener/app/*/*/*", f"{elb}:listener-rule/app/*/*/*"]
    security_groups = f"{arn}:ec2:{region}:*:security-group/*"
    vpc = f"{arn}:ec2:{region}:*:vpc/{vpc_id}"
    owned = {f"aws:ResourceTag/{_OWNER_TAG}": cluster_name}
    created_owned = {f"aws:RequestTag/{_OWNER_TAG}": cluster_name}
    owner_kept = {f"aws:RequestTag/{_OWNER_TAG}": "true"}
    statements: list[dict[str, Any]] = [
        {
            # Made by the first load balancer of an account; only ELB's own role.
            "Sid": "CreateElbServiceLinkedRole",
            "Action": ["iam:CreateServiceLinkedRole"],
            "Resource": f"{arn}:iam::*:role/aws-service-role/elasticloadbalancing.amazonaws.com/"
                        "AWSServiceRoleForElasticLoadBalancing",
            "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
        },
        {
            # Describe calls take no resource ARNs.
            "Sid": "Read",
            "Action": [
                "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
                "elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:DescribeListenerCertificates",
                "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTargetGroupAttributes",
                "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "CreateSecurityGroupsInTheVpc",
            "Action": ["ec2:CreateSecurityGroup"],
            "Resource": vpc,
        },
        {
            "Sid": "CreateOwnedSecurityGroups",
            "Action": ["ec2:CreateSecurityGroup"],
            "Resource": security_groups,
            "Condition": {"StringEquals": created_owned},
        },
        {
            "Sid": "TagOwnedSecurityGroupsOnCreation",
            "Action": ["ec2:CreateTags"],
            "Resource": security_groups,
            "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup", **created_owned}},
        },
        {
            "Sid": "RetagOwnedSecurityGroups",
            "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
            "Resource": security_groups,
            "Condition": {"StringEquals": owned, "Null": owner_kept},
        },
        {
            "Sid": "DeleteOwnedSecurityGroups",
            "Action": ["ec2:DeleteSecurityGroup"],
            "Resource": security_groups,
            "Condition": {"StringEquals": owned},
        },
        {
            # Its own groups' rules, and the rule that admits its load balancers to the pods' group.
            "Sid": "ChangeSecurityGroupRulesInTheVpc",
            "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
            "Resource": security_groups,
            "Condition": {"ArnLike": {"ec2:Vpc": vpc}},
        },
        {
            "Sid": "CreateOwnedLoadBalancers",
            "Action": ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
            "Resource": balancers,
            "Condition": {"StringEquals": created_owned},
        },
        {
            "Sid": "TagOwnedLoadBalancersOnCreation",
            "Action": ["elasticloadbalancing:AddTags"],
            "Resource": balancers,
            "Condition": {"StringEquals": {
                "elasticloadbalancing:CreateAction": ["CreateLoadBalancer", "CreateTargetGroup"], **created_owned}},
        },
        {
            "Sid": "RetagOwnedLoadBalancers",
            "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            "Resource": balancers,
            "Condition": {"StringEquals": owned, "Null": owner_kept},
        },
        {
            "Sid": "ManageOwnedLoadBalancers",
            "Action": [
                "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:ModifyLoadBalancerAttributes",
                "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
                "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:SetIpAddressType",
                "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
            ],
            "Resource": balancers,
            "Condition": {"StringEquals": owned},
        },
        {
            # Listeners and rules of the region's ALBs, without the owner condition: one being created
            # carries no tags yet (the controller's own policy grants these on every resource).
            "Sid": "ManageListenersAndRules",
            "Action": [
                "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyRule",
                "elasticloadbalancing:RemoveListenerCertificates", "elasticloadbalancing:SetRulePriorities",
            ],
            "Resource": [balancers[0], *listeners],
        },
        {
            "Sid": "TagListenersAndRules",
            "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            "Resource": listeners,
        },
    ]
    return {"Version": "2012-10-17", "Statement": [{"Sid": s["Sid"], "Effect": "Allow", **s} for s in statements]}


def _partition(region: str) -> str:
    """The AWS partition of ``region``: ``aws``, ``aws-cn`` or ``aws-us-gov``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
