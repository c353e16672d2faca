"""The VPC a new cluster runs in: private subnets for nodes, public subnets for
internet-facing load balancers and NAT, tagged for EKS load-balancer discovery."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .config import VpcConfig

__all__ = ["Network", "build_network", "subnet_cidrs"]


@dataclass
class Network:
    """Ids of the VPC and its subnets, new or existing."""

    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    public_subnet_ids: list[pulumi.Input[str]]


def subnet_cidrs(spec: VpcConfig) -> tuple[list[str], list[str]]:
    """(private, public) subnet CIDRs, one of each per AZ.

    The VPC is cut in eighths: the first ``availabilityZones`` eighths are the
    private subnets (where pods take their IPs from, so they get the room); the
    last eighth is cut in eighths again for the public subnets.
    """
    eighths = list(spec.cidr.subnets(prefixlen_diff=3))
    public = list(eighths[-1].subnets(prefixlen_diff=3))
    count = spec.availability_zones
    return [str(c) for c in eighths[:count]], [str(c) for c in public[:count]]


def build_network(name: str, spec: VpcConfig, cluster_name: str, tags: dict[str, str],
                  parent: pulumi.Resource, private_subnet_tags: dict[str, str] | None = None) -> Network:
    """Use the existing VPC ``spec.id``, or create one with NAT egress for private subnets.

    ``private_subnet_tags`` go on a new VPC's private subnets only (Karpenter's discovery tag).
    """
    if spec.id is not None:
        return Network(spec.id, list(spec.private_subnet_ids), list(spec.public_subnet_ids))

    opts = pulumi.ResourceOptions(parent=parent)
    cluster_tag = {f"kubernetes.io/cluster/{cluster_name}": "shared"}
    zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOptions(parent=parent))
    vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=str(spec.cidr), enable_dns_hostnames=True,
                      enable_dns_support=True, tags={**tags, "Name": f"{name}-vpc"}, opts=opts)
    # The default security group of a VPC allows all traffic between its members; close it.
    aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=opts)
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": f"{name}-igw"},
                                  opts=opts)
    public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=vpc.id,
                                   routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
                                   tags={**tags, "Name": f"{name}-public"}, opts=opts)
    private_cidrs, public_cidrs = subnet_cidrs(spec)
    public_ids: list[pulumi.Output[str]] = []
    private_ids: list[pulumi.Output[str]] = []
    nat_ids: list[pulumi.Output[str]] = []
    for index, (private_cidr, public_cidr) in enumerate(zip(private_cidrs, public_cidrs, strict=True)):
        zone = zones.names[index]
        public = aws.ec2.Subnet(f"{name}-public-{index}", vpc_id=vpc.id, cidr_block=public_cidr,
                                availability_zone=zone, map_public_ip_on_launch=False,
                                tags={**tags, **cluster_tag, "Name": f"{name}-public-{index}",
                                      "kubernetes.io/role/elb": "1"}, opts=opts)
        aws.ec2.RouteTableAssociation(f"{name}-public-{index}", subnet_id=public.id,
                                      route_table_id=public_rt.id, opts=opts)
        public_ids.append(public.id)
        if spec.nat_gateways == "perAz" or index == 0:
            eip = aws.ec2.Eip(f"{name}-nat-{index}", domain="vpc", tags={**tags, "Name": f"{name}-nat-{index}"},
                              opts=opts)
            nat = aws.ec2.NatGateway(f"{name}-nat-{index}", subnet_id=public.id, allocation_id=eip.id,
                                     tags={**tags, "Name": f"{name}-nat-{index}"},
                                     opts=pulumi.ResourceOptions(parent=parent, depends_on=[igw]))
            nat_ids.append(nat.id)
        private = aws.ec2.Subnet(f"{name}-private-{index}", vpc_id=vpc.id, cidr_block=private_cidr,
                                 availability_zone=zone,
                                 tags={**tags, **cluster_tag, "Name": f"{name}-private-{index}",
                                       "kubernetes.io/role/internal-elb": "1", **(private_subnet_tags or {})},
                                 opts=opts)
        private_rt = aws.ec2.RouteTable(f"{name}-private-{index}", vpc_id=vpc.id,
                                        routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_ids[-1]}],
                                        tags={**tags, "Name": f"{name}-private-{index}"}, opts=opts)
        aws.ec2.RouteTableAssociation(f"{name}-private-{index}", subnet_id=private.id,
                                      route_table_id=private_rt.id, opts=opts)
        private_ids.append(private.id)
    return Network(vpc.id, list(private_ids), list(public_ids))
