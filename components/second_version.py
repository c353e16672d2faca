"""``SecondVersion``: a canary or a shadow of a model API, beside the API's own (stable) Deployment.

A canary takes ``weight`` percent of the API's load-balancer requests (the
Ingress forwards to the API's Service and to the canary's, by weight) and
autoscales on the API's metric between its own bounds. A shadow gets a copy of
``percent`` percent of the requests from the stable replicas' proxies; Envoy
discards its responses, so it serves nobody and runs a fixed number of
replicas.

Both run the API's pod spec (probes, resources, proxy, placement, service
account, config files) with the version's image, env and args, under the name
``<api>-canary`` or ``<api>-shadow``. That name is also their selector label
value (``modelplane.io/api``), so the API's own selector, Service, PDB and
autoscaler never see their pods; ``modelplane.io/canary-of`` or
``modelplane.io/shadow-of`` names the API they belong to. Their proxies name
their Envoy cluster and listener after the version, so the API's in-flight and
request-rate queries (by namespace) count only the stable replicas.

Adding or removing a second version never changes the API's Deployment,
Service or selector. Promoting a canary (the API takes its image, the canary
block goes) previews as an update of the API's Deployment and deletes of this
component and its children.

Children: the Deployment (the primary child, named like the component), a
ClusterIP Service, a PodDisruptionBudget, a NetworkPolicy (unless
``network.isolated`` is off), the proxy's content-named ConfigMap, a PodMonitor
where the Prometheus Operator runs, and, for a canary, an
:class:`AutoscalingPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from . import proxy
from ._resource_options import depends_on_list
from .autoscaling_policy import AutoscalingPolicy, AutoscalingPolicyArgs
from .cluster_context import APPLY_ANNOTATIONS, ClusterContext
from .config import SCRAPE_INTERVAL_SECONDS, ApiConfig, NetworkPeer, VersionKind, canary_replicas, version_name
from .model_api import (
    API_LABEL,
    deployment_spec,
    disruption_budget_spec,
    metric_source,
    rollout_timeout,
    scrape_endpoints,
    service_spec,
    service_url,
)
from .network_policy import api_network_policy_spec
from .placement import Placement

__all__ = ["VERSION_OF_LABEL", "SecondVersion", "SecondVersionArgs", "version_spec"]

VERSION_OF_LABEL: dict[VersionKind, str] = {"canary": "modelplane.io/canary-of", "shadow": "modelplane.io/shadow-of"}
"""Label naming the API a second version's objects belong to (never in a selector)."""


def version_spec(spec: ApiConfig, kind: VersionKind, namespace: str, stable_selector: dict[str, str]) -> ApiConfig:
    """The API's config as its canary or shadow runs it: the version's image, env, args and replica bounds.

    A shadow is reached only by the API's own pods (their proxies mirror to it) and never by the load
    balancer; neither version has a version of its own.
    """
    second = spec.canary if kind == "canary" else spec.shadow
    assert second is not None, f"the API has no {kind}"
    update: dict[str, object] = {"image": second.image, "canary": None, "shadow": None}
    if second.env is not None:
        update["env"] = dict(second.env)
    if second.args is not None:
        update["args"] = list(second.args)
    if kind == "canary":
        low, high = canary_replicas(spec)
        update["autoscaling"] = spec.autoscaling.model_copy(update={"min_replicas": low, "max_replicas": high})
    else:
        assert spec.shadow is not None
        replicas = spec.shadow.replicas
        # Fixed replicas; the bounds say so to what reads them (the rollout timeout, the plan).
        update["autoscaling"] = spec.autoscaling.model_copy(update={"min_replicas": replicas,
                                                                    "max_replicas": replicas})
        stable_pods = NetworkPeer.model_validate({"namespace": namespace, "podLabels": dict(stable_selector)})
        update["network"] = spec.network.model_copy(update={"allow_from": [stable_pods]})
        update["expose"] = None
    return spec.model_copy(update=update)


@dataclass
class SecondVersionArgs:
    """Inputs of a :class:`SecondVersion`."""

    api: str
    """Name of the API whose version this is."""
    kind: VersionKind
    """``canary`` or ``shadow`` (the API's config has that block)."""
    spec: ApiConfig
    """The API as the stack file declares it."""
    placement: Placement
    """The API's node group: the version runs there too."""
    cluster: ClusterContext
    """The cluster the API runs in."""
    namespace: str
    """The API's namespace."""
    labels: dict[str, str]
    """The API's labels; the version's objects carry them with the selector label changed and the version-of label."""
    queue_url: pulumi.Input[str] | None = None
    """The API's SQS queue URL, when it has one."""
    aws_auth_exists: bool = False
    """The API's own autoscaling policy made the namespace's KEDA TriggerAuthentication (a canary reuses it)."""


class SecondVersion(pulumi.ComponentResource):
    """A canary or shadow of a :class:`~modelplane.ModelApi`: its Deployment, Service and what they need."""

    url: pulumi.Output[str]
    """In-cluster URL of the version's Service."""

    def __init__(self, name: str, args: SecondVersionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if name != version_name(args.api, args.kind):
            # The API's mirror, its load balancer's weighted forward and its NetworkPolicy find the version by it.
            raise ValueError(f"SecondVersion {name!r}: a {args.kind} of API {args.api!r} is named "
                             f"{version_name(args.api, args.kind)!r}")
        super().__init__("modelplane:index:SecondVersion", name, None, opts)
        api, kind, namespace = args.api, args.kind, args.namespace
        stable_selector = {API_LABEL: api}
        spec = version_spec(args.spec, kind, namespace, stable_selector)
        selector = {API_LABEL: name}
        labels = {**args.labels, **selector, VERSION_OF_LABEL[kind]: api}
        metadata = {"name": name, "namespace": namespace, "labels": labels, "annotations": dict(APPLY_ANNOTATIONS)}
        # Children wait for what the version waits for (the API's namespace, service account, config, node
        # group): depends_on is not inherited.
        inherited = depends_on_list(opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=inherited)

        config_map, config = proxy.config_map(name, spec, version=kind)
        proxy_config = k8s.core.v1.ConfigMap(
            f"{name}-proxy",
            # Content-named and immutable like the API's: a change rolls the version's replicas.
            metadata={**metadata, "name": config_map},
            data={proxy.CONFIG_FILE: config},
            immutable=True,
            opts=child,
        )
        # The serving container is told the API's name: a version is the same API to the model server.
        pod = deployment_spec(api, spec, args.placement, selector, labels, api, args.queue_url, config_map)
        if kind == "shadow":
            pod = {**pod, "replicas": spec.autoscaling.max_replicas}
        timeout = rollout_timeout(spec)
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=metadata,
            spec=pod,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*inherited, proxy_config],
                                        custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)),
        )
        # The API Service's port and target: the load balancer (canary) and the mirror (shadow) use it alike.
        k8s.core.v1.Service(f"{name}-svc", metadata=metadata, spec=service_spec(spec, selector), opts=child)
        if spec.network.isolated:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol",
                metadata=metadata,
                spec=api_network_policy_spec(spec, selector, args.cluster),
                opts=child,
            )
        endpoints = scrape_endpoints(spec)
        if endpoints and args.cluster.pod_monitors:
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
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*inherited, *args.cluster.crd_releases]),
            )
        # As the API's, a shadow's too: drains take one replica at a time.
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=metadata, spec=disruption_budget_spec(selector),
                                          opts=child)
        if kind == "canary":
            AutoscalingPolicy(
                f"{name}-autoscaling",
                AutoscalingPolicyArgs(target=name, namespace=namespace, spec=spec.autoscaling, labels=labels,
                                      source=metric_source(api, namespace, spec, args.cluster, args.queue_url,
                                                           version=kind),
                                      kubernetes_version=args.cluster.kubernetes_version,
                                      creates_aws_auth=not args.aws_auth_exists),
                opts=pulumi.ResourceOptions(parent=self,
                                            depends_on=[*inherited, deployment, *args.cluster.crd_releases]),
            )
        self.url = pulumi.Output.from_input(service_url(name, namespace))
        self.register_outputs({"url": self.url})
