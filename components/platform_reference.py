"""The platform's cluster as other stacks see it: the ``platform`` output, and ``PlatformReference`` to read it.

A platform stack (``infra/``) exports ``platform``: the cluster facts a
:class:`~modelplane.ClusterContext` holds and the placement of every node
group. A team's own stack reads it through a ``StackReference`` and adds a
:class:`~modelplane.ModelApi` to the same cluster, on the same node groups, with
the same guardrails, without copying a label or a taint::

    platform = PlatformReference("platform", "acme/modelplane/prod")
    ModelApi("reranker", ModelApiArgs(spec=..., placement=platform.placement("gpu-inference"),
                                      cluster=platform.context()))
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

from .cluster_context import ClusterContext, kubernetes_provider
from .config import NetworkPeer
from .placement import Placement, Taint

__all__ = ["PLATFORM_OUTPUT", "PlatformReference", "platform_output"]

PLATFORM_OUTPUT = "platform"
"""The name of the platform stack's output that :class:`PlatformReference` reads."""

FORMAT = 1
"""Version of the output's shape; a reader refuses shapes it does not know."""


def platform_output(context: ClusterContext, placements: dict[str, Placement]) -> dict[str, Any]:
    """The ``platform`` output of an estate: its cluster context and node-group placements, as plain data."""
    return {
        "format": FORMAT,
        "cluster": {
            "name": context.name,
            "kubernetesVersion": context.kubernetes_version,
            "region": context.region,
            "oidcProviderArn": context.oidc_provider_arn,
            "oidcProviderUrl": context.oidc_provider_url,
            "prometheusUrl": context.prometheus_url,
            "podMonitors": context.pod_monitors,
            "kedaRoleName": context.keda_role_name,
            "metricsScrapers": [p.model_dump(mode="json", by_alias=True, exclude_none=True)
                                for p in context.metrics_scrapers],
            "loadBalancerCidrs": list(context.load_balancer_cidrs),
        },
        "nodeGroups": {
            group: {"labels": dict(p.labels), "taints": [{"key": t.key, "value": t.value, "effect": t.effect}
                                                          for t in p.taints],
                    "gpu": p.gpu, "nodeSelector": p.node_selector()}
            for group, p in sorted(placements.items())
        },
    }


class PlatformReference:
    """The platform stack's cluster, read from its ``platform`` and ``kubeconfig`` outputs."""

    def __init__(self, name: str, stack: str, opts: pulumi.ResourceOptions | None = None) -> None:
        self.name = name
        self.stack = stack
        self.reference = pulumi.StackReference(name, stack_name=stack, opts=opts)
        # Plain values now, not Outputs: names, labels and decisions (HPA tolerances, PodMonitors) need them.
        # The SDK offers only the coroutine; its own synchronous invokes wait the same way.
        details = _sync_await(self.reference.get_output_details(PLATFORM_OUTPUT))
        platform = details.value if details.value is not None else details.secret_value
        if not isinstance(platform, dict) or platform.get("format") != FORMAT:
            raise ValueError(f"stack {stack!r} has no modelplane {PLATFORM_OUTPUT!r} output of format {FORMAT}: "
                             "point the reference at a modelplane platform stack (infra/) that has been updated "
                             "with this version")
        self.platform: dict[str, Any] = platform
        kubeconfig = _sync_await(self.reference.get_output_details("kubeconfig"))
        self._kubeconfig = kubeconfig.value is not None or kubeconfig.secret_value is not None

    @property
    def node_groups(self) -> list[str]:
        """The platform's node groups, by name."""
        return sorted(self.platform["nodeGroups"])

    def placement(self, group: str) -> Placement:
        """Where pods go to land on the platform's node group ``group``."""
        groups = self.platform["nodeGroups"]
        if group not in groups:
            raise ValueError(f"node group {group!r} is not one of stack {self.stack!r}'s: "
                             f"{', '.join(self.node_groups) or 'none'}")
        spec = groups[group]
        return Placement(group=group, labels=dict(spec["labels"]),
                         taints=tuple(Taint(t["key"], t["value"], t["effect"]) for t in spec["taints"]),
                         gpu=bool(spec["gpu"]), selector=dict(spec["nodeSelector"]))

    def context(self, provider: Any | None = None, opts: pulumi.ResourceOptions | None = None) -> ClusterContext:
        """The platform's cluster for a :class:`~modelplane.ModelApi`.

        ``provider``: a Kubernetes provider of one's own. Unset: one made from the platform's
        ``kubeconfig`` output (a created EKS cluster exports it; for an existing cluster pass yours).
        """
        cluster = self.platform["cluster"]
        if provider is None:
            if not self._kubeconfig:
                raise ValueError(f"stack {self.stack!r} exports no kubeconfig (its cluster is an existing one): "
                                 "pass provider=")
            provider = kubernetes_provider(f"{self.name}-k8s", self.reference.require_output("kubeconfig"),
                                           opts or pulumi.ResourceOptions())
        return ClusterContext(
            name=cluster["name"], kubernetes_version=cluster["kubernetesVersion"], provider=provider,
            region=cluster["region"], oidc_provider_arn=cluster["oidcProviderArn"],
            oidc_provider_url=cluster["oidcProviderUrl"], prometheus_url=cluster["prometheusUrl"],
            pod_monitors=bool(cluster["podMonitors"]), keda_role_name=cluster["kedaRoleName"],
            metrics_scrapers=[NetworkPeer.model_validate(p) for p in cluster["metricsScrapers"]],
            load_balancer_cidrs=list(cluster["loadBalancerCidrs"]),
        )
