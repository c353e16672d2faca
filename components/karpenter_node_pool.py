"""``KarpenterNodePool``: one node group of a Karpenter cluster, as a NodePool and
its EC2NodeClass, with labels and taints from the same :class:`Placement` the
APIs on it take their node selector and tolerations from.

The EC2NodeClass hardens the nodes as a managed group's launch template does
(IMDSv2 only with hop limit 1, encrypted gp3 volumes of the group's size) and
boots a pinned EKS-optimised AMI release. The NodePool names the group's
instance types, capacity types (both for ``spotWithFallback``: Karpenter
launches spot when it is offered and on-demand when it is not), architecture,
its limits (``maxSize`` nodes of its largest type) and its disruption settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pulumi
import pulumi_kubernetes as k8s

from . import catalog
from .charts import KARPENTER_AMI_ALIASES
from .cluster_context import APPLY_ANNOTATIONS
from .config import NodeGroupConfig, ami_architecture, effective_disruption, gpus_per_node
from .config import default_ami_type as ami_type
from .placement import GPU_RESOURCE, Placement

__all__ = ["KarpenterNodePool", "KarpenterNodePoolArgs", "ec2_node_class_spec", "node_pool_spec"]

_CAPACITY_TYPES = {"onDemand": ["on-demand"], "spot": ["spot"], "spotWithFallback": ["spot", "on-demand"]}

_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


@dataclass
class KarpenterNodePoolArgs:
    """Inputs of a :class:`KarpenterNodePool`."""

    spec: NodeGroupConfig
    """The group as the stack file declares it."""
    cluster_name: str
    """The EKS cluster's name (what the subnets' and security group's discovery tags say)."""
    node_role_name: pulumi.Input[str]
    """IAM role of the nodes (Karpenter makes their instance profile)."""
    controller: pulumi.Resource
    """The Karpenter release, which brings the CRDs and must outlive the pool (it drains the nodes on delete)."""
    subnet_ids: list[pulumi.Input[str]] | None = None
    """Subnets to launch into, for a VPC modelplane did not create. None: the private subnets tagged ``karpenter.sh/discovery: <cluster>``."""
    group: str = ""
    """Name of the group in the estate (label value of ``modelplane.io/node-group``); default: the resource name."""
    tags: dict[str, str] = field(default_factory=dict)
    """AWS tags for the instances, volumes and launch templates Karpenter creates."""
    provider: k8s.Provider | None = None
    """Kubernetes provider of the cluster."""


class KarpenterNodePool(pulumi.ComponentResource):
    """One Karpenter NodePool (named like the group) and its EC2NodeClass."""

    type_token: ClassVar[str] = "modelplane:index:KarpenterNodePool"

    placement: Placement
    """Labels and taints of the nodes; gives pods their node selector and tolerations."""
    node_pool: k8s.apiextensions.CustomResource
    """The karpenter.sh/v1 NodePool: APIs on the group wait for it."""
    labels: pulumi.Output[dict[str, str]]
    """Kubernetes labels every node of the pool carries."""

    def __init__(self, name: str, args: KarpenterNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.type_token, name, None, opts)
        group = args.group or name
        self.placement = Placement.for_group(group, args.spec, karpenter=True)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.controller])
        node_class = k8s.apiextensions.CustomResource(
            f"{name}-node-class",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": group, "annotations": dict(APPLY_ANNOTATIONS)},
            spec=ec2_node_class_spec(group, args.spec, args.cluster_name, args.node_role_name, args.subnet_ids,
                                     args.tags),
            opts=child,
        )
        self.node_pool = k8s.apiextensions.CustomResource(
            name,
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": group, "annotations": dict(APPLY_ANNOTATIONS)},
            spec=node_pool_spec(group, args.spec, self.placement),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.controller, node_class]),
        )
        self.labels = pulumi.Output.from_input(self.placement.labels)
        self.register_outputs({"labels": self.labels})


def ec2_node_class_spec(group: str, spec: NodeGroupConfig, cluster_name: str, node_role_name: pulumi.Input[str],
                        subnet_ids: list[pulumi.Input[str]] | None, tags: dict[str, str]) -> dict[str, Any]:
    """The EC2NodeClass ``spec`` of a group: hardened nodes of its AMI family and disk size, in the cluster's network."""
    ami = ami_type(spec)
    family = "BOTTLEROCKET" if ami.startswith("BOTTLEROCKET") else "AL2023"
    volume = {"volumeSize": f"{spec.disk_size_gib}Gi", "volumeType": "gp3", "encrypted": True,
              "deleteOnTermination": True}
    if family == "BOTTLEROCKET":
        # Bottlerocket keeps its OS on /dev/xvda and containers (and model images) on /dev/xvdb.
        devices = [{"deviceName": "/dev/xvda", "ebs": {**volume, "volumeSize": "4Gi"}},
                   {"deviceName": "/dev/xvdb", "ebs": volume}]
    else:
        devices = [{"deviceName": "/dev/xvda", "ebs": volume, "rootVolume": True}]
    subnets = ([{"id": subnet} for subnet in subnet_ids] if subnet_ids is not None
               else [{"tags": {"karpenter.sh/discovery": cluster_name}}])
    return {
        "role": node_role_name,
        "amiSelectorTerms": [{"alias": KARPENTER_AMI_ALIASES[family]}],
        "subnetSelectorTerms": subnets,
        # The security group EKS made for the cluster (it tags it so), which managed node groups' nodes get too.
        "securityGroupSelectorTerms": [{"tags": {"aws:eks:cluster-name": cluster_name}}],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpTokens": "required",
            # 1: only the node (and host-network pods) reach IMDS, so no pod can take the node role's
            # credentials; pods get AWS access through their service account's role (IRSA).
            "httpPutResponseHopLimit": 1,
        },
        "blockDeviceMappings": devices,
        "tags": {**tags, "modelplane.io/node-group": group},
    }


def node_pool_spec(group: str, spec: NodeGroupConfig, placement: Placement) -> dict[str, Any]:
    """The NodePool ``spec`` of a group: its instance and capacity types, placement, limits and disruption."""
    arch = ami_architecture(ami_type(spec))
    disruption = effective_disruption(spec)
    template_spec: dict[str, Any] = {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": group},
        "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(spec.instance_types)},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": _CAPACITY_TYPES[spec.capacity_type]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": [_ARCH[arch]]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ],
        # Nodes are replaced after 30 days (Karpenter's default, stated): a fresh AMI and kubelet.
        "expireAfter": "720h",
    }
    if placement.taints:
        # An empty value is left out, as the API server stores it.
        template_spec["taints"] = [{"key": t["key"], **({"value": t["value"]} if t["value"] else {}),
                                    "effect": t["effect"]} for t in placement.kubernetes_taints()]
    budgets = [{k: v for k, v in b.model_dump(by_alias=True).items() if v is not None} for b in disruption.budgets]
    return {
        "template": {"metadata": {"labels": dict(placement.labels)}, "spec": template_spec},
        "disruption": {"consolidationPolicy": disruption.consolidation_policy,
                       "consolidateAfter": disruption.consolidate_after, "budgets": budgets},
        "limits": pool_limits(spec),
    }


def pool_limits(spec: NodeGroupConfig) -> dict[str, str]:
    """Limits of a group's NodePool: ``maxSize`` nodes of its largest instance type, in vCPUs, memory and GPUs.

    The pool can always reach ``maxSize`` nodes; of smaller types it may run more within the same
    totals. vCPUs and memory are left out when an instance type is unknown to the catalog; GPUs then
    come from ``gpusPerNode``.
    """
    known = [catalog.lookup(t) for t in spec.instance_types]
    limits: dict[str, str] = {}
    if all(k is not None for k in known):
        types = [k for k in known if k is not None]
        limits["cpu"] = str(spec.max_size * max(t.vcpus for t in types))
        limits["memory"] = f"{math.ceil(spec.max_size * max(t.memory_gib for t in types))}Gi"
    if spec.gpu:
        gpus = max([k.gpus for k in known if k is not None] + [gpus_per_node(spec)])
        limits[GPU_RESOURCE] = str(spec.max_size * gpus)
    return limits
