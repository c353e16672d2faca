"""IAM roles for Kubernetes service accounts (IRSA): AWS access for one service
account of one cluster, through the cluster's OIDC provider."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from .config import sqs_queue

__all__ = ["NODE_POLICIES", "node_role", "s3_read_policy", "service_account_role", "sqs_consume_policy",
           "sqs_depth_policy", "sqs_queue_arn"]

NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
                 "AmazonSSMManagedInstanceCore")
"""AWS-managed policies every node role carries (kubelet, VPC CNI, image pulls, SSM)."""


def node_role(name: str, tags: dict[str, str], opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """An IAM role EC2 nodes assume, named ``name``, with :data:`NODE_POLICIES` attached as ``<name>-<policy>``."""
    role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "sts:AssumeRole"}],
        }),
        tags=tags,
        opts=opts,
    )
    for policy in NODE_POLICIES:
        aws.iam.RolePolicyAttachment(f"{name}-{policy}", role=role.name,
                                     policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=opts)
    return role


def service_account_role(name: str, namespace: str, service_account: str,
                         oidc_provider_arn: pulumi.Input[str], oidc_provider_url: pulumi.Input[str],
                         tags: dict[str, str], parent: pulumi.Resource,
                         aliases: list[pulumi.Alias] | None = None) -> aws.iam.Role:
    """An IAM role only ``namespace/service_account`` of this cluster can assume (IRSA).

    ``aliases`` keep the role's identity when its Pulumi name changes (no replacement).
    """
    def trust(values: list[str]) -> str:
        arn, url = values
        issuer = url.removeprefix("https://")
        return json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{issuer}:aud": "sts.amazonaws.com",
                }},
            }],
        })

    return aws.iam.Role(name, assume_role_policy=pulumi.Output.all(oidc_provider_arn, oidc_provider_url).apply(trust),
                        tags=tags, opts=pulumi.ResourceOptions(parent=parent, aliases=aliases))


def s3_read_policy(uri: str) -> str:
    """IAM policy JSON allowing read-only access to exactly the objects under ``s3://bucket/prefix``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/")
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    listing: dict[str, object] = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": objects},
            listing,
        ],
    })


def sqs_queue_arn(url: str) -> str:
    """The ARN of the queue at ``https://sqs.<region>.amazonaws.com/<account>/<name>``."""
    region, account, name = sqs_queue(url)
    return f"arn:aws:sqs:{region}:{account}:{name}"


def sqs_consume_policy(queue_arn: str) -> str:
    """IAM policy JSON allowing a worker to receive, extend and delete messages of one queue."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                       "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": queue_arn,
        }],
    })


def sqs_depth_policy(queue_arn: str) -> str:
    """IAM policy JSON allowing KEDA to read one queue's depth, and nothing else."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": queue_arn}],
    })
