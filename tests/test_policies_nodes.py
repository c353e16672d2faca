"""policies/modelplane_policies/nodes.py: IMDSv2 with hop limit 1, encrypted volumes."""

from __future__ import annotations

from policy_support import DELETE, UNKNOWN_STRING, edited, launch_template_object, managed_node_group_object, violations

TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
VOLUME = "aws:ebs/volume:Volume"


# ----------------------------------------------------------------------------- imdsv2-hop-limit-1

def test_imdsv2_hop_limit_1_passes_on_a_hardened_template_and_a_group_that_uses_one() -> None:
    assert violations("imdsv2-hop-limit-1", TEMPLATE, launch_template_object()) == []
    assert violations("imdsv2-hop-limit-1", NODE_GROUP, managed_node_group_object()) == []


def test_imdsv2_hop_limit_1_fails_on_two_hops() -> None:
    two_hops = edited(launch_template_object(), ("metadataOptions.httpPutResponseHopLimit", 2))
    assert violations("imdsv2-hop-limit-1", TEMPLATE, two_hops, name="gpu-lt") == [
        "Set metadataOptions.httpPutResponseHopLimit to 1 in launch template 'gpu-lt' (now 2): with more than one "
        "hop, pods reach the instance metadata service and the node role's credentials; pods get AWS access "
        "through their service account's role (field metadataOptions.httpPutResponseHopLimit)."]


def test_imdsv2_hop_limit_1_fails_on_optional_tokens_and_unset_options() -> None:
    optional = edited(launch_template_object(), ("metadataOptions.httpTokens", "optional"))
    [message] = violations("imdsv2-hop-limit-1", TEMPLATE, optional, name="cpu-lt")
    assert message.startswith("Set metadataOptions.httpTokens to required in launch template 'cpu-lt' (now optional)")
    unset = edited(launch_template_object(), ("metadataOptions", DELETE))
    tokens, hops = violations("imdsv2-hop-limit-1", TEMPLATE, unset, name="cpu-lt")
    assert "(now unset: optional)" in tokens and "(now unset: the AMI's default, 2 on AL2023)" in hops


def test_imdsv2_hop_limit_1_passes_with_imds_off_and_while_unknown() -> None:
    off = edited(launch_template_object(), ("metadataOptions", {"httpEndpoint": "disabled"}))
    assert violations("imdsv2-hop-limit-1", TEMPLATE, off) == []
    unknown = edited(launch_template_object(), ("metadataOptions.httpPutResponseHopLimit", UNKNOWN_STRING))
    assert violations("imdsv2-hop-limit-1", TEMPLATE, unknown) == []


def test_imdsv2_hop_limit_1_fails_on_a_node_group_without_a_template() -> None:
    bare = edited(managed_node_group_object(), ("launchTemplate", DELETE))
    assert violations("imdsv2-hop-limit-1", NODE_GROUP, bare, name="gpu") == [
        "Give node group 'gpu' a launch template with metadataOptions httpTokens: required and "
        "httpPutResponseHopLimit: 1: EKS's default template lets pods read the node role's credentials from the "
        "instance metadata service (field launchTemplate)."]


# ----------------------------------------------------------------------------- encrypted-volumes

def test_encrypted_volumes_pass_on_an_encrypted_template_group_and_volume() -> None:
    assert violations("encrypted-volumes", TEMPLATE, launch_template_object()) == []
    assert violations("encrypted-volumes", NODE_GROUP, managed_node_group_object()) == []
    assert violations("encrypted-volumes", VOLUME, {"size": 100, "encrypted": True}) == []


def test_encrypted_volumes_fail_on_an_unencrypted_template_volume() -> None:
    plain = edited(launch_template_object(), ("blockDeviceMappings.0.ebs.encrypted", "false"))
    assert violations("encrypted-volumes", TEMPLATE, plain, name="cpu-lt") == [
        "Encrypt volume '/dev/xvda' of launch template 'cpu-lt': node volumes hold image layers, model weights and "
        "pod scratch data (field blockDeviceMappings[0].ebs.encrypted)."]


def test_encrypted_volumes_fail_on_a_plain_ebs_volume_and_a_group_without_template() -> None:
    assert violations("encrypted-volumes", VOLUME, {"size": 100}, name="scratch") == [
        "Encrypt EBS volume 'scratch': set encrypted: true (field encrypted)."]
    bare = edited(managed_node_group_object(), ("launchTemplate", DELETE))
    [message] = violations("encrypted-volumes", NODE_GROUP, bare, name="gpu")
    assert message.startswith("Give node group 'gpu' a launch template whose block device mappings set ebs.encrypted")


# ----------------------------------------------------------------------------- Karpenter's EC2NodeClass

NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


def node_class_object() -> dict[str, object]:
    return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "gpu"}, "spec": {
        "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "150Gi", "volumeType": "gp3",
                                                                    "encrypted": True}}]}}


def test_node_class_rules_pass_on_a_hardened_class_and_on_karpenters_defaults() -> None:
    for rule in ("imdsv2-hop-limit-1", "encrypted-volumes"):
        assert violations(rule, NODE_CLASS, node_class_object()) == []
        # Unset: Karpenter's own defaults, IMDSv2 with hop limit 1 and an encrypted root volume.
        bare = edited(node_class_object(), ("spec.metadataOptions", DELETE), ("spec.blockDeviceMappings", DELETE))
        assert violations(rule, NODE_CLASS, bare) == []


def test_node_class_rules_fail_on_two_hops_optional_tokens_and_a_plain_volume() -> None:
    loose = edited(node_class_object(), ("spec.metadataOptions.httpPutResponseHopLimit", 2),
                   ("spec.metadataOptions.httpTokens", "optional"))
    tokens, hops = violations("imdsv2-hop-limit-1", NODE_CLASS, loose, name="gpu-node-class")
    assert tokens.startswith("Set spec.metadataOptions.httpTokens to required in EC2NodeClass 'gpu-node-class' "
                             "(now optional)")
    assert hops.startswith("Set spec.metadataOptions.httpPutResponseHopLimit to 1 in EC2NodeClass 'gpu-node-class' "
                           "(now 2)")
    plain = edited(node_class_object(), ("spec.blockDeviceMappings.0.ebs.encrypted", False))
    assert violations("encrypted-volumes", NODE_CLASS, plain, name="gpu-node-class") == [
        "Encrypt volume '/dev/xvda' of EC2NodeClass 'gpu-node-class': node volumes hold image layers, model weights "
        "and pod scratch data (field spec.blockDeviceMappings[0].ebs.encrypted)."]
