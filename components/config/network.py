"""``apis.<name>.network`` and ``cluster.prometheus.scrapers``: who may reach an API's pods, and where they may go.

Each API namespace gets a NetworkPolicy (default deny, in and out); these
models name what it lets through beyond what modelplane itself needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from ._base import Cidr, DnsLabel, Issue, LabelKey, LabelValue, _Model

if TYPE_CHECKING:
    from .apis import ApiConfig
    from .cluster import ClusterConfig

IN_CLUSTER_URL = re.compile(r"^https?://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc"
                            r"(\.cluster\.local)?(:[0-9]+)?(/.*)?$")
"""A Service URL inside the cluster: ``http://<service>.<namespace>.svc[.cluster.local][:port]``."""


class NetworkPeer(_Model):
    """Pods (by namespace and labels) or addresses (a CIDR): one source or destination of traffic."""

    namespace: DnsLabel | None = None
    """Pods in this namespace (all of them, or those with ``podLabels``)."""
    namespace_labels: dict[LabelKey, LabelValue] | None = None
    """Pods in the namespaces carrying these labels (``{}``: every namespace)."""
    pod_labels: dict[LabelKey, LabelValue] | None = None
    """Only the pods with these labels (in ``namespace`` / ``namespaceLabels``; alone: in any namespace)."""
    cidr: Cidr | None = None
    """Addresses outside the pod network (a VPC range, a VPN, a load balancer's subnets), e.g. ``10.0.0.0/16``."""


class EgressRule(NetworkPeer):
    """A destination the API's pods may open connections to."""

    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field([], max_length=32)
    """Destination ports (1-65535). Empty: every port."""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """Protocol of ``ports``."""


class NetworkConfig(_Model):
    """The API namespace's NetworkPolicy: nothing reaches the pods or leaves them unless it is listed here or modelplane needs it.

    Always open: the Service port (the proxy's, when it runs) to ``allowFrom``; the proxy's metrics port (and the server's, with ``metricsPath``) to ``cluster.prometheus.scrapers``; DNS to the cluster's resolver; HTTPS to AWS when the API reads S3 (``modelUri``) or consumes SQS (``queue``). With the proxy on, the server's own port is reachable only from inside the pod.
    """

    isolated: bool = True
    """Give the namespace its NetworkPolicy. Off: no policy, every pod in the cluster reaches every port of the API and the API reaches everything (the pack's ``network-policy-per-namespace`` rule flags it)."""
    allow_from: list[NetworkPeer] | None = Field(None, max_length=64)
    """Who may call the API on its Service port. Unset: every pod in the cluster (not addresses outside it). ``[]``: nobody but Prometheus."""
    egress: list[EgressRule] = Field([], max_length=64)
    """Destinations beyond DNS and AWS the API calls (a feature store, another API, a database)."""


def in_cluster_namespace(url: str | None) -> str | None:
    """The namespace of an in-cluster Service URL (``http://prometheus.monitoring.svc:9090``), else None."""
    match = IN_CLUSTER_URL.match(url or "")
    return match.group(2) if match else None


def _check_peers(peers: list[NetworkPeer], path: tuple[str | int, ...]) -> Iterator[Issue]:
    for index, peer in enumerate(peers):
        at = path + (index,)
        if peer.cidr is not None and (peer.namespace is not None or peer.namespace_labels is not None
                                      or peer.pod_labels is not None):
            yield Issue(at, "a cidr is a range of addresses and cannot be combined with namespace, namespaceLabels "
                            "or podLabels; make them two entries")
        elif peer.cidr is None and peer.namespace is None and peer.namespace_labels is None \
                and peer.pod_labels is None:
            yield Issue(at, "names no one: give namespace, namespaceLabels, podLabels or cidr")
        elif peer.namespace is not None and peer.namespace_labels is not None:
            yield Issue(at + ("namespaceLabels",), "namespace already picks one namespace; give namespace or "
                                                   "namespaceLabels, not both")


def _check_network(api: ApiConfig, path: tuple[str | int, ...]) -> Iterator[Issue]:
    network = api.network
    at = path + ("network",)
    if not network.isolated:
        for key in ("allow_from", "egress"):
            if key in network.model_fields_set:
                camel = "allowFrom" if key == "allow_from" else key
                yield Issue(at + (camel,), "applies to the NetworkPolicy, which isolated: false turns off; remove "
                                           "it or set isolated: true")
        return
    yield from _check_peers(network.allow_from or [], at + ("allowFrom",))
    yield from _check_peers(list(network.egress), at + ("egress",))


def scraper_peers(cluster: ClusterConfig, installs_prometheus: bool) -> list[NetworkPeer]:
    """Who scrapes the APIs' metrics: the configured scrapers, the Prometheus modelplane installs, or the namespace of
    an in-cluster ``prometheus.url``; empty when none of these says."""
    from .apis import MONITORING_NAMESPACE

    prometheus = cluster.prometheus
    if prometheus.scrapers is not None:
        return list(prometheus.scrapers)
    if installs_prometheus:
        return [NetworkPeer(namespace=MONITORING_NAMESPACE)]
    namespace = in_cluster_namespace(prometheus.url)
    return [NetworkPeer(namespace=namespace)] if namespace is not None else []


def _check_scrapers(cluster: ClusterConfig, apis: dict[str, ApiConfig], installs_prometheus: bool,
                    pod_monitors: bool, path: tuple[str | int, ...], warnings: list[str]) -> Iterator[Issue]:
    """Isolated APIs whose metrics someone must scrape, when nothing says who does."""
    from .autoscaling import uses_prometheus

    if scraper_peers(cluster, installs_prometheus):
        return
    isolated = {n: a for n, a in apis.items() if a.network.isolated and (a.proxy.enabled or a.metrics_path)}
    scaled = sorted(n for n, a in isolated.items() if uses_prometheus(a))
    where = f"the Prometheus at {cluster.prometheus.url}" if cluster.prometheus.url else "the Prometheus"
    if scaled and cluster.prometheus.url is not None:  # without a url, the url's own check speaks
        yield Issue(path, f"is required: {', '.join(scaled)} scale(s) on request metrics that {where} scrapes from "
                          "their pods, and their NetworkPolicies admit only the scrapers named here; give the "
                          "namespace it runs in ([{namespace: monitoring}]) or its collector's cidr, or set "
                          "network.isolated: false on those APIs")
    elif pod_monitors and isolated:
        warnings.append(f"{'.'.join(str(p) for p in path)} is unset: the Prometheus Operator's PodMonitors for "
                        f"{', '.join(sorted(isolated))} will find the metrics ports closed by their NetworkPolicies; "
                        "name the namespace the Prometheus runs in")
