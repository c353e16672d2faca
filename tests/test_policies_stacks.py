"""The policy pack on every stack in stacks/: each stack rendered offline, every resource it registers sent
through the pack as the engine would (:func:`modelplane_policies.offline.evaluate`).

Our own stacks must pass what the pack enforces on them. What they do not pass
yet is listed in :data:`FINDINGS`, each with why it is not fixed here; the
test fails on any other mandatory violation, and on a listed one that is gone
(delete its entry then).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modelplane_policies import RULES
from modelplane_policies.offline import Diagnostic, evaluate

from modelplane.config import load_stack_file
from modelplane.offline import Plan, stack_names

PROJECT = Path(__file__).resolve().parent.parent
STACKS = stack_names(PROJECT)

FINDINGS: dict[str, dict[tuple[str, str], int]] = {
    # Empty: every stack passes what the pack enforces on it. (prod's two single-replica APIs now keep
    # two, and its images are pinned by digest.)
}
"""Mandatory violations of our own stacks that are known and reported, by stack: (rule, resource) -> count."""


@dataclass(frozen=True)
class Report:
    stack: str
    analyzed: Counter[str]
    """Resources sent to Analyze, by type."""
    diagnostics: list[Diagnostic]

    def at(self, level: str) -> Counter[tuple[str, str]]:
        return Counter((d.policy, d.resource) for d in self.diagnostics if d.level == level)


def run_pack(stack: str, plan: Plan, stack_config: dict[str, Any]) -> Report:
    """The pack's diagnostics on a rendered stack whose stack file holds ``stack_config``."""
    return Report(stack, Counter(r.type for r in plan.resources), evaluate(stack, stack_config, plan.resources))


@pytest.fixture(scope="module")
def reports(render: Callable[..., Plan]) -> dict[str, Report]:
    return {stack: run_pack(stack, render(stack), load_stack_file(PROJECT / "stacks" / f"Pulumi.{stack}.yaml"))
            for stack in STACKS}


def test_the_stacks_are_the_committed_ones() -> None:
    assert {"dev", "local", "prod"} <= set(STACKS)
    assert set(FINDINGS) <= set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_our_stacks_pass_what_the_pack_enforces_on_them(reports: dict[str, Report], stack: str) -> None:
    report = reports[stack]
    assert sum(report.analyzed.values()) > 20
    unexpected = report.at("mandatory") - Counter(FINDINGS.get(stack, {}))
    gone = Counter(FINDINGS.get(stack, {})) - report.at("mandatory")
    details = [f"{d.policy} on {d.resource}: {d.message}" for d in report.diagnostics
               if d.level == "mandatory" and (d.policy, d.resource) in unexpected]
    assert not unexpected, "\n".join(details)
    assert not gone, f"fixed, delete from FINDINGS[{stack!r}]: {sorted(gone)}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_rule_runs_to_the_end_on_our_stacks(reports: dict[str, Report], stack: str) -> None:
    # pulumi_policy turns a rule that read an unknown value into a "can't run policy" diagnostic.
    assert [d for d in reports[stack].diagnostics if "can't run policy" in d.message] == []


def test_every_resource_rule_judges_some_resource_of_the_prod_stack(reports: dict[str, Report]) -> None:
    analyzed = reports["prod"].analyzed
    resource_rules = [rule for rule in RULES if not rule.is_stack_rule]
    assert [rule.name for rule in resource_rules if not any(analyzed[t] for t in rule.types)] == []


def test_an_api_left_without_its_network_policy_fails_prod_naming_the_key(render: Callable[..., Plan],
                                                                            stack_configs: Any) -> None:
    config = stack_configs.edited("prod", (("modelplane:apis", "fraud-score", "network", "isolated"), False))
    report = run_pack("prod", render("prod", config), config)
    [found] = [d for d in report.diagnostics if d.policy == "network-policy-per-namespace"]
    assert (found.level, found.resource) == ("mandatory", "fraud-score")
    assert found.message.endswith("(stack file: modelplane:apis.fraud-score.network.isolated: true).")


def test_the_stack_guardrails_set_the_levels(render: Callable[..., Plan], stack_configs: Any) -> None:
    tagged = (("modelplane:apis", "fraud-score", "image"), "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraud:2.0.1")
    strict = stack_configs.edited("prod", tagged)
    relaxed = stack_configs.edited("prod", tagged, (("modelplane:guardrails",), {
        "rules": {"images-by-digest": "advisory"}, "maxGpus": 200}))

    # prod's default: a tag fails the preview ...
    assert run_pack("prod", render("prod", strict), strict).at("mandatory") == Counter(
        {("images-by-digest", "fraud-score"): 1})
    # ... unless the stack file makes the rule advisory.
    report = run_pack("prod", render("prod", relaxed), relaxed)
    assert report.at("mandatory") == Counter()
    assert report.at("advisory")[("images-by-digest", "fraud-score")] == 1


# ------------------------------------------------------------------------ canary and shadow on prod

PINNED = "@sha256:" + "ab" * 32


def prod_with_versions(stack_configs, canary: dict[str, Any]) -> dict[str, Any]:
    """prod with an exposed fraud-score running ``canary`` and sentiment a one-replica shadow."""
    apis = "modelplane:apis"
    return stack_configs.edited(
        "prod", ((apis, "fraud-score", "expose"), {"allowHttp": True}),
        ((apis, "fraud-score", "canary"), {"image": f"ghcr.io/acme/fraud-score:2024.12.1{PINNED}", "weight": 10,
                                           **canary}),
        ((apis, "sentiment", "shadow"), {"image": f"ghcr.io/acme/sentiment-api:2.0.0{PINNED}", "percent": 5}))


def test_prods_pack_judges_a_canary_as_serving_and_names_its_keys_but_exempts_a_shadow(
        render: Callable[..., Plan], stack_configs) -> None:
    config = prod_with_versions(stack_configs, {"image": "ghcr.io/acme/fraud-score:2024.12.1"})
    report = run_pack("prod", render("prod", config), config)

    # The canary takes users' requests: one replica (its default) is too few on prod, and its image is a
    # tag; each message names the key in the canary's own block. The shadow answers nobody: its single
    # replica is fine.
    assert sorted((d.level, d.policy, d.resource, d.message.split("\n", 1)[-1]) for d in report.diagnostics) == [
        ("mandatory", "images-by-digest", "fraud-score-canary",
         "Pin image 'ghcr.io/acme/fraud-score:2024.12.1' of container 'model' of Deployment "
         "fraud-score/fraud-score-canary by digest (name:tag@sha256:...): a tag can be moved to other content, so "
         "what runs would not be what was reviewed (stack file: modelplane:apis.fraud-score.canary.image)."),
        ("mandatory", "min-two-replicas", "fraud-score-canary-autoscaling",
         "Set modelplane:apis.fraud-score.canary.minReplicas to 2 or more (now 1) for Deployment "
         "fraud-score/fraud-score-canary: with one replica a node drain, upgrade or spot reclaim takes every "
         "endpoint away until a new replica is ready."),
    ]


def test_prod_with_a_two_replica_pinned_canary_and_a_shadow_passes_the_pack(
        render: Callable[..., Plan], stack_configs) -> None:
    config = prod_with_versions(stack_configs, {"minReplicas": 2, "maxReplicas": 3})
    plan = render("prod", config)
    report = run_pack("prod", plan, config)

    # Both versions were judged (their PDBs and NetworkPolicies satisfy the per-API rules), and pass.
    assert {(r.type, r.name) for r in plan.resources} >= {
        ("kubernetes:apps/v1:Deployment", "fraud-score-canary"), ("kubernetes:apps/v1:Deployment", "sentiment-shadow")}
    assert report.diagnostics == []
