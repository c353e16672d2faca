"""Rules on single Kubernetes objects: how the pods of a workload are built, autoscaler bounds, namespaces."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._kube import AUTOSCALERS, NAMESPACE, WORKLOADS, Autoscaler, Container, Workload, api_of, fix, replicas_key
from ._rule import Resource, Rule
from ._values import UNKNOWN, dig, is_unknown, number, quantity, selects, show

__all__ = ["RULES"]

EKS_GUIDE = "https://docs.aws.amazon.com/eks/latest/best-practices"

DEFAULT_GRACE_SECONDS = 30.0
"""Kubernetes' terminationGracePeriodSeconds when a pod spec sets none."""
ZONE_KEY = "topology.kubernetes.io/zone"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_SLEEP = re.compile(r"(?:^|[\s;&|])sleep\s+(\d+(?:\.\d+)?)(?:$|[\s;&|])")


def _readiness_probe(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    for container in workload.containers():
        if container.kind == "init" or container.serves is not True:
            continue
        if container.body.get("readinessProbe") is None:
            key = workload.key(container)
            yield (f"Add a readiness probe to {container.label} of {workload}: it serves on a port, and without "
                   f"a probe its pod gets traffic before it can answer "
                   f"({fix(key and key + '.readinessProbe', container.field + '.readinessProbe')}).")


def _pre_stop_wait(pre_stop: object) -> float | None:
    """Seconds a preStop hook holds the container up, when it says so (a sleep action or an exec of sleep)."""
    seconds = dig(pre_stop, "sleep", "seconds")
    if seconds is not None:
        return number(seconds)
    command = dig(pre_stop, "exec", "command")
    if isinstance(command, list) and all(isinstance(part, str) for part in command):
        match = _SLEEP.search(" ".join(command))
        return float(match.group(1)) if match else None
    return None


def _graceful_shutdown(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    spec = workload.pod_spec
    if not isinstance(spec, dict):
        return
    grace = spec.get("terminationGracePeriodSeconds")
    grace = DEFAULT_GRACE_SECONDS if grace is None else number(grace)
    # Native sidecars stop only after the regular containers have exited: they need no preStop.
    for container in workload.containers():
        if container.kind != "container" or container.serves is not True:
            continue
        pre_stop = dig(container.body, "lifecycle", "preStop")
        if is_unknown(pre_stop):
            continue
        if pre_stop is None:
            yield (f"Add a preStop hook to {container.label} of {workload} (a sleep of a few seconds): endpoint "
                   f"removal and SIGTERM race, and without one it stops while requests still arrive "
                   f"(field {container.field}.lifecycle.preStop).")
            continue
        wait = _pre_stop_wait(pre_stop)
        if wait is not None and grace is not None and grace <= wait:
            yield (f"Set terminationGracePeriodSeconds of {workload} above the {wait:g}s preStop wait of "
                   f"{container.label} (now {grace:g}s): the kubelet kills the container before it finishes "
                   f"in-flight requests (field spec.template.spec.terminationGracePeriodSeconds).")


def _compute_key(workload: Workload, container: Container, resource_name: str) -> str | None:
    key = workload.key(container)
    if key is None:
        return None
    short = {"cpu": "cpu", "memory": "mem"}[resource_name]
    return f"{key}.{short}" if key.endswith(".proxy") else f"{key}.compute.{short}"


def _resource_requests(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    for container in workload.containers():
        for name in ("cpu", "memory"):
            if container.request(name) is None:
                where = fix(_compute_key(workload, container, name), f"{container.field}.resources.requests.{name}")
                yield (f"Set a {name} request on {container.label} of {workload}: the scheduler places pods by "
                       f"their requests, and one without them lands on full nodes and is evicted first ({where}).")


def _memory_limit_equals_request(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    for container in workload.containers():
        request, limit = container.request("memory"), container.resource("limits", "memory")
        if request is None or UNKNOWN in (request, limit):
            continue  # no request at all is resource-requests' violation
        where = fix(_compute_key(workload, container, "memory"), container.field + ".resources.limits.memory")
        if limit is None:
            yield (f"Set a memory limit on {container.label} of {workload} equal to its request ({show(request)}): "
                   f"without one it can take the node's memory and get other pods OOM-killed ({where}).")
        elif quantity(limit) != quantity(request) or quantity(limit) is None:
            yield (f"Set the memory limit of {container.label} of {workload} to its request ({show(request)}, "
                   f"limit now {show(limit)}): above the request the node is overcommitted and the container is the "
                   f"first killed under memory pressure ({where}).")


def _spreads_over_zones(workload: Workload) -> bool:
    """Whether a topology spread constraint or pod anti-affinity on the zone key covers the workload's own pods."""
    spec = workload.pod_spec
    if not isinstance(spec, dict):
        return True
    constraints = spec.get("topologySpreadConstraints") or []
    affinity = dig(spec, "affinity", "podAntiAffinity")
    if UNKNOWN in (constraints, affinity) or UNKNOWN in constraints:
        return True
    terms = [(c.get("topologyKey"), c.get("labelSelector")) for c in constraints if isinstance(c, dict)]
    if isinstance(affinity, dict):
        for term in affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            terms.append((dig(term, "topologyKey"), dig(term, "labelSelector")))
        for term in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            terms.append((dig(term, "podAffinityTerm", "topologyKey"), dig(term, "podAffinityTerm", "labelSelector")))
    return any(key in (ZONE_KEY, UNKNOWN) and selects(selector, workload.pod_labels) is not False
               for key, selector in terms)


def _zone_spread(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    if not _spreads_over_zones(workload):
        yield (f"Add a topologySpreadConstraint on {ZONE_KEY} that selects the pods of {workload}: without one "
               f"the scheduler may put every replica in one zone, and a zone outage takes all of them "
               f"(field spec.template.spec.topologySpreadConstraints).")


def _images_by_digest(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    for container in workload.containers():
        image = container.body.get("image")
        if not isinstance(image, str) or DIGEST.search(image):
            continue
        where = fix(workload.image_key(container), container.field + ".image")
        if "@sha256:" in image:
            digest = image.rsplit("@sha256:", 1)[1]
            yield (f"Fix the digest of image {image!r} of {container.label} of {workload}: a sha256 digest is 64 "
                   f"lowercase hex characters, this one is {len(digest)} long, and the image cannot be pulled "
                   f"({where}).")
        else:
            yield (f"Pin image {image!r} of {container.label} of {workload} by digest (name:tag@sha256:...): a tag "
                   f"can be moved to other content, so what runs would not be what was reviewed ({where}).")


def _secrets_as_files(resource: Resource) -> Iterator[str]:
    workload = Workload(resource)
    key = workload.key()
    for container in workload.containers():
        where = fix(key and key + ".secrets", container.field + ".volumeMounts")
        for variable in container.body.get("env") or []:
            secret = dig(variable, "valueFrom", "secretKeyRef", "name")
            if secret is not None and not is_unknown(secret):
                yield (f"Mount secret {secret!r} as a file instead of env var {dig(variable, 'name')!r} of "
                       f"{container.label} of {workload}: environment variables leak into logs, crash dumps and "
                       f"child processes ({where}).")
        for source in container.body.get("envFrom") or []:
            secret = dig(source, "secretRef", "name")
            if secret is not None and not is_unknown(secret):
                yield (f"Mount secret {secret!r} as files instead of envFrom in {container.label} of {workload}: "
                       f"environment variables leak into logs, crash dumps and child processes ({where}).")


def _min_le_max_replicas(resource: Resource) -> Iterator[str]:
    autoscaler = Autoscaler(resource)
    low, high = number(autoscaler.min_replicas()), number(autoscaler.max_replicas())
    if low is None or high is None or low <= high:
        return
    yield (f"Set {autoscaler.min_field} of {autoscaler} ({low:g}) at most its {autoscaler.max_field} ({high:g}): "
           f"the autoscaler cannot hold both bounds "
           f"({fix(replicas_key(resource, 'minReplicas'), 'spec.' + autoscaler.min_field)}).")


POD_SECURITY = "pod-security.kubernetes.io/enforce"


def _restricted_pod_security(resource: Resource) -> Iterator[str]:
    labels = dig(resource.props, "metadata", "labels")
    if not isinstance(labels, dict) or api_of(resource) is None:
        return
    level = labels.get(POD_SECURITY)
    if is_unknown(level) or level == "restricted":
        return
    name = dig(resource.props, "metadata", "name")
    yield (f"Label namespace {name if isinstance(name, str) else resource.name!r} {POD_SECURITY}=restricted "
           f"(now {level or 'unset'}): it runs a model API, and the API server should refuse pods that run as "
           f"root, escalate privileges or mount host paths there (field metadata.labels).")


RULES = [
    Rule("readiness-probe", "Every container that serves on a port has a readiness probe.",
         "A rollout moves on, and the Service sends traffic, only to ready pods; without a probe a pod counts as "
         "ready as soon as it starts, before the model is loaded.",
         f"{EKS_GUIDE}/application.html", _readiness_probe, WORKLOADS),
    Rule("graceful-shutdown", "Serving containers have a preStop hook, and the grace period outlasts it.",
         "Endpoint removal and SIGTERM happen in parallel; a short preStop sleep keeps the server answering until "
         "the Service and load balancers stop sending to it, and the grace period must leave time after it.",
         f"{EKS_GUIDE}/load-balancing.html", _graceful_shutdown, WORKLOADS),
    Rule("resource-requests", "Every container, init containers and sidecars included, requests CPU and memory.",
         "The scheduler and the cluster autoscaler work from requests; a pod without them is packed onto full "
         "nodes and is the first evicted.",
         f"{EKS_GUIDE}/application.html", _resource_requests, WORKLOADS),
    Rule("memory-limit-equals-request", "Every container's memory limit equals its memory request.",
         "Memory is not compressible: a limit above the request overcommits the node, and a missing limit lets "
         "one container starve the others; limit = request makes OOM behaviour predictable.",
         f"{EKS_GUIDE}/application.html", _memory_limit_equals_request, WORKLOADS),
    Rule("zone-spread", "Workload replicas are spread over availability zones.",
         "A zone outage should take a share of an API's replicas, not all of them.",
         f"{EKS_GUIDE}/application.html", _zone_spread, WORKLOADS),
    Rule("images-by-digest", "Every container image is pinned by digest.",
         "A tag can be re-pushed; a digest names exactly the image that was built, scanned and reviewed.",
         f"{EKS_GUIDE}/image-security.html", _images_by_digest, WORKLOADS, prod_only=True),
    Rule("secrets-as-files", "Secrets reach containers as mounted files, not environment variables.",
         "Environment variables are inherited by child processes and end up in logs and crash dumps; files can be "
         "rotated without a restart.",
         f"{EKS_GUIDE}/data-encryption-and-secrets-management.html", _secrets_as_files, WORKLOADS),
    Rule("min-le-max-replicas", "Autoscalers' minimum replica count is at most their maximum.",
         "An HPA or ScaledObject with min above max cannot be satisfied and does not scale as declared.",
         "https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/", _min_le_max_replicas,
         AUTOSCALERS),
    Rule("restricted-pod-security", "Model API namespaces enforce the restricted Pod Security Standard.",
         "Model servers run third-party code and weights; the restricted profile keeps a compromised server from "
         "gaining root or the node.",
         f"{EKS_GUIDE}/pod-security.html", _restricted_pod_security, frozenset({NAMESPACE})),
]
