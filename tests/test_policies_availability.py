"""policies/modelplane_policies/availability.py: the stack rules around an API's Deployment."""

from __future__ import annotations

from typing import Any

from policy_support import (
    DELETE,
    UNKNOWN_STRING,
    deployment_object,
    edited,
    hpa_object,
    network_policy_object,
    pdb_object,
    scaled_object,
    stack_violations,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

Resources = list[tuple[str, str, dict[str, Any]]]


def api(deployment: dict[str, Any] | None = None, autoscaler: tuple[str, dict[str, Any]] | None = None,
        pdb: dict[str, Any] | None = None, network_policy: dict[str, Any] | None = None) -> Resources:
    """An API's objects as modelplane registers them (pass an edited one to replace it)."""
    kind, scaler = autoscaler or (HPA, hpa_object())
    return [(DEPLOYMENT, "sentiment", deployment or deployment_object()),
            (kind, "sentiment-autoscaling", scaler),
            (PDB, "sentiment-pdb", pdb or pdb_object()),
            (NETWORK_POLICY, "sentiment-ingress", network_policy or network_policy_object())]


def without(resources: Resources, type_: str) -> Resources:
    return [r for r in resources if r[0] != type_]


# ----------------------------------------------------------------------------- pdb-per-api

def test_pdb_per_api_passes_when_a_pdb_selects_the_pods() -> None:
    assert stack_violations("pdb-per-api", api()) == []


def test_pdb_per_api_fails_without_a_pdb() -> None:
    assert stack_violations("pdb-per-api", without(api(), PDB)) == [(
        "sentiment",
        "Add a PodDisruptionBudget in namespace 'sentiment' whose selector matches the pods of Deployment "
        "sentiment/sentiment (modelplane's ModelApi makes one: maxUnavailable 1 on modelplane.io/api=sentiment): "
        "without it a node drain or upgrade may evict every replica at once.")]


def test_pdb_per_api_fails_when_the_pdb_is_elsewhere_or_selects_other_pods() -> None:
    elsewhere = edited(pdb_object(), ("metadata.namespace", "other"))
    other_pods = edited(pdb_object(), ("spec.selector.matchLabels", {"modelplane.io/api": "other"}))
    assert len(stack_violations("pdb-per-api", api(pdb=elsewhere))) == 1
    assert len(stack_violations("pdb-per-api", api(pdb=other_pods))) == 1


def test_pdb_per_api_counts_a_pdb_whose_namespace_is_not_known_yet() -> None:
    unknown = edited(pdb_object(), ("metadata.namespace", UNKNOWN_STRING))
    assert stack_violations("pdb-per-api", api(pdb=unknown)) == []


def test_pdb_per_api_matches_selector_expressions() -> None:
    expressions = {"matchExpressions": [{"key": "modelplane.io/api", "operator": "In", "values": ["sentiment"]}]}
    not_in = {"matchExpressions": [{"key": "modelplane.io/api", "operator": "NotIn", "values": ["sentiment"]}]}
    assert stack_violations("pdb-per-api", api(pdb=edited(pdb_object(), ("spec.selector", expressions)))) == []
    assert len(stack_violations("pdb-per-api", api(pdb=edited(pdb_object(), ("spec.selector", not_in))))) == 1


# ----------------------------------------------------------------------------- min-two-replicas

def test_min_two_replicas_passes_with_an_hpa_floor_of_two() -> None:
    assert stack_violations("min-two-replicas", api()) == []


def test_min_two_replicas_fails_with_an_hpa_floor_of_one() -> None:
    assert stack_violations("min-two-replicas", api(autoscaler=(HPA, hpa_object(min_replicas=1)))) == [(
        "sentiment-autoscaling",
        "Set modelplane:apis.sentiment.autoscaling.minReplicas to 2 or more (now 1) for Deployment "
        "sentiment/sentiment: with one replica a node drain, upgrade or spot reclaim takes every endpoint away "
        "until a new replica is ready.")]


def test_min_two_replicas_counts_the_kubernetes_defaults() -> None:
    # An HPA without minReplicas keeps 1; a Deployment with no autoscaler and no replicas runs 1.
    unset = edited(hpa_object(), ("spec.minReplicas", DELETE))
    assert len(stack_violations("min-two-replicas", api(autoscaler=(HPA, unset)))) == 1
    [(name, message)] = stack_violations("min-two-replicas", without(api(), HPA))
    assert name == "sentiment" and "(now 1)" in message


def test_min_two_replicas_passes_on_a_deployment_with_two_replicas_and_no_autoscaler() -> None:
    two = edited(deployment_object(), ("spec.replicas", 2))
    assert stack_violations("min-two-replicas", without(api(deployment=two), HPA)) == []


def test_min_two_replicas_fails_on_a_request_api_that_scales_to_zero() -> None:
    assert stack_violations("min-two-replicas", api(autoscaler=(SCALED_OBJECT, scaled_object(0)))) == [(
        "sentiment-autoscaling",
        "Set modelplane:apis.sentiment.autoscaling.minReplicas to 2 or more (now 0) for Deployment "
        "sentiment/sentiment: at 0 replicas it refuses every request until a replica starts (to scale to zero, "
        "take work from a queue instead: modelplane:apis.sentiment.queue).")]


def test_min_two_replicas_exempts_queue_workers() -> None:
    worker = (SCALED_OBJECT, scaled_object(0, trigger="aws-sqs-queue"))
    assert stack_violations("min-two-replicas", api(autoscaler=worker)) == []


def test_min_two_replicas_names_the_field_outside_modelplane() -> None:
    plain = edited(deployment_object(), ("metadata.labels", {"app": "web"}), ("spec.replicas", 1))
    assert stack_violations("min-two-replicas", [(DEPLOYMENT, "web", plain)]) == [(
        "web",
        "Set replicas of Deployment sentiment/sentiment to 2 or more (now 1): with one replica a node drain, "
        "upgrade or spot reclaim takes every endpoint away until a new replica is ready.")]


def test_min_two_replicas_waits_while_the_autoscaler_target_is_unknown() -> None:
    unknown = edited(hpa_object(min_replicas=1), ("spec.scaleTargetRef.name", UNKNOWN_STRING))
    assert stack_violations("min-two-replicas", api(autoscaler=(HPA, unknown))) == []


# ----------------------------------------------------------------------------- network-policy-per-namespace

def test_network_policy_passes_with_an_ingress_policy_on_the_pods() -> None:
    assert stack_violations("network-policy-per-namespace", api()) == []


def test_network_policy_without_policy_types_is_an_ingress_policy() -> None:
    implicit = edited(network_policy_object(), ("spec.policyTypes", DELETE))
    assert stack_violations("network-policy-per-namespace", api(network_policy=implicit)) == []


def test_network_policy_fails_without_one() -> None:
    assert stack_violations("network-policy-per-namespace", without(api(), NETWORK_POLICY)) == [(
        "sentiment",
        "Add a NetworkPolicy with policyType Ingress in namespace 'sentiment' that selects the pods of Deployment "
        "sentiment/sentiment: without one every pod in the cluster can reach its model server directly "
        "(stack file: modelplane:apis.sentiment.network.isolated: true).")]


def test_network_policy_fails_when_it_only_limits_egress() -> None:
    egress = edited(network_policy_object(), ("spec.policyTypes", ["Egress"]))
    assert len(stack_violations("network-policy-per-namespace", api(network_policy=egress))) == 1


def test_network_policy_with_an_empty_pod_selector_covers_the_namespace() -> None:
    everything = edited(network_policy_object(), ("spec.podSelector", {}))
    assert stack_violations("network-policy-per-namespace", api(network_policy=everything)) == []
