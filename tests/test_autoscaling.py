"""Request-based autoscaling and the request proxy, as rendered.

What the issue asks to see: a CPU API on ``metric: cpu`` gets an HPA; a GPU
API with default settings gets a KEDA ScaledObject whose Prometheus trigger,
threshold and HPA behaviour follow Cortex's knobs; ``minReplicas: 0`` renders
``minReplicaCount: 0`` with an activation threshold; the proxy's Envoy config
enforces the configured concurrency and queue length, Envoy's own API accepts
it (go-control-plane's protos and validation rules), and the metrics the
ScaledObject queries are ones the proxy exports. Expected values are written
out here, not derived from the code under test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from modelplane.config import ConfigError, parse_estate

SOURCE = "stacks/Pulumi.dev.yaml"
APIS = "modelplane:apis"
CLUSTER = "modelplane:cluster"
PROMETHEUS = "http://kube-prometheus-prometheus.monitoring.svc:9090"

CORTEX_BEHAVIOR = {
    # upscale_stabilization_period 1m, max_upscale_factor 1.5 (+50 % per minute),
    # downscale_stabilization_period 5m, max_downscale_factor 0.75 (-25 % per minute).
    "scaleUp": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}]},
}

ENVOY_CLUSTER_GAUGES = {
    # From Envoy's cluster manager statistics (docs/root/configuration/upstream/cluster_manager/
    # cluster_stats.rst): per-cluster gauges and counters, exported to Prometheus as
    # envoy_cluster_<stat>{envoy_cluster_name="<cluster>"}.
    "upstream_rq_active", "upstream_rq_pending_active", "upstream_rq_total", "upstream_rq_pending_overflow",
    "upstream_cx_active", "upstream_cx_overflow", "upstream_rq_pending_total",
}
ENVOY_HTTP_COUNTERS = {
    # HTTP connection manager statistics (conn_man/stats.rst), exported as
    # envoy_http_<stat>{envoy_http_conn_manager_prefix="<stat_prefix>"}.
    "downstream_rq_total", "downstream_rq_active", "downstream_cx_active",
}


def envoy_configs(plan, find) -> dict[str, dict[str, Any]]:
    """API name -> the Envoy bootstrap in its proxy ConfigMap."""
    found = {}
    for config_map in find.objects(plan, "ConfigMap"):
        match = re.fullmatch(r"(.+)-proxy-[0-9a-f]{10}", config_map["metadata"]["name"])
        if match:
            found[match.group(1)] = yaml.safe_load(config_map["data"]["envoy.json"])
    return found


def model_cluster(bootstrap: dict[str, Any]) -> dict[str, Any]:
    [cluster] = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "model"]
    return cluster


# ------------------------------------------------------------------------ HPA or ScaledObject

def test_cpu_api_with_metric_cpu_renders_an_hpa_and_no_scaled_object(dev_plan, find) -> None:
    hpa = find.object(dev_plan, "HorizontalPodAutoscaler", "sentiment")

    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}]
    assert hpa["spec"]["behavior"] == CORTEX_BEHAVIOR
    assert not [o for o in find.objects(dev_plan, "ScaledObject") if o["metadata"]["name"] == "sentiment"]


def test_gpu_api_with_default_settings_scales_on_in_flight_requests_through_keda(dev_plan, find) -> None:
    # dev's image-embed sets no metric and keeps maxConcurrency at Cortex's default of 1.
    assert dev_plan.config.apis["image-embed"].autoscaling.metric is None
    scaled = find.object(dev_plan, "ScaledObject", "image-embed")
    [trigger] = scaled["spec"]["triggers"]

    assert scaled["metadata"]["namespace"] == "image-embed"
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "image-embed"}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 3)
    assert trigger["type"] == "prometheus"
    # The HPA divides the query's total by the replica count and aims at target_in_flight =
    # max_concurrency = 1 per replica.
    assert trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["threshold"] == "1"
    assert trigger["metadata"]["serverAddress"] == PROMETHEUS
    # Cortex's in-flight: active plus queued requests, averaged over the 60 s window.
    assert trigger["metadata"]["query"] == (
        'sum(avg_over_time(envoy_cluster_upstream_rq_active{namespace="image-embed",envoy_cluster_name="model"}[60s]))'
        ' + sum(avg_over_time(envoy_cluster_upstream_rq_pending_active{namespace="image-embed",'
        'envoy_cluster_name="model"}[60s]))')
    assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == CORTEX_BEHAVIOR
    assert "authenticationRef" not in trigger  # an in-cluster Prometheus needs no AWS credentials
    # The proxy's gauges always exist: an empty answer means broken scraping, which must not read as
    # zero load; and when Prometheus is unreachable KEDA holds the current count.
    assert trigger["metadata"]["ignoreNullValues"] == "false"
    assert scaled["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicasIfHigher"}
    assert not [o for o in find.objects(dev_plan, "HorizontalPodAutoscaler") if o["metadata"]["name"] == "image-embed"]


def test_scaled_object_follows_changed_cortex_knobs(render, stack_configs, find) -> None:
    embed = (APIS, "image-embed")
    plan = render("dev", stack_configs.edited(
        "dev",
        ((*embed, "maxConcurrency"), 8),
        ((*embed, "autoscaling", "window"), "2m"),
        ((*embed, "autoscaling", "maxUpscaleFactor"), 3.0),
        ((*embed, "autoscaling", "maxDownscaleFactor"), 0.5),
        ((*embed, "autoscaling", "upscaleStabilizationPeriod"), "30s"),
        ((*embed, "autoscaling", "downscaleStabilizationPeriod"), "10m"),
    ))
    spec = find.object(plan, "ScaledObject", "image-embed")["spec"]
    [trigger] = spec["triggers"]

    assert trigger["metadata"]["threshold"] == "8"  # target_in_flight follows max_concurrency
    assert trigger["metadata"]["query"].count("[120s]") == 2
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 30, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 200, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 600, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    }
    assert spec["cooldownPeriod"] == 600

    explicit = render("dev", stack_configs.edited("dev", ((*embed, "autoscaling", "targetInFlight"), 2.5)))
    [trigger] = find.object(explicit, "ScaledObject", "image-embed")["spec"]["triggers"]
    assert trigger["metadata"]["threshold"] == "2.5"


def test_scale_to_zero_renders_min_replica_count_0_with_an_activation_threshold(dev_plan, find) -> None:
    # dev's doc-embed: an async GPU worker on its SQS queue, minReplicas 0.
    scaled = find.object(dev_plan, "ScaledObject", "doc-embed")
    [trigger] = scaled["spec"]["triggers"]
    auth = find.object(dev_plan, "TriggerAuthentication", "keda-aws")

    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["maxReplicaCount"] == 2
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["activationQueueLength"] == "0"  # any waiting message wakes it
    assert trigger["metadata"]["queueLength"] == "20"
    assert trigger["metadata"]["awsRegion"] == "us-east-1"
    assert trigger["metadata"]["queueURL"].startswith("https://sqs.us-east-1.amazonaws.com/")
    assert trigger["authenticationRef"] == {"name": "keda-aws"}
    assert auth["metadata"]["namespace"] == "doc-embed"
    assert auth["spec"] == {"podIdentity": {"provider": "aws"}}
    # The last replica goes 10 minutes (downscaleStabilizationPeriod) after the queue empties.
    assert scaled["spec"]["cooldownPeriod"] == 600


def test_custom_metric_queries_the_servers_own_metrics(prod_plan, find) -> None:
    scaled = find.object(prod_plan, "ScaledObject", "llm-chat")
    [trigger] = scaled["spec"]["triggers"]
    monitor = find.object(prod_plan, "PodMonitor", "llm-chat")

    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == ('sum(vllm:num_requests_running{namespace="llm-chat"}) + '
                                            'sum(vllm:num_requests_waiting{namespace="llm-chat"})')
    assert trigger["metadata"]["threshold"] == "48"
    assert trigger["metadata"]["ignoreNullValues"] == "true"  # a custom query may be empty when idle
    # No proxy: the PodMonitor scrapes the server's /metrics instead.
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]


def test_rps_scales_on_requests_arriving_at_the_proxies(render, stack_configs, find) -> None:
    embed = (APIS, "image-embed", "autoscaling")
    plan = render("dev", stack_configs.edited("dev", ((*embed, "metric"), "rps"), ((*embed, "targetRps"), 12)))
    [trigger] = find.object(plan, "ScaledObject", "image-embed")["spec"]["triggers"]

    assert trigger["metadata"]["threshold"] == "12"
    assert trigger["metadata"]["query"] == ('sum(rate(envoy_http_downstream_rq_total{namespace="image-embed",'
                                            'envoy_http_conn_manager_prefix="api"}[60s]))')


def test_amazon_managed_prometheus_is_queried_with_sigv4_through_kedas_role(render, stack_configs, find) -> None:
    url = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1234abcd-12ab-34cd-56ef-1234567890ab"
    # A managed collector in the VPC scrapes the pods into the workspace.
    plan = render("dev", stack_configs.edited("dev", ((CLUSTER, "prometheus"), {
        "url": url, "scrapers": [{"cidr": "10.0.0.0/16"}]})))
    [trigger] = find.object(plan, "ScaledObject", "image-embed")["spec"]["triggers"]
    policy = find.one(plan, "aws:iam/rolePolicy:RolePolicy", "ml-dev-keda-amp-query").inputs["policy"]
    releases = [r.name for r in plan.by_type("kubernetes:helm.sh/v3:Release")]

    assert trigger["metadata"]["serverAddress"] == url
    assert trigger["metadata"]["awsRegion"] == "us-east-1"
    assert trigger["authenticationRef"] == {"name": "keda-aws"}
    assert "aps:QueryMetrics" in policy and "workspace/ws-1234abcd-12ab-34cd-56ef-1234567890ab" in policy
    # An external Prometheus replaces the installed one.
    assert "ml-dev-kube-prometheus-stack" not in releases and "ml-dev-keda" in releases


def test_hpa_tolerances_render_on_kubernetes_1_35(render, stack_configs, find) -> None:
    plan = render("dev", stack_configs.edited(
        "dev", ((CLUSTER, "kubernetesVersion"), "1.35"),
        ((APIS, "sentiment", "autoscaling", "upscaleTolerance"), 0.05),
        ((APIS, "sentiment", "autoscaling", "downscaleTolerance"), 0.05)))
    behavior = find.object(plan, "HorizontalPodAutoscaler", "sentiment")["spec"]["behavior"]

    assert behavior["scaleUp"]["tolerance"] == behavior["scaleDown"]["tolerance"] == "0.05"


# ------------------------------------------------------------------------ add-ons

def test_keda_is_pinned_per_kubernetes_version_and_runs_with_its_own_role(render, stack_configs, dev_plan, find) -> None:
    keda = find.one(dev_plan, "kubernetes:helm.sh/v3:Release", "ml-dev-keda").inputs
    old = find.one(render("dev", stack_configs.edited("dev", ((CLUSTER, "kubernetesVersion"), "1.31"))),
                   "kubernetes:helm.sh/v3:Release", "ml-dev-keda").inputs
    trust = find.one(dev_plan, "aws:iam/role:Role", "ml-dev-keda").inputs["assumeRolePolicy"]
    depth = find.one(dev_plan, "aws:iam/rolePolicy:RolePolicy", "doc-embed-queue-depth").inputs

    # KEDA 2.20 is tested on Kubernetes 1.33-1.35, 2.18 on 1.31-1.33.
    assert (keda["chart"], keda["version"], keda["namespace"]) == ("keda", "2.20.2", "keda")
    assert old["version"] == "2.18.2"
    assert keda["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    assert keda["values"]["podIdentity"]["aws"]["irsa"] == {
        "enabled": True, "roleArn": "arn:aws:iam::123456789012:role/ml-dev-keda"}
    assert "system:serviceaccount:keda:keda-operator" in trust
    # KEDA may read the depth of exactly the queues that scale on it.
    assert '"sqs:GetQueueAttributes"' in depth["policy"] and '"Resource": "arn:aws:sqs:' in depth["policy"]
    assert depth["role"] == "ml-dev-keda"


def test_installed_prometheus_scrapes_every_pod_monitor(dev_plan, find) -> None:
    release = find.one(dev_plan, "kubernetes:helm.sh/v3:Release", "ml-dev-kube-prometheus-stack").inputs
    spec = release["values"]["prometheus"]["prometheusSpec"]
    monitor = find.object(dev_plan, "PodMonitor", "image-embed")

    assert (release["chart"], release["version"], release["namespace"]) == (
        "kube-prometheus-stack", "88.5.3", "monitoring")
    # Service "<fullnameOverride>-prometheus" on 9090: the address every ScaledObject queries.
    assert release["values"]["fullnameOverride"] == "kube-prometheus"
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["scrapeInterval"] == "15s"
    assert monitor["spec"] == {"selector": {"matchLabels": {"modelplane.io/api": "image-embed"}},
                               "podMetricsEndpoints": [{"port": "metrics", "path": "/stats/prometheus",
                                                        "interval": "15s"}]}


def test_no_keda_or_prometheus_when_every_api_scales_on_cpu(render, stack_configs) -> None:
    plan = render("dev", stack_configs.edited(
        "dev", ((APIS, "image-embed", "autoscaling", "metric"), "cpu"),
        ((APIS, "doc-embed"), stack_configs.DELETE)))

    releases = {r.name for r in plan.by_type("kubernetes:helm.sh/v3:Release")}
    assert releases == {"ml-dev-cluster-autoscaler", "ml-dev-nvidia-device-plugin",
                        "ml-dev-aws-load-balancer-controller"}
    assert not plan.by_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")


# ------------------------------------------------------------------------ the proxy

def test_proxy_enforces_max_concurrency_and_queue_length(dev_plan, prod_plan, find) -> None:
    for plan in (dev_plan, prod_plan):
        configs = envoy_configs(plan, find)
        proxied = {name for name, api in plan.config.apis.items() if api.proxy.enabled}
        assert set(configs) == proxied
        for name, bootstrap in configs.items():
            api = plan.config.apis[name]
            [limits] = model_cluster(bootstrap)["circuit_breakers"]["thresholds"]
            # HTTP/1.1 to the server, one request per connection: at most maxConcurrency at the
            # server, maxQueueLength waiting, Envoy answers the rest 503.
            assert limits == {"priority": "DEFAULT", "max_connections": api.max_concurrency,
                              "max_requests": api.max_concurrency, "max_pending_requests": api.max_queue_length,
                              "max_retries": 0, "track_remaining": True}, name
            options = model_cluster(bootstrap)["typed_extension_protocol_options"]
            assert options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"] == {
                "http_protocol_options": {}}
    # prod's sentiment: maxConcurrency 4 and the default queue of 100 (Cortex's).
    [limits] = model_cluster(envoy_configs(prod_plan, find)["fraud-score"])["circuit_breakers"]["thresholds"]
    assert (limits["max_requests"], limits["max_pending_requests"]) == (8, 100)


def test_proxy_limits_follow_config_and_roll_the_pods(render, stack_configs, dev_plan, find) -> None:
    plan = render("dev", stack_configs.edited("dev", ((APIS, "sentiment", "maxConcurrency"), 16),
                                              ((APIS, "sentiment", "maxQueueLength"), 5)))
    [limits] = model_cluster(envoy_configs(plan, find)["sentiment"])["circuit_breakers"]["thresholds"]
    volumes = find.object(plan, "Deployment", "sentiment")["spec"]["template"]["spec"]["volumes"]
    before = find.object(dev_plan, "Deployment", "sentiment")["spec"]["template"]["spec"]["volumes"]

    assert (limits["max_connections"], limits["max_pending_requests"]) == (16, 5)
    # A new content-named ConfigMap, and the pod template points at it: the replicas roll.
    assert [v for v in volumes if v["name"] == "proxy-config"] != [v for v in before if v["name"] == "proxy-config"]


def test_every_proxy_config_is_accepted_by_envoys_api(dev_plan, prod_plan, find, envoy_checker) -> None:
    texts = {f"{plan.stack}/{name}": yaml.safe_dump(bootstrap)
             for plan in (dev_plan, prod_plan) for name, bootstrap in envoy_configs(plan, find).items()}

    assert len(texts) == 6
    assert envoy_checker(texts) == {name: None for name in texts}


def test_every_route_goes_to_a_defined_cluster(dev_plan, find) -> None:
    # go-control-plane does not check references between parts of the bootstrap; check them here.
    for bootstrap in envoy_configs(dev_plan, find).values():
        clusters = {c["name"] for c in bootstrap["static_resources"]["clusters"]}
        for listener in bootstrap["static_resources"]["listeners"]:
            manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
            for host in manager["route_config"]["virtual_hosts"]:
                assert {r["route"]["cluster"] for r in host["routes"]} <= clusters
        # The admin interface, which can change Envoy's state, listens on loopback only.
        assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_scaled_object_queries_metrics_the_proxy_exports(dev_plan, find) -> None:
    bootstrap = envoy_configs(dev_plan, find)["image-embed"]
    clusters = {c["name"] for c in bootstrap["static_resources"]["clusters"]}
    prefixes = {lst["filter_chains"][0]["filters"][0]["typed_config"]["stat_prefix"]
                for lst in bootstrap["static_resources"]["listeners"]}
    [trigger] = find.object(dev_plan, "ScaledObject", "image-embed")["spec"]["triggers"]
    pod = find.object(dev_plan, "Deployment", "image-embed")["spec"]["template"]
    [proxy] = pod["spec"]["initContainers"]
    monitor = find.object(dev_plan, "PodMonitor", "image-embed")

    selectors = re.findall(r"(envoy_[a-z_]+)\{([^}]*)\}", trigger["metadata"]["query"])
    assert selectors
    for metric, labels in selectors:
        label_values = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if metric.startswith("envoy_cluster_"):
            assert metric.removeprefix("envoy_cluster_") in ENVOY_CLUSTER_GAUGES
            assert label_values["envoy_cluster_name"] in clusters
        else:
            assert metric.removeprefix("envoy_http_") in ENVOY_HTTP_COUNTERS
            assert label_values["envoy_http_conn_manager_prefix"] in prefixes
        assert label_values["namespace"] == "image-embed"
    # Prometheus scrapes the proxy's Prometheus endpoint, which the metrics listener routes to Envoy's admin.
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    [metrics] = [lst for lst in bootstrap["static_resources"]["listeners"]
                 if lst["address"]["socket_address"]["port_value"] == ports[endpoint["port"]]]
    routes = metrics["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert {"match": {"path": endpoint["path"]}, "route": {"cluster": "admin"}} in routes
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9902",
                                              "prometheus.io/path": "/stats/prometheus"}


def test_proxy_is_a_native_sidecar_that_outlives_the_server(dev_plan, find) -> None:
    pod = find.object(dev_plan, "Deployment", "image-embed")["spec"]["template"]["spec"]
    [proxy] = pod["initContainers"]

    # restartPolicy Always on an init container: started before, stopped after the app containers.
    assert proxy["restartPolicy"] == "Always"
    # Pinned by the multi-arch index digest of the tag it names; immutable, so pulled only when absent.
    assert proxy["image"] == ("envoyproxy/envoy:distroless-v1.39.2"
                              "@sha256:dced08cf7c472e1a1d067f906878266078eeeb63c110b4961882c039a622853a")
    assert proxy["imagePullPolicy"] == "IfNotPresent"
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    # Envoy's own /ready: a proxy that stops answering it is restarted, whatever the server does.
    assert proxy["livenessProbe"] == {"httpGet": {"path": "/ready", "port": "metrics"}, "periodSeconds": 10,
                                      "timeoutSeconds": 2, "failureThreshold": 3}
    assert proxy["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}}
    assert proxy["args"] == ["--config-path", "/etc/modelplane/proxy/envoy.json", "--concurrency", "1",
                             "--disable-hot-restart", "--log-level", "warn"]


# ------------------------------------------------------------------------ config rules

def issues_of(stack_configs, *edits) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_estate(stack_configs.edited("dev", *edits), SOURCE)
    return [f"{i.where()}: {i.message}" for i in caught.value.issues]


EMBED = (APIS, "image-embed")
SENTIMENT = (APIS, "sentiment")


@pytest.mark.parametrize(("edits", "where", "says"), [
    ([((*EMBED, "autoscaling", "minReplicas"), 0)], "image-embed.autoscaling.minReplicas",
     "0 needs a metric measured outside the pods (queue or custom)"),
    ([((*SENTIMENT, "autoscaling", "minReplicas"), 0)], "sentiment.autoscaling.minReplicas",
     "the HPA needs a running replica"),
    ([((*EMBED, "proxy", "enabled"), False), ((*EMBED, "autoscaling", "metric"), "inFlight")],
     "image-embed.autoscaling.metric", "measured by the proxy, which is off"),
    ([((*EMBED, "autoscaling", "metric"), "rps")], "image-embed.autoscaling.targetRps", "is required with metric rps"),
    ([((*EMBED, "autoscaling", "metric"), "custom")], "image-embed.autoscaling.custom", "is required with metric custom"),
    ([((*EMBED, "autoscaling", "metric"), "queue")], "image-embed.autoscaling.metric", "declare `queue:`"),
    ([((*EMBED, "autoscaling", "targetUtilization"), 50)], "image-embed.autoscaling.targetUtilization",
     "applies to metric cpu or memory, but this API scales on inFlight"),
    ([((*SENTIMENT, "autoscaling", "targetInFlight"), 3)], "sentiment.autoscaling.targetInFlight",
     "applies to metric inFlight"),
    ([((*SENTIMENT, "autoscaling", "upscaleTolerance"), 0.05)], "sentiment.autoscaling.upscaleTolerance",
     "alpha feature before Kubernetes 1.35"),
    ([((CLUSTER, "kubernetesVersion"), "1.35"), ((*EMBED, "autoscaling", "downscaleTolerance"), 0.05)],
     "image-embed.autoscaling.downscaleTolerance", "ScaledObject has no tolerance field"),
    ([((*EMBED, "autoscaling", "window"), "10s")], "image-embed.autoscaling.window", "between 30s"),
    ([((*EMBED, "maxQueueLength"), 3), ((*EMBED, "autoscaling", "targetInFlight"), 5)],
     "image-embed.autoscaling.targetInFlight", "at most maxConcurrency + maxQueueLength = 4 requests"),
    ([((*SENTIMENT, "autoscaling", "activationThreshold"), 2)], "sentiment.autoscaling.activationThreshold",
     "applies to KEDA metrics"),
    ([((*EMBED, "port"), 9902)], "image-embed.port", "taken by the proxy"),
    ([((*EMBED, "proxy", "enabled"), False), ((*EMBED, "autoscaling", "metric"), "cpu"),
      ((*EMBED, "maxQueueLength"), 10)], "image-embed.maxQueueLength", "only the proxy enforces"),
    ([((*SENTIMENT, "sidecars"), {"proxy": {"image": "ghcr.io/acme/x:1.0.0"}})], "sentiment.sidecars.proxy",
     "the request proxy's name"),
    ([((*EMBED, "proxy", "image"), "envoyproxy/envoy:latest")], "image-embed.proxy.image",
     "needs an explicit tag"),
    ([((CLUSTER, "prometheus"), {"url": "http://prom.monitoring.svc:9090", "retention": "1d"})],
     "cluster.prometheus.retention", "not to an external one"),
    ([((APIS, "doc-embed", "queue"), {"url": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
                                      "visibilityTimeoutSeconds": 60})],
     "doc-embed.queue.visibilityTimeoutSeconds", "applies to a queue modelplane creates"),
])
def test_autoscaling_config_mistakes_are_named(stack_configs, edits, where: str, says: str) -> None:
    found = issues_of(stack_configs, *edits)

    assert len(found) == 1, found
    assert found[0].startswith(f"modelplane:apis.{where}: " if not where.startswith("cluster")
                               else f"modelplane:{where}: "), found
    assert says in found[0]


# ------------------------------------------------------------------------ creation order

def _urn(plan, type_: str, name: str) -> str:
    [urn] = [r.urn for r in plan.resources if (r.type, r.name) == (type_, name)]
    return urn


def _waits_for(plan, type_: str, name: str) -> set[str]:
    [resource] = [r for r in plan.resources if (r.type, r.name) == (type_, name)]
    return set(resource.dependencies)


RELEASE = "kubernetes:helm.sh/v3:Release"


def test_custom_resources_wait_for_the_releases_that_bring_their_crds(dev_plan) -> None:
    # depends_on is not inherited by a component's children: without these, a first `pulumi up`
    # could create a ScaledObject before KEDA's CRDs exist and fail.
    keda = _urn(dev_plan, RELEASE, "ml-dev-keda")
    prometheus = _urn(dev_plan, RELEASE, "ml-dev-kube-prometheus-stack")

    for name in ("image-embed-autoscaling", "doc-embed-autoscaling"):
        assert keda in _waits_for(dev_plan, "kubernetes:keda.sh/v1alpha1:ScaledObject", name)
    assert keda in _waits_for(dev_plan, "kubernetes:keda.sh/v1alpha1:TriggerAuthentication",
                              "doc-embed-autoscaling-aws-auth")
    for name in ("image-embed-metrics", "sentiment-metrics"):
        assert prometheus in _waits_for(dev_plan, "kubernetes:monitoring.coreos.com/v1:PodMonitor", name)
    # ... and the ScaledObject also waits for the Deployment it scales.
    assert _urn(dev_plan, "kubernetes:apps/v1:Deployment", "image-embed") in _waits_for(
        dev_plan, "kubernetes:keda.sh/v1alpha1:ScaledObject", "image-embed-autoscaling")


def test_deployments_wait_for_their_node_group_configmaps_and_gpu_device_plugin(dev_plan) -> None:
    plugin = _urn(dev_plan, RELEASE, "ml-dev-nvidia-device-plugin")
    embed = _waits_for(dev_plan, "kubernetes:apps/v1:Deployment", "image-embed")
    sentiment = _waits_for(dev_plan, "kubernetes:apps/v1:Deployment", "sentiment")

    assert plugin in embed and plugin not in sentiment
    assert _urn(dev_plan, "eks:index:ManagedNodeGroup", "gpu-spot") in embed
    assert _urn(dev_plan, "kubernetes:core/v1:ConfigMap", "image-embed-proxy") in embed
    assert _urn(dev_plan, "eks:index:ManagedNodeGroup", "cpu") in sentiment
    # Nothing in an API waits for the add-ons it does not use.
    assert not any(r.type == RELEASE for r in dev_plan.resources if r.urn in sentiment)


def test_component_refuses_tolerances_it_cannot_render() -> None:
    # Direct users of AutoscalingPolicy skip the stack-file validation; the component itself refuses.
    import pulumi

    from modelplane.autoscaling_policy import AutoscalingPolicy, AutoscalingPolicyArgs, MetricSource
    from modelplane.config import AutoscalingConfig
    from modelplane.offline import start_mock_engine

    start_mock_engine("tolerance", "us-east-1")
    try:
        spec = AutoscalingConfig.model_validate({"metric": "cpu", "upscaleTolerance": 0.05})
        with pytest.raises(ValueError, match="need a cpu/memory metric on Kubernetes 1.35"):
            AutoscalingPolicy("old", AutoscalingPolicyArgs(target="x", namespace="x", spec=spec,
                                                           kubernetes_version="1.33"))
        with pytest.raises(ValueError, match="metric inFlight"):
            AutoscalingPolicy("keda", AutoscalingPolicyArgs(
                target="x", namespace="x", spec=spec, kubernetes_version="1.35",
                source=MetricSource("inFlight", 1, query="q", prometheus_url="http://p")))
    finally:
        import gc
        gc.enable()
        pulumi.runtime.settings.reset_options()


def test_a_created_queue_name_must_fit_sqs_limit(stack_configs) -> None:
    longest = "ml-" + "x" * 36 + "a"  # 40 characters, the most a cluster name may have
    worker = stack_configs.load("dev")[APIS]["doc-embed"]

    found = issues_of(stack_configs, ((CLUSTER, "name"), longest),
                      ((APIS, "doc-embed"), stack_configs.DELETE), ((APIS, "d" * 40), worker))

    assert found == [f"modelplane:apis.{'d' * 40}.queue: the queue modelplane creates would be named "
                     f"'{longest}-{'d' * 40}', 81 characters; SQS allows 80: shorten the cluster or API name, "
                     "or give the url of an existing queue"]
