"""The NetworkPolicy of an API's namespace: default deny both ways, then exactly what serving needs.

In: the Service port (the proxy's when it runs, so its concurrency limits
apply to every caller) from ``network.allowFrom`` (default: every pod in the
cluster); the metrics ports from the Prometheus that scrapes them. The model
server's own port is left closed when the proxy is on: only the proxy, in the
same pod, reaches it over loopback, which NetworkPolicies do not filter.
Kubelet probes come from the node, which CNIs admit to its own pods.

Out: DNS to the cluster resolver; HTTPS anywhere when the API reads S3 or
consumes SQS (AWS service endpoints, and STS for the service-account role,
have no fixed addresses); ``network.egress``; and, with a shadow, the proxy
port of the shadow's pods, where the stable replicas' proxies mirror requests.

A canary's pods get a policy of their own from the same function and the same
API config (so the same callers), and a shadow's admit only the API's own
pods: adding or removing a second version never touches the API's policy,
except that a shadow's mirror needs its way out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cluster_context import ClusterContext
from .config import PROXY_PORT, ApiConfig, EgressRule, NetworkPeer

__all__ = ["DNS_PEER", "api_network_policy_spec", "network_policy_spec", "peer"]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label Kubernetes puts on every namespace: its name."""

DNS_PEER = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
"""The cluster's DNS pods (CoreDNS on EKS and kind carries the kube-dns label)."""

HTTPS = 443


def peer(spec: NetworkPeer) -> dict[str, Any]:
    """A NetworkPolicy peer (``from``/``to`` entry) for a config peer."""
    if spec.cidr is not None:
        return {"ipBlock": {"cidr": str(spec.cidr)}}
    rendered: dict[str, Any] = {}
    if spec.namespace is not None:
        rendered["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: spec.namespace}}
    elif spec.namespace_labels is not None:
        rendered["namespaceSelector"] = {"matchLabels": dict(spec.namespace_labels)} if spec.namespace_labels else {}
    else:
        rendered["namespaceSelector"] = {}  # podLabels alone: such pods in any namespace
    if spec.pod_labels:
        rendered["podSelector"] = {"matchLabels": dict(spec.pod_labels)}
    return rendered


def _ports(names: list[str | int], protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"port": port, "protocol": protocol} for port in names]


def api_network_policy_spec(spec: ApiConfig, selector: dict[str, str], cluster: ClusterContext,
                            mirror_to: dict[str, str] | None = None) -> dict[str, Any]:
    """The NetworkPolicy ``spec`` for the pods ``selector`` picks, running ``spec`` in ``cluster``.

    One place for what the cluster adds, so the API's policy and its canary's cannot differ.
    """
    return network_policy_spec(spec, selector, cluster.metrics_scrapers,
                               aws_apis=spec.model_uri is not None or spec.queue is not None,
                               load_balancer_cidrs=cluster.load_balancer_cidrs, mirror_to=mirror_to)


def network_policy_spec(spec: ApiConfig, selector: dict[str, str], scrapers: list[NetworkPeer],
                        aws_apis: bool, load_balancer_cidrs: Sequence[Any] = (),
                        mirror_to: dict[str, str] | None = None) -> dict[str, Any]:
    """The NetworkPolicy ``spec`` for the pods of one API (``selector``); ``aws_apis``: it calls S3 or SQS;
    ``mirror_to``: the labels of the shadow pods its proxy mirrors requests to.

    An exposed API also admits its load balancer (``load_balancer_cidrs``: the VPC's CIDR) on the Service's port.
    """
    network = spec.network
    callers = [peer(p) for p in network.allow_from] if network.allow_from is not None else [{"namespaceSelector": {}}]
    if spec.expose is not None:
        callers += [{"ipBlock": {"cidr": cidr}} for cidr in load_balancer_cidrs]
    service_port = "proxy" if spec.proxy.enabled else "http"
    ingress: list[dict[str, Any]] = []
    if callers:
        ingress.append({"from": callers, "ports": _ports([service_port])})
    # Prometheus scrapes the proxy's stats and, with metricsPath, the server's own metrics.
    metrics_ports: list[str | int] = (["metrics"] if spec.proxy.enabled else []) + (
        ["http"] if spec.metrics_path is not None else [])
    if scrapers and metrics_ports:
        ingress.append({"from": [peer(p) for p in scrapers], "ports": _ports(metrics_ports)})
    egress: list[dict[str, Any]] = [{"to": [DNS_PEER], "ports": _ports([53], "UDP") + _ports([53], "TCP")}]
    if aws_apis:
        egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _ports([HTTPS])})
    egress += [_egress_rule(rule) for rule in network.egress]
    if mirror_to is not None:
        # Through the shadow's Service, whose address the CNI has translated to a pod's by then: the
        # rule names the pods and their proxy port (a number: named egress ports are not on every CNI).
        egress.append({"to": [{"podSelector": {"matchLabels": dict(mirror_to)}}], "ports": _ports([PROXY_PORT])})
    return {
        "podSelector": {"matchLabels": dict(selector)},
        # Both types listed: what no rule admits is denied. No ingress rules at all (allowFrom: [] and no
        # scrapers) is left out, as the API server stores an empty list.
        "policyTypes": ["Ingress", "Egress"],
        **({"ingress": ingress} if ingress else {}),
        "egress": egress,
    }


def _egress_rule(rule: EgressRule) -> dict[str, Any]:
    return {"to": [peer(rule)], **({"ports": _ports(list(rule.ports), rule.protocol)} if rule.ports else {})}
