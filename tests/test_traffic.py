"""Exposed APIs: an Ingress each in the shared ALB of its visibility, HTTPS, allow-lists, the canary split."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from modelplane.config import ConfigError, parse_estate

from conftest import DELETE

APIS = "modelplane:apis"
CLUSTER = "modelplane:cluster"
SOURCE = "stacks/Pulumi.dev.yaml"
ALB = "alb.ingress.kubernetes.io/"
ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0f6c1e9a-3b4d-4c5e-8f70-1a2b3c4d5e6f"
PUBLIC = {"visibility": "public", "host": "sentiment.ml.example.com", "certificate": {"zone": "ml.example.com"},
          "allowFrom": ["203.0.113.0/24"]}
INTERNAL = {"visibility": "internal", "path": "/embed", "allowHttp": True}
CANARY = {"image": "ghcr.io/acme/clip-embed:0.9.2", "weight": 10}


@pytest.fixture(scope="module")
def exposed(render, stack_configs):
    return render("dev", stack_configs.edited("dev", ((APIS, "sentiment", "expose"), PUBLIC),
                                              ((APIS, "image-embed", "expose"), INTERNAL),
                                              ((APIS, "image-embed", "canary"), CANARY)))


def annotations(plan, find, api: str) -> dict[str, str]:
    return find.object(plan, "Ingress", api, namespace=api)["metadata"]["annotations"]


def issues(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, SOURCE)
    return {issue.where(): issue.message for issue in caught.value.issues}


def test_each_visibility_is_one_shared_load_balancer_targeting_pod_ips(exposed, find) -> None:
    public, internal = annotations(exposed, find, "sentiment"), annotations(exposed, find, "image-embed")

    assert (public[f"{ALB}group.name"], public[f"{ALB}scheme"]) == ("ml-dev-public", "internet-facing")
    assert (internal[f"{ALB}group.name"], internal[f"{ALB}scheme"]) == ("ml-dev-internal", "internal")
    assert public[f"{ALB}target-type"] == internal[f"{ALB}target-type"] == "ip"
    assert [o["spec"]["ingressClassName"] for o in find.objects(exposed, "Ingress")] == ["alb", "alb"]
    # Not exposed: no Ingress.
    assert [o["metadata"]["name"] for o in find.objects(exposed, "Ingress")] == ["image-embed", "sentiment"]


def test_https_with_a_dns_validated_certificate_and_a_redirect(exposed, find) -> None:
    public = annotations(exposed, find, "sentiment")
    validation = find.one(exposed, "aws:acm/certificateValidation:CertificateValidation", "sentiment-cert")
    certificate = find.one(exposed, "aws:acm/certificate:Certificate", "sentiment-cert")
    dns = find.one(exposed, "aws:route53/record:Record", "sentiment-dns")

    assert json.loads(public[f"{ALB}listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    assert public[f"{ALB}ssl-redirect"] == "443"
    assert public[f"{ALB}ssl-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert public[f"{ALB}certificate-arn"] == validation.inputs["certificateArn"]
    assert certificate.inputs["domainName"] == "sentiment.ml.example.com"
    assert certificate.inputs["validationMethod"] == "DNS"
    assert (dns.inputs["name"], dns.inputs["type"]) == ("sentiment.ml.example.com", "CNAME")
    assert dns.inputs["records"][0].endswith(".elb.amazonaws.com")
    # Plain HTTP only where the stack said so.
    assert json.loads(annotations(exposed, find, "image-embed")[f"{ALB}listen-ports"]) == [{"HTTP": 80}]


def test_an_existing_certificate_is_used_as_given(render, stack_configs, find) -> None:
    plan = render("dev", stack_configs.edited("dev", ((APIS, "sentiment", "expose"), {
        "visibility": "public", "certificate": {"arn": ARN}})))

    assert annotations(plan, find, "sentiment")[f"{ALB}certificate-arn"] == ARN
    assert not [r for r in plan.resources if r.type.startswith(("aws:acm", "aws:route53"))]


def test_the_allow_list_and_the_canary_split_are_rules_of_the_api(exposed, find) -> None:
    public, internal = annotations(exposed, find, "sentiment"), annotations(exposed, find, "image-embed")
    ingress = find.object(exposed, "Ingress", "image-embed")

    assert json.loads(public[f"{ALB}conditions.sentiment"]) == [
        {"field": "source-ip", "sourceIpConfig": {"values": ["203.0.113.0/24"]}}]
    split = json.loads(internal[f"{ALB}actions.image-embed-weighted"])
    assert split["forwardConfig"]["targetGroups"] == [
        {"serviceName": "image-embed", "servicePort": "80", "weight": 90},
        {"serviceName": "image-embed-canary", "servicePort": "80", "weight": 10}]
    [path] = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path == {"path": "/embed", "pathType": "Prefix",
                    "backend": {"service": {"name": "image-embed-weighted", "port": {"name": "use-annotation"}}}}


def test_the_load_balancer_reaches_the_proxy_port_only_and_gates_rollouts(exposed, render, stack_configs,
                                                                         find) -> None:
    inner = render("dev", stack_configs.edited("dev", ((APIS, "sentiment", "expose"), DELETE)))
    policy = find.object(exposed, "NetworkPolicy", "sentiment")["spec"]
    namespace = find.object(exposed, "Namespace", "sentiment")

    [calls] = [rule for rule in policy["ingress"] if rule["ports"] == [{"port": "proxy", "protocol": "TCP"}]]
    assert {"ipBlock": {"cidr": "10.40.0.0/16"}} in calls["from"]
    assert all(r["ports"] != [{"port": "http", "protocol": "TCP"}] for r in policy["ingress"])
    assert namespace["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    # Without expose, neither.
    plain = find.object(inner, "NetworkPolicy", "sentiment")["spec"]
    assert not any("ipBlock" in p for rule in plain["ingress"] for p in rule["from"])
    assert "elbv2.k8s.aws/pod-readiness-gate-inject" not in find.object(
        inner, "Namespace", "sentiment")["metadata"]["labels"]


def test_the_stack_exports_each_exposed_url(exposed) -> None:
    urls = exposed.outputs["externalUrls"]

    assert urls["sentiment"] == "https://sentiment.ml.example.com"
    assert urls["image-embed"].startswith("http://") and urls["image-embed"].endswith(".elb.amazonaws.com/embed")


def test_ingresses_are_strict_valid(exposed, find) -> None:
    ingresses = find.objects(exposed, "Ingress")
    assert len(ingresses) == 2
    for ingress in ingresses:
        kubernetes_validate.validate(ingress, "1.33", strict=True)


@pytest.mark.parametrize(("edits", "where", "says"), [
    ([((APIS, "sentiment", "expose"), {"visibility": "public"})], "sentiment.expose.certificate",
     "required for a public API"),
    ([((APIS, "sentiment", "expose"), {"certificate": {"zone": "ml.example.com"}})], "sentiment.expose.host",
     "required with certificate.zone"),
    ([((APIS, "sentiment", "expose"), {"host": "a.other.com", "certificate": {"zone": "ml.example.com"}})],
     "sentiment.expose.certificate.zone", "not in zone"),
    ([((APIS, "sentiment", "expose"), {"certificate": {"arn": ARN, "zone": "ml.example.com"}, "host": "a.ml.example.com"})],
     "sentiment.expose.certificate", "exactly one of arn"),
    ([((APIS, "sentiment", "expose"), {"certificate": {"arn": ARN}, "allowHttp": True})],
     "sentiment.expose.allowHttp", "redirects to HTTPS"),
    ([((APIS, "sentiment", "expose"), {"path": "/x"}), ((APIS, "image-embed", "expose"), {"path": "/x/"})],
     "sentiment.expose", "already taken by 'image-embed'"),
    ([((APIS, "sentiment", "expose"), {"path": "/a", "idleTimeoutSeconds": 30}),
      ((APIS, "image-embed", "expose"), {"path": "/b"})], "", "different ones (image-embed 60s, sentiment 30s)"),
    ([((APIS, "sentiment", "expose"), {"path": "/a", "certificate": {"arn": ARN}}),
      ((APIS, "image-embed", "expose"), {"path": "/b"})], "", "would break image-embed"),
    ([((APIS, "sentiment", "expose"), {"host": "a.ml.example.com",
                                       "allowFrom": ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]})],
     "sentiment.expose.allowFrom", "at most 5"),
    ([((APIS, "sentiment", "expose"), DELETE), ((APIS, "sentiment", "canary"), CANARY)], "sentiment.canary",
     "needs expose"),
    ([((APIS, "sentiment", "expose"), {}), ((APIS, "sentiment", "canary"), {
        "image": "ghcr.io/acme/sentiment-api:1.4.2", "weight": 5})], "sentiment.canary", "runs exactly what"),
    ([((APIS, "sentiment", "expose"), {}), ((APIS, "sentiment", "canary"), {**CANARY, "weight": 101})],
     "sentiment.canary.weight", "less than or equal to 100"),
    ([((APIS, "doc-embed", "shadow"), {"image": "ghcr.io/acme/doc-embed:2.0.0", "percent": 5})],
     "doc-embed.shadow", "turn it on"),
])
def test_traffic_mistakes_are_named(stack_configs, edits, where: str, says: str) -> None:
    found = issues(stack_configs.edited("dev", *edits))
    key = f"{APIS}.{where}" if where else APIS

    assert key in found, found
    assert says in found[key]


def test_an_existing_cluster_names_its_vpc_for_exposed_apis(stack_configs) -> None:
    config = stack_configs.edited("local", ((APIS, "sentiment", "expose"), {"allowHttp": True}),
                                  ((CLUSTER, "existing", "addons", "loadBalancerController"), "present"))
    found = issues(config)

    assert list(found) == [f"{CLUSTER}.existing.vpcCidr"]
    assert "is required: sentiment take(s) traffic" in found[f"{CLUSTER}.existing.vpcCidr"]


def test_prod_exposes_an_internal_and_a_public_api_over_https_with_allow_lists(prod_plan, find) -> None:
    internal, public = annotations(prod_plan, find, "fraud-score"), annotations(prod_plan, find, "sentiment")
    ingresses = find.objects(prod_plan, "Ingress")

    assert [o["metadata"]["name"] for o in ingresses] == ["fraud-score", "sentiment"]
    # One load balancer per visibility, pod IPs as targets, HTTPS with a redirect and the TLS 1.3 policy.
    assert (internal[f"{ALB}group.name"], internal[f"{ALB}scheme"]) == ("ml-prod-internal", "internal")
    assert (public[f"{ALB}group.name"], public[f"{ALB}scheme"]) == ("ml-prod-public", "internet-facing")
    for rules in (internal, public):
        assert rules[f"{ALB}target-type"] == "ip"
        assert json.loads(rules[f"{ALB}listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
        assert (rules[f"{ALB}ssl-redirect"], rules[f"{ALB}ssl-policy"]) == ("443", "ELBSecurityPolicy-TLS13-1-2-2021-06")
    # The existing certificate as given; the other requested and DNS-validated in the zone.
    assert internal[f"{ALB}certificate-arn"] == (
        "arn:aws:acm:eu-west-1:123456789012:certificate/8f7d2c1a-4b3e-4f6a-9c0d-2e1b5a7c9d3f")
    validation = find.one(prod_plan, "aws:acm/certificateValidation:CertificateValidation", "sentiment-cert")
    assert public[f"{ALB}certificate-arn"] == validation.inputs["certificateArn"]
    assert json.loads(internal[f"{ALB}conditions.fraud-score"]) == [
        {"field": "source-ip", "sourceIpConfig": {"values": ["10.60.0.0/16", "10.80.0.0/16"]}}]
    assert json.loads(public[f"{ALB}conditions.sentiment"]) == [
        {"field": "source-ip", "sourceIpConfig": {"values": ["203.0.113.0/24", "198.51.100.64/26"]}}]
    for ingress in ingresses:
        kubernetes_validate.validate(ingress, "1.33", strict=True)
    # The controller that makes them, with its service account's role.
    controller = "ml-prod-aws-load-balancer-controller"
    assert find.one(prod_plan, "kubernetes:helm.sh/v3:Release", controller).inputs["version"] == "3.5.0"
    assert find.one(prod_plan, "aws:iam/role:Role", controller)
    assert prod_plan.outputs["externalUrls"] == {"fraud-score": "https://fraud-score.internal.ml.example.com",
                                                 "sentiment": "https://sentiment.ml.example.com"}
