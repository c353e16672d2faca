"""Rules on worker nodes: instance metadata (IMDSv2, hop limit 1) and encrypted volumes.

Nodes get both from their launch template. An EKS node group without one gets
EKS's default template: IMDSv1 allowed, hop limit 2, the AMI's volume
encryption. The pulumi-eks ``ManagedNodeGroup`` component may make its own
template, so the rules judge the templates and the ``aws:eks/nodeGroup``
resources that use them, not the component's inputs.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._rule import Resource, Rule
from ._values import UNKNOWN, dig, is_unknown, number, show

__all__ = ["RULES"]

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
VOLUME = "aws:ebs/volume:Volume"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
EKS_GUIDE = "https://docs.aws.amazon.com/eks/latest/best-practices"


def _without_template(resource: Resource) -> bool:
    return dig(resource.props, "launchTemplate") is None


def _imdsv2_hop_limit_1(resource: Resource) -> Iterator[str]:
    if resource.type == NODE_GROUP:
        if _without_template(resource):
            yield (f"Give node group {resource.name!r} a launch template with metadataOptions httpTokens: required "
                   f"and httpPutResponseHopLimit: 1: EKS's default template lets pods read the node role's "
                   f"credentials from the instance metadata service (field launchTemplate).")
        return
    if resource.type == NODE_CLASS:
        yield from _node_class_metadata(resource)
        return
    options = dig(resource.props, "metadataOptions")
    if is_unknown(options) or dig(options, "httpEndpoint") in ("disabled", UNKNOWN):
        return
    tokens, hops = dig(options, "httpTokens"), dig(options, "httpPutResponseHopLimit")
    if tokens not in ("required", UNKNOWN):
        yield (f"Set metadataOptions.httpTokens to required in launch template {resource.name!r} (now "
               f"{tokens or 'unset: optional'}): IMDSv1 answers any request that reaches it, such as a "
               f"server-side request forgery (field metadataOptions.httpTokens).")
    if not is_unknown(hops) and number(hops) != 1:
        shown = "unset: the AMI's default, 2 on AL2023" if hops is None else show(hops)
        yield (f"Set metadataOptions.httpPutResponseHopLimit to 1 in launch template {resource.name!r} (now {shown}): "
               f"with more than one hop, pods reach the instance metadata service and the node role's credentials; "
               f"pods get AWS access through their service account's role (field "
               f"metadataOptions.httpPutResponseHopLimit).")


def _node_class_metadata(resource: Resource) -> Iterator[str]:
    """An EC2NodeClass's metadata options; unset ones are Karpenter's defaults (required, hop limit 1)."""
    options = dig(resource.props, "spec", "metadataOptions")
    if is_unknown(options) or dig(options, "httpEndpoint") in ("disabled", UNKNOWN):
        return
    tokens, hops = dig(options, "httpTokens"), dig(options, "httpPutResponseHopLimit")
    if tokens not in ("required", None, UNKNOWN):
        yield (f"Set spec.metadataOptions.httpTokens to required in EC2NodeClass {resource.name!r} (now {show(tokens)}): "
               f"IMDSv1 answers any request that reaches it, such as a server-side request forgery (field "
               f"spec.metadataOptions.httpTokens).")
    if hops is not None and not is_unknown(hops) and number(hops) != 1:
        yield (f"Set spec.metadataOptions.httpPutResponseHopLimit to 1 in EC2NodeClass {resource.name!r} (now "
               f"{show(hops)}): with more than one hop, pods reach the instance metadata service and the node role's "
               f"credentials (field spec.metadataOptions.httpPutResponseHopLimit).")


def _encrypted(value: object) -> bool:
    return value is True or is_unknown(value) or (isinstance(value, str) and value.lower() == "true")


def _encrypted_volumes(resource: Resource) -> Iterator[str]:
    if resource.type == NODE_GROUP:
        if _without_template(resource):
            yield (f"Give node group {resource.name!r} a launch template whose block device mappings set "
                   f"ebs.encrypted: EKS's default template leaves the volumes unencrypted unless the account "
                   f"encrypts EBS by default (field launchTemplate).")
        return
    if resource.type == VOLUME:
        if not _encrypted(dig(resource.props, "encrypted")):
            yield f"Encrypt EBS volume {resource.name!r}: set encrypted: true (field encrypted)."
        return
    at = "spec.blockDeviceMappings" if resource.type == NODE_CLASS else "blockDeviceMappings"
    kind = "EC2NodeClass" if resource.type == NODE_CLASS else "launch template"
    mappings = dig(resource.props, *at.split("."))
    for index, mapping in enumerate(mappings if isinstance(mappings, list) else []):
        ebs = dig(mapping, "ebs")
        if ebs is None or is_unknown(ebs):
            continue
        if not _encrypted(dig(ebs, "encrypted")):
            device = dig(mapping, "deviceName")
            yield (f"Encrypt volume {device if isinstance(device, str) else index!r} of {kind} "
                   f"{resource.name!r}: node volumes hold image layers, model weights and pod scratch data "
                   f"(field {at}[{index}].ebs.encrypted).")


RULES = [
    Rule("imdsv2-hop-limit-1", "Nodes require IMDSv2 tokens with a hop limit of 1.",
         "Pods that reach the instance metadata service can take the node role's credentials; with a hop limit of "
         "1 only the node itself (and host-network pods) reach it, and pods use their service account's role.",
         f"{EKS_GUIDE}/identity-and-access-management.html", _imdsv2_hop_limit_1,
         frozenset({LAUNCH_TEMPLATE, NODE_GROUP, NODE_CLASS})),
    Rule("encrypted-volumes", "Node and EBS volumes are encrypted.",
         "Volumes hold container images, model weights and scratch data; encryption at rest protects snapshots "
         "and detached disks.",
         f"{EKS_GUIDE}/data-encryption-and-secrets-management.html", _encrypted_volumes,
         frozenset({LAUNCH_TEMPLATE, NODE_GROUP, VOLUME, NODE_CLASS})),
]
