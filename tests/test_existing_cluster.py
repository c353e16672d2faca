"""Existing-cluster mode: ``modelplane:cluster.existing``, the ``local`` stack, ``ExistingCluster``, chart sources.

The estate goes into a cluster that already runs: nothing of AWS's cluster
machinery is created, node groups describe pools that are there, add-ons are
installed or only used, and AWS features need the cluster's OIDC provider.
The real engine and API server judge the same stack in ``tests/e2e``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from modelplane.config import ConfigError, Issue, load_stack_file, parse_estate
from modelplane.offline import Plan

from conftest import DELETE

SOURCE = "stacks/Pulumi.local.yaml"
CLUSTER = "modelplane:cluster"
GROUPS = "modelplane:nodeGroups"
APIS = "modelplane:apis"
EXISTING = (CLUSTER, "existing")
OIDC = {"oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCD",
        "oidcIssuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCD"}
RELEASE = "kubernetes:helm.sh/v3:Release"


def problems(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> dict[str, str]:
    """where -> message of every issue parse_estate reports (fails the test if the config is accepted)."""
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, SOURCE, secret_keys)
    return {issue.where(): issue.message for issue in caught.value.issues}


def types(plan: Plan) -> set[str]:
    return {r.type for r in plan.resources}


@pytest.fixture(scope="module")
def local_plan(render) -> Plan:
    return render("local")


# ------------------------------------------------------------------------ what the local stack registers

def test_local_stack_creates_no_aws_cluster_network_or_node_group(local_plan: Plan) -> None:
    assert not {t for t in types(local_plan) if t.startswith(("aws:", "eks:"))}
    assert local_plan.config.region is None
    assert local_plan.by_type("modelplane:index:ServingCluster") == []
    assert local_plan.by_type("modelplane:index:NodeGroup") == []
    assert local_plan.by_type("modelplane:index:GpuNodeGroup") == []
    # Nothing is installed: KEDA and the device plugin are declared present, Prometheus is outside.
    assert local_plan.by_type(RELEASE) == []


def test_local_estate_is_the_existing_cluster_and_its_apis(local_plan: Plan, find) -> None:
    assert find.children(local_plan, "modelplane:index:Estate", "local") == {
        ("modelplane:index:ExistingCluster", "local"),
        ("modelplane:index:ModelApi", "image-embed"),
        ("modelplane:index:ModelApi", "recommender"),
        ("modelplane:index:ModelApi", "sentiment"),
    }
    assert find.children(local_plan, "modelplane:index:ExistingCluster", "local") == {
        ("pulumi:providers:kubernetes", "local-k8s")}
    provider = find.one(local_plan, "pulumi:providers:kubernetes", "local-k8s")
    assert provider.inputs == {"kubeconfig": "~/.kube/config", "context": "kind-modelplane",
                               "enableServerSideApply": "true"}
    # Every Kubernetes object goes through that provider, none through an ambient default one.
    objects = [r for r in local_plan.resources if r.type.startswith("kubernetes:")]
    assert objects and {r.provider_urn for r in objects} == {provider.urn}
    assert set(local_plan.outputs) == {"clusterName", "apiUrls", "platform"}


def test_local_apis_select_and_tolerate_the_pools_they_are_declared_on(local_plan: Plan, find) -> None:
    gpu = find.object(local_plan, "Deployment", "image-embed")["spec"]["template"]["spec"]
    cpu = find.object(local_plan, "Deployment", "sentiment")["spec"]["template"]["spec"]
    assert gpu["nodeSelector"] == {"modelplane.io/node-group": "gpu"}
    assert gpu["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]
    assert cpu["nodeSelector"] == {"modelplane.io/node-group": "cpu"}
    assert "tolerations" not in cpu
    # The pool's KEDA is present (only used): the ScaledObject waits for no release of ours.
    scaled = find.one(local_plan, "kubernetes:keda.sh/v1alpha1:ScaledObject", "image-embed-autoscaling")
    assert [d for d in scaled.dependencies if "helm" in d] == []
    trigger = scaled.inputs["spec"]["triggers"][0]
    assert trigger["metadata"]["serverAddress"] == "http://prometheus-server.monitoring.svc:80"
    # Prometheus is outside the cluster: pods are found by annotations, no PodMonitor.
    assert local_plan.by_type("kubernetes:monitoring.coreos.com/v1:PodMonitor") == []


def test_existing_pool_labels_are_what_the_apis_select_on(render, stack_configs, find) -> None:
    config = stack_configs.edited("local", ((GROUPS, "gpu", "labels"),
                                            {"eks.amazonaws.com/nodegroup": "a10g", "example.com/tier": "gpu"}),
                                  ((GROUPS, "gpu", "gpuTaint"), False),
                                  ((GROUPS, "gpu", "taints"), [{"key": "sku", "value": "gpu"}]))
    pod = find.object(render("local", config), "Deployment", "image-embed")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "a10g", "example.com/tier": "gpu"}
    assert pod["tolerations"] == [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]


# ------------------------------------------------------------------------ how the cluster is reached

def test_kubeconfig_from_an_encrypted_config_value_is_a_secret_input(render, stack_configs, find) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "kubeconfigPath"), DELETE),
                                  ((*EXISTING, "kubeconfig"), {"secure": "v1:AAAAAAAAAAAAAAAAAAAAAAAA"}))
    plan = render("local", config)
    provider = find.one(plan, "pulumi:providers:kubernetes", "local-k8s")
    assert provider.inputs["kubeconfig"].startswith("# encrypted in the stack file")


def test_kubeconfig_in_plain_text_is_refused_unless_pulumi_decrypted_it(stack_configs) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "kubeconfigPath"), DELETE),
                                  ((*EXISTING, "kubeconfig"), "apiVersion: v1\nkind: Config\n"))
    found = problems(config)
    assert list(found) == ["modelplane:cluster.existing.kubeconfig"]
    assert "plain text" in found["modelplane:cluster.existing.kubeconfig"]
    assert "pulumi config set --secret --path modelplane:cluster.existing.kubeconfig" in \
        found["modelplane:cluster.existing.kubeconfig"]
    # Under the engine the decrypted value arrives as text, and the whole key is marked secret.
    estate = parse_estate(config, SOURCE, secret_keys=("modelplane:cluster",))
    assert estate.existing is not None and estate.existing.kubeconfig == "apiVersion: v1\nkind: Config\n"


def test_kubeconfig_from_another_stack(render, stack_configs, find) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "kubeconfigPath"), DELETE), ((*EXISTING, "context"), DELETE),
                                  ((*EXISTING, "stackReference"), {"stack": "acme/eks-base/prod"}))
    plan = render("local", config)
    reference = find.one(plan, "pulumi:pulumi:StackReference", "local-cluster")
    assert reference.inputs == {"name": "acme/eks-base/prod"}
    provider = find.one(plan, "pulumi:providers:kubernetes", "local-k8s")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["current-context"] == "acme/eks-base/prod:kubeconfig"


@pytest.mark.parametrize("sources", [{}, {"kubeconfigPath": "/a", "stackReference": {"stack": "x/y/z"}}],
                         ids=["none", "two"])
def test_exactly_one_kubeconfig_source(stack_configs, sources: dict[str, Any]) -> None:
    config = stack_configs.edited("local", (EXISTING, {**sources, "addons": {"keda": "present",
                                                                             "nvidiaDevicePlugin": "present",
                                                                             "prometheus": "none"}}))
    found = problems(config)
    assert list(found) == ["modelplane:cluster.existing"]
    assert "exactly one of kubeconfig (a secret), kubeconfigPath, stackReference" in \
        found["modelplane:cluster.existing"]


def test_a_kubeconfig_path_is_absolute_or_under_home(stack_configs) -> None:
    # The provider reads the file from its own working directory, which is not the project's.
    config = stack_configs.edited("local", ((*EXISTING, "kubeconfigPath"), "kubeconfig.yaml"))
    assert list(problems(config)) == ["modelplane:cluster.existing.kubeconfigPath"]
    for path in ("/etc/kube/config", "~/.kube/config"):
        parse_estate(stack_configs.edited("local", ((*EXISTING, "kubeconfigPath"), path)), SOURCE)


# ------------------------------------------------------------------------ what an existing cluster may say

def test_keys_of_a_created_cluster_or_node_group_are_errors(stack_configs) -> None:
    config = stack_configs.edited("local", ((CLUSTER, "vpc"), {"cidr": "10.1.0.0/16"}),
                                  ((CLUSTER, "systemNodeGroup"), {"minSize": 2}),
                                  ((CLUSTER, "deletionProtection"), True),
                                  ((GROUPS, "gpu", "diskSizeGib"), 200), ((GROUPS, "cpu", "amiType"),
                                                                          "BOTTLEROCKET_x86_64"))
    found = problems(config)
    assert set(found) == {"modelplane:cluster.vpc", "modelplane:cluster.systemNodeGroup",
                          "modelplane:cluster.deletionProtection", "modelplane:nodeGroups.gpu.diskSizeGib",
                          "modelplane:nodeGroups.cpu.amiType"}
    assert "an existing cluster keeps its own" in found["modelplane:cluster.vpc"]
    assert "describes a pool that is there" in found["modelplane:nodeGroups.gpu.diskSizeGib"]


def test_aws_features_need_both_oidc_keys(stack_configs) -> None:
    config = stack_configs.edited("local", ((APIS, "sentiment", "modelUri"), "s3://acme-models/sentiment/"),
                                  ((APIS, "recommender", "queue"), {"url": "https://sqs.eu-west-1.amazonaws.com/"
                                                                           "123456789012/recs"}))
    found = problems(config)
    assert set(found) == {"modelplane:apis.sentiment.modelUri", "modelplane:apis.recommender.queue"}
    for message in found.values():
        assert "modelplane:cluster.existing.oidcProviderArn and modelplane:cluster.existing.oidcIssuer" in message
    # With both keys, the API gets its IRSA role, trusted by exactly its service account.
    with_oidc = stack_configs.edited("local", ((*EXISTING, "oidcProviderArn"), OIDC["oidcProviderArn"]),
                                     ((*EXISTING, "oidcIssuer"), OIDC["oidcIssuer"]),
                                     ((APIS, "sentiment", "modelUri"), "s3://acme-models/sentiment/"))
    assert parse_estate(with_oidc, SOURCE).apis["sentiment"].model_uri == "s3://acme-models/sentiment/"


def test_oidc_keys_come_in_pairs(stack_configs) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "oidcProviderArn"), OIDC["oidcProviderArn"]))
    assert list(problems(config)) == ["modelplane:cluster.existing.oidcIssuer"]


def test_a_queue_modelplane_creates_needs_a_region(stack_configs) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "oidcProviderArn"), OIDC["oidcProviderArn"]),
                                  ((*EXISTING, "oidcIssuer"), OIDC["oidcIssuer"]),
                                  ((APIS, "recommender", "queue"), {}),
                                  ((APIS, "recommender", "autoscaling"), {"metric": "queue", "minReplicas": 0}))
    found = problems(config)
    assert list(found) == ["modelplane:apis.recommender.queue"]
    assert "aws:region" in found["modelplane:apis.recommender.queue"]
    config["aws:region"] = "eu-west-1"
    assert parse_estate(config, SOURCE).region == "eu-west-1"


def test_add_ons_declared_absent_refuse_the_apis_that_need_them(stack_configs) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "addons", "keda"), "none"),
                                  ((*EXISTING, "addons", "nvidiaDevicePlugin"), "none"))
    found = problems(config)
    assert set(found) == {"modelplane:apis.image-embed.autoscaling.metric", "modelplane:apis.image-embed.compute.gpu"}
    assert "existing.addons.keda is none" in found["modelplane:apis.image-embed.autoscaling.metric"]


def test_a_prometheus_that_is_there_needs_its_url(stack_configs) -> None:
    config = stack_configs.edited("local", ((CLUSTER, "prometheus"), DELETE),
                                  ((*EXISTING, "addons", "prometheus"), "present"))
    found = problems(config)
    assert list(found) == ["modelplane:cluster.prometheus.url"]
    assert "image-embed" in found["modelplane:cluster.prometheus.url"]
    installing = stack_configs.edited("local", ((*EXISTING, "addons", "prometheus"), "install"))
    assert "install conflicts with prometheus.url" in \
        problems(installing)["modelplane:cluster.existing.addons.prometheus"]


def test_installing_the_cluster_autoscaler_needs_an_eks_cluster(stack_configs) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "addons", "clusterAutoscaler"), "install"))
    assert "OIDC provider" in problems(config)["modelplane:cluster.existing.addons.clusterAutoscaler"]


def test_present_keda_without_its_role_warns_about_queue_permissions(stack_configs) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "oidcProviderArn"), OIDC["oidcProviderArn"]),
                                  ((*EXISTING, "oidcIssuer"), OIDC["oidcIssuer"]),
                                  ((APIS, "recommender", "queue"), {"url": "https://sqs.eu-west-1.amazonaws.com/"
                                                                           "123456789012/recs"}),
                                  ((APIS, "recommender", "autoscaling"), {"metric": "queue", "maxReplicas": 3}))
    [warning] = parse_estate(config, SOURCE).warnings
    assert "recommender" in warning and "kedaRoleName" in warning


# ------------------------------------------------------------------------ add-ons installed into an existing cluster

def test_installed_add_ons_follow_the_add_on_node_selector_and_the_gpu_pools(render, stack_configs, find) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "addons"), {"keda": "install", "prometheus": "none",
                                                                    "nvidiaDevicePlugin": "install"}),
                                  ((*EXISTING, "addonNodeSelector"), {"example.com/pool": "system"}),
                                  ((GROUPS, "gpu", "labels"), {"eks.amazonaws.com/nodegroup": "a10g"}))
    plan = render("local", config)
    keda = find.one(plan, RELEASE, "local-keda")
    plugin = find.one(plan, RELEASE, "local-nvidia-device-plugin")
    assert keda.inputs["values"]["nodeSelector"] == {"example.com/pool": "system"}
    # No OIDC provider: KEDA gets no IAM role (nothing it scales on needs AWS).
    assert "podIdentity" not in keda.inputs["values"]
    assert not {t for t in types(plan) if t.startswith("aws:")}
    assert plugin.inputs["values"]["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "eks.amazonaws.com/nodegroup", "operator": "In",
                                                     "values": ["a10g"]}]}]}}}
    # The objects that need the release's CRDs wait for it; GPU replicas wait for the device plugin.
    scaled = find.one(plan, "kubernetes:keda.sh/v1alpha1:ScaledObject", "image-embed-autoscaling")
    assert keda.urn in scaled.dependencies
    assert plugin.urn in find.one(plan, "kubernetes:apps/v1:Deployment", "image-embed").dependencies
    assert plugin.urn not in find.one(plan, "kubernetes:apps/v1:Deployment", "sentiment").dependencies


def test_the_cluster_autoscaler_on_an_existing_eks_cluster(render, stack_configs, find) -> None:
    config = stack_configs.edited("local", ((*EXISTING, "addons", "clusterAutoscaler"), "install"),
                                  ((*EXISTING, "oidcProviderArn"), OIDC["oidcProviderArn"]),
                                  ((*EXISTING, "oidcIssuer"), OIDC["oidcIssuer"]), (("aws:region",), "eu-west-1"))
    plan = render("local", config)
    release = find.one(plan, RELEASE, "local-cluster-autoscaler")
    assert release.inputs["values"]["autoDiscovery"] == {"clusterName": "local"}
    assert release.inputs["values"]["awsRegion"] == "eu-west-1"
    role = find.one(plan, "aws:iam/role:Role", "local-cluster-autoscaler")
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Federated": OIDC["oidcProviderArn"]}
    assert trust["Condition"]["StringEquals"]["oidc.eks.eu-west-1.amazonaws.com/id/ABCD:sub"] == \
        "system:serviceaccount:kube-system:cluster-autoscaler"


# ------------------------------------------------------------------------ chart sources

def test_chart_sources_can_be_a_mirror_or_an_oci_registry(render, stack_configs, find) -> None:
    config = stack_configs.edited("dev", ((CLUSTER, "charts"), {
        "keda": {"repository": "oci://registry.example.com/charts/", "version": "2.20.1"},
        "kube-prometheus-stack": {"repository": "https://mirror.example.com/helm"}}))
    plan = render("dev", config)
    keda = find.one(plan, RELEASE, "ml-dev-keda")
    prometheus = find.one(plan, RELEASE, "ml-dev-kube-prometheus-stack")
    autoscaler = find.one(plan, RELEASE, "ml-dev-cluster-autoscaler")
    assert (keda.inputs["chart"], keda.inputs["version"]) == ("oci://registry.example.com/charts/keda", "2.20.1")
    assert "repositoryOpts" not in keda.inputs
    assert prometheus.inputs["chart"] == "kube-prometheus-stack"
    assert prometheus.inputs["repositoryOpts"] == {"repo": "https://mirror.example.com/helm"}
    assert prometheus.inputs["version"] == "88.5.3"  # the pin stays the default
    assert autoscaler.inputs["repositoryOpts"] == {"repo": "https://kubernetes.github.io/autoscaler"}


def test_chart_sources_name_known_charts_and_valid_sources(stack_configs) -> None:
    config = stack_configs.edited("dev", ((CLUSTER, "charts"), {"kyverno": {"repository": "oci://x"},
                                                                "keda": {"repository": "ftp://mirror"}}))
    found = problems(config)
    assert set(found) == {"modelplane:cluster.charts.kyverno", "modelplane:cluster.charts.keda.repository"}


# ------------------------------------------------------------------------ the plan says where it goes

def test_plan_names_the_existing_cluster_and_its_add_ons(local_plan: Plan) -> None:
    from modelplane.cli import format_plan

    text = format_plan(local_plan)
    assert "an existing cluster (kubeconfig ~/.kube/config context kind-modelplane)" in text.splitlines()[0]
    assert "Node groups (pools of the existing cluster)" in text
    table = text.split("Cluster add-ons", 1)[1].split("\n\n", 1)[0]
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in table.strip().splitlines()[1:]}
    assert rows["keda"] == "present, only used -"
    assert rows["prometheus"] == ("outside (scrapes pod annotations); KEDA queries "
                                  "http://prometheus-server.monitoring.svc:80 -")
    assert rows["clusterAutoscaler"] == "none -"
    assert rows["loadBalancerController"] == "not needed -"


# ------------------------------------------------------------------------ the engine's own reader

DUPLICATES = {
    "nested key": ("config:\n  modelplane:cluster:\n    name: local\n    name: other\n", [(4, "name", 3)]),
    "top-level key": ("config:\n  aws:region: us-east-1\n  aws:region: eu-west-1\n", [(3, "aws:region", 2)]),
    "in a list item": ("config:\n  a:\n    - {key: k, key: j}\n", [(3, "key", 3)]),
    "quoted and plain": ("config:\n  a:\n    \"1\": x\n    1: y\n", [(4, "1", 3)]),
    "two merge keys": ("config:\n  a:\n    x: &v {p: 1}\n    y:\n      <<: *v\n      <<: *v\n", [(6, "<<", 5)]),
    "config twice": ("config:\n  a: 1\nconfig:\n  b: 2\n", [(3, "config", 1)]),
    "three times": ("config:\n  a:\n    k: 1\n    k: 2\n    k: 3\n", [(4, "k", 3), (5, "k", 3)]),
    "null and ~": ("config:\n  a:\n    null: x\n    ~: y\n", []),
    "1 and 01": ("config:\n  a:\n    1: x\n    01: y\n", []),
    "merge then override": ("config:\n  a:\n    x: &v {p: 1}\n    y:\n      <<: *v\n      p: 2\n", []),
}


@pytest.mark.parametrize("name", list(DUPLICATES))
def test_duplicate_keys_are_refused_as_pulumi_refuses_them(tmp_path, name: str) -> None:
    # The e2e tier checks these verdicts against the Pulumi CLI itself (Go yaml.v3: same node kind and
    # same text is a duplicate, whatever the tags); here, that modelplane names every one with its lines.
    text, expected = DUPLICATES[name]
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(text)
    if not expected:
        load_stack_file(path)
        return
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    lines = [re.match(r"line (\d+): mapping key \"(.*)\" already defined at line (\d+)", issue.message)
             for issue in caught.value.issues]
    found = [(int(m[1]), m[2], int(m[3])) for m in lines if m]
    assert len(found) == len(caught.value.issues)
    assert found == expected


def test_duplicate_api_keys_name_the_api(tmp_path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  modelplane:apis:\n    sentiment: {image: a:1}\n    sentiment: {image: b:1}\n")
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    [issue] = caught.value.issues
    assert issue == Issue(("modelplane:apis", "sentiment"), 'line 4: mapping key "sentiment" already defined at '
                          "line 3; Pulumi refuses a stack file with a key twice in one mapping: keep one")
