"""policies/modelplane_policies/cluster.py: endpoint access, control-plane logs, Secrets encryption, key rotation.

Every cluster rule is checked on both shapes: the pulumi-eks component's
inputs and the ``aws:eks/cluster:Cluster`` it registers.
"""

from __future__ import annotations

from policy_support import DELETE, UNKNOWN_STRING, edited, eks_cluster_object, eks_component_object, violations

COMPONENT = "eks:index:Cluster"
CLUSTER = "aws:eks/cluster:Cluster"
KMS_KEY = "aws:kms/key:Key"


# ----------------------------------------------------------------------------- private-endpoint

def test_private_endpoint_passes_with_private_access_and_allow_listed_or_no_public_access() -> None:
    assert violations("private-endpoint", COMPONENT, eks_component_object()) == []
    assert violations("private-endpoint", CLUSTER, eks_cluster_object()) == []


def test_private_endpoint_fails_on_a_public_endpoint_open_to_the_internet() -> None:
    open_component = edited(eks_component_object(), ("publicAccessCidrs", ["0.0.0.0/0"]))
    assert violations("private-endpoint", COMPONENT, open_component) == [
        "Restrict public endpoint access of cluster 'subject' to your networks, or turn it off: 0.0.0.0/0 lets the "
        "whole internet reach the API server (stack file: modelplane:cluster.endpoint.publicAccessCidrs)."]


def test_private_endpoint_reads_aws_defaults() -> None:
    # AWS: public on and open to 0.0.0.0/0 unless set, private off unless set.
    defaults = edited(eks_cluster_object(), ("vpcConfig", {"subnetIds": ["subnet-1"]}))
    assert violations("private-endpoint", CLUSTER, defaults) == [
        "Turn on private endpoint access of cluster 'subject': nodes and in-VPC clients then reach the API server "
        "without leaving the VPC (field vpcConfig.endpointPrivateAccess).",
        "Restrict public endpoint access of cluster 'subject' to your networks, or turn it off: 0.0.0.0/0 lets the "
        "whole internet reach the API server (field vpcConfig.publicAccessCidrs)."]


def test_private_endpoint_names_the_stack_key_for_modelplane_clusters() -> None:
    no_private = edited(eks_component_object(), ("endpointPrivateAccess", False))
    [message] = violations("private-endpoint", COMPONENT, no_private)
    assert message.endswith("(stack file: modelplane:cluster.endpoint.private: true).")


def test_private_endpoint_catches_an_open_ipv6_range_and_waits_for_unknowns() -> None:
    ipv6 = edited(eks_component_object(), ("publicAccessCidrs", ["198.51.100.0/24", "::/0"]))
    assert "::/0 lets the whole internet" in violations("private-endpoint", COMPONENT, ipv6)[0]
    unknown = edited(eks_cluster_object(), ("vpcConfig", UNKNOWN_STRING))
    assert violations("private-endpoint", CLUSTER, unknown) == []


# ----------------------------------------------------------------------------- control-plane-logging

def test_control_plane_logging_passes_with_api_audit_and_authenticator() -> None:
    assert violations("control-plane-logging", COMPONENT, eks_component_object()) == []
    assert violations("control-plane-logging", CLUSTER, eks_cluster_object()) == []


def test_control_plane_logging_fails_on_missing_log_types() -> None:
    api_only = edited(eks_component_object(), ("enabledClusterLogTypes", ["api"]))
    assert violations("control-plane-logging", COMPONENT, api_only) == [
        "Enable control-plane log types audit, authenticator on cluster 'subject': API calls, audit records and "
        "sign-ins are then kept in CloudWatch for incident response (stack file: modelplane:cluster.logTypes)."]
    none = edited(eks_cluster_object(), ("enabledClusterLogTypes", DELETE))
    [message] = violations("control-plane-logging", CLUSTER, none)
    assert message.startswith("Enable control-plane log types api, audit, authenticator on cluster 'subject'")
    assert message.endswith("(field enabledClusterLogTypes).")


# ----------------------------------------------------------------------------- kms-secrets-encryption

def test_kms_secrets_encryption_passes_with_a_key() -> None:
    assert violations("kms-secrets-encryption", COMPONENT, eks_component_object()) == []
    assert violations("kms-secrets-encryption", CLUSTER, eks_cluster_object()) == []


def test_kms_secrets_encryption_passes_while_the_key_is_being_created() -> None:
    # In a first preview the key's ARN is not known yet.
    unknown = edited(eks_component_object(), ("encryptionConfigKeyArn", UNKNOWN_STRING))
    assert violations("kms-secrets-encryption", COMPONENT, unknown) == []


def test_kms_secrets_encryption_fails_without_a_key() -> None:
    no_key = edited(eks_component_object(), ("encryptionConfigKeyArn", DELETE))
    assert violations("kms-secrets-encryption", COMPONENT, no_key) == [
        "Encrypt the Secrets of cluster 'subject' with a KMS key (envelope encryption): otherwise they are only as "
        "safe as etcd's disks (field encryptionConfigKeyArn)."]


def test_kms_secrets_encryption_fails_when_the_key_does_not_cover_secrets() -> None:
    other = edited(eks_cluster_object(), ("encryptionConfig.resources", ["configmaps"]))
    [message] = violations("kms-secrets-encryption", CLUSTER, other)
    assert message.endswith("(field encryptionConfig (resources: [secrets], provider.keyArn)).")


# ----------------------------------------------------------------------------- kms-key-rotation

def test_kms_key_rotation_passes_on_a_rotating_key_and_on_asymmetric_keys() -> None:
    assert violations("kms-key-rotation", KMS_KEY, {"enableKeyRotation": True}) == []
    assert violations("kms-key-rotation", KMS_KEY, {"customerMasterKeySpec": "RSA_2048"}) == []


def test_kms_key_rotation_fails_on_a_symmetric_key_that_never_rotates() -> None:
    assert violations("kms-key-rotation", KMS_KEY, {"description": "secrets"}) == [
        "Turn on automatic rotation of KMS key 'subject': a key that never rotates exposes everything it ever "
        "encrypted if it leaks (field enableKeyRotation)."]
