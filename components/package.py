"""modelplane as a Pulumi component package: its four components for any Pulumi language.

``pulumi package add <repo>/components`` runs ``components/__main__.py``, which hosts the classes
here with the SDK's component provider host; the SDK infers the package schema from their
annotations. Each class takes plain inputs a YAML or TypeScript program can write, validates the
spec with the same config model (and the same error messages) as a stack file, and builds the
Python component of the same name as its one child: a package ``ModelApi`` holds a
:class:`modelplane.ModelApi`, and so on. The spec types come from :mod:`modelplane.package_types`,
generated from the config models by :func:`types_source`, so a key's name, type and doc live in
one place.

No ``from __future__ import annotations`` here: the schema inference reads annotations at run
time and takes no strings.
"""

import ipaddress
import types
import typing
from typing import Any, Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from typing_extensions import NotRequired, Required

from . import autoscaling_policy as _autoscaling_policy
from . import gpu_node_group as _gpu_node_group
from . import model_api as _model_api
from . import serving_cluster as _serving_cluster
from .cluster_context import ClusterContext, kubernetes_provider
from .config import ApiConfig, AutoscalingConfig, ClusterConfig, ConfigError, Issue, NetworkPeer, NodeGroupConfig
from .config import apis as _apis
from .config import autoscaling as _autoscaling
from .config import cluster as _cluster
from .config import network as _network
from .config import traffic as _traffic
from .config.estate import _validate
from .config.node_groups import TaintConfig
from .node_group import NodeGroupArgs
from .package_types import ApiSpec, AutoscalingSpec, ClusterSpec, NetworkPeerSpec, NodeGroupSpec, TaintSpec
from .placement import GPU_RESOURCE, NODE_GROUP_LABEL, Placement, Taint

__all__ = ["COMPONENTS", "PACKAGE", "SPEC_TYPES", "AutoscalingPolicy", "AutoscalingPolicyArgs", "GpuNodeGroup",
           "GpuNodeGroupArgs", "ModelApi", "ModelApiArgs", "NodePlacement", "ServingCluster", "ServingClusterArgs",
           "main", "stack_keys", "types_source"]

PACKAGE = "modelplane"
"""The package name: type tokens are ``modelplane:index:<Class>``, as the Python components'."""


class NodePlacement(TypedDict):
    """The nodes an API's replicas run on, as those nodes are labelled and tainted."""

    group: str
    """Name of the node group (a ``GpuNodeGroup``'s ``group``, or a pool of an existing cluster). Required."""
    labels: NotRequired[dict[str, str]]
    """Labels the group's nodes carry; the replicas select on all of them. Default: ``modelplane.io/node-group: <group>``."""
    taints: NotRequired[list[TaintSpec]]
    """Taints the group's nodes carry; the replicas tolerate each. Default: none (a GPU group's ``nvidia.com/gpu`` taint is added with ``gpu``)."""
    gpu: NotRequired[bool]
    """The nodes have NVIDIA GPUs and the ``nvidia.com/gpu: true`` NoSchedule taint. Default: false."""
    instance_types: NotRequired[list[str]]
    """EC2 instance types of the nodes: a replica that fits on none of them (CPU, memory, GPUs) is refused. Default: not checked."""


class ModelApiArgs(TypedDict):
    """Inputs of the package's ``ModelApi``."""

    spec: ApiSpec
    """The API, with the keys of a stack file's ``modelplane:apis`` entry (its node group is ``placement.group``). Required."""
    placement: NodePlacement
    """The node group the replicas run on. Required."""
    cluster_name: str
    """The cluster's name: label ``app.kubernetes.io/part-of``, prefix of the SQS queues modelplane creates. Required."""
    kubeconfig: NotRequired[pulumi.Input[str]]
    """Kubeconfig of the cluster (kept secret). Default: the program's default Kubernetes provider."""
    kubernetes_version: NotRequired[str]
    """Kubernetes minor version of the control plane (``1.33``). Default: unknown (version-gated fields are not used)."""
    region: NotRequired[str]
    """AWS region of the cluster, for queues and KEDA's SQS scaler. Default: none (a cluster outside AWS)."""
    oidc_provider_arn: NotRequired[pulumi.Input[str]]
    """ARN of the cluster's IAM OIDC provider, for the API's service-account role (``modelUri``). Default: none."""
    oidc_provider_url: NotRequired[pulumi.Input[str]]
    """Issuer URL of that OIDC provider. Default: none."""
    prometheus_url: NotRequired[str]
    """Prometheus KEDA queries for request metrics (``inFlight``, ``rps``). Default: none (scale on ``cpu``)."""
    pod_monitors: NotRequired[bool]
    """A Prometheus Operator runs in the cluster: the API gets a PodMonitor for its metrics. Default: false."""
    metrics_scrapers: NotRequired[list[NetworkPeerSpec]]
    """Who scrapes the API's metrics port (its NetworkPolicy admits them there). Default: nobody."""
    keda_role_name: NotRequired[pulumi.Input[str]]
    """IAM role of the KEDA operator, granted read access to the depth of the queue the API consumes. Default: none (grant it yourself)."""
    load_balancer_cidrs: NotRequired[list[str]]
    """Where a load balancer's traffic to an exposed API comes from (the VPC's CIDR); its NetworkPolicy admits it. Default: none."""
    namespace: NotRequired[str]
    """Namespace to create and run in. Default: the API's name."""
    labels: NotRequired[dict[str, str]]
    """Extra labels for every object (never used in selectors). Default: ``app.kubernetes.io/part-of: <clusterName>``."""
    tags: NotRequired[dict[str, str]]
    """AWS tags for the API's IAM role and queue. Default: none."""


class ModelApi(pulumi.ComponentResource):
    """One model served as an HTTP API: Namespace, Deployment, Service, NetworkPolicy, PodDisruptionBudget and autoscaling."""

    url: pulumi.Output[str]
    """In-cluster URL of the API."""
    namespace: pulumi.Output[str]
    """Namespace the API runs in."""
    external_url: Optional[pulumi.Output[str]]
    """URL through the load balancer of an exposed API; unset when it is not exposed."""

    def __init__(self, name: str, args: ModelApiArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        source = f"modelplane:index:ModelApi {name!r}"
        issues: list[Issue] = []  # every input's problems, then raised together
        placement = _placement(args["placement"], issues)
        spec = _checked(ApiConfig, {**stack_keys(args["spec"], ApiSpec), "nodeGroup": args["placement"]["group"]},
                        ("spec",), issues)
        scrapers = [_checked(NetworkPeer, stack_keys(peer, NetworkPeerSpec), ("metricsScrapers", i), issues)
                    for i, peer in enumerate(args.get("metrics_scrapers") or [])]
        if issues:
            raise ConfigError(source, issues, "its inputs")
        cluster = ClusterContext(
            name=args["cluster_name"], kubernetes_version=args.get("kubernetes_version"),
            region=args.get("region"), oidc_provider_arn=args.get("oidc_provider_arn"),
            oidc_provider_url=args.get("oidc_provider_url"), prometheus_url=args.get("prometheus_url"),
            pod_monitors=bool(args.get("pod_monitors", False)), keda_role_name=args.get("keda_role_name"),
            metrics_scrapers=scrapers, load_balancer_cidrs=list(args.get("load_balancer_cidrs") or []))
        # The Python component's rules, with the package's input names for what the cluster lacks.
        issues = _model_api.api_issues(name, spec, placement, cluster, context_key=lambda key: (to_camel(key),))
        if issues:
            raise ConfigError(source, issues, "its inputs")
        super().__init__("modelplane:index:ModelApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster.provider = _provider(name, args.get("kubeconfig"), child)
        api = _model_api.ModelApi(name, _model_api.ModelApiArgs(
            spec=spec, placement=placement, cluster=cluster, namespace=args.get("namespace"),
            labels=dict(args.get("labels") or {}), tags=dict(args.get("tags") or {})), opts=child)
        self.url = api.url
        self.namespace = api.namespace
        self.external_url = api.external_url
        self.register_outputs({"url": self.url, "namespace": self.namespace,
                               **({"external_url": self.external_url} if self.external_url is not None else {})})


class AutoscalingPolicyArgs(TypedDict):
    """Inputs of the package's ``AutoscalingPolicy``."""

    target: str
    """Name of the Deployment to scale. Required."""
    namespace: str
    """Namespace of the Deployment. Required."""
    spec: AutoscalingSpec
    """The knobs, with the keys of a stack file's ``autoscaling``; the metric is ``cpu`` or ``memory`` (a ``ModelApi`` resolves the others' sources). Required."""
    kubeconfig: NotRequired[pulumi.Input[str]]
    """Kubeconfig of the cluster (kept secret). Default: the program's default Kubernetes provider."""
    kubernetes_version: NotRequired[str]
    """The cluster's Kubernetes minor version; HPA tolerances need 1.35. Default: unknown."""
    labels: NotRequired[dict[str, str]]
    """Labels for the rendered objects. Default: none."""


class AutoscalingPolicy(pulumi.ComponentResource):
    """Scales one Deployment between ``minReplicas`` and ``maxReplicas`` on CPU or memory utilisation (a HorizontalPodAutoscaler)."""

    hpa_name: pulumi.Output[str]
    """Name of the HorizontalPodAutoscaler that scales the Deployment."""

    def __init__(self, name: str, args: AutoscalingPolicyArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        source = f"modelplane:index:AutoscalingPolicy {name!r}"
        spec = _validated(AutoscalingConfig, stack_keys(args["spec"], AutoscalingSpec), source)
        if spec.metric not in (None, "cpu", "memory"):
            raise ConfigError(source, [Issue(("spec", "metric"), f"is {spec.metric!r}; a standalone "
                                              "AutoscalingPolicy scales on cpu or memory (a ModelApi scales on "
                                              "the others, whose metric source it resolves)")], "its inputs")
        super().__init__("modelplane:index:AutoscalingPolicy", name, None, opts)
        provider = _provider(name, args.get("kubeconfig"), pulumi.ResourceOptions(parent=self))
        policy = _autoscaling_policy.AutoscalingPolicy(name, _autoscaling_policy.AutoscalingPolicyArgs(
            target=args["target"], namespace=args["namespace"], spec=spec, labels=dict(args.get("labels") or {}),
            kubernetes_version=args.get("kubernetes_version")),
            opts=pulumi.ResourceOptions(parent=self, providers=[provider] if provider is not None else None))
        self.hpa_name = policy.hpa_name
        self.register_outputs({"hpa_name": self.hpa_name})


class GpuNodeGroupArgs(TypedDict):
    """Inputs of the package's ``GpuNodeGroup``."""

    cluster: eks.Cluster
    """The EKS cluster the nodes join (a ``ServingCluster``'s ``cluster``). Required."""
    node_role: aws.iam.Role
    """IAM role of the nodes (a ``ServingCluster``'s ``nodeRole``). Required."""
    subnet_ids: pulumi.Input[list[str]]
    """Subnets the nodes are placed in (a ``ServingCluster``'s ``privateSubnetIds``). Required."""
    spec: NodeGroupSpec
    """The group, with the keys of a stack file's ``modelplane:nodeGroups`` entry (``gpu`` is implied). Required."""
    group: NotRequired[str]
    """Name of the group (label value of ``modelplane.io/node-group``). Default: the resource name."""
    tags: NotRequired[dict[str, str]]
    """AWS tags for the node group, its launch template, instances and volumes. Default: none."""


class GpuNodeGroup(pulumi.ComponentResource):
    """An EKS managed node group of NVIDIA GPU nodes: NVIDIA AMI, ``nvidia.com/gpu`` taint and labels, hardened launch template."""

    labels: pulumi.Output[dict[str, str]]
    """Kubernetes labels every node of the group carries (a ``ModelApi``'s ``placement.labels``)."""
    gpus_per_node: pulumi.Output[int]
    """GPUs each node advertises."""

    def __init__(self, name: str, args: GpuNodeGroupArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        source = f"modelplane:index:GpuNodeGroup {name!r}"
        spec = _validated(NodeGroupConfig, {**stack_keys(args["spec"], NodeGroupSpec), "gpu": True}, source)
        super().__init__("modelplane:index:GpuNodeGroup", name, None, opts)
        group = _gpu_node_group.GpuNodeGroup(name, NodeGroupArgs(
            cluster=args["cluster"], node_role=args["node_role"], subnet_ids=args["subnet_ids"], spec=spec,
            group=args.get("group", ""), tags=dict(args.get("tags") or {})), opts=pulumi.ResourceOptions(parent=self))
        self.labels = group.labels
        self.gpus_per_node = pulumi.Output.from_input(group.gpus_per_node)
        self.register_outputs({"labels": self.labels, "gpus_per_node": self.gpus_per_node})


class ServingClusterArgs(TypedDict):
    """Inputs of the package's ``ServingCluster``."""

    spec: ClusterSpec
    """The cluster, with the keys of a stack file's ``modelplane:cluster`` (a new EKS cluster in a new VPC). Required."""
    region: str
    """AWS region (used by the cluster autoscaler). Required."""
    nvidia_device_plugin: NotRequired[bool]
    """Install the NVIDIA device plugin (AL2023 NVIDIA AMIs need it). Default: false."""
    cluster_autoscaler: NotRequired[bool]
    """Install the cluster autoscaler, which scales node groups (from zero too). Default: true."""
    keda: NotRequired[bool]
    """Install KEDA, which scales APIs on requests and queues, and to zero. Default: false."""
    prometheus: NotRequired[bool]
    """Install kube-prometheus-stack (Prometheus Operator and a Prometheus that scrapes every PodMonitor). Default: false."""
    load_balancer_controller: NotRequired[bool]
    """Install the AWS Load Balancer Controller, which makes the load balancers of exposed APIs. Default: false."""


class ServingCluster(pulumi.ComponentResource):
    """An EKS cluster ready to serve models: VPC, KMS-encrypted secrets, OIDC provider, system node group and add-ons."""

    cluster: eks.Cluster
    """The pulumi-eks cluster (a ``GpuNodeGroup``'s ``cluster``)."""
    node_role: aws.iam.Role
    """IAM role shared by the managed node groups (a ``GpuNodeGroup``'s ``nodeRole``)."""
    cluster_name: pulumi.Output[str]
    """The EKS cluster name."""
    kubeconfig: pulumi.Output[str]
    """Kubeconfig (JSON) for the cluster; a secret."""
    oidc_provider_arn: pulumi.Output[str]
    """ARN of the cluster's IAM OIDC provider, for service-account roles."""
    oidc_provider_url: pulumi.Output[str]
    """Issuer URL of the cluster's OIDC provider."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Subnets node groups go in."""

    def __init__(self, name: str, args: ServingClusterArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        source = f"modelplane:index:ServingCluster {name!r}"
        spec = _validated(ClusterConfig, stack_keys(args["spec"], ClusterSpec), source)
        super().__init__("modelplane:index:ServingCluster", name, None, opts)
        inner = _serving_cluster.ServingCluster(name, _serving_cluster.ServingClusterArgs(
            spec=spec, region=args["region"], nvidia_device_plugin=bool(args.get("nvidia_device_plugin", False)),
            cluster_autoscaler=bool(args.get("cluster_autoscaler", True)), keda=bool(args.get("keda", False)),
            prometheus=bool(args.get("prometheus", False)),
            load_balancer_controller=bool(args.get("load_balancer_controller", False))),
            opts=pulumi.ResourceOptions(parent=self))
        self.cluster = inner.cluster
        self.node_role = inner.node_role
        self.cluster_name = inner.cluster_name
        self.kubeconfig = inner.kubeconfig
        self.oidc_provider_arn = inner.oidc_provider_arn
        self.oidc_provider_url = inner.oidc_provider_url
        self.private_subnet_ids = inner.private_subnet_ids
        self.register_outputs({
            "cluster": self.cluster, "node_role": self.node_role, "cluster_name": self.cluster_name,
            "kubeconfig": self.kubeconfig, "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_provider_url": self.oidc_provider_url, "private_subnet_ids": self.private_subnet_ids,
        })


COMPONENTS: list[type[pulumi.ComponentResource]] = [ServingCluster, GpuNodeGroup, ModelApi, AutoscalingPolicy]
"""What the package hosts, in the order of the Python API."""


def main() -> None:
    """Serve the package: the entry point of ``components/__main__.py``, run by Pulumi's Python language host."""
    try:
        from pulumi.provider.experimental import component_provider_host
    except ImportError as missing:
        # modelplane itself runs on older SDKs; only serving the package needs the provider host.
        raise SystemExit(f"modelplane's component package needs a pulumi SDK with "
                         f"pulumi.provider.experimental (tested with 3.272): {missing}") from None

    from . import __version__

    component_provider_host(components=COMPONENTS, name=PACKAGE, version=__version__)


def stack_keys(value: Any, spec_type: Any) -> Any:
    """``value`` (Python keys of ``spec_type``, a TypedDict) with a stack file's keys, nested types too.

    Only the TypedDict's own keys are renamed (``max_concurrency`` -> ``maxConcurrency``); map
    contents such as ``env`` keep theirs. A key it does not declare keeps its spelling, so the
    config model reports it as a stack file's unknown key.
    """
    hints = typing.get_type_hints(spec_type)
    out: dict[str, Any] = {}
    for key, item in value.items():
        hint = hints.get(key)
        if typing.get_origin(hint) in (Required, NotRequired):
            hint = typing.get_args(hint)[0]
        inner = typing.get_args(hint)[-1] if typing.get_origin(hint) in (list, dict) else None
        if typing.is_typeddict(hint) and isinstance(item, dict):
            item = stack_keys(item, hint)
        elif typing.get_origin(hint) is list and typing.is_typeddict(inner) and isinstance(item, list):
            item = [stack_keys(i, inner) if isinstance(i, dict) else i for i in item]
        elif typing.get_origin(hint) is dict and typing.is_typeddict(inner) and isinstance(item, dict):
            # A map of specs (an API's sidecars): its keys are names, its values specs.
            item = {k: stack_keys(v, inner) if isinstance(v, dict) else v for k, v in item.items()}
        out[to_camel(key) if key in hints else key] = item
    return out


def _validated(model: type[BaseModel], value: dict[str, Any], source: str,
               path: tuple[Any, ...] = ("spec",)) -> Any:
    """``value`` validated by ``model``, the stack file's model; its issues (under ``path``) raised together."""
    issues: list[Issue] = []
    valid = _checked(model, value, path, issues)
    if issues:
        raise ConfigError(source, issues, "its inputs")
    return valid


def _checked(model: type[BaseModel], value: dict[str, Any], path: tuple[Any, ...], issues: list[Issue]) -> Any:
    """``value`` validated by ``model`` as the engine sent it (None if invalid); its problems added to ``issues``."""
    return _validate(model, _whole_numbers(value), path, issues)  # type: ignore[arg-type]


def _whole_numbers(value: Any) -> Any:
    # The engine sends every number as a float; the models are strict, and a count is an int.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def _placement(args: NodePlacement, issues: list[Issue]) -> Placement:
    """The placement the inputs describe, its taints and instance types validated as a stack file's node group's.

    Their problems are added to ``issues``.
    """
    taints = [_checked(TaintConfig, stack_keys(t, TaintSpec), ("placement", "taints", i), issues)
              for i, t in enumerate(args.get("taints") or [])]
    gpu = bool(args.get("gpu", False))
    labels = dict(args.get("labels") or {})
    gpu_taint = [Taint(GPU_RESOURCE, "true", "NoSchedule")] if gpu else []
    # A GPU pool's taint listed in ``taints`` as well is still one toleration.
    all_taints = dict.fromkeys(gpu_taint + [Taint(t.key, t.value, t.effect) for t in taints if t is not None])
    # With its instance types, the pool is described as a stack file describes an existing cluster's pool.
    pool = None if args.get("instance_types") is None else _checked(
        NodeGroupConfig, {"instanceTypes": args["instance_types"], "gpu": gpu}, ("placement",), issues)
    return Placement(group=args["group"], labels=labels or {NODE_GROUP_LABEL: args["group"]},
                     taints=tuple(all_taints), gpu=gpu, selector=labels or None, spec=pool)


def _provider(name: str, kubeconfig: Optional[pulumi.Input[str]], opts: pulumi.ResourceOptions) -> Any:
    """The Kubernetes provider for ``kubeconfig`` (None without one: the default provider applies)."""
    if kubeconfig is None:
        return None
    return kubernetes_provider(f"{name}-k8s", pulumi.Output.secret(kubeconfig), opts)


# The package's spec types: the config model each mirrors, the keys it leaves out (and why), its doc
# (None: the model's). Every other key of the model is a key of the spec type, in the model's order,
# so a field added to a model reaches the package when package_types.py is regenerated.
_SPECS: dict[str, tuple[type[BaseModel], tuple[str, ...], Optional[str]]] = {
    # An API's node group is the package ModelApi's placement input.
    "ApiSpec": (ApiConfig, ("node_group",),
                "One model served as an HTTP API, with the keys of a stack file's ``modelplane:apis`` entry."),
    "ComputeSpec": (_apis.ComputeConfig, (), None),
    "ContainerComputeSpec": (_apis.ContainerComputeConfig, (), None),
    "ProbeSpec": (_apis.ProbeConfig, (), "An HTTP probe against the API's port."),
    "StartupProbeSpec": (_apis.StartupProbeConfig, (), None),
    "SidecarSpec": (_apis.SidecarConfig, (), None),
    "ProxySpec": (_apis.ProxyConfig, (), None),
    "QueueSpec": (_apis.QueueConfig, (), None),
    "UpdateStrategySpec": (_apis.UpdateStrategyConfig, (), None),
    "NetworkSpec": (_network.NetworkConfig, (), None),
    "NetworkPeerSpec": (NetworkPeer, (), None),
    "EgressRuleSpec": (_network.EgressRule, (), None),
    "ExposeSpec": (_traffic.ExposeConfig, (), None),
    "CertificateSpec": (_traffic.CertificateConfig, (), None),
    "CanarySpec": (_traffic.CanaryConfig, (), None),
    "ShadowSpec": (_traffic.ShadowConfig, (), None),
    "AutoscalingSpec": (AutoscalingConfig, (), None),
    "CustomMetricSpec": (_autoscaling.CustomMetricConfig, (), None),
    # A GpuNodeGroup is an EKS managed node group of GPU nodes: ``gpu`` is implied and Karpenter's
    # ``disruption`` does not apply.
    "NodeGroupSpec": (NodeGroupConfig, ("gpu", "disruption"),
                      "One EKS managed node group, with the keys of a stack file's ``modelplane:nodeGroups`` entry."),
    "TaintSpec": (TaintConfig, (), None),
    # A package ServingCluster creates an EKS cluster with managed node groups: an ``existing`` cluster
    # is reached with a ModelApi's kubeconfig instead, and Karpenter's NodePools are the estate's.
    "ClusterSpec": (ClusterConfig, ("existing", "capacity_engine"),
                    "The cluster, with the keys of a stack file's ``modelplane:cluster``."),
    "VpcSpec": (_cluster.VpcConfig, (), None),
    "EndpointSpec": (_cluster.EndpointConfig, (), None),
    "SystemNodeGroupSpec": (_cluster.SystemNodeGroupConfig, (), None),
    "PrometheusSpec": (_cluster.PrometheusConfig, (), None),
    "ChartSourceSpec": (_cluster.ChartSourceConfig, (), None),
}

SPEC_TYPES: dict[str, tuple[type[BaseModel], tuple[str, ...], str]] = {
    name: (model, tuple(k for k in model.model_fields if k not in without),
           doc or (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "))
    for name, (model, without, doc) in _SPECS.items()
}
"""Each spec type's config model, its keys (in the model's order) and its doc."""


def types_source() -> str:
    """The text of ``components/package_types.py``: a TypedDict per :data:`SPEC_TYPES` entry, from its model."""
    names = {model: name for name, (model, _, _) in SPEC_TYPES.items()}
    classes: dict[str, list[str]] = {}
    started: set[str] = set()

    def emit(name: str) -> None:
        # A class after the classes its keys use: the schema inference evaluates the annotations.
        if name in classes or name in started:
            return
        started.add(name)
        model, keys, doc = SPEC_TYPES[name]
        body = ["", "", f"class {name}(TypedDict):", f'    """{_escape(doc)}"""', ""]
        for key in keys:
            field = model.model_fields[key]
            for used in _spec_types_in(field.annotation, names):
                emit(used)
            wrap = "Required" if field.is_required() else "NotRequired"
            body.append(f"    {key}: {wrap}[{_type_text(field.annotation, names)}]")
            body.append(f'    """{_escape(field.description or "")}"""')
        classes[name] = body

    for name in SPEC_TYPES:
        emit(name)
    text = "\n".join(line for body in classes.values() for line in body)
    lines = [
        '"""Generated by ``modelplane.package.types_source()`` from the config models; do not edit by hand.',
        "",
        "The keys, types and docs of the package's spec inputs, one TypedDict per config model, so that",
        "Pulumi's schema inference (which reads class source) sees them. ``tests/test_package.py`` fails",
        'when this file and the models disagree.',
        '"""',
        "",
        "from typing import Any, TypedDict" if "Any]" in text or "[Any" in text else "from typing import TypedDict",
        "",
        "from typing_extensions import NotRequired, Required",
        "",
        "__all__ = [" + ", ".join(f'"{n}"' for n in sorted(SPEC_TYPES)) + "]",
    ]
    return "\n".join(lines) + text + "\n"


def _spec_types_in(annotation: Any, names: dict[type[BaseModel], str]) -> list[str]:
    """The spec types an annotation uses."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [names[annotation]] if annotation in names else []
    return [used for arg in typing.get_args(annotation) for used in _spec_types_in(arg, names)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _type_text(annotation: Any, names: dict[type[BaseModel], str]) -> str:
    """The TypedDict annotation of a config field: its plain type, nested models as their spec types."""
    origin, targs = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(targs[0], names)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in targs if a is not type(None)]
        if len(rest) == 1:
            return _type_text(rest[0], names)
        # A count or a percent (``maxSurge: 1`` or ``"25%"``): a schema type has no unions, so the
        # value is Any and the config model checks it, as it checks a stack file's.
        if all(_type_text(a, names) in ("int", "str") for a in rest):
            return "Any"
        raise TypeError(f"no plain type for {annotation}")
    if origin is typing.Literal:
        kinds = {type(a) for a in targs}
        if kinds != {str}:
            raise TypeError(f"no plain type for {annotation}")
        return "str"
    if origin is list or origin is tuple:
        return f"list[{_type_text(targs[0], names)}]"
    if origin is dict:
        return f"dict[str, {_type_text(targs[1], names)}]"
    if annotation in (str, int, float, bool):
        return annotation.__name__
    if annotation is ipaddress.IPv4Network:
        return "str"  # a CIDR block, as a stack file writes it
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in names:
            raise TypeError(f"{annotation.__name__} has no spec type")
        return names[annotation]
    raise TypeError(f"no plain type for {annotation}")
