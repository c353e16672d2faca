"""Whether every API's pod fits on a node of its group, and how many nodes a group needs.

Two rules, both judged with the instance facts of :mod:`modelplane.catalog`:

- **fit** (an error): each API's pod (every container: the server, its sidecars
  and the proxy, by Kubernetes' effective-request rule) fits on one node of its
  group after the kubelet's reserve and the DaemonSets that run on every node;
- **headroom** (a warning): the group's ``maxSize`` holds, bin-packed (first-fit
  decreasing over CPU, memory, GPUs and pod slots), every pod it must at
  maxReplicas (with canaries and shadows) plus the largest single rollout surge.

A group with several instance types is judged by its smallest: each type must
hold the pod (EKS may launch any of them), and the node count assumes nodes
with the least CPU, memory, GPUs and pod slots of any of its types.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import catalog
from ._base import Issue, _gib, _millicores
from .apis import ApiConfig, api_gpus, surge_replicas
from .node_groups import NodeGroupConfig, gpus_per_node
from .traffic import canary_replicas, second_version_replicas


@dataclass(frozen=True)
class Resources:
    """What a pod requests, or what a node offers: CPU (millicores), memory (MiB), GPUs and pod slots."""

    cpu: float = 0.0
    mem: float = 0.0
    gpus: int = 0
    pods: int = 1

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.mem + other.mem, self.gpus + other.gpus, self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.mem - other.mem, self.gpus - other.gpus, self.pods - other.pods)

    def within(self, room: Resources) -> bool:
        """Whether this request fits in ``room``."""
        return (self.cpu <= room.cpu and self.mem <= room.mem and self.gpus <= room.gpus
                and self.pods <= room.pods)

    def shown(self) -> str:
        """``6 CPU, 20Gi memory, 1 GPU`` (GPUs only when there are some)."""
        gpus = f", {self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ""
        return f"{_cpu(self.cpu)} CPU, {_mem(self.mem)} memory{gpus}"


def _cpu(millicores: float) -> str:
    return f"{millicores / 1000:.3f}".rstrip("0").rstrip(".")


def _mem(mib: float) -> str:
    return f"{mib / 1024:.3f}".rstrip("0").rstrip(".") + "Gi" if mib >= 1024 else f"{mib:.0f}Mi"


@dataclass(frozen=True)
class DaemonSet:
    """A DaemonSet whose pod runs on every node of a group, and what it requests there."""

    name: str
    requests: Resources
    source: str
    """Where the numbers come from."""


AWS_NODE = DaemonSet("aws-node", Resources(cpu=50), "the VPC CNI (aws-k8s-cni v1.20+): aws-node and "
                     "aws-eks-nodeagent request 25m CPU each (its init container's 25m runs before them)")
KUBE_PROXY = DaemonSet("kube-proxy", Resources(cpu=100), "the EKS kube-proxy add-on: 100m CPU")
DEVICE_PLUGIN = DaemonSet("nvidia-device-plugin", Resources(), "nvidia-device-plugin chart 0.17.1: no requests "
                          "(a pod slot only)")
NODE_EXPORTER = DaemonSet("node-exporter", Resources(), "kube-prometheus-stack's prometheus-node-exporter: no "
                          "requests (a pod slot only); it tolerates NoSchedule taints")

EKS_DAEMONSETS = (AWS_NODE, KUBE_PROXY)
"""What every EKS node runs (EKS's default add-ons), whatever the estate installs."""


def daemonsets(group: NodeGroupConfig, node_exporter: bool) -> list[DaemonSet]:
    """The DaemonSets on each node of ``group``: EKS's, the device plugin on GPU nodes, the node exporter if installed.

    An existing cluster may run more; modelplane counts what EKS and modelplane put there.
    """
    found = list(EKS_DAEMONSETS)
    if group.gpu:
        found.append(DEVICE_PLUGIN)
    if node_exporter and all(t.effect != "NoExecute" for t in group.taints):
        found.append(NODE_EXPORTER)
    return found


@dataclass(frozen=True)
class NodeShape:
    """What one node of a group offers the APIs' pods."""

    instance_type: catalog.InstanceType
    """The type (for a group of several, a stand-in with the least of each resource; see :func:`node_shape`)."""
    allocatable: Resources
    """The kubelet's allocatable: capacity less its reserve and eviction threshold; pods = maxPods."""
    daemonsets: tuple[DaemonSet, ...]
    room: Resources
    """Allocatable less the DaemonSets' requests and pod slots: what the APIs' pods may take."""
    label: str = ""
    """How messages name the node: the type, or ``the least of g5.xlarge, g4dn.xlarge`` for a composite."""

    @property
    def name(self) -> str:
        return self.label or self.instance_type.name

    def described(self) -> str:
        a, r = self.allocatable, self.room
        gpus = f", {a.gpus} GPU{'s' if a.gpus != 1 else ''}" if a.gpus else ""
        names = ", ".join(d.name for d in self.daemonsets)
        return (f"{_cpu(a.cpu)} CPU, {_mem(a.mem)} memory{gpus}, {a.pods} pods allocatable after the kubelet "
                f"reserve; {_cpu(r.cpu)} CPU, {_mem(r.mem)}, {r.pods} pods after the DaemonSets ({names})")


def type_shape(itype: catalog.InstanceType, group: NodeGroupConfig, node_exporter: bool) -> NodeShape:
    """One node of ``itype`` in ``group``."""
    gpus = group.gpus_per_node if (group.gpu and group.gpus_per_node is not None) else itype.gpus
    allocatable = Resources(itype.allocatable_cpu_millicores, itype.allocatable_memory_mib,
                            gpus if group.gpu else 0, itype.max_pods)
    sets = tuple(daemonsets(group, node_exporter))
    used = Resources(sum(d.requests.cpu for d in sets), sum(d.requests.mem for d in sets), 0, len(sets))
    return NodeShape(itype, allocatable, sets, allocatable - used)


def node_shape(group: NodeGroupConfig, node_exporter: bool) -> NodeShape | None:
    """The node a group is counted in: its smallest type, or for types that differ, the least of each resource.

    None when a type is unknown (reported by the node-group check).
    """
    types = [catalog.lookup(t) for t in group.instance_types]
    if any(t is None for t in types):
        return None
    shapes = [type_shape(t, group, node_exporter) for t in types if t is not None]
    smallest = min(shapes, key=lambda s: (s.room.gpus, s.room.cpu, s.room.mem, s.room.pods))
    if all(smallest.room.within(s.room) for s in shapes):
        return smallest
    least = Resources(min(s.allocatable.cpu for s in shapes), min(s.allocatable.mem for s in shapes),
                      min(s.allocatable.gpus for s in shapes), min(s.allocatable.pods for s in shapes))
    room = Resources(min(s.room.cpu for s in shapes), min(s.room.mem for s in shapes),
                     min(s.room.gpus for s in shapes), min(s.room.pods for s in shapes))
    label = "the least of " + ", ".join(dict.fromkeys(group.instance_types))
    return NodeShape(smallest.instance_type, least, smallest.daemonsets, room, label)


# --------------------------------------------------------------------------- pods

def pod_containers(api: ApiConfig) -> list[tuple[str, Resources]]:
    """(container, requests) of every container of one of the API's pods (its canary's and shadow's are the same)."""
    def of(cpu: str, mem: str | None, gpus: int) -> Resources:
        return Resources(_millicores(cpu), _gib(mem) * 1024 if mem is not None else 0.0, gpus, 0)

    parts = [("model", of(api.compute.cpu, api.compute.mem, api.compute.gpu))]
    parts += [(name, of(s.compute.cpu, s.compute.mem, s.compute.gpu)) for name, s in api.sidecars.items()]
    if api.proxy.enabled:
        parts.append(("proxy", of(api.proxy.cpu, api.proxy.mem, 0)))
    return parts


def pod_requests(api: ApiConfig) -> Resources:
    """What the scheduler counts for one pod of ``api``: Kubernetes' effective requests, one pod slot.

    Effective requests are the larger of the containers' sum and each init container's; modelplane's
    only init container is the proxy, a native sidecar (``restartPolicy: Always``), which runs beside
    the containers and so adds to their sum.
    """
    total = Resources(pods=1)
    for _, requests in pod_containers(api):
        total = total + requests
    return total


@dataclass(frozen=True)
class PodGroup:
    """``count`` pods of one Deployment (an API or its canary/shadow)."""

    name: str
    requests: Resources
    count: int


def pods_at_min(name: str, api: ApiConfig) -> list[PodGroup]:
    """The API's pods at minReplicas (its canary at its minReplicas, its shadow's fixed replicas)."""
    requests = pod_requests(api)
    out = [PodGroup(name, requests, api.autoscaling.min_replicas)]
    if api.canary is not None:
        out.append(PodGroup(f"{name}-canary", requests, canary_replicas(api)[0]))
    if api.shadow is not None:
        out.append(PodGroup(f"{name}-shadow", requests, api.shadow.replicas))
    return out


def pods_at_max(name: str, api: ApiConfig) -> list[PodGroup]:
    """The API's pods at maxReplicas, with its canary at maxReplicas or its shadow."""
    requests = pod_requests(api)
    out = [PodGroup(name, requests, api.autoscaling.max_replicas)]
    second = second_version_replicas(api)
    if second:
        out.append(PodGroup(f"{name}-{'canary' if api.canary is not None else 'shadow'}", requests, second))
    return out


def surges(name: str, api: ApiConfig) -> list[PodGroup]:
    """One rollout's extra pods, for the API and for its second version (each rollout on its own)."""
    requests = pod_requests(api)
    out = []
    for group in pods_at_max(name, api):
        if group.count:
            out.append(PodGroup(group.name, requests, surge_replicas(api, group.count)))
    return out


def bin_pack(pods: list[PodGroup], room: Resources) -> int:
    """Nodes of ``room`` that first-fit decreasing needs for ``pods`` (pods that fit no node are left out)."""
    def size(r: Resources) -> float:
        shares = [r.cpu / room.cpu if room.cpu > 0 else 0, r.mem / room.mem if room.mem > 0 else 0,
                  r.gpus / room.gpus if room.gpus > 0 else 0, r.pods / room.pods if room.pods > 0 else 0]
        return max(shares)

    flat = [(g.name, g.requests) for g in pods for _ in range(g.count) if g.requests.within(room)]
    flat.sort(key=lambda p: (-size(p[1]), p[0]))
    free: list[Resources] = []
    for _, requests in flat:
        for index, left in enumerate(free):
            if requests.within(left):
                free[index] = left - requests
                break
        else:
            free.append(room - requests)
    return len(free)


@dataclass(frozen=True)
class GroupNeed:
    """Nodes a group needs for its APIs at minReplicas and at maxReplicas plus the largest rollout surge."""

    group: str
    shape: NodeShape
    at_min: int
    at_max: int
    peak: list[PodGroup] = field(default_factory=list)
    surge: PodGroup | None = None
    """The rollout surge that needs the most nodes on top of the peak."""
    max_size: int = 0

    @property
    def fits(self) -> bool:
        return self.at_max <= self.max_size


def group_need(name: str, group: NodeGroupConfig, apis: dict[str, ApiConfig], node_exporter: bool) -> GroupNeed | None:
    """What ``group`` needs for the APIs on it; None when its types are unknown or no API runs there."""
    shape = node_shape(group, node_exporter)
    on_group = {n: a for n, a in sorted(apis.items()) if a.node_group == name}
    if shape is None or not on_group:
        return None
    low = [g for n, a in on_group.items() for g in pods_at_min(n, a)]
    peak = [g for n, a in on_group.items() for g in pods_at_max(n, a)]
    at_peak = bin_pack(peak, shape.room)
    worst: PodGroup | None = None
    at_max = at_peak
    # Rollouts of different Deployments rarely overlap: the one that needs the most nodes counts.
    for n, a in on_group.items():
        for candidate in surges(n, a):
            needed = bin_pack(peak + [candidate], shape.room)
            if worst is None or needed > at_max:
                worst, at_max = candidate, needed
    return GroupNeed(name, shape, bin_pack(low, shape.room), at_max, peak, worst, group.max_size)


# --------------------------------------------------------------------------- the rules

def check_pod_fit(apis: dict[str, ApiConfig], groups: dict[str, NodeGroupConfig], node_exporter: bool,
                  path: tuple[str | int, ...]) -> Iterator[Issue]:
    """Each API's pod fits on one node of every instance type of its group."""
    for name, api in sorted(apis.items()):
        group = groups.get(api.node_group)
        if group is None:
            continue
        wanted = pod_requests(api)
        for type_name in dict.fromkeys(group.instance_types):
            itype = catalog.lookup(type_name)
            if itype is None:
                break
            if api_gpus(api) > (gpus_per_node(group) if group.gpu else 0):
                break  # reported by the API check (GPUs on a CPU group, or more per replica than a node has)
            shape = type_shape(itype, group, node_exporter)
            if wanted.within(shape.room):
                continue
            yield Issue(_fit_path(api, wanted, shape.room, path + (name,)),
                        _fit_message(name, api, wanted, shape, group))
            break


def _fit_path(api: ApiConfig, wanted: Resources, room: Resources, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    if wanted.cpu > room.cpu and wanted.mem <= room.mem:
        return path + ("compute", "cpu")
    if wanted.mem > room.mem and wanted.cpu <= room.cpu:
        return path + ("compute", "mem")
    return path + ("compute",)


def _fit_message(name: str, api: ApiConfig, wanted: Resources, shape: NodeShape, group: NodeGroupConfig) -> str:
    parts = pod_containers(api)
    breakdown = ""
    if len(parts) > 1:
        breakdown = " (" + ", ".join(f"{c} {_cpu(r.cpu)} CPU/{_mem(r.mem)}" for c, r in parts) + ")"
    several = "; EKS may launch any of its types" if len(set(group.instance_types)) > 1 else ""
    short = [what for what, over in (("CPU", wanted.cpu > shape.room.cpu), ("memory", wanted.mem > shape.room.mem),
                                     ("pod slots", wanted.pods > shape.room.pods)) if over]
    return (f"API {name!r} needs {wanted.shown()} per pod{breakdown}; one node of group {api.node_group!r} "
            f"({shape.instance_type.name}{several}) has {shape.described()}: not enough {' or '.join(short)}. "
            f"{_bigger(shape.instance_type, wanted, group)}lower the requests")


def _bigger(itype: catalog.InstanceType, wanted: Resources, group: NodeGroupConfig) -> str:
    """``use g5.2xlarge (7.91 CPU, ...) or `` when a bigger size of the family holds the pod."""
    family = itype.name.split(".", 1)[0]
    fitting = []
    for candidate in (catalog.lookup(t) for t in catalog.known_types() if t.split(".", 1)[0] == family):
        if candidate is None or candidate.gpus < itype.gpus:
            continue
        if wanted.within(type_shape(candidate, group, False).room):
            fitting.append(candidate)
    if not fitting:
        return ""
    best = min(fitting, key=lambda t: (t.vcpus, t.memory_gib, t.gpus))
    return f"Use a bigger type (the smallest {family} that holds it: {best.name}, {best.vcpus} vCPU, " \
           f"{best.memory_gib:g} GiB) or "


def headroom_warnings(groups: dict[str, NodeGroupConfig], apis: dict[str, ApiConfig], node_exporter: bool) -> list[str]:
    """Groups whose maxSize cannot hold their APIs at maxReplicas plus a rollout's surge, bin-packed.

    At that point a rollout's new replicas stay Pending and, with maxUnavailable 0, the rollout
    stalls until its deadline: ``pulumi up`` fails.
    """
    warnings = []
    for name, group in groups.items():
        need = group_need(name, group, apis, node_exporter)
        if need is None or need.fits:
            continue
        peak = ", ".join(f"{g.name} {g.count}" for g in need.peak if g.count)
        gpus = sum(g.count * g.requests.gpus for g in need.peak)
        gpu_text = f" with {gpus} GPU(s)" if gpus else ""
        surge = (f" and a rollout surges {need.surge.count} more ({need.surge.name})"
                 if need.surge is not None and need.surge.count else "")
        shape = need.shape
        per_node = (f"{shape.room.gpus} GPU(s), " if shape.room.gpus else "") + \
            f"{_cpu(shape.room.cpu)} CPU, {_mem(shape.room.mem)}, {shape.room.pods} pods"
        warnings.append(
            f"node group {name!r}: its APIs at maxReplicas run {sum(g.count for g in need.peak)} pods{gpu_text} "
            f"({peak}){surge}; bin-packed on {shape.name} nodes ({per_node} for API pods after the "
            f"kubelet reserve and DaemonSets) they need {need.at_max} nodes, but maxSize is {group.max_size}; "
            f"a rollout at peak load would stall with pods Pending (raise maxSize to {need.at_max}, lower "
            "maxReplicas or use a bigger instance type)")
    return warnings
