"""The estate config model: what a stack file (``stacks/Pulumi.<stack>.yaml``) may say.

Every field's name, type, default and doc live here once; the YAML keys
(camelCase), the README's config reference and the JSON Schema are generated
from these models. Unknown keys are errors.

Single-field rules (types, ranges, patterns) are pydantic constraints; rules
that relate fields (``minReplicas <= maxReplicas``, "the API's node group
exists", "the GPU API fits on the group's nodes") live in :func:`parse_estate`
so that every problem in a file is reported at once with its key path.

One module per domain, each with its models and the rules that relate their
fields: :mod:`.cluster` (and :mod:`.existing` for a cluster that already runs),
:mod:`.node_groups`, :mod:`.apis` (and :mod:`.network`, who may reach them), :mod:`.autoscaling`,
:mod:`.capacity`, :mod:`.guardrails`;
:mod:`.loading` reads a stack file as Pulumi does, and :mod:`.estate` validates
the whole config map and collects every issue. Everything public is here.
"""

from __future__ import annotations

from ..charts import KUBERNETES_VERSIONS
from ._base import (
    NAMESPACE,
    Cidr,
    ConfigError,
    CpuQuantity,
    DnsLabel,
    Duration,
    EnvName,
    IntOrPercent,
    Issue,
    LabelKey,
    LabelValue,
    MemQuantity,
    duration_seconds,
)
from .apis import (
    ADDON_NAMESPACES,
    CONFIG_DIR,
    KEDA_NAMESPACE,
    MAIN_CONTAINER,
    MONITORING_NAMESPACE,
    PROXY_ADMIN_PORT,
    PROXY_CONTAINER,
    PROXY_IMAGE,
    PROXY_METRICS_PORT,
    PROXY_PORT,
    RESERVED_NAMESPACES,
    RUN_AS_USER,
    SHM_DIR,
    SOCKET_DIR,
    SQS_URL,
    ApiConfig,
    ComputeConfig,
    ContainerComputeConfig,
    ProbeConfig,
    ProxyConfig,
    QueueConfig,
    SidecarConfig,
    StartupProbeConfig,
    UpdateStrategyConfig,
    api_gpus,
    effective_update_strategy,
    image_pull_policy,
    sqs_queue,
    surge_replicas,
)
from .autoscaling import (
    KEDA_METRICS,
    REQUEST_METRICS,
    SCRAPE_INTERVAL_SECONDS,
    AutoscalingConfig,
    CustomMetricConfig,
    has_hpa_tolerance,
    scaling_metric,
    scaling_target,
    uses_keda,
    uses_prometheus,
)
from .capacity import (
    GpuDemand,
    gpu_demand,
    gpu_headroom_warnings,
)
from .cluster import (
    AMP_URL,
    ChartName,
    ChartSourceConfig,
    ClusterConfig,
    EndpointConfig,
    PrometheusConfig,
    SystemNodeGroupConfig,
    VpcConfig,
    amp_workspace,
)
from .estate import (
    EstateConfig,
    parse_estate,
)
from .existing import (
    ADDONS,
    AddonMode,
    ExistingAddonsConfig,
    ExistingClusterConfig,
    SecretValue,
    StackReferenceConfig,
    addon_mode,
)
from .guardrails import (
    GuardrailsConfig,
    gpus_at_max,
)
from .loading import (
    config_from_pulumi,
    load_stack_file,
)
from .network import (
    EgressRule,
    NetworkConfig,
    NetworkPeer,
    in_cluster_namespace,
    scraper_peers,
)
from .node_groups import (
    CPU_AMI_TYPES,
    GPU_AMI_TYPES,
    RESERVED_GROUP,
    NodeGroupConfig,
    TaintConfig,
    ami_architecture,
    default_ami_type,
    gpus_per_node,
)

__all__ = [
    "ADDONS",
    "ADDON_NAMESPACES",
    "AMP_URL",
    "AddonMode",
    "ApiConfig",
    "AutoscalingConfig",
    "CONFIG_DIR",
    "CPU_AMI_TYPES",
    "ChartName",
    "ChartSourceConfig",
    "Cidr",
    "ClusterConfig",
    "ComputeConfig",
    "ConfigError",
    "ContainerComputeConfig",
    "CpuQuantity",
    "CustomMetricConfig",
    "DnsLabel",
    "Duration",
    "EgressRule",
    "EndpointConfig",
    "EnvName",
    "EstateConfig",
    "ExistingAddonsConfig",
    "ExistingClusterConfig",
    "GPU_AMI_TYPES",
    "GpuDemand",
    "GuardrailsConfig",
    "IntOrPercent",
    "Issue",
    "KEDA_METRICS",
    "KEDA_NAMESPACE",
    "KUBERNETES_VERSIONS",
    "LabelKey",
    "LabelValue",
    "MAIN_CONTAINER",
    "MONITORING_NAMESPACE",
    "MemQuantity",
    "NAMESPACE",
    "NetworkConfig",
    "NetworkPeer",
    "NodeGroupConfig",
    "PROXY_ADMIN_PORT",
    "PROXY_CONTAINER",
    "PROXY_IMAGE",
    "PROXY_METRICS_PORT",
    "PROXY_PORT",
    "ProbeConfig",
    "PrometheusConfig",
    "ProxyConfig",
    "QueueConfig",
    "REQUEST_METRICS",
    "RESERVED_GROUP",
    "RESERVED_NAMESPACES",
    "RUN_AS_USER",
    "SCRAPE_INTERVAL_SECONDS",
    "SHM_DIR",
    "SOCKET_DIR",
    "SQS_URL",
    "SecretValue",
    "SidecarConfig",
    "StackReferenceConfig",
    "StartupProbeConfig",
    "SystemNodeGroupConfig",
    "TaintConfig",
    "UpdateStrategyConfig",
    "VpcConfig",
    "addon_mode",
    "ami_architecture",
    "amp_workspace",
    "api_gpus",
    "config_from_pulumi",
    "default_ami_type",
    "duration_seconds",
    "effective_update_strategy",
    "gpu_demand",
    "gpu_headroom_warnings",
    "gpus_at_max",
    "gpus_per_node",
    "has_hpa_tolerance",
    "image_pull_policy",
    "in_cluster_namespace",
    "load_stack_file",
    "parse_estate",
    "scaling_metric",
    "scaling_target",
    "scraper_peers",
    "sqs_queue",
    "surge_replicas",
    "uses_keda",
    "uses_prometheus",
]
