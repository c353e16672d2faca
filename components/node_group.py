"""``NodeGroup``: an EKS managed node group with hardened nodes (IMDSv2 only, hop limit 1,
encrypted gp3 root volume) whose labels and taints come from a :class:`Placement`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from .config import NodeGroupConfig, gpus_per_node
from .config import default_ami_type as ami_type
from .placement import Placement

__all__ = ["NodeGroup", "NodeGroupArgs"]

_CAPACITY = {"onDemand": "ON_DEMAND", "spot": "SPOT", "spotWithFallback": "SPOT"}
"""EKS capacity type of a group's managed node group; a spot-first group's on-demand fallback is its own group."""


@dataclass
class NodeGroupArgs:
    """Inputs of a :class:`NodeGroup` (and of a :class:`GpuNodeGroup`)."""

    cluster: eks.Cluster
    """The EKS cluster the nodes join."""
    node_role: aws.iam.Role
    """IAM role of the nodes (EKS creates their access entry for managed node groups)."""
    subnet_ids: pulumi.Input[list[pulumi.Input[str]]]
    """Subnets the nodes are placed in (private ones)."""
    spec: NodeGroupConfig
    """The group as the stack file declares it."""
    group: str = ""
    """Name of the group in the estate (label value of ``modelplane.io/node-group``); default: the resource name."""
    tags: dict[str, str] = field(default_factory=dict)
    """AWS tags for the node group, its launch template, instances and volumes."""


class NodeGroup(pulumi.ComponentResource):
    """One EKS managed node group with its launch template."""

    type_token: ClassVar[str] = "modelplane:index:NodeGroup"

    placement: Placement
    """Labels and taints of the nodes; gives pods their node selector and tolerations."""
    managed_node_group: eks.ManagedNodeGroup
    """The pulumi-eks managed node group."""
    labels: pulumi.Output[dict[str, str]]
    """Kubernetes labels every node of the group carries."""

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.type_token, name, None, opts)
        self.placement = Placement.for_group(args.group or name, args.spec)
        self.managed_node_group = _managed_node_group(name, args, self.placement, self)
        self.labels = pulumi.Output.from_input(self.placement.labels)
        self.register_outputs({"labels": self.labels})


def _autoscaler_hints(spec: NodeGroupConfig) -> dict[str, str]:
    """Node-template tags that tell the cluster autoscaler what a node of an empty group would offer.

    It reads a managed group's labels and taints from EKS, but the GPUs of an
    instance type only from its own table; the tag covers types it does not know.
    """
    if not spec.gpu:
        return {}
    return {"k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu": str(gpus_per_node(spec))}


def _managed_node_group(name: str, args: NodeGroupArgs, placement: Placement,
                        parent: pulumi.Resource) -> eks.ManagedNodeGroup:
    spec = args.spec
    opts = pulumi.ResourceOptions(parent=parent)
    ami = ami_type(spec)
    # Bottlerocket keeps its OS on /dev/xvda and containers on the /dev/xvdb data volume.
    device = "/dev/xvdb" if ami.startswith("BOTTLEROCKET") else "/dev/xvda"
    template = aws.ec2.LaunchTemplate(
        f"{name}-lt",
        description=f"modelplane node group {placement.group}",
        update_default_version=True,
        metadata_options={
            "http_endpoint": "enabled",
            "http_tokens": "required",
            # 1: only the node (and host-network pods) reach IMDS, so no pod can take the node role's
            # credentials; pods get AWS access through their service account's role (IRSA).
            "http_put_response_hop_limit": 1,
        },
        block_device_mappings=[{
            "device_name": device,
            "ebs": {"volume_size": spec.disk_size_gib, "volume_type": "gp3", "encrypted": "true",
                    "delete_on_termination": "true"},
        }],
        tag_specifications=[{"resource_type": kind, "tags": {**args.tags, "Name": name}}
                            for kind in ("instance", "volume")],
        tags=args.tags,
        opts=opts,
    )
    return eks.ManagedNodeGroup(
        name,
        cluster=args.cluster,
        node_role=args.node_role,
        subnet_ids=args.subnet_ids,
        instance_types=list(spec.instance_types),
        capacity_type=_CAPACITY[spec.capacity_type],
        ami_type=ami,
        scaling_config={
            "min_size": spec.min_size,
            "desired_size": spec.desired_size if spec.desired_size is not None else spec.min_size,
            "max_size": spec.max_size,
        },
        # The cluster autoscaler owns the desired size once the group exists.
        ignore_scaling_changes=True,
        labels=placement.labels,
        taints=placement.eks_taints(),
        launch_template={"id": template.id, "version": template.latest_version.apply(str)},
        tags={**args.tags, "modelplane.io/node-group": placement.group, **_autoscaler_hints(spec)},
        opts=opts,
    )
