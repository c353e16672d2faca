"""``ExistingCluster``: a Kubernetes cluster that already runs, as modelplane's model APIs see it.

Nothing of the cluster itself is created: no VPC, EKS cluster or node group.
Children: the Kubernetes provider (its kubeconfig from a secret config value,
a file path or another stack's output), the ``StackReference`` when the
kubeconfig comes from one, and the add-ons the stack asks modelplane to
install (KEDA, kube-prometheus-stack, the NVIDIA device plugin, the cluster
autoscaler, the AWS Load Balancer Controller); add-ons declared present are
only used. Its :attr:`context`
is the same :class:`~modelplane.ClusterContext` a created cluster gives, so
model APIs deploy the same way on both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from . import addons
from .addons import PROMETHEUS_URL
from .cluster_context import ClusterContext, kubernetes_provider
from .config import ClusterConfig, ExistingClusterConfig, SecretValue, scraper_peers
from .placement import Placement

__all__ = ["ExistingCluster", "ExistingClusterArgs"]


@dataclass
class ExistingClusterArgs:
    """Inputs of an :class:`ExistingCluster`."""

    spec: ClusterConfig
    """The cluster as the stack file declares it; ``spec.existing`` says how to reach it."""
    region: str | None = None
    """AWS region, when the cluster is in AWS (queues, the cluster autoscaler). Default: none."""
    gpu_pools: list[Placement] = field(default_factory=list)
    """The cluster's GPU pools: an installed device plugin runs on exactly their nodes."""
    keda: bool = False
    """Install KEDA. Default: off (not needed, or present)."""
    prometheus: bool = False
    """Install kube-prometheus-stack. Default: off."""
    nvidia_device_plugin: bool = False
    """Install the NVIDIA device plugin on the GPU pools. Default: off."""
    cluster_autoscaler: bool = False
    """Install the cluster autoscaler (an EKS cluster with an OIDC provider). Default: off."""
    load_balancer_controller: bool = False
    """Install the AWS Load Balancer Controller (an EKS cluster with an OIDC provider and ``existing.vpcId``). Default: off."""
    tags: dict[str, str] = field(default_factory=dict)
    """AWS tags for the IAM roles of installed add-ons."""


class ExistingCluster(pulumi.ComponentResource):
    """A cluster that runs already: its provider, the add-ons modelplane installs into it, and its context."""

    provider: k8s.Provider
    """Kubernetes provider for everything inside the cluster."""
    context: ClusterContext
    """The cluster as its model APIs see it."""
    cluster_name: pulumi.Output[str]
    """The estate's cluster name."""

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:ExistingCluster", name, None, opts)
        spec = args.spec
        existing = spec.existing
        if existing is None:
            raise ValueError(f"ExistingCluster {name!r} needs a spec with `existing` set")
        self.provider = kubernetes_provider(f"{name}-k8s", _kubeconfig(name, existing, self),
                                            pulumi.ResourceOptions(parent=self), context=existing.context)
        oidc = (existing.oidc_provider_arn, existing.oidc_issuer) \
            if existing.oidc_provider_arn is not None and existing.oidc_issuer is not None else None
        add_on = pulumi.ResourceOptions(parent=self, provider=self.provider)
        on_nodes = dict(existing.addon_node_selector)
        if args.cluster_autoscaler:
            if oidc is None or args.region is None:
                raise ValueError(f"ExistingCluster {name!r} installs the cluster autoscaler and needs the cluster's "
                                 "OIDC provider (existing.oidcProviderArn, existing.oidcIssuer) and a region")
            addons.cluster_autoscaler(name, spec, args.region, oidc[0], oidc[1], args.tags, on_nodes, add_on)
        device_plugin = None
        if args.nvidia_device_plugin:
            device_plugin = addons.nvidia_device_plugin(name, spec, add_on,
                                                        [pool.node_selector() for pool in args.gpu_pools])
        controller = None
        if args.load_balancer_controller:
            if oidc is None or args.region is None or existing.vpc_id is None:
                raise ValueError(f"ExistingCluster {name!r} installs the AWS Load Balancer Controller and needs the "
                                 "cluster's OIDC provider (existing.oidcProviderArn, existing.oidcIssuer), its VPC "
                                 "(existing.vpcId) and a region")
            controller = addons.load_balancer_controller(name, spec, args.region, existing.vpc_id, oidc[0], oidc[1],
                                                         args.tags, on_nodes, add_on)
        crd_releases: list[pulumi.Resource] = []
        keda_role_name: pulumi.Input[str] | None = existing.keda_role_name
        if args.keda:
            keda_role, keda = addons.keda(name, spec, oidc, args.tags, on_nodes, add_on)
            crd_releases.append(keda)
            keda_role_name = keda_role.name if keda_role is not None else None
        prometheus_url = spec.prometheus.url
        if args.prometheus:
            crd_releases.append(addons.prometheus(name, spec, on_nodes, add_on))
            prometheus_url = PROMETHEUS_URL
        self.context = ClusterContext(
            name=spec.name, kubernetes_version=spec.kubernetes_version, provider=self.provider, region=args.region,
            oidc_provider_arn=oidc[0] if oidc else None, oidc_provider_url=oidc[1] if oidc else None,
            prometheus_url=prometheus_url,
            pod_monitors=args.prometheus or existing.addons.prometheus == "present",
            keda_role_name=keda_role_name, crd_releases=crd_releases, device_plugin=device_plugin,
            metrics_scrapers=scraper_peers(spec, args.prometheus), load_balancer_controller=controller,
            load_balancer_cidrs=[str(existing.vpc_cidr)] if existing.vpc_cidr is not None else
            [aws.ec2.get_vpc_output(id=existing.vpc_id).cidr_block] if existing.vpc_id is not None else [])
        self.cluster_name = pulumi.Output.from_input(spec.name)
        self.register_outputs({"cluster_name": self.cluster_name})


def _kubeconfig(name: str, existing: ExistingClusterConfig, parent: pulumi.Resource) -> pulumi.Input[str]:
    """The provider's kubeconfig: a file path as given (the provider reads it), or the contents as a secret."""
    if existing.kubeconfig_path is not None:
        return existing.kubeconfig_path
    if existing.stack_reference is not None:
        reference = pulumi.StackReference(f"{name}-cluster", stack_name=existing.stack_reference.stack,
                                          opts=pulumi.ResourceOptions(parent=parent))
        return pulumi.Output.secret(reference.require_output(existing.stack_reference.output).apply(_as_text))
    if isinstance(existing.kubeconfig, SecretValue):
        # Only offline runs see the ciphertext (the engine decrypts before the program starts); the
        # mock provider never reads it.
        return pulumi.Output.secret(f"# encrypted in the stack file: {existing.kubeconfig.secure[:16]}...")
    assert existing.kubeconfig is not None
    return pulumi.Output.secret(existing.kubeconfig)


def _as_text(value: Any) -> str:
    # pulumi-eks exports the kubeconfig as an object; the provider takes YAML or JSON text.
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
