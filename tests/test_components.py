"""The components: exact children of each, and the inputs that matter for security and rollouts.

Children are asserted as exact (type, name) sets: a renamed child is a delete
and create in the next ``pulumi up``, and an unexpected one is an unreviewed
resource. The expected sets are written out here, not derived from the code
under test.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from modelplane.config import NodeGroupConfig
from modelplane.placement import Placement
from modelplane.serving_cluster import CHARTS, chart_version

MODEL_API = "modelplane:index:ModelApi"
POLICY = "modelplane:index:AutoscalingPolicy"
NODE_GROUP = "modelplane:index:NodeGroup"
GPU_NODE_GROUP = "modelplane:index:GpuNodeGroup"
SERVING_CLUSTER = "modelplane:index:ServingCluster"
ESTATE = "modelplane:index:Estate"

NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
MANAGED_NODE_GROUP = "eks:index:ManagedNodeGroup"
EKS_CLUSTER = "eks:index:Cluster"

DEV_APIS = ["sentiment", "image-embed", "doc-embed"]
PROD_GPU_APIS = {"sentiment": "gpu-inference", "image-embed": "gpu-spot", "llm-chat": "gpu-llm"}
API_LABEL = "modelplane.io/api"
NODE_GROUP_LABEL = "modelplane.io/node-group"

GPU_TAINT_EKS = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}


# ------------------------------------------------------------------------ exact children

DEV_EXTRA_CHILDREN = {
    # Behind the proxy (content-named Envoy ConfigMap), scraped by the installed Prometheus; public over
    # HTTPS: its Ingress, the certificate requested and DNS-validated in the zone, the host's record.
    "sentiment": {(CONFIG_MAP, "sentiment-proxy"), (POD_MONITOR, "sentiment-metrics"),
                  ("kubernetes:networking.k8s.io/v1:Ingress", "sentiment-ingress"),
                  ("aws:acm/certificate:Certificate", "sentiment-cert"),
                  ("aws:acm/certificateValidation:CertificateValidation", "sentiment-cert"),
                  ("aws:route53/record:Record", "sentiment-cert-validation"),
                  ("aws:route53/record:Record", "sentiment-dns")},
    # Reads its model from S3: an IAM role for its service account.
    "image-embed": {(CONFIG_MAP, "image-embed-proxy"), (POD_MONITOR, "image-embed-metrics"),
                    ("kubernetes:networking.k8s.io/v1:Ingress", "image-embed-ingress"),
                    (ROLE, "image-embed-api"), (ROLE_POLICY, "image-embed-model-reader")},
    # An async worker without proxy: its own SQS queue, a role to consume it, KEDA allowed to read its depth.
    "doc-embed": {("aws:sqs/queue:Queue", "doc-embed-queue"), (ROLE, "doc-embed-api"),
                  (ROLE_POLICY, "doc-embed-queue-consumer"), (ROLE_POLICY, "doc-embed-queue-depth")},
}


@pytest.mark.parametrize("api", DEV_APIS)
def test_model_api_children(dev_plan, find, api: str) -> None:
    assert find.children(dev_plan, MODEL_API, api) == {
        (NAMESPACE, f"{api}-ns"),
        (SERVICE_ACCOUNT, f"{api}-sa"),
        (DEPLOYMENT, api),
        (SERVICE, f"{api}-svc"),
        (PDB, f"{api}-pdb"),
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", f"{api}-netpol"),
        (POLICY, f"{api}-autoscaling"),
        *DEV_EXTRA_CHILDREN[api],
    }


DEV_POLICY_CHILDREN = {
    "sentiment": {(HPA, "sentiment-autoscaling")},
    "image-embed": {(SCALED_OBJECT, "image-embed-autoscaling")},
    "doc-embed": {(SCALED_OBJECT, "doc-embed-autoscaling"), (TRIGGER_AUTH, "doc-embed-autoscaling-aws-auth")},
}


@pytest.mark.parametrize("api", DEV_APIS)
def test_autoscaling_policy_children(dev_plan, find, api: str) -> None:
    assert find.children(dev_plan, POLICY, f"{api}-autoscaling") == DEV_POLICY_CHILDREN[api]


def test_gpu_node_group_children(dev_plan, find) -> None:
    assert find.children(dev_plan, GPU_NODE_GROUP, "gpu-spot") == {
        (LAUNCH_TEMPLATE, "gpu-spot-lt"),
        (MANAGED_NODE_GROUP, "gpu-spot"),
    }


@pytest.mark.parametrize("group", ["cpu", "ml-dev-system"])
def test_node_group_children(dev_plan, find, group: str) -> None:
    assert find.children(dev_plan, NODE_GROUP, group) == {
        (LAUNCH_TEMPLATE, f"{group}-lt"),
        (MANAGED_NODE_GROUP, group),
    }


def test_serving_cluster_children(dev_plan, find) -> None:
    # dev: a new VPC over 2 AZs with a single NAT gateway, one GPU group (AL2023 NVIDIA AMI).
    zones = (0, 1)
    network = {
        ("aws:ec2/vpc:Vpc", "ml-dev-vpc"),
        ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "ml-dev-default-sg"),
        ("aws:ec2/internetGateway:InternetGateway", "ml-dev-igw"),
        ("aws:ec2/routeTable:RouteTable", "ml-dev-public"),
        ("aws:ec2/eip:Eip", "ml-dev-nat-0"),
        ("aws:ec2/natGateway:NatGateway", "ml-dev-nat-0"),
        *{("aws:ec2/subnet:Subnet", f"ml-dev-public-{i}") for i in zones},
        *{("aws:ec2/routeTableAssociation:RouteTableAssociation", f"ml-dev-public-{i}") for i in zones},
        *{("aws:ec2/subnet:Subnet", f"ml-dev-private-{i}") for i in zones},
        *{("aws:ec2/routeTable:RouteTable", f"ml-dev-private-{i}") for i in zones},
        *{("aws:ec2/routeTableAssociation:RouteTableAssociation", f"ml-dev-private-{i}") for i in zones},
    }
    node_role = {
        ("aws:iam/role:Role", "ml-dev-node"),
        *{("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"ml-dev-node-{policy}")
          for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                         "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore")},
    }
    add_ons = {
        ("aws:iam/role:Role", "ml-dev-cluster-autoscaler"),
        ("aws:iam/rolePolicy:RolePolicy", "ml-dev-cluster-autoscaler"),
        (RELEASE, "ml-dev-cluster-autoscaler"),
        (RELEASE, "ml-dev-nvidia-device-plugin"),
        # dev's APIs scale on in-flight requests and a queue: KEDA with its IAM role, and a Prometheus.
        (ROLE, "ml-dev-keda"),
        (RELEASE, "ml-dev-keda"),
        (RELEASE, "ml-dev-kube-prometheus-stack"),
        # dev exposes two APIs: the AWS Load Balancer Controller with its IAM role.
        (ROLE, "ml-dev-aws-load-balancer-controller"),
        ("aws:iam/rolePolicy:RolePolicy", "ml-dev-aws-load-balancer-controller"),
        (RELEASE, "ml-dev-aws-load-balancer-controller"),
    }

    assert find.children(dev_plan, SERVING_CLUSTER, "ml-dev") == {
        *network,
        *node_role,
        *add_ons,
        ("aws:kms/key:Key", "ml-dev-secrets"),
        (EKS_CLUSTER, "ml-dev"),
        (NODE_GROUP, "ml-dev-system"),
        ("pulumi:providers:kubernetes", "ml-dev-k8s"),
    }


def test_estate_children(dev_plan, find) -> None:
    assert find.children(dev_plan, ESTATE, "ml-dev") == {
        (SERVING_CLUSTER, "ml-dev"),
        (NODE_GROUP, "cpu"),
        (GPU_NODE_GROUP, "gpu-spot"),
        (MODEL_API, "sentiment"),
        (MODEL_API, "image-embed"),
        (MODEL_API, "doc-embed"),
    }


def test_estate_is_the_only_child_of_the_stack(dev_plan) -> None:
    registered = {r.urn for r in dev_plan.resources}
    top = [r for r in dev_plan.resources if r.parent not in registered]

    assert [(r.type, r.name) for r in top] == [(ESTATE, "ml-dev")]
    assert top[0].parent == "urn:pulumi:dev::modelplane::pulumi:pulumi:Stack::modelplane-dev"


@pytest.mark.parametrize("plan_name", ["dev_plan", "prod_plan"])
def test_every_resource_hangs_under_a_modelplane_component(request, plan_name: str) -> None:
    # A child parented under a sibling resource (not a component) would move when that sibling is replaced.
    plan = request.getfixturevalue(plan_name)
    types_by_urn = {r.urn: r.type for r in plan.resources}
    for resource in plan.resources:
        if resource.type == ESTATE:
            continue
        assert types_by_urn.get(resource.parent, "").startswith("modelplane:index:"), (resource.type, resource.name)


def test_prod_network_has_one_nat_gateway_per_az(prod_plan, find) -> None:
    nats = {r.name for r in prod_plan.by_type("aws:ec2/natGateway:NatGateway")}
    routes = {r.name: r.inputs["routes"] for r in prod_plan.by_type("aws:ec2/routeTable:RouteTable")
              if "-private-" in r.name}

    assert nats == {"ml-prod-nat-0", "ml-prod-nat-1", "ml-prod-nat-2"}
    assert len({route[0]["natGatewayId"] for route in routes.values()}) == 3


def test_dev_network_shares_one_nat_gateway(dev_plan) -> None:
    routes = [r.inputs["routes"] for r in dev_plan.by_type("aws:ec2/routeTable:RouteTable") if "-private-" in r.name]

    assert len(routes) == 2
    assert len({route[0]["natGatewayId"] for route in routes}) == 1
    assert all(route[0]["cidrBlock"] == "0.0.0.0/0" for route in routes)


def test_existing_vpc_creates_no_network(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:cluster", "vpc"), {
        "id": "vpc-0abc", "privateSubnetIds": ["subnet-0a", "subnet-0b"], "publicSubnetIds": ["subnet-0c"]}))

    plan = render("dev", config)

    assert not [r for r in plan.resources if r.type.startswith("aws:ec2/") and r.type != LAUNCH_TEMPLATE]
    cluster = find.one(plan, EKS_CLUSTER, "ml-dev").inputs
    assert cluster["vpcId"] == "vpc-0abc"
    assert cluster["privateSubnetIds"] == ["subnet-0a", "subnet-0b"]
    assert cluster["publicSubnetIds"] == ["subnet-0c"]
    for group in plan.by_type(MANAGED_NODE_GROUP):
        assert group.inputs["subnetIds"] == ["subnet-0a", "subnet-0b"]


# ------------------------------------------------------------------------ the EKS cluster

def test_eks_cluster_inputs(dev_plan, find) -> None:
    cluster = find.one(dev_plan, EKS_CLUSTER, "ml-dev").inputs

    assert cluster["name"] == "ml-dev"
    assert cluster["version"] == dev_plan.config.cluster.kubernetes_version == "1.33"
    assert cluster["skipDefaultNodeGroup"] is True
    assert cluster["createOidcProvider"] is True
    assert cluster["authenticationMode"] == "API"
    assert cluster["nodeAssociatePublicIpAddress"] is False
    assert re.fullmatch(r"arn:aws:kms:us-east-1:\d{12}:key/[0-9a-f-]{36}", cluster["encryptionConfigKeyArn"])
    assert cluster["endpointPublicAccess"] is True
    assert cluster["endpointPrivateAccess"] is True
    assert cluster["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator"]
    assert cluster["deletionProtection"] is False
    assert cluster["tags"] == {"env": "dev", "team": "ml-platform", "modelplane.io/cluster": "ml-dev"}
    # Nodes go in the private subnets only.
    private = {r.name for r in dev_plan.by_type("aws:ec2/subnet:Subnet") if "-private-" in r.name}
    assert len(cluster["privateSubnetIds"]) == len(private) == 2


def test_prod_cluster_is_protected_and_logs_everything(prod_plan, find) -> None:
    cluster = find.one(prod_plan, EKS_CLUSTER, "ml-prod").inputs

    assert cluster["deletionProtection"] is True
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    assert cluster["publicAccessCidrs"] == ["198.51.100.0/24", "192.0.2.0/24"]


def test_private_only_endpoint_sends_no_public_cidrs(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:cluster", "endpoint", "public"), False))

    cluster = find.one(render("dev", config), EKS_CLUSTER, "ml-dev").inputs

    assert cluster["endpointPublicAccess"] is False
    assert cluster.get("publicAccessCidrs") is None


def test_secrets_key_rotates(dev_plan, find) -> None:
    key = find.one(dev_plan, "aws:kms/key:Key", "ml-dev-secrets").inputs

    assert key["enableKeyRotation"] is True


def test_default_security_group_is_closed(dev_plan, find) -> None:
    group = find.one(dev_plan, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "ml-dev-default-sg").inputs

    assert not group.get("ingress")
    assert not group.get("egress")


def test_public_subnets_do_not_hand_out_public_ips(dev_plan) -> None:
    for subnet in dev_plan.by_type("aws:ec2/subnet:Subnet"):
        assert not subnet.inputs.get("mapPublicIpOnLaunch"), subnet.name


UNTAGGABLE = {
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:acm/certificateValidation:CertificateValidation",
    "aws:route53/record:Record",
}


@pytest.mark.parametrize("plan_name", ["dev_plan", "prod_plan"])
def test_every_taggable_aws_resource_carries_the_estate_tags(request, plan_name: str) -> None:
    plan = request.getfixturevalue(plan_name)
    wanted = {**plan.config.cluster.tags, "modelplane.io/cluster": plan.config.cluster.name}
    for resource in plan.resources:
        if resource.type.split(":")[0] not in ("aws", "eks") or resource.type in UNTAGGABLE:
            continue
        tags = resource.inputs.get("tags") or {}
        assert wanted.items() <= tags.items(), (resource.type, resource.name, tags)


# ------------------------------------------------------------------------ node groups

def test_node_role_trusts_ec2_only(dev_plan, find) -> None:
    policy = json.loads(find.one(dev_plan, "aws:iam/role:Role", "ml-dev-node").inputs["assumeRolePolicy"])

    assert policy["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                    "Action": "sts:AssumeRole"}]


@pytest.fixture(scope="module")
def prod_managed_plan(render, stack_configs):
    """prod on managed node groups (its Karpenter-only disruption block left out): a spot-first group there
    is a spot group and its on-demand twin."""
    return render("prod", stack_configs.edited(
        "prod", (("modelplane:cluster", "capacityEngine"), "managedNodeGroups"),
        (("modelplane:nodeGroups", "gpu-llm", "disruption"), stack_configs.DELETE)))


@pytest.mark.parametrize("plan_name", ["dev_plan", "prod_plan", "prod_managed_plan"])
def test_launch_templates_require_imdsv2_with_one_hop_and_encrypt_the_root_volume(request, plan_name: str) -> None:
    plan = request.getfixturevalue(plan_name)
    templates = plan.by_type(LAUNCH_TEMPLATE)
    # One per managed node group: each declared group (a spot-first one has an on-demand twin) and the system
    # group; on Karpenter only the system group is one.
    groups = 0 if plan.config.karpenter else len(plan.config.node_groups) + len(plan.config.spot_first_managed_groups)
    assert len(templates) == len(plan.by_type(MANAGED_NODE_GROUP)) == groups + 1

    for template in templates:
        inputs = template.inputs
        assert inputs["metadataOptions"]["httpTokens"] == "required", template.name
        assert inputs["metadataOptions"]["httpEndpoint"] == "enabled", template.name
        # Pods use their service account's role; one hop keeps them from the node role's credentials.
        assert inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1, template.name
        [volume] = inputs["blockDeviceMappings"]
        assert volume["ebs"]["encrypted"] == "true", template.name
        assert volume["ebs"]["volumeType"] == "gp3", template.name
        assert volume["deviceName"] == "/dev/xvda", template.name  # AL2023 root device


def test_launch_template_volume_size_follows_config(dev_plan, find) -> None:
    def volume_size(group: str) -> int:
        [mapping] = find.one(dev_plan, LAUNCH_TEMPLATE, f"{group}-lt").inputs["blockDeviceMappings"]
        return int(mapping["ebs"]["volumeSize"])

    sizes = {group: volume_size(group) for group in ("cpu", "gpu-spot", "ml-dev-system")}

    assert sizes == {"cpu": 100, "gpu-spot": 150, "ml-dev-system": 50}


def test_bottlerocket_puts_the_volume_on_the_data_device(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:nodeGroups", "gpu-spot", "amiType"),
                                          "BOTTLEROCKET_x86_64_NVIDIA"))

    template = find.one(render("dev", config), LAUNCH_TEMPLATE, "gpu-spot-lt").inputs

    assert template["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"


def test_gpu_spot_group_inputs(dev_plan, find) -> None:
    group = find.one(dev_plan, MANAGED_NODE_GROUP, "gpu-spot").inputs

    assert group["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["taints"] == [GPU_TAINT_EKS]
    assert group["capacityType"] == "SPOT"
    assert group["instanceTypes"] == ["g5.xlarge", "g6.xlarge", "g4dn.xlarge"]
    assert {k: int(v) for k, v in group["scalingConfig"].items()} == {"minSize": 0, "desiredSize": 0, "maxSize": 6}
    assert group["ignoreScalingChanges"] is True
    assert group["labels"] == {NODE_GROUP_LABEL: "gpu-spot", "nvidia.com/gpu.present": "true"}
    assert group["launchTemplate"]["version"] == "1"
    assert group["launchTemplate"]["id"].startswith("lt-")


@pytest.mark.parametrize("group_name", ["gpu-inference", "gpu-spot", "gpu-llm"])
def test_prod_gpu_groups_get_an_nvidia_ami_and_the_gpu_taint_first(prod_managed_plan, find, group_name: str) -> None:
    group = find.one(prod_managed_plan, MANAGED_NODE_GROUP, group_name).inputs
    spec = prod_managed_plan.config.node_groups[group_name]

    assert group["amiType"].endswith("_NVIDIA")
    assert group["taints"][0] == GPU_TAINT_EKS
    assert group["capacityType"] == {"onDemand": "ON_DEMAND", "spotWithFallback": "SPOT"}[spec.capacity_type]
    assert {k: int(v) for k, v in group["scalingConfig"].items()} == {
        "minSize": spec.min_size, "desiredSize": spec.min_size, "maxSize": spec.max_size}
    assert group["ignoreScalingChanges"] is True


def test_prod_llm_group_adds_its_own_taint_in_eks_spelling(prod_managed_plan, find) -> None:
    group = find.one(prod_managed_plan, MANAGED_NODE_GROUP, "gpu-llm").inputs

    assert group["taints"] == [GPU_TAINT_EKS, {"key": "modelplane.io/llm", "value": "true", "effect": "NO_SCHEDULE"}]


def test_gpu_taint_can_be_turned_off(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:nodeGroups", "gpu-spot", "gpuTaint"), False))

    plan = render("dev", config)

    assert find.one(plan, MANAGED_NODE_GROUP, "gpu-spot").inputs["taints"] == []
    assert "tolerations" not in find.object(plan, "Deployment", "image-embed")["spec"]["template"]["spec"]


def test_cpu_and_system_groups_are_untainted_on_demand_standard_amis(dev_plan, find) -> None:
    for name in ("cpu", "ml-dev-system"):
        group = find.one(dev_plan, MANAGED_NODE_GROUP, name).inputs
        assert group["amiType"] == "AL2023_x86_64_STANDARD", name
        assert group["capacityType"] == "ON_DEMAND", name
        assert group["taints"] == [], name
        assert group["ignoreScalingChanges"] is True, name
    assert find.one(dev_plan, MANAGED_NODE_GROUP, "ml-dev-system").inputs["labels"] == {NODE_GROUP_LABEL: "system"}


GPU_HINT = "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"


@pytest.mark.parametrize(("plan_name", "group", "gpus"), [
    ("dev_plan", "gpu-spot", "1"),
    ("prod_managed_plan", "gpu-llm", "4"),
    ("dev_plan", "cpu", None),
    ("dev_plan", "ml-dev-system", None),
])
def test_gpu_groups_tell_the_autoscaler_their_gpus_for_scale_from_zero(request, find, plan_name, group, gpus) -> None:
    tags = find.one(request.getfixturevalue(plan_name), MANAGED_NODE_GROUP, group).inputs["tags"]

    assert tags.get(GPU_HINT) == gpus
    assert tags[NODE_GROUP_LABEL] == ("system" if group.endswith("-system") else group)


def test_gpu_hint_uses_gpus_per_node_when_stated(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:nodeGroups", "gpu-spot", "gpusPerNode"), 2))

    tags = find.one(render("dev", config), MANAGED_NODE_GROUP, "gpu-spot").inputs["tags"]

    assert tags[GPU_HINT] == "2"


def test_graviton_group_gets_the_arm_ami_by_default(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:nodeGroups", "cpu", "instanceTypes"), ["m7g.xlarge"]))

    group = find.one(render("dev", config), MANAGED_NODE_GROUP, "cpu").inputs

    assert group["amiType"] == "AL2023_ARM_64_STANDARD"


def test_desired_size_defaults_to_min_size_and_can_be_set(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:nodeGroups", "cpu", "desiredSize"), 3))

    scaling = find.one(render("dev", config), MANAGED_NODE_GROUP, "cpu").inputs["scalingConfig"]

    assert {k: int(v) for k, v in scaling.items()} == {"minSize": 1, "desiredSize": 3, "maxSize": 4}


# ------------------------------------------------------------------------ placement of the APIs

def envoy_bootstrap(config_maps: list[dict[str, Any]], api: str) -> dict[str, Any]:
    """The Envoy bootstrap in an API's proxy ConfigMap."""
    import yaml

    [config_map] = [c for c in config_maps if c["metadata"]["name"].startswith(f"{api}-proxy-")]
    return yaml.safe_load(config_map["data"]["envoy.json"])


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def eks_to_kubernetes_effect(effect: str) -> str:
    return {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule", "NO_EXECUTE": "NoExecute"}[effect]


@pytest.mark.parametrize(("plan_name", "api", "group"), [
    ("dev_plan", "image-embed", "gpu-spot"),
    *[("prod_managed_plan", api, group) for api, group in PROD_GPU_APIS.items()],
])
def test_gpu_api_tolerates_exactly_its_groups_taints_and_selects_it(request, find, plan_name, api, group) -> None:
    plan = request.getfixturevalue(plan_name)
    spec = pod_spec(find.object(plan, "Deployment", api))
    placement = Placement.for_group(group, plan.config.node_groups[group])
    node_group = find.one(plan, MANAGED_NODE_GROUP, group).inputs

    assert spec["nodeSelector"] == placement.node_selector() == {NODE_GROUP_LABEL: group}
    assert spec["tolerations"] == placement.tolerations()
    # Cross-check against what the node group actually renders, not only the shared helper.
    assert [(t["key"], t["value"], t["effect"]) for t in spec["tolerations"]] == [
        (t["key"], t["value"], eks_to_kubernetes_effect(t["effect"])) for t in node_group["taints"]]
    assert all(t["operator"] == "Equal" for t in spec["tolerations"])
    assert node_group["labels"][NODE_GROUP_LABEL] == group


@pytest.mark.parametrize(("plan_name", "api", "gpus"), [
    ("dev_plan", "image-embed", "1"),
    ("prod_plan", "sentiment", "1"),
    ("prod_plan", "llm-chat", "4"),
])
def test_gpu_api_requests_and_limits_its_gpus(request, find, plan_name, api, gpus) -> None:
    plan = request.getfixturevalue(plan_name)
    [container] = pod_spec(find.object(plan, "Deployment", api))["containers"]

    assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus


def test_cpu_api_has_no_gpu_and_no_tolerations(dev_plan, find) -> None:
    spec = pod_spec(find.object(dev_plan, "Deployment", "sentiment"))
    [container] = spec["containers"]

    assert spec["nodeSelector"] == {NODE_GROUP_LABEL: "cpu"}
    assert "tolerations" not in spec
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}


def test_placement_for_a_gpu_group_with_user_taints() -> None:
    spec = NodeGroupConfig.model_validate({
        "instanceTypes": ["g5.xlarge"], "gpu": True, "labels": {"team": "search"},
        "taints": [{"key": "example.com/dedicated", "value": "search", "effect": "NoExecute"}]})

    placement = Placement.for_group("gpu-search", spec)

    assert placement.labels == {"team": "search", NODE_GROUP_LABEL: "gpu-search", "nvidia.com/gpu.present": "true"}
    assert placement.tolerations() == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "example.com/dedicated", "operator": "Equal", "value": "search", "effect": "NoExecute"},
    ]
    assert placement.eks_taints() == [
        GPU_TAINT_EKS, {"key": "example.com/dedicated", "value": "search", "effect": "NO_EXECUTE"}]


# ------------------------------------------------------------------------ the model APIs

@pytest.mark.parametrize("plan_name", ["dev_plan", "prod_plan"])
def test_deployments_leave_replicas_to_the_autoscaler(request, find, plan_name: str) -> None:
    for deployment in find.objects(request.getfixturevalue(plan_name), "Deployment"):
        assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]


@pytest.mark.parametrize("plan_name", ["dev_plan", "prod_plan"])
def test_replicas_drain_before_sigterm_and_spread_over_zones(request, find, plan_name: str) -> None:
    plan = request.getfixturevalue(plan_name)
    for api in plan.config.apis:
        pod = find.object(plan, "Deployment", api)["spec"]["template"]["spec"]

        # The kubelet's sleep action keeps the replica (sidecars too) serving while it leaves the endpoints.
        for container in pod["containers"]:
            assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
        assert pod["terminationGracePeriodSeconds"] == 30
        assert pod["topologySpreadConstraints"] == [{
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {API_LABEL: api}},
            "matchLabelKeys": ["pod-template-hash"],
        }]


@pytest.mark.parametrize("plan_name", ["dev_plan", "prod_plan"])
def test_selectors_are_exactly_the_api_label(request, find, plan_name: str) -> None:
    plan = request.getfixturevalue(plan_name)
    for api in plan.config.apis:
        selector = {API_LABEL: api}
        deployment = find.object(plan, "Deployment", api)
        service = find.object(plan, "Service", api)
        pdb = find.object(plan, "PodDisruptionBudget", api)

        assert deployment["spec"]["selector"] == {"matchLabels": selector}
        assert service["spec"]["selector"] == selector
        assert pdb["spec"]["selector"] == {"matchLabels": selector}
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_rolling_update_strategy_follows_config(dev_plan, prod_plan, find) -> None:
    def strategy(plan, api):
        return find.object(plan, "Deployment", api)["spec"]["strategy"]

    assert strategy(dev_plan, "image-embed") == {"type": "RollingUpdate",
                                                 "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert strategy(dev_plan, "sentiment")["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert strategy(prod_plan, "fraud-score")["rollingUpdate"] == {"maxSurge": "50%", "maxUnavailable": 0}


def test_pdb_lets_drains_take_one_replica_at_a_time(dev_plan, find) -> None:
    pdb = find.object(dev_plan, "PodDisruptionBudget", "image-embed")

    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "minAvailable" not in pdb["spec"]


def test_service_forwards_port_80_to_the_proxy_which_forwards_to_the_server(dev_plan, find) -> None:
    service = find.object(dev_plan, "Service", "sentiment")
    pod = pod_spec(find.object(dev_plan, "Deployment", "sentiment"))
    [container] = pod["containers"]
    [proxy] = pod["initContainers"]
    envoy = envoy_bootstrap(find.objects(dev_plan, "ConfigMap"), "sentiment")
    [model_cluster] = [c for c in envoy["static_resources"]["clusters"] if c["name"] == "model"]
    [listener] = [lst for lst in envoy["static_resources"]["listeners"] if lst["name"] == "api"]

    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}]
    assert {"name": "proxy", "containerPort": 8888, "protocol": "TCP"} in proxy["ports"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8888}
    endpoint = model_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_without_the_proxy_the_service_reaches_the_server(prod_plan, find) -> None:
    service = find.object(prod_plan, "Service", "llm-chat")
    pod = pod_spec(find.object(prod_plan, "Deployment", "llm-chat"))

    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert "initContainers" not in pod
    assert not [c for c in find.objects(prod_plan, "ConfigMap") if c["metadata"]["name"].startswith("llm-chat-proxy")]


def test_container_runs_restricted(dev_plan, find) -> None:
    namespace = find.object(dev_plan, "Namespace", "image-embed")
    spec = pod_spec(find.object(dev_plan, "Deployment", "image-embed"))
    [container] = spec["containers"]
    [proxy] = spec["initContainers"]
    account = find.object(dev_plan, "ServiceAccount", "image-embed")

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # A fixed high UID and GID (the default 65532), whatever user the image names.
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True}
    # The read-only root leaves /tmp writable by default.
    assert container["volumeMounts"] == [{"name": "writable-0", "mountPath": "/tmp"}]
    [proxy_config] = [c["metadata"]["name"] for c in find.objects(dev_plan, "ConfigMap")
                      if c["metadata"]["name"].startswith("image-embed-proxy-")]
    assert spec["volumes"] == [{"name": "writable-0", "emptyDir": {}},
                               {"name": "proxy-config", "configMap": {"name": proxy_config}}]
    # The proxy is as locked down, with a fixed non-root UID (the distroless image's "nonroot").
    assert proxy["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "readOnlyRootFilesystem": True, "runAsUser": 65532, "runAsGroup": 65532}
    assert proxy["volumeMounts"] == [{"name": "proxy-config", "mountPath": "/etc/modelplane/proxy",
                                      "readOnly": True}]
    assert spec["automountServiceAccountToken"] is False
    assert account["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == account["metadata"]["name"] == "image-embed"


def test_run_as_user_sets_every_containers_uid_and_gid_but_the_proxys(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", (("modelplane:apis", "sentiment", "runAsUser"), 20000),
                                  (("modelplane:apis", "sentiment", "sidecars"), {"ranker": {
                                      "image": "ghcr.io/acme/ranker:2.1.0"}}))
    spec = pod_spec(find.object(render("dev", config), "Deployment", "sentiment"))
    [proxy] = spec["initContainers"]

    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 20000, "runAsGroup": 20000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    # No container overrides the pod's user except the proxy, which runs as its image's nonroot user.
    assert [c["name"] for c in spec["containers"] if "runAsUser" in c["securityContext"]] == []
    assert (proxy["securityContext"]["runAsUser"], proxy["securityContext"]["runAsGroup"]) == (65532, 65532)


def test_root_is_not_a_run_as_user(stack_configs) -> None:
    from modelplane.config import ConfigError, parse_estate

    config = stack_configs.edited("dev", (("modelplane:apis", "sentiment", "runAsUser"), 0))
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, "stacks/Pulumi.dev.yaml")
    assert [i.path for i in caught.value.issues] == [("modelplane:apis", "sentiment", "runAsUser")]


def test_images_pinned_by_digest_are_pulled_only_when_absent_and_tags_always(dev_plan, prod_plan, find) -> None:
    def pull_policies(plan) -> dict[tuple[str, str], tuple[str, str]]:
        by_name = {d["metadata"]["name"]: pod_spec(d) for d in find.objects(plan, "Deployment")}
        return {(api, c["name"]): (c["image"], c["imagePullPolicy"])
                for api, spec in by_name.items() for c in [*spec.get("initContainers", []), *spec["containers"]]}
    dev, prod = pull_policies(dev_plan), pull_policies(prod_plan)

    # dev's images are tags; the default proxy, and every image of prod, are pinned by digest.
    assert dev[("sentiment", "model")] == ("ghcr.io/acme/sentiment-api:1.4.2", "Always")
    assert dev[("sentiment", "proxy")][1] == "IfNotPresent" and "@sha256:" in dev[("sentiment", "proxy")][0]
    assert prod[("recommender", "bandit-model")][1] == "IfNotPresent"
    for policies in (dev, prod):
        assert {policy for image, policy in policies.values() if "@" not in image} <= {"Always"}
        assert {policy for image, policy in policies.values() if "@" in image} == {"IfNotPresent"}
    assert all("@" in image for image, _ in prod.values())


def test_container_command_args_env_and_probe_follow_config(dev_plan, find) -> None:
    [container] = pod_spec(find.object(dev_plan, "Deployment", "image-embed"))["containers"]

    assert container["image"] == "ghcr.io/acme/clip-embed:0.9.1"
    assert container["command"] == ["python", "-m", "serve"]
    assert container["args"] == ["--model", "openai/clip-vit-base-patch32"]
    assert container["readinessProbe"] == {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5,
                                           "timeoutSeconds": 3, "failureThreshold": 3, "initialDelaySeconds": 20}
    assert container["env"] == [
        {"name": "MODELPLANE_API_NAME", "value": "image-embed"},
        {"name": "MODELPLANE_PORT", "value": "8080"},
        {"name": "MODELPLANE_MAX_CONCURRENCY", "value": "1"},
        {"name": "MODELPLANE_MODEL_URI", "value": "s3://acme-ml-models-dev/clip-vit-base-patch32/"},
    ]


def test_user_env_comes_first_then_modelplanes(dev_plan, find) -> None:
    [container] = pod_spec(find.object(dev_plan, "Deployment", "sentiment"))["containers"]

    assert container["env"] == [
        {"name": "MODEL_NAME", "value": "distilbert-sst2"},
        {"name": "WORKERS", "value": "4"},
        {"name": "MODELPLANE_API_NAME", "value": "sentiment"},
        {"name": "MODELPLANE_PORT", "value": "8080"},
        {"name": "MODELPLANE_MAX_CONCURRENCY", "value": "4"},
    ]
    assert "command" not in container and "args" not in container


# ------------------------------------------------------------------------ autoscaling

DEFAULT_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}]},
}


def hpa_behavior(plan, find, api: str) -> dict[str, Any]:
    """The HPA behaviour an API gets: its own HPA's, or the one its ScaledObject gives KEDA's HPA."""
    hpas = [o for o in find.objects(plan, "HorizontalPodAutoscaler") if o["metadata"]["name"] == api]
    if hpas:
        return hpas[0]["spec"]["behavior"]
    scaled = find.object(plan, "ScaledObject", api)
    return scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]


@pytest.mark.parametrize("api", ["sentiment", "image-embed"])
def test_hpa_behavior_is_cortexs_defaults(dev_plan, find, api: str) -> None:
    assert hpa_behavior(dev_plan, find, api) == DEFAULT_BEHAVIOR


def test_hpa_behavior_follows_changed_knobs(prod_plan, find) -> None:
    # prod image-embed: maxUpscaleFactor 2.0 -> may double per minute.
    embed = hpa_behavior(prod_plan, find, "image-embed")
    # prod llm-chat: upscale 3m, downscale 30m.
    llm = hpa_behavior(prod_plan, find, "llm-chat")

    assert embed["scaleUp"]["policies"] == [{"type": "Percent", "value": 100, "periodSeconds": 60}]
    assert embed["scaleDown"] == DEFAULT_BEHAVIOR["scaleDown"]
    assert llm["scaleUp"]["stabilizationWindowSeconds"] == 180
    assert llm["scaleDown"]["stabilizationWindowSeconds"] == 1800


def test_hpa_targets_the_deployment_with_config_bounds_and_metric(dev_plan, prod_plan, find) -> None:
    sentiment = find.object(dev_plan, "HorizontalPodAutoscaler", "sentiment")
    recommender = find.object(prod_plan, "HorizontalPodAutoscaler", "recommender")

    assert sentiment["metadata"]["namespace"] == "sentiment"
    assert sentiment["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sentiment"}
    assert (sentiment["spec"]["minReplicas"], sentiment["spec"]["maxReplicas"]) == (1, 6)
    assert sentiment["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}]
    assert recommender["spec"]["metrics"][0]["resource"]["name"] == "memory"
    assert recommender["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 75


# ------------------------------------------------------------------------ outputs

def test_kubeconfig_output_is_secret(dev_plan) -> None:
    assert dev_plan.secret_outputs == {"kubeconfig"}
    kubeconfig = json.loads(dev_plan.outputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:4] == ["eks", "get-token", "--cluster-name", "ml-dev"]


def test_api_urls_output(dev_plan, prod_plan) -> None:
    assert dev_plan.outputs["clusterName"] == "ml-dev"
    assert dev_plan.outputs["apiUrls"] == {api: f"http://{api}.{api}.svc.cluster.local" for api in DEV_APIS}
    assert prod_plan.outputs["apiUrls"] == {
        api: f"http://{api}.{api}.svc.cluster.local"
        for api in ("fraud-score", "recommender", "sentiment", "image-embed", "llm-chat")}


def test_api_url_names_the_service(dev_plan, find) -> None:
    service = find.object(dev_plan, "Service", "sentiment")
    host = dev_plan.outputs["apiUrls"]["sentiment"].removeprefix("http://").split(".")

    assert host[:2] == [service["metadata"]["name"], service["metadata"]["namespace"]]


# ------------------------------------------------------------------------ add-ons

def test_helm_releases_are_pinned(dev_plan, find) -> None:
    autoscaler = find.one(dev_plan, RELEASE, "ml-dev-cluster-autoscaler").inputs
    plugin = find.one(dev_plan, RELEASE, "ml-dev-nvidia-device-plugin").inputs

    for release, chart in ((autoscaler, "cluster-autoscaler"), (plugin, "nvidia-device-plugin")):
        assert release["chart"] == chart
        assert re.fullmatch(r"\d+\.\d+\.\d+", release["version"]), release["version"]
        assert (release["repositoryOpts"]["repo"], release["version"]) == (CHARTS[chart][0],
                                                                          chart_version(chart, "1.33"))
    assert autoscaler["version"] == "9.51.0"
    assert plugin["version"] == "0.17.1"


@pytest.mark.parametrize(("kubernetes", "chart", "image"), [
    # Chart appVersion = the control plane's minor; 1.32+ need chart >= 9.46.3 for the
    # volumeattachments RBAC (kubernetes/autoscaler#7663), which these all have.
    ("1.31", "9.43.1", "v1.31.0"),
    ("1.32", "9.46.6", "v1.32.0"),
    ("1.33", "9.51.0", "v1.33.0"),
    ("1.34", "9.53.0", "v1.34.2"),
    ("1.35", "9.59.0", "v1.35.0"),
])
def test_cluster_autoscaler_matches_the_control_plane(render, stack_configs, find, kubernetes: str, chart: str,
                                                      image: str) -> None:
    plan = render("dev", stack_configs.edited("dev", (("modelplane:cluster", "kubernetesVersion"), kubernetes)))
    release = find.one(plan, RELEASE, "ml-dev-cluster-autoscaler").inputs

    assert (release["version"], release["values"]["image"]["tag"]) == (chart, image)


def test_cluster_autoscaler_values(dev_plan, find) -> None:
    values = find.one(dev_plan, RELEASE, "ml-dev-cluster-autoscaler").inputs["values"]

    assert values["cloudProvider"] == "aws"
    assert values["awsRegion"] == "us-east-1"
    assert values["autoDiscovery"] == {"clusterName": "ml-dev"}
    # The autoscaler's minor version must match the control plane's.
    assert values["image"]["tag"] == "v1.33.0"
    assert values["nodeSelector"] == {NODE_GROUP_LABEL: "system"}
    assert values["rbac"]["serviceAccount"] == {
        "name": "cluster-autoscaler",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ml-dev-cluster-autoscaler"}}


def test_cluster_autoscaler_role_is_for_its_service_account_only(dev_plan, find) -> None:
    trust = json.loads(find.one(dev_plan, "aws:iam/role:Role", "ml-dev-cluster-autoscaler").inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    [(issuer_sub, subject)] = [(k, v) for k, v in statement["Condition"]["StringEquals"].items() if k.endswith(":sub")]

    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.")
    assert subject == "system:serviceaccount:kube-system:cluster-autoscaler"
    assert issuer_sub.startswith("oidc.eks.us-east-1.amazonaws.com/id/")


def test_cluster_autoscaler_may_only_resize_this_clusters_groups(dev_plan, find) -> None:
    role_policy = find.one(dev_plan, "aws:iam/rolePolicy:RolePolicy", "ml-dev-cluster-autoscaler")
    policy = json.loads(role_policy.inputs["policy"])
    writes = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]

    assert len(writes) == 1
    assert writes[0]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/ml-dev": "owned"}}
    # Every other statement is read-only.
    for statement in policy["Statement"]:
        if statement is not writes[0]:
            assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in statement["Action"])


def test_device_plugin_runs_on_every_gpu_node(dev_plan, find) -> None:
    plugin = find.one(dev_plan, RELEASE, "ml-dev-nvidia-device-plugin").inputs

    assert plugin["namespace"] == "kube-system"
    assert plugin["values"]["tolerations"] == [{"operator": "Exists"}]


HELM_RELEASE_NAME_MAX = 53
"""Helm refuses longer release names (chartutil.ValidateReleaseName)."""

AUTONAME_SUFFIX = len("-") + 8
"""pulumi-kubernetes names a Release without ``name`` ``<resource name>-<8 hex>``, untruncated."""


def test_helm_release_names_fit_helms_limit_for_the_longest_cluster_name(render, stack_configs) -> None:
    longest = "ml-" + "x" * 36 + "a"  # ClusterConfig.name allows 40 characters
    config = stack_configs.edited("dev", (("modelplane:cluster", "name"), longest))

    releases = render("dev", config).by_type(RELEASE)

    # Autonamed releases embed the cluster name and overflow; fixed names do not.
    assert len(releases) == 5
    for release in releases:
        name = release.inputs.get("name") or release.name + "x" * AUTONAME_SUFFIX
        assert len(name) <= HELM_RELEASE_NAME_MAX, (release.name, len(name))


@pytest.mark.parametrize("change", ["no GPU groups", "Bottlerocket GPU group"])
def test_no_device_plugin_without_al2023_gpu_groups(render, stack_configs, change: str) -> None:
    if change == "no GPU groups":
        config = stack_configs.edited("dev", (("modelplane:nodeGroups", "gpu-spot"), stack_configs.DELETE),
                                      (("modelplane:apis", "image-embed"), stack_configs.DELETE),
                                      (("modelplane:apis", "doc-embed"), stack_configs.DELETE))
    else:  # Bottlerocket's NVIDIA variants ship the device plugin.
        config = stack_configs.edited("dev", (("modelplane:nodeGroups", "gpu-spot", "amiType"),
                                              "BOTTLEROCKET_x86_64_NVIDIA"))

    plan = render("dev", config)

    assert "ml-dev-nvidia-device-plugin" not in [r.name for r in plan.by_type(RELEASE)]
    assert "ml-dev-cluster-autoscaler" in [r.name for r in plan.by_type(RELEASE)]


def test_probes_rollout_timing_and_shm_follow_config(prod_plan, find) -> None:
    from modelplane.model_api import rollout_timeout

    deployment = find.object(prod_plan, "Deployment", "llm-chat")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]

    assert container["startupProbe"] == {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10,
                                         "timeoutSeconds": 3, "failureThreshold": 90}
    assert container["livenessProbe"] == {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 15,
                                          "timeoutSeconds": 3, "failureThreshold": 4}
    assert deployment["spec"]["minReadySeconds"] == 30
    assert deployment["spec"]["progressDeadlineSeconds"] == 1800
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    # pulumi up waits as long as Kubernetes gives every step of a rollout at maxReplicas, plus a minute:
    # llm-chat surges one replica of three at a time (1800 s deadline), prod sentiment one of ten (600 s),
    # fraud-score 50% of 60 with 0 unavailable (two steps).
    assert rollout_timeout(prod_plan.config.apis["llm-chat"]) == f"{3 * 1800 + 60}s"
    assert rollout_timeout(prod_plan.config.apis["sentiment"]) == f"{10 * 600 + 60}s"
    assert rollout_timeout(prod_plan.config.apis["fraud-score"]) == f"{2 * 600 + 60}s"
    # APIs that declare no liveness or startup probe get none.
    [sentiment] = find.object(prod_plan, "Deployment", "sentiment")["spec"]["template"]["spec"]["containers"]
    assert "livenessProbe" not in sentiment and "startupProbe" not in sentiment


def test_model_from_s3_gets_a_role_for_exactly_its_prefix(dev_plan, find) -> None:
    role = find.one(dev_plan, "aws:iam/role:Role", "image-embed-api").inputs
    policy = json.loads(find.one(dev_plan, "aws:iam/rolePolicy:RolePolicy", "image-embed-model-reader")
                        .inputs["policy"])
    account = find.object(dev_plan, "ServiceAccount", "image-embed")
    [container] = find.object(dev_plan, "Deployment", "image-embed")["spec"]["template"]["spec"]["containers"]

    [trust] = json.loads(role["assumeRolePolicy"])["Statement"]
    [(sub_key, subject)] = [(k, v) for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert subject == "system:serviceaccount:image-embed:image-embed"
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::acme-ml-models-dev/clip-vit-base-patch32/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::acme-ml-models-dev",
         "Condition": {"StringLike": {"s3:prefix": ["clip-vit-base-patch32", "clip-vit-base-patch32/*"]}}},
    ]
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/image-embed-api",
        "pulumi.com/patchForce": "true"}
    assert {"name": "MODELPLANE_MODEL_URI", "value": "s3://acme-ml-models-dev/clip-vit-base-patch32/"} \
        in container["env"]
    # An API without modelUri has no AWS access at all.
    assert "eks.amazonaws.com/role-arn" not in find.object(dev_plan, "ServiceAccount", "sentiment")["metadata"][
        "annotations"]


def test_config_files_come_from_a_content_named_configmap_that_rolls_the_pods(render, stack_configs, find) -> None:
    def rendered(files: dict[str, str]) -> tuple[Any, dict, dict]:
        plan = render("dev", stack_configs.edited("dev", (("modelplane:apis", "sentiment", "configFiles"), files)))
        [config_map] = [o for o in find.objects(plan, "ConfigMap") if o["metadata"]["namespace"] == "sentiment"
                        and o["metadata"]["name"].startswith("sentiment-config-")]
        return plan, config_map, find.object(plan, "Deployment", "sentiment")

    plan, first, deployment = rendered({"labels.txt": "negative\npositive\n"})
    _, again, _ = rendered({"labels.txt": "negative\npositive\n"})
    changed_plan, changed, rolled = rendered({"labels.txt": "negative\nneutral\npositive\n"})

    assert first["metadata"]["name"].startswith("sentiment-config-")
    assert first["immutable"] is True and first["data"] == {"labels.txt": "negative\npositive\n"}
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert changed["metadata"]["name"] != first["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": first["metadata"]["name"]}} in pod["volumes"]
    assert {"name": "config", "mountPath": "/etc/modelplane/config", "readOnly": True} \
        in pod["containers"][0]["volumeMounts"]
    assert {"name": "config", "configMap": {"name": changed["metadata"]["name"]}} \
        in rolled["spec"]["template"]["spec"]["volumes"]
    # The Pulumi resource keeps its name; only the Kubernetes name follows the content.
    for a_plan in (plan, changed_plan):
        assert find.one(a_plan, "kubernetes:core/v1:ConfigMap", "sentiment-config") is not None
    # No config files, no ConfigMap.
    assert not [o for o in find.objects(render("dev", stack_configs.load("dev")), "ConfigMap")
                if "-config-" in o["metadata"]["name"]]


def test_sidecar_shares_the_socket_directory_and_hardening(prod_plan, find) -> None:
    pod = find.object(prod_plan, "Deployment", "recommender")["spec"]["template"]["spec"]
    serving, sidecar = pod["containers"]

    assert [serving["name"], sidecar["name"]] == ["model", "bandit-model"]
    assert "/bandit-model:3.2.0@sha256:" in sidecar["image"]
    assert sidecar["args"] == ["--socket", "/var/run/modelplane/model.sock"]
    assert sidecar["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    assert sidecar["securityContext"] == serving["securityContext"]
    assert "ports" not in sidecar and "readinessProbe" not in sidecar
    socket_mount = {"name": "sockets", "mountPath": "/var/run/modelplane"}
    assert socket_mount in serving["volumeMounts"] and socket_mount in sidecar["volumeMounts"]
    assert {"name": "sockets", "emptyDir": {}} in pod["volumes"]
    for container in (serving, sidecar):
        assert {"name": "MODELPLANE_SOCKET_DIR", "value": "/var/run/modelplane"} in container["env"]


def test_sidecar_gpus_count_towards_the_replica(stack_configs) -> None:
    from modelplane.config import ConfigError, parse_estate

    config = stack_configs.edited("dev", (("modelplane:apis", "image-embed", "sidecars"),
                                          {"helper": {"image": "ghcr.io/acme/helper:1.0.0", "compute": {"gpu": 1}}}))

    with pytest.raises(ConfigError) as caught:
        parse_estate(config, "stacks/Pulumi.dev.yaml")

    # image-embed's own GPU plus the sidecar's: two GPUs do not fit on a one-GPU g5.xlarge.
    [issue] = caught.value.issues
    assert issue.where() == "modelplane:apis.image-embed.compute.gpu"
    assert issue.message.startswith("2 GPUs per replica do not fit")


def test_secrets_are_mounted_read_only_as_files(prod_plan, find) -> None:
    pod = find.object(prod_plan, "Deployment", "llm-chat")["spec"]["template"]["spec"]

    assert {"name": "secret-0", "secret": {"secretName": "hf-token"}} in pod["volumes"]
    assert {"name": "secret-0", "mountPath": "/var/run/secrets/huggingface", "readOnly": True} \
        in pod["containers"][0]["volumeMounts"]


def test_a_secret_cannot_shadow_a_directory_modelplane_mounts(stack_configs) -> None:
    from modelplane.config import ConfigError, parse_estate

    config = stack_configs.edited("dev", (("modelplane:apis", "sentiment", "secrets"), {"creds": "/tmp"}))

    with pytest.raises(ConfigError) as caught:
        parse_estate(config, "stacks/Pulumi.dev.yaml")

    [issue] = caught.value.issues
    assert issue.where() == "modelplane:apis.sentiment.secrets.creds"


def test_model_api_used_directly_refuses_gpus_on_a_placement_without_them() -> None:
    # A stack file gets this as a config error; a ModelApi built in someone's own program gets it here.
    # No engine: the refusal comes before the component registers anything.
    from modelplane import ApiConfig, ClusterContext, ConfigError, ModelApi, ModelApiArgs, NodeGroupConfig, Placement

    spec = ApiConfig.model_validate({"image": "ghcr.io/acme/x:1", "nodeGroup": "cpu",
                                     "readinessProbe": {"path": "/"}, "compute": {"gpu": 1}})
    cpu = Placement.for_group("cpu", NodeGroupConfig.model_validate({"instanceTypes": ["m6i.large"]}))
    with pytest.raises(ConfigError, match="ModelApi 'x': spec.nodeGroup: API 'x' asks for 1 GPU\\(s\\) but node "
                                          "group 'cpu' has no GPUs"):
        ModelApi("x", ModelApiArgs(spec=spec, placement=cpu, cluster=ClusterContext(name="c")))
    # A placement without the group's config (a pool known only by its labels) is still refused.
    bare = Placement(group="cpu", labels={"pool": "cpu"})
    with pytest.raises(ConfigError, match="ModelApi 'x': spec.compute.gpu: asks for 1 GPU\\(s\\) per replica but "
                                          "its placement, node group 'cpu', has no GPUs"):
        ModelApi("x", ModelApiArgs(spec=spec, placement=bare, cluster=ClusterContext(name="c")))


def test_model_api_used_directly_holds_its_spec_to_the_stack_files_api_rules() -> None:
    """Cross-key rules and the cluster facts a spec needs: every problem, in one error, before anything registers."""
    # No engine: the refusal comes before the component registers anything.
    from modelplane import ApiConfig, ClusterContext, ConfigError, ModelApi, ModelApiArgs, Placement

    spec = ApiConfig.model_validate({"image": "ghcr.io/acme/x:1.0", "nodeGroup": "cpu",
                                     "readinessProbe": {"path": "/"},
                                     "canary": {"image": "ghcr.io/acme/x:1.1", "weight": 10}})
    with pytest.raises(ConfigError) as caught:
        ModelApi("x", ModelApiArgs(spec=spec, placement=Placement(group="cpu"), cluster=ClusterContext(name="c")))
    assert [(issue.where(), issue.message.split(":")[0]) for issue in caught.value.issues] == [
        ("spec.canary", "splits the load balancer's traffic by weight and needs expose; expose the API, or try "
                        "the version as a shadow"),
        ("cluster.prometheus_url", "is required")]
    assert str(caught.value).startswith("ModelApi 'x': 2 problem(s) in its spec and cluster context:")
    assert "the API scales on 'inFlight'" in str(caught.value)


def test_sidecar_probes_target_its_own_port(render, stack_configs, find) -> None:
    import kubernetes_validate

    config = stack_configs.edited("dev", (("modelplane:apis", "sentiment", "sidecars"), {"ranker": {
        "image": "ghcr.io/acme/ranker:2.1.0", "port": 9000,
        "readinessProbe": {"path": "/ready", "periodSeconds": 4},
        "livenessProbe": {"path": "/live"}, "startupProbe": {"path": "/ready", "failureThreshold": 30}}}))
    deployment = find.object(render("dev", config), "Deployment", "sentiment")
    ranker = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "ranker")
    assert ranker["ports"] == [{"containerPort": 9000, "protocol": "TCP"}]
    assert ranker["readinessProbe"] == {"httpGet": {"path": "/ready", "port": 9000}, "periodSeconds": 4,
                                        "timeoutSeconds": 3, "failureThreshold": 3}
    assert ranker["livenessProbe"]["httpGet"] == {"path": "/live", "port": 9000}
    assert ranker["startupProbe"] == {"httpGet": {"path": "/ready", "port": 9000}, "periodSeconds": 10,
                                      "timeoutSeconds": 3, "failureThreshold": 30}
    kubernetes_validate.validate(deployment, "1.33", strict=True)
    # A sidecar without a port gets neither ports nor probes (dev's other APIs have none).
    plain = stack_configs.edited("dev", (("modelplane:apis", "sentiment", "sidecars"), {"ranker": {
        "image": "ghcr.io/acme/ranker:2.1.0"}}))
    [bare] = [c for c in find.object(render("dev", plain), "Deployment", "sentiment")["spec"]["template"]["spec"][
        "containers"] if c["name"] == "ranker"]
    assert not {"ports", "readinessProbe", "livenessProbe", "startupProbe"} & set(bare)
