"""Karpenter as a cluster's capacity engine: the controller's pinned Helm release,
its IAM role, the nodes' IAM role, and the interruption queue the EventBridge
rules feed.

Plain functions in the manner of :mod:`modelplane.addons`, called by
:class:`~modelplane.ServingCluster` when ``cluster.capacityEngine`` is
``karpenter``. The controller runs on the system node group (a managed node
group, so Karpenter never runs on nodes it manages) and launches the nodes of
each :class:`~modelplane.KarpenterNodePool`.

Interruption handling: EC2 sends spot interruption warnings (two minutes before
the reclaim), rebalance recommendations and instance state changes, and AWS
Health sends scheduled maintenance, to EventBridge; four rules forward them to
an SQS queue that the controller reads. On a warning it taints the node, starts
a replacement and drains the node, evicting pods through their
PodDisruptionBudgets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .addons import _partition, _pinned, chart_release, chart_source
from .config import ClusterConfig
from . import irsa
from .irsa import service_account_role

__all__ = ["DISCOVERY_TAG", "INTERRUPTION_EVENTS", "KARPENTER_SERVICE_ACCOUNT", "Karpenter", "controller_policy",
           "install_karpenter"]

KARPENTER_SERVICE_ACCOUNT = ("kube-system", "karpenter")
"""(namespace, service account) of the Karpenter controller; its IAM role trusts only it."""

DISCOVERY_TAG = "karpenter.sh/discovery"
"""Tag (value: the cluster's name) on the private subnets Karpenter launches nodes into."""

INTERRUPTION_EVENTS: dict[str, dict[str, list[str]]] = {
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
}
"""The EventBridge rules that feed the interruption queue, by name suffix: their event patterns."""



@dataclass
class Karpenter:
    """What the Karpenter install gives the node pools."""

    release: k8s.helm.v3.Release
    """The controller's Helm release (it brings the NodePool and EC2NodeClass CRDs): node pools wait for it."""
    node_role: aws.iam.Role
    """IAM role of the nodes Karpenter launches (its instance profiles are Karpenter's)."""
    queue: aws.sqs.Queue
    """The interruption queue."""


def install_karpenter(name: str, cluster: ClusterConfig, region: str, oidc_arn: pulumi.Input[str],
                      oidc_url: pulumi.Input[str], tags: dict[str, str], node_selector: dict[str, str],
                      opts: pulumi.ResourceOptions, eks_cluster: pulumi.Resource) -> Karpenter:
    """The Karpenter controller for the EKS cluster ``cluster.name``, with its queue, rules and IAM roles.

    ``opts`` carry the parent, the Kubernetes provider and what the release waits for (the system
    nodes); ``eks_cluster`` is what the nodes' access entry waits for.
    """
    parent = pulumi.ResourceOptions(parent=opts.parent)
    node_role = irsa.node_role(f"{name}-karpenter-node", tags, parent)
    # Managed node groups get their access entry from EKS; nodes Karpenter launches need one made.
    access = aws.eks.AccessEntry(f"{name}-karpenter-node", cluster_name=cluster.name, principal_arn=node_role.arn,
                                 type="EC2_LINUX", tags=tags,
                                 opts=pulumi.ResourceOptions(parent=opts.parent, depends_on=[eks_cluster]))

    queue = aws.sqs.Queue(f"{name}-karpenter", name=f"{cluster.name}-karpenter",
                          # Older events are useless: a spot warning gives two minutes.
                          message_retention_seconds=300, sqs_managed_sse_enabled=True, tags=tags, opts=parent)
    queue_policy_ = aws.sqs.QueuePolicy(f"{name}-karpenter", queue_url=queue.url,
                                        policy=queue.arn.apply(lambda arn: json.dumps(queue_policy(arn))),
                                        opts=parent)
    feeds: list[pulumi.Resource] = [queue_policy_]
    for suffix, pattern in INTERRUPTION_EVENTS.items():
        rule = aws.cloudwatch.EventRule(f"{name}-karpenter-{suffix}",
                                        description=f"To Karpenter of {cluster.name}: {pattern['detail-type'][0]}",
                                        event_pattern=json.dumps(pattern), tags=tags, opts=parent)
        feeds.append(aws.cloudwatch.EventTarget(f"{name}-karpenter-{suffix}", rule=rule.name, arn=queue.arn,
                                                target_id="karpenter-interruption-queue", opts=parent))

    namespace, account = KARPENTER_SERVICE_ACCOUNT
    role = service_account_role(f"{name}-karpenter", namespace, account, oidc_arn, oidc_url, tags,
                                parent=opts.parent)  # type: ignore[arg-type]
    identity = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=opts.parent))
    permissions = aws.iam.RolePolicy(
        f"{name}-karpenter",
        role=role.name,
        policy=pulumi.Output.all(identity.account_id, node_role.arn, queue.arn).apply(
            lambda v: json.dumps(controller_policy(cluster.name, region, v[0], v[1], v[2]))),
        opts=parent,
    )
    system = cluster.system_node_group
    # The CRDs as a release of their own: Helm installs a chart's crds/ only once and never upgrades
    # them, so a Karpenter upgrade would keep the old NodePool and EC2NodeClass schemas.
    crds = _crd_release(name, cluster, namespace, opts)
    release = chart_release(
        name, "karpenter", namespace,
        {
            "settings": {"clusterName": cluster.name, "interruptionQueue": queue.name},
            "serviceAccount": {"name": account, "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
            # Two replicas (one leads) on two system nodes, when the system group may have two.
            "replicas": 2 if system.max_size >= 2 else 1,
            "controller": {
                # Given, not looked up: pods cannot reach the instance metadata (hop limit 1).
                "env": [{"name": "AWS_REGION", "value": region}],
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            },
            # The chart's own affinity keeps it off the nodes it manages; the selector puts it on the system nodes.
            **_pinned(node_selector),
        },
        # Its permissions, the nodes' access entry and the interruption feed outlive the controller: on
        # destroy the node pools go first and it terminates their instances, still allowed to.
        pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[crds, permissions, access, *feeds])),
        cluster, skip_crds=True,
    )
    return Karpenter(release=release, node_role=node_role, queue=queue)


def _crd_release(name: str, cluster: ClusterConfig, namespace: str,
                 opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    """The ``karpenter-crd`` chart, from where the ``karpenter`` chart comes from and at its version."""
    reference, version, repository = chart_source(cluster, "karpenter")
    return k8s.helm.v3.Release(
        f"{name}-karpenter-crd",
        name="karpenter-crd",
        chart=f"{reference}-crd" if repository is None else "karpenter-crd",
        version=version,
        **({"repository_opts": repository} if repository is not None else {}),
        namespace=namespace,
        opts=opts,
    )


def queue_policy(queue_arn: str) -> dict[str, Any]:
    """The interruption queue's policy: EventBridge (and SQS) may send to it, nothing reaches it without TLS."""
    return {
        "Version": "2012-10-17",
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {"Sid": "EventBridgeSends", "Effect": "Allow",
             "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
             "Action": "sqs:SendMessage", "Resource": queue_arn},
            {"Sid": "DenyHTTP", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": queue_arn,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def controller_policy(cluster_name: str, region: str, account: str, node_role_arn: str,
                      queue_arn: str) -> dict[str, Any]:
    """The Karpenter controller's IAM policy: nodes of this cluster in this region, and nothing else.

    Derived from what controller 1.14 calls. Instances, volumes, network interfaces, fleets, spot
    requests and launch templates it may create only with the tags
    ``kubernetes.io/cluster/<cluster>: owned``, ``eks:eks-cluster-name: <cluster>`` and a
    ``karpenter.sh/nodepool``, and terminate or delete only what carries them; instance profiles
    likewise (tagged with the cluster, the region and an ``karpenter.k8s.aws/ec2nodeclass``). It may
    pass only the nodes' role, to EC2 only; read only its own queue and its own cluster.
    Left out: zonal shift (off in its settings).
    """
    arn = f"arn:{_partition(region)}"
    ec2 = f"{arn}:ec2:{region}"
    profiles = f"{arn}:iam::{account}:instance-profile/*"
    owned = f"kubernetes.io/cluster/{cluster_name}"
    created = [f"{ec2}:*:{kind}/*" for kind in ("fleet", "instance", "volume", "network-interface", "launch-template",
                                                "spot-instances-request")]
    request_owned = {f"aws:RequestTag/{owned}": "owned", "aws:RequestTag/eks:eks-cluster-name": cluster_name}
    resource_owned = {f"aws:ResourceTag/{owned}": "owned"}
    any_pool = {"StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}
    pool_of = {"StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}
    profile_request = {**request_owned, "aws:RequestTag/topology.kubernetes.io/region": region}
    profile_resource = {**resource_owned, "aws:ResourceTag/topology.kubernetes.io/region": region}
    statements: list[dict[str, Any]] = [
        {"Sid": "LaunchFromSharedResources", "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
         "Resource": [f"{ec2}::image/*", f"{ec2}::snapshot/*", f"{ec2}:*:security-group/*", f"{ec2}:*:subnet/*",
                      f"{ec2}:*:capacity-reservation/*", f"{ec2}:*:placement-group/*"]},
        {"Sid": "LaunchFromOwnLaunchTemplates", "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
         "Resource": f"{ec2}:*:launch-template/*",
         "Condition": {"StringEquals": resource_owned, **pool_of}},
        {"Sid": "CreateOwnedNodes", "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
         "Resource": created, "Condition": {"StringEquals": request_owned, **any_pool}},
        {"Sid": "TagOwnedNodesOnCreation", "Action": ["ec2:CreateTags"], "Resource": created,
         "Condition": {"StringEquals": {**request_owned,
                                        "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
                       **any_pool}},
        {"Sid": "NameOwnedNodes", "Action": ["ec2:CreateTags"], "Resource": f"{ec2}:*:instance/*",
         "Condition": {"StringEquals": resource_owned, **pool_of,
                       "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
                       "ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim",
                                                                     "Name"]}}},
        {"Sid": "DeleteOwnedNodes", "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
         "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
         "Condition": {"StringEquals": resource_owned, **pool_of}},
        {"Sid": "PassTheNodeRole", "Action": ["iam:PassRole"], "Resource": node_role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}}},
        {"Sid": "CreateOwnedInstanceProfiles", "Action": ["iam:CreateInstanceProfile"], "Resource": profiles,
         "Condition": {"StringEquals": profile_request,
                       "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}},
        {"Sid": "TagOwnedInstanceProfiles", "Action": ["iam:TagInstanceProfile"], "Resource": profiles,
         "Condition": {"StringEquals": {**profile_resource, **profile_request},
                       "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                                      "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}},
        {"Sid": "ManageOwnedInstanceProfiles",
         "Action": ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"],
         "Resource": profiles,
         "Condition": {"StringEquals": profile_resource,
                       "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}}},
        {"Sid": "ReadInstanceProfiles", "Action": ["iam:GetInstanceProfile"], "Resource": profiles},
        # ListInstanceProfiles takes no resource ARN.
        {"Sid": "ListInstanceProfiles", "Action": ["iam:ListInstanceProfiles"], "Resource": "*"},
        {"Sid": "ReadTheCluster", "Action": ["eks:DescribeCluster"],
         "Resource": f"{arn}:eks:{region}:{account}:cluster/{cluster_name}"},
        {"Sid": "ReadTheInterruptionQueue", "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
         "Resource": queue_arn},
        {"Sid": "ReadTheRegion",
         "Action": ["ec2:DescribeCapacityReservations", "ec2:DescribeImages", "ec2:DescribeInstances",
                    "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates", "ec2:DescribePlacementGroups", "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets"],
         "Resource": "*", "Condition": {"StringEquals": {"aws:RequestedRegion": region}}},
        {"Sid": "ResolveAmiAliases", "Action": ["ssm:GetParameter"],
         "Resource": f"{arn}:ssm:{region}::parameter/aws/service/*"},
        # The Price List API has no resources; Karpenter ranks spot and on-demand offers by price.
        {"Sid": "ReadPrices", "Action": ["pricing:GetProducts"], "Resource": "*"},
    ]
    return {"Version": "2012-10-17", "Statement": [{"Sid": s["Sid"], "Effect": "Allow", **s} for s in statements]}


