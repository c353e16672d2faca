"""``modelplane:apis``: model APIs (containers, probes, sidecars, proxy, queue, rollout limits), and their rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from ._base import (
    CpuQuantity,
    DnsLabel,
    EnvName,
    IntOrPercent,
    Issue,
    MemQuantity,
    _gib,
    _millicores,
    _Model,
    duration_seconds,
)
from .autoscaling import AutoscalingConfig, _check_autoscaling, scaling_metric
from .network import NetworkConfig, _check_network
from .traffic import CanaryConfig, ExposeConfig, ShadowConfig, _check_traffic
from .node_groups import NodeGroupConfig, gpus_per_node

if TYPE_CHECKING:
    from .cluster import ClusterConfig

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

PROXY_IMAGE = ("envoyproxy/envoy:distroless-v1.39.2"
               "@sha256:dced08cf7c472e1a1d067f906878266078eeeb63c110b4961882c039a622853a")
"""The Envoy image the proxy runs unless an API pins another: pinned by its multi-arch index digest
(amd64 and arm64), the tag kept for readers."""

RUN_AS_USER = 65532
"""UID and GID an API's containers run as unless it sets another (the distroless images' ``nonroot``)."""

PROXY_PORT = 8888
"""Port the proxy takes requests on (the Service forwards here when the proxy is on)."""

PROXY_METRICS_PORT = 9902
"""Port the proxy serves ``/stats/prometheus`` and ``/ready`` on."""

PROXY_ADMIN_PORT = 9901
"""Envoy's admin interface, bound to 127.0.0.1 only."""

PINNED_IMAGE = re.compile(r"^(.*/)?([^/@]*@sha256:[0-9a-f]{64}|[^/@]*:(?!latest$)[^/:@]*)$")
"""An image reference with a digest (``@sha256:`` and 64 hex digits), or a tag other than ``latest``, in its last path segment (``repo/model:1.2.0``)."""

SQS_URL = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com/([0-9]{12})/([A-Za-z0-9_-]{1,80}(\.fifo)?)$")
"""An SQS queue URL: (region, account, queue name)."""


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


class SidecarConfig(_Model):
    """Another container in every replica, e.g. a Python model behind a fast front-end, talking over a Unix socket in ``/var/run/modelplane``."""

    image: str = Field(pattern=r"^[^\s]+$")
    """Container image with an explicit tag or digest, pulled as the API's ``image`` is. Required."""
    command: list[str] | None = None
    """Container entrypoint override."""
    args: list[str] | None = None
    """Container arguments override."""
    env: dict[EnvName, str] = {}
    """Environment variables (values are strings)."""
    compute: ContainerComputeConfig = ContainerComputeConfig()
    """Resources of this container (GPUs count towards the replica's total)."""
    port: int | None = Field(None, ge=1024, le=65535)
    """TCP port the sidecar listens on, for its probes (unprivileged: >= 1024). Unset: it serves only over the socket directory, and has no probes."""
    readiness_probe: ProbeConfig | None = None
    """Readiness probe against ``port``: the replica takes traffic only while the sidecar is ready too. Unset: none."""
    liveness_probe: ProbeConfig | None = None
    """Liveness probe against ``port``: restarts the sidecar when it hangs. Unset: none."""
    startup_probe: StartupProbeConfig | None = None
    """Startup probe against ``port``, for a sidecar that loads a model. Unset: none."""


class ProxyConfig(_Model):
    """The Envoy sidecar every request passes through: it enforces ``maxConcurrency`` and ``maxQueueLength`` (503 beyond them) and exports the in-flight count the autoscaler reads."""

    enabled: bool = True
    """Run the proxy. Off: the Service reaches the server directly, and the API scales on ``cpu``, ``memory``, ``queue`` or a ``custom`` query of the server's own metrics."""
    image: str = Field(PROXY_IMAGE, pattern=r"^[^\s]+$")
    """Envoy image (an official ``envoyproxy/envoy`` build; by default a distroless one, pinned by digest)."""
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
    """Container image with an explicit tag or digest. Required. A tag is looked up in the registry at every container start (``imagePullPolicy: Always``); an image pinned by digest starts from the node's copy when it has one."""
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
    run_as_user: int = Field(RUN_AS_USER, ge=1, le=2147483647)
    """UID and GID of every container in a replica, whatever user its image names (the proxy keeps its own); the image's files must be readable by it. Keep it at 10000 or above, clear of the nodes' own users."""
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
    network: NetworkConfig = NetworkConfig()
    """Who may reach the API's pods and where they may connect (its namespace's NetworkPolicy)."""
    expose: ExposeConfig | None = None
    """Reach the API from outside the cluster over HTTPS, through a load balancer shared by the APIs of its visibility. Unset: in-cluster only (``apiUrls``)."""
    canary: CanaryConfig | None = None
    """A second version taking a weighted share of the load balancer's requests. Unset: none."""
    shadow: ShadowConfig | None = None
    """A second version receiving a mirrored copy of a share of the requests, its responses discarded. Unset: none."""


def api_gpus(api: ApiConfig) -> int:
    """GPUs one replica of ``api`` requests: its serving container's plus its sidecars'."""
    return api.compute.gpu + sum(sidecar.compute.gpu for sidecar in api.sidecars.values())


def sqs_queue(url: str) -> tuple[str, str, str]:
    """(region, account, queue name) of an SQS queue URL (validated by :data:`SQS_URL`)."""
    match = SQS_URL.match(url)
    if match is None:
        raise ValueError(f"not an SQS queue URL: {url!r}")
    return match.group(1), match.group(2), match.group(3)


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


def surge_replicas(api: ApiConfig, replicas: int) -> int:
    """Extra replicas a rollout of ``replicas`` may start (Kubernetes rounds a percent surge up)."""
    surge = effective_update_strategy(api)[0]
    if isinstance(surge, int):
        return surge
    return -(-replicas * int(surge[:-1]) // 100)


def image_pull_policy(image: str) -> str:
    """The kubelet's pull policy for ``image``: ``IfNotPresent`` when pinned by digest, else ``Always``.

    A digest names one immutable image, so a node's cached copy is it, and a scale-up starts from
    the cache without asking the registry. A tag can be pushed again: ``Always`` makes the kubelet
    resolve it at every container start (a manifest request; layers it has are not fetched again),
    so no replica runs an older image under the same tag, and no pod runs a cached private image
    without the credentials to pull it.
    """
    return "IfNotPresent" if "@" in image else "Always"


def _check_api(name: str, api: ApiConfig, groups: dict[str, NodeGroupConfig], group_names: list[str],
               path: tuple[str | int, ...], cluster: ClusterConfig | None = None) -> Iterator[Issue]:
    images = [(path + ("image",), api.image)] + [(path + ("sidecars", n, "image"), c.image)
                                                 for n, c in api.sidecars.items()]
    if api.proxy.enabled:
        images.append((path + ("proxy", "image"), api.proxy.image))
    for where, image in images:
        if PINNED_IMAGE.fullmatch(image):
            continue
        if "@" in image.rsplit("/", 1)[-1]:
            yield Issue(where, f"{image!r} has a malformed digest; a digest is @sha256: followed by 64 lower-case "
                               "hex digits (docker buildx imagetools inspect <image> prints it)")
        else:
            yield Issue(where, f"{image!r} needs an explicit tag or digest other than latest "
                               "(e.g. repo/model:1.2.0): a moving tag makes rollouts invisible to Pulumi diffs")
    if MAIN_CONTAINER in api.sidecars:
        yield Issue(path + ("sidecars", MAIN_CONTAINER), f"{MAIN_CONTAINER!r} is the serving container's name; "
                                                         "pick another sidecar name")
    if api.proxy.enabled and PROXY_CONTAINER in api.sidecars:
        yield Issue(path + ("sidecars", PROXY_CONTAINER), f"{PROXY_CONTAINER!r} is the request proxy's name; "
                                                          "pick another sidecar name")
    yield from _check_sidecar_ports(api, path)
    yield from _check_network(api, path)
    yield from _check_traffic(name, api, path)
    yield from _check_proxy(api, path)
    yield from _check_autoscaling(name, api, path, cluster)
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
    # Whether the whole pod fits on a node of the group: schedulability.check_pod_fit.


def _check_sidecar_ports(api: ApiConfig, path: tuple[str | int, ...]) -> Iterator[Issue]:
    """Sidecar probes need the sidecar's port, and no two containers of a pod listen on one port."""
    taken = {api.port: "the serving container's port"}
    if api.proxy.enabled:
        taken |= {PROXY_PORT: "the proxy's port", PROXY_METRICS_PORT: "the proxy's metrics port",
                  PROXY_ADMIN_PORT: "the proxy's admin port"}
    for name, sidecar in api.sidecars.items():
        at = path + ("sidecars", name)
        if sidecar.port is None:
            for probe in ("readiness_probe", "liveness_probe", "startup_probe"):
                if getattr(sidecar, probe) is not None:
                    yield Issue(at + (to_camel(probe),), "probes the sidecar over HTTP and needs its `port`; set "
                                                         "the port it listens on, or remove the probe")
            continue
        if sidecar.port in taken:
            yield Issue(at + ("port",), f"{sidecar.port} is already {taken[sidecar.port]} in the same pod; pick "
                                        "another port")
        taken.setdefault(sidecar.port, f"the port of sidecar {name!r}")


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
    # A declared name may itself be broken (reported on its own): quoted, a control character cannot break the line.
    valid = ", ".join(n if n.isprintable() else json.dumps(n) for n in declared) or "none are declared"
    return Issue(path + ("nodeGroup",), f"node group {group!r} does not exist in modelplane:nodeGroups "
                                        f"(declared: {valid})")
