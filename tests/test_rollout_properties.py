"""Property tests: any sequence of rollout-type config changes is an in-place update.

``test_render`` shows with a few hand-picked edits that a rolling update keeps
every resource's identity. Here hypothesis generates the edits: random
sequences of one to four changes a platform engineer makes day to day to the
APIs of the dev stack (image tag or digest, env, command/args, CPU and memory
requests, maxConcurrency, readiness-probe timings, autoscaling knobs), applied
one after another to the committed ``stacks/Pulumi.dev.yaml``. After every step
the render is compared with the render of the unmodified stack:

1. the registered resources' (type, name, parent) are the same: nothing is
   created, deleted or renamed (a rename is a delete + create in Pulumi);
2. every Kubernetes object keeps its kind, name and namespace (a
   content-named ConfigMap, ``<api>-proxy-<digest>``, keeps all but its
   digest), and the Deployment, Service and PodDisruptionBudget selectors are
   unchanged;
3. the only parts that may differ are a Deployment's ``spec.template`` (its
   labels excepted), a HorizontalPodAutoscaler's or ScaledObject's ``spec``,
   and a content-named ConfigMap's digest and data; every other object, and
   the inputs of every non-Kubernetes resource (cluster, node groups, launch
   templates, Helm releases), is byte-identical;
4. an API whose config is back to (or still at) the committed one renders
   exactly as before, so a change to one API never touches another; and a
   change outside ``autoscaling`` (and ``maxConcurrency``, which sets the
   default in-flight and queue targets) never touches the autoscaler, one
   inside it never the Deployment.

The strategies generate only valid configs (the bounds come from the config
models and the instance catalog), so every step must render. ``configFiles`` is
not among the changes: no dev API has config files, so adding one creates the
API's first (content-named) ConfigMap, a real new resource rather than a
rollout. A property for editing existing config files would allow exactly one
exception here: that ConfigMap's ``metadata.name`` digest and ``data``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from modelplane.config import (
    ApiConfig,
    AutoscalingConfig,
    ProbeConfig,
    api_gpus,
    headroom_warnings,
    load_stack_file,
    parse_estate,
    scaling_metric,
)
from modelplane.config.schedulability import check_pod_fit, pod_containers
from modelplane.offline import Plan, Registered, kubernetes_objects, run_stack

PROJECT = Path(__file__).resolve().parent.parent
APIS = "modelplane:apis"
DEV = load_stack_file(PROJECT / "stacks" / "Pulumi.dev.yaml")
"""The committed dev stack's config map: the starting point of every sequence (never modified)."""
DEV_ESTATE = parse_estate(DEV, "stacks/Pulumi.dev.yaml")
API_NAMES = sorted(DEV[APIS])

# Each property runs on 25 to 40 sequences of up to four renders (~0.1 s each).
# derandomize: every run, locally and in CI, checks the same sequences, so a red build is
# reproducible from its log and never a flake that the next run happens to miss; a wider search
# is a local run with more max_examples. No example database: a failure is reproduced by
# re-running, not by replaying a saved example. No explain phase: on a failure it re-renders
# hundreds of variants (minutes) to report which lines only failing cases ran, which says little
# here; the shrunk sequence of changes is the useful report.
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                             phases=[Phase.explicit, Phase.generate, Phase.shrink],
                             suppress_health_check=[HealthCheck.too_slow])


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE = _Remove()
"""Edit value that removes the key from the API's entry instead of setting it."""

Edit = tuple[tuple[str, ...], Any]
"""A key path inside one API's entry of ``modelplane:apis`` and the value it gets (or ``REMOVE``)."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One rollout-type change to one API: what a single reviewed PR to the stack file might do."""

    api: str
    what: str
    edits: tuple[Edit, ...]


def apply(config: dict[str, Any], change: Change) -> None:
    """Apply ``change`` to a full stack config map in place."""
    for path, value in change.edits:
        node = config[APIS][change.api]
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if value is REMOVE:
            del node[path[-1]]
        else:
            node[path[-1]] = copy.deepcopy(value)


# ------------------------------------------------------------------------ strategies
# Bounds are read from the config models, so that a tightened or widened limit there moves the
# strategies with it instead of making them generate invalid (or too narrow) configs.

def _bounds(model: type[BaseModel], field: str) -> tuple[Any, Any, bool, bool]:
    """(low, high, low excluded, high excluded) of a numeric field's pydantic constraints."""
    low = high = None
    low_open = high_open = False
    for rule in model.model_fields[field].metadata:
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Gt):
            low, low_open = rule.gt, True
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
        elif isinstance(rule, annotated_types.Lt):
            high, high_open = rule.lt, True
    assert low is not None and high is not None, f"{model.__name__}.{field} has no range to draw from"
    return low, high, low_open, high_open


def integers(model: type[BaseModel], field: str, high: int | None = None) -> st.SearchStrategy[int]:
    low, top, low_open, high_open = _bounds(model, field)
    top = top - high_open
    return st.integers(low + low_open, top if high is None else min(high, top))


def floats(model: type[BaseModel], field: str) -> st.SearchStrategy[float]:
    low, high, low_open, high_open = _bounds(model, field)
    return st.floats(low, high, exclude_min=low_open, exclude_max=high_open, allow_nan=False)


@functools.cache
def _room_for_the_server(api: str) -> tuple[int, int]:
    """(millicores, bytes) the serving container may request and keep the estate valid and quiet.

    Asked of the package's own rules rather than re-derived: the pod fits one node of its group (the
    smallest, after the kubelet reserve and the DaemonSets, with the API's other containers), and
    the group still holds the API at maxReplicas plus a surge (no headroom warning). Each bound
    holds with the other resource at its own bound (the groups here pack by a pod count per node).
    """
    spec = DEV_ESTATE.apis[api]
    shape = DEV_ESTATE.node_shape(spec.node_group)
    assert shape is not None
    others = [r for name, r in pod_containers(spec) if name != "model"]
    rooms = (int(shape.room.cpu - sum(r.cpu for r in others)), int(shape.room.mem - sum(r.mem for r in others)))

    def quiet(key: str, value: int) -> bool:
        compute = spec.compute.model_copy(update={key: f"{value}m" if key == "cpu" else f"{value}Mi"})
        scaled = spec.model_copy(update={"compute": compute})
        fits = not list(check_pod_fit({api: scaled}, DEV_ESTATE.node_groups, DEV_ESTATE.installs_prometheus, ()))
        return fits and not headroom_warnings(DEV_ESTATE.node_groups, {**DEV_ESTATE.apis, api: scaled},
                                              DEV_ESTATE.installs_prometheus)

    def largest(key: str, high: int) -> int:
        low = 1
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if quiet(key, middle) else (low, middle - 1)
        return low

    return largest("cpu", rooms[0]), largest("mem", rooms[1]) * 2**20


@functools.cache
def _quiet_max_replicas(api: str) -> int:
    """Most maxReplicas that keep the headroom warning quiet (image-embed in dev: 3; CPU APIs: the model's limit).

    Asked of the package's own rule rather than re-derived, so the strategies follow it if it changes.
    """
    spec = DEV_ESTATE.apis[api]

    def quiet(replicas: int) -> bool:
        scaled = spec.model_copy(update={"autoscaling": spec.autoscaling.model_copy(
            update={"max_replicas": replicas})})
        return not headroom_warnings(DEV_ESTATE.node_groups, {**DEV_ESTATE.apis, api: scaled},
                                     DEV_ESTATE.installs_prometheus)

    return next(n for n in range(_bounds(AutoscalingConfig, "max_replicas")[1], 0, -1) if quiet(n))


def _repository(image: str) -> str:
    if "@" in image:
        return image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True).filter(lambda t: t != "latest")
DIGESTS = st.from_regex(r"[0-9a-f]{64}", fullmatch=True).map(lambda h: f"@sha256:{h}")
ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True).filter(
    lambda n: not n.startswith("MODELPLANE_"))
ENV_VALUES = st.one_of(st.text(max_size=40), st.from_regex(r"[0-9]{1,5}|true|false", fullmatch=True))
WORDS = st.lists(st.text(max_size=30), max_size=4)
DURATIONS = st.one_of(st.integers(0, 3600).map(lambda n: f"{n}s"), st.integers(0, 60).map(lambda n: f"{n}m"),
                      st.just("1h"), st.just("0h"))


@st.composite
def cpu_requests(draw: st.DrawFn, api: str) -> str | int:
    """A positive CPU request that fits the smallest node of the API's group, in one of its spellings."""
    millicores = draw(st.integers(1, _room_for_the_server(api)[0]))
    spellings: list[str | int] = [f"{millicores}m", f"{millicores / 1000:.3f}".rstrip("0").rstrip(".")]
    if millicores % 1000 == 0:
        spellings.append(millicores // 1000)  # YAML `cpu: 2` is an int; the model takes it as "2"
    return draw(st.sampled_from(spellings))


@st.composite
def mem_requests(draw: st.DrawFn, api: str) -> str:
    """A memory request of at least 64 MiB that fits the smallest node of the API's group."""
    limit = _room_for_the_server(api)[1]
    unit, size = draw(st.sampled_from([("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10), ("G", 10**9), ("M", 10**6),
                                       ("", 1)]))
    amount = draw(st.integers(max(1, -(-64 * 2**20 // size)), limit // size))
    if unit == "Gi" and draw(st.booleans()):
        tenths = draw(st.integers(1, limit * 10 // size))
        return f"{tenths // 10}.{tenths % 10}Gi"
    return f"{amount}{unit}"


def _image(api: str, current: dict[str, Any]) -> st.SearchStrategy[tuple[Edit, ...]]:
    repository = _repository(current["image"])
    return st.one_of(TAGS.map(lambda t: f"{repository}:{t}"), DIGESTS.map(lambda d: repository + d)).map(
        lambda image: ((("image",), image),))


@st.composite
def _env(draw: st.DrawFn, api: str, current: dict[str, Any]) -> tuple[Edit, ...]:
    env = dict(current.get("env", {}))
    ops = ["add"] + (["change", "remove"] if env else [])
    op = draw(st.sampled_from(ops))
    if op == "add":
        env[draw(ENV_NAMES.filter(lambda n: n not in env))] = draw(ENV_VALUES)
    elif op == "change":
        env[draw(st.sampled_from(sorted(env)))] = draw(ENV_VALUES)
    else:
        del env[draw(st.sampled_from(sorted(env)))]
    return ((("env",), env),)


@st.composite
def _command_or_args(draw: st.DrawFn, api: str, current: dict[str, Any]) -> tuple[Edit, ...]:
    key = draw(st.sampled_from(["command", "args"]))
    if key in current and draw(st.booleans()):
        return (((key,), REMOVE),)
    return (((key,), draw(WORDS)),)


@st.composite
def _compute(draw: st.DrawFn, api: str, current: dict[str, Any]) -> tuple[Edit, ...]:
    # mem is changed, never removed: autoscaling on memory (which the knobs below may pick) needs it.
    keys = draw(st.sampled_from([("cpu",), ("mem",), ("cpu", "mem")]))
    requests = {"cpu": cpu_requests, "mem": mem_requests}
    return tuple((("compute", key), draw(requests[key](api))) for key in keys)


def _max_concurrency(api: str, current: dict[str, Any]) -> st.SearchStrategy[tuple[Edit, ...]]:
    return integers(ApiConfig, "max_concurrency").map(lambda n: ((("maxConcurrency",), n),))


PROBE_TIMINGS = {"periodSeconds": "period_seconds", "timeoutSeconds": "timeout_seconds",
                 "failureThreshold": "failure_threshold", "initialDelaySeconds": "initial_delay_seconds"}


@st.composite
def _readiness_timings(draw: st.DrawFn, api: str, current: dict[str, Any]) -> tuple[Edit, ...]:
    keys = draw(st.lists(st.sampled_from(sorted(PROBE_TIMINGS)), min_size=1, max_size=4, unique=True))
    return tuple((("readinessProbe", key), draw(integers(ProbeConfig, PROBE_TIMINGS[key]))) for key in keys)


METRIC_KNOBS = {
    # A metric change within one autoscaler kind (HPA, or KEDA's trigger) is an in-place update; a switch
    # between an HPA and a ScaledObject replaces one object with another and is not a rollout.
    "cpu": ["metric", "targetUtilization"],
    "memory": ["metric", "targetUtilization"],
    "inFlight": ["targetInFlight", "window", "activationThreshold"],
    "queue": ["targetQueueLength", "activationThreshold"],
}


@st.composite
def _autoscaling(draw: st.DrawFn, api: str, current: dict[str, Any]) -> tuple[Edit, ...]:
    metric = scaling_metric(DEV_ESTATE.apis[api])
    knob = draw(st.sampled_from(["replicas", *METRIC_KNOBS[metric], "upscaleStabilizationPeriod",
                                 "downscaleStabilizationPeriod", "maxUpscaleFactor", "maxDownscaleFactor"]))
    at = ("autoscaling", knob)
    if knob == "replicas":
        replicas = integers(AutoscalingConfig, "max_replicas", high=_quiet_max_replicas(api))
        low, high = sorted((draw(replicas), draw(replicas)))
        if metric == "queue" and draw(st.booleans()):
            low = 0  # a queue worker may scale to zero
        return ((("autoscaling", "minReplicas"), low), (("autoscaling", "maxReplicas"), high))
    if knob == "metric":
        return ((at, draw(st.sampled_from(["cpu", "memory"]))),)
    if knob == "targetUtilization":
        return ((at, draw(integers(AutoscalingConfig, "target_utilization"))),)
    if knob == "targetInFlight":
        return ((at, draw(st.integers(1, 64) | st.floats(0.5, 64, allow_nan=False))),)
    if knob == "targetQueueLength":
        return ((at, draw(st.integers(1, 1000))),)
    if knob == "window":
        return ((at, draw(st.sampled_from(["30s", "45s", "2m", "5m", "1h"]))),)
    if knob == "activationThreshold":
        return ((at, draw(st.integers(0, 50))),)
    if knob.endswith("StabilizationPeriod"):
        return ((at, draw(DURATIONS)),)
    return ((at, draw(floats(AutoscalingConfig, "max_upscale_factor" if "Up" in knob else "max_downscale_factor"))),)


CHANGES: dict[str, Callable[[str, dict[str, Any]], st.SearchStrategy[tuple[Edit, ...]]]] = {
    "image": _image,
    "env": _env,
    "command or args": _command_or_args,
    "compute": _compute,
    "maxConcurrency": _max_concurrency,
    "readiness probe timings": _readiness_timings,
    "autoscaling": _autoscaling,
}
ROLLOUT_KEYS = {"image", "env", "command", "args", "compute", "maxConcurrency", "readinessProbe", "autoscaling"}
"""Top-level keys of an API entry that the strategies touch; every other key must stay as committed."""


@st.composite
def rollout_sequences(draw: st.DrawFn, apis: list[str] = API_NAMES, max_changes: int = 4) -> list[Change]:
    """One to ``max_changes`` rollout-type changes to ``apis``, each valid on top of the ones before it."""
    current = copy.deepcopy(DEV)
    changes = []
    for _ in range(draw(st.integers(1, max_changes))):
        api = draw(st.sampled_from(apis))
        what = draw(st.sampled_from(sorted(CHANGES)))
        change = Change(api, what, draw(CHANGES[what](api, current[APIS][api])))
        event(f"{api}: {what}")
        apply(current, change)
        changes.append(change)
    return changes


# ------------------------------------------------------------------------ reading plans

def objects_by_urn(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each Kubernetes object the plan renders, by the URN of the resource that registers it."""
    found = {}
    for resource in plan.resources:
        for obj in kubernetes_objects(dataclasses.replace(plan, resources=[resource])):
            found[resource.urn] = obj
    return found


def canonical(resource: Registered) -> str:
    # Inputs that reference another resource come back as SDK objects with a memory address in
    # their repr; the class name is stable across renders.
    return json.dumps(resource.inputs, sort_keys=True, default=lambda v: f"<{type(v).__qualname__}>")


def subtree(plan: Plan, type_: str, name: str) -> set[str]:
    """URNs of the resource (type_, name) and everything parented under it, at any depth."""
    [root] = [r.urn for r in plan.resources if r.type == type_ and r.name == name]
    urns = {root}
    while grown := {r.urn for r in plan.resources if r.parent in urns} - urns:
        urns |= grown
    return urns


def without(obj: dict[str, Any], *path: str) -> dict[str, Any]:
    trimmed = copy.deepcopy(obj)
    node = trimmed
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return trimmed


def label(obj: dict[str, Any]) -> str:
    return f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


# ------------------------------------------------------------------------ the properties

def assert_same_resources(before: Plan, after: Plan) -> None:
    """Property 1: no Pulumi resource is created, deleted or renamed."""
    def identities(plan: Plan) -> list[tuple[str, str, str]]:
        return sorted((r.type, r.name, r.parent) for r in plan.resources)

    assert identities(after) == identities(before)


def content_named(obj: dict[str, Any]) -> bool:
    """A ConfigMap named after its content (``<api>-proxy-<digest>``, ``<api>-config-<digest>``)."""
    return obj["kind"] == "ConfigMap" and obj.get("immutable") is True \
        and re.fullmatch(r".+-(proxy|config)-[0-9a-f]{10}", obj["metadata"]["name"]) is not None


def stable_name(obj: dict[str, Any]) -> str:
    """An object's name without a content-named ConfigMap's digest."""
    name = obj["metadata"]["name"]
    return name.rsplit("-", 1)[0] if content_named(obj) else name


def assert_same_object_identities(before: Plan, after: Plan) -> None:
    """Property 2: every object keeps kind, name (digest aside), namespace; selectors stay as they were."""
    old, new = objects_by_urn(before), objects_by_urn(after)
    assert set(new) == set(old)
    for urn, obj in new.items():
        was = old[urn]
        assert (obj["kind"], stable_name(obj), obj["metadata"].get("namespace")) == \
            (was["kind"], stable_name(was), was["metadata"].get("namespace")), urn
        if obj["kind"] in ("Deployment", "Service", "PodDisruptionBudget"):
            assert obj["spec"]["selector"] == was["spec"]["selector"], f"{label(obj)}: selector changed"


def assert_only_pod_templates_and_hpa_specs_differ(before: Plan, after: Plan) -> None:
    """Property 3: the rest of every object, and every non-Kubernetes resource's inputs, is byte-identical."""
    old, new = objects_by_urn(before), objects_by_urn(after)
    for urn, obj in new.items():
        was = old[urn]
        if obj["kind"] == "Deployment":
            assert without(obj, "spec", "template") == without(was, "spec", "template"), \
                f"{label(obj)} changed outside spec.template"
            assert obj["spec"]["template"]["metadata"] == was["spec"]["template"]["metadata"], \
                f"{label(obj)}: pod template labels changed"
        elif obj["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            assert without(obj, "spec") == without(was, "spec"), f"{label(obj)} changed outside spec"
            assert obj["spec"]["scaleTargetRef"] == was["spec"]["scaleTargetRef"], f"{label(obj)}: new target"
        elif content_named(obj) and content_named(was):
            trim = ("metadata", "name"), ("data",)
            assert without(without(obj, *trim[0]), *trim[1]) == without(without(was, *trim[0]), *trim[1]), \
                f"{label(obj)} changed beyond its content and digest"
        else:
            assert obj == was, f"{label(obj)} changed"
    old_inputs = {r.urn: canonical(r) for r in before.resources if r.urn not in old}
    changed = sorted((r.type, r.name) for r in after.resources
                     if r.urn not in new and canonical(r) != old_inputs[r.urn])
    assert changed == [], "non-Kubernetes resources changed"


def assert_each_change_stays_in_its_own_objects(before: Plan, after: Plan, config: dict[str, Any]) -> None:
    """Property 4: an API whose config is as committed renders as committed; autoscaling changes only the HPA,
    everything else only the Deployment."""
    old_inputs = {r.urn: canonical(r) for r in before.resources}
    for api in API_NAMES:
        was, now = DEV[APIS][api], config[APIS][api]
        assert set(now) - ROLLOUT_KEYS == set(was) - ROLLOUT_KEYS  # the strategies' own contract
        untouched: set[str] = set()
        if now == was:
            untouched = subtree(after, "modelplane:index:ModelApi", api)
        else:
            if now.get("autoscaling") == was.get("autoscaling") \
                    and now.get("maxConcurrency") == was.get("maxConcurrency"):
                untouched |= subtree(after, "modelplane:index:AutoscalingPolicy", f"{api}-autoscaling")
            if _outside_autoscaling(now) == _outside_autoscaling(was):
                untouched |= {r.urn for r in after.resources if r.type == "kubernetes:apps/v1:Deployment"
                              and r.name == api}
        changed = sorted((r.type, r.name) for r in after.resources
                         if r.urn in untouched and canonical(r) != old_inputs[r.urn])
        assert changed == [], f"{api}: objects changed that its config changes do not reach"


def _outside_autoscaling(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key != "autoscaling"}


def assert_rollout(before: Plan, after: Plan, config: dict[str, Any]) -> None:
    # The render took the edited config (a render that ignored it would pass everything below), and
    # the strategies kept it inside what they promise: valid, and no new warning.
    assert after.config == parse_estate(config, before.config.source)
    assert {o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]["image"]
            for o in objects_by_urn(after).values() if o["kind"] == "Deployment"} == \
        {api: entry["image"] for api, entry in config[APIS].items()}
    assert after.config.warnings == before.config.warnings
    assert_same_resources(before, after)
    assert_same_object_identities(before, after)
    assert_only_pod_templates_and_hpa_specs_differ(before, after)
    assert_each_change_stays_in_its_own_objects(before, after, config)


@functools.cache
def committed() -> Plan:
    """The committed dev stack, rendered once for this module: what every step is compared with."""
    return run_stack("dev", project=PROJECT)


def steps(changes: list[Change]) -> Iterator[tuple[Plan, dict[str, Any]]]:
    """The render after each change, applied cumulatively to the committed dev config, and that config."""
    config = copy.deepcopy(DEV)
    for change in changes:
        apply(config, change)
        yield run_stack("dev", project=PROJECT, config_map=copy.deepcopy(config)), copy.deepcopy(config)


# ------------------------------------------------------------------------ tests
# The property tests call run_stack themselves rather than take the conftest fixtures: hypothesis
# prints every argument of a failing test, and a whole Plan would bury the failing changes.

def test_dev_has_a_cpu_and_a_gpu_api() -> None:
    # What makes the properties cover both kinds of API and property 4 mean something.
    assert committed().config == DEV_ESTATE
    assert {bool(api_gpus(api)) for api in DEV_ESTATE.apis.values()} == {False, True}
    # ... and every kind of autoscaler: an HPA, a ScaledObject on Prometheus, one on a queue from zero.
    assert {scaling_metric(api) for api in DEV_ESTATE.apis.values()} == {"cpu", "inFlight", "queue"}
    assert min(api.autoscaling.min_replicas for api in DEV_ESTATE.apis.values()) == 0


@PROPERTY_SETTINGS
@given(changes=rollout_sequences())
def test_rollout_changes_are_in_place_updates(changes: list[Change]) -> None:
    for after, config in steps(changes):
        assert_rollout(committed(), after, config)


@pytest.mark.parametrize("api", API_NAMES)
@settings(PROPERTY_SETTINGS, max_examples=25)
@given(data=st.data())
def test_changes_to_one_api_never_touch_the_other(api: str, data: st.DataObject) -> None:
    changes = data.draw(rollout_sequences(apis=[api]), label="changes")
    before = committed()
    others = set().union(*(subtree(before, "modelplane:index:ModelApi", other) for other in API_NAMES
                           if other != api))
    old_inputs = {r.urn: canonical(r) for r in before.resources if r.urn in others}

    for after, config in steps(changes):
        assert_rollout(before, after, config)
        assert {r.urn: canonical(r) for r in after.resources if r.urn in others} == old_inputs


# ------------------------------------------------------------------------ the checks can fail
# Tampered copies of the committed render: each is what a plausible bug would produce, and the
# property checks must reject it (otherwise the properties above prove nothing).

def _tampered(plan: Plan, type_: str, name: str, edit: Callable[[Registered], Registered]) -> Plan:
    return dataclasses.replace(plan, resources=[edit(copy.deepcopy(r)) if (r.type, r.name) == (type_, name)
                                                else r for r in plan.resources])


def _set(path: tuple[str, ...], value: Any) -> Callable[[Registered], Registered]:
    def edit(resource: Registered) -> Registered:
        node = resource.inputs
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        return resource
    return edit


def _with_the_committed_config(before: Plan, after: Plan) -> None:
    assert_each_change_stays_in_its_own_objects(before, after, DEV)


TAMPERS = {
    # Property 1: a child named after the image tag is a delete + create on every rollout.
    "image tag in a resource name": (
        assert_same_resources, "kubernetes:apps/v1:Deployment", "sentiment",
        lambda r: dataclasses.replace(r, name="sentiment-1-4-2")),
    # Property 2.
    "image tag in the service selector": (
        assert_same_object_identities, "kubernetes:core/v1:Service", "sentiment-svc",
        _set(("spec", "selector", "version"), "1.4.2")),
    "object renamed": (
        assert_same_object_identities, "kubernetes:policy/v1:PodDisruptionBudget", "sentiment-pdb",
        _set(("metadata", "name"), "sentiment-1-4-2")),
    # Property 3.
    "image tag in a label": (
        assert_only_pod_templates_and_hpa_specs_differ, "kubernetes:core/v1:ServiceAccount", "sentiment-sa",
        _set(("metadata", "labels", "app.kubernetes.io/version"), "1.4.2")),
    "image tag in the pod labels": (
        assert_only_pod_templates_and_hpa_specs_differ, "kubernetes:apps/v1:Deployment", "sentiment",
        _set(("spec", "template", "metadata", "labels", "app.kubernetes.io/version"), "1.4.2")),
    "deployment strategy": (
        assert_only_pod_templates_and_hpa_specs_differ, "kubernetes:apps/v1:Deployment", "sentiment",
        _set(("spec", "strategy", "rollingUpdate", "maxSurge"), 3)),
    "launch template": (
        assert_only_pod_templates_and_hpa_specs_differ, "aws:ec2/launchTemplate:LaunchTemplate", "gpu-spot-lt",
        _set(("tagSpecifications",), [])),
    # Property 4: the config is the committed one, so no API's objects may change, even where
    # property 3 allows a difference.
    "pod template without a config change": (
        _with_the_committed_config, "kubernetes:apps/v1:Deployment", "image-embed",
        _set(("spec", "template", "spec", "terminationGracePeriodSeconds"), 31)),
    "hpa spec without a config change": (
        _with_the_committed_config, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "sentiment-autoscaling", _set(("spec", "maxReplicas"), 4)),
    "scaled object spec without a config change": (
        _with_the_committed_config, "kubernetes:keda.sh/v1alpha1:ScaledObject",
        "image-embed-autoscaling", _set(("spec", "maxReplicaCount"), 4)),
    # A content-named ConfigMap may change its digest and data, nothing else.
    "proxy config renamed beyond its digest": (
        assert_same_object_identities, "kubernetes:core/v1:ConfigMap", "sentiment-proxy",
        _set(("metadata", "name"), "sentiment-envoy-0123456789")),
    "image tag in the proxy config's labels": (
        assert_only_pod_templates_and_hpa_specs_differ, "kubernetes:core/v1:ConfigMap", "sentiment-proxy",
        _set(("metadata", "labels", "app.kubernetes.io/version"), "1.4.2")),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_the_property_checks_can_fail(tamper: str) -> None:
    check, type_, name, edit = TAMPERS[tamper]
    good = committed()
    bad = _tampered(good, type_, name, edit)
    assert bad.resources != good.resources
    check(good, good)

    with pytest.raises(AssertionError):
        check(good, bad)
