"""policies/modelplane_policies/guardrails.py: which level each rule gets on which stack."""

from __future__ import annotations

import json

import pytest
from pulumi_policy import EnforcementLevel

from modelplane_policies import RULES, Guardrails, GuardrailsError, Pack, enforcement_level, is_prod_stack

MANDATORY, ADVISORY, DISABLED = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY, EnforcementLevel.DISABLED
NAMES = frozenset(rule.name for rule in RULES)
PROD_ONLY = sorted(rule.name for rule in RULES if rule.prod_only)
EVERYWHERE = sorted(rule.name for rule in RULES if not rule.prod_only)


def levels(stack: str | None, guardrails: dict | None = None) -> dict[str, EnforcementLevel]:
    """Every rule's level on ``stack`` with this ``modelplane:guardrails`` value, as the pack sets them."""
    pack = Pack()
    config = {} if guardrails is None else {"modelplane:guardrails": json.dumps(guardrails)}
    pack.configure(stack, config)
    return {name: pack.level(name) for name in NAMES}


def test_the_prod_only_rules_are_the_prod_requirements() -> None:
    assert PROD_ONLY == ["images-by-digest", "min-two-replicas"]


@pytest.mark.parametrize("stack", ["prod", "prod-eu", "acme/modelplane/prod"])
def test_prod_stacks_enforce_every_rule(stack: str) -> None:
    assert set(levels(stack).values()) == {MANDATORY}


@pytest.mark.parametrize("stack", ["dev", "local", "production", "staging-prod"])
def test_other_stacks_advise_and_leave_prod_requirements_off(stack: str) -> None:
    found = levels(stack)
    assert {found[name] for name in EVERYWHERE} == {ADVISORY}
    assert {found[name] for name in PROD_ONLY} == {DISABLED}


def test_an_unknown_stack_fails_closed() -> None:
    assert set(levels(None).values()) == {MANDATORY}


def test_a_rule_override_wins_over_the_stack_default_and_the_stack_enforcement() -> None:
    found = levels("prod", {"enforcement": "advisory",
                            "rules": {"images-by-digest": "disabled", "zone-spread": "mandatory"}})
    assert found["images-by-digest"] == DISABLED
    assert found["zone-spread"] == MANDATORY
    assert {found[n] for n in NAMES - {"images-by-digest", "zone-spread"}} == {ADVISORY}


def test_stack_enforcement_applies_to_prod_requirements_too() -> None:
    assert set(levels("dev", {"enforcement": "mandatory"}).values()) == {MANDATORY}


def test_one_function_decides_and_is_what_the_pack_applies() -> None:
    guardrails = Guardrails.parse({"rules": {"pdb-per-api": "advisory"}}, NAMES)
    assert enforcement_level("pdb-per-api", False, "prod", guardrails) == ADVISORY
    assert enforcement_level("min-two-replicas", True, "dev", guardrails) == DISABLED
    assert enforcement_level("min-two-replicas", True, "prod-us", guardrails) == MANDATORY


def test_max_gpus_becomes_the_gpu_ceiling_config_the_pack_reports() -> None:
    pack = Pack()
    pack.configure("prod", {"modelplane:guardrails": '{"maxGpus": 48}'})
    assert pack.initial_config == {"gpu-ceiling": {"maxGpus": 48}}
    pack.configure("prod", {})
    assert pack.initial_config == {}


def test_prod_stack_names() -> None:
    assert is_prod_stack("prod") and is_prod_stack("prod-eu-west-1") and is_prod_stack("org/project/prod")
    assert not is_prod_stack("production") and not is_prod_stack("preprod") and not is_prod_stack("dev")


@pytest.mark.parametrize(("value", "error"), [
    ({"enforcment": "mandatory"},
     "modelplane:guardrails.enforcment: unknown key; valid keys: enforcement, rules, maxGpus"),
    ({"enforcement": "disabled"}, "modelplane:guardrails.enforcement: 'disabled' is not one of mandatory, advisory"),
    ({"rules": {"zone-sprad": "advisory"}}, "modelplane:guardrails.rules.zone-sprad: no such rule; did you mean "
                                            "'zone-spread'?"),
    ({"rules": {"zone-spread": "off"}},
     "modelplane:guardrails.rules.zone-spread: 'off' is not one of mandatory, advisory, disabled"),
    ({"maxGpus": -1}, "modelplane:guardrails.maxGpus: -1 is not a whole number of GPUs (0 or more)"),
    ({"maxGpus": "8"}, "modelplane:guardrails.maxGpus: '8' is not a whole number of GPUs (0 or more)"),
    ("[1, 2]", "modelplane:guardrails: expected a map with enforcement, rules, maxGpus; got [1, 2]"),
    ("{", "modelplane:guardrails: not a map (Expecting property name enclosed in double quotes)"),
])
def test_malformed_guardrails_are_keyed_errors(value: object, error: str) -> None:
    raw = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(GuardrailsError) as caught:
        Guardrails.parse(raw, NAMES)
    assert str(caught.value) == error


def test_whole_float_gpu_counts_are_accepted() -> None:
    assert Guardrails.parse({"maxGpus": 16.0}, NAMES).max_gpus == 16
