"""The Helm charts modelplane installs as cluster add-ons, and where they come from.

Each chart has a default repository and a pinned version; add-ons tied to the
control plane's version pin one chart version per Kubernetes minor. A stack can
point any chart at a mirror or an OCI registry (``modelplane:cluster.charts``)
and, where a mirror lacks the pinned release, at another version.
"""

from __future__ import annotations

__all__ = ["ADDON_CHARTS", "AUTOSCALER_IMAGES", "CHARTS", "KARPENTER_AMI_ALIASES", "KUBERNETES_VERSIONS", "chart_version"]

KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34", "1.35")
"""Kubernetes minor versions modelplane renders and validates against."""

CHARTS: dict[str, tuple[str, str | dict[str, str]]] = {
    # The newest chart whose appVersion is that minor's autoscaler. Charts before 9.46.3 lack the
    # volumeattachments RBAC that autoscaler 1.32+ needs (kubernetes/autoscaler#7663): with them it
    # runs but never scales.
    "cluster-autoscaler": ("https://kubernetes.github.io/autoscaler", {
        "1.31": "9.43.1", "1.32": "9.46.6", "1.33": "9.51.0", "1.34": "9.53.0", "1.35": "9.59.0"}),
    "nvidia-device-plugin": ("https://nvidia.github.io/k8s-device-plugin", "0.17.1"),
    # The newest KEDA release tested against that minor (KEDA's compatibility table).
    "keda": ("https://kedacore.github.io/charts", {
        "1.31": "2.18.2", "1.32": "2.19.0", "1.33": "2.20.2", "1.34": "2.20.2", "1.35": "2.20.2"}),
    "kube-prometheus-stack": ("https://prometheus-community.github.io/helm-charts", "88.5.3"),
    # Chart 3.5.0 is controller v3.5.0, which supports Kubernetes 1.22+ (every minor here).
    "aws-load-balancer-controller": ("https://aws.github.io/eks-charts", "3.5.0"),
    # Karpenter 1.14.1 supports Kubernetes 1.31-1.36 (its compatibility matrix), serves karpenter.sh/v1 NodePools
    # and karpenter.k8s.aws/v1 EC2NodeClasses, and reads a duration in karpenter.sh/do-not-disrupt (1.12+).
    "karpenter": ("oci://public.ecr.aws/karpenter", "1.14.1"),
}
"""Helm charts the cluster installs: name -> (default repository, pinned chart version or one per minor)."""

ADDON_CHARTS = {"keda": "keda", "prometheus": "kube-prometheus-stack", "nvidiaDevicePlugin": "nvidia-device-plugin",
                "clusterAutoscaler": "cluster-autoscaler", "loadBalancerController": "aws-load-balancer-controller"}
"""The chart of each add-on, by its key in ``existing.addons``."""

AUTOSCALER_IMAGES = {"1.31": "v1.31.0", "1.32": "v1.32.0", "1.33": "v1.33.0", "1.34": "v1.34.2", "1.35": "v1.35.0"}
"""Cluster-autoscaler image per minor: each chart's own default tag, pinned here so a chart bump cannot move it."""

KARPENTER_AMI_ALIASES = {"AL2023": "al2023@v20260520", "BOTTLEROCKET": "bottlerocket@v1.46.0"}
"""The EKS-optimised AMI release Karpenter nodes boot, by AMI family: pinned, so that a new AMI release is a change
of this file (and a visible drift of every node, rolled by the groups' disruption budgets), not a surprise. Each
alias resolves to the AMI of the cluster's Kubernetes minor and of the instance type (NVIDIA variant for GPU types)."""

assert all(set(pinned) == set(KUBERNETES_VERSIONS) for _, pinned in CHARTS.values() if isinstance(pinned, dict))
assert set(AUTOSCALER_IMAGES) == set(KUBERNETES_VERSIONS)


def chart_version(chart: str, kubernetes_version: str) -> str:
    """The pinned version of one of :data:`CHARTS` for a cluster of ``kubernetes_version``."""
    pinned = CHARTS[chart][1]
    return pinned if isinstance(pinned, str) else pinned[kubernetes_version]
