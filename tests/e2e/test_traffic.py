"""Canary and shadow versions of an API under the real Pulumi engine and a real control plane.

One API of the ``local`` stack (its ``sentiment``, deployed as ``reviews`` so
that it shares no namespace with the other modules' stacks), exposed as the
config rules require for a canary. What the mock engine claims about identity
the engine judges here: adding a canary previews as creates only; the API's
Service sends traffic to the stable pods only (its EndpointSlices); promoting
the canary previews as an update of the stable Deployment and deletes of the
canary's objects, never a replacement; a shadow rolls the stable replicas
(their proxy config names the mirror) and runs its fixed replicas.

The scenarios run in order on one deployed stack, each leaving it deployed
and healthy; the fixture destroys it at the end.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .harness import Cluster, LiveStack, Step, local_config, pointed_at

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

APIS = "modelplane:apis"
STACK = "traffic"
API = "reviews"
CANARY = f"{API}-canary"
SHADOW = f"{API}-shadow"
STABLE_IMAGE = "nginxinc/nginx-unprivileged:1.27.4-alpine"
CANARY_IMAGE = "nginxinc/nginx-unprivileged:1.27.5-alpine"
EXPOSE = {"visibility": "internal", "allowHttp": True}

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
REPLACED = {"replace", "create-replacement", "delete-replaced"}


def traffic_config(cluster: Cluster) -> dict[str, Any]:
    """The local stack with only its sentiment API, named ``reviews``, exposed."""
    config = pointed_at(local_config(), cluster.kubeconfig, cluster.context)
    api = copy.deepcopy(config[APIS]["sentiment"])
    assert api["image"] == STABLE_IMAGE
    config[APIS] = {API: {**api, "expose": EXPOSE}}
    # The controller "runs" (harness.load_balancer_stand_in answers the Ingress); the NetworkPolicies
    # admit the load balancers' addresses.
    existing = config["modelplane:cluster"]["existing"]
    existing.setdefault("addons", {})["loadBalancerController"] = "present"
    existing["vpcCidr"] = "10.0.0.0/16"
    return config


def with_api(config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``config`` with the API's top-level keys set (``None`` removes one)."""
    changed = copy.deepcopy(config)
    for key, value in fields.items():
        if value is None:
            changed[APIS][API].pop(key, None)
        else:
            changed[APIS][API][key] = value
    return changed


def planned(steps: list[Step]) -> dict[str, set[str]]:
    """URN -> the operations the engine planned, for every resource that is not ``same``."""
    out: dict[str, set[str]] = {}
    for step in steps:
        if step.op not in ("same", "read", "refresh"):
            out.setdefault(step.urn, set()).add(step.op)
    return out


def name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def type_of(urn: str) -> str:
    return urn.split("::")[2].rsplit("$", 1)[-1]


def version_urns(stack: LiveStack, version: str) -> set[str]:
    """URNs in the stack's state of the version's component and everything under it."""
    state = stack.resources()
    [root] = [r["urn"] for r in state if r["type"] == "modelplane:index:SecondVersion" and name_of(r["urn"]) == version]
    found, frontier = {root}, {root}
    while frontier:
        frontier = {r["urn"] for r in state if r.get("parent") in frontier}
        found |= frontier
    return found


def wait_ready(kube: harness.Kube, name: str, replicas: int | None = None, timeout: float = 180) -> None:
    """Wait until Deployment ``name`` in the API's namespace has rolled out and all its replicas are ready."""
    def done() -> bool:
        deployment = kube.get("deployment", name, API)
        if deployment is None:
            return False
        status = deployment.get("status", {})
        want = deployment["spec"].get("replicas", 1)
        return ((replicas is None or want == replicas) and status.get("readyReplicas") == want
                and status.get("updatedReplicas") == want and status.get("replicas") == want
                and status.get("observedGeneration") == deployment["metadata"]["generation"])

    kube.wait_for(f"Deployment {API}/{name} ready", done, timeout=timeout)


def endpoint_pods(kube: harness.Kube, service: str) -> set[str]:
    """Names of the pods behind ``service``'s EndpointSlices (what kube-proxy and the ALB send traffic to)."""
    slices = kube.items("endpointslices", API, f"kubernetes.io/service-name={service}")
    return {e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or [] if e.get("targetRef")}


def served_by_own_pods(kube: harness.Kube, services: dict[str, str]) -> bool:
    """Whether each Service's endpoints are exactly the live pods whose selector label value it is paired with."""
    return all((found := endpoint_pods(kube, service)) and found == pods(kube, f"modelplane.io/api={value}")
               for service, value in services.items())


def pods(kube: harness.Kube, selector: str) -> set[str]:
    return {p["metadata"]["name"] for p in kube.items("pods", API, selector)
            if not p["metadata"].get("deletionTimestamp")}


def image_of(kube: harness.Kube, name: str) -> str:
    deployment = kube.get("deployment", name, API)
    assert deployment is not None
    [model] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "model"]
    return str(model["image"])


@pytest.fixture(scope="module")
def live(cluster: Cluster, crd_schemas: Path, workspace: harness.Workspace) -> Iterator[LiveStack]:
    config = traffic_config(cluster)
    cluster.prepare(config, crd_schemas)
    stack = workspace.stack(STACK, config)
    with harness.load_balancer_stand_in(cluster.kube):
        stack.up()
        wait_ready(cluster.kube, API)
        yield stack
        stack.destroy()


def test_adding_a_canary_creates_only_its_objects_and_the_api_service_keeps_the_stable_pods(
        cluster: Cluster, live: LiveStack) -> None:
    before = {r["urn"] for r in live.resources()}
    live.set_config(with_api(live.config, canary={"image": CANARY_IMAGE, "weight": 10}))

    plan = planned(live.preview())
    # The API's Ingress takes the weighted split (an update in place); everything else is the canary's, new.
    [ingress] = [u for u in before if type_of(u) == INGRESS]
    assert plan.pop(ingress) == {"update"}
    assert plan and set().union(*plan.values()) == {"create"}, plan
    assert not set(plan) & before, "adding a canary touched a resource the API had besides its Ingress"
    assert {(type_of(u), name_of(u)) for u in plan} >= {
        ("modelplane:index:SecondVersion", CANARY), (DEPLOYMENT, CANARY), ("kubernetes:core/v1:Service",
                                                                         f"{CANARY}-svc")}
    steps, result = live.up()
    assert set(result.summary.resource_changes) == {"same", "create", "update"}, result.summary.resource_changes
    assert result.summary.resource_changes["update"] == 1
    wait_ready(cluster.kube, CANARY)
    split = json.loads(cluster.kube.get("ingress", API, API)["metadata"]["annotations"][
        f"alb.ingress.kubernetes.io/actions.{API}-weighted"])
    assert [(g["serviceName"], g["weight"]) for g in split["forwardConfig"]["targetGroups"]] == [
        (API, 90), (CANARY, 10)]
    assert image_of(cluster.kube, CANARY) == CANARY_IMAGE and image_of(cluster.kube, API) == STABLE_IMAGE

    stable = pods(cluster.kube, f"modelplane.io/api={API}")
    canary = pods(cluster.kube, f"modelplane.io/api={CANARY}")
    assert stable and canary and not stable & canary
    assert pods(cluster.kube, f"modelplane.io/canary-of={API}") == canary
    # The EndpointSlice controller, judging the real selectors: each Service has exactly its own version's pods.
    cluster.kube.wait_for("each Service's endpoints to be its own version's pods", lambda: served_by_own_pods(
        cluster.kube, {API: API, CANARY: CANARY}), timeout=60)
    service = cluster.kube.get("service", CANARY, API)
    assert service is not None
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "proxy")]


def test_promotion_previews_as_an_update_of_the_stable_deployment_and_deletes_of_the_canary(
        cluster: Cluster, live: LiveStack) -> None:
    canary_urns = version_urns(live, CANARY)
    [stable] = [r["urn"] for r in live.resources() if r["type"] == DEPLOYMENT and name_of(r["urn"]) == API]
    [ingress] = [r["urn"] for r in live.resources() if r["type"] == INGRESS]
    promoted = with_api(live.config, image=CANARY_IMAGE, canary=None)
    live.set_config(promoted)

    plan = planned(live.preview())
    # The stable Deployment rolls to the canary's image, the Ingress sends everything to it again.
    assert plan == {stable: {"update"}, ingress: {"update"}, **{urn: {"delete"} for urn in canary_urns}}, plan
    assert len(canary_urns) >= 8   # the component, its Deployment, Service, PDB, policy, ConfigMap, autoscaler
    steps, result = live.up()
    assert planned(steps) == plan
    assert not any(s.op in REPLACED for s in steps)
    wait_ready(cluster.kube, API)
    assert image_of(cluster.kube, API) == CANARY_IMAGE
    assert cluster.kube.get("deployment", CANARY, API) is None
    assert cluster.kube.get("service", CANARY, API) is None
    cluster.kube.wait_for("the canary's pods to go", lambda: not pods(cluster.kube, f"modelplane.io/api={CANARY}"),
                          timeout=90)
    assert not [u for u in canary_urns if u in {r["urn"] for r in live.resources()}]


def test_a_shadow_rolls_the_stable_replicas_onto_the_mirroring_proxy_and_runs_its_fixed_replicas(
        cluster: Cluster, live: LiveStack) -> None:
    baseline = copy.deepcopy(live.config)
    stable_before = pods(cluster.kube, f"modelplane.io/api={API}")
    live.set_config(with_api(baseline, shadow={"image": STABLE_IMAGE.replace("1.27.4", "1.27.3"), "percent": 10,
                                               "replicas": 2}))

    plan = planned(live.preview())
    changed_before = {(type_of(u), name_of(u)): ops for u, ops in plan.items()
                      if (type_of(u), name_of(u)) in {(DEPLOYMENT, API), (CONFIGMAP, f"{API}-proxy"),
                                                      (NETPOL, f"{API}-netpol")}}
    # The stable side: the pod template points at the new (content-named) proxy ConfigMap, the policy gains
    # the way to the shadow; everything of the shadow is created.
    assert changed_before[(DEPLOYMENT, API)] == {"update"}
    assert changed_before[(NETPOL, f"{API}-netpol")] == {"update"}
    assert changed_before[(CONFIGMAP, f"{API}-proxy")] <= REPLACED
    others = {u: ops for u, ops in plan.items() if (type_of(u), name_of(u)) not in changed_before}
    assert others and set().union(*others.values()) == {"create"}, others
    live.up()
    wait_ready(cluster.kube, SHADOW, replicas=2)
    wait_ready(cluster.kube, API)
    assert not pods(cluster.kube, f"modelplane.io/api={API}") & stable_before, "the stable replicas did not roll"
    policy = cluster.kube.get("networkpolicy", API, API)
    assert policy is not None
    assert {"to": [{"podSelector": {"matchLabels": {"modelplane.io/api": SHADOW}}}],
            "ports": [{"port": 8888, "protocol": "TCP"}]} in policy["spec"]["egress"]
    # The shadow's Service has the shadow's pods, the API's still only its own.
    cluster.kube.wait_for("each Service's endpoints to be its own version's pods", lambda: served_by_own_pods(
        cluster.kube, {API: API, SHADOW: SHADOW}), timeout=60)

    # Removing the shadow is the same in reverse: its objects go, the stable replicas roll back.
    live.set_config(baseline)
    shadow_urns = version_urns(live, SHADOW)
    plan = planned(live.preview())
    assert {u for u, ops in plan.items() if ops == {"delete"}} == shadow_urns
    live.up()
    wait_ready(cluster.kube, API)
    assert cluster.kube.get("deployment", SHADOW, API) is None
