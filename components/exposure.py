"""An exposed API's way in: an Ingress in the shared ALB of its visibility, its certificate, its DNS name.

Why an Ingress and not a Gateway: the AWS Load Balancer Controller's Ingress
support is its long-stable path, and an IngressGroup gives exactly the shape
wanted: every Ingress with the same ``group.name`` becomes rules of one ALB,
so the estate pays for one load balancer per visibility, not one per API.
Weighted forwarding (canary) and listener-rule conditions (per-API source
allow-lists) are annotations of the same Ingress. The choice stays out of the
config: the stack file says ``expose``, not which API objects carry it.

The ALB targets pod IPs (``target-type: ip``) on the Service's target port,
the proxy's, so its concurrency limits hold for outside callers too, and the
namespace gets the controller's pod readiness gate: a rollout moves on only
once new pods are healthy in the ALB's target group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .config import TLS_POLICY, ApiConfig, ExposeConfig, canary_service_name

__all__ = ["ALB_PREFIX", "READINESS_GATE_LABEL", "Exposure", "expose_api", "group_name", "ingress_metadata"]

ALB_PREFIX = "alb.ingress.kubernetes.io/"
READINESS_GATE_LABEL = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}
"""Namespace label: the controller injects a readiness gate that holds a new pod until its ALB target is healthy."""

SERVICE_PORT = 80


def group_name(cluster: str, visibility: str) -> str:
    """The IngressGroup (one ALB) of the cluster's APIs of one visibility."""
    return f"{cluster}-{visibility}"


def backend_name(name: str, spec: ApiConfig) -> str:
    """The Ingress backend: the API's Service, or the weighted action that splits it with the canary."""
    return f"{name}-weighted" if spec.canary is not None else name


def ingress_metadata(name: str, spec: ApiConfig, cluster: str, health_path: str,
                     certificate_arn: pulumi.Input[str] | None,
                     deregistration_seconds: int) -> dict[str, pulumi.Input[str]]:
    """The controller's annotations for one API: the group, the listeners, health checks, allow-list, split."""
    expose = spec.expose
    assert expose is not None
    https = expose.certificate is not None
    annotations: dict[str, pulumi.Input[str]] = {
        f"{ALB_PREFIX}group.name": group_name(cluster, expose.visibility),
        f"{ALB_PREFIX}scheme": "internet-facing" if expose.visibility == "public" else "internal",
        f"{ALB_PREFIX}target-type": "ip",
        f"{ALB_PREFIX}listen-ports": json.dumps([{"HTTP": 80}, {"HTTPS": 443}] if https else [{"HTTP": 80}]),
        f"{ALB_PREFIX}healthcheck-path": health_path,
        f"{ALB_PREFIX}success-codes": "200",
        f"{ALB_PREFIX}load-balancer-attributes": (
            f"idle_timeout.timeout_seconds={expose.idle_timeout_seconds},"
            "routing.http.drop_invalid_header_fields.enabled=true"),
        # The ALB stops sending new requests when a pod starts terminating; in-flight ones get until SIGKILL.
        f"{ALB_PREFIX}target-group-attributes": f"deregistration_delay.timeout_seconds={deregistration_seconds}",
    }
    if https:
        assert certificate_arn is not None
        annotations |= {f"{ALB_PREFIX}certificate-arn": certificate_arn, f"{ALB_PREFIX}ssl-policy": TLS_POLICY,
                        f"{ALB_PREFIX}ssl-redirect": "443"}
    backend = backend_name(name, spec)
    if expose.allow_from is not None:
        annotations[f"{ALB_PREFIX}conditions.{backend}"] = json.dumps([{
            "field": "source-ip", "sourceIpConfig": {"values": [str(c) for c in expose.allow_from]}}])
    if spec.canary is not None:
        weight = spec.canary.weight
        annotations[f"{ALB_PREFIX}actions.{backend}"] = json.dumps({"type": "forward", "forwardConfig": {
            "targetGroups": [{"serviceName": name, "servicePort": str(SERVICE_PORT), "weight": 100 - weight},
                             {"serviceName": canary_service_name(name), "servicePort": str(SERVICE_PORT),
                              "weight": weight}]}})
    return annotations


def ingress_spec(name: str, spec: ApiConfig) -> dict[str, Any]:
    expose = spec.expose
    assert expose is not None
    port = {"name": "use-annotation"} if spec.canary is not None else {"number": SERVICE_PORT}
    rule: dict[str, Any] = {"http": {"paths": [{
        "path": expose.path, "pathType": "Prefix",
        "backend": {"service": {"name": backend_name(name, spec), "port": port}}}]}}
    if expose.host is not None:
        rule = {"host": expose.host, **rule}
    return {"ingressClassName": "alb", "rules": [rule]}


@dataclass
class Exposure:
    """What exposing an API made: the Ingress, and the URL callers use."""

    ingress: k8s.networking.v1.Ingress
    url: pulumi.Output[str]


def expose_api(name: str, spec: ApiConfig, metadata: dict[str, Any], cluster: str, health_path: str,
               deregistration_seconds: int, tags: dict[str, str], opts: pulumi.ResourceOptions,
               aws_opts: pulumi.ResourceOptions) -> Exposure:
    """The Ingress of an exposed API and, with ``certificate.zone``, its ACM certificate and DNS record."""
    expose = spec.expose
    assert expose is not None
    certificate = expose.certificate
    zone_id: pulumi.Output[str] | None = None
    arn: pulumi.Input[str] | None = None
    if certificate is not None and certificate.arn is not None:
        arn = certificate.arn
    elif certificate is not None and certificate.zone is not None:
        assert expose.host is not None
        zone_id = aws.route53.get_zone_output(name=certificate.zone, private_zone=False).zone_id
        arn = _validated_certificate(name, expose, zone_id, tags, aws_opts)
    ingress = k8s.networking.v1.Ingress(
        f"{name}-ingress",
        metadata={**metadata, "annotations": {**metadata["annotations"],
                                              **ingress_metadata(name, spec, cluster, health_path, arn,
                                                                 deregistration_seconds)}},
        spec=ingress_spec(name, spec),
        opts=opts,
    )
    hostname = ingress.status.apply(_load_balancer_hostname)
    if zone_id is not None:
        aws.route53.Record(f"{name}-dns", zone_id=zone_id, name=expose.host, type="CNAME", ttl=60,
                           records=[hostname], opts=aws_opts)
    scheme = "https" if certificate is not None else "http"
    suffix = expose.path if expose.path != "/" else ""
    url = (pulumi.Output.from_input(f"{scheme}://{expose.host}{suffix}") if expose.host is not None
           else hostname.apply(lambda host: f"{scheme}://{host}{suffix}"))
    return Exposure(ingress, url)


def _validated_certificate(name: str, expose: ExposeConfig, zone_id: pulumi.Output[str], tags: dict[str, str],
                           opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """An ACM certificate for the host, validated by a DNS record in the zone; its ARN once it is issued."""
    certificate = aws.acm.Certificate(f"{name}-cert", domain_name=expose.host, validation_method="DNS",
                                      tags=tags, opts=opts)
    option = certificate.domain_validation_options[0]
    record = aws.route53.Record(f"{name}-cert-validation", zone_id=zone_id, name=option.resource_record_name,
                                type=option.resource_record_type, records=[option.resource_record_value],
                                ttl=60, allow_overwrite=True, opts=opts)
    validation = aws.acm.CertificateValidation(f"{name}-cert", certificate_arn=certificate.arn,
                                               validation_record_fqdns=[record.fqdn], opts=opts)
    return validation.certificate_arn


def _load_balancer_hostname(status: Any) -> str:
    """The ALB's DNS name from the Ingress status (the provider waits for it on create)."""
    balancer = getattr(status, "load_balancer", None)
    ingress = getattr(balancer, "ingress", None) or []
    return str(getattr(ingress[0], "hostname", None) or "") if ingress else ""
