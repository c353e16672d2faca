"""modelplane: ML model serving on AWS EKS as typed Pulumi components.

Build a whole estate from a stack's config (``Estate`` + ``load_estate``), or
use the parts in your own stacks: ``ServingCluster`` (a new EKS cluster) or
``ExistingCluster``, ``NodeGroup`` / ``GpuNodeGroup`` (or ``KarpenterNodePool``), ``ModelApi`` and
``AutoscalingPolicy``, each with a typed args dataclass, the config models
they take, and ``ClusterContext``, the view of a cluster a ``ModelApi`` runs in.
``run_program`` runs a program of one's own offline, under modelplane's mock engine.
"""

from .autoscaling_policy import AutoscalingPolicy, AutoscalingPolicyArgs, hpa_behavior
from .cluster_context import ClusterContext
from .config import (
    ApiConfig,
    AutoscalingConfig,
    ClusterConfig,
    ConfigError,
    EstateConfig,
    ExistingClusterConfig,
    NodeGroupConfig,
    load_stack_file,
    parse_estate,
)
from .estate import Estate, load_estate
from .existing_cluster import ExistingCluster, ExistingClusterArgs
from .gpu_node_group import GpuNodeGroup
from .karpenter_node_pool import KarpenterNodePool, KarpenterNodePoolArgs
from .model_api import ModelApi, ModelApiArgs
from .node_group import NodeGroup, NodeGroupArgs
from .offline import ProgramRun, run_program
from .platform_reference import PlatformReference
from .placement import Placement
from .serving_cluster import ServingCluster, ServingClusterArgs

__all__ = [
    "ApiConfig",
    "AutoscalingConfig",
    "AutoscalingPolicy",
    "AutoscalingPolicyArgs",
    "ClusterConfig",
    "ClusterContext",
    "ConfigError",
    "Estate",
    "EstateConfig",
    "ExistingCluster",
    "ExistingClusterArgs",
    "ExistingClusterConfig",
    "GpuNodeGroup",
    "KarpenterNodePool",
    "KarpenterNodePoolArgs",
    "ModelApi",
    "ModelApiArgs",
    "NodeGroup",
    "NodeGroupArgs",
    "NodeGroupConfig",
    "Placement",
    "PlatformReference",
    "ProgramRun",
    "ServingCluster",
    "ServingClusterArgs",
    "hpa_behavior",
    "load_estate",
    "load_stack_file",
    "parse_estate",
    "run_program",
]

__version__ = "0.1.0"
