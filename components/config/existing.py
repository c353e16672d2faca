"""``modelplane:cluster.existing``: a cluster that already runs, its add-ons, and the rules of an estate installed into it."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic.alias_generators import to_camel, to_snake

from ..charts import ADDON_CHARTS
from ._base import NAMESPACE, Cidr, Issue, LabelKey, LabelValue, _Model
from .apis import api_gpus
from .autoscaling import scaling_metric, uses_keda, uses_prometheus
from .node_groups import default_ami_type

if TYPE_CHECKING:
    from .apis import ApiConfig
    from .cluster import ClusterConfig
    from .node_groups import NodeGroupConfig


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
    load_balancer_controller: AddonMode = "install"
    """The AWS Load Balancer Controller, which makes the load balancers of APIs with ``expose``, installed when one is exposed (``install`` needs ``oidcProviderArn``, ``oidcIssuer``, ``vpcId`` and ``aws:region``, and ``cluster.name`` must be the EKS cluster's name). ``present``: one runs already (with the ``alb`` IngressClass); ``none``: exposed APIs are errors."""


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
    vpc_id: str | None = Field(None, pattern=r"^vpc-[0-9a-f]+$")
    """Id of the VPC the cluster runs in, for the AWS Load Balancer Controller modelplane installs: it cannot look it up from the instance metadata, which a hop limit of 1 keeps from pods. Required when it is installed (an API has ``expose`` and ``addons.loadBalancerController`` is ``install``)."""
    keda_role_name: str | None = Field(None, pattern=r"^[A-Za-z0-9+=,.@_-]{1,64}$")
    """IAM role of a KEDA that is ``present``: each queue API grants it read access to its queue's depth. Unset: grant that yourself."""
    addon_node_selector: dict[LabelKey, LabelValue] = {}
    """Node labels that the add-ons modelplane installs are pinned to (your system pool's). Unset: any node they tolerate."""
    addons: ExistingAddonsConfig = ExistingAddonsConfig()
    """Which add-ons modelplane installs and which are already there."""
    vpc_cidr: Cidr | None = None
    """CIDR of the cluster's VPC (or node network): where its load balancers' traffic comes from, which the NetworkPolicies of exposed APIs admit on the proxy port. Required when an API has ``expose``, unless ``vpcId`` is given (then looked up)."""


ADDONS = tuple(ADDON_CHARTS)
"""The add-ons an estate may install, by their key in ``existing.addons``."""

assert set(ADDONS) == {f.alias for f in ExistingAddonsConfig.model_fields.values()}


def addon_mode(cluster: ClusterConfig, node_groups: Mapping[str, NodeGroupConfig], addon: str) -> str:
    """What the cluster does about ``addon`` (a key of :data:`ADDONS`): ``install``, ``present`` or ``none``.

    On a cluster modelplane creates: the autoscaler, KEDA and the AWS Load Balancer Controller are
    installed (KEDA and the controller when an API needs them), Prometheus unless ``prometheus.url``
    names another, the device plugin when a GPU group runs the AL2023 NVIDIA AMI (Bottlerocket
    ships its own). On an existing cluster: what ``existing.addons`` says, except that a
    Prometheus named by ``prometheus.url`` is not installed.
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
    exposed = sorted(n for n, a in apis.items() if a.expose is not None)
    # Installing the controller needs vpcId, and with none exposing is refused: both are said elsewhere.
    if exposed and existing.vpc_cidr is None and existing.vpc_id is None \
            and addon_mode(cluster, groups, "loadBalancerController") == "present":
        yield Issue(at + ("existing", "vpcCidr"), f"is required: {', '.join(exposed)} take(s) traffic through a load "
                                                  "balancer, whose source addresses the APIs' NetworkPolicies admit; "
                                                  "give the VPC's CIDR (e.g. 10.0.0.0/16), or its vpcId to look it up")
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
    exposed = [n for n, a in apis.items() if a.expose is not None]
    if exposed and addons.load_balancer_controller == "install":
        if not oidc or region is None:
            yield Issue(at + ("existing", "addons", "loadBalancerController"),
                        f"install needs an EKS cluster's OIDC provider ({_OIDC_KEYS}) and aws:region for the "
                        f"controller's IAM role ({', '.join(exposed)} have expose); set them, or use present if "
                        "the cluster runs the controller already")
        if existing.vpc_id is None:
            yield Issue(at + ("existing", "vpcId"),
                        f"is required: modelplane installs the AWS Load Balancer Controller for "
                        f"{', '.join(exposed)} (expose), and the controller cannot look the VPC up from the "
                        "instance metadata; give the cluster's VPC id (vpc-...), or set "
                        "addons.loadBalancerController to present if the cluster runs the controller already")
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
        if api.expose is not None and addons.load_balancer_controller == "none":
            yield Issue(path + ("expose",), f"load balancers are made by the AWS Load Balancer Controller, and "
                                            f"{NAMESPACE}:cluster.existing.addons.loadBalancerController is none; "
                                            "install it (install), declare the one that runs (present), or "
                                            "remove expose")
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
