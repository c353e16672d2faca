"""Rendering whole stacks: every stack renders, the Kubernetes objects are valid for the
cluster's version, and a rolling update keeps every resource's identity.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from modelplane.config import load_stack_file
from modelplane.offline import Plan, kubernetes_objects

PROJECT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (PROJECT / "stacks").glob("Pulumi.*.yaml"))
STACK_APIS = [(stack, api) for stack in ("dev", "prod")
              for api in load_stack_file(PROJECT / "stacks" / f"Pulumi.{stack}.yaml")["modelplane:apis"]]

# Object kinds each API renders: (kind, resource type).
API_OBJECTS = [
    ("Deployment", "kubernetes:apps/v1:Deployment"),
    ("Service", "kubernetes:core/v1:Service"),
    ("PodDisruptionBudget", "kubernetes:policy/v1:PodDisruptionBudget"),
]

SCALERS = {
    "HorizontalPodAutoscaler": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "ScaledObject": "kubernetes:keda.sh/v1alpha1:ScaledObject",
}
"""An API has exactly one of these, named after it."""


@pytest.fixture(scope="module")
def plan_of(request, render):
    """``plan_of(stack)``: the committed stack rendered once (dev and prod share the session plans)."""
    cache: dict[str, Plan] = {}

    def _plan(stack: str) -> Plan:
        if stack not in cache:
            cache[stack] = request.getfixturevalue(f"{stack}_plan") if stack in ("dev", "prod") else render(stack)
        return cache[stack]

    return _plan


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def objects_by_identity(plan: Plan) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in kubernetes_objects(plan)}


def is_built_in(obj: dict[str, Any]) -> bool:
    """Core and ``*.k8s.io`` API groups; CRD objects are validated against ../shared/crd-schemas instead."""
    group = obj["apiVersion"].rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


# ------------------------------------------------------------------------ every stack renders

def test_the_committed_stacks_are_dev_and_prod() -> None:
    # Guards the parametrisations below: a stack file that stops matching the glob would silently drop out.
    assert {"dev", "prod"} <= set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_renders(plan_of, stack: str) -> None:
    plan = plan_of(stack)

    assert [r.name for r in plan.by_type("modelplane:index:Estate")] == [plan.config.cluster.name]
    # An existing cluster's kubeconfig is the user's already: only a created cluster exports one.
    created = plan.config.existing is None
    exposed = {name for name, api in plan.config.apis.items() if api.expose is not None}
    assert set(plan.outputs) == {"clusterName", "apiUrls", "platform"} | ({"kubeconfig"} if created else set()) | (
        {"externalUrls"} if exposed else set())
    assert set(plan.outputs["apiUrls"]) == set(plan.config.apis)
    assert set(plan.outputs.get("externalUrls", {})) == exposed


@pytest.mark.parametrize("stack", STACKS)
def test_no_two_resources_share_a_urn(plan_of, stack: str) -> None:
    urns = [r.urn for r in plan_of(stack).resources]

    assert sorted({u for u in urns if urns.count(u) > 1}) == []


@pytest.mark.parametrize(("stack", "api"), STACK_APIS)
def test_every_api_has_its_objects(plan_of, find, stack: str, api: str) -> None:
    plan = plan_of(stack)

    [scaler] = [kind for kind in SCALERS if any(o["metadata"]["name"] == api for o in find.objects(plan, kind))]
    for kind, type_ in [*API_OBJECTS, (scaler, SCALERS[scaler])]:
        obj = find.object(plan, kind, api, namespace=api)
        assert obj["metadata"]["labels"]["modelplane.io/api"] == api
        names = (api, f"{api}-svc", f"{api}-pdb", f"{api}-autoscaling")
        [resource] = [r for r in plan.by_type(type_) if r.name in names]
        assert resource.inputs["metadata"]["name"] == api


# ------------------------------------------------------------------------ validity

@pytest.mark.parametrize("stack", STACKS)
def test_objects_pass_the_kubernetes_schema_of_the_clusters_version(plan_of, stack: str) -> None:
    plan = plan_of(stack)
    # kubernetes_validate takes "1.33" as well as "1.33.0" and answers with the schema version it
    # used; it silently falls back to an older schema for versions it lacks, so check the answer.
    version = plan.config.cluster.kubernetes_version
    built_in = [o for o in kubernetes_objects(plan) if is_built_in(o)]
    assert len(built_in) >= 4 * len(plan.config.apis)

    failures = []
    for obj in built_in:
        try:
            used = kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
        else:
            assert used == version, f"validated {obj['kind']} against {used}, not {version}"
    assert failures == []


def crd_validator(crd_schemas: Path, obj: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A strict (Draft 2020-12) validator for a custom resource, from ../shared/crd-schemas."""
    group, _, version = obj["apiVersion"].rpartition("/")
    schema = json.loads((crd_schemas / group / f"{obj['kind'].lower()}_{version}.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("stack", STACKS)
def test_custom_resources_pass_their_crd_schemas(plan_of, crd_schemas: Path, stack: str) -> None:
    custom = [o for o in kubernetes_objects(plan_of(stack)) if not is_built_in(o)]
    kinds = {o["kind"] for o in custom}

    # Every stack has a KEDA API; the Prometheus Operator's PodMonitors where it runs (not in local, whose
    # Prometheus scrapes annotations); dev's queue API needs a TriggerAuthentication.
    assert "ScaledObject" in kinds
    assert ("PodMonitor" in kinds) == plan_of(stack).config.pod_monitors
    assert stack == "local" or "PodMonitor" in kinds
    assert stack != "dev" or "TriggerAuthentication" in kinds
    failures = [f"{o['kind']} {o['metadata']['name']}: {error.message} at {list(error.path)}"
                for o in custom for error in crd_validator(crd_schemas, o).iter_errors(o)]
    assert failures == []


def test_the_crd_schema_check_can_fail(dev_plan, find, crd_schemas: Path) -> None:
    scaled = copy.deepcopy(find.object(dev_plan, "ScaledObject", "image-embed"))
    scaled["spec"]["triggers"][0]["metdata"] = scaled["spec"]["triggers"][0].pop("metadata")
    scaled["spec"]["minReplicaCount"] = "1"

    messages = [e.message for e in crd_validator(crd_schemas, scaled).iter_errors(scaled)]

    assert any("metdata" in m for m in messages) and any("'metadata' is a required property" in m for m in messages)
    assert any("'1' is not of type 'integer'" in m for m in messages)


def test_the_schema_check_can_fail(dev_plan, find) -> None:
    # The strict schemas reject an unknown field: proves the validation above is not vacuous.
    deployment = copy.deepcopy(find.object(dev_plan, "Deployment", "sentiment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_no_float_in_rendered_objects(plan_of, stack: str) -> None:
    floats = [(o["kind"], o["metadata"]["name"], path, value)
              for o in kubernetes_objects(plan_of(stack)) for path, value in leaves(o) if isinstance(value, float)]

    assert floats == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_fractional_number_in_any_input(plan_of, stack: str) -> None:
    # The engine carries numbers as floats; integral ones are normalised back to ints, so a
    # fractional one anywhere (AWS inputs, Helm values) would be a real fractional value.
    fractional = [(r.type, r.name, path, value) for r in plan_of(stack).resources
                  for path, value in leaves(r.inputs) if isinstance(value, float) and not value.is_integer()]

    assert fractional == []


# ------------------------------------------------------------------------ rollout identity

def rerender(render, stack_configs, *edits) -> Plan:
    return render("dev", stack_configs.edited("dev", *edits))


def assert_same_identities(before: Plan, after: Plan) -> None:
    """Nothing is created, deleted or replaced: same URNs, same object names and selectors."""
    assert after.resources
    assert {r.urn for r in after.resources} == {r.urn for r in before.resources}
    assert {(r.type, r.name) for r in after.resources} == {(r.type, r.name) for r in before.resources}
    old, new = objects_by_identity(before), objects_by_identity(after)
    assert set(new) == set(old)
    for key, obj in new.items():
        if obj["kind"] in ("Deployment", "PodDisruptionBudget"):
            assert obj["spec"]["selector"] == old[key]["spec"]["selector"], key
        if obj["kind"] == "Service":
            assert obj["spec"]["selector"] == old[key]["spec"]["selector"], key


def changed_objects(before: Plan, after: Plan) -> set[tuple[str, str, str]]:
    old, new = objects_by_identity(before), objects_by_identity(after)
    return {key for key in new if new[key] != old[key]}


def changed_non_kubernetes_inputs(before: Plan, after: Plan, fingerprints) -> set[str]:
    old, new = fingerprints(before), fingerprints(after)
    return {urn for urn in new if "$kubernetes:" not in urn and new[urn] != old[urn]}


def without_pod_template(deployment: dict[str, Any]) -> dict[str, Any]:
    trimmed = copy.deepcopy(deployment)
    del trimmed["spec"]["template"]
    return trimmed


SENTIMENT = ("modelplane:apis", "sentiment")


@pytest.mark.parametrize(("what", "edit"), [
    ("image", ((*SENTIMENT, "image"), "ghcr.io/acme/sentiment-api:1.5.0")),
    ("env", ((*SENTIMENT, "env", "WORKERS"), "8")),
])
def test_image_or_env_change_is_a_rolling_update_of_one_pod_template(
        dev_plan, render, stack_configs, fingerprints, what: str, edit) -> None:
    after = rerender(render, stack_configs, edit)

    assert_same_identities(dev_plan, after)
    assert changed_objects(dev_plan, after) == {("Deployment", "sentiment", "sentiment")}
    old = objects_by_identity(dev_plan)[("Deployment", "sentiment", "sentiment")]
    new = objects_by_identity(after)[("Deployment", "sentiment", "sentiment")]
    assert without_pod_template(new) == without_pod_template(old)
    assert new["spec"]["template"] != old["spec"]["template"]
    assert changed_non_kubernetes_inputs(dev_plan, after, fingerprints) == set()


def test_image_change_changes_only_the_image(dev_plan, render, stack_configs, find) -> None:
    after = rerender(render, stack_configs, ((*SENTIMENT, "image"), "ghcr.io/acme/sentiment-api:1.5.0"))

    old = find.object(dev_plan, "Deployment", "sentiment")["spec"]["template"]
    new = find.object(after, "Deployment", "sentiment")["spec"]["template"]
    diff = {path for path, value in leaves(new) if dict(leaves(old)).get(path) != value}

    assert diff == {("spec", "containers", 0, "image")}
    assert new["spec"]["containers"][0]["image"] == "ghcr.io/acme/sentiment-api:1.5.0"


def test_max_replicas_change_touches_only_the_hpa(dev_plan, render, stack_configs, find, fingerprints) -> None:
    after = rerender(render, stack_configs, ((*SENTIMENT, "autoscaling", "maxReplicas"), 9))

    assert_same_identities(dev_plan, after)
    assert changed_objects(dev_plan, after) == {("HorizontalPodAutoscaler", "sentiment", "sentiment")}
    old = find.object(dev_plan, "HorizontalPodAutoscaler", "sentiment")
    new = find.object(after, "HorizontalPodAutoscaler", "sentiment")
    assert new["spec"]["maxReplicas"] == 9
    assert {**new["spec"], "maxReplicas": old["spec"]["maxReplicas"]} == old["spec"]
    assert changed_non_kubernetes_inputs(dev_plan, after, fingerprints) == set()


def test_rendering_is_deterministic(dev_plan, render, fingerprints) -> None:
    # The comparisons above (and test_field_coverage) rely on two renders of one config being equal.
    assert fingerprints(render("dev")) == fingerprints(dev_plan)


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_goes_through_the_clusters_provider(plan_of, stack: str) -> None:
    plan = plan_of(stack)
    [provider] = plan.by_type("pulumi:providers:kubernetes")
    objects = [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert objects and {r.provider_urn for r in objects} == {provider.urn}


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_object_takes_back_hand_edits(plan_of, stack: str) -> None:
    # Forced server-side apply (see cluster_context.APPLY_ANNOTATIONS): without it, the real provider
    # fails even a preview after a `kubectl set image` (the e2e tier's drift scenario).
    objects = list(kubernetes_objects(plan_of(stack)))
    assert objects
    assert [o["metadata"]["name"] for o in objects
            if o["metadata"].get("annotations", {}).get("pulumi.com/patchForce") != "true"] == []
