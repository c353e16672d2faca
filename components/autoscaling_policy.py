"""``AutoscalingPolicy``: how an API's replicas scale, with Cortex's knobs.

CPU and memory utilisation render a plain ``autoscaling/v2``
HorizontalPodAutoscaler. Every other metric renders a KEDA ``ScaledObject``
(KEDA then owns an HPA named ``keda-hpa-<api>``): in-flight requests, requests
per second and custom queries through KEDA's Prometheus scaler, SQS depth
through its ``aws-sqs-queue`` scaler. Both paths share one scaling
*behaviour* (stabilisation windows, maximum up/down factors) from
:func:`hpa_behavior`; the ScaledObject carries it in
``spec.advanced.horizontalPodAutoscalerConfig.behavior``. Only KEDA can take
an API to zero replicas and back (``minReplicaCount: 0`` with an activation
threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ._resource_options import depends_on_list
from .cluster_context import APPLY_ANNOTATIONS
from .config import KEDA_METRICS, AutoscalingConfig, duration_seconds, has_hpa_tolerance

__all__ = ["AutoscalingPolicy", "AutoscalingPolicyArgs", "KEDA_AWS_AUTH", "MetricSource", "hpa_behavior",
           "hpa_metrics", "scaled_object_spec"]

POLICY_PERIOD_SECONDS = 60
"""The period Cortex's max up/down factors apply over: at most x1.5 (or x0.75) replicas per minute."""

POLLING_INTERVAL_SECONDS = 15
"""How often KEDA reads the metric (Cortex's autoscaler ran every 10 s; Prometheus scrapes every 15 s)."""

FALLBACK_FAILURES = 3
"""Consecutive failed metric reads after which KEDA falls back (45 s at the 15 s polling interval)."""

KEDA_AWS_AUTH = "keda-aws"
"""TriggerAuthentication, in the API's namespace, that signs AWS calls with the KEDA operator's IAM role."""


@dataclass
class MetricSource:
    """Where a KEDA metric comes from, resolved by the caller (the :class:`ModelApi`)."""

    metric: str
    """``inFlight``, ``rps``, ``custom`` (Prometheus) or ``queue`` (SQS)."""
    threshold: float
    """Target per replica: the HPA aims at total / replicas = threshold."""
    query: str | None = None
    """PromQL giving the API's total load (Prometheus metrics)."""
    prometheus_url: str | None = None
    """Prometheus the query goes to."""
    prometheus_region: str | None = None
    """AWS region of an Amazon Managed Prometheus workspace (queries are SigV4-signed); None otherwise."""
    queue_url: pulumi.Input[str] | None = None
    """SQS queue URL (``queue``)."""
    queue_region: str | None = None
    """Region of the SQS queue."""

    @property
    def needs_aws_auth(self) -> bool:
        """Whether KEDA calls AWS (SQS, or AMP) and so needs :data:`KEDA_AWS_AUTH`."""
        return self.metric == "queue" or self.prometheus_region is not None


@dataclass
class AutoscalingPolicyArgs:
    """Inputs of an :class:`AutoscalingPolicy`."""

    target: str
    """Name of the Deployment to scale."""
    namespace: pulumi.Input[str]
    """Namespace of the Deployment."""
    spec: AutoscalingConfig
    """The knobs, as the stack file declares them."""
    labels: dict[str, str] = field(default_factory=dict)
    """Labels for the rendered objects."""
    source: MetricSource | None = None
    """The KEDA metric; None scales on ``spec.metric`` (cpu or memory) with a plain HPA."""
    kubernetes_version: str | None = None
    """The cluster's Kubernetes minor version; HPA tolerances need 1.35."""
    creates_aws_auth: bool = True
    """Make the namespace's :data:`KEDA_AWS_AUTH` when the source needs it (False: another policy there made it, as
    the API's does for its canary's)."""


class AutoscalingPolicy(pulumi.ComponentResource):
    """Scales one Deployment between ``minReplicas`` and ``maxReplicas``."""

    hpa_name: pulumi.Output[str]
    """Name of the HorizontalPodAutoscaler that scales the Deployment (KEDA's, for a ScaledObject)."""

    def __init__(self, name: str, args: AutoscalingPolicyArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:AutoscalingPolicy", name, None, opts)
        spec = args.spec
        # Children wait for what the policy waits for (the Deployment, the releases with the CRDs):
        # depends_on is not inherited.
        inherited = depends_on_list(opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=inherited)
        metadata = {"name": args.target, "namespace": args.namespace, "labels": args.labels,
                    "annotations": dict(APPLY_ANNOTATIONS)}
        source = args.source
        version = args.kubernetes_version
        if (spec.upscale_tolerance is not None or spec.downscale_tolerance is not None) and (
                source is not None or (version is not None and not has_hpa_tolerance(version))):
            # The stack-file path reports this as a config error first; this guards direct use.
            raise ValueError(f"AutoscalingPolicy {name!r}: HPA tolerances need a cpu/memory metric on "
                             f"Kubernetes 1.35+ (metric {source.metric if source else spec.metric}, "
                             f"Kubernetes {version})")
        if source is None:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                name,
                metadata=metadata,
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.target},
                    "minReplicas": spec.min_replicas,
                    "maxReplicas": spec.max_replicas,
                    "metrics": hpa_metrics(spec),
                    "behavior": hpa_behavior(spec, tolerances=True),
                },
                opts=child,
            )
            self.hpa_name = pulumi.Output.from_input(args.target)
        else:
            depends: list[pulumi.Resource] = []
            if source.needs_aws_auth and args.creates_aws_auth:
                depends.append(k8s.apiextensions.CustomResource(
                    f"{name}-aws-auth",
                    api_version="keda.sh/v1alpha1",
                    kind="TriggerAuthentication",
                    metadata={**metadata, "name": KEDA_AWS_AUTH},
                    # No roleArn or identityOwner: KEDA signs with the operator's own IRSA role, which the
                    # cluster grants exactly the queues and workspace its APIs use.
                    spec={"podIdentity": {"provider": "aws"}},
                    opts=child,
                ))
            k8s.apiextensions.CustomResource(
                name,
                api_version="keda.sh/v1alpha1",
                kind="ScaledObject",
                metadata=metadata,
                spec=scaled_object_spec(args.target, spec, source),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*inherited, *depends]),
            )
            self.hpa_name = pulumi.Output.from_input(f"keda-hpa-{args.target}")
        self.register_outputs({"hpa_name": self.hpa_name})



def scaled_object_spec(target: str, spec: AutoscalingConfig, source: MetricSource) -> dict[str, Any]:
    """The KEDA ``ScaledObject`` spec: the trigger, the replica bounds and Cortex's behaviour."""
    assert source.metric in KEDA_METRICS, source.metric
    auth = {"authenticationRef": {"name": KEDA_AWS_AUTH}} if source.needs_aws_auth else {}
    if source.metric == "queue":
        assert source.queue_url is not None and source.queue_region is not None
        trigger: dict[str, Any] = {"type": "aws-sqs-queue", "metricType": "AverageValue", "metadata": {
            "queueURL": source.queue_url,
            "queueLength": _number(source.threshold),
            "activationQueueLength": _number(spec.activation_threshold),
            "awsRegion": source.queue_region,
            # Messages being worked on count as load: a replica busy with its batch is not idle.
            "scaleOnInFlight": "true",
        }}
    else:
        assert source.query is not None and source.prometheus_url is not None
        trigger = {"type": "prometheus", "metricType": "AverageValue", "metadata": {
            "serverAddress": source.prometheus_url,
            "query": source.query,
            "threshold": _number(source.threshold),
            "activationThreshold": _number(spec.activation_threshold),
            # The proxy's series exist from its start, so no samples means scraping is broken: an
            # error (replicas held), not zero load (scale-down). A custom query may well return
            # nothing when idle (a rate over no series), which is zero load.
            "ignoreNullValues": "true" if source.metric == "custom" else "false",
            **({"awsRegion": source.prometheus_region} if source.prometheus_region else {}),
        }}
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicaCount": spec.min_replicas,
        "maxReplicaCount": spec.max_replicas,
        "pollingInterval": POLLING_INTERVAL_SECONDS,
        # KEDA's step from one replica to zero waits this long after the last activity; the HPA's
        # scale-down stabilisation governs every other step down.
        "cooldownPeriod": duration_seconds(spec.downscale_stabilization_period),
        # Blind (Prometheus or SQS unreachable for three polls): keep the current replicas, at least
        # minReplicas and one, instead of letting a monitoring outage scale an API down.
        "fallback": {"failureThreshold": FALLBACK_FAILURES, "replicas": max(spec.min_replicas, 1),
                     "behavior": "currentReplicasIfHigher"},
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior(spec, tolerances=False)}},
        "triggers": [{**trigger, "name": source.metric.lower(), **auth}],
    }


def _number(value: float) -> str:
    """A KEDA metadata number (metadata values are strings): ``4`` rather than ``4.0``."""
    return f"{value:g}"


def hpa_metrics(spec: AutoscalingConfig) -> list[dict[str, Any]]:
    """HPA ``metrics`` for a resource-utilisation policy (``cpu`` or ``memory``)."""
    metric = spec.metric or "cpu"
    return [{"type": "Resource", "resource": {
        "name": metric, "target": {"type": "Utilization", "averageUtilization": spec.target_utilization}}}]


def hpa_behavior(spec: AutoscalingConfig, tolerances: bool = True) -> dict[str, Any]:
    """HPA ``behavior`` from Cortex's knobs.

    ``upscaleStabilizationPeriod`` / ``downscaleStabilizationPeriod`` become the
    stabilisation windows; ``maxUpscaleFactor`` 1.5 becomes "add at most 50 %
    per minute" and ``maxDownscaleFactor`` 0.75 "remove at most 25 % per minute"
    (the HPA rounds a scale-up limit up, so one replica can always become two).
    """
    up_percent = max(1, round((spec.max_upscale_factor - 1) * 100))
    down_percent = max(1, round((1 - spec.max_downscale_factor) * 100))
    behavior: dict[str, Any] = {
        "scaleUp": {
            "stabilizationWindowSeconds": duration_seconds(spec.upscale_stabilization_period),
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": up_percent, "periodSeconds": POLICY_PERIOD_SECONDS}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": duration_seconds(spec.downscale_stabilization_period),
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": down_percent, "periodSeconds": POLICY_PERIOD_SECONDS}],
        },
    }
    # Configurable tolerance is an HPA field from Kubernetes 1.35 (config validation keeps it to those
    # clusters); KEDA's ScaledObject has no such field, so its HPA keeps the cluster-wide 0.1.
    if tolerances and spec.upscale_tolerance is not None:
        behavior["scaleUp"]["tolerance"] = str(spec.upscale_tolerance)
    if tolerances and spec.downscale_tolerance is not None:
        behavior["scaleDown"]["tolerance"] = str(spec.downscale_tolerance)
    return behavior
