"""The estate config model: what a stack file (``stacks/Pulumi.<stack>.yaml``) may say.

Every field's name, type, default and doc live here once; the YAML keys
(camelCase), the README's config reference and the JSON Schema are generated
from these models. Unknown keys are errors.

Single-field rules (types, ranges, patterns) are pydantic constraints; rules
that relate fields (``minReplicas <= maxReplicas``, "the API's node group
exists", "the GPU API fits on the group's nodes") live in :func:`parse_estate`
so that every problem in a file is reported at once with its key path.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic.alias_generators import to_camel, to_snake

from . import catalog
from .charts import CHARTS, KUBERNETES_VERSIONS

__all__ = [
    "ADDONS",
    "NAMESPACE",
    "ApiConfig",
    "AutoscalingConfig",
    "ChartSourceConfig",
    "ClusterConfig",
    "ComputeConfig",
    "ConfigError",
    "EndpointConfig",
    "EstateConfig",
    "ExistingAddonsConfig",
    "ExistingClusterConfig",
    "Issue",
    "NodeGroupConfig",
    "ProbeConfig",
    "SecretValue",
    "SidecarConfig",
    "StackReferenceConfig",
    "StartupProbeConfig",
    "SystemNodeGroupConfig",
    "TaintConfig",
    "UpdateStrategyConfig",
    "VpcConfig",
    "addon_mode",
    "api_gpus",
    "config_from_pulumi",
    "duration_seconds",
    "load_stack_file",
    "parse_estate",
]

NAMESPACE = "modelplane"
"""The Pulumi config namespace every estate key lives in (``modelplane:<key>``)."""


RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""Namespaces Kubernetes owns; an API (whose namespace is its name) may not take them."""

KEDA_NAMESPACE = "keda"
"""Namespace of the KEDA modelplane installs."""

MONITORING_NAMESPACE = "monitoring"
"""Namespace of the kube-prometheus-stack modelplane installs."""

ADDON_NAMESPACES = {KEDA_NAMESPACE: "KEDA", MONITORING_NAMESPACE: "kube-prometheus-stack"}
"""Namespaces the add-ons modelplane installs live in; an API may not take them either."""

CONFIG_DIR = "/etc/modelplane/config"
"""Where an API's config files are mounted (read-only)."""

SOCKET_DIR = "/var/run/modelplane"
"""Directory shared by an API's containers for Unix sockets (present when it has sidecars)."""

SHM_DIR = "/dev/shm"
"""Where ``compute.shm`` is mounted."""

MAIN_CONTAINER = "model"
"""Name of an API's serving container (sidecars take other names)."""

PROXY_CONTAINER = "proxy"
"""Name of the Envoy sidecar in front of the serving container."""

PROXY_IMAGE = "envoyproxy/envoy:distroless-v1.39.6"
"""The Envoy image the proxy runs unless an API pins another."""

PROXY_PORT = 8888
"""Port the proxy takes requests on (the Service forwards here when the proxy is on)."""

PROXY_METRICS_PORT = 9902
"""Port the proxy serves ``/stats/prometheus`` and ``/ready`` on."""

PROXY_ADMIN_PORT = 9901
"""Envoy's admin interface, bound to 127.0.0.1 only."""

SCRAPE_INTERVAL_SECONDS = 15
"""How often Prometheus scrapes the proxies; a metric window must span two scrapes at least."""

REQUEST_METRICS = ("inFlight", "rps", "custom")
"""Metrics KEDA reads from Prometheus."""

KEDA_METRICS = (*REQUEST_METRICS, "queue")
"""Metrics that scale through a KEDA ScaledObject (cpu and memory use a plain HPA)."""

AMP_URL = re.compile(r"^https://aps-workspaces\.([a-z0-9-]+)\.amazonaws\.com/workspaces/(ws-[A-Za-z0-9-]+)/?$")
"""An Amazon Managed Service for Prometheus workspace endpoint: (region, workspace id)."""

SQS_URL = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com/([0-9]{12})/([A-Za-z0-9_-]{1,80}(\.fifo)?)$")
"""An SQS queue URL: (region, account, queue name)."""

RESERVED_GROUP = "system"
"""Node-group name taken by the cluster's add-on group."""

GPU_AMI_TYPES = ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA")
CPU_AMI_TYPES = ("AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64",
                 "BOTTLEROCKET_ARM_64")


# --------------------------------------------------------------------------- value types

def _number_to_str(value: Any) -> Any:
    # YAML reads `cpu: 1` as an int; Kubernetes quantities are strings.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=40)]
CpuQuantity = Annotated[str, BeforeValidator(_number_to_str),
                        StringConstraints(pattern=r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")]
MemQuantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")]
Duration = Annotated[str, StringConstraints(pattern=r"^[0-9]+(s|m|h|d)$")]
IntOrPercent = Annotated[int, Field(ge=0)] | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}%$")]
def _cidr_text(value: Any) -> Any:
    # IPv4Network takes numbers too (true -> 0.0.0.1/32): a CIDR in a stack file is text.
    if not isinstance(value, (str, IPv4Network)):
        raise ValueError(f"a CIDR is text such as 10.0.0.0/16, got {_show(value)}")
    return value


Cidr = Annotated[IPv4Network, BeforeValidator(_cidr_text), Field(strict=False)]
LabelKey = Annotated[str, StringConstraints(
    pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    max_length=253)]
LabelValue = Annotated[str, StringConstraints(
    pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", max_length=63)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def duration_seconds(value: str) -> int:
    """Seconds in a config duration such as ``"90s"``, ``"5m"`` or ``"1h"``."""
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[value[-1]]
    return int(value[:-1]) * unit


class _Model(BaseModel):
    # Strict: a YAML string where a number belongs is an error, not a guess.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False,
                              strict=True, frozen=True, use_attribute_docstrings=True)


# --------------------------------------------------------------------------- cluster

class VpcConfig(_Model):
    """The network the cluster runs in: a new VPC (``cidr``, ``availabilityZones``) or an existing one (``id`` plus subnet ids)."""

    cidr: Cidr = IPv4Network("10.0.0.0/16")
    """CIDR block of a new VPC, a /16 to /20. Each AZ gets a private subnet (1/8 of it) and a small public one."""
    availability_zones: int = Field(3, ge=2, le=6)
    """How many availability zones a new VPC spans (2-6)."""
    nat_gateways: Literal["single", "perAz"] = "single"
    """NAT gateways of a new VPC: one shared (cheaper) or one per AZ (survives an AZ outage)."""
    id: str | None = Field(None, pattern=r"^vpc-[0-9a-f]+$")
    """Id of an existing VPC to use instead of creating one; needs ``privateSubnetIds``."""
    private_subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]+$")]] = []
    """Existing private subnets (two AZs at least) for nodes and internal load balancers."""
    public_subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]+$")]] = []
    """Existing public subnets for internet-facing load balancers (optional)."""


class EndpointConfig(_Model):
    """Who can reach the Kubernetes API server."""

    public: bool = True
    """Expose the API server endpoint on the internet (restricted by ``publicAccessCidrs``)."""
    private: bool = True
    """Expose the API server endpoint inside the VPC (nodes always use it when on)."""
    public_access_cidrs: list[Cidr] = [IPv4Network("0.0.0.0/0")]
    """CIDR blocks allowed to reach the public endpoint. Narrow this for production."""


class SystemNodeGroupConfig(_Model):
    """The small on-demand CPU node group that runs cluster add-ons (CoreDNS, autoscaler, device plugin)."""

    instance_type: str = Field("m6i.large", pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")
    """EC2 instance type of the system nodes."""
    min_size: int = Field(2, ge=1, le=20)
    """Minimum system nodes (2 keeps add-ons available through a node loss)."""
    max_size: int = Field(3, ge=1, le=20)
    """Maximum system nodes."""


class PrometheusConfig(_Model):
    """The Prometheus KEDA asks for request metrics (``inFlight``, ``rps``, ``custom``)."""

    url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    """An existing Prometheus that scrapes the API pods (they carry ``prometheus.io/*`` annotations), or an Amazon Managed Prometheus workspace URL (queried with SigV4 through KEDA's IAM role). Unset: modelplane installs kube-prometheus-stack when an API needs it."""
    retention: Duration = "2d"
    """How long the installed Prometheus keeps samples. It serves autoscaling, so they live on an emptyDir and go when its pod moves; use ``url`` for durable metrics."""


class SecretValue(_Model):
    """A value ``pulumi config set --secret`` stored encrypted in the stack file; offline runs see only this."""

    secure: str = Field(min_length=1)
    """The ciphertext Pulumi wrote. Required."""


class StackReferenceConfig(_Model):
    """A kubeconfig that another Pulumi stack exports (for example the stack that created the cluster)."""

    stack: str = Field(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")
    """That stack's name: ``org/project/stack`` (``project/stack`` or ``stack`` on a self-managed backend). Required."""
    output: str = Field("kubeconfig", pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    """Name of its output that holds the kubeconfig (a string or an object)."""


AddonMode = Literal["install", "present", "none"]


class ExistingAddonsConfig(_Model):
    """The cluster add-ons of an existing cluster: each is installed by modelplane when an API needs it (``install``), already there and only used (``present``), or not there (``none``)."""

    keda: AddonMode = "install"
    """KEDA, which scales APIs on ``inFlight``, ``rps``, ``queue`` and ``custom`` metrics and to zero. ``present``: its CRDs are in the cluster; ``none``: APIs on those metrics are errors."""
    prometheus: AddonMode = "install"
    """The Prometheus Operator and a Prometheus (kube-prometheus-stack) for request metrics. ``present``: an operator runs, so APIs get PodMonitors and KEDA queries ``cluster.prometheus.url``; ``none``: KEDA queries ``cluster.prometheus.url``, which finds the pods by their ``prometheus.io/*`` annotations."""
    nvidia_device_plugin: AddonMode = "install"
    """The NVIDIA device plugin that advertises ``nvidia.com/gpu``, installed on the GPU groups' nodes when one is declared. ``present``: a device plugin or the GPU Operator runs; ``none``: GPU APIs are errors."""
    cluster_autoscaler: AddonMode = "none"
    """The Kubernetes cluster autoscaler for EKS managed node groups (``install`` needs ``oidcProviderArn``, ``oidcIssuer`` and ``aws:region``, and ``cluster.name`` must be the EKS cluster's name). ``present`` / ``none``: something else scales the nodes (Karpenter, a managed autoscaler), or nothing does."""


class ExistingClusterConfig(_Model):
    """A Kubernetes cluster that already runs (EKS or any other: kind, minikube, on-premises). modelplane creates no VPC, EKS cluster or node group; it installs the APIs, and the add-ons they need, into this cluster."""

    kubeconfig: str | SecretValue | None = None
    """The cluster's kubeconfig, stored encrypted: ``pulumi config set --secret --path modelplane:cluster.existing.kubeconfig < kubeconfig.yaml``. One of ``kubeconfig``, ``kubeconfigPath`` and ``stackReference`` is required."""
    kubeconfig_path: str | None = Field(None, pattern=r"^(/|~/)[^\x00]*$")
    """Path of a kubeconfig file on the machine that runs ``pulumi``: absolute, or under the home directory (``~/.kube/config``). Only the path goes into the state."""
    context: str | None = Field(None, min_length=1)
    """Context of the kubeconfig to use. Unset: its current context."""
    stack_reference: StackReferenceConfig | None = None
    """Read the kubeconfig from another stack's output."""
    oidc_provider_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[^\s]+$")
    """ARN of the cluster's IAM OIDC provider (EKS), for service-account roles: ``modelUri``, ``queue``, the cluster autoscaler. Needs ``oidcIssuer``."""
    oidc_issuer: str | None = Field(None, pattern=r"^https://[^\s]+$")
    """The cluster's OIDC issuer URL (``https://oidc.eks.<region>.amazonaws.com/id/<id>``). Needs ``oidcProviderArn``."""
    keda_role_name: str | None = Field(None, pattern=r"^[A-Za-z0-9+=,.@_-]{1,64}$")
    """IAM role of a KEDA that is ``present``: each queue API grants it read access to its queue's depth. Unset: grant that yourself."""
    addon_node_selector: dict[LabelKey, LabelValue] = {}
    """Node labels that the add-ons modelplane installs are pinned to (your system pool's). Unset: any node they tolerate."""
    addons: ExistingAddonsConfig = ExistingAddonsConfig()
    """Which add-ons modelplane installs and which are already there."""


class ChartSourceConfig(_Model):
    """Where one add-on chart comes from."""

    repository: str | None = Field(None, pattern=r"^(https?|oci)://[^\s]+$")
    """A Helm repository (``https://mirror.example.com/charts``) or an OCI registry path (``oci://registry.example.com/charts``) holding the chart under its usual name. Unset: the chart's public repository."""
    version: str | None = Field(None, pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")
    """Chart version to install instead of modelplane's pin, for a mirror without it (the values modelplane sets must still apply). Unset: the pinned version."""


ChartName = Literal[tuple(CHARTS)]  # type: ignore[valid-type]


class ClusterConfig(_Model):
    """The cluster: ``modelplane:cluster``. An EKS cluster modelplane creates, or an ``existing`` one."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
    """EKS cluster name (lower case, digits, hyphens; 2-40 characters); with ``existing``, the estate's name (and the EKS cluster's, if it is one). Required; changing it replaces a created cluster."""
    kubernetes_version: Literal[KUBERNETES_VERSIONS] = "1.33"  # type: ignore[valid-type]
    """Kubernetes minor version of the control plane (with ``existing``: the one it runs); charts are pinned and objects validated for it."""
    existing: ExistingClusterConfig | None = None
    """Install into a cluster that already runs instead of creating one. Unset: modelplane creates the VPC, the EKS cluster and its node groups."""
    vpc: VpcConfig = VpcConfig()
    """Network settings."""
    endpoint: EndpointConfig = EndpointConfig()
    """API server endpoint access."""
    system_node_group: SystemNodeGroupConfig = SystemNodeGroupConfig()
    """The add-on node group."""
    prometheus: PrometheusConfig = PrometheusConfig()
    """Where request metrics live for autoscaling."""
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = [
        "api", "audit", "authenticator"]
    """Control-plane log types sent to CloudWatch."""
    deletion_protection: bool = False
    """Refuse to delete the EKS cluster until this is turned off (turn on for production)."""
    tags: dict[Annotated[str, StringConstraints(max_length=128)],
               Annotated[str, StringConstraints(max_length=256)]] = {}
    """AWS tags put on every AWS resource of the estate."""
    charts: dict[ChartName, ChartSourceConfig] = {}
    """Where the add-on charts come from, by chart name (``keda``, ``kube-prometheus-stack``, ``nvidia-device-plugin``, ``cluster-autoscaler``): a mirror or an OCI registry for air-gapped estates. Unset: each chart's public repository at the pinned version."""


# --------------------------------------------------------------------------- node groups

class TaintConfig(_Model):
    """A Kubernetes taint on every node of a group."""

    key: LabelKey
    """Taint key."""
    value: LabelValue = ""
    """Taint value."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"
    """Taint effect."""


class NodeGroupConfig(_Model):
    """One EKS managed node group (or, on an existing cluster, a description of a pool that is there): an entry of ``modelplane:nodeGroups``, keyed by its name."""

    instance_types: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")]] = Field(
        min_length=1, max_length=20)
    """EC2 instance types, most preferred first (several types make spot capacity easier to get). Required."""
    gpu: bool = False
    """NVIDIA GPU nodes: NVIDIA AMI, ``nvidia.com/gpu`` taint, GPU labels, device plugin."""
    capacity_type: Literal["onDemand", "spot"] = "onDemand"
    """On-demand or spot capacity."""
    min_size: int = Field(1, ge=0, le=1000)
    """Minimum nodes; 0 lets the group scale from zero."""
    desired_size: int | None = Field(None, ge=0, le=1000)
    """Nodes at creation (default: ``minSize``). Ignored afterwards: the cluster autoscaler owns it."""
    max_size: int = Field(3, ge=1, le=1000)
    """Maximum nodes."""
    disk_size_gib: int = Field(100, ge=20, le=16384)
    """Root volume size in GiB (encrypted gp3); model images are large."""
    ami_type: Literal[GPU_AMI_TYPES + CPU_AMI_TYPES] | None = None  # type: ignore[valid-type]
    """EKS AMI type (default: AL2023 for the instance types' architecture, NVIDIA variant for GPU groups; Bottlerocket for ARM GPUs)."""
    gpus_per_node: int | None = Field(None, ge=1, le=16)
    """GPUs per node; derived from the instance type for known types, required otherwise."""
    gpu_taint: bool = True
    """Give GPU nodes the ``nvidia.com/gpu=true:NoSchedule`` taint so only GPU APIs land there."""
    labels: dict[LabelKey, LabelValue] = {}
    """Extra Kubernetes labels on the nodes. On an existing cluster: labels the pool's nodes carry, which the APIs select them by (default ``modelplane.io/node-group: <name>``)."""
    taints: list[TaintConfig] = []
    """Extra Kubernetes taints on the nodes (on an existing cluster: the taints the pool's nodes carry); APIs on this group tolerate them."""


# --------------------------------------------------------------------------- model APIs

class ContainerComputeConfig(_Model):
    """Resources one container requests."""

    cpu: CpuQuantity = "200m"
    """CPU request (Kubernetes quantity, e.g. ``500m`` or ``2``)."""
    mem: MemQuantity | None = None
    """Memory request and limit (e.g. ``2Gi``); unset means no memory request."""
    gpu: int = Field(0, ge=0, le=16)
    """NVIDIA GPUs (``nvidia.com/gpu``); needs a GPU node group."""


class ComputeConfig(ContainerComputeConfig):
    """Resources of the API's serving container, and the pod's shared memory."""

    shm: MemQuantity | None = None
    """Size of ``/dev/shm`` (a memory-backed emptyDir, counted against ``mem``), for PyTorch workers and NCCL."""


class ProbeConfig(_Model):
    """An HTTP readiness probe against the API's port."""

    path: str = Field(pattern=r"^/[^\s]*$")
    """HTTP path that answers 200 when the model is loaded and can serve. Required."""
    period_seconds: int = Field(5, ge=1, le=300)
    """Seconds between probes."""
    timeout_seconds: int = Field(3, ge=1, le=120)
    """Seconds before a probe counts as failed."""
    failure_threshold: int = Field(3, ge=1, le=100)
    """Consecutive failures before the replica is taken out of the Service."""
    initial_delay_seconds: int = Field(0, ge=0, le=3600)
    """Seconds after start before the first probe."""


class SidecarConfig(_Model):
    """Another container in every replica, e.g. a Python model behind a fast front-end, talking over a Unix socket in ``/var/run/modelplane``."""

    image: str = Field(pattern=r"^[^\s]+$")
    """Container image with an explicit tag or digest. Required."""
    command: list[str] | None = None
    """Container entrypoint override."""
    args: list[str] | None = None
    """Container arguments override."""
    env: dict[EnvName, str] = {}
    """Environment variables (values are strings)."""
    compute: ContainerComputeConfig = ContainerComputeConfig()
    """Resources of this container (GPUs count towards the replica's total)."""


class StartupProbeConfig(_Model):
    """An HTTP startup probe: holds off readiness and liveness checks while a large model loads."""

    path: str = Field(pattern=r"^/[^\s]*$")
    """HTTP path that answers 200 once the server is up (often the readiness path). Required."""
    period_seconds: int = Field(10, ge=1, le=300)
    """Seconds between probes."""
    timeout_seconds: int = Field(3, ge=1, le=120)
    """Seconds before a probe counts as failed."""
    failure_threshold: int = Field(60, ge=1, le=1000)
    """Failures allowed before the replica is restarted: periodSeconds x failureThreshold is the load budget (10 min)."""


class ProxyConfig(_Model):
    """The Envoy sidecar every request passes through: it enforces ``maxConcurrency`` and ``maxQueueLength`` (503 beyond them) and exports the in-flight count the autoscaler reads."""

    enabled: bool = True
    """Run the proxy. Off: the Service reaches the server directly, and the API scales on ``cpu``, ``memory``, ``queue`` or a ``custom`` query of the server's own metrics."""
    image: str = Field(PROXY_IMAGE, pattern=r"^[^\s]+$")
    """Envoy image (an official ``envoyproxy/envoy`` build; distroless by default)."""
    cpu: CpuQuantity = "100m"
    """CPU request of the proxy container."""
    mem: MemQuantity = "128Mi"
    """Memory request and limit of the proxy container."""


class QueueConfig(_Model):
    """An SQS queue of work the API consumes (an async API); ``autoscaling.metric: queue`` scales on its depth."""

    url: str | None = Field(None, pattern=SQS_URL.pattern)
    """URL of an existing queue. Unset: modelplane creates one (server-side encrypted) named ``<cluster>-<api>``."""
    visibility_timeout_seconds: int = Field(300, ge=0, le=43200)
    """For a queue modelplane creates: seconds a received message stays hidden; make it longer than one job takes."""


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


class UpdateStrategyConfig(_Model):
    """Rolling-update limits (Kubernetes ``maxSurge`` / ``maxUnavailable``, a count or a percent)."""

    max_surge: IntOrPercent | None = None
    """Extra replicas during a rollout (default ``25%``; GPU APIs ``1``)."""
    max_unavailable: IntOrPercent | None = None
    """Replicas that may be down during a rollout (default ``25%``; GPU APIs ``0``)."""
    min_ready_seconds: int = Field(0, ge=0, le=3600)
    """Seconds a new replica must stay ready before it counts as available and the rollout moves on."""
    progress_deadline_seconds: int = Field(600, ge=30, le=7200)
    """Seconds without rollout progress after which the rollout is failed (and ``pulumi up`` with it)."""


class ApiConfig(_Model):
    """One model served as an HTTP API: an entry of ``modelplane:apis``, keyed by its name."""

    image: str = Field(pattern=r"^[^\s]+$")
    """Container image with an explicit tag or digest. Required."""
    node_group: DnsLabel
    """Name of the node group (a key of ``modelplane:nodeGroups``) the replicas run on. Required."""
    readiness_probe: ProbeConfig
    """Readiness probe. Required: a rollout moves on only when new replicas are ready."""
    liveness_probe: ProbeConfig | None = None
    """Liveness probe: restarts a replica whose server hangs. Unset: no liveness probe."""
    startup_probe: StartupProbeConfig | None = None
    """Startup probe for slow model loads. Unset: no startup probe."""
    model_uri: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
    """Model artifacts in S3 (``s3://bucket/prefix``): the API's service account gets a read-only role for exactly that prefix, and the server gets the URI as ``MODELPLANE_MODEL_URI``."""
    port: int = Field(8080, ge=1024, le=65535)
    """Container port the model server listens on (unprivileged: >= 1024)."""
    command: list[str] | None = None
    """Container entrypoint override."""
    args: list[str] | None = None
    """Container arguments override."""
    env: dict[EnvName, str] = {}
    """Environment variables (values are strings: quote numbers and booleans)."""
    compute: ComputeConfig = ComputeConfig()
    """Resources per replica."""
    sidecars: dict[DnsLabel, SidecarConfig] = {}
    """Extra containers per replica, by name; they share the writable paths, config files and a socket directory."""
    secrets: dict[DnsLabel, Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._/-]*$")]] = {}
    """Kubernetes Secrets (in the API's namespace, e.g. synced by External Secrets) mounted read-only as files: secret name to directory."""
    config_files: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,253}$")], str] = {}
    """Model configuration files (name: content), mounted read-only at ``/etc/modelplane/config`` from a ConfigMap named after its content, so a change rolls the replicas."""
    read_only_root_filesystem: bool = True
    """Mount the container's root filesystem read-only; only ``writablePaths`` can be written."""
    writable_paths: list[Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._/-]*$")]] = ["/tmp"]
    """Directories that get a writable emptyDir (scratch space, caches: point e.g. ``HF_HOME`` at one)."""
    max_concurrency: int = Field(1, ge=1, le=10000)
    """Requests one replica serves at once (Cortex: 1): the proxy passes no more than this to the server, which also gets it as ``MODELPLANE_MAX_CONCURRENCY``."""
    max_queue_length: int = Field(100, ge=0, le=100000)
    """Requests the proxy holds per replica while the server is busy (Cortex: 100); more are answered 503. Needs the proxy."""
    proxy: ProxyConfig = ProxyConfig()
    """The request proxy (Envoy sidecar)."""
    metrics_path: str | None = Field(None, pattern=r"^/[^\s]*$")
    """Path on ``port`` where the server serves its own Prometheus metrics (e.g. ``/metrics`` for vLLM or Triton), so ``custom`` queries can use them. Unset: not scraped."""
    queue: QueueConfig | None = None
    """An SQS queue the API consumes; its URL reaches the server as ``MODELPLANE_QUEUE_URL``."""
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    """Autoscaling."""
    update_strategy: UpdateStrategyConfig = UpdateStrategyConfig()
    """Rolling-update limits."""


# --------------------------------------------------------------------------- errors

@dataclass(frozen=True)
class Issue:
    """One problem in a stack file: where (key path), what was there, and what would be valid."""

    path: tuple[str | int, ...]
    message: str

    def where(self) -> str:
        key = _shown_key(self.path[0]) if self.path else NAMESPACE
        for part in self.path[1:]:
            key += f"[{part}]" if isinstance(part, int) else f".{_shown_key(part)}"
        return key


def _shown_key(part: str | int) -> str:
    """A key as it appears in a key path: as written, or quoted when it is empty or holds blanks or controls."""
    text = str(part)
    if text and text.isprintable() and not any(c.isspace() for c in text):
        return text
    return json.dumps(text)


class ConfigError(Exception):
    """The stack file is invalid; carries every issue found, each with its key path."""

    def __init__(self, source: str, issues: list[Issue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.issues)} problem(s) in the estate config:"]
        lines += [f"  {self.source}: {issue.where() + ': ' if issue.path else ''}{issue.message}"
                  for issue in self.issues]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the parsed estate

@dataclass(frozen=True)
class EstateConfig:
    """A whole validated estate: what one stack file describes."""

    source: str
    """The stack file (or config source) it came from, for messages."""
    region: str | None
    """AWS region (``aws:region``); None only for an existing cluster that uses no AWS service."""
    cluster: ClusterConfig
    node_groups: dict[str, NodeGroupConfig] = field(default_factory=dict)
    apis: dict[str, ApiConfig] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """Things that are valid but worth a second look; the plan prints them."""

    def gpus_per_node(self, group: str) -> int:
        """GPUs on one node of ``group`` (0 for CPU groups)."""
        return gpus_per_node(self.node_groups[group])

    def max_surge(self, api: str) -> int | str:
        """The API's effective ``maxSurge``."""
        return effective_update_strategy(self.apis[api])[0]

    def max_unavailable(self, api: str) -> int | str:
        """The API's effective ``maxUnavailable``."""
        return effective_update_strategy(self.apis[api])[1]

    @property
    def needs_keda(self) -> bool:
        """Some API scales through KEDA."""
        return any(uses_keda(api) for api in self.apis.values())

    @property
    def existing(self) -> ExistingClusterConfig | None:
        """The existing cluster the estate installs into, or None when modelplane creates EKS."""
        return self.cluster.existing

    def addon(self, name: str) -> str:
        """``install``, ``present`` or ``none``: what the cluster does about an add-on (see :func:`addon_mode`)."""
        return addon_mode(self.cluster, self.node_groups, name)

    @property
    def installs_keda(self) -> bool:
        """The estate installs KEDA: an API scales through it and the cluster does not bring its own."""
        return self.needs_keda and self.addon("keda") == "install"

    @property
    def installs_prometheus(self) -> bool:
        """The cluster gets a kube-prometheus-stack release: an API needs Prometheus and no URL is given."""
        return self.addon("prometheus") == "install" and any(uses_prometheus(a) for a in self.apis.values())

    @property
    def pod_monitors(self) -> bool:
        """APIs get PodMonitors: a Prometheus Operator runs (installed here, or present)."""
        return self.installs_prometheus or self.addon("prometheus") == "present"

    @property
    def installs_device_plugin(self) -> bool:
        """The estate installs the NVIDIA device plugin."""
        return self.addon("nvidiaDevicePlugin") == "install"

    @property
    def installs_cluster_autoscaler(self) -> bool:
        """The estate installs the cluster autoscaler."""
        return self.addon("clusterAutoscaler") == "install"


ADDONS = ("keda", "prometheus", "nvidiaDevicePlugin", "clusterAutoscaler")
"""The add-ons an estate may install, by their key in ``existing.addons``."""


def addon_mode(cluster: ClusterConfig, node_groups: Mapping[str, NodeGroupConfig], addon: str) -> str:
    """What the cluster does about ``addon`` (a key of :data:`ADDONS`): ``install``, ``present`` or ``none``.

    On a cluster modelplane creates: the autoscaler and KEDA are installed (KEDA when an API
    needs it), Prometheus unless ``prometheus.url`` names another, the device plugin when a GPU
    group runs the AL2023 NVIDIA AMI (Bottlerocket ships its own). On an existing cluster: what
    ``existing.addons`` says, except that a Prometheus named by ``prometheus.url`` is not installed.
    """
    gpu = any(g.gpu for g in node_groups.values())
    if cluster.existing is None:
        if addon == "prometheus":
            return "install" if cluster.prometheus.url is None else "none"
        if addon == "nvidiaDevicePlugin":
            if any(g.gpu and default_ami_type(g).startswith("AL2023") for g in node_groups.values()):
                return "install"
            return "present" if gpu else "none"
        return "install"
    addons = cluster.existing.addons
    mode: str = getattr(addons, to_snake(addon))
    if addon == "prometheus" and mode == "install" and cluster.prometheus.url is not None:
        return "none"
    if addon == "nvidiaDevicePlugin" and mode == "install" and not gpu:
        return "none"
    return mode


def ami_architecture(ami_type: str) -> str:
    """``arm64`` or ``x86_64``: the CPU architecture an EKS AMI type is built for."""
    return "arm64" if "ARM_64" in ami_type else "x86_64"


def default_ami_type(group: NodeGroupConfig) -> str:
    """The AMI type a group gets: stated, else AL2023 for its architecture (Bottlerocket for ARM GPUs)."""
    if group.ami_type is not None:
        return group.ami_type
    arm = catalog.architecture(group.instance_types[0]) == "arm64"
    if group.gpu:
        return "BOTTLEROCKET_ARM_64_NVIDIA" if arm else "AL2023_x86_64_NVIDIA"
    return "AL2023_ARM_64_STANDARD" if arm else "AL2023_x86_64_STANDARD"


def gpus_per_node(group: NodeGroupConfig) -> int:
    """GPUs per node of a group: stated, else the smallest of its known instance types."""
    if not group.gpu:
        return 0
    if group.gpus_per_node is not None:
        return group.gpus_per_node
    known = [catalog.lookup(t) for t in group.instance_types]
    return min((t.gpus for t in known if t is not None), default=0)


def api_gpus(api: ApiConfig) -> int:
    """GPUs one replica of ``api`` requests: its serving container's plus its sidecars'."""
    return api.compute.gpu + sum(sidecar.compute.gpu for sidecar in api.sidecars.values())


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


def sqs_queue(url: str) -> tuple[str, str, str]:
    """(region, account, queue name) of an SQS queue URL (validated by :data:`SQS_URL`)."""
    match = SQS_URL.match(url)
    if match is None:
        raise ValueError(f"not an SQS queue URL: {url!r}")
    return match.group(1), match.group(2), match.group(3)


def has_hpa_tolerance(kubernetes_version: str) -> bool:
    """Whether the HPA's per-direction ``tolerance`` works on this minor (beta, on by default, from 1.35)."""
    return tuple(map(int, kubernetes_version.split("."))) >= (1, 35)


def amp_workspace(url: str | None) -> tuple[str, str] | None:
    """(region, workspace id) when ``url`` is an Amazon Managed Prometheus workspace, else None."""
    match = AMP_URL.match(url or "")
    return (match.group(1), match.group(2)) if match else None


def effective_update_strategy(api: ApiConfig) -> tuple[int | str, int | str]:
    """(maxSurge, maxUnavailable) after defaults: GPU APIs surge one replica and never go below desired."""
    gpu = api_gpus(api) > 0
    surge = api.update_strategy.max_surge
    unavailable = api.update_strategy.max_unavailable
    if surge is None:
        surge = 1 if gpu else "25%"
    if unavailable is None:
        unavailable = 0 if gpu else "25%"
    return surge, unavailable


# --------------------------------------------------------------------------- loading

_SECTIONS: dict[str, str] = {
    "cluster": "ClusterConfig",
    "nodeGroups": "NodeGroupConfig map",
    "apis": "ApiConfig map",
}


def load_stack_file(path: str | os.PathLike[str], source: str | None = None) -> dict[str, Any]:
    """The ``config:`` map of a Pulumi stack file; YAML errors become a :class:`ConfigError` with the line.

    ``source`` names the file in messages (default: ``path``).
    """
    source = source or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [Issue((), f"cannot read the stack file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(source, [Issue((), f"line {line}: byte 0x{exc.object[exc.start]:02x} is not UTF-8; a stack "
                                             "file is UTF-8 text")]) from None
    try:
        document = _load_yaml(text, source)
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        shown = f"U+{code:04X}" if isinstance(code, int) else repr(code)
        raise ConfigError(source, [Issue((), f"line {line}: the character {shown} may not appear in YAML; "
                                             "remove it")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        # One line per problem: PyYAML's messages may span several.
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(source, [Issue((), f"{where}the file is not valid YAML ({problem})")]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(source, [Issue((), "a stack file is a YAML mapping with a `config:` key")])
    unknown = sorted(set(document) - {"config", "secretsprovider", "encryptedkey", "encryptionsalt",
                                       "environment"})
    if unknown:
        raise ConfigError(source, [Issue((), f"unknown top-level key(s) {unknown}; a stack file "
                                             "holds `config:` (and Pulumi's secrets settings)")])
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(source, [Issue(("config",), "must be a mapping of `namespace:key` to value")])
    return config


def _load_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``, refusing what Pulumi's own stack-file reader refuses: a key twice in one mapping.

    PyYAML lets the last of two equal keys win (a second ``sentiment:`` would silently replace the
    first API); Go's yaml.v3, which Pulumi reads stack files with, refuses the file. The check runs
    on the composed nodes before anything is constructed, compares keys as yaml.v3 does (same node
    kind, same text after unquoting: ``1`` and ``"1"`` collide) and reports every duplicate.
    """
    loader = _StackFileLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicate_keys(node, ()))
        if duplicates:
            raise ConfigError(source, duplicates)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(source, [Issue((), "the file nests lists or mappings too deeply to be read (a stack "
                                             "file needs a handful of levels)")]) from None
    finally:
        loader.dispose()


class _StackFileLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with a keyed error where it would raise a bare ValueError."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-any-return]
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} digits, more than this reader takes (4300)",
                node.start_mark) from None


_StackFileLoader.add_constructor("tag:yaml.org,2002:int", _StackFileLoader.construct_yaml_int)


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...]) -> Iterator[Issue]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[type, str], yaml.Node] = {}
        for key, value in node.value:
            ident = (type(key), key.value if isinstance(key, yaml.ScalarNode) else "")
            first = seen.setdefault(ident, key)
            if first is not key:
                shown = json.dumps(key.value) if isinstance(key, yaml.ScalarNode) else "(a complex key)"
                # Issue paths start inside `config:` (that is where key paths are read from).
                inside = path[:1] == ("config",) and isinstance(key, yaml.ScalarNode)
                yield Issue(path[1:] + (key.value,) if inside else (),
                            f"line {key.start_mark.line + 1}: mapping key {shown} already defined at line "
                            f"{first.start_mark.line + 1}; Pulumi refuses a stack file with a key twice in one "
                            "mapping: keep one")
            child = key.value if isinstance(key, yaml.ScalarNode) else "?"
            yield from _duplicate_keys(value, path + (child,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, path + (index,))


def config_from_pulumi() -> dict[str, Any]:
    """The running Pulumi program's config as a stack file's ``config:`` map (objects decoded)."""
    import pulumi.runtime.config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(f"{NAMESPACE}:") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        decoded[key] = value
    return decoded


def parse_estate(config: Mapping[str, Any], source: str, secret_keys: Collection[str] = ()) -> EstateConfig:
    """Validate a stack's whole config map; raise :class:`ConfigError` with every issue found.

    ``secret_keys`` are the config keys the Pulumi engine decrypted (a secret inside
    ``modelplane:cluster`` makes that whole key secret); a kubeconfig in plain text is
    accepted only under one of them.
    """
    issues: list[Issue] = []

    def key(name: str) -> str:
        return f"{NAMESPACE}:{name}"

    config = _qualified_keys(config, issues)
    if not config and not issues:
        raise ConfigError(source, [Issue((), "holds no configuration; a stack file starts with `config:` and "
                                             f"needs at least {key('cluster')} (and aws:region unless the "
                                             "cluster is an existing one); see stacks/Pulumi.dev.yaml")])

    cluster = _validate(ClusterConfig, config.get(key("cluster")), (key("cluster"),), issues,
                        required=True)
    existing = _existing_section(config.get(key("cluster")), cluster)
    region = config.get("aws:region")
    if (region is not None or not existing) and (
            not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", region)):
        optional = "; an existing cluster that uses no AWS service may leave it out" if existing else ""
        issues.append(Issue(("aws:region",), f"must be an AWS region such as us-east-1, got {region!r}{optional}"))
    node_groups = _validate_map(NodeGroupConfig, config.get(key("nodeGroups"), {}),
                                (key("nodeGroups"),), issues)
    apis = _validate_map(ApiConfig, config.get(key("apis"), {}), (key("apis"),), issues)

    raw_groups = config.get(key("nodeGroups"), {})
    group_names = sorted(str(n) for n in raw_groups) if isinstance(raw_groups, dict) else []
    warnings: list[str] = []
    if cluster is not None:
        issues += _check_cluster(cluster, (key("cluster"),), warnings)
    for name, group in node_groups.items():
        if name == RESERVED_GROUP and not existing:
            issues.append(Issue((key("nodeGroups"), name), f"{RESERVED_GROUP!r} is the cluster's own add-on "
                                "group (cluster.systemNodeGroup); pick another name"))
        issues += _check_node_group(group, (key("nodeGroups"), name))
    for name, api in apis.items():
        issues += _check_api(name, api, node_groups, group_names, (key("apis"), name), cluster)
    if cluster is not None and cluster.existing is not None:
        issues += _check_existing(cluster, node_groups, apis, region if isinstance(region, str) else None,
                                  secret_keys)
    raw_apis = config.get(key("apis"), {})
    for name, entry in (raw_apis.items() if isinstance(raw_apis, dict) else ()):
        if not isinstance(name, str):
            continue  # reported by _validate_map as an invalid name
        if name in RESERVED_NAMESPACES:
            issues.append(Issue((key("apis"), name), f"{name!r} is a namespace Kubernetes owns and each API "
                                "gets a namespace of its own name; pick another API name"))
        if name in ADDON_NAMESPACES:
            issues.append(Issue((key("apis"), name), f"{name!r} is the namespace of {ADDON_NAMESPACES[name]}, an "
                                "add-on of the cluster, and each API gets a namespace of its own name; pick "
                                "another API name"))
        if name not in apis and isinstance(entry, dict):
            issues += _check_partly_valid_api(name, entry, issues, node_groups, group_names, (key("apis"), name),
                                              cluster)

    if issues:
        raise ConfigError(source, issues)
    assert cluster is not None and (region is None or isinstance(region, str))
    warnings += gpu_headroom_warnings(node_groups, apis)
    if cluster.existing is not None:
        warnings += _existing_warnings(cluster, apis)
    return EstateConfig(source=source, region=region, cluster=cluster,
                        node_groups=dict(sorted(node_groups.items())),
                        apis=dict(sorted(apis.items())), warnings=warnings)


_NAMESPACE_OF_OTHERS = ("aws", "kubernetes", "pulumi", "eks")
"""Config namespaces of the providers a stack file may also configure (left alone)."""


def _qualified_keys(config: Mapping[Any, Any], issues: list[Issue]) -> dict[str, Any]:
    """The config map with every key as Pulumi reads it (``namespace:name``), reporting keys it would refuse.

    Pulumi qualifies a key without a namespace with the project's (``apis`` is ``modelplane:apis``)
    and refuses keys that are not strings or have more than one colon. modelplane refuses, besides,
    a key written both ways (Pulumi silently keeps the last), its own keys with a misspelt namespace
    (``modelplan:apis`` would deploy an estate without APIs) and unknown keys of its namespace.
    """
    qualified: dict[str, Any] = {}
    sections = [f"{NAMESPACE}:{s}" for s in _SECTIONS]
    for raw, value in config.items():
        if not isinstance(raw, str) or not re.fullmatch(r"[^:\s]+(:[^:\s]+)?", raw):
            issues.append(Issue((str(raw),), f"is not a configuration key: keys are text of the form "
                                             f"<namespace>:<name> (e.g. {NAMESPACE}:apis), got {_show(raw)}"))
            continue
        name = raw if ":" in raw else f"{NAMESPACE}:{raw}"
        if name in qualified:
            issues.append(Issue((name,), f"is given twice, as {raw!r} and with its namespace; Pulumi reads a key "
                                         f"without a namespace as {NAMESPACE}:<key>: keep one"))
            continue
        namespace, _, section = name.partition(":")
        if namespace == NAMESPACE and section not in _SECTIONS:
            hint = _did_you_mean(name, sections)
            issues.append(Issue((name,), f"unknown key{hint}; valid keys are {', '.join(sections)}"))
            continue
        if namespace != NAMESPACE and namespace not in _NAMESPACE_OF_OTHERS and (
                section in _SECTIONS or _did_you_mean(namespace, [NAMESPACE])):
            hint = _did_you_mean(name, sections) or f" (did you mean '{NAMESPACE}:{section}'?)"
            issues.append(Issue((raw,), f"is in namespace {namespace!r}, which modelplane does not read{hint}"))
            continue
        qualified[name] = value
    return qualified


def _did_you_mean(word: str, candidates: Collection[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate to a misspelt ``word``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _existing_section(raw_cluster: Any, cluster: ClusterConfig | None) -> bool:
    """Whether the stack declares an existing cluster (judged from the raw file when the section is broken)."""
    if cluster is not None:
        return cluster.existing is not None
    return isinstance(raw_cluster, dict) and raw_cluster.get("existing") is not None


def _validate(model: type[_Model], value: Any, path: tuple[str | int, ...], issues: list[Issue],
              required: bool = False) -> Any:
    if value is None:
        if required:
            issues.append(Issue(path, f"is required: the {model.__name__.removesuffix('Config').lower()} "
                                      f"settings (required keys: {', '.join(_required_keys(model))})"))
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        issues.extend(_issues_from_pydantic(model, exc, path))
        return None


def _validate_map(model: type[_Model], value: Any, path: tuple[str | int, ...],
                  issues: list[Issue]) -> dict[str, Any]:
    if not isinstance(value, dict):
        issues.append(Issue(path, f"must be a mapping of name to settings, got {type(value).__name__}"))
        return {}
    parsed: dict[str, Any] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) \
                or len(name) > 40:
            issues.append(Issue(path + (str(name),), "is not a valid name: use lower-case letters, digits "
                                                    "and hyphens, starting with a letter, at most 40 "
                                                    "characters (it names Kubernetes and AWS objects)"))
            continue
        result = _validate(model, entry if entry is not None else {}, path + (name,), issues)
        if result is not None:
            parsed[name] = result
    return parsed


def _required_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items() if f.is_required()]


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that owns the key at ``loc`` (for listing the valid keys there)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list field: its model is the list's item model
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {f.alias or n: f for n, f in current.model_fields.items()}
        found = by_alias.get(str(part))
        if found is None:
            return None
        current = _inner_model(found.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _issues_from_pydantic(model: type[BaseModel], exc: ValidationError,
                          path: tuple[str | int, ...]) -> Iterator[Issue]:
    by_loc: dict[tuple[str | int, ...], list[str]] = {}
    for error in exc.errors(include_url=False):
        # pydantic names union branches in the loc ("int", "constrained-str", "function-before[...]");
        # they are not keys of the file.
        kind = error["type"]
        raw = tuple(error["loc"])
        # The key an extra_forbidden error names is the user's, whatever it spells ("int", "none").
        keep = raw[-1:] if kind == "extra_forbidden" else ()
        head = raw[:-1] if keep else raw
        loc = tuple(part for part in head if not (isinstance(part, str) and _is_branch_tag(part))) + keep
        if kind == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            keys = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
            message = f"unknown key {loc[-1]!r}{_did_you_mean(str(loc[-1]), keys)}; valid keys here: {', '.join(keys)}"
        elif kind == "missing":
            message = "is required"
            if (owner := _model_at(model, loc)) is not None:
                message += f" (required keys: {', '.join(_required_keys(owner))})"
        elif kind == "value_error":
            message = str((error.get("ctx") or {}).get("error") or error["msg"])  # our own validators' sentences
        else:
            message = error["msg"].rstrip(".") + f"; got {_show(error.get('input'))}" + _quote_hint(error)
        messages = by_loc.setdefault(loc, [])
        if message not in messages:
            messages.append(message)
    for loc, messages in by_loc.items():
        if len(messages) > 1:
            # A value that fits none of a union's branches: one issue listing what each branch wanted.
            got = messages[0].rsplit("; got ", 1)[-1]
            wanted = " or ".join(dict.fromkeys(m.rsplit("; got ", 1)[0] for m in messages))
            messages = [f"{wanted}; got {got}"]
        yield Issue(path + loc, messages[0])


def _quote_hint(error: Any) -> str:
    """A hint for a number YAML read where text was wanted (``kubernetesVersion: 1.33``): quote it."""
    value = error.get("input")
    wants_text = error["type"] in ("literal_error", "string_type", "string_pattern_mismatch") and (
        error["type"] != "literal_error" or all(isinstance(v, str) for v in (error.get("ctx") or {}).get(
            "expected_values", ["x"])))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and wants_text:
        return f" (a number to YAML; quote it for text: \"{value}\")"
    return ""


def _is_branch_tag(part: str) -> bool:
    return "[" in part or part in ("int", "str", "float", "bool", "list", "dict", "none") \
        or part.startswith(("constrained-", "function-", "lax-", "strict-"))


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- cross-field rules

def _check_cluster(cluster: ClusterConfig, path: tuple[str | int, ...],
                   warnings: list[str]) -> Iterator[Issue]:
    prometheus = cluster.prometheus
    if prometheus.url is not None:
        for knob in ("retention",):
            if knob in prometheus.model_fields_set:
                yield Issue(path + ("prometheus", to_camel(knob)), "applies to the Prometheus modelplane installs, "
                                                                   "not to an external one (url)")
    if cluster.existing is not None:
        return  # the network, endpoint and system nodes are the existing cluster's own (see _check_existing)
    vpc = cluster.vpc
    vpc_path = path + ("vpc",)
    if vpc.id is not None:
        new_vpc_keys = sorted({"cidr", "availability_zones", "nat_gateways"} & vpc.model_fields_set)
        if new_vpc_keys:
            yield Issue(vpc_path, f"{', '.join(to_camel(k) for k in new_vpc_keys)} only apply to a new VPC; "
                                  "remove them or remove `id`")
        if len(vpc.private_subnet_ids) < 2:
            yield Issue(vpc_path + ("privateSubnetIds",),
                        f"an existing VPC needs at least two private subnets (in different AZs), "
                        f"got {len(vpc.private_subnet_ids)}")
    else:
        if vpc.private_subnet_ids or vpc.public_subnet_ids:
            yield Issue(vpc_path, "subnet ids need the existing VPC's `id`; without `id` modelplane "
                                  "creates the VPC and its subnets")
        if not 16 <= vpc.cidr.prefixlen <= 20:
            yield Issue(vpc_path + ("cidr",), f"must be a /16 to /20 block, got {vpc.cidr}")
    endpoint = cluster.endpoint
    if not endpoint.public and not endpoint.private:
        yield Issue(path + ("endpoint",), "public and private cannot both be false: nothing could reach "
                                          "the API server")
    if not endpoint.private and IPv4Network("0.0.0.0/0") not in endpoint.public_access_cidrs:
        yield Issue(path + ("endpoint", "private"), "with the private endpoint off, nodes reach the API server "
                                                    "through the NAT gateways, whose addresses are not in "
                                                    "publicAccessCidrs, and never join; set private: true")
    if endpoint.public and IPv4Network("0.0.0.0/0") in endpoint.public_access_cidrs:
        warnings.append(f"{'.'.join(map(str, path))}.endpoint: the public API endpoint is open to "
                        "0.0.0.0/0; set publicAccessCidrs to your office/VPN ranges")
    system = cluster.system_node_group
    if system.min_size > system.max_size:
        yield Issue(path + ("systemNodeGroup", "minSize"),
                    f"minSize {system.min_size} is greater than maxSize {system.max_size}")


def _check_node_group(group: NodeGroupConfig, path: tuple[str | int, ...]) -> Iterator[Issue]:
    if group.min_size > group.max_size:
        yield Issue(path + ("minSize",), f"minSize {group.min_size} is greater than maxSize {group.max_size}")
    if group.desired_size is not None and not group.min_size <= group.desired_size <= group.max_size:
        yield Issue(path + ("desiredSize",), f"desiredSize {group.desired_size} must lie between minSize "
                                             f"{group.min_size} and maxSize {group.max_size}")
    arches = {catalog.architecture(t) for t in group.instance_types}
    if len(arches) > 1:
        yield Issue(path + ("instanceTypes",), f"mixes x86_64 and arm64 (Graviton) types {group.instance_types}; "
                                               "one group runs one AMI, so use one architecture")
    if group.ami_type is not None:
        wanted = GPU_AMI_TYPES if group.gpu else CPU_AMI_TYPES
        if group.ami_type not in wanted:
            yield Issue(path + ("amiType",), f"{group.ami_type} does not suit a {'GPU' if group.gpu else 'CPU'} "
                                             f"group; use one of {', '.join(wanted)}")
        elif len(arches) == 1 and ami_architecture(group.ami_type) not in arches:
            fitting = ", ".join(t for t in wanted if ami_architecture(t) in arches)
            yield Issue(path + ("amiType",), f"{group.ami_type} is an {ami_architecture(group.ami_type)} AMI but "
                                             f"the instance types are {arches.pop()}; use one of {fitting}")
    if not group.gpu:
        if group.gpus_per_node is not None:
            yield Issue(path + ("gpusPerNode",), "only applies to GPU groups (`gpu: true`)")
        return
    for index, name in enumerate(group.instance_types):
        known = catalog.lookup(name)
        if known is not None and known.gpus == 0:
            yield Issue(path + ("instanceTypes", index), f"{name} has no GPU; a GPU group needs GPU "
                                                         "instance types (g4dn, g5, g6, g6e, p3, p4d, p5)")
        elif known is None and group.gpus_per_node is None:
            yield Issue(path + ("instanceTypes", index), f"modelplane does not know how many GPUs {name} "
                                                         "has; set gpusPerNode for this group")


def _check_api(name: str, api: ApiConfig, groups: dict[str, NodeGroupConfig], group_names: list[str],
               path: tuple[str | int, ...], cluster: ClusterConfig | None = None) -> Iterator[Issue]:
    images = [(path + ("image",), api.image)] + [(path + ("sidecars", n, "image"), c.image)
                                                 for n, c in api.sidecars.items()]
    if api.proxy.enabled:
        images.append((path + ("proxy", "image"), api.proxy.image))
    for where, image in images:
        last = image.rsplit("/", 1)[-1]
        if "@" not in last and (":" not in last or last.endswith(":latest")):
            yield Issue(where, f"{image!r} needs an explicit tag or digest other than latest "
                               "(e.g. repo/model:1.2.0): a moving tag makes rollouts invisible to Pulumi diffs")
    if MAIN_CONTAINER in api.sidecars:
        yield Issue(path + ("sidecars", MAIN_CONTAINER), f"{MAIN_CONTAINER!r} is the serving container's name; "
                                                         "pick another sidecar name")
    if api.proxy.enabled and PROXY_CONTAINER in api.sidecars:
        yield Issue(path + ("sidecars", PROXY_CONTAINER), f"{PROXY_CONTAINER!r} is the request proxy's name; "
                                                          "pick another sidecar name")
    yield from _check_proxy(api, path)
    yield from _check_autoscaling(api, path, cluster)
    envs = [(path + ("env",), api.env)] + [(path + ("sidecars", n, "env"), c.env) for n, c in api.sidecars.items()]
    for where, env in envs:
        for key_name in env:
            if key_name.startswith("MODELPLANE_"):
                yield Issue(where + (key_name,), "the MODELPLANE_ prefix is reserved for variables modelplane sets")
    scaling = api.autoscaling
    if scaling.min_replicas > scaling.max_replicas:
        yield Issue(path + ("autoscaling", "maxReplicas"),
                    f"maxReplicas {scaling.max_replicas} is less than minReplicas {scaling.min_replicas}")
    for knob in ("upscale_stabilization_period", "downscale_stabilization_period"):
        if duration_seconds(getattr(scaling, knob)) > 3600:
            yield Issue(path + ("autoscaling", to_camel(knob)), "must be at most 1h (the Kubernetes limit)")
    yield from _check_zero_resources(api, path)
    if scaling_metric(api) == "cpu" and _millicores(api.compute.cpu) == 0:
        yield Issue(path + ("compute", "cpu"), "metric cpu scales on a percent of the CPU request, which is 0; "
                                               "request some CPU (e.g. 200m)")
    if scaling_metric(api) == "memory" and api.compute.mem is None:
        yield Issue(path + ("autoscaling", "metric"), "metric memory scales on a percent of the memory "
                                                      "request; set compute.mem")
    surge, unavailable = effective_update_strategy(api)
    if isinstance(unavailable, str) and int(unavailable[:-1]) > 100:
        yield Issue(path + ("updateStrategy", "maxUnavailable"), f"{unavailable} is more than 100%; Kubernetes "
                                                                 "accepts 0% to 100%")
    if surge in (0, "0%") and unavailable in (0, "0%"):
        yield Issue(path + ("updateStrategy",), "maxSurge and maxUnavailable cannot both be 0: the "
                                                "rollout could never make progress")
    strategy = api.update_strategy
    if strategy.min_ready_seconds >= strategy.progress_deadline_seconds:
        yield Issue(path + ("updateStrategy", "progressDeadlineSeconds"),
                    f"{strategy.progress_deadline_seconds} must be greater than minReadySeconds "
                    f"{strategy.min_ready_seconds} (Kubernetes rejects it otherwise)")
    reserved = {SHM_DIR} if api.compute.shm else set()
    taken = {"/", CONFIG_DIR, SOCKET_DIR, SHM_DIR,
             *(w.rstrip("/") or "/" for w in api.writable_paths)}
    for secret, directory in api.secrets.items():
        clean = directory.rstrip("/") or "/"
        if clean in taken:
            yield Issue(path + ("secrets", secret), f"{directory!r} is the root, a writable path, another secret's "
                                                    "directory or one modelplane mounts; use a directory of its own")
        taken.add(clean)
    seen: set[str] = set()
    mounted = {CONFIG_DIR} if api.config_files else set()
    mounted |= {SOCKET_DIR} if api.sidecars else set()
    for index, writable in enumerate(api.writable_paths):
        clean = writable.rstrip("/") or "/"
        if clean == "/" or clean in seen or clean in reserved or clean in mounted:
            reason = "is the root" if clean == "/" else "is listed twice" if clean in seen else \
                "is already the shm mount" if clean in reserved else "is a directory modelplane mounts"
            yield Issue(path + ("writablePaths", index), f"{writable!r} {reason}; list distinct directories")
        seen.add(clean)
    if sum(len(k) + len(v.encode()) for k, v in api.config_files.items()) > 900 * 1024:
        yield Issue(path + ("configFiles",), "the files add up to more than 900 KiB; a ConfigMap holds at most "
                                             "1 MiB: put large artifacts in S3 (modelUri)")
    if api.compute.shm is not None and api.compute.mem is not None and _gib(api.compute.shm) >= _gib(api.compute.mem):
        yield Issue(path + ("compute", "shm"), f"{api.compute.shm} of shared memory counts against the memory "
                                               f"limit {api.compute.mem} and would leave nothing for the server")

    group = groups.get(api.node_group)
    if group is None:
        if api.node_group not in group_names:
            yield _unknown_group(api.node_group, group_names, path)
        return
    gpus = api_gpus(api)
    if gpus > 0:
        if not group.gpu:
            gpu_groups = ", ".join(n for n, g in groups.items() if g.gpu) or "none are declared"
            yield Issue(path + ("nodeGroup",), f"API {name!r} asks for {gpus} GPU(s) but node "
                                               f"group {api.node_group!r} has no GPUs (GPU groups: "
                                               f"{gpu_groups})")
        elif (per_node := gpus_per_node(group)) and gpus > per_node:
            yield Issue(path + ("compute", "gpu"), f"{gpus} GPUs per replica do not fit on a node "
                                                   f"of {api.node_group!r}, which has {per_node}")
    smallest = min((t for t in map(catalog.lookup, group.instance_types) if t), default=None,
                   key=lambda t: (t.vcpus, t.memory_gib))
    if smallest is not None:
        containers = [api.compute, *(c.compute for c in api.sidecars.values())]
        if api.proxy.enabled:
            containers.append(ContainerComputeConfig(cpu=api.proxy.cpu, mem=api.proxy.mem))
        extras = [*(["its sidecars"] if api.sidecars else []), *(["the proxy"] if api.proxy.enabled else [])]
        with_sidecars = f" (with {' and '.join(extras)})" if extras else ""
        cpu = sum(_millicores(c.cpu) for c in containers)
        if cpu > smallest.vcpus * 1000:
            shown = api.compute.cpu if not with_sidecars else f"{cpu:g}m"
            yield Issue(path + ("compute", "cpu"), f"{shown} CPU{with_sidecars} does not fit on a "
                                                   f"{smallest.name} ({smallest.vcpus} vCPU)")
        mem = sum(_gib(c.mem) for c in containers if c.mem is not None)
        if mem > smallest.memory_gib:
            shown = api.compute.mem if not with_sidecars else f"{mem:g}Gi"
            yield Issue(path + ("compute", "mem"), f"{shown}{with_sidecars} does not fit on a {smallest.name} "
                                                   f"({smallest.memory_gib:g} GiB)")


def _check_zero_resources(api: ApiConfig, path: tuple[str | int, ...]) -> Iterator[Issue]:
    """Quantities that are set to nothing: a memory limit of 0, an empty /dev/shm, a proxy with no room."""
    memories = [(path + ("compute", "mem"), api.compute.mem), (path + ("compute", "shm"), api.compute.shm),
                *((path + ("sidecars", n, "compute", "mem"), c.compute.mem) for n, c in api.sidecars.items())]
    if api.proxy.enabled:
        memories.append((path + ("proxy", "mem"), api.proxy.mem))
    for where, mem in memories:
        if mem is not None and _gib(mem) == 0:
            yield Issue(where, f"{mem} is no memory at all (as a limit it would leave the container none); give a "
                               "size such as 512Mi, or leave it unset for no request")
    if api.proxy.enabled and _millicores(api.proxy.cpu) == 0:
        yield Issue(path + ("proxy", "cpu"), f"{api.proxy.cpu} gives the proxy that every request passes no CPU; "
                                             "give it some (default 100m)")
    if api_gpus(api) and _millicores(api.compute.cpu) == 0:
        yield Issue(path + ("compute", "cpu"), f"{api.compute.cpu} CPU on a GPU API: the server that feeds the GPU "
                                               "would run on whatever CPU is left over; request some (e.g. 2)")


def _check_proxy(api: ApiConfig, path: tuple[str | int, ...]) -> Iterator[Issue]:
    if not api.proxy.enabled:
        if "max_queue_length" in api.model_fields_set:
            yield Issue(path + ("maxQueueLength",), "only the proxy enforces a queue length; remove it or "
                                                    "turn the proxy on (proxy.enabled: true)")
        return
    if api.port in (PROXY_PORT, PROXY_METRICS_PORT, PROXY_ADMIN_PORT):
        yield Issue(path + ("port",), f"{api.port} is taken by the proxy in the same pod (it uses {PROXY_PORT}, "
                                      f"{PROXY_METRICS_PORT} and {PROXY_ADMIN_PORT}); pick another port")


_METRIC_TARGETS = {
    "target_in_flight": ("inFlight",),
    "target_rps": ("rps",),
    "target_queue_length": ("queue",),
    "target_utilization": ("cpu", "memory"),
    "custom": ("custom",),
}


def _check_autoscaling(api: ApiConfig, path: tuple[str | int, ...],
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
        queue_name = f"{cluster.name}-{path[-1]}"
        if len(queue_name) > 80:
            yield Issue(path + ("queue",), f"the queue modelplane creates would be named {queue_name!r}, "
                                           f"{len(queue_name)} characters; SQS allows 80: shorten the cluster or "
                                           "API name, or give the url of an existing queue")
    if api.queue is not None and api.queue.url is not None \
            and "visibility_timeout_seconds" in api.queue.model_fields_set:
        yield Issue(path + ("queue", "visibilityTimeoutSeconds"), "applies to a queue modelplane creates; set the "
                                                                   "visibility timeout on the existing queue")


def surge_replicas(api: ApiConfig, replicas: int) -> int:
    """Extra replicas a rollout of ``replicas`` may start (Kubernetes rounds a percent surge up)."""
    surge = effective_update_strategy(api)[0]
    if isinstance(surge, int):
        return surge
    return -(-replicas * int(surge[:-1]) // 100)


@dataclass(frozen=True)
class GpuDemand:
    """GPUs a group's APIs need at peak, and what the group can give."""

    steady: int
    """GPUs of all the group's APIs at maxReplicas."""
    surge: int
    """GPUs of the largest single rollout surge at maxReplicas (rollouts of different APIs rarely overlap)."""
    capacity: int
    """maxSize x GPUs per node."""

    @property
    def fits(self) -> bool:
        return self.steady + self.surge <= self.capacity


def gpu_demand(group_name: str, group: NodeGroupConfig, apis: dict[str, ApiConfig]) -> GpuDemand | None:
    """The GPU demand on ``group`` at peak, or None when it is not a GPU group or no GPU API uses it."""
    on_group = [a for a in apis.values() if a.node_group == group_name and api_gpus(a)]
    per_node = gpus_per_node(group)
    if not per_node or not on_group:
        return None
    return GpuDemand(
        steady=sum(a.autoscaling.max_replicas * api_gpus(a) for a in on_group),
        surge=max(surge_replicas(a, a.autoscaling.max_replicas) * api_gpus(a) for a in on_group),
        capacity=group.max_size * per_node,
    )


def gpu_headroom_warnings(groups: dict[str, NodeGroupConfig], apis: dict[str, ApiConfig]) -> list[str]:
    """GPU groups whose maximum size cannot hold their APIs at maxReplicas plus a rollout's surge.

    At that point a rollout's new replicas stay Pending and, with maxUnavailable 0,
    the rollout stalls until its deadline: ``pulumi up`` fails.
    """
    warnings = []
    for name, group in groups.items():
        demand = gpu_demand(name, group, apis)
        if demand is None or demand.fits:
            continue
        per_node = gpus_per_node(group)
        needed = -(-(demand.steady + demand.surge) // per_node)
        warnings.append(
            f"node group {name!r}: its APIs at maxReplicas use {demand.steady} GPU(s) and a rollout surges "
            f"{demand.surge} more, but maxSize {group.max_size} x {per_node} GPU(s) gives {demand.capacity}; "
            f"a rollout at peak load would stall (raise maxSize to {needed} or lower maxReplicas)")
    return warnings


def _check_partly_valid_api(name: str, entry: dict[str, Any], found: list[Issue],
                            groups: dict[str, NodeGroupConfig], group_names: list[str],
                            path: tuple[str | int, ...], cluster: ClusterConfig | None = None) -> list[Issue]:
    """The cross-field rules of an API with type errors, on the keys that are valid, so one run shows all."""
    bad = {issue.path[len(path)] for issue in found if issue.path[:len(path)] == path and len(issue.path) > len(path)}
    try:
        partial = ApiConfig.model_validate({k: v for k, v in entry.items() if k not in bad})
    except ValidationError:
        # A required key is among the broken ones; the node-group reference can still be checked.
        group = entry.get("nodeGroup")
        if "nodeGroup" not in bad and isinstance(group, str) and group not in group_names:
            return [_unknown_group(group, group_names, path)]
        return []
    return [issue for issue in _check_api(name, partial, groups, group_names, path, cluster)
            if len(issue.path) <= len(path) or issue.path[len(path)] not in bad]


def _unknown_group(group: str, declared: list[str], path: tuple[str | int, ...]) -> Issue:
    valid = ", ".join(declared) or "none are declared"
    return Issue(path + ("nodeGroup",), f"node group {group!r} does not exist in modelplane:nodeGroups "
                                        f"(declared: {valid})")


def _millicores(cpu: str) -> float:
    return float(cpu[:-1]) if cpu.endswith("m") else float(cpu) * 1000


_MEM_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def _gib(mem: str) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", mem)
    assert match is not None
    number, unit = match.groups()
    return float(number) * _MEM_UNITS.get(unit, 1) / 2**30


# --------------------------------------------------------------------------- existing clusters

_CREATED_CLUSTER_KEYS = ("vpc", "endpoint", "system_node_group", "log_types", "deletion_protection")
"""Cluster keys that configure what modelplane creates; an existing cluster keeps its own."""

_CREATED_GROUP_KEYS = ("desired_size", "disk_size_gib", "ami_type")
"""Node-group keys that configure nodes modelplane creates; an existing pool's nodes are what they are."""

_OIDC_KEYS = f"{NAMESPACE}:cluster.existing.oidcProviderArn and {NAMESPACE}:cluster.existing.oidcIssuer"


def _check_existing(cluster: ClusterConfig, groups: dict[str, NodeGroupConfig], apis: dict[str, ApiConfig],
                    region: str | None, secret_keys: Collection[str]) -> Iterator[Issue]:
    """The rules of an estate installed into a cluster that already runs."""
    existing = cluster.existing
    assert existing is not None
    at = (f"{NAMESPACE}:cluster",)
    for knob in _CREATED_CLUSTER_KEYS:
        if knob in cluster.model_fields_set:
            yield Issue(at + (to_camel(knob),), "configures a cluster modelplane creates; an existing cluster "
                                                "keeps its own: remove it (or remove `existing`)")
    sources = [k for k in ("kubeconfig", "kubeconfig_path", "stack_reference") if getattr(existing, k) is not None]
    if len(sources) != 1:
        got = ", ".join(to_camel(k) for k in sources) if sources else "none"
        yield Issue(at + ("existing",), f"needs exactly one of kubeconfig (a secret), kubeconfigPath, "
                                        f"stackReference to reach the cluster; got {got}")
    if isinstance(existing.kubeconfig, str) and f"{NAMESPACE}:cluster" not in secret_keys:
        yield Issue(at + ("existing", "kubeconfig"), "holds the cluster's credentials in plain text; store it "
                                                     "encrypted: pulumi config set --secret --path "
                                                     f"{NAMESPACE}:cluster.existing.kubeconfig < kubeconfig.yaml")
    if (existing.oidc_provider_arn is None) != (existing.oidc_issuer is None):
        missing = "oidcIssuer" if existing.oidc_issuer is None else "oidcProviderArn"
        given = "oidcProviderArn" if missing == "oidcIssuer" else "oidcIssuer"
        yield Issue(at + ("existing", missing), f"is required with {given}: service-account roles need both the "
                                                "provider ARN and its issuer URL")
    oidc = existing.oidc_provider_arn is not None and existing.oidc_issuer is not None
    addons = existing.addons
    if addons.cluster_autoscaler == "install" and (not oidc or region is None):
        yield Issue(at + ("existing", "addons", "clusterAutoscaler"),
                    f"install needs an EKS cluster's OIDC provider ({_OIDC_KEYS}) and aws:region for the "
                    "autoscaler's IAM role; set them, or use present or none")
    prometheus = cluster.prometheus
    if addons.prometheus == "install" and "prometheus" in existing.addons.model_fields_set \
            and prometheus.url is not None:
        yield Issue(at + ("existing", "addons", "prometheus"), "install conflicts with prometheus.url, which names "
                                                               "a Prometheus that is already there; use present "
                                                               "(it runs the Prometheus Operator) or none")
    if addons.prometheus != "install" and prometheus.url is None and "retention" in prometheus.model_fields_set:
        yield Issue(at + ("prometheus", "retention"), "applies to the Prometheus modelplane installs; this "
                                                      f"cluster's is {addons.prometheus}")
    request_apis = [n for n, a in apis.items() if uses_prometheus(a)]
    if addons.prometheus in ("present", "none") and prometheus.url is None and request_apis:
        yield Issue(at + ("prometheus", "url"), f"is required: {', '.join(request_apis)} scale(s) on a request "
                                                f"metric that KEDA reads from Prometheus, and addons.prometheus is "
                                                f"{addons.prometheus}; give the URL KEDA queries (e.g. "
                                                "http://prometheus-operated.monitoring.svc:9090)")
    for name, group in groups.items():
        for knob in _CREATED_GROUP_KEYS:
            if knob in group.model_fields_set:
                yield Issue((f"{NAMESPACE}:nodeGroups", name, to_camel(knob)),
                            "configures nodes modelplane creates; on an existing cluster a node group describes "
                            "a pool that is there (instanceTypes, gpu, capacityType, sizes, labels, taints): "
                            "remove it")
    for name, api in apis.items():
        path = (f"{NAMESPACE}:apis", name)
        if api.model_uri is not None and not oidc:
            yield Issue(path + ("modelUri",), f"reads S3 through a service-account role, which needs the "
                                              f"cluster's IAM OIDC provider: set {_OIDC_KEYS}")
        if api.queue is not None:
            if not oidc:
                yield Issue(path + ("queue",), f"consumes SQS through a service-account role, which needs the "
                                               f"cluster's IAM OIDC provider: set {_OIDC_KEYS}")
            if api.queue.url is None and region is None:
                yield Issue(path + ("queue",), "modelplane creates this queue in aws:region, which is not set; set "
                                               "it or give the url of an existing queue")
        if uses_keda(api) and addons.keda == "none":
            yield Issue(path + ("autoscaling", "metric"), f"{scaling_metric(api)} scales through KEDA, and "
                                                          f"{NAMESPACE}:cluster.existing.addons.keda is none; "
                                                          "install it (install), declare it (present), or scale "
                                                          "on cpu or memory")
        if api_gpus(api) and addons.nvidia_device_plugin == "none":
            yield Issue(path + ("compute", "gpu"), f"GPUs are advertised by the NVIDIA device plugin, and "
                                                   f"{NAMESPACE}:cluster.existing.addons.nvidiaDevicePlugin is "
                                                   "none; use install or present")


def _existing_warnings(cluster: ClusterConfig, apis: dict[str, ApiConfig]) -> list[str]:
    existing = cluster.existing
    assert existing is not None
    queue_apis = [n for n, a in apis.items() if scaling_metric(a) == "queue"]
    if existing.addons.keda == "present" and existing.keda_role_name is None and queue_apis:
        return [f"{', '.join(queue_apis)} scale(s) on SQS depth through the KEDA that is present; its IAM role "
                "needs sqs:GetQueueAttributes on each queue (set cluster.existing.kedaRoleName and modelplane "
                "grants it)"]
    return []
