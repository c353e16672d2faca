"""How an API scales: metrics, Cortex's knobs, scale to zero, and their rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic.alias_generators import to_camel

from ._base import Duration, Issue, _Model, duration_seconds

if TYPE_CHECKING:
    from .apis import ApiConfig
    from .cluster import ClusterConfig

SCRAPE_INTERVAL_SECONDS = 15
"""How often Prometheus scrapes the proxies; a metric window must span two scrapes at least."""

REQUEST_METRICS = ("inFlight", "rps", "custom")
"""Metrics KEDA reads from Prometheus."""

KEDA_METRICS = (*REQUEST_METRICS, "queue")
"""Metrics that scale through a KEDA ScaledObject (cpu and memory use a plain HPA)."""


class CustomMetricConfig(_Model):
    """A Prometheus query the API scales on (``autoscaling.metric: custom``)."""

    query: str = Field(min_length=1)
    """PromQL returning one number, the API's total load, e.g. ``sum(vllm:num_requests_running{namespace="llm-chat"})``. Required."""
    target: float = Field(gt=0)
    """Load per replica to aim at: replicas = ceil(query / target). Required."""


class AutoscalingConfig(_Model):
    """How replicas scale, with Cortex's knobs and defaults: a KEDA ScaledObject for request, queue and custom metrics, a plain HorizontalPodAutoscaler for cpu and memory."""

    min_replicas: int = Field(1, ge=0, le=1000)
    """Fewest replicas; 0 scales to zero when idle (``queue`` and ``custom`` metrics, which are measured outside the pods)."""
    max_replicas: int = Field(100, ge=1, le=1000)
    """Most replicas."""
    metric: Literal["inFlight", "rps", "cpu", "memory", "queue", "custom"] | None = None
    """What replicas scale on: ``inFlight`` requests (active + queued, from the proxy), ``rps``, ``cpu`` or ``memory`` utilisation, SQS ``queue`` depth, or a ``custom`` query. Default: ``inFlight`` with the proxy on, ``cpu`` without."""
    target_in_flight: float | None = Field(None, gt=0)
    """``inFlight``: in-flight requests per replica to aim at (Cortex's target_in_flight; default ``maxConcurrency``)."""
    target_rps: float | None = Field(None, gt=0)
    """``rps``: requests per second per replica to aim at. Required with ``rps``."""
    target_queue_length: int | None = Field(None, ge=1)
    """``queue``: waiting messages per replica to aim at (default ``maxConcurrency``)."""
    target_utilization: int = Field(70, ge=1, le=100)
    """``cpu`` / ``memory``: target average utilisation, percent of the request."""
    custom: CustomMetricConfig | None = None
    """``custom``: the query and its per-replica target."""
    activation_threshold: float = Field(0, ge=0)
    """Load above which a scaled-to-zero API wakes (KEDA activation); at or below it the API stays at zero."""
    window: Duration = "60s"
    """Period request metrics are averaged over before scaling on them (Cortex: 60s)."""
    upscale_tolerance: float | None = Field(None, ge=0, lt=1)
    """Ignore a scale-up unless load exceeds target by more than this fraction (Cortex: 0.05). Unset: the cluster's 0.1. Needs a ``cpu``/``memory`` metric on Kubernetes 1.35+."""
    downscale_tolerance: float | None = Field(None, ge=0, lt=1)
    """Ignore a scale-down unless load is below target by more than this fraction (Cortex: 0.05). Unset: the cluster's 0.1. Needs a ``cpu``/``memory`` metric on Kubernetes 1.35+."""
    upscale_stabilization_period: Duration = "1m"
    """Scale up only to the lowest recommendation of this trailing period (Cortex: 1m)."""
    downscale_stabilization_period: Duration = "5m"
    """Scale down only to the highest recommendation of this trailing period (Cortex: 5m)."""
    max_upscale_factor: float = Field(1.5, gt=1.0, le=100.0)
    """Most a scale-up may multiply replicas by per minute (Cortex: 1.5)."""
    max_downscale_factor: float = Field(0.75, gt=0.0, lt=1.0)
    """Least a scale-down may multiply replicas by per minute (Cortex: 0.75)."""


def scaling_metric(api: ApiConfig) -> str:
    """The metric an API scales on after defaults: ``inFlight`` behind the proxy, ``cpu`` without it."""
    if api.autoscaling.metric is not None:
        return api.autoscaling.metric
    return "inFlight" if api.proxy.enabled else "cpu"


def uses_keda(api: ApiConfig) -> bool:
    """Whether the API scales through a KEDA ScaledObject (request, queue and custom metrics)."""
    return scaling_metric(api) in KEDA_METRICS


def uses_prometheus(api: ApiConfig) -> bool:
    """Whether KEDA reads the API's metric from Prometheus."""
    return scaling_metric(api) in REQUEST_METRICS


def scaling_target(api: ApiConfig) -> float:
    """The per-replica target of the API's metric (the HPA divides the total load by it)."""
    scaling = api.autoscaling
    metric = scaling_metric(api)
    if metric == "inFlight":
        return scaling.target_in_flight or float(api.max_concurrency)
    if metric == "rps":
        assert scaling.target_rps is not None
        return scaling.target_rps
    if metric == "queue":
        return float(scaling.target_queue_length or api.max_concurrency)
    if metric == "custom":
        assert scaling.custom is not None
        return scaling.custom.target
    return float(scaling.target_utilization)


def has_hpa_tolerance(kubernetes_version: str) -> bool:
    """Whether the HPA's per-direction ``tolerance`` works on this minor (beta, on by default, from 1.35)."""
    return tuple(map(int, kubernetes_version.split("."))) >= (1, 35)


_METRIC_TARGETS = {
    "target_in_flight": ("inFlight",),
    "target_rps": ("rps",),
    "target_queue_length": ("queue",),
    "target_utilization": ("cpu", "memory"),
    "custom": ("custom",),
}


def _check_autoscaling(name: str, api: ApiConfig, path: tuple[str | int, ...],
                       cluster: ClusterConfig | None) -> Iterator[Issue]:
    scaling = api.autoscaling
    at = path + ("autoscaling",)
    metric = scaling_metric(api)
    for knob, metrics in _METRIC_TARGETS.items():
        if knob in scaling.model_fields_set and metric not in metrics:
            yield Issue(at + (to_camel(knob),), f"applies to metric {' or '.join(metrics)}, but this API "
                                                f"scales on {metric}; remove it or change the metric")
    if metric in ("inFlight", "rps") and not api.proxy.enabled:
        yield Issue(at + ("metric",), f"{metric} is measured by the proxy, which is off for this API; turn it on "
                                      "or scale on `custom` with a query of your server's own metric")
    if metric == "inFlight" and api.proxy.enabled and scaling.target_in_flight is not None \
            and scaling.target_in_flight > api.max_concurrency + api.max_queue_length:
        yield Issue(at + ("targetInFlight",), f"{scaling.target_in_flight:g} can never be reached: a replica holds "
                                              f"at most maxConcurrency + maxQueueLength = "
                                              f"{api.max_concurrency + api.max_queue_length} requests and refuses "
                                              "the rest with 503, so the API would never scale up")
    if metric == "rps" and scaling.target_rps is None:
        yield Issue(at + ("targetRps",), "is required with metric rps: the requests per second one replica "
                                         "should serve")
    if metric == "custom" and scaling.custom is None:
        yield Issue(at + ("custom",), "is required with metric custom (keys: query, target)")
    if metric == "queue" and api.queue is None:
        yield Issue(at + ("metric",), "metric queue scales on the API's SQS queue; declare `queue:` "
                                      "(an empty mapping creates one)")
    if scaling.min_replicas == 0 and metric not in ("queue", "custom"):
        why = ("the proxy in each replica counts requests, so with no replica nothing counts the first one "
               "and the API never wakes" if metric in ("inFlight", "rps") else
               f"the HPA needs a running replica to measure {metric} on")
        yield Issue(at + ("minReplicas",), f"0 needs a metric measured outside the pods (queue or custom): {why}")
    if "activation_threshold" in scaling.model_fields_set and metric not in KEDA_METRICS:
        yield Issue(at + ("activationThreshold",), f"applies to KEDA metrics ({', '.join(KEDA_METRICS)}), "
                                                   f"not {metric}")
    window = duration_seconds(scaling.window)
    if not 2 * SCRAPE_INTERVAL_SECONDS <= window <= 3600:
        yield Issue(at + ("window",), f"must be between {2 * SCRAPE_INTERVAL_SECONDS}s (two Prometheus scrapes) "
                                      f"and 1h, got {scaling.window}")
    version = cluster.kubernetes_version if cluster is not None else None
    for knob in ("upscale_tolerance", "downscale_tolerance"):
        if getattr(scaling, knob) is None:
            continue
        if metric in KEDA_METRICS:
            yield Issue(at + (to_camel(knob),), "KEDA's ScaledObject has no tolerance field, so its HPA uses the "
                                                "cluster's 0.1; remove it (or scale on cpu/memory)")
        elif version is not None and not has_hpa_tolerance(version):
            yield Issue(at + (to_camel(knob),), f"HPA tolerance is an alpha feature before Kubernetes 1.35 and EKS "
                                                f"does not enable alpha features; this cluster runs {version}. "
                                                "Remove it or set cluster.kubernetesVersion to 1.35")
    if api.queue is not None and api.queue.url is None and cluster is not None:
        queue_name = f"{cluster.name}-{name}"
        if len(queue_name) > 80:
            yield Issue(path + ("queue",), f"the queue modelplane creates would be named {queue_name!r}, "
                                           f"{len(queue_name)} characters; SQS allows 80: shorten the cluster or "
                                           "API name, or give the url of an existing queue")
    if api.queue is not None and api.queue.url is not None \
            and "visibility_timeout_seconds" in api.queue.model_fields_set:
        yield Issue(path + ("queue", "visibilityTimeoutSeconds"), "applies to a queue modelplane creates; set the "
                                                                   "visibility timeout on the existing queue")
