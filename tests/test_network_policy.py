"""Each API namespace's NetworkPolicy: default deny, the Service port to callers, metrics to the scrapers only."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.config import ConfigError, parse_estate

from conftest import DELETE

APIS = "modelplane:apis"
CLUSTER = "modelplane:cluster"
SOURCE = "stacks/Pulumi.dev.yaml"
SENTIMENT = (APIS, "sentiment")
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
DNS = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
UNEXPOSED = (((APIS, "sentiment", "expose"), DELETE), ((APIS, "image-embed", "expose"), DELETE))
"""dev with its APIs inside the cluster only (exposed ones also admit the load balancer: tests/test_traffic.py)."""
AWS_HTTPS = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443, "protocol": "TCP"}]}


@pytest.fixture(scope="module")
def inner_plan(render, stack_configs):
    return render("dev", stack_configs.edited("dev", *UNEXPOSED))


def policy(plan, find, api: str) -> dict[str, Any]:
    found = find.object(plan, "NetworkPolicy", api, namespace=api)
    return found["spec"]


def opened_ports(spec: dict[str, Any]) -> set[str | int]:
    return {port["port"] for rule in spec.get("ingress", []) for port in rule["ports"]}


def issues(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, SOURCE)
    return {issue.where(): issue.message for issue in caught.value.issues}


def test_a_proxied_api_opens_only_the_proxy_to_callers_and_metrics_to_prometheus(inner_plan, find) -> None:
    spec = policy(inner_plan, find, "sentiment")

    assert spec["podSelector"] == {"matchLabels": {"modelplane.io/api": "sentiment"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {"from": [{"namespaceSelector": {}}], "ports": [{"port": "proxy", "protocol": "TCP"}]},
        {"from": [MONITORING], "ports": [{"port": "metrics", "protocol": "TCP"}]},
    ]
    # The server's own port stays closed: callers go through the proxy's limits.
    assert "http" not in opened_ports(spec)
    # It uses no AWS service: DNS is all it may reach.
    assert spec["egress"] == [DNS]


def test_the_named_ports_exist_on_the_pods_the_policy_selects(inner_plan, find) -> None:
    for api in ("sentiment", "image-embed", "doc-embed"):
        spec = policy(inner_plan, find, api)
        deployment = find.object(inner_plan, "Deployment", api)
        pod = deployment["spec"]["template"]
        containers = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
        names = {port["name"] for c in containers for port in c.get("ports", []) if "name" in port}
        assert spec["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert opened_ports(spec), api
        assert opened_ports(spec) <= names, api


def test_apis_that_read_s3_or_a_queue_may_reach_aws_over_https(inner_plan, find) -> None:
    embed = policy(inner_plan, find, "image-embed")  # modelUri
    worker = policy(inner_plan, find, "doc-embed")  # queue, no proxy

    assert embed["egress"] == [DNS, AWS_HTTPS]
    assert worker["egress"] == [DNS, AWS_HTTPS]
    # Without the proxy the Service sends to the server's port, and nothing scrapes it.
    assert worker["ingress"] == [{"from": [{"namespaceSelector": {}}], "ports": [{"port": "http", "protocol": "TCP"}]}]


def test_callers_and_destinations_come_from_the_stack_file(render, stack_configs, find) -> None:
    plan = render("dev", stack_configs.edited("dev", *UNEXPOSED, ((*SENTIMENT, "network"), {
        "allowFrom": [{"namespace": "web", "podLabels": {"app": "cart"}}, {"cidr": "10.1.0.0/16"},
                      {"podLabels": {"role": "client"}}],
        "egress": [{"namespace": "features", "ports": [6379]}, {"cidr": "10.3.0.0/16"}]})))
    spec = policy(plan, find, "sentiment")

    assert spec["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}},
         "podSelector": {"matchLabels": {"app": "cart"}}},
        {"ipBlock": {"cidr": "10.1.0.0/16"}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "client"}}},
    ]
    assert spec["egress"][1:] == [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "features"}}}],
         "ports": [{"port": 6379, "protocol": "TCP"}]},
        {"to": [{"ipBlock": {"cidr": "10.3.0.0/16"}}]},
    ]


def test_metrics_path_opens_the_server_port_to_the_scrapers(render, stack_configs, find) -> None:
    plan = render("dev", stack_configs.edited("dev", *UNEXPOSED, ((*SENTIMENT, "metricsPath"), "/metrics"),
                                              ((*SENTIMENT, "network", "allowFrom"), [])))
    spec = policy(plan, find, "sentiment")

    # Nobody calls it (allowFrom: []), Prometheus reads the proxy's and the server's metrics.
    assert spec["ingress"] == [{"from": [MONITORING], "ports": [{"port": "metrics", "protocol": "TCP"},
                                                                {"port": "http", "protocol": "TCP"}]}]


def test_an_api_nobody_may_call_denies_all_ingress(render, stack_configs, find) -> None:
    plan = render("dev", stack_configs.edited("dev", *UNEXPOSED, ((APIS, "doc-embed", "network", "allowFrom"), [])))
    spec = policy(plan, find, "doc-embed")

    assert "Ingress" in spec["policyTypes"] and "ingress" not in spec


def test_isolated_false_leaves_the_namespace_open(render, stack_configs, find) -> None:
    plan = render("dev", stack_configs.edited("dev", *UNEXPOSED, ((*SENTIMENT, "network", "isolated"), False)))

    assert [o["metadata"]["name"] for o in find.objects(plan, "NetworkPolicy")] == ["doc-embed", "image-embed"]


def test_scrapers_follow_the_prometheus(render, stack_configs, find) -> None:
    in_cluster = render("dev", stack_configs.edited(
        "dev", ((CLUSTER, "prometheus", "url"), "http://prometheus-operated.observability.svc:9090")))
    named = render("dev", stack_configs.edited("dev", *UNEXPOSED,
                                               ((CLUSTER, "prometheus", "scrapers"), [{"cidr": "10.0.4.0/24"}])))

    assert policy(in_cluster, find, "sentiment")["ingress"][1]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}]
    assert policy(named, find, "sentiment")["ingress"][1]["from"] == [{"ipBlock": {"cidr": "10.0.4.0/24"}}]


def test_request_metrics_from_a_prometheus_outside_the_cluster_need_its_scrapers(stack_configs) -> None:
    amp = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1234abcd-12ab-34cd-56ef-1234567890ab"
    found = issues(stack_configs.edited("dev", ((CLUSTER, "prometheus", "url"), amp)))

    assert list(found) == ["modelplane:cluster.prometheus.scrapers"]
    assert "image-embed" in found["modelplane:cluster.prometheus.scrapers"]
    # An API that opts out of isolation needs no scraper named.
    opened = stack_configs.edited("dev", ((CLUSTER, "prometheus", "url"), amp),
                                  ((APIS, "image-embed", "network", "isolated"), False))
    assert parse_estate(opened, SOURCE).cluster.prometheus.url == amp


@pytest.mark.parametrize(("peer", "where", "says"), [
    ({"namespace": "web", "cidr": "10.0.0.0/8"}, "allowFrom[0]", "cannot be combined"),
    ({}, "allowFrom[0]", "names no one"),
    ({"namespace": "web", "namespaceLabels": {"a": "b"}}, "allowFrom[0].namespaceLabels", "not both"),
    ({"cidr": "10.0.0.0/33"}, "allowFrom[0].cidr", "10.0.0.0/33"),
    ({"namespace": "Web"}, "allowFrom[0].namespace", "'Web'"),
    ({"namespaceLabels": {"team": "a b"}}, "allowFrom[0].namespaceLabels.team", "'a b'"),
])
def test_bad_peers_are_named(stack_configs, peer, where: str, says: str) -> None:
    found = issues(stack_configs.edited("dev", ((*SENTIMENT, "network", "allowFrom"), [peer])))
    key = f"modelplane:apis.sentiment.network.{where}"

    assert list(found) == [key], found
    assert says in found[key]


@pytest.mark.parametrize(("rule", "where", "says"), [
    ({"cidr": "10.0.0.0/16", "ports": [0]}, "egress[0].ports[0]", "greater than or equal to 1"),
    ({"cidr": "10.0.0.0/16", "ports": [70000]}, "egress[0].ports[0]", "less than or equal to 65535"),
    ({"cidr": "10.0.0.0/16", "protocol": "ICMP"}, "egress[0].protocol", "'TCP', 'UDP' or 'SCTP'"),
])
def test_bad_egress_rules_are_named(stack_configs, rule, where: str, says: str) -> None:
    found = issues(stack_configs.edited("dev", ((*SENTIMENT, "network", "egress"), [rule])))
    key = f"modelplane:apis.sentiment.network.{where}"

    assert list(found) == [key], found
    assert says in found[key]


def test_network_rules_without_a_policy_are_refused(stack_configs) -> None:
    found = issues(stack_configs.edited("dev", ((*SENTIMENT, "network"), {
        "isolated": False, "allowFrom": [{"namespace": "web"}]})))

    assert "isolated: false turns off" in found["modelplane:apis.sentiment.network.allowFrom"]


def test_a_present_operator_with_no_known_namespace_is_a_warning(stack_configs) -> None:
    config = stack_configs.edited("local", ((CLUSTER, "existing", "addons", "prometheus"), "present"),
                                  ((CLUSTER, "prometheus", "url"), "http://prometheus.example.com:9090"),
                                  # The one API scaling on a request metric opts out (else it is an error, as above).
                                  ((APIS, "image-embed", "network", "isolated"), False))
    estate = parse_estate(config, "stacks/Pulumi.local.yaml")

    assert any("cluster.prometheus.scrapers is unset" in w for w in estate.warnings), estate.warnings


def test_the_vpc_cni_enforces_network_policies_on_a_created_cluster(inner_plan, find) -> None:
    cluster = find.one(inner_plan, "eks:index:Cluster", "ml-dev")

    assert cluster.inputs["vpcCniOptions"]["enableNetworkPolicy"] is True
