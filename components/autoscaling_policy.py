"""``AutoscalingPolicy``: how an API's replicas scale, with Cortex's knobs.

Today it renders an ``autoscaling/v2`` HorizontalPodAutoscaler on CPU or
memory utilisation. The scaling *behaviour* (stabilisation windows, maximum
up/down factors) is computed by :func:`hpa_behavior`, independent of the
metric source, so request-based metrics (a KEDA ScaledObject embeds the same
HPA ``behavior``) slot in beside the HPA without changing the knobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .config import AutoscalingConfig, duration_seconds

__all__ = ["AutoscalingPolicy", "AutoscalingPolicyArgs", "hpa_behavior", "hpa_metrics"]

POLICY_PERIOD_SECONDS = 60
"""The period Cortex's max up/down factors apply over: at most x1.5 (or x0.75) replicas per minute."""


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


class AutoscalingPolicy(pulumi.ComponentResource):
    """Scales one Deployment between ``minReplicas`` and ``maxReplicas``."""

    hpa_name: pulumi.Output[str]
    """Name of the HorizontalPodAutoscaler."""

    def __init__(self, name: str, args: AutoscalingPolicyArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:AutoscalingPolicy", name, None, opts)
        spec = args.spec
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            name,
            metadata={"name": args.target, "namespace": args.namespace, "labels": args.labels},
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.target},
                "minReplicas": spec.min_replicas,
                "maxReplicas": spec.max_replicas,
                "metrics": hpa_metrics(spec),
                "behavior": hpa_behavior(spec),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.hpa_name = pulumi.Output.from_input(args.target)
        self.register_outputs({"hpa_name": self.hpa_name})


def hpa_metrics(spec: AutoscalingConfig) -> list[dict[str, Any]]:
    """HPA ``metrics`` for a resource-utilisation policy."""
    return [{"type": "Resource", "resource": {
        "name": spec.metric, "target": {"type": "Utilization", "averageUtilization": spec.target_utilization}}}]


def hpa_behavior(spec: AutoscalingConfig) -> dict[str, Any]:
    """HPA ``behavior`` from Cortex's knobs.

    ``upscaleStabilizationPeriod`` / ``downscaleStabilizationPeriod`` become the
    stabilisation windows; ``maxUpscaleFactor`` 1.5 becomes "add at most 50 %
    per minute" and ``maxDownscaleFactor`` 0.75 "remove at most 25 % per minute"
    (the HPA rounds a scale-up limit up, so one replica can always become two).
    """
    up_percent = max(1, round((spec.max_upscale_factor - 1) * 100))
    down_percent = max(1, round((1 - spec.max_downscale_factor) * 100))
    return {
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
