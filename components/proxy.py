"""The request proxy: an Envoy sidecar in front of every replica's model server.

Cortex put a proxy in each replica to hold a queue, refuse what does not fit
and count requests for its autoscaler. modelplane does the same with Envoy and
configuration only:

- the ``model`` cluster's circuit breakers let ``maxConcurrency`` requests
  reach the server at once (one HTTP/1.1 connection per request) and hold
  ``maxQueueLength`` more; Envoy answers anything beyond with 503 and
  ``x-envoy-overloaded: true``;
- Envoy's own statistics, served in Prometheus format, give the in-flight
  count: ``upstream_rq_active`` (at the server) plus
  ``upstream_rq_pending_active`` (queued) of the ``model`` cluster.

The proxy runs as a native sidecar (an init container with
``restartPolicy: Always``): it starts before the server and, when a replica
terminates, stops only after the server has drained, so no accepted request
loses its proxy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .config import (
    PROXY_ADMIN_PORT,
    PROXY_CONTAINER,
    PROXY_METRICS_PORT,
    PROXY_PORT,
    ApiConfig,
    duration_seconds,
    image_pull_policy,
)

__all__ = [
    "CONFIG_FILE",
    "IN_FLIGHT_METRICS",
    "MIRROR_CLUSTER",
    "MODEL_CLUSTER",
    "PROXY_USER",
    "REQUESTS_METRIC",
    "Mirror",
    "config_map",
    "envoy_config",
    "in_flight_query",
    "listener_stat_prefix",
    "model_cluster",
    "proxy_container",
    "rps_query",
]

MODEL_CLUSTER = "model"
"""Envoy cluster name of the local model server; its stats carry ``envoy_cluster_name="model"``."""

LISTENER_STAT_PREFIX = "api"
"""Stat prefix of the request listener's HTTP connection manager."""

MIRROR_CLUSTER = "shadow"
"""Envoy cluster of a stable replica's proxy that mirrored requests go to: the shadow's Service."""

MIRROR_PORT = 80
"""Port of the shadow's Service (the API Service's port)."""

IN_FLIGHT_METRICS = ("envoy_cluster_upstream_rq_active", "envoy_cluster_upstream_rq_pending_active")
"""Envoy gauges whose sum is Cortex's in-flight count: requests at the server plus requests queued for it."""

REQUESTS_METRIC = "envoy_http_downstream_rq_total"
"""Envoy counter of requests received (served, queued or refused): the demand ``rps`` scales on."""

CONFIG_DIR = "/etc/modelplane/proxy"
"""Where the proxy's ConfigMap is mounted."""

CONFIG_FILE = "envoy.json"
"""The Envoy bootstrap file in that ConfigMap (JSON: Envoy reads it by extension, and it renders fast)."""

PROXY_USER = 65532
"""UID and GID the proxy runs as (the distroless images' ``nonroot`` user)."""


@dataclass(frozen=True)
class Mirror:
    """Where a stable replica's proxy sends a copy of a share of its requests (a shadow's Service)."""

    host: str
    """DNS name of the shadow's Service (``<api>-shadow.<namespace>.svc.cluster.local``)."""
    percent: float
    """Percent of requests copied, in (0, 100]."""


def model_cluster(version: str | None = None) -> str:
    """Envoy cluster name of the local server: ``model``, or ``model-<version>`` in a canary's or shadow's proxy.

    The second version's pods share the API's namespace; their own names keep the API's in-flight
    and request-rate queries (which select by namespace and this name) to the stable replicas.
    """
    return MODEL_CLUSTER if version is None else f"{MODEL_CLUSTER}-{version}"


def listener_stat_prefix(version: str | None = None) -> str:
    """Stat prefix of the request listener: ``api``, or ``api-<version>`` (see :func:`model_cluster`)."""
    return LISTENER_STAT_PREFIX if version is None else f"{LISTENER_STAT_PREFIX}-{version}"


def envoy_config(spec: ApiConfig, version: str | None = None, mirror: Mirror | None = None) -> dict[str, Any]:
    """The Envoy v3 bootstrap for one API's replicas (``version``: a canary's or shadow's; ``mirror``: a shadow)."""
    local = model_cluster(version)
    # No route timeout: a long generation must not be cut off by the proxy; a client that gives up
    # closes the stream and frees its slot.
    route: dict[str, Any] = {"cluster": local, "timeout": "0s"}
    extra_clusters = []
    if mirror is not None:
        # Envoy sends the copy beside the original and discards its response; the shadow's own proxy
        # refuses what exceeds its limits at once, so a slow shadow cannot pile up requests here.
        route["request_mirror_policies"] = [{"cluster": MIRROR_CLUSTER, "runtime_fraction": {
            "default_value": {"numerator": max(1, round(mirror.percent * 10_000)), "denominator": "MILLION"}}}]
        extra_clusters.append({
            "name": MIRROR_CLUSTER,
            # The Service's cluster IP, looked up again as DNS says (kube-proxy spreads connections).
            "type": "STRICT_DNS",
            "dns_lookup_family": "V4_PREFERRED",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": MIRROR_CLUSTER, "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address(mirror.host, MIRROR_PORT)}}]}]},
        })
    return {
        "admin": {"address": _address("127.0.0.1", PROXY_ADMIN_PORT)},
        "static_resources": {
            "listeners": [
                _listener("api", PROXY_PORT, listener_stat_prefix(version), [
                    {"match": {"prefix": "/"}, "route": route},
                ]),
                # Prometheus and the kubelet reach two admin pages through this listener; the admin
                # interface itself (which can change Envoy's state) listens on loopback only.
                _listener("metrics", PROXY_METRICS_PORT, "metrics", [
                    {"match": {"path": "/stats/prometheus"}, "route": {"cluster": "admin"}},
                    {"match": {"path": "/ready"}, "route": {"cluster": "admin"}},
                ]),
            ],
            "clusters": [
                {
                    **_static_cluster(local, spec.port),
                    "circuit_breakers": {"thresholds": [{
                        "priority": "DEFAULT",
                        # HTTP/1.1 upstream: one request per connection, so the connection limit
                        # is the concurrency limit; waiting requests are Envoy's pending queue.
                        "max_connections": spec.max_concurrency,
                        "max_requests": spec.max_concurrency,
                        "max_pending_requests": spec.max_queue_length,
                        "max_retries": 0,
                        "track_remaining": True,
                    }]},
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http_protocol_options": {}},
                        },
                    },
                },
                _static_cluster("admin", PROXY_ADMIN_PORT),
                *extra_clusters,
            ],
        },
    }


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _static_cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": _address("127.0.0.1", port)}}]}]},
    }


def _listener(name: str, port: int, stat_prefix: str, routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "address": _address("0.0.0.0", port),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                         ".HttpConnectionManager",
                "stat_prefix": stat_prefix,
                "route_config": {"name": name, "virtual_hosts": [
                    {"name": name, "domains": ["*"], "routes": routes}]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }],
            },
        }]}],
    }


def config_map(name: str, spec: ApiConfig, version: str | None = None,
               mirror: Mirror | None = None) -> tuple[str, str]:
    """(ConfigMap name, bootstrap file) of the proxy of ``name``'s replicas (an API's, or its canary's or shadow's).

    The name is ``<name>-proxy-<content digest>``: a new proxy config is a new
    ConfigMap, and the replicas roll.
    """
    # Compact: the C encoder (an indented dump runs the pure-Python one, 50 times slower).
    text = json.dumps(envoy_config(spec, version, mirror))
    return f"{name}-proxy-{hashlib.sha256(text.encode()).hexdigest()[:10]}", text


def proxy_container(spec: ApiConfig, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The proxy as a native sidecar (an init container that keeps running)."""
    return {
        "name": PROXY_CONTAINER,
        "image": spec.proxy.image,
        "imagePullPolicy": image_pull_policy(spec.proxy.image),
        "restartPolicy": "Always",
        # One worker thread: Envoy's circuit-breaker limits are then exact, not per-thread approximations,
        # and one thread forwards far more requests per second than a model replica serves.
        # No hot restart (a sidecar is replaced, never hot-restarted): no shared-memory region to set up.
        "args": ["--config-path", f"{CONFIG_DIR}/{CONFIG_FILE}", "--concurrency", "1", "--disable-hot-restart",
                 "--log-level", "warn"],
        "ports": [{"name": "proxy", "containerPort": PROXY_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": PROXY_METRICS_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": spec.proxy.cpu, "memory": spec.proxy.mem},
                      "limits": {"memory": spec.proxy.mem}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "metrics"}, "periodSeconds": 5,
                           "timeoutSeconds": 2, "failureThreshold": 3},
        # Envoy answers its own /ready without asking the server, so a failing one means the proxy
        # itself is wedged: restart it (after 30 s) rather than leave the replica out of the Service.
        "livenessProbe": {"httpGet": {"path": "/ready", "port": "metrics"}, "periodSeconds": 10,
                          "timeoutSeconds": 2, "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True, "runAsUser": PROXY_USER, "runAsGroup": PROXY_USER},
        "volumeMounts": mounts,
    }


def _selector(namespace: str, version: str | None) -> str:
    return f'namespace="{namespace}",envoy_cluster_name="{model_cluster(version)}"'


def in_flight_query(namespace: str, window: str, version: str | None = None) -> str:
    """PromQL: in-flight requests (at the servers plus queued) of all the API's replicas (or its ``version``'s),
    averaged over ``window``."""
    selector = _selector(namespace, version)
    return " + ".join(f"sum(avg_over_time({metric}{{{selector}}}[{duration_seconds(window)}s]))"
                      for metric in IN_FLIGHT_METRICS)


def rps_query(namespace: str, window: str, version: str | None = None) -> str:
    """PromQL: requests per second arriving at all the API's proxies (or its ``version``'s) over ``window``."""
    return (f'sum(rate({REQUESTS_METRIC}{{namespace="{namespace}",'
            f'envoy_http_conn_manager_prefix="{listener_stat_prefix(version)}"}}[{duration_seconds(window)}s]))')
