"""Rules that relate a model API's Deployment to the objects around it: its PDB, its autoscaler's floor, its
NetworkPolicy. They run on the whole stack, at the end of a preview or update."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ._kube import NETWORK_POLICY, PDB, Workload, autoscalers_of, namespace_of, workloads
from ._rule import Finding, Resource, Rule, Stack
from ._values import UNKNOWN, Unknown, dig, is_unknown, number, selects

__all__ = ["QUEUE_TRIGGERS", "RULES"]

EKS_GUIDE = "https://docs.aws.amazon.com/eks/latest/best-practices"

QUEUE_TRIGGERS = frozenset({
    "aws-sqs-queue", "aws-kinesis-stream", "azure-queue", "azure-servicebus", "gcp-pubsub", "kafka",
    "nats-jetstream", "rabbitmq", "redis", "redis-streams",
})
"""KEDA scalers that read a queue: a worker scaled only by them holds no endpoints a drain could take away."""


def _api_deployments(stack: Stack) -> Iterator[Workload]:
    """The Deployments of modelplane APIs."""
    for workload in workloads(stack):
        if workload.kind == "Deployment" and workload.api is not None:
            yield workload


def _covers(policy: Resource, workload: Workload, selector_path: tuple[str, ...],
            also: Callable[[Resource], bool | Unknown] = lambda _: True) -> bool:
    """Whether an object in the workload's namespace selects its pods (and passes ``also``); unknown counts."""
    namespace = namespace_of(policy)
    if not is_unknown(namespace) and not is_unknown(workload.namespace) and namespace != workload.namespace:
        return False
    if selects(dig(policy.props, *selector_path), workload.pod_labels) is False:
        return False
    return also(policy) is not False


def _pdb_per_api(stack: Stack) -> Iterator[Finding]:
    budgets = stack.of_type(PDB)
    for workload in _api_deployments(stack):
        if not any(_covers(pdb, workload, ("spec", "selector")) for pdb in budgets):
            yield Finding(
                f"Add a PodDisruptionBudget in namespace {workload.namespace!r} whose selector matches the pods of "
                f"{workload} (modelplane's ModelApi makes one: maxUnavailable 1 on modelplane.io/api="
                f"{workload.selector_value}): "
                f"without it a node drain or upgrade may evict every replica at once.",
                workload.resource.urn)


def _queue_worker(workload: Workload, stack: Stack) -> bool:
    """Whether only queue scalers drive the workload: it takes work from a queue and serves no endpoints."""
    autoscalers, _ = autoscalers_of(workload, stack)
    if not autoscalers:
        return False
    for autoscaler in autoscalers:
        types = autoscaler.trigger_types()
        if isinstance(types, Unknown) or not types or not all(t in QUEUE_TRIGGERS for t in types):
            return False
    return True


def _min_two_replicas(stack: Stack) -> Iterator[Finding]:
    for workload in workloads(stack):
        if not any(c.serves is True for c in workload.containers()) or _queue_worker(workload, stack):
            continue
        if workload.version == "shadow":
            continue  # a shadow answers nobody: a drain loses only copies of requests
        autoscalers, maybe = autoscalers_of(workload, stack)
        if maybe:
            continue
        if autoscalers:
            floors = [(number(a.min_replicas()), f"{a.min_field} of {a}", a.resource.urn) for a in autoscalers]
        else:
            replicas = dig(workload.resource.props, "spec", "replicas")
            floors = [(1.0 if replicas is None else number(replicas), f"replicas of {workload}",
                       workload.resource.urn)]
        for floor, field, urn in floors:
            if floor is None or floor >= 2:
                continue
            key = workload.key()
            target = workload.replicas_key("minReplicas") or field
            subject = f" for {workload}" if key else ""
            if floor == 0:
                effect = ("at 0 replicas it refuses every request until a replica starts (to scale to zero, "
                          "take work from a queue instead" + (f": {key}.queue)" if key else ")"))
            else:
                effect = ("with one replica a node drain, upgrade or spot reclaim takes every endpoint away until "
                          "a new replica is ready")
            yield Finding(f"Set {target} to 2 or more (now {floor:g}){subject}: {effect}.", urn)


def _ingress_policy(policy: Resource) -> bool | Unknown:
    types = dig(policy.props, "spec", "policyTypes")
    if is_unknown(types):
        return UNKNOWN
    # Without policyTypes a NetworkPolicy is always an Ingress policy.
    return types is None or UNKNOWN in types or "Ingress" in types


def _network_policy_per_namespace(stack: Stack) -> Iterator[Finding]:
    policies = stack.of_type(NETWORK_POLICY)
    for workload in _api_deployments(stack):
        if not any(_covers(p, workload, ("spec", "podSelector"), _ingress_policy) for p in policies):
            yield Finding(
                f"Add a NetworkPolicy with policyType Ingress in namespace {workload.namespace!r} that selects the "
                f"pods of {workload}: without one every pod in the cluster can reach its model server directly "
                f"(stack file: {workload.key()}.network.isolated: true).",
                workload.resource.urn)


RULES = [
    Rule("pdb-per-api", "Every model API's Deployment has a PodDisruptionBudget selecting its pods.",
         "Node drains (upgrades, scale-down, spot reclaims) respect PDBs; without one a drain may evict all of an "
         "API's replicas at once.",
         f"{EKS_GUIDE}/application.html", _pdb_per_api),
    Rule("min-two-replicas", "Serving workloads keep at least 2 replicas (autoscaler minimum or replicas).",
         "With one replica a node drain removes every endpoint until the new pod is ready (measured on a real "
         "control plane); at zero every request fails until a replica starts. Queue workers, scaled only on "
         "queues, are exempt: their messages wait; so are an API's shadows, which answer nobody.",
         f"{EKS_GUIDE}/application.html", _min_two_replicas, prod_only=True),
    Rule("network-policy-per-namespace",
         "Every namespace that runs a model API has an Ingress NetworkPolicy selecting the API's pods.",
         "Kubernetes lets every pod reach every other by default; a NetworkPolicy limits who can call the model "
         "server.",
         f"{EKS_GUIDE}/network-security.html", _network_policy_per_namespace),
]
