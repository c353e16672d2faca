"""``ClusterContext``: what a model API needs to know about the cluster it runs in.

One typed view, built by :class:`~modelplane.ServingCluster` for an EKS
cluster modelplane creates and by :class:`~modelplane.ExistingCluster` for one
that already runs, or by hand when a ``ModelApi`` is used on its own. A new
cluster fact is one field here, not one more argument of every component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .config import NetworkPeer

__all__ = ["APPLY_ANNOTATIONS", "ClusterContext", "kubernetes_provider"]


@dataclass
class ClusterContext:
    """The cluster a :class:`~modelplane.ModelApi` is deployed into."""

    name: str
    """The estate's cluster name: label ``app.kubernetes.io/part-of``, prefix of the SQS queues modelplane creates."""
    kubernetes_version: str | None = None
    """Kubernetes minor version of the control plane (``1.33``); None when unknown."""
    provider: k8s.Provider | None = None
    """Kubernetes provider of the cluster; None: the caller passes one in ``opts`` (or the default provider applies)."""
    region: str | None = None
    """AWS region, for queues modelplane creates and KEDA's SQS scaler; None on a cluster outside AWS."""
    oidc_provider_arn: pulumi.Input[str] | None = None
    """ARN of the cluster's IAM OIDC provider, for service-account roles (``modelUri``, ``queue``)."""
    oidc_provider_url: pulumi.Input[str] | None = None
    """Issuer URL of that OIDC provider."""
    prometheus_url: str | None = None
    """Prometheus KEDA queries for request metrics (``inFlight``, ``rps``, ``custom``); None: there is none."""
    pod_monitors: bool = False
    """A Prometheus Operator runs: APIs get PodMonitors for their metrics."""
    keda_role_name: pulumi.Input[str] | None = None
    """IAM role of the KEDA operator; a queue API grants it read access to its queue's depth. None: nobody grants it."""
    crd_releases: list[pulumi.Resource] = field(default_factory=list)
    """Releases that install the CRDs APIs use (KEDA, Prometheus Operator): those objects wait for them."""
    device_plugin: pulumi.Resource | None = None
    """The NVIDIA device plugin release modelplane installs (None: none, or one already runs); GPU APIs wait for it."""
    metrics_scrapers: list[NetworkPeer] = field(default_factory=list)
    """Who scrapes the APIs' metrics ports (their NetworkPolicies admit them there); empty: nobody."""
    load_balancer_cidrs: list[pulumi.Input[str]] = field(default_factory=list)
    """Where load balancers' traffic to exposed APIs comes from (the VPC's CIDR); their NetworkPolicies admit it on the proxy port."""
    load_balancer_controller: pulumi.Resource | None = None
    """The AWS Load Balancer Controller release modelplane installs (None: none, or one already runs). Ingresses
    ``depends_on`` it: its webhook must answer before they are created, and on destroy they go first, while it
    still runs to delete their load balancers."""

    @property
    def has_oidc(self) -> bool:
        """Whether service-account roles (IRSA) can be made for this cluster."""
        return self.oidc_provider_arn is not None and self.oidc_provider_url is not None


APPLY_ANNOTATIONS = {"pulumi.com/patchForce": "true"}
"""Annotations on every object modelplane renders: server-side apply takes back its fields from other managers.

The stack file is the source of truth. After a hand edit of a field modelplane sets (``kubectl
set image``), the real provider fails even ``pulumi preview`` with a field-manager conflict
unless the apply is forced; forced, the preview shows the hand edit being reverted and ``pulumi
up`` reverts it. Fields modelplane does not set (``replicas``, owned by the autoscaler; the
annotation ``kubectl rollout restart`` adds) are left alone. An annotation rather than the
provider's ``enablePatchForce`` setting because every provider version honours it (the setting
came with pulumi-kubernetes 4.26).
"""


def kubernetes_provider(name: str, kubeconfig: pulumi.Input[str], opts: pulumi.ResourceOptions,
                        context: str | None = None) -> k8s.Provider:
    """The Kubernetes provider every in-cluster resource of an estate goes through (server-side apply)."""
    return k8s.Provider(name, kubeconfig=kubeconfig, **({"context": context} if context is not None else {}),
                        enable_server_side_apply=True, opts=opts)
