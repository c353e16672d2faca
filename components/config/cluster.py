"""``modelplane:cluster``: the cluster, its network, endpoint, system nodes, Prometheus and chart sources, and their rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from ipaddress import IPv4Network
from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from pydantic.alias_generators import to_camel

from ..charts import CHARTS, KUBERNETES_VERSIONS
from ._base import Cidr, Duration, Issue, _Model
from .existing import ExistingClusterConfig
from .network import NetworkPeer, _check_peers

AMP_URL = re.compile(r"^https://aps-workspaces\.([a-z0-9-]+)\.amazonaws\.com/workspaces/(ws-[A-Za-z0-9-]+)/?$")
"""An Amazon Managed Service for Prometheus workspace endpoint: (region, workspace id)."""


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
    scrapers: list[NetworkPeer] | None = Field(None, max_length=16)
    """Who scrapes the API pods' metrics ports, for their NetworkPolicies (e.g. ``[{namespace: observability}]``, or the ``cidr`` of a managed collector). Unset: the Prometheus modelplane installs, or the namespace of an in-cluster ``url`` (``http://<service>.<namespace>.svc:9090``); otherwise nobody."""


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
    capacity_engine: Literal["managedNodeGroups", "karpenter"] = "managedNodeGroups"
    """What gives the node groups their nodes: ``managedNodeGroups`` (one EKS managed node group per group, scaled by the cluster autoscaler) or ``karpenter`` (one Karpenter NodePool per group, with spot interruption handling; the system node group stays a managed node group, as Karpenter must not run on nodes it manages). Changing it replaces every node group's nodes."""
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = [
        "api", "audit", "authenticator"]
    """Control-plane log types sent to CloudWatch."""
    deletion_protection: bool = False
    """Refuse to delete the EKS cluster until this is turned off (turn on for production)."""
    tags: dict[Annotated[str, StringConstraints(max_length=128)],
               Annotated[str, StringConstraints(max_length=256)]] = {}
    """AWS tags put on every AWS resource of the estate."""
    charts: dict[ChartName, ChartSourceConfig] = {}
    """Where the add-on charts come from, by chart name (``keda``, ``kube-prometheus-stack``, ``nvidia-device-plugin``, ``cluster-autoscaler``, ``aws-load-balancer-controller``, ``karpenter``): a mirror or an OCI registry for air-gapped estates. Unset: each chart's public repository at the pinned version."""


def amp_workspace(url: str | None) -> tuple[str, str] | None:
    """(region, workspace id) when ``url`` is an Amazon Managed Prometheus workspace, else None."""
    match = AMP_URL.match(url or "")
    return (match.group(1), match.group(2)) if match else None


def _check_cluster(cluster: ClusterConfig, path: tuple[str | int, ...],
                   warnings: list[str]) -> Iterator[Issue]:
    prometheus = cluster.prometheus
    if prometheus.url is not None:
        for knob in ("retention",):
            if knob in prometheus.model_fields_set:
                yield Issue(path + ("prometheus", to_camel(knob)), "applies to the Prometheus modelplane installs, "
                                                                   "not to an external one (url)")
    yield from _check_peers(prometheus.scrapers or [], path + ("prometheus", "scrapers"))
    if cluster.existing is not None:
        if cluster.capacity_engine == "karpenter":
            yield Issue(path + ("capacityEngine",), "karpenter applies to a cluster modelplane creates; an existing "
                                                    "cluster's nodes are its own: describe its pools (Karpenter "
                                                    "NodePools too) as nodeGroups by their labels and taints, and "
                                                    "remove capacityEngine")
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
