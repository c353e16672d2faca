"""components/package.py: modelplane's components as a Pulumi component package.

The schema is the one the SDK's component provider host serves (``pulumi package get-schema``):
the same ``ComponentProvider`` is built here, without an engine. The package components are
then constructed under modelplane's offline mock engine, through the provider's ``construct``
as the engine calls it (camelCase keys, numbers as floats), and compared with the Python
components given the same config.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider

from modelplane import (
    ApiConfig,
    AutoscalingConfig,
    AutoscalingPolicyArgs,
    ClusterContext,
    ConfigError,
    ModelApiArgs,
    Placement,
    run_program,
)
from modelplane import AutoscalingPolicy as PyAutoscalingPolicy
from modelplane import ModelApi as PyModelApi
from modelplane import package
from modelplane.cluster_context import kubernetes_provider
from modelplane.placement import Taint

COMPONENTS_DIR = Path(package.__file__).resolve().parent
TOKENS = {f"modelplane:index:{name}" for name in ("ServingCluster", "GpuNodeGroup", "ModelApi", "AutoscalingPolicy")}


@pytest.fixture(scope="module")
def provider() -> ComponentProvider:
    return ComponentProvider(package.COMPONENTS, package.PACKAGE, None, "0.1.0")


@pytest.fixture(scope="module")
def schema(provider: ComponentProvider) -> dict[str, Any]:
    return json.loads(provider.schema)


def test_the_package_serves_the_four_components_under_their_python_type_tokens(schema) -> None:
    assert schema["name"] == "modelplane"
    assert set(schema["resources"]) == TOKENS
    assert all(resource["isComponent"] for resource in schema["resources"].values())
    # The class names are the Python components' (the SDK derives each token from its class's name).
    import modelplane

    assert {c.__name__ for c in package.COMPONENTS} == {t.rsplit(":", 1)[1] for t in TOKENS} <= set(modelplane.__all__)


def test_model_api_inputs_have_types_required_keys_and_docs(schema) -> None:
    model_api = schema["resources"]["modelplane:index:ModelApi"]
    inputs = model_api["inputProperties"]
    assert model_api["requiredInputs"] == ["clusterName", "placement", "spec"]
    assert {k: (v.get("type"), v.get("$ref")) for k, v in inputs.items()} == {
        "spec": (None, "#/types/modelplane:index:ApiSpec"),
        "placement": (None, "#/types/modelplane:index:NodePlacement"),
        "clusterName": ("string", None),
        "kubeconfig": ("string", None),
        "kubernetesVersion": ("string", None),
        "region": ("string", None),
        "oidcProviderArn": ("string", None),
        "oidcProviderUrl": ("string", None),
        "prometheusUrl": ("string", None),
        "podMonitors": ("boolean", None),
        "metricsScrapers": ("array", None),
        "kedaRoleName": ("string", None),
        "loadBalancerCidrs": ("array", None),
        "namespace": ("string", None),
        "labels": ("object", None),
        "tags": ("object", None),
    }
    # The spec is plain (validated when the component is constructed); the kubeconfig may be another resource's output.
    assert inputs["spec"]["plain"] is True and "plain" not in inputs["kubeconfig"]
    assert inputs["labels"]["additionalProperties"]["type"] == "string"
    assert model_api["properties"]["url"]["type"] == model_api["properties"]["namespace"]["type"] == "string"
    assert model_api["required"] == ["namespace", "url"]  # externalUrl: only when exposed

    spec = schema["types"]["modelplane:index:ApiSpec"]
    assert spec["required"] == ["image", "readinessProbe"]
    props = spec["properties"]
    assert props["image"]["type"] == "string" and props["port"]["type"] == "integer"
    assert props["command"] == {**props["command"], "type": "array"} and props["command"]["items"]["type"] == "string"
    assert props["env"]["type"] == "object" and props["env"]["additionalProperties"]["type"] == "string"
    assert props["compute"]["$ref"] == "#/types/modelplane:index:ComputeSpec"
    assert props["readinessProbe"]["$ref"] == props["livenessProbe"]["$ref"] == "#/types/modelplane:index:ProbeSpec"
    assert props["autoscaling"]["$ref"] == "#/types/modelplane:index:AutoscalingSpec"
    assert props["maxConcurrency"]["description"] == ApiConfig.model_fields["max_concurrency"].description
    probe = schema["types"]["modelplane:index:ProbeSpec"]
    assert probe["required"] == ["path"] and probe["properties"]["periodSeconds"]["type"] == "integer"
    compute = schema["types"]["modelplane:index:ComputeSpec"]["properties"]
    assert (compute["cpu"]["type"], compute["gpu"]["type"]) == ("string", "integer")
    scaling = schema["types"]["modelplane:index:AutoscalingSpec"]["properties"]
    assert (scaling["maxUpscaleFactor"]["type"], scaling["minReplicas"]["type"]) == ("number", "integer")
    assert scaling["custom"]["$ref"] == "#/types/modelplane:index:CustomMetricSpec"
    # Every key of a stack file's API but its node group (the placement input): maps of specs, nested specs.
    assert set(props) == {f.alias for k, f in ApiConfig.model_fields.items() if k != "node_group"}
    assert props["sidecars"]["additionalProperties"]["$ref"] == "#/types/modelplane:index:SidecarSpec"
    assert props["secrets"]["additionalProperties"]["type"] == "string"
    assert {props[k]["$ref"].rsplit(":", 1)[1] for k in ("startupProbe", "proxy", "queue", "updateStrategy",
                                                         "network", "expose", "canary", "shadow")} == {
        "StartupProbeSpec", "ProxySpec", "QueueSpec", "UpdateStrategySpec", "NetworkSpec", "ExposeSpec",
        "CanarySpec", "ShadowSpec"}
    network = schema["types"]["modelplane:index:NetworkSpec"]["properties"]
    assert network["egress"]["items"]["$ref"] == "#/types/modelplane:index:EgressRuleSpec"
    assert schema["types"]["modelplane:index:EgressRuleSpec"]["properties"]["cidr"]["type"] == "string"
    expose = schema["types"]["modelplane:index:ExposeSpec"]["properties"]
    assert expose["allowFrom"]["items"]["type"] == "string"  # CIDR blocks
    assert expose["certificate"]["$ref"] == "#/types/modelplane:index:CertificateSpec"
    # A count or a percent: Any, which the config model checks.
    strategy = schema["types"]["modelplane:index:UpdateStrategySpec"]["properties"]
    assert strategy["maxSurge"]["$ref"] == strategy["maxUnavailable"]["$ref"] == "pulumi.json#/Any"
    assert inputs["metricsScrapers"]["items"]["$ref"] == "#/types/modelplane:index:NetworkPeerSpec"
    assert inputs["loadBalancerCidrs"]["items"]["type"] == "string"
    placement = schema["types"]["modelplane:index:NodePlacement"]["properties"]
    assert placement["instanceTypes"]["items"]["type"] == "string"


def test_the_other_components_inputs_and_outputs(schema) -> None:
    resources = schema["resources"]
    cluster = resources["modelplane:index:ServingCluster"]
    assert cluster["requiredInputs"] == ["region", "spec"]
    assert cluster["inputProperties"]["keda"]["type"] == "boolean"
    assert cluster["properties"]["cluster"]["$ref"].endswith("/schema.json#/resources/eks:index:Cluster")
    assert cluster["properties"]["nodeRole"]["$ref"].endswith("/schema.json#/resources/aws:iam%2Frole:Role")
    assert cluster["properties"]["privateSubnetIds"] == {**cluster["properties"]["privateSubnetIds"],
                                                         "type": "array"}
    gpus = resources["modelplane:index:GpuNodeGroup"]
    assert gpus["requiredInputs"] == ["cluster", "nodeRole", "spec", "subnetIds"]
    assert gpus["inputProperties"]["cluster"]["$ref"] == cluster["properties"]["cluster"]["$ref"]
    assert gpus["inputProperties"]["spec"]["$ref"] == "#/types/modelplane:index:NodeGroupSpec"
    assert gpus["properties"]["gpusPerNode"]["type"] == "integer"
    assert schema["types"]["modelplane:index:NodeGroupSpec"]["required"] == ["instanceTypes"]
    cluster_spec = schema["types"]["modelplane:index:ClusterSpec"]["properties"]
    assert {cluster_spec[k]["$ref"].rsplit(":", 1)[1] for k in ("vpc", "endpoint", "systemNodeGroup", "prometheus")} \
        == {"VpcSpec", "EndpointSpec", "SystemNodeGroupSpec", "PrometheusSpec"}
    assert cluster_spec["charts"]["additionalProperties"]["$ref"] == "#/types/modelplane:index:ChartSourceSpec"
    assert "existing" not in cluster_spec and "capacityEngine" not in cluster_spec
    policy = resources["modelplane:index:AutoscalingPolicy"]
    assert policy["requiredInputs"] == ["namespace", "spec", "target"]
    assert policy["properties"]["hpaName"]["type"] == "string"
    # The packages its resource references come from, at the versions installed with modelplane.
    assert {d["name"] for d in schema["dependencies"]} == {"aws", "eks"}


def _union_fields() -> set[str]:
    """``<token>.<key>`` of each spec key whose config field is a union of plain types (int or str)."""
    import types
    import typing

    found = set()
    for name, (model, keys, _) in package.SPEC_TYPES.items():
        for key in keys:
            annotation = model.model_fields[key].annotation
            if typing.get_origin(annotation) in (typing.Union, types.UnionType) and \
                    len([a for a in typing.get_args(annotation) if a is not type(None)]) > 1:
                found.add(f"modelplane:index:{name}.{model.model_fields[key].alias}")
    return found


ANY_TYPED = _union_fields()


def test_any_is_only_where_a_count_or_a_percent_goes() -> None:
    assert ANY_TYPED == {"modelplane:index:UpdateStrategySpec.maxSurge",
                         "modelplane:index:UpdateStrategySpec.maxUnavailable"}


def _properties(schema: dict[str, Any]):
    for token, resource in schema["resources"].items():
        for kind in ("inputProperties", "properties"):
            for key, prop in resource[kind].items():
                yield f"{token}.{kind}.{key}", prop
    for token, complex_type in schema["types"].items():
        for key, prop in complex_type["properties"].items():
            yield f"{token}.{key}", prop


def test_every_component_type_and_property_is_documented_and_typed(schema) -> None:
    undocumented = [t for t, r in {**schema["resources"], **schema["types"]}.items() if not r.get("description")]
    assert undocumented == []
    for where, prop in _properties(schema):
        assert prop.get("description"), f"{where} has no description"
        assert prop.get("type") or prop.get("$ref"), f"{where} has no type"
        # pulumi.json#/Any is how an unannotated input would show: every input has a real type but the
        # config fields that take a count or a percent, which no schema type can say.
        if prop.get("$ref") == "pulumi.json#/Any":
            assert where in ANY_TYPED, f"{where} is untyped"
        for nested in (prop.get("items"), prop.get("additionalProperties")):
            assert nested is None or nested.get("type") or nested.get("$ref"), f"{where} holds untyped values"


def test_spec_types_are_the_config_models_keys_and_docs(schema) -> None:
    """A spec key is a stack file's key, typed and documented as its config model's field."""
    for name, (model, keys, _) in package.SPEC_TYPES.items():
        properties = schema["types"][f"modelplane:index:{name}"]["properties"]
        assert list(properties) == [model.model_fields[key].alias for key in keys], name
        for key in keys:
            field = model.model_fields[key]
            assert properties[field.alias]["description"] == field.description, (name, key)
        required = schema["types"][f"modelplane:index:{name}"].get("required", [])
        assert required == sorted(model.model_fields[k].alias for k in keys if model.model_fields[k].is_required())


def test_the_generated_types_module_is_current() -> None:
    assert (COMPONENTS_DIR / "package_types.py").read_text() == package.types_source(), (
        "components/package_types.py is stale: regenerate it with "
        "python -c 'from modelplane.package import types_source; print(types_source(), end=\"\")' "
        "> components/package_types.py")


def test_the_plugin_directory_is_components() -> None:
    plugin = yaml.safe_load((COMPONENTS_DIR / "PulumiPlugin.yaml").read_text())
    assert plugin["runtime"]["name"] == "python"
    assert (COMPONENTS_DIR / plugin["runtime"]["options"]["virtualenv"]).resolve() == \
        (COMPONENTS_DIR.parent / ".venv").resolve()
    assert "from modelplane.package import main" in (COMPONENTS_DIR / "__main__.py").read_text()


KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"

API = {"image": "ghcr.io/acme/sentiment:1.4.2", "port": 8080, "maxConcurrency": 4,
       "env": {"MODEL_NAME": "distilbert", "max_batch": "8"},
       "compute": {"cpu": "1", "mem": "2Gi"},
       "readinessProbe": {"path": "/healthz", "periodSeconds": 10},
       "autoscaling": {"minReplicas": 2, "maxReplicas": 6, "metric": "cpu", "targetUtilization": 60}}


def _as_engine_sends(value: Any) -> Any:
    """``value`` as a construct request carries it: every number a float."""
    if isinstance(value, bool) or not isinstance(value, (int, dict, list)):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _as_engine_sends(v) for k, v in value.items()}
    return [_as_engine_sends(v) for v in value]


def _tree(run, drop_root: str | None = None) -> list[tuple[str, str, str, str]]:
    """(type, name, parent's name, inputs) of every resource; ``drop_root``: the package wrapper's type, skipped."""
    by_urn = {r.urn: r for r in run.resources}
    root = next((r for r in run.resources if r.type == drop_root and r.parent not in by_urn), None)
    rows = []
    for r in run.resources:
        if r is root or r.type == "pulumi:pulumi:Stack":
            continue
        parent = by_urn.get(r.parent)
        parent_name = "" if parent is None or parent is root or parent.type == "pulumi:pulumi:Stack" else parent.name
        provider = r.provider.split("::")[-2] if r.provider else ""
        rows.append((r.type, r.name, parent_name, provider, json.dumps(r.inputs, sort_keys=True)))
    return sorted(rows)


def test_a_package_model_api_builds_what_the_python_model_api_builds(provider) -> None:
    inputs = _as_engine_sends({
        "clusterName": "acme", "kubernetesVersion": "1.33", "kubeconfig": KUBECONFIG,
        "placement": {"group": "gpu", "gpu": True, "labels": {"pool": "a10"},
                      "taints": [{"key": "team", "value": "ml", "effect": "NoSchedule"}]},
        "spec": {**API, "compute": {"cpu": "2", "mem": "8Gi", "gpu": 1}},
    })

    def through_the_package() -> None:
        result = provider.construct("sentiment", "modelplane:index:ModelApi", inputs, None)
        pulumi.export("url", result.state["url"])

    def python() -> None:
        spec = ApiConfig.model_validate({**API, "compute": {"cpu": "2", "mem": "8Gi", "gpu": 1}, "nodeGroup": "gpu"})
        placement = Placement(group="gpu", labels={"pool": "a10"}, gpu=True, selector={"pool": "a10"},
                              taints=(Taint("nvidia.com/gpu", "true", "NoSchedule"), Taint("team", "ml", "NoSchedule")))
        k8s_provider = kubernetes_provider("sentiment-k8s", pulumi.Output.secret(KUBECONFIG), pulumi.ResourceOptions())
        api = PyModelApi("sentiment", ModelApiArgs(spec=spec, placement=placement, cluster=ClusterContext(
            name="acme", kubernetes_version="1.33", provider=k8s_provider)))
        pulumi.export("url", api.url)

    packaged, direct = run_program(through_the_package), run_program(python)
    assert _tree(packaged, drop_root="modelplane:index:ModelApi") == _tree(direct)
    [wrapper] = [r for r in packaged.resources if r.type == "modelplane:index:ModelApi" and r.name == "sentiment"
                 and not r.parent.endswith("::modelplane:index:ModelApi::sentiment")]
    assert {r.type for r in packaged.children(wrapper.urn)} == {"modelplane:index:ModelApi",
                                                                "pulumi:providers:kubernetes"}
    assert packaged.outputs["url"] == direct.outputs["url"] == "http://sentiment.sentiment.svc.cluster.local"
    [deployment] = packaged.by_type("kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "a10"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "MODELPLANE_MAX_CONCURRENCY", "value": "4"} in pod["containers"][0]["env"]
    # Map contents keep their keys: only the spec's own keys are spelled as a stack file spells them.
    assert {"name": "max_batch", "value": "8"} in pod["containers"][0]["env"]


def test_a_package_autoscaling_policy_builds_the_python_policy(provider) -> None:
    spec = {"minReplicas": 1, "maxReplicas": 4, "metric": "memory", "targetUtilization": 80}

    def through_the_package() -> None:
        provider.construct("ranker", "modelplane:index:AutoscalingPolicy",
                           _as_engine_sends({"target": "ranker", "namespace": "team", "spec": spec}), None)

    def python() -> None:
        PyAutoscalingPolicy("ranker", AutoscalingPolicyArgs(target="ranker", namespace="team",
                                                            spec=AutoscalingConfig.model_validate(spec)))

    packaged, direct = run_program(through_the_package), run_program(python)
    assert _tree(packaged, drop_root="modelplane:index:AutoscalingPolicy") == _tree(direct)
    [hpa] = packaged.by_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert hpa.inputs["spec"]["metrics"][0]["resource"]["name"] == "memory"


def test_python_callers_write_the_typed_dicts() -> None:
    """The package classes are Python components too, taking their TypedDicts with Python keys."""
    def program() -> None:
        package.ModelApi("ranker", {"cluster_name": "acme", "placement": {"group": "cpu"},
                                    "spec": {"image": "ghcr.io/acme/ranker:2.0", "max_concurrency": 2,
                                             "readiness_probe": {"path": "/ready"},
                                             "autoscaling": {"metric": "cpu"}}})

    run = run_program(program)
    [deployment] = run.by_type("kubernetes:apps/v1:Deployment")
    assert deployment.inputs["spec"]["template"]["spec"]["nodeSelector"] == {"modelplane.io/node-group": "cpu"}
    # No kubeconfig: no provider of its own, the default one applies.
    assert run.by_type("pulumi:providers:kubernetes") == []


def test_a_bad_spec_is_reported_as_a_stack_file_would_be() -> None:
    with pytest.raises(ConfigError) as caught:
        package.ModelApi("ranker", {"cluster_name": "acme", "placement": {"group": "cpu"},
                                    "spec": {"image": "ghcr.io/acme/ranker:2.0", "port": 80, "maxConcurency": 2}})
    message = str(caught.value)
    assert message.startswith("modelplane:index:ModelApi 'ranker': 3 problem(s)")
    assert "spec.port: " in message and "spec.readinessProbe: " in message
    assert "unknown key 'maxConcurency' (did you mean 'maxConcurrency'?)" in message


def test_a_request_metric_needs_a_prometheus_url() -> None:
    with pytest.raises(ConfigError, match=r"prometheusUrl: is required: the API scales on 'inFlight'"):
        package.ModelApi("ranker", {"cluster_name": "acme", "placement": {"group": "cpu"},
                                    "spec": {"image": "ghcr.io/acme/ranker:2.0", "readiness_probe": {"path": "/"}}})


def test_the_api_rules_of_a_stack_file_apply_to_a_package_model_api() -> None:
    """Relational rules (a canary needs expose), the pod fit and what the cluster lacks: one run, all of them."""
    with pytest.raises(ConfigError) as caught:
        package.ModelApi("big", {"cluster_name": "acme", "kubernetes_version": "1.33",
                                 "placement": {"group": "cpu", "instance_types": ["m6i.large"]},
                                 "spec": {"image": "ghcr.io/acme/big:1.0", "readiness_probe": {"path": "/"},
                                          "model_uri": "s3://acme-models/big/",
                                          "compute": {"cpu": "2", "mem": "1Gi"},
                                          "canary": {"image": "ghcr.io/acme/big:1.1", "weight": 10},
                                          "update_strategy": {"max_surge": 0, "max_unavailable": "0%"},
                                          "autoscaling": {"metric": "cpu", "upscale_tolerance": 0.2}}})
    message = str(caught.value)
    assert message.startswith("modelplane:index:ModelApi 'big': 5 problem(s) in its inputs:"), message
    for expected in ("spec.canary: ", "spec.updateStrategy: maxSurge and maxUnavailable cannot both be 0",
                     "spec.autoscaling.upscaleTolerance: HPA tolerance is an alpha feature before Kubernetes 1.35",
                     "spec.compute.cpu: API 'big' needs 2.1 CPU", "node of group 'cpu' (m6i.large) has 1.93 CPU",
                     "oidcProviderArn: is required, with oidcProviderUrl: the API reads S3"):
        assert expected in message, expected
    with pytest.raises(ConfigError, match=r"region: is required: modelplane creates the API's queue in it"):
        package.ModelApi("worker", {"cluster_name": "acme", "placement": {"group": "cpu"},
                                    "oidc_provider_arn": "arn:aws:iam::1:oidc-provider/x", "oidc_provider_url": "x",
                                    "spec": {"image": "ghcr.io/acme/w:1.0", "readiness_probe": {"path": "/"},
                                             "queue": {}, "autoscaling": {"metric": "queue", "min_replicas": 0}}})
    # The queue's name is the cluster's and the API's: too long for SQS is said of this API, not of "spec".
    with pytest.raises(ConfigError, match=r"spec.queue: the queue modelplane creates would be named "
                                          r"'acme-ml-platform-serving-cluster-eu-west-1-production-worker-for-scanned-documents', 82 characters"):
        package.ModelApi("worker-for-scanned-documents", {
            "cluster_name": "acme-ml-platform-serving-cluster-eu-west-1-production", "region": "eu-west-1",
            "placement": {"group": "cpu"}, "oidc_provider_arn": "arn:aws:iam::1:oidc-provider/x",
            "oidc_provider_url": "x", "spec": {"image": "ghcr.io/acme/w:1.0", "readiness_probe": {"path": "/"},
                                             "queue": {}, "autoscaling": {"metric": "queue", "min_replicas": 0}}})
    with pytest.raises(ConfigError, match=r"placement.instanceTypes: "):
        package.ModelApi("x", {"cluster_name": "acme", "placement": {"group": "cpu", "instance_types": []},
                               "spec": {"image": "ghcr.io/acme/x:1.0", "readiness_probe": {"path": "/"},
                                        "autoscaling": {"metric": "cpu"}}})


def test_a_standalone_policy_refuses_a_metric_only_a_model_api_can_source() -> None:
    with pytest.raises(ConfigError, match=r"spec.metric: is 'inFlight'; a standalone AutoscalingPolicy scales on "
                                          r"cpu or memory"):
        package.AutoscalingPolicy("x", {"target": "x", "namespace": "x", "spec": {"metric": "inFlight"}})


def test_a_gpu_node_group_spec_is_validated_as_a_gpu_group() -> None:
    with pytest.raises(ConfigError, match=r"spec.instanceTypes"):
        package.GpuNodeGroup("gpu", {"cluster": None, "node_role": None, "subnet_ids": [],  # type: ignore[typeddict-item]
                                     "spec": {"min_size": 0}})


def test_the_readmes_yaml_example_constructs(provider) -> None:
    """The README's YAML program, its ModelApi's properties as the engine sends them, builds what it says."""
    readme = (COMPONENTS_DIR.parent / "README.md").read_text()
    [example] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "modelplane:index:ModelApi" in b]
    document = yaml.safe_load(example)
    assert document["packages"] == {"modelplane": "/path/to/modelplane/components"}
    [(name, resource)] = document["resources"].items()
    assert resource["type"] == "modelplane:index:ModelApi"
    properties = {**resource["properties"], "kubeconfig": KUBECONFIG}

    def program() -> None:
        result = provider.construct(name, resource["type"], _as_engine_sends(properties), None)
        pulumi.export("url", result.state["url"])

    run = run_program(program)
    assert run.outputs["url"] == "http://ranker.ranker.svc.cluster.local"
    [hpa] = run.by_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert (hpa.inputs["spec"]["minReplicas"], hpa.inputs["spec"]["maxReplicas"]) == (2, 6)


def test_a_package_cluster_and_gpu_group_build_what_the_python_ones_build() -> None:
    """The package's ServingCluster outputs the pulumi-eks cluster and node role its GpuNodeGroup takes."""
    from modelplane import ClusterConfig, GpuNodeGroup, NodeGroupArgs, NodeGroupConfig, ServingCluster, \
        ServingClusterArgs

    group = {"instanceTypes": ["g5.xlarge"], "maxSize": 2, "labels": {"team": "ml"}}

    def through_the_package() -> None:
        cluster = package.ServingCluster("shared", {"spec": {"name": "shared", "tags": {"team": "ml"}},
                                                    "region": "us-east-1", "nvidia_device_plugin": True})
        gpus = package.GpuNodeGroup("gpu", {"cluster": cluster.cluster, "node_role": cluster.node_role,
                                            "subnet_ids": cluster.private_subnet_ids,
                                            "spec": {"instance_types": ["g5.xlarge"], "max_size": 2,
                                                     "labels": {"team": "ml"}}})
        pulumi.export("gpus", gpus.gpus_per_node)
        pulumi.export("labels", gpus.labels)

    def python() -> None:
        cluster = ServingCluster("shared", ServingClusterArgs(
            spec=ClusterConfig.model_validate({"name": "shared", "tags": {"team": "ml"}}), region="us-east-1",
            nvidia_device_plugin=True))
        gpus = GpuNodeGroup("gpu", NodeGroupArgs(
            cluster=cluster.cluster, node_role=cluster.node_role, subnet_ids=cluster.private_subnet_ids,
            spec=NodeGroupConfig.model_validate({**group, "gpu": True})))
        pulumi.export("gpus", gpus.gpus_per_node)
        pulumi.export("labels", gpus.labels)

    packaged, direct = run_program(through_the_package), run_program(python)
    wrappers = {"modelplane:index:ServingCluster", "modelplane:index:GpuNodeGroup"}
    by_urn = {r.urn: r for r in packaged.resources}
    outer = [r for r in packaged.resources
             if r.type in wrappers and getattr(by_urn.get(r.parent), "type", None) not in wrappers]
    assert sorted((r.type, r.name) for r in outer) == [("modelplane:index:GpuNodeGroup", "gpu"),
                                                       ("modelplane:index:ServingCluster", "shared")]

    def rows(run, skip):
        names = {r.urn: r.name for r in run.resources if r not in skip and r.type != "pulumi:pulumi:Stack"}
        # A reference to the cluster names its URN, whose type chain has the package's wrapper once more.
        return sorted((r.type, r.name, names.get(r.parent, ""), json.dumps(r.inputs, sort_keys=True).replace(
            "modelplane:index:ServingCluster$modelplane:index:ServingCluster$", "modelplane:index:ServingCluster$"))
            for r in run.resources if r.urn in names)

    assert rows(packaged, outer) == rows(direct, [])
    assert packaged.outputs == direct.outputs == {
        "gpus": 1, "labels": {"team": "ml", "modelplane.io/node-group": "gpu", "nvidia.com/gpu.present": "true"}}


def test_a_gpu_placement_tolerates_the_gpu_taint_once() -> None:
    issues: list[Any] = []
    placement = package._placement({"group": "gpu", "gpu": True, "taints": [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}, {"key": "team", "value": "ml"}]}, issues)
    assert issues == []
    assert placement.tolerations() == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert placement.node_selector() == {"modelplane.io/node-group": "gpu"}


def test_every_problem_of_the_inputs_is_in_one_error() -> None:
    """A placement's bad taint, a spec's bad port and a bad scraper: one error with all three."""
    with pytest.raises(ConfigError) as caught:
        package.ModelApi("x", {"cluster_name": "acme", "placement": {"group": "gpu", "taints": [
            {"key": "team", "effect": "Never"}]}, "metrics_scrapers": [{"namespace": "Bad_Name"}],
            "spec": {"image": "ghcr.io/acme/x:1.0", "readiness_probe": {"path": "/"}, "port": 80}})
    assert [issue.where() for issue in caught.value.issues] == [
        "placement.taints[0].effect", "spec.port", "metricsScrapers[0].namespace"]
    assert str(caught.value).startswith("modelplane:index:ModelApi 'x': 3 problem(s) in its inputs:")
    assert "Input should be 'NoSchedule', 'PreferNoSchedule' or 'NoExecute'" in str(caught.value)


# ------------------------------------------------------------------ every API a stack file can declare

def _declared_apis() -> dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(API, its node group, the cluster) of every API in the stack files and in the field-coverage variations.

    The variations set each config field of an API to a distinctive value, so together they are
    every key a stack file's API can have; an API the same as another is kept once.
    """
    from conftest import PROJECT, StackConfigs
    from test_field_coverage import BASES, VARIATIONS

    configs = StackConfigs(PROJECT)
    docs = {stack: configs.load(stack) for stack in sorted(p.name.split(".")[1] for p in
                                                          (PROJECT / "stacks").glob("Pulumi.*.yaml"))}
    docs |= {f"base {b}": configs.edited("dev", *edits) for b, edits in BASES.items()}
    docs |= {v: configs.edited("dev", *BASES[var.base], *var.edits) for v, var in VARIATIONS.items()
             if v.startswith("apis.")}
    found: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
    seen: set[str] = set()
    for where, doc in docs.items():
        cluster = doc.get("modelplane:cluster", {})
        for api_name, api in doc.get("modelplane:apis", {}).items():
            group = doc["modelplane:nodeGroups"][api["nodeGroup"]]
            key = json.dumps([api_name, api, group, cluster.get("kubernetesVersion"),
                              cluster.get("prometheus", {}).get("scrapers")], sort_keys=True)
            if key not in seen:
                seen.add(key)
                found[f"{where}:{api_name}"] = (api_name, api, group, cluster)
    return found


DECLARED_APIS = _declared_apis()


def test_the_declared_apis_cover_every_api_key() -> None:
    used: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        used.add(path)

    for _, api, _, _ in DECLARED_APIS.values():
        walk(api, "")
    top = {f.alias for k, f in ApiConfig.model_fields.items()}
    assert {p.split(".")[1] for p in used if p} >= top, top - {p.split(".")[1] for p in used if p}
    assert len(DECLARED_APIS) > 50


@pytest.mark.parametrize("where", sorted(DECLARED_APIS))
def test_every_declared_api_builds_through_the_package_what_the_python_model_api_builds(provider, where) -> None:
    """A YAML or TypeScript program that writes a stack file's API gets the objects a stack file gets."""
    from modelplane import NodeGroupConfig
    from modelplane.config import NetworkPeer

    name, api, group, cluster = DECLARED_APIS[where]
    gpu = bool(group.get("gpu", False))
    taints = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}] if gpu else []
    taints += [{"effect": "NoSchedule", **t} for t in group.get("taints", [])]
    version = cluster.get("kubernetesVersion", "1.33")
    scrapers = cluster.get("prometheus", {}).get("scrapers", [])
    context = {"clusterName": "acme", "kubernetesVersion": version, "region": "us-east-1",
               "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/AB",
               "oidcProviderUrl": "https://oidc.eks.us-east-1.amazonaws.com/id/AB",
               "prometheusUrl": "http://prometheus-operated.monitoring.svc:9090", "podMonitors": True,
               "kedaRoleName": "acme-keda", "loadBalancerCidrs": ["10.0.0.0/16"], "metricsScrapers": scrapers}
    spec = {k: v for k, v in api.items() if k != "nodeGroup"}
    inputs = _as_engine_sends({**context, "kubeconfig": KUBECONFIG, "spec": spec, "placement": {
        "group": api["nodeGroup"], "gpu": gpu, "taints": group.get("taints", []),
        "instanceTypes": group["instanceTypes"]}})

    def through_the_package() -> None:
        result = provider.construct(name, "modelplane:index:ModelApi", inputs, None)
        pulumi.export("url", result.state["url"])
        pulumi.export("external", result.state.get("externalUrl"))

    def python() -> None:
        pool = NodeGroupConfig.model_validate({"instanceTypes": group["instanceTypes"], "gpu": gpu})
        placement = Placement(group=api["nodeGroup"], labels={"modelplane.io/node-group": api["nodeGroup"]},
                              taints=tuple(dict.fromkeys(Taint(t["key"], t.get("value", ""), t["effect"])
                                                         for t in taints)), gpu=gpu, spec=pool)
        k8s_provider = kubernetes_provider(f"{name}-k8s", pulumi.Output.secret(KUBECONFIG), pulumi.ResourceOptions())
        model_api = PyModelApi(name, ModelApiArgs(spec=ApiConfig.model_validate(api), placement=placement,
                                                  cluster=ClusterContext(
            name="acme", kubernetes_version=version, provider=k8s_provider, region="us-east-1",
            oidc_provider_arn=context["oidcProviderArn"], oidc_provider_url=context["oidcProviderUrl"],
            prometheus_url=context["prometheusUrl"], pod_monitors=True, keda_role_name="acme-keda",
            load_balancer_cidrs=["10.0.0.0/16"], metrics_scrapers=[NetworkPeer.model_validate(p) for p in scrapers])))
        pulumi.export("url", model_api.url)
        pulumi.export("external", model_api.external_url)

    packaged, direct = run_program(through_the_package), run_program(python)
    assert _tree(packaged, drop_root="modelplane:index:ModelApi") == _tree(direct)
    assert packaged.outputs == direct.outputs
    assert packaged.by_type("kubernetes:apps/v1:Deployment")
