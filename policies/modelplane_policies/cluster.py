"""Rules on the EKS control plane: endpoint access, audit logs, envelope encryption of Secrets, key rotation.

Each reads both shapes a cluster reaches the pack in: the inputs of the
pulumi-eks component (``eks:index:Cluster``) and the ``aws:eks/cluster:Cluster``
it registers, whose endpoint settings sit under ``vpcConfig``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from ._kube import fix
from ._rule import Resource, Rule
from ._values import UNKNOWN, dig, is_unknown

__all__ = ["CLUSTERS", "REQUIRED_LOG_TYPES", "RULES"]

EKS_COMPONENT = "eks:index:Cluster"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
CLUSTERS = frozenset({EKS_COMPONENT, EKS_CLUSTER})
KMS_KEY = "aws:kms/key:Key"

CLUSTER_TAG = "modelplane.io/cluster"
"""Tag modelplane puts on its clusters; messages then name ``modelplane:cluster`` keys."""

REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")
EKS_GUIDE = "https://docs.aws.amazon.com/eks/latest/best-practices"


def _endpoint(resource: Resource) -> dict[str, Any]:
    """Endpoint settings (private, public, publicAccessCidrs), AWS's defaults filled in."""
    settings = resource.props if resource.type == EKS_COMPONENT else dig(resource.props, "vpcConfig")
    if is_unknown(settings):
        return {"private": UNKNOWN, "public": UNKNOWN, "cidrs": UNKNOWN}
    settings = settings if isinstance(settings, dict) else {}
    private, public, cidrs = (settings.get(k) for k in
                              ("endpointPrivateAccess", "endpointPublicAccess", "publicAccessCidrs"))
    return {"private": False if private is None else private, "public": True if public is None else public,
            "cidrs": cidrs or ["0.0.0.0/0"]}


def _key(resource: Resource, suffix: str) -> str | None:
    return f"modelplane:cluster.{suffix}" if isinstance(dig(resource.props, "tags", CLUSTER_TAG), str) else None


def _field(resource: Resource, name: str) -> str:
    return name if resource.type == EKS_COMPONENT else f"vpcConfig.{name}"


def _open_to_internet(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


def _private_endpoint(resource: Resource) -> Iterator[str]:
    endpoint = _endpoint(resource)
    if endpoint["private"] is not True and endpoint["private"] is not UNKNOWN:
        yield (f"Turn on private endpoint access of cluster {resource.name!r}: nodes and in-VPC clients then reach "
               f"the API server without leaving the VPC "
               f"({fix(_key(resource, 'endpoint.private: true'), _field(resource, 'endpointPrivateAccess'))}).")
    cidrs = endpoint["cidrs"]
    if endpoint["public"] is True and not is_unknown(cidrs):
        open_cidrs = [c for c in cidrs if _open_to_internet(c)]
        if open_cidrs:
            where = fix(_key(resource, "endpoint.publicAccessCidrs"), _field(resource, "publicAccessCidrs"))
            yield (f"Restrict public endpoint access of cluster {resource.name!r} to your networks, or turn it off: "
                   f"{', '.join(map(str, open_cidrs))} lets the whole internet reach the API server ({where}).")


def _control_plane_logging(resource: Resource) -> Iterator[str]:
    enabled = dig(resource.props, "enabledClusterLogTypes")
    if is_unknown(enabled) or (isinstance(enabled, list) and UNKNOWN in enabled):
        return
    missing = [t for t in REQUIRED_LOG_TYPES if t not in (enabled or [])]
    if missing:
        yield (f"Enable control-plane log types {', '.join(missing)} on cluster {resource.name!r}: API calls, "
               f"audit records and sign-ins are then kept in CloudWatch for incident response "
               f"({fix(_key(resource, 'logTypes'), 'enabledClusterLogTypes')}).")


def _kms_secrets_encryption(resource: Resource) -> Iterator[str]:
    if resource.type == EKS_COMPONENT:
        key_arn, covers_secrets, field = dig(resource.props, "encryptionConfigKeyArn"), True, "encryptionConfigKeyArn"
    else:
        config = dig(resource.props, "encryptionConfig")
        key_arn = dig(config, "provider", "keyArn")
        kinds = dig(config, "resources")
        covers_secrets = is_unknown(kinds) or (isinstance(kinds, list) and ("secrets" in kinds or UNKNOWN in kinds))
        field = "encryptionConfig (resources: [secrets], provider.keyArn)"
    if is_unknown(key_arn) or (key_arn and covers_secrets):
        return
    yield (f"Encrypt the Secrets of cluster {resource.name!r} with a KMS key (envelope encryption): otherwise they "
           f"are only as safe as etcd's disks (field {field}).")


def _kms_key_rotation(resource: Resource) -> Iterator[str]:
    spec = dig(resource.props, "customerMasterKeySpec") or dig(resource.props, "keySpec") or "SYMMETRIC_DEFAULT"
    rotation = dig(resource.props, "enableKeyRotation")
    # Only symmetric encryption keys can rotate automatically.
    if spec != "SYMMETRIC_DEFAULT" or rotation is True or is_unknown(rotation):
        return
    yield (f"Turn on automatic rotation of KMS key {resource.name!r}: a key that never rotates exposes everything "
           f"it ever encrypted if it leaks (field enableKeyRotation).")


RULES = [
    Rule("private-endpoint",
         "The cluster endpoint is reachable privately, and publicly only from allow-listed CIDRs.",
         "An API server open to 0.0.0.0/0 is exposed to every credential-stuffing and zero-day scan on the internet.",
         f"{EKS_GUIDE}/control-plane.html", _private_endpoint, CLUSTERS),
    Rule("control-plane-logging", f"Control-plane logging covers {', '.join(REQUIRED_LOG_TYPES)} at least.",
         "Without audit and authenticator logs there is no record of who did what to the cluster.",
         f"{EKS_GUIDE}/auditing-and-logging.html", _control_plane_logging, CLUSTERS),
    Rule("kms-secrets-encryption", "Kubernetes Secrets are envelope-encrypted with a KMS key.",
         "Envelope encryption keeps Secrets unreadable in etcd backups and lets access to them be revoked with the "
         "key.",
         f"{EKS_GUIDE}/data-encryption-and-secrets-management.html", _kms_secrets_encryption, CLUSTERS),
    Rule("kms-key-rotation", "Symmetric KMS keys rotate automatically.",
         "Yearly rotation limits how much data one key version protects.",
         "https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html", _kms_key_rotation,
         frozenset({KMS_KEY})),
]
