"""The plan's schedulability verdicts, judged by the real kube-scheduler on kwok nodes.

For every committed stack, and for variants of dev that overfill its CPU group
and its GPU group, a fresh control plane gets:

- kwok nodes for each node group at its ``maxSize``, with the capacity and
  allocatable the product computes for the group's smallest instance type (the
  EKS kubelet's reserve, eviction threshold and max pods: ``modelplane.catalog``);
- stand-in DaemonSets with the requests the product says EKS and modelplane
  run on every node (aws-node, kube-proxy, the NVIDIA device plugin on GPU
  nodes, the node exporter when kube-prometheus-stack is installed): the
  scheduler, not our code, subtracts them;
- the stack's rendered Namespaces, ServiceAccounts, ConfigMaps and
  Deployments (``modelplane render``'s objects; the local-stack scenario shows
  they are what the engine creates), with no autoscaler objects: the test sets
  the replicas.

The Deployments go to minReplicas, then to maxReplicas (canaries and shadows
at theirs), then each rolls out on its own (a pod-template annotation), one
after another as the plan assumes. Verdicts: a group has pods Pending at some
point exactly when the plan warns about it (or errs); the nodes holding API
pods match the plan's count within one node.

The scheduler runs with ``NodeResourcesFit`` scoring ``MostAllocated``: it
fills nodes before it starts empty ones, which is what a cluster autoscaler
that adds nodes only when pods are Pending gives, and what the plan's node
count estimates. (With the default ``LeastAllocated`` it spreads pods over
every node there is, and "nodes used" says nothing.) The zone spread the pods
ask for (``ScheduleAnyway``) still scores, so packing is online and zone-aware,
not the plan's offline first-fit decreasing: that is the one node of slack.
Where the counts differ it is that spread: the local stack's two sentiment
replicas at minReplicas go to its two cpu nodes, one per zone, where the plan
packs them on one.

Measured (2 cores): about 25 s of setup per case (a control plane, nodes and
node agents), then 55 s (local) to 215 s (prod, ~120 pods) of scenario; the
five cases about 11 minutes.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelplane.config import parse_estate
from modelplane.config.schedulability import (
    AWS_NODE,
    DEVICE_PLUGIN,
    KUBE_PROXY,
    NODE_EXPORTER,
    bin_pack,
    pods_at_max,
    pods_at_min,
)
from modelplane.offline import kubernetes_objects, run_stack
from modelplane.placement import GPU_PRESENT_LABEL, NODE_GROUP_LABEL

from . import harness
from .harness import ControlPlane, Kube, load_stack_file

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

APIS = "modelplane:apis"
GROUPS = "modelplane:nodeGroups"
AGENTS = "e2e-node-agents"
ROLLOUT = "modelplane.e2e/rollout"

PROFILE = {
    "pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {
        "type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1},
                      {"name": "nvidia.com/gpu", "weight": 1}]}}}],
    # Balanced allocation scores against packing; off, as a bin-packing cluster runs it.
    "plugins": {"score": {"disabled": [{"name": "NodeResourcesBalancedAllocation"}]}},
}


def stack(name: str, *edits: tuple[tuple[str, ...], Any]) -> dict[str, Any]:
    config = load_stack_file(harness.PROJECT / "stacks" / f"Pulumi.{name}.yaml")
    for path, value in edits:
        node: Any = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return config


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", stack("dev")),
    "prod": ("prod", stack("prod")),
    "local": ("local", stack("local")),
    # sentiment at 24 replicas fills the 4 cpu nodes (6 a node); its 25% rollout surge (6) does not fit.
    "dev-cpu-overfilled": ("dev", stack("dev", ((APIS, "sentiment", "autoscaling", "maxReplicas"), 24))),
    # image-embed 3 + doc-embed 2 fill 5 GPU nodes (one pod each: two do not share a g5.xlarge on CPU);
    # the rollout's surge replica has no node.
    "dev-gpu-overfilled": ("dev", stack("dev", ((GROUPS, "gpu-spot", "maxSize"), 5))),
}


# --------------------------------------------------------------------------- the stand-ins

def _agent(d: Any, gpu_only: bool, tolerate: list[dict[str, str]]) -> dict[str, Any]:
    """A DaemonSet of pause containers requesting what ``d`` requests (aws-node as its three containers)."""
    def container(name: str, cpu: float) -> dict[str, Any]:
        return {"name": name, "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": f"{int(cpu)}m"}} if cpu else {},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}}

    if d is AWS_NODE:
        spec = {"initContainers": [container("aws-vpc-cni-init", 25)],
                "containers": [container("aws-node", 25), container("aws-eks-nodeagent", 25)]}
    else:
        spec = {"containers": [container(d.name, d.requests.cpu)]}
    labels = {"app": d.name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": d.name, "namespace": AGENTS},
            "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                **spec, "tolerations": tolerate,
                **({"nodeSelector": {GPU_PRESENT_LABEL: "true"}} if gpu_only else {})}}}}


def daemonset_stand_ins(node_exporter: bool) -> list[dict[str, Any]]:
    everything = [{"operator": "Exists"}]
    agents = [_agent(AWS_NODE, False, everything), _agent(KUBE_PROXY, False, everything),
              _agent(DEVICE_PLUGIN, True, everything)]
    if node_exporter:
        agents.append(_agent(NODE_EXPORTER, False, [{"operator": "Exists", "effect": "NoSchedule"}]))
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AGENTS}}, *agents]


# --------------------------------------------------------------------------- observing

@dataclass
class Seen:
    """What the scheduler did with one group's API pods over the whole scenario."""

    pending: int = 0
    """Most API pods Pending (unschedulable) at once."""
    nodes: dict[str, int] = field(default_factory=dict)
    """Phase -> nodes holding API pods then (most seen during a rollout)."""
    pending_in: set[str] = field(default_factory=set)
    """Phases with pods Pending."""


def api_pods(kube: Kube, namespaces: list[str]) -> list[dict[str, Any]]:
    """The live pods of the APIs' namespaces (one list call)."""
    return [p for p in kube.items("pods") if p["metadata"]["namespace"] in namespaces
            and not p["metadata"].get("deletionTimestamp")]


def unschedulable(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in pod.get("status", {}).get("conditions", []))


def observe(kube: Kube, namespaces: list[str], node_group: dict[str, str], api_group: dict[str, str],
            seen: dict[str, Seen], phase: str) -> tuple[int, int]:
    """Record pending pods and nodes in use per group; (pods not yet judged by the scheduler, pending)."""
    pods = api_pods(kube, namespaces)
    used: dict[str, set[str]] = {}
    pending: dict[str, int] = {}
    waiting = 0
    for pod in pods:
        group = api_group[pod["metadata"]["namespace"]]
        node = pod["spec"].get("nodeName")
        if node:
            used.setdefault(group, set()).add(node)
        elif unschedulable(pod):
            pending[group] = pending.get(group, 0) + 1
        else:
            waiting += 1
    for group, s in seen.items():
        s.nodes[phase] = max(s.nodes.get(phase, 0), len(used.get(group, ())))
        if pending.get(group):
            s.pending = max(s.pending, pending[group])
            s.pending_in.add(phase)
    return waiting, sum(pending.values())


def settle(kube: Kube, namespaces: list[str], node_group: dict[str, str], api_group: dict[str, str],
           seen: dict[str, Seen], phase: str, done: Any, timeout: float = 180) -> None:
    """Observe until ``done()`` holds, or until pods stay Pending while no Deployment moves for 6 s (a stall)."""
    deadline, last, quiet_since = time.time() + timeout, None, time.time()
    while time.time() < deadline:
        waiting, pending = observe(kube, namespaces, node_group, api_group, seen, phase)
        if done():
            return
        state = json.dumps(sorted((d["metadata"]["name"], d.get("status", {}).get("updatedReplicas"),
                                   d.get("status", {}).get("availableReplicas"), d.get("status", {}).get("replicas"))
                                  for d in kube.items("deployments") if d["metadata"]["namespace"] in namespaces))
        if state != last or waiting:
            last, quiet_since = state, time.time()
        elif pending and time.time() - quiet_since > 6:
            return  # stalled: the Pending pods have nowhere to go
        time.sleep(0.5)
    raise AssertionError(f"{phase}: did not settle in {timeout:.0f}s")


def deployments_settled(kube: Kube, namespaces: list[str], names: set[str] | None = None) -> bool:
    """Whether the APIs' Deployments (or those named) have rolled out completely (one list call)."""
    for d in kube.items("deployments"):
        if d["metadata"]["namespace"] not in namespaces or (names is not None and d["metadata"]["name"] not in names):
            continue
        status, want = d.get("status", {}), d["spec"]["replicas"]
        if not (status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("updatedReplicas", 0) == want and status.get("availableReplicas", 0) == want
                and status.get("replicas", 0) == want):
            return False
    return True


# --------------------------------------------------------------------------- the scenario

def judge(case: str, stack_name: str, config: dict[str, Any], instance: Path) -> list[str]:
    """Run one stack through the scheduler; return the comparison lines (and assert the verdicts agree)."""
    started = time.time()
    estate = parse_estate(config, case)
    plan = run_stack(stack_name, harness.PROJECT, config_map=copy.deepcopy(config))
    objects = list(kubernetes_objects(plan))
    wanted_kinds = ("Namespace", "ServiceAccount", "ConfigMap")
    api_namespaces = sorted(estate.apis)
    api_group = {name: api.node_group for name, api in estate.apis.items()}
    node_group = {}
    seen = {g: Seen() for g in estate.node_groups if any(a.node_group == g for a in estate.apis.values())}
    at_min = {g.name: g.count for name, api in estate.apis.items() for g in pods_at_min(name, api)}
    at_max = {g.name: g.count for name, api in estate.apis.items() for g in pods_at_max(name, api)}
    deployments = [o for o in objects if o["kind"] == "Deployment" and o["metadata"].get("namespace") in estate.apis]
    assert {d["metadata"]["name"] for d in deployments} == set(at_max)

    plane = ControlPlane(instance=instance, emulate=estate.cluster.kubernetes_version, scheduler_profile=PROFILE)
    plane.start()
    try:
        kube = Kube(plane.kubeconfig)
        nodes = harness.kwok_nodes(config)
        node_group = {n["metadata"]["name"]: n["metadata"]["labels"].get(NODE_GROUP_LABEL, "") for n in nodes}
        kube.apply(nodes)
        kube.wait_for("kwok nodes Ready", lambda: sum(
            1 for n in kube.items("nodes") for c in n["status"].get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True") >= len(nodes), timeout=60)
        agents = daemonset_stand_ins(estate.installs_prometheus)
        kube.apply(agents)
        kube.wait_for("node agents on every node", lambda: all(
            (ds.get("status", {}).get("numberAvailable") or 0) == ds.get("status", {}).get("desiredNumberScheduled", -1)
            and ds.get("status", {}).get("desiredNumberScheduled", 0) > 0
            for ds in kube.items("daemonsets", AGENTS) if ds["metadata"]["name"] != DEVICE_PLUGIN.name
        ), timeout=90)
        for kind in wanted_kinds:  # namespaces first
            kube.apply([o for o in objects if o["kind"] == kind])
        setup = time.time() - started

        def with_replicas(d: dict[str, Any], replicas: int) -> dict[str, Any]:
            d = copy.deepcopy(d)
            d["spec"]["replicas"] = replicas
            return d

        kube.apply([with_replicas(d, at_min[d["metadata"]["name"]]) for d in deployments])
        settle(kube, api_namespaces, node_group, api_group, seen, "min",
               lambda: deployments_settled(kube, api_namespaces))
        kube.apply([with_replicas(d, at_max[d["metadata"]["name"]]) for d in deployments])
        settle(kube, api_namespaces, node_group, api_group, seen, "max",
               lambda: deployments_settled(kube, api_namespaces))
        # One rollout at a time in each group (the plan counts the largest single surge); groups at once.
        by_group: dict[str, list[dict[str, Any]]] = {}
        for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
            if at_max[d["metadata"]["name"]]:
                by_group.setdefault(api_group[d["metadata"]["namespace"]], []).append(d)
        rounds = max((len(ds) for ds in by_group.values()), default=0)
        for index in range(rounds):
            batch = [ds[index] for ds in by_group.values() if index < len(ds)]
            names = {d["metadata"]["name"] for d in batch}
            patch = {"spec": {"template": {"metadata": {"annotations": {ROLLOUT: "1"}}}}}
            for d in batch:
                kube.run("patch", "deployment", d["metadata"]["name"], "-n", d["metadata"]["namespace"],
                         "--type=merge", "-p", json.dumps(patch))
            settle(kube, api_namespaces, node_group, api_group, seen, "rollout",
                   lambda names=names: deployments_settled(kube, api_namespaces, names))
            for d in batch:
                name, namespace = d["metadata"]["name"], d["metadata"]["namespace"]
                if not deployments_settled(kube, api_namespaces, {name}):
                    # Stalled (its surge has no node): back to the old revision before the next round.
                    kube.run("rollout", "undo", f"deployment/{name}", "-n", namespace)
            kube.wait_for("rollouts settled", lambda: deployments_settled(kube, api_namespaces), 180)
        observed = time.time() - started - setup
    finally:
        plane.stop()

    lines = [f"{case}: setup {setup:.0f}s, scenario {observed:.0f}s",
             f"  {'group':14} {'maxSize':>7} {'plan min/max':>12} {'sched min/max':>13} {'plan fits':>9} "
             f"{'pending':>7}  phases pending"]
    failures = []
    for group, s in seen.items():
        need = estate.node_need(group)
        assert need is not None
        scheduler_max = max(s.nodes.get("max", 0), s.nodes.get("rollout", 0))
        fits_seen = not s.pending_in
        lines.append(f"  {group:14} {need.max_size:>7} {need.at_min:>5}/{need.at_max:<6} "
                     f"{s.nodes.get('min', 0):>6}/{scheduler_max:<6} {str(need.fits):>9} {s.pending:>7}  "
                     f"{','.join(sorted(s.pending_in)) or '-'}")
        if fits_seen != need.fits:
            failures.append(f"{group}: the plan says fits={need.fits}, the scheduler left {s.pending} pod(s) Pending "
                            f"in {sorted(s.pending_in)}")
        if abs(s.nodes.get("min", 0) - need.at_min) > 1:
            failures.append(f"{group}: at minReplicas the plan counts {need.at_min} nodes, the scheduler used "
                            f"{s.nodes.get('min', 0)}")
        if need.fits and abs(scheduler_max - need.at_max) > 1:
            failures.append(f"{group}: at maxReplicas plus a surge the plan counts {need.at_max} nodes, the "
                            f"scheduler used {scheduler_max}")
        if not need.fits:
            # Every node of the group in use, and the plan's count beyond it.
            peak_nodes = bin_pack(need.peak, need.shape.room)
            lines.append(f"  {'':14} plan: {peak_nodes} node(s) at maxReplicas, {need.at_max} with the surge; "
                         f"the scheduler filled {scheduler_max} of {need.max_size}")
            if scheduler_max != need.max_size:
                failures.append(f"{group}: short of nodes, yet the scheduler used {scheduler_max} of {need.max_size}")
    print("\n".join(lines))
    assert not failures, "\n".join(lines + failures)
    return lines


@pytest.fixture(scope="module")
def toolchain() -> None:
    if not harness.built_toolchain():
        pytest.skip("no e2e toolchain: run tests/e2e/toolchain/build.sh (cold ~17 min)")


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_scheduler_agrees_with_the_plan(toolchain: None, case: str) -> None:
    stack_name, config = CASES[case]
    judge(case, stack_name, config, harness.instance_dir(f"sched-{case}"))
