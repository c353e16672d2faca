"""``ModelApi``: one model served as an HTTP API inside the cluster.

Children: a Namespace (Pod Security "restricted" enforced), a ServiceAccount,
the Deployment (the primary child, named after the API), a ClusterIP Service,
a NetworkPolicy (unless ``network.isolated`` is off), a PodDisruptionBudget and
an :class:`AutoscalingPolicy`; with the request
proxy on (the default) its content-named Envoy ConfigMap and, when the
cluster runs Prometheus, a PodMonitor; an IAM role when the API reads S3 or
consumes SQS; the SQS queue when modelplane creates it; a
:class:`~modelplane.second_version.SecondVersion` for a canary or a shadow. Names and selectors
derive only from the API's name, never from its image, env or replica counts,
so every such change is an in-place rolling update in the Pulumi diff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from . import proxy
from .exposure import READINESS_GATE_LABEL, expose_api
from .network_policy import api_network_policy_spec
from ._resource_options import depends_on_list
from .autoscaling_policy import AutoscalingPolicy, AutoscalingPolicyArgs, MetricSource
from .cluster_context import APPLY_ANNOTATIONS, ClusterContext
from .config import (
    CONFIG_DIR,
    MAIN_CONTAINER,
    PROXY_METRICS_PORT,
    SCRAPE_INTERVAL_SECONDS,
    SHM_DIR,
    SOCKET_DIR,
    ApiConfig,
    ClusterConfig,
    ConfigError,
    ContainerComputeConfig,
    Issue,
    ProbeConfig,
    StartupProbeConfig,
    VersionKind,
    amp_workspace,
    api_gpus,
    effective_update_strategy,
    image_pull_policy,
    scaling_metric,
    scaling_target,
    sqs_queue,
    surge_replicas,
    uses_keda,
    version_name,
)
from .irsa import s3_read_policy, service_account_role, sqs_consume_policy, sqs_depth_policy, sqs_queue_arn
from .config.apis import _check_api
from .config.schedulability import check_pod_fit
from .placement import GPU_RESOURCE, Placement

__all__ = ["API_LABEL", "ModelApi", "ModelApiArgs", "SERVICE_PORT", "api_issues"]

API_LABEL = "modelplane.io/api"
"""The selector label: the API's name, and nothing that a rollout changes."""

SERVICE_PORT = 80
"""Port of the API's Service; it forwards to the container's named ``http`` port."""

PRE_STOP_SLEEP_SECONDS = 5
"""How long a terminating replica keeps serving before it gets SIGTERM."""

TERMINATION_GRACE_SECONDS = 30
"""Time from the start of termination to SIGKILL: the pre-stop sleep plus time to finish in-flight requests."""

ROLLOUT_WAIT_MARGIN_SECONDS = 60
"""How much longer than Kubernetes' own deadlines ``pulumi up`` waits for a rollout."""


def rollout_batches(spec: ApiConfig) -> int:
    """Steps a rollout at ``maxReplicas`` takes: each replaces at most maxSurge + maxUnavailable replicas."""
    replicas = spec.autoscaling.max_replicas
    _, unavailable = effective_update_strategy(spec)
    down = unavailable if isinstance(unavailable, int) else replicas * int(unavailable[:-1]) // 100
    return -(-replicas // max(1, surge_replicas(spec, replicas) + down))


def rollout_timeout(spec: ApiConfig) -> str:
    """How long ``pulumi up`` waits for the Deployment to roll out.

    pulumi-kubernetes does not stop when Kubernetes gives up on a rollout (to it
    ``ProgressDeadlineExceeded`` is a warning); it waits for this timeout. So the timeout is
    Kubernetes' deadline for every step of a rollout at ``maxReplicas``, plus a minute: a healthy
    rollout, each step within the deadline, always fits, and a stalled one fails ``pulumi up`` soon
    after the deadline of the step it stalled in would have.
    """
    deadline = spec.update_strategy.progress_deadline_seconds
    return f"{deadline * rollout_batches(spec) + ROLLOUT_WAIT_MARGIN_SECONDS}s"


@dataclass
class ModelApiArgs:
    """Inputs of a :class:`ModelApi`."""

    spec: ApiConfig
    """The API as the stack file declares it."""
    placement: Placement
    """The node group the replicas run on; gives node selector and tolerations."""
    cluster: ClusterContext
    """The cluster it runs in (``ServingCluster.context``, ``ExistingCluster.context``, or one built by hand)."""
    namespace: str | None = None
    """Namespace to create and run in. Default: the API's name."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra labels for every object (never used in selectors). Default: ``app.kubernetes.io/part-of: <cluster>``."""
    tags: dict[str, str] = field(default_factory=dict)
    """AWS tags for the API's IAM role and queue."""


class ModelApi(pulumi.ComponentResource):
    """An autoscaled, rolling-updated model server behind a Service."""

    url: pulumi.Output[str]
    """In-cluster URL of the API."""
    external_url: pulumi.Output[str] | None
    """URL through the load balancer of an exposed API (None: not exposed)."""
    namespace: pulumi.Output[str]
    """Namespace the API runs in."""

    def __init__(self, name: str, args: ModelApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        cluster = args.cluster
        issues = api_issues(name, args.spec, args.placement, cluster)
        if issues:
            raise ConfigError(f"ModelApi {name!r}", issues, "its spec and cluster context")
        if cluster.provider is not None:
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[cluster.provider]))
        super().__init__("modelplane:index:ModelApi", name, None, opts)
        spec = args.spec
        namespace_name = args.namespace or name
        selector = {API_LABEL: name}
        extra = args.labels or {"app.kubernetes.io/part-of": cluster.name}
        labels = {**extra, "app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-api",
                  "app.kubernetes.io/managed-by": "modelplane", **selector}
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": namespace_name, "annotations": dict(APPLY_ANNOTATIONS), "labels": {
                **labels, "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                **(READINESS_GATE_LABEL if spec.expose is not None else {})}},
            opts=child,
        )
        # Plain strings, not the Namespace's outputs: the names are known, and depends_on orders creation.
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        metadata = {"name": name, "namespace": namespace_name, "labels": labels, "annotations": dict(APPLY_ANNOTATIONS)}
        queue_url, queue_arn = self._queue(name, args) if spec.queue is not None else (None, None)
        annotations = {}
        if spec.model_uri is not None or queue_arn is not None:
            annotations["eks.amazonaws.com/role-arn"] = _api_role(name, namespace_name, args, queue_arn, self).arn
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata={**metadata, "annotations": {**metadata["annotations"], **annotations}},
            automount_service_account_token=False, opts=in_namespace)
        config_map = config_map_name(name, spec)
        config_resources: list[pulumi.Resource] = []
        if config_map is not None:
            config_resources.append(k8s.core.v1.ConfigMap(
                f"{name}-config",
                # Named after its content and immutable: a change creates a new ConfigMap, the pod
                # template points at it, and the Deployment rolls; the old one goes after the rollout.
                metadata={**metadata, "name": config_map},
                data=dict(spec.config_files),
                immutable=True,
                opts=in_namespace,
            ))
        proxy_config_map = None
        shadow = version_name(name, "shadow") if spec.shadow is not None else None
        if spec.proxy.enabled:
            # With a shadow, the proxy mirrors its share of the requests to the shadow's Service.
            mirror = None
            if spec.shadow is not None and shadow is not None:
                mirror = proxy.Mirror(service_host(shadow, namespace_name), spec.shadow.percent)
            proxy_config_map, proxy_config = proxy.config_map(name, spec, mirror=mirror)
            config_resources.append(k8s.core.v1.ConfigMap(
                f"{name}-proxy",
                # Content-named and immutable like the model config: a new limit rolls the replicas.
                metadata={**metadata, "name": proxy_config_map},
                data={proxy.CONFIG_FILE: proxy_config},
                immutable=True,
                opts=in_namespace,
            ))
        timeout = rollout_timeout(spec)
        # A GPU replica can only start once the device plugin advertises the node's GPUs.
        gpu_ready = [cluster.device_plugin] if api_gpus(spec) and cluster.device_plugin is not None else []
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=metadata,
            spec=deployment_spec(name, spec, args.placement, selector, labels, name, queue_url, proxy_config_map),
            # Replicas need the node group (and a GPU API its device plugin) to exist: opts.depends_on
            # is not inherited by children, so the Deployment takes it explicitly. A new config
            # ConfigMap must exist before the pod template that mounts it rolls out.
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[namespace, account, *config_resources, *depends_on_list(opts),
                                                    *gpu_ready],
                                        custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)),
        )
        service = k8s.core.v1.Service(f"{name}-svc", metadata=metadata, spec=service_spec(spec, selector),
                                      opts=in_namespace)
        if spec.network.isolated:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol",
                metadata=metadata,
                spec=api_network_policy_spec(spec, selector, cluster,
                                             mirror_to={API_LABEL: shadow} if shadow is not None else None),
                opts=in_namespace,
            )
        self.external_url = None
        if spec.expose is not None:
            controller = [cluster.load_balancer_controller] if cluster.load_balancer_controller is not None else []
            self.external_url = expose_api(
                name, spec, metadata, cluster.name, spec.readiness_probe.path,
                deregistration_seconds=TERMINATION_GRACE_SECONDS - PRE_STOP_SLEEP_SECONDS, tags=args.tags,
                # The controller's webhook must be up, and the Service there, before the Ingress is admitted.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, service, *controller]),
                aws_opts=pulumi.ResourceOptions(parent=self)).url
        endpoints = scrape_endpoints(spec)
        # Custom resources wait for the releases that bring their CRDs (depends_on is not inherited).
        with_crds = pulumi.ResourceOptions(parent=self, depends_on=[namespace, *cluster.crd_releases])
        if endpoints and cluster.pod_monitors:
            k8s.apiextensions.CustomResource(
                f"{name}-metrics",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata=metadata,
                spec={
                    "selector": {"matchLabels": selector},
                    "podMetricsEndpoints": [{"port": port, "path": path, "interval": f"{SCRAPE_INTERVAL_SECONDS}s"}
                                            for port, _, path in endpoints],
                },
                opts=with_crds,
            )
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=metadata, spec=disruption_budget_spec(selector),
                                          opts=in_namespace)
        source = metric_source(name, namespace_name, spec, cluster, queue_url)
        autoscaling = AutoscalingPolicy(
            f"{name}-autoscaling",
            AutoscalingPolicyArgs(target=name, namespace=namespace_name, spec=spec.autoscaling,
                                  labels=labels, source=source, kubernetes_version=cluster.kubernetes_version),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment, *cluster.crd_releases]),
        )
        kinds: list[VersionKind] = []
        if spec.canary is not None:
            kinds.append("canary")
        if spec.shadow is not None:
            kinds.append("shadow")
        if kinds:
            # Imported here: the version's module renders its pods with this module's functions.
            from .second_version import SecondVersion, SecondVersionArgs
        for kind in kinds:
            SecondVersion(
                version_name(name, kind),
                SecondVersionArgs(api=name, kind=kind, spec=spec, placement=args.placement, cluster=cluster,
                                  namespace=namespace_name, labels=labels, queue_url=queue_url,
                                  aws_auth_exists=source is not None and source.needs_aws_auth),
                # What the API's pods wait for, the version's wait for too; a canary reuses the API's
                # TriggerAuthentication, made by its autoscaling policy.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[
                    namespace, account, *config_resources, *depends_on_list(opts), *gpu_ready, autoscaling]),
            )
        self.namespace = pulumi.Output.from_input(namespace_name)
        self.url = pulumi.Output.from_input(service_url(name, namespace_name))
        self.register_outputs({"url": self.url, "namespace": self.namespace,
                               **({"external_url": self.external_url} if self.external_url is not None else {})})


    def _queue(self, name: str, args: ModelApiArgs) -> tuple[pulumi.Input[str], pulumi.Input[str]]:
        """(URL, ARN) of the API's SQS queue, creating it unless the stack names an existing one."""
        spec = args.spec
        assert spec.queue is not None
        if spec.queue.url is not None:
            url: pulumi.Input[str] = spec.queue.url
            arn: pulumi.Input[str] = sqs_queue_arn(spec.queue.url)
        else:
            queue = aws.sqs.Queue(
                f"{name}-queue",
                name=f"{args.cluster.name}-{name}",
                sqs_managed_sse_enabled=True,
                visibility_timeout_seconds=spec.queue.visibility_timeout_seconds,
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            url, arn = queue.url, queue.arn
        if args.cluster.keda_role_name is not None and scaling_metric(spec) == "queue":
            aws.iam.RolePolicy(f"{name}-queue-depth", role=args.cluster.keda_role_name,
                               policy=pulumi.Output.from_input(arn).apply(sqs_depth_policy),
                               opts=pulumi.ResourceOptions(parent=self))
        return url, arn


def _api_role(name: str, namespace: str, args: ModelApiArgs, queue_arn: pulumi.Input[str] | None,
              parent: pulumi.Resource) -> aws.iam.Role:
    """The IAM role of the API's service account: read its model prefix in S3, consume its queue; nothing else."""
    cluster = args.cluster
    # api_issues refused a spec that needs the role on a cluster without an OIDC provider.
    assert cluster.oidc_provider_arn is not None and cluster.oidc_provider_url is not None
    # The role was named "<api>-model-reader" when it could only read S3: the alias keeps it (no replacement).
    role = service_account_role(f"{name}-api", namespace, name, cluster.oidc_provider_arn, cluster.oidc_provider_url,
                                args.tags, parent, aliases=[pulumi.Alias(name=f"{name}-model-reader")])
    if args.spec.model_uri is not None:
        aws.iam.RolePolicy(f"{name}-model-reader", role=role.name, policy=s3_read_policy(args.spec.model_uri),
                           opts=pulumi.ResourceOptions(parent=parent))
    if queue_arn is not None:
        aws.iam.RolePolicy(f"{name}-queue-consumer", role=role.name,
                           policy=pulumi.Output.from_input(queue_arn).apply(sqs_consume_policy),
                           opts=pulumi.ResourceOptions(parent=parent))
    return role


def api_issues(name: str, spec: ApiConfig, placement: Placement, cluster: ClusterContext,
               spec_path: tuple[str | int, ...] = ("spec",),
               context_key: Callable[[str], tuple[str | int, ...]] = lambda key: ("cluster", key)) -> list[Issue]:
    """What is wrong with serving ``spec`` on ``placement`` in ``cluster``: a stack file's API rules, on one API.

    The estate check runs these rules on every API of a stack file; a ``ModelApi`` built directly
    (from Python, or through the component package) runs them here, so both paths refuse the same
    spec with the same message. ``spec_path`` prefixes the spec's key paths; ``context_key`` gives
    the path of a cluster fact the spec needs and the context lacks (``cluster.prometheus_url`` for
    a :class:`ClusterContext`, an input's name for the package).
    """
    group = placement.spec
    # Only the version and name of the cluster matter to the API rules.
    config = ClusterConfig.model_construct(name=cluster.name, kubernetes_version=cluster.kubernetes_version)
    issues = list(_check_api(name, spec, {spec.node_group: group} if group is not None else {}, [spec.node_group],
                             spec_path, config))
    gpus = api_gpus(spec)
    if gpus and not placement.gpu and group is None:
        # With the group's config, _check_api said this already.
        issues.append(Issue(spec_path + ("compute", "gpu"), f"asks for {gpus} GPU(s) per replica but its placement, "
                            f"node group {placement.group!r}, has no GPUs: its replicas would never schedule"))
    if group is not None:
        # The same fit rule as the estate check (the node exporter is not assumed here).
        issues += [Issue(spec_path + issue.path[1:], issue.message)
                   for issue in check_pod_fit({name: spec}, {spec.node_group: group}, False, ())]
    metric = scaling_metric(spec)
    if (spec.model_uri is not None or spec.queue is not None) and not cluster.has_oidc:
        issues.append(Issue(context_key("oidc_provider_arn"), f"is required, with {context_key('oidc_provider_url')[-1]}: "
                            "the API reads S3 (modelUri) or consumes SQS (queue) through a service-account role"))
    if spec.queue is not None and spec.queue.url is None and cluster.region is None:
        issues.append(Issue(context_key("region"), "is required: modelplane creates the API's queue in it (or give "
                            "spec.queue.url of an existing queue)"))
    if uses_keda(spec) and metric != "queue" and cluster.prometheus_url is None:
        issues.append(Issue(context_key("prometheus_url"), f"is required: the API scales on {metric!r}, a Prometheus "
                            "metric (or set spec.autoscaling.metric to cpu or memory)"))
    return issues


def metric_source(name: str, namespace: str, spec: ApiConfig, cluster: ClusterContext,
                  queue_url: pulumi.Input[str] | None, version: str | None = None) -> MetricSource | None:
    """What KEDA scales the API (or its ``version``, a canary) on, or None for a plain HPA (cpu, memory).

    A canary's request metrics are its own proxies' (:func:`proxy.model_cluster`); a ``custom`` query
    and a queue are the API's, as the stack file gives them.
    """
    if not uses_keda(spec):
        return None
    metric = scaling_metric(spec)
    threshold = scaling_target(spec)
    if metric == "queue":
        assert spec.queue is not None and queue_url is not None
        region = sqs_queue(spec.queue.url)[0] if spec.queue.url else cluster.region
        assert region is not None, "api_issues refused a queue modelplane creates without a region"
        return MetricSource(metric, threshold, queue_url=queue_url, queue_region=region)
    prometheus_url = cluster.prometheus_url
    assert prometheus_url is not None, "api_issues refused a Prometheus metric without a prometheus_url"
    window = spec.autoscaling.window
    if metric == "inFlight":
        query = proxy.in_flight_query(namespace, window, version)
    elif metric == "rps":
        query = proxy.rps_query(namespace, window, version)
    else:
        assert spec.autoscaling.custom is not None
        query = spec.autoscaling.custom.query
    amp = amp_workspace(prometheus_url)
    return MetricSource(metric, threshold, query=query, prometheus_url=prometheus_url,
                        prometheus_region=amp[0] if amp else None)


def scrape_endpoints(spec: ApiConfig) -> list[tuple[str, int, str]]:
    """(container port name, port, path) of every Prometheus endpoint in a replica: the proxy's, the server's."""
    endpoints = [("metrics", PROXY_METRICS_PORT, "/stats/prometheus")] if spec.proxy.enabled else []
    if spec.metrics_path is not None:
        endpoints.append(("http", spec.port, spec.metrics_path))
    return endpoints


def service_spec(spec: ApiConfig, selector: dict[str, str]) -> dict[str, Any]:
    """The ClusterIP Service of an API (or of its canary or shadow): port 80 to the proxy, or to the server."""
    return {"type": "ClusterIP", "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": service_target_port(spec), "protocol": "TCP"}]}


def disruption_budget_spec(selector: dict[str, str]) -> dict[str, Any]:
    """Drains (node upgrades, spot reclaims, scale-down) take one replica at a time; a crash-looping replica
    never blocks a drain."""
    return {"maxUnavailable": 1, "selector": {"matchLabels": selector}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def service_target_port(spec: ApiConfig) -> str:
    """The container port the Service sends requests to: the proxy's when it runs, else the server's."""
    return "proxy" if spec.proxy.enabled else "http"


def service_host(name: str, namespace: str) -> str:
    """In-cluster DNS name of a Service (an API's, or its canary's or shadow's)."""
    return f"{name}.{namespace}.svc.cluster.local"


def service_url(name: str, namespace: str) -> str:
    """In-cluster URL of an API's Service (known before anything is deployed)."""
    return f"http://{service_host(name, namespace)}"



DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
"""Pod annotation Karpenter (1.12+) reads: ``"true"`` blocks voluntary disruption of the pod's node, a duration
(``"15m"``) blocks it for that long after the pod started."""


def startup_budget(spec: ApiConfig) -> str:
    """How long the API's replicas may take to start: its startup probe's periodSeconds x failureThreshold, else 10m."""
    probe = spec.startup_probe
    seconds = probe.period_seconds * probe.failure_threshold if probe is not None else 600
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def deployment_spec(name: str, spec: ApiConfig, placement: Placement, selector: dict[str, str],
                    labels: dict[str, str], service_account: pulumi.Input[str],
                    queue_url: pulumi.Input[str] | None = None,
                    proxy_config_map: str | None = None) -> dict[str, Any]:
    """The Deployment ``spec`` of an API (no ``replicas``: the autoscaler owns that field).

    ``proxy_config_map`` is the name :func:`proxy.config_map` gave the proxy's ConfigMap (computed here
    when not given).
    """
    max_surge, max_unavailable = effective_update_strategy(spec)
    mounts, volumes = writable_volumes(name, spec)
    proxy_mounts: list[dict[str, Any]] = []
    if spec.proxy.enabled:
        proxy_config_map = proxy_config_map or proxy.config_map(name, spec)[0]
        volumes.append({"name": "proxy-config", "configMap": {"name": proxy_config_map}})
        proxy_mounts.append({"name": "proxy-config", "mountPath": proxy.CONFIG_DIR, "readOnly": True})
    # An external Prometheus finds the metrics by the conventional annotations (which name one endpoint:
    # the proxy's when it runs, else the server's own).
    endpoints = scrape_endpoints(spec)
    scrape = {}
    if endpoints:
        _, port, path = endpoints[0]
        scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": path}
    if placement.protect_starting_pods:
        # Karpenter leaves the pod's node alone (no consolidation, no drift) for this long after the pod
        # starts: a replica loading its model is never moved; afterwards its PDB governs.
        scrape[DO_NOT_DISRUPT] = placement.startup_time or startup_budget(spec)
    return {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 10,
        # Zero values are left out, as the API server stores them (its zero-valued fields are omitted), so
        # the rendered object is exactly what the cluster keeps.
        **({"minReadySeconds": min_ready} if (min_ready := spec.update_strategy.min_ready_seconds) else {}),
        "progressDeadlineSeconds": spec.update_strategy.progress_deadline_seconds,
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable}},
        "template": {
            "metadata": {"labels": labels, **({"annotations": scrape} if scrape else {})},
            "spec": {
                "serviceAccountName": service_account,
                "automountServiceAccountToken": False,
                "nodeSelector": placement.node_selector(),
                **({"tolerations": placement.tolerations()} if placement.taints else {}),
                # A fixed high UID and GID, whatever user the image names: never root, and none of the
                # node's own users.
                "securityContext": {"runAsNonRoot": True, "runAsUser": spec.run_as_user,
                                    "runAsGroup": spec.run_as_user, "seccompProfile": {"type": "RuntimeDefault"}},
                # Replicas of each rollout revision spread over zones when capacity allows; a zone
                # outage then takes out a share of the API, not all of it.
                "topologySpreadConstraints": [{
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector},
                    "matchLabelKeys": ["pod-template-hash"],
                }],
                "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                # The proxy is a native sidecar: it starts first and stops after the server has drained.
                **({"initContainers": [proxy.proxy_container(spec, proxy_mounts)]} if spec.proxy.enabled else {}),
                "containers": [serving_container(name, spec, mounts, queue_url),
                               *(sidecar_container(name, spec, sidecar_name, mounts)
                                 for sidecar_name in spec.sidecars)],
                **({"volumes": volumes} if volumes else {}),
            },
        },
    }


def _security_context(spec: ApiConfig) -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": spec.read_only_root_filesystem}


def serving_container(name: str, spec: ApiConfig, mounts: list[dict[str, Any]],
                      queue_url: pulumi.Input[str] | None = None) -> dict[str, Any]:
    """The container that receives the API's traffic and answers its probes."""
    return {
        "name": MAIN_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": image_pull_policy(spec.image),
        **({"command": list(spec.command)} if spec.command is not None else {}),
        **({"args": list(spec.args)} if spec.args is not None else {}),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": container_env(name, spec, queue_url),
        "resources": resources(spec.compute),
        # Endpoint removal and SIGTERM race: keep serving while the Service and load
        # balancers stop sending new requests (a kubelet sleep, no binary in the image).
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        "readinessProbe": http_probe(spec.readiness_probe),
        **({"livenessProbe": http_probe(spec.liveness_probe)} if spec.liveness_probe else {}),
        **({"startupProbe": http_probe(spec.startup_probe)} if spec.startup_probe else {}),
        "securityContext": _security_context(spec),
        **({"volumeMounts": mounts} if mounts else {}),
    }


def sidecar_container(name: str, spec: ApiConfig, sidecar_name: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """A sidecar: same hardening and shared volumes as the serving container, its own image and resources."""
    sidecar = spec.sidecars[sidecar_name]
    # Sidecars share the pod's lifecycle; the pre-stop sleep keeps them up while the server drains.
    return {
        "name": sidecar_name,
        "image": sidecar.image,
        "imagePullPolicy": image_pull_policy(sidecar.image),
        **({"command": list(sidecar.command)} if sidecar.command is not None else {}),
        **({"args": list(sidecar.args)} if sidecar.args is not None else {}),
        "env": [{"name": k, "value": v} for k, v in sidecar.env.items()] + [
            {"name": "MODELPLANE_API_NAME", "value": name},
            {"name": "MODELPLANE_SOCKET_DIR", "value": SOCKET_DIR},
        ],
        **({"ports": [{"containerPort": sidecar.port, "protocol": "TCP"}]} if sidecar.port is not None else {}),
        "resources": resources(sidecar.compute),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        # A sidecar's readiness counts towards the replica's: it takes traffic only when both are ready.
        **({"readinessProbe": http_probe(sidecar.readiness_probe, sidecar.port)}
           if sidecar.readiness_probe and sidecar.port is not None else {}),
        **({"livenessProbe": http_probe(sidecar.liveness_probe, sidecar.port)}
           if sidecar.liveness_probe and sidecar.port is not None else {}),
        **({"startupProbe": http_probe(sidecar.startup_probe, sidecar.port)}
           if sidecar.startup_probe and sidecar.port is not None else {}),
        "securityContext": _security_context(spec),
        "volumeMounts": mounts,
    }


def http_probe(probe: ProbeConfig | StartupProbeConfig, port: int | str = "http") -> dict[str, Any]:
    """An HTTP GET probe against ``port`` (default: the serving container's port, named ``http``)."""
    return {
        "httpGet": {"path": probe.path, "port": port},
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "failureThreshold": probe.failure_threshold,
        **({"initialDelaySeconds": probe.initial_delay_seconds}
           if isinstance(probe, ProbeConfig) and probe.initial_delay_seconds else {}),
    }


def config_map_name(name: str, spec: ApiConfig) -> str | None:
    """``<api>-config-<content digest>``, or None when the API has no config files."""
    if not spec.config_files:
        return None
    digest = hashlib.sha256(json.dumps(spec.config_files, sort_keys=True).encode()).hexdigest()[:10]
    return f"{name}-config-{digest}"


def writable_volumes(name: str, spec: ApiConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumeMounts, volumes): the config files, an emptyDir per writable path, ``/dev/shm`` if asked."""
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    for index, (secret, directory) in enumerate(spec.secrets.items()):
        volumes.append({"name": f"secret-{index}", "secret": {"secretName": secret}})
        mounts.append({"name": f"secret-{index}", "mountPath": directory, "readOnly": True})
    if spec.sidecars:
        volumes.append({"name": "sockets", "emptyDir": {}})
        mounts.append({"name": "sockets", "mountPath": SOCKET_DIR})
    config_map = config_map_name(name, spec)
    if config_map is not None:
        volumes.append({"name": "config", "configMap": {"name": config_map}})
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
    for index, path in enumerate(spec.writable_paths):
        volumes.append({"name": f"writable-{index}", "emptyDir": {}})
        mounts.append({"name": f"writable-{index}", "mountPath": path})
    if spec.compute.shm is not None:
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.compute.shm}})
        mounts.append({"name": "shm", "mountPath": SHM_DIR})
    return mounts, volumes


def container_env(name: str, spec: ApiConfig,
                  queue_url: pulumi.Input[str] | None = None) -> list[dict[str, Any]]:
    """The user's env, then what modelplane tells every model server."""
    return [{"name": key, "value": value} for key, value in spec.env.items()] + [
        {"name": "MODELPLANE_API_NAME", "value": name},
        {"name": "MODELPLANE_PORT", "value": str(spec.port)},
        {"name": "MODELPLANE_MAX_CONCURRENCY", "value": str(spec.max_concurrency)},
        *([{"name": "MODELPLANE_MODEL_URI", "value": spec.model_uri}] if spec.model_uri else []),
        *([{"name": "MODELPLANE_CONFIG_DIR", "value": CONFIG_DIR}] if spec.config_files else []),
        *([{"name": "MODELPLANE_SOCKET_DIR", "value": SOCKET_DIR}] if spec.sidecars else []),
        *([{"name": "MODELPLANE_QUEUE_URL", "value": queue_url}] if queue_url is not None else []),
    ]


def resources(compute: ContainerComputeConfig) -> dict[str, dict[str, str]]:
    """Requests and limits: memory and GPUs are limited at the request; CPU is not (no throttling)."""
    requests = {"cpu": compute.cpu}
    limits: dict[str, str] = {}
    if compute.mem is not None:
        requests["memory"] = limits["memory"] = compute.mem
    if compute.gpu:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(compute.gpu)
    return {"requests": requests, **({"limits": limits} if limits else {})}
