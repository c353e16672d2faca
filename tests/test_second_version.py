"""Canary and shadow versions of an API (``SecondVersion``), as rendered.

What must hold: a second version runs the API's pod spec with its own image,
env and args under its own name and selector value, which the API's own
selector never matches; adding one never touches the API's objects;
promoting a canary is an update of the API's Deployment (its image only) and
deletes of the canary's objects; a shadow's copies leave the stable replicas'
proxies by Envoy's mirror policy, through NetworkPolicies that let exactly
them through. Expected values are written out here, not derived from the code
under test.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modelplane.config import (
    ConfigError,
    canary_replicas,
    canary_service_name,
    gpu_demand,
    gpus_at_max,
    parse_estate,
)
from modelplane.offline import Plan, kubernetes_objects

APIS = "modelplane:apis"
SOURCE = "stacks/Pulumi.dev.yaml"
SENTIMENT = (APIS, "sentiment")    # dev's CPU API (HPA on cpu), maxReplicas 6
EMBED = (APIS, "image-embed")      # dev's GPU API (KEDA, in-flight), maxReplicas 3, one GPU per replica

MODEL_API = "modelplane:index:ModelApi"
SECOND_VERSION = "modelplane:index:SecondVersion"
POLICY = "modelplane:index:AutoscalingPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"

EXPOSE = {"visibility": "internal", "allowHttp": True}
CANARY_IMAGE = "ghcr.io/acme/sentiment-api:1.5.0"
SHADOW_IMAGE = "ghcr.io/acme/clip-embed:1.0.0"
PROXY_PORT = 8888


def with_canary(stack_configs, canary: dict[str, Any] | None = None, *edits) -> dict[str, Any]:
    """dev with sentiment exposed and (unless ``canary`` is ``{}``) a canary at weight 10."""
    block = {"image": CANARY_IMAGE, "weight": 10} if canary is None else canary
    return stack_configs.edited("dev", ((*SENTIMENT, "expose"), EXPOSE),
                                *([((*SENTIMENT, "canary"), block)] if block else []), *edits)


def with_shadow(stack_configs, **shadow: Any) -> dict[str, Any]:
    """dev with a shadow of image-embed receiving 12.5 % of its requests."""
    return stack_configs.edited("dev", ((*EMBED, "shadow"), {"image": SHADOW_IMAGE, "percent": 12.5, **shadow}))


@pytest.fixture(scope="module")
def exposed_plan(render, stack_configs) -> Plan:
    return render("dev", with_canary(stack_configs, {}))


@pytest.fixture(scope="module")
def canary_plan(render, stack_configs) -> Plan:
    return render("dev", with_canary(stack_configs))


@pytest.fixture(scope="module")
def shadow_plan(render, stack_configs) -> Plan:
    return render("dev", with_shadow(stack_configs))


def envoy(plan: Plan, find, config_map_prefix: str) -> dict[str, Any]:
    [config_map] = [c for c in find.objects(plan, "ConfigMap")
                    if re.fullmatch(rf"{config_map_prefix}-proxy-[0-9a-f]{{10}}", c["metadata"]["name"])]
    return yaml.safe_load(config_map["data"]["envoy.json"])


def api_route(bootstrap: dict[str, Any]) -> dict[str, Any]:
    [listener] = [lst for lst in bootstrap["static_resources"]["listeners"] if lst["name"] == "api"]
    [host] = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
    [route] = host["routes"]
    return dict(route["route"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def descendants(plan: Plan, urn: str) -> set[str]:
    found = {urn}
    for child in plan.children(urn):
        found |= descendants(plan, child.urn)
    return found


def changed_urns(before: Plan, after: Plan, fingerprints) -> set[str]:
    """URNs registered by both renders whose inputs differ."""
    old, new = fingerprints(before), fingerprints(after)
    return {urn for urn in old.keys() & new.keys() if old[urn] != new[urn]}


# ------------------------------------------------------------------------ the canary's objects

def test_a_canary_is_one_second_version_component_with_its_own_objects(canary_plan, exposed_plan, find) -> None:
    assert find.children(canary_plan, MODEL_API, "sentiment") == find.children(exposed_plan, MODEL_API, "sentiment") | {
        (SECOND_VERSION, "sentiment-canary")}
    assert find.children(canary_plan, SECOND_VERSION, "sentiment-canary") == {
        (DEPLOYMENT, "sentiment-canary"),
        (SERVICE, "sentiment-canary-svc"),
        (PDB, "sentiment-canary-pdb"),
        (NETPOL, "sentiment-canary-netpol"),
        (CONFIG_MAP, "sentiment-canary-proxy"),
        (POD_MONITOR, "sentiment-canary-metrics"),
        (POLICY, "sentiment-canary-autoscaling"),
    }
    assert find.children(canary_plan, POLICY, "sentiment-canary-autoscaling") == {
        (HPA, "sentiment-canary-autoscaling")}
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "PodMonitor",
                 "HorizontalPodAutoscaler"):
        obj = find.object(canary_plan, kind, "sentiment-canary", namespace="sentiment")
        assert obj["metadata"]["labels"]["modelplane.io/api"] == "sentiment-canary"
        assert obj["metadata"]["labels"]["modelplane.io/canary-of"] == "sentiment"


def test_the_stable_selectors_never_match_canary_pods_and_the_canarys_match_only_them(canary_plan, find) -> None:
    canary = find.object(canary_plan, "Deployment", "sentiment-canary")
    stable = find.object(canary_plan, "Deployment", "sentiment")
    canary_pods = canary["spec"]["template"]["metadata"]["labels"]
    stable_pods = stable["spec"]["template"]["metadata"]["labels"]
    own = {"modelplane.io/api": "sentiment-canary"}

    assert canary["spec"]["selector"] == {"matchLabels": own}
    assert canary_pods["modelplane.io/canary-of"] == "sentiment"
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy", "PodMonitor"):
        stable_object = find.object(canary_plan, kind, "sentiment")["spec"]
        canary_object = find.object(canary_plan, kind, "sentiment-canary")["spec"]
        key = {"Service": "selector", "NetworkPolicy": "podSelector"}.get(kind, "selector")
        stable_selector = stable_object[key].get("matchLabels", stable_object[key])
        canary_selector = canary_object[key].get("matchLabels", canary_object[key])
        assert not selects(stable_selector, canary_pods), kind
        assert selects(canary_selector, canary_pods) and not selects(canary_selector, stable_pods), kind
    spread = canary["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["labelSelector"]
    assert spread == {"matchLabels": own}


def test_the_canary_service_is_the_one_the_load_balancer_forwards_to(canary_plan, find) -> None:
    name = canary_service_name("sentiment")
    service = find.object(canary_plan, "Service", name, namespace="sentiment")
    stable = find.object(canary_plan, "Service", "sentiment", namespace="sentiment")

    assert name == "sentiment-canary"
    assert service["spec"]["ports"] == stable["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}]
    assert service["spec"]["type"] == "ClusterIP"


def test_the_canary_runs_the_apis_pod_spec_with_its_image_env_and_args(render, stack_configs, find) -> None:
    plan = render("dev", with_canary(stack_configs, {"image": CANARY_IMAGE, "weight": 20, "env": {"MODEL_NAME": "v2"},
                                                     "args": ["--fast"]}))
    stable = find.object(plan, "Deployment", "sentiment")
    canary = find.object(plan, "Deployment", "sentiment-canary")
    [config_map] = [v["configMap"]["name"] for v in canary["spec"]["template"]["spec"]["volumes"]
                    if v["name"] == "proxy-config"]

    # The stable Deployment with exactly what the canary changes is the canary's Deployment.
    expected = copy.deepcopy(stable)
    expected["metadata"]["name"] = "sentiment-canary"
    for labels in (expected["metadata"]["labels"], expected["spec"]["template"]["metadata"]["labels"]):
        labels.update({"modelplane.io/api": "sentiment-canary", "modelplane.io/canary-of": "sentiment"})
    expected["spec"]["selector"] = {"matchLabels": {"modelplane.io/api": "sentiment-canary"}}
    pod = expected["spec"]["template"]["spec"]
    pod["topologySpreadConstraints"][0]["labelSelector"] = {"matchLabels": {"modelplane.io/api": "sentiment-canary"}}
    [volume] = [v for v in pod["volumes"] if v["name"] == "proxy-config"]
    volume["configMap"]["name"] = config_map
    [model] = pod["containers"]
    model["image"] = CANARY_IMAGE
    model["args"] = ["--fast"]
    # Only the user's env is the canary's; the server is still told it serves the API "sentiment".
    model["env"] = [{"name": "MODEL_NAME", "value": "v2"}] + [e for e in model["env"]
                                                              if e["name"].startswith("MODELPLANE_")]
    assert canary == expected
    assert {"name": "MODELPLANE_API_NAME", "value": "sentiment"} in model["env"]
    assert re.fullmatch(r"sentiment-canary-proxy-[0-9a-f]{10}", config_map)
    # Same service account (and so the same IAM role, when the API has one).
    assert canary["spec"]["template"]["spec"]["serviceAccountName"] == "sentiment"


@pytest.mark.parametrize(("canary", "bounds"), [
    ({}, (1, 1)),                                   # 6 x 10 % = 0.6: at least one
    ({"weight": 50}, (1, 3)),                       # 6 x 50 % = 3
    ({"weight": 34}, (1, 3)),                       # 2.04, rounded up: the canary can take its share
    ({"minReplicas": 2, "maxReplicas": 4}, (2, 4)),
])
def test_the_canary_autoscales_on_the_apis_metric_between_its_own_bounds(render, stack_configs, find,
                                                                         canary: dict[str, Any],
                                                                         bounds: tuple[int, int]) -> None:
    config = with_canary(stack_configs, {"image": CANARY_IMAGE, "weight": 10, **canary})
    plan = render("dev", config)
    hpa = find.object(plan, "HorizontalPodAutoscaler", "sentiment-canary", namespace="sentiment")
    stable = find.object(plan, "HorizontalPodAutoscaler", "sentiment")

    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == bounds
    assert canary_replicas(plan.config.apis["sentiment"]) == bounds
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sentiment-canary"}
    assert hpa["spec"]["metrics"] == stable["spec"]["metrics"]
    assert hpa["spec"]["behavior"] == stable["spec"]["behavior"]


def test_a_keda_canary_counts_only_its_own_proxies_and_the_api_only_its_own(render, stack_configs, find) -> None:
    plan = render("dev", stack_configs.edited("dev", ((*EMBED, "expose"), EXPOSE),
                                              ((*EMBED, "canary"), {"image": SHADOW_IMAGE, "weight": 50})))
    stable = find.object(plan, "ScaledObject", "image-embed")["spec"]
    canary = find.object(plan, "ScaledObject", "image-embed-canary")["spec"]
    [stable_trigger], [canary_trigger] = stable["triggers"], canary["triggers"]

    assert canary["scaleTargetRef"]["name"] == "image-embed-canary"
    assert (canary["minReplicaCount"], canary["maxReplicaCount"]) == (1, 2)   # 3 x 50 %, rounded up
    assert canary_trigger["metadata"]["query"] == (
        'sum(avg_over_time(envoy_cluster_upstream_rq_active{namespace="image-embed",'
        'envoy_cluster_name="model-canary"}[60s])) + sum(avg_over_time(envoy_cluster_upstream_rq_pending_active'
        '{namespace="image-embed",envoy_cluster_name="model-canary"}[60s]))')
    assert 'envoy_cluster_name="model"' in stable_trigger["metadata"]["query"]
    assert canary_trigger["metadata"]["threshold"] == stable_trigger["metadata"]["threshold"]
    # The names the queries select are the ones each proxy gives its local cluster.
    assert {c["name"] for c in envoy(plan, find, "image-embed-canary")["static_resources"]["clusters"]} == {
        "model-canary", "admin"}
    assert {c["name"] for c in envoy(plan, find, "image-embed")["static_resources"]["clusters"]} == {"model", "admin"}
    assert api_route(envoy(plan, find, "image-embed-canary"))["cluster"] == "model-canary"


def test_a_canary_reuses_the_namespaces_keda_aws_authentication(render, stack_configs, find) -> None:
    # An Amazon Managed Prometheus: KEDA signs its queries with the TriggerAuthentication "keda-aws", one per
    # namespace, made by the API's policy; two resources managing one object would fight.
    plan = render("dev", stack_configs.edited(
        "dev", (("modelplane:cluster", "prometheus", "url"),
                "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123abcd-4567-89ef-0123-456789abcdef"),
        (("modelplane:cluster", "prometheus", "scrapers"), [{"namespace": "monitoring"}]),
        ((*EMBED, "expose"), EXPOSE), ((*EMBED, "canary"), {"image": SHADOW_IMAGE, "weight": 50})))
    [auth] = [o for o in find.objects(plan, "TriggerAuthentication") if o["metadata"]["namespace"] == "image-embed"]
    [trigger] = find.object(plan, "ScaledObject", "image-embed-canary")["spec"]["triggers"]

    assert auth["metadata"]["name"] == "keda-aws"
    assert trigger["authenticationRef"] == {"name": "keda-aws"}


# ------------------------------------------------------------------------ identity: adding and promoting

def test_adding_a_canary_changes_nothing_the_api_had(exposed_plan, canary_plan, fingerprints) -> None:
    before = {r.urn for r in exposed_plan.resources}
    [component] = [r for r in canary_plan.resources if r.type == SECOND_VERSION]
    added = {r.urn for r in canary_plan.resources} - before

    assert before < {r.urn for r in canary_plan.resources}
    assert added == descendants(canary_plan, component.urn)
    # The Ingress (rendered with expose) gains the weighted forward; nothing else the API had changes.
    assert {urn for urn in changed_urns(exposed_plan, canary_plan, fingerprints)
            if f"${INGRESS}::" not in urn} == set()


def test_promotion_updates_the_stable_deployments_image_and_deletes_every_canary_object(
        canary_plan, render, stack_configs, find, fingerprints) -> None:
    promoted = render("dev", with_canary(stack_configs, {}, ((*SENTIMENT, "image"), CANARY_IMAGE)))
    [component] = [r for r in canary_plan.resources if r.type == SECOND_VERSION]
    deleted = {r.urn for r in canary_plan.resources} - {r.urn for r in promoted.resources}
    [stable] = [r.urn for r in canary_plan.resources if r.type == DEPLOYMENT and r.name == "sentiment"]
    canary_objects = [o for o in kubernetes_objects(canary_plan) if o["metadata"]["name"].startswith("sentiment-canary")]

    # Nothing new; exactly the canary's component and its children go.
    assert {r.urn for r in promoted.resources} < {r.urn for r in canary_plan.resources}
    assert deleted == descendants(canary_plan, component.urn)
    assert len(canary_objects) == 7   # Deployment, Service, PDB, NetworkPolicy, ConfigMap, PodMonitor, HPA
    # The stable Deployment keeps its URN and is updated (the Ingress loses its weighted forward).
    assert {u for u in changed_urns(canary_plan, promoted, fingerprints) if f"${INGRESS}::" not in u} == {stable}
    old = find.object(canary_plan, "Deployment", "sentiment")
    new = find.object(promoted, "Deployment", "sentiment")
    # What would make pulumi-kubernetes replace a Deployment (name, namespace, selector) is the same ...
    assert (new["metadata"]["name"], new["metadata"]["namespace"], new["spec"]["selector"]) == (
        old["metadata"]["name"], old["metadata"]["namespace"], old["spec"]["selector"])
    # ... and the image is all that changes.
    old["spec"]["template"]["spec"]["containers"][0]["image"] = CANARY_IMAGE
    assert new == old


# ------------------------------------------------------------------------ the shadow

def test_a_shadow_has_fixed_replicas_its_own_service_and_no_autoscaler(shadow_plan, find) -> None:
    assert find.children(shadow_plan, SECOND_VERSION, "image-embed-shadow") == {
        (DEPLOYMENT, "image-embed-shadow"),
        (SERVICE, "image-embed-shadow-svc"),
        (PDB, "image-embed-shadow-pdb"),
        (NETPOL, "image-embed-shadow-netpol"),
        (CONFIG_MAP, "image-embed-shadow-proxy"),
        (POD_MONITOR, "image-embed-shadow-metrics"),
    }
    deployment = find.object(shadow_plan, "Deployment", "image-embed-shadow", namespace="image-embed")
    service = find.object(shadow_plan, "Service", "image-embed-shadow", namespace="image-embed")

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"] == {"matchLabels": {"modelplane.io/api": "image-embed-shadow"}}
    assert deployment["spec"]["template"]["metadata"]["labels"]["modelplane.io/shadow-of"] == "image-embed"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == SHADOW_IMAGE
    assert service["spec"]["selector"] == {"modelplane.io/api": "image-embed-shadow"}
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}]
    assert not [o for kind in ("ScaledObject", "HorizontalPodAutoscaler") for o in find.objects(shadow_plan, kind)
                if o["metadata"]["name"] == "image-embed-shadow"]


def test_the_stable_proxy_mirrors_its_share_of_requests_to_the_shadow_service(shadow_plan, dev_plan, find) -> None:
    bootstrap = envoy(shadow_plan, find, "image-embed")
    route = api_route(bootstrap)
    [mirror] = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "shadow"]

    # 12.5 % of the requests: 125000 per million, with no runtime override.
    assert route == {"cluster": "model", "timeout": "0s", "request_mirror_policies": [
        {"cluster": "shadow", "runtime_fraction": {"default_value": {"numerator": 125000,
                                                                     "denominator": "MILLION"}}}]}
    assert mirror["type"] == "STRICT_DNS"
    assert mirror["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "image-embed-shadow.image-embed.svc.cluster.local", "port_value": 80}}
    # Without a shadow the route is the plain one, and the shadow's own proxy mirrors nothing.
    assert api_route(envoy(dev_plan, find, "image-embed")) == {"cluster": "model", "timeout": "0s"}
    assert api_route(envoy(shadow_plan, find, "image-embed-shadow")) == {"cluster": "model-shadow", "timeout": "0s"}


def test_every_proxy_config_with_a_second_version_is_accepted_by_envoys_api(canary_plan, shadow_plan, find,
                                                                              envoy_checker) -> None:
    configs = {"stable mirroring": envoy(shadow_plan, find, "image-embed"),
               "shadow": envoy(shadow_plan, find, "image-embed-shadow"),
               "canary": envoy(canary_plan, find, "sentiment-canary")}
    for bootstrap in configs.values():
        # go-control-plane does not check references between parts of the bootstrap; check them here.
        clusters = {c["name"] for c in bootstrap["static_resources"]["clusters"]}
        route = api_route(bootstrap)
        assert {route["cluster"], *(m["cluster"] for m in route.get("request_mirror_policies", []))} <= clusters

    assert envoy_checker({name: yaml.safe_dump(b) for name, b in configs.items()}) == {name: None for name in configs}


def test_the_envoy_checker_rejects_a_broken_mirror(shadow_plan, find, envoy_checker) -> None:
    bootstrap = envoy(shadow_plan, find, "image-embed")
    api_listener = bootstrap["static_resources"]["listeners"][0]
    route = api_listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0][
        "routes"][0]["route"]
    route["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["denominator"] = "PER_CENT"

    assert envoy_checker({"broken": yaml.safe_dump(bootstrap)})["broken"] is not None


def test_shadow_changes_roll_the_stable_replicas_and_a_shadow_image_only_the_shadow(
        shadow_plan, render, stack_configs, find, fingerprints) -> None:
    def proxy_volume(plan: Plan) -> str:
        pod = find.object(plan, "Deployment", "image-embed")["spec"]["template"]["spec"]
        return next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "proxy-config")

    more = render("dev", with_shadow(stack_configs, percent=50))
    newer = render("dev", with_shadow(stack_configs, image="ghcr.io/acme/clip-embed:1.0.1"))
    [shadow_deployment] = [r.urn for r in shadow_plan.resources if r.type == DEPLOYMENT
                           and r.name == "image-embed-shadow"]

    assert proxy_volume(more) != proxy_volume(shadow_plan)
    assert api_route(envoy(more, find, "image-embed"))["request_mirror_policies"][0]["runtime_fraction"] == {
        "default_value": {"numerator": 500000, "denominator": "MILLION"}}
    assert changed_urns(shadow_plan, newer, fingerprints) == {shadow_deployment}


# ------------------------------------------------------------------------ network policies

def test_the_canary_admits_exactly_the_callers_the_api_admits(canary_plan, find) -> None:
    stable = find.object(canary_plan, "NetworkPolicy", "sentiment")["spec"]
    canary = find.object(canary_plan, "NetworkPolicy", "sentiment-canary")["spec"]

    assert canary == {**stable, "podSelector": {"matchLabels": {"modelplane.io/api": "sentiment-canary"}}}


def test_only_the_stable_pods_reach_the_shadow_and_only_on_its_proxy_port(shadow_plan, dev_plan, find) -> None:
    stable = find.object(shadow_plan, "NetworkPolicy", "image-embed")["spec"]
    before = find.object(dev_plan, "NetworkPolicy", "image-embed")["spec"]
    shadow = find.object(shadow_plan, "NetworkPolicy", "image-embed-shadow")["spec"]
    shadow_pods = find.object(shadow_plan, "Deployment", "image-embed-shadow")["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for c in shadow_pods["spec"]["initContainers"] for p in c["ports"]}

    # The API's egress gains one rule: its proxies to the shadow's proxies.
    assert stable == {**before, "egress": [*before["egress"], {
        "to": [{"podSelector": {"matchLabels": {"modelplane.io/api": "image-embed-shadow"}}}],
        "ports": [{"port": PROXY_PORT, "protocol": "TCP"}]}]}
    assert ports["proxy"] == PROXY_PORT
    assert selects({"modelplane.io/api": "image-embed-shadow"}, shadow_pods["metadata"]["labels"])
    # The shadow: the API's pods on the proxy port, Prometheus on the metrics port; its egress is the API's.
    assert shadow == {
        "podSelector": {"matchLabels": {"modelplane.io/api": "image-embed-shadow"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "image-embed"}},
                       "podSelector": {"matchLabels": {"modelplane.io/api": "image-embed"}}}],
             "ports": [{"port": "proxy", "protocol": "TCP"}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
             "ports": [{"port": "metrics", "protocol": "TCP"}]},
        ],
        "egress": before["egress"],
    }


# ------------------------------------------------------------------------ validity

@pytest.mark.parametrize("plan_name", ["canary_plan", "shadow_plan"])
def test_second_version_objects_are_strictly_valid(request, crd_schemas, plan_name: str) -> None:
    from test_render import crd_validator, is_built_in

    plan = request.getfixturevalue(plan_name)
    objects = [o for o in kubernetes_objects(plan) if re.search(r"-(canary|shadow)(-|$)", o["metadata"]["name"])]
    kinds = {o["kind"] for o in objects}

    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "PodMonitor"} <= kinds
    failures = []
    for obj in objects:
        if is_built_in(obj):
            try:
                kubernetes_validate.validate(obj, "1.33", strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{obj['kind']} {obj['metadata']['name']}: {exc.message}")
        else:
            failures += [f"{obj['kind']} {obj['metadata']['name']}: {e.message}"
                         for e in crd_validator(crd_schemas, obj).iter_errors(obj)]
    assert failures == []


# ------------------------------------------------------------------------ capacity

def test_the_canarys_gpus_count_in_the_group_demand_and_the_stack_ceiling(stack_configs) -> None:
    base = stack_configs.edited("dev", ((*EMBED, "expose"), EXPOSE))
    canary = stack_configs.edited("dev", ((*EMBED, "expose"), EXPOSE),
                                  ((*EMBED, "canary"), {"image": SHADOW_IMAGE, "weight": 10, "maxReplicas": 2}))
    before, after = parse_estate(base, SOURCE), parse_estate(canary, SOURCE)
    group = before.node_groups["gpu-spot"]

    # image-embed 3 x 1 GPU and doc-embed 2 x 1; the canary adds its maxReplicas 2 x 1.
    assert gpu_demand("gpu-spot", group, before.apis).steady == 5
    assert gpu_demand("gpu-spot", group, after.apis).steady == 7
    assert gpus_at_max(after.apis) == gpus_at_max(before.apis) + 2 == 7
    # maxSize 6: 7 at peak plus a rollout's surge of 1 no longer fits.
    assert not before.warnings
    [warning] = after.warnings
    assert warning.startswith("node group 'gpu-spot': its APIs at maxReplicas run 7 pods with 7 GPU(s) (doc-embed 2, "
                              "image-embed 3, image-embed-canary 2) and a rollout surges 1 more")
    assert "they need 8 nodes, but maxSize is 6" in warning
    with pytest.raises(ConfigError) as caught:
        parse_estate({**canary, "modelplane:guardrails": {"maxGpus": 6}}, SOURCE)
    assert [i.message for i in caught.value.issues] == [
        "the APIs request 7 GPUs at maxReplicas (doc-embed 2x1, image-embed 3x1 + canary 2x1), more than the stack's "
        "ceiling of 6; lower maxReplicas or raise the ceiling"]


def test_a_shadows_gpus_count_too(stack_configs) -> None:
    estate = parse_estate(with_shadow(stack_configs, replicas=2), SOURCE)

    assert gpu_demand("gpu-spot", estate.node_groups["gpu-spot"], estate.apis).steady == 3 + 2 + 2
    assert gpus_at_max(estate.apis) == 7


def test_a_second_version_used_directly_must_take_the_name_the_api_finds_it_by() -> None:
    import gc

    import pulumi

    from modelplane import ApiConfig, ClusterContext, NodeGroupConfig, Placement
    from modelplane.offline import start_mock_engine
    from modelplane.second_version import SecondVersion, SecondVersionArgs

    start_mock_engine("direct", "us-east-1")
    try:
        spec = ApiConfig.model_validate({"image": "ghcr.io/acme/x:1", "nodeGroup": "cpu",
                                         "readinessProbe": {"path": "/"},
                                         "shadow": {"image": "ghcr.io/acme/x:2", "percent": 5}})
        cpu = Placement.for_group("cpu", NodeGroupConfig.model_validate({"instanceTypes": ["m6i.large"]}))
        args = SecondVersionArgs(api="x", kind="shadow", spec=spec, placement=cpu, cluster=ClusterContext(name="c"),
                                 namespace="x", labels={})
        with pytest.raises(ValueError, match="SecondVersion 'x-mirror': a shadow of API 'x' is named 'x-shadow'"):
            SecondVersion("x-mirror", args)
    finally:
        gc.enable()
        pulumi.runtime.settings.reset_options()
