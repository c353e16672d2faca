"""Kubernetes objects as the rules read them: workloads, their containers, and which modelplane API they are.

A modelplane API's objects carry ``app.kubernetes.io/managed-by: modelplane``
and ``modelplane.io/api: <name>`` (a canary's or shadow's also
``modelplane.io/canary-of`` or ``modelplane.io/shadow-of: <name>``); for
those, messages name the stack-file key that fixes a violation, for anything
else the Kubernetes field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from ._rule import Resource, Stack
from ._values import UNKNOWN, Unknown, dig, is_unknown, quantity

__all__ = [
    "API_LABEL", "AUTOSCALERS", "DEPLOYMENT", "GPU_RESOURCE", "HPAS", "NAMESPACE", "NETWORK_POLICY", "PDB",
    "SCALED_OBJECT", "VERSION_OF", "WORKLOADS", "Autoscaler", "Container", "Workload", "api_of", "autoscalers_of",
    "fix", "namespace_of", "replicas_key", "version_of", "workloads",
]

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
WORKLOADS = frozenset({DEPLOYMENT, "kubernetes:apps/v1:StatefulSet"})
"""Workloads with a pod template whose replicas serve requests."""
HPAS = frozenset({"kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
                  "kubernetes:autoscaling/v1:HorizontalPodAutoscaler"})
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
AUTOSCALERS = HPAS | {SCALED_OBJECT}
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"

MANAGED_BY = "app.kubernetes.io/managed-by"
MODELPLANE = "modelplane"
API_LABEL = "modelplane.io/api"
MAIN_CONTAINER = "model"
"""The serving container of a modelplane API (its settings live directly under ``modelplane:apis.<api>``)."""
PROXY_CONTAINER = "proxy"
"""The request proxy, a native sidecar (``modelplane:apis.<api>.proxy``)."""
GPU_RESOURCE = "nvidia.com/gpu"

DEFAULT_NAMESPACE = "default"
"""Where an object without ``metadata.namespace`` goes (the provider's default namespace)."""


VERSION_OF = {"canary": "modelplane.io/canary-of", "shadow": "modelplane.io/shadow-of"}
"""Labels on the objects of an API's canary or shadow, naming the API (their ``modelplane.io/api`` is
``<api>-canary`` or ``<api>-shadow``, their own selector value)."""


def _modelplane_labels(resource: Resource) -> dict[str, Any] | None:
    labels = dig(resource.props, "metadata", "labels")
    if not isinstance(labels, dict) or labels.get(MANAGED_BY) != MODELPLANE:
        return None
    return labels


def api_of(resource: Resource) -> str | None:
    """The modelplane API an object belongs to (a canary's or shadow's: the API's), from its labels; None for
    anything modelplane did not make."""
    labels = _modelplane_labels(resource)
    if labels is None:
        return None
    for label in (*VERSION_OF.values(), API_LABEL):
        api = labels.get(label)
        if isinstance(api, str):
            return api
    return None


def version_of(resource: Resource) -> str | None:
    """``canary`` or ``shadow`` for the objects of an API's second version; None otherwise."""
    labels = _modelplane_labels(resource)
    if labels is None:
        return None
    return next((version for version, label in VERSION_OF.items() if isinstance(labels.get(label), str)), None)


def replicas_key(resource: Resource, bound: Literal["minReplicas", "maxReplicas"]) -> str | None:
    """The stack-file key of a replica bound of the API (or second version) ``resource`` belongs to."""
    api = api_of(resource)
    if api is None:
        return None
    version = version_of(resource)
    if version == "canary":
        return f"modelplane:apis.{api}.canary.{bound}"
    if version == "shadow":
        return f"modelplane:apis.{api}.shadow.replicas"
    return f"modelplane:apis.{api}.autoscaling.{bound}"


def namespace_of(resource: Resource) -> str | Unknown:
    """``metadata.namespace``, the default namespace when unset."""
    namespace = dig(resource.props, "metadata", "namespace")
    if is_unknown(namespace):
        return UNKNOWN
    return namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE


def fix(key: str | None, field: str) -> str:
    """Where a fix goes: the stack-file key for a modelplane API, else the Kubernetes field."""
    return f"stack file: {key}" if key else f"field {field}"


ContainerKind = Literal["container", "sidecar", "init"]


@dataclass(frozen=True)
class Container:
    """One container of a pod template."""

    body: dict[str, Any]
    kind: ContainerKind
    """``container``; ``sidecar``: a native sidecar (init container with ``restartPolicy: Always``); ``init``."""
    field: str
    """Its path in the workload, for messages: ``spec.template.spec.containers[0]``."""

    @property
    def name(self) -> str:
        name = self.body.get("name")
        return name if isinstance(name, str) else "?"

    @property
    def label(self) -> str:
        return f"{'init container' if self.kind == 'init' else self.kind} {self.name!r}"

    @property
    def serves(self) -> bool | Unknown:
        """Whether it declares a port (a server); unknown when its ports are."""
        ports = self.body.get("ports")
        if is_unknown(ports):
            return UNKNOWN
        return bool(ports)

    def resource(self, kind: Literal["requests", "limits"], name: str) -> Any:
        """``resources.<kind>.<name>``: the raw value, None when unset, UNKNOWN when unknown."""
        return dig(self.body, "resources", kind, name)

    def request(self, name: str) -> Any:
        """The effective request: ``requests.<name>``, or the limit (Kubernetes defaults the request to it)."""
        request = self.resource("requests", name)
        return self.resource("limits", name) if request is None else request

    def gpus(self) -> Fraction | Unknown:
        """NVIDIA GPUs the container asks for (0 when none)."""
        value = self.resource("limits", GPU_RESOURCE)
        if value is None:
            value = self.resource("requests", GPU_RESOURCE)
        if value is None:
            return Fraction(0)
        if is_unknown(value):
            return UNKNOWN
        return quantity(value) or Fraction(0)


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet: its pod template and the modelplane API it belongs to."""

    resource: Resource

    @property
    def kind(self) -> str:
        return self.resource.type.rsplit(":", 1)[-1]

    @property
    def name(self) -> str | Unknown:
        """``metadata.name`` (what autoscalers and PDBs refer to); UNKNOWN when it is auto-named."""
        name = dig(self.resource.props, "metadata", "name")
        return name if isinstance(name, str) else UNKNOWN

    @property
    def namespace(self) -> str | Unknown:
        return namespace_of(self.resource)

    @property
    def api(self) -> str | None:
        return api_of(self.resource)

    @property
    def version(self) -> str | None:
        """``canary`` or ``shadow`` for an API's second version."""
        return version_of(self.resource)

    @property
    def selector_value(self) -> str | None:
        """Its ``modelplane.io/api`` label: the API's name, or ``<api>-canary`` / ``<api>-shadow``."""
        value = dig(self.resource.props, "metadata", "labels", API_LABEL)
        return value if isinstance(value, str) else None

    def replicas_key(self, bound: Literal["minReplicas", "maxReplicas"]) -> str | None:
        return replicas_key(self.resource, bound)

    def image_key(self, container: Container) -> str | None:
        """The stack-file key of a container's image (a second version's serving image is in its own block)."""
        key = self.key(container)
        if key is None:
            return None
        if self.version is not None and container.kind == "container" and container.name == MAIN_CONTAINER:
            return f"{key}.{self.version}.image"
        return f"{key}.image"

    def __str__(self) -> str:
        name = self.name if isinstance(self.name, str) else self.resource.name
        namespace = self.namespace if isinstance(self.namespace, str) else "?"
        return f"{self.kind} {namespace}/{name}"

    @property
    def pod_spec(self) -> Any:
        """``spec.template.spec`` (a dict, None, or UNKNOWN)."""
        return dig(self.resource.props, "spec", "template", "spec")

    @property
    def pod_labels(self) -> Any:
        return dig(self.resource.props, "spec", "template", "metadata", "labels")

    def containers(self) -> list[Container]:
        """Every known container: the regular ones, then the init containers (native sidecars among them)."""
        spec = self.pod_spec
        if not isinstance(spec, dict):
            return []
        found: list[Container] = []
        for group in ("containers", "initContainers"):
            items = spec.get(group)
            if not isinstance(items, list):
                continue
            for index, body in enumerate(items):
                if not isinstance(body, dict):
                    continue
                kind: ContainerKind = "container"
                if group == "initContainers":
                    kind = "sidecar" if body.get("restartPolicy") == "Always" else "init"
                found.append(Container(body, kind, f"spec.template.spec.{group}[{index}]"))
        return found

    def key(self, container: Container | None = None) -> str | None:
        """The stack-file key of the API (or of one of its containers); None outside modelplane."""
        api = self.api
        if api is None:
            return None
        base = f"modelplane:apis.{api}"
        if container is None or (container.kind == "container" and container.name == MAIN_CONTAINER):
            return base
        if container.kind == "sidecar" and container.name == PROXY_CONTAINER:
            return f"{base}.proxy"
        if container.kind == "container":
            return f"{base}.sidecars.{container.name}"
        return None

    def gpus_per_pod(self) -> Fraction | Unknown:
        """GPUs one pod holds: its containers and native sidecars together, or its largest init container."""
        running = largest_init = Fraction(0)
        for container in self.containers():
            gpus = container.gpus()
            if isinstance(gpus, Unknown):
                return UNKNOWN
            if container.kind == "init":
                largest_init = max(largest_init, gpus)
            else:
                running += gpus
        return max(running, largest_init)


@dataclass(frozen=True)
class Autoscaler:
    """An HPA or a KEDA ScaledObject, read with Kubernetes' and KEDA's defaults."""

    resource: Resource

    @property
    def keda(self) -> bool:
        return self.resource.type == SCALED_OBJECT

    @property
    def kind(self) -> str:
        return self.resource.type.rsplit(":", 1)[-1]

    def __str__(self) -> str:
        name = dig(self.resource.props, "metadata", "name")
        namespace = namespace_of(self.resource)
        shown = name if isinstance(name, str) else self.resource.name
        return f"{self.kind} {namespace if isinstance(namespace, str) else '?'}/{shown}"

    @property
    def min_field(self) -> str:
        return "minReplicaCount" if self.keda else "minReplicas"

    @property
    def max_field(self) -> str:
        return "maxReplicaCount" if self.keda else "maxReplicas"

    def min_replicas(self) -> Any:
        """The floor: ``minReplicas`` (HPA default 1) or ``minReplicaCount`` (KEDA default 0)."""
        value = dig(self.resource.props, "spec", self.min_field)
        return (0.0 if self.keda else 1.0) if value is None else value

    def max_replicas(self) -> Any:
        """The ceiling: ``maxReplicas`` (required by the HPA) or ``maxReplicaCount`` (KEDA default 100)."""
        value = dig(self.resource.props, "spec", self.max_field)
        return (100.0 if self.keda else None) if value is None else value

    def trigger_types(self) -> list[Any] | Unknown:
        """KEDA trigger types (``aws-sqs-queue``, ``prometheus``); empty for an HPA."""
        triggers = dig(self.resource.props, "spec", "triggers")
        if is_unknown(triggers):
            return UNKNOWN
        if not isinstance(triggers, list):
            return []
        return [dig(t, "type") for t in triggers]

    def targets(self, workload: Workload) -> bool | Unknown:
        """Whether it scales ``workload`` (same namespace, ``scaleTargetRef`` naming it)."""
        ref = dig(self.resource.props, "spec", "scaleTargetRef")
        if is_unknown(ref) or not isinstance(ref, dict):
            return UNKNOWN if is_unknown(ref) else False
        kind = ref.get("kind", "Deployment" if self.keda else None)
        name, namespace = ref.get("name"), namespace_of(self.resource)
        if UNKNOWN in (kind, name, namespace, workload.name, workload.namespace):
            return UNKNOWN
        return kind == workload.kind and name == workload.name and namespace == workload.namespace


def autoscalers_of(workload: Workload, stack: Stack) -> tuple[list[Autoscaler], bool]:
    """The autoscalers that scale ``workload``, and whether some other one might (its target is unknown)."""
    found: list[Autoscaler] = []
    maybe = False
    for resource in stack.of_type(*AUTOSCALERS):
        autoscaler = Autoscaler(resource)
        verdict = autoscaler.targets(workload)
        if is_unknown(verdict):
            maybe = True
        elif verdict:
            found.append(autoscaler)
    return found, maybe


def workloads(stack: Stack) -> Iterator[Workload]:
    for resource in stack.of_type(*WORKLOADS):
        yield Workload(resource)
