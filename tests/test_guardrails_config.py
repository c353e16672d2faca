"""``modelplane:guardrails``: the stack's enforcement level for the policy pack, and its GPU ceiling."""

from __future__ import annotations

import pytest

from modelplane.config import ConfigError, gpus_at_max, parse_estate

SOURCE = "stacks/Pulumi.prod.yaml"
GUARDRAILS = "modelplane:guardrails"


def issues(config) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, SOURCE)
    return {issue.where(): issue.message for issue in caught.value.issues}


def test_prod_within_its_ceiling_is_valid(stack_configs) -> None:
    total = gpus_at_max(parse_estate(stack_configs.load("prod"), SOURCE).apis)
    estate = parse_estate(stack_configs.edited("prod", ((GUARDRAILS,), {"maxGpus": total,
                                                                         "enforcement": "mandatory"})), SOURCE)

    assert total > 0
    assert estate.guardrails.max_gpus == total and estate.guardrails.enforcement == "mandatory"


def test_a_stack_over_its_gpu_ceiling_is_refused_naming_the_apis(stack_configs) -> None:
    total = gpus_at_max(parse_estate(stack_configs.load("prod"), SOURCE).apis)
    found = issues(stack_configs.edited("prod", ((GUARDRAILS,), {"maxGpus": total - 1})))

    message = found[f"{GUARDRAILS}.maxGpus"]
    assert f"request {total} GPUs at maxReplicas" in message and f"ceiling of {total - 1}" in message
    assert "llm-chat" in message and "sentiment" in message


@pytest.mark.parametrize(("value", "where", "says"), [
    ({"enforcement": "strict"}, "enforcement", "'mandatory' or 'advisory'"),
    ({"rules": {"Images": "advisory"}}, "rules.Images", "'images-by-digest'"),
    ({"rules": {"images-by-digest": "off"}}, "rules.images-by-digest", "'disabled'"),
    ({"maxGpu": 4}, "maxGpu", "did you mean 'maxGpus'"),
    ({"rules": {"images-by-digests": "advisory"}}, "rules.images-by-digests", "did you mean 'images-by-digest'"),
    ({"maxGpus": -1}, "maxGpus", "greater than or equal to 0"),
])
def test_bad_guardrails_are_named(stack_configs, value, where: str, says: str) -> None:
    found = issues(stack_configs.edited("prod", ((GUARDRAILS,), value)))
    key = f"{GUARDRAILS}.{where}"

    assert key in found, found
    assert says in found[key]


def test_the_config_knows_exactly_the_packs_rules() -> None:
    pytest.importorskip("pulumi_policy", reason="the pack needs pulumi-policy (the test extras install it)")
    from modelplane_policies import RULES as PACK_RULES

    from modelplane.config.guardrails import RULES

    assert len(RULES) >= 20
    assert sorted(RULES) == sorted(rule.name for rule in PACK_RULES)
