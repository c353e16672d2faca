"""The AWS Load Balancer Controller add-on (``addons.load_balancer_controller``): when it is installed, where, with
which values, and the IAM role and policy it gets.

It runs only in AWS, so its tier here is the mock engine: the release's inputs, its
role's trust and its policy are asserted exactly; the policy's action list is written
out below, not derived from the code under test.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

from modelplane.addons import load_balancer_controller_policy
from modelplane.charts import CHARTS, KUBERNETES_VERSIONS, chart_version
from modelplane.config import ConfigError, parse_estate
from modelplane.offline import Plan

CLUSTER = "modelplane:cluster"
APIS = "modelplane:apis"
EXISTING = (CLUSTER, "existing")
EXPOSE_SENTIMENT = ((APIS, "sentiment", "expose"), {"visibility": "internal"})
RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SERVING_CLUSTER = "modelplane:index:ServingCluster"
CONTROLLER = "ml-dev-aws-load-balancer-controller"
SERVICE_ACCOUNT = "system:serviceaccount:kube-system:aws-load-balancer-controller"

EKS = {"oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCD",
       "oidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCD", "vpcId": "vpc-0abc123"}
"""``existing`` keys of an EKS cluster the controller can be installed into."""

ACTIONS = {
    "iam:CreateServiceLinkedRole",
    "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
    "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:CreateTags", "ec2:DeleteTags",
    "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
    "elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
    "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:SetRulePriorities",
}
"""What ALB Ingresses with IP targets need of controller v3.5 (see the policy's docstring for what is left out)."""

OWNER = "elbv2.k8s.aws/cluster"

INLINE_POLICY_LIMIT = 10240
"""IAM's limit on a role's inline policies, in characters without whitespace."""


@pytest.fixture(scope="module")
def exposed_plan(render, stack_configs) -> Plan:
    """dev with its sentiment API exposed on the internal load balancer."""
    return render("dev", stack_configs.edited("dev", EXPOSE_SENTIMENT))


@pytest.fixture(scope="module")
def unexposed_plan(render, stack_configs) -> Plan:
    """dev with none of its APIs exposed."""
    return render("dev", stack_configs.edited("dev", (("modelplane:apis", "sentiment", "expose"), stack_configs.DELETE),
                                              (("modelplane:apis", "image-embed", "expose"), stack_configs.DELETE)))


@pytest.fixture(scope="module")
def policy(exposed_plan: Plan, find) -> dict[str, Any]:
    return json.loads(find.one(exposed_plan, ROLE_POLICY, CONTROLLER).inputs["policy"])


def problems(config: dict[str, Any]) -> dict[str, str]:
    """where -> message of every issue (fails the test if the config is accepted)."""
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, "stacks/Pulumi.local.yaml")
    return {issue.where(): issue.message for issue in caught.value.issues}


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


def _resources(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


# ------------------------------------------------------------------------ a created cluster

def test_an_exposed_api_adds_the_release_its_role_and_policy_to_the_cluster(unexposed_plan, exposed_plan,
                                                                            find) -> None:
    before = find.children(unexposed_plan, SERVING_CLUSTER, "ml-dev")
    after = find.children(exposed_plan, SERVING_CLUSTER, "ml-dev")

    assert after - before == {(RELEASE, CONTROLLER), (ROLE, CONTROLLER), (ROLE_POLICY, CONTROLLER)}
    assert before <= after


def test_no_exposed_api_no_controller(unexposed_plan) -> None:
    assert not [r for r in unexposed_plan.resources if "load-balancer-controller" in r.name]
    assert not unexposed_plan.config.installs_load_balancer_controller


def test_release_is_pinned_in_kube_system_with_a_fixed_name(exposed_plan, find) -> None:
    release = find.one(exposed_plan, RELEASE, CONTROLLER).inputs

    assert (release["chart"], release["version"]) == ("aws-load-balancer-controller", "3.5.0")
    assert release["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    assert release["namespace"] == "kube-system"
    assert release["name"] == "aws-load-balancer-controller"
    assert release["createNamespace"] is False


@pytest.mark.parametrize("kubernetes", KUBERNETES_VERSIONS)
def test_one_chart_version_for_every_kubernetes_minor(kubernetes: str) -> None:
    # Controller v3.5.0 supports Kubernetes 1.22 and later: no pin per minor.
    assert CHARTS["aws-load-balancer-controller"] == ("https://aws.github.io/eks-charts", "3.5.0")
    assert chart_version("aws-load-balancer-controller", kubernetes) == "3.5.0"


def test_release_values_name_the_cluster_region_vpc_role_and_system_nodes(exposed_plan, find) -> None:
    values = find.one(exposed_plan, RELEASE, CONTROLLER).inputs["values"]
    subnet_vpc = find.one(exposed_plan, "aws:ec2/subnet:Subnet", "ml-dev-private-0").inputs["vpcId"]

    assert subnet_vpc.startswith("vpc-")
    assert values == {
        "clusterName": "ml-dev",
        "region": "us-east-1",
        # The VPC the cluster's subnets are in: given, because pods cannot ask the instance metadata.
        "vpcId": subnet_vpc,
        "serviceAccount": {"create": True, "name": "aws-load-balancer-controller",
                           "annotations": {"eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/{CONTROLLER}"}},
        "ingressClass": "alb",
        "createIngressClassResource": True,
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        "enableServiceMutatorWebhook": False,
        "keepTLSSecret": True,
        "nodeSelector": {"modelplane.io/node-group": "system"},
    }


def test_release_waits_for_the_system_nodes(exposed_plan, find) -> None:
    release = find.one(exposed_plan, RELEASE, CONTROLLER)
    nodes = find.one(exposed_plan, "eks:index:ManagedNodeGroup", "ml-dev-system")
    assert nodes.urn in release.dependencies


def test_role_is_for_the_controllers_service_account_only(exposed_plan, find) -> None:
    trust = json.loads(find.one(exposed_plan, ROLE, CONTROLLER).inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    conditions = statement["Condition"]

    assert list(conditions) == ["StringEquals"]
    [(sub_key, subject)] = [(k, v) for k, v in conditions["StringEquals"].items() if k.endswith(":sub")]
    [(aud_key, audience)] = [(k, v) for k, v in conditions["StringEquals"].items() if k.endswith(":aud")]
    assert subject == SERVICE_ACCOUNT
    assert audience == "sts.amazonaws.com"
    assert sub_key.removesuffix(":sub") == aud_key.removesuffix(":aud")
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": "arn:aws:iam::123456789012:oidc-provider/"
                                                   + sub_key.removesuffix(":sub")}


def test_the_policy_pack_finds_nothing_wrong_with_the_role(project, exposed_plan) -> None:
    from modelplane.cli import policy_report

    report = policy_report(project, exposed_plan)

    assert report.skipped is None
    assert [d for d in report.diagnostics if CONTROLLER in d.resource] == []


# ------------------------------------------------------------------------ the policy

def test_policy_grants_exactly_the_controllers_actions(policy) -> None:
    granted = [a for s in policy["Statement"] for a in _actions(s)]

    assert set(granted) == ACTIONS
    assert all(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s
               for s in policy["Statement"])


def test_policy_has_no_wildcard_action(policy) -> None:
    for statement in policy["Statement"]:
        for action in _actions(statement):
            service, _, name = action.partition(":")
            assert service and name and "*" not in action, action
    assert not {a for s in policy["Statement"] for a in _actions(s) if a.startswith("iam:")} - {
        "iam:CreateServiceLinkedRole"}


def test_the_one_iam_action_creates_only_elbs_service_linked_role(policy) -> None:
    [statement] = [s for s in policy["Statement"] if "iam:CreateServiceLinkedRole" in _actions(s)]

    assert _actions(statement) == ["iam:CreateServiceLinkedRole"]
    assert statement["Resource"] == ("arn:aws:iam::*:role/aws-service-role/elasticloadbalancing.amazonaws.com/"
                                     "AWSServiceRoleForElasticLoadBalancing")
    assert statement["Condition"] == {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}


def test_only_reads_go_to_every_resource_and_only_in_the_region(policy) -> None:
    for statement in policy["Statement"]:
        if "*" in _resources(statement):
            assert _resources(statement) == ["*"]
            assert all(a.split(":")[1].startswith("Describe") for a in _actions(statement))
            assert statement["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}


def test_every_other_statement_names_the_region_or_the_elb_role(policy) -> None:
    for statement in policy["Statement"]:
        for resource in _resources(statement):
            if resource != "*" and not resource.startswith("arn:aws:iam::"):
                assert resource.split(":")[3] == "us-east-1", resource


def test_changes_and_deletes_need_the_clusters_owner_tag(policy) -> None:
    owned = {"StringEquals": {f"aws:ResourceTag/{OWNER}": "ml-dev"}}
    by_sid = {s["Sid"]: s for s in policy["Statement"]}

    assert by_sid["DeleteOwnedSecurityGroups"]["Condition"] == owned
    assert by_sid["ManageOwnedLoadBalancers"]["Condition"] == owned
    # Re-tagging keeps the owner tag: nobody else's resource can be made ours, ours not given away.
    for sid in ("RetagOwnedSecurityGroups", "RetagOwnedLoadBalancers"):
        assert by_sid[sid]["Condition"] == {**owned, "Null": {f"aws:RequestTag/{OWNER}": "true"}}
    assert set(_actions(by_sid["ManageOwnedLoadBalancers"])) >= {
        "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"}


def test_what_it_creates_carries_the_clusters_owner_tag(policy) -> None:
    created = {f"aws:RequestTag/{OWNER}": "ml-dev"}
    by_sid = {s["Sid"]: s for s in policy["Statement"]}

    assert by_sid["CreateOwnedLoadBalancers"]["Condition"] == {"StringEquals": created}
    assert by_sid["CreateOwnedLoadBalancers"]["Resource"] == [
        "arn:aws:elasticloadbalancing:us-east-1:*:loadbalancer/app/*/*",
        "arn:aws:elasticloadbalancing:us-east-1:*:targetgroup/*/*"]
    assert by_sid["CreateOwnedSecurityGroups"]["Condition"] == {"StringEquals": created}
    assert by_sid["TagOwnedSecurityGroupsOnCreation"]["Condition"] == {"StringEquals": {
        "ec2:CreateAction": "CreateSecurityGroup", **created}}
    assert by_sid["TagOwnedLoadBalancersOnCreation"]["Condition"] == {"StringEquals": {
        "elasticloadbalancing:CreateAction": ["CreateLoadBalancer", "CreateTargetGroup"], **created}}


def test_security_group_rules_and_groups_only_in_the_clusters_vpc(exposed_plan, policy, find) -> None:
    vpc_id = find.one(exposed_plan, RELEASE, CONTROLLER).inputs["values"]["vpcId"]
    vpc = f"arn:aws:ec2:us-east-1:*:vpc/{vpc_id}"
    rules = [s for s in policy["Statement"] if "ec2:AuthorizeSecurityGroupIngress" in _actions(s)]

    assert [s["Condition"] for s in rules] == [{"ArnLike": {"ec2:Vpc": vpc}}]
    [in_vpc] = [s for s in policy["Statement"] if s["Resource"] == vpc]
    assert _actions(in_vpc) == ["ec2:CreateSecurityGroup"]


def test_policy_fits_irams_inline_policy_limit(exposed_plan, find) -> None:
    policy = find.one(exposed_plan, ROLE_POLICY, CONTROLLER).inputs["policy"]
    assert len("".join(policy.split())) < INLINE_POLICY_LIMIT


@pytest.mark.parametrize(("region", "partition"), [("us-east-1", "aws"), ("cn-north-1", "aws-cn"),
                                                   ("us-gov-west-1", "aws-us-gov")])
def test_policy_arns_are_in_the_regions_partition(region: str, partition: str) -> None:
    policy = load_balancer_controller_policy("c", region, "vpc-1")
    arns = {r for s in policy["Statement"] for r in _resources(s) if r != "*"}
    assert arns and all(r.startswith(f"arn:{partition}:") for r in arns), arns


# ------------------------------------------------------------------------ chart sources and the plan

def test_chart_can_come_from_a_mirror_at_another_version(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", EXPOSE_SENTIMENT, ((CLUSTER, "charts"), {
        "aws-load-balancer-controller": {"repository": "oci://registry.example.com/eks/", "version": "3.4.3"}}))
    release = find.one(render("dev", config), RELEASE, CONTROLLER).inputs

    assert (release["chart"], release["version"]) == (
        "oci://registry.example.com/eks/aws-load-balancer-controller", "3.4.3")
    assert "repositoryOpts" not in release


def test_plan_lists_the_controller_as_an_add_on(unexposed_plan, exposed_plan) -> None:
    from modelplane.cli import format_plan

    def row(plan: Plan) -> str:
        table = format_plan(plan).split("Cluster add-ons", 1)[1].split("\n\n", 1)[0]
        [line] = [line for line in table.splitlines() if line.split()[:1] == ["loadBalancerController"]]
        return " ".join(line.split()[1:])

    assert row(exposed_plan) == ("installed by modelplane aws-load-balancer-controller 3.5.0 from "
                                 "https://aws.github.io/eks-charts")
    assert row(unexposed_plan) == "not needed -"


def test_exposed_render_stays_strict_valid(exposed_plan, find) -> None:
    import kubernetes_validate

    # Built-in objects (core and *.k8s.io groups); test_render checks custom resources against their CRDs.
    built_in = [o for o in find.objects(exposed_plan)
                if "." not in o["apiVersion"].rpartition("/")[0] or o["apiVersion"].split("/")[0].endswith(".k8s.io")]
    assert len(built_in) >= 4 * len(exposed_plan.config.apis)
    for obj in built_in:
        assert kubernetes_validate.validate(obj, "1.33", strict=True) == "1.33"


# ------------------------------------------------------------------------ an existing cluster

def _existing(stack_configs, mode: str | None, **existing: Any) -> dict[str, Any]:
    edits = [((*EXISTING, key), value) for key, value in existing.items()]
    if mode is not None:
        edits.append(((*EXISTING, "addons", "loadBalancerController"), mode))
    return stack_configs.edited("local", ((APIS, "sentiment", "expose"), {"visibility": "internal"}),
                                (("aws:region",), "eu-west-1"), *edits)


def test_install_into_an_existing_eks_cluster(render, stack_configs, find) -> None:
    config = _existing(stack_configs, "install", **EKS, addonNodeSelector={"example.com/pool": "system"})
    plan = render("local", config)
    values = find.one(plan, RELEASE, "local-aws-load-balancer-controller").inputs["values"]
    policy = json.loads(find.one(plan, ROLE_POLICY, "local-aws-load-balancer-controller").inputs["policy"])
    trust = json.loads(find.one(plan, ROLE, "local-aws-load-balancer-controller").inputs["assumeRolePolicy"])

    assert (values["clusterName"], values["region"], values["vpcId"]) == ("local", "eu-west-1", "vpc-0abc123")
    assert values["nodeSelector"] == {"example.com/pool": "system"}
    assert trust["Statement"][0]["Principal"] == {"Federated": EKS["oidcProviderArn"]}
    assert trust["Statement"][0]["Condition"]["StringEquals"]["oidc.eks.eu-west-1.amazonaws.com/id/ABCD:sub"] == \
        SERVICE_ACCOUNT
    vpc_conditions = [s["Condition"] for s in policy["Statement"] if s["Sid"] == "ChangeSecurityGroupRulesInTheVpc"]
    assert vpc_conditions == [{"ArnLike": {"ec2:Vpc": "arn:aws:ec2:eu-west-1:*:vpc/vpc-0abc123"}}]


def test_install_is_the_default_on_an_existing_cluster(stack_configs) -> None:
    config = _existing(stack_configs, None, **EKS)
    assert parse_estate(config, "stacks/Pulumi.local.yaml").installs_load_balancer_controller


def test_install_into_an_existing_cluster_needs_its_vpc(stack_configs) -> None:
    config = _existing(stack_configs, "install", **{k: v for k, v in EKS.items() if k != "vpcId"})
    found = problems(config)

    assert set(found) == {"modelplane:cluster.existing.vpcId"}
    assert "sentiment" in found["modelplane:cluster.existing.vpcId"]
    assert "instance metadata" in found["modelplane:cluster.existing.vpcId"]


def test_install_into_an_existing_cluster_needs_its_oidc_provider_and_region(stack_configs) -> None:
    config = _existing(stack_configs, "install", vpcId="vpc-0abc123")
    del config["aws:region"]
    found = problems(config)

    assert set(found) == {"modelplane:cluster.existing.addons.loadBalancerController"}
    message = found["modelplane:cluster.existing.addons.loadBalancerController"]
    assert "OIDC provider" in message and "aws:region" in message and "sentiment" in message


def test_none_with_an_exposed_api_names_both_keys(stack_configs) -> None:
    found = problems(_existing(stack_configs, "none"))

    assert set(found) == {"modelplane:apis.sentiment.expose"}
    assert "modelplane:cluster.existing.addons.loadBalancerController is none" in \
        found["modelplane:apis.sentiment.expose"]


def test_present_installs_nothing_and_needs_no_aws_keys(render, stack_configs) -> None:
    config = _existing(stack_configs, "present")
    # Only where the load balancers' traffic comes from, for the NetworkPolicies.
    assert set(problems(config)) == {"modelplane:cluster.existing.vpcCidr"}
    config["modelplane:cluster"]["existing"]["vpcCidr"] = "10.0.0.0/16"
    plan = render("local", config)

    assert not [r for r in plan.resources if "load-balancer-controller" in r.name]
    assert not {r.type for r in plan.resources if r.type.startswith("aws:")}


def test_without_exposed_apis_an_install_needs_nothing(stack_configs) -> None:
    # The local stack leaves the controller at its default, install, and exposes nothing.
    estate = parse_estate(stack_configs.load("local"), "stacks/Pulumi.local.yaml")
    assert estate.addon("loadBalancerController") == "install"
    assert not estate.installs_load_balancer_controller


# ------------------------------------------------------------------------ the cluster context

def _contexts(build: Any) -> Any:
    import pulumi
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from modelplane.offline import start_mock_engine

    start_mock_engine("context", "eu-west-1")
    built: list[Any] = []
    try:
        _sync_await(run_pulumi_func(lambda: built.append(build())))
    finally:
        gc.enable()
        pulumi.runtime.settings.reset_options()
    return built[0]


@pytest.mark.parametrize("install", [True, False])
def test_context_hands_ingresses_the_release_of_a_created_cluster(install: bool) -> None:
    import pulumi_kubernetes as k8s

    from modelplane import ServingCluster, ServingClusterArgs
    from modelplane.config import ClusterConfig

    cluster = _contexts(lambda: ServingCluster("ml-c", ServingClusterArgs(
        spec=ClusterConfig.model_validate({"name": "ml-c"}), region="eu-west-1", load_balancer_controller=install)))

    controller = cluster.context.load_balancer_controller
    assert controller is cluster.load_balancer_controller
    assert isinstance(controller, k8s.helm.v3.Release) if install else controller is None


@pytest.mark.parametrize("install", [True, False])
def test_context_hands_ingresses_the_release_of_an_existing_cluster(install: bool) -> None:
    import pulumi_kubernetes as k8s

    from modelplane import ExistingCluster, ExistingClusterArgs
    from modelplane.config import ClusterConfig

    spec = ClusterConfig.model_validate({"name": "ml-c", "existing": {"kubeconfigPath": "~/.kube/config", **EKS}})
    cluster = _contexts(lambda: ExistingCluster("ml-c", ExistingClusterArgs(
        spec=spec, region="eu-west-1", load_balancer_controller=install)))

    controller = cluster.context.load_balancer_controller
    assert isinstance(controller, k8s.helm.v3.Release) if install else controller is None


def test_existing_cluster_used_directly_refuses_an_install_without_the_vpc() -> None:
    from modelplane import ExistingCluster, ExistingClusterArgs
    from modelplane.config import ClusterConfig

    spec = ClusterConfig.model_validate({"name": "ml-c", "existing": {
        "kubeconfigPath": "~/.kube/config", **{k: v for k, v in EKS.items() if k != "vpcId"}}})
    with pytest.raises(ValueError, match=r"existing\.vpcId"):
        _contexts(lambda: ExistingCluster("ml-c", ExistingClusterArgs(spec=spec, region="eu-west-1",
                                                                   load_balancer_controller=True)))
