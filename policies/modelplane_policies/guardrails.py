"""How strictly each rule is enforced on a stack: the ``modelplane:guardrails`` stack config and the defaults.

The stack file may hold::

    modelplane:guardrails:
      enforcement: mandatory | advisory     # every rule not named below
      rules: {<rule-name>: mandatory | advisory | disabled}
      maxGpus: 64                           # the gpu-ceiling rule's budget

Without it, rules are mandatory on a stack named ``prod`` or ``prod-*`` and
advisory elsewhere (rules that state a prod requirement are off elsewhere).
``--policy-pack-config`` still has the last word: the engine applies it over
the levels the pack reports.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import EnforcementLevel

__all__ = ["CONFIG_KEY", "Guardrails", "GuardrailsError", "enforcement_level", "is_prod_stack"]

CONFIG_KEY = "modelplane:guardrails"
"""The stack config key (``config:`` in ``stacks/Pulumi.<stack>.yaml``)."""

_STACK_LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}
_RULE_LEVELS = {**_STACK_LEVELS, "disabled": EnforcementLevel.DISABLED}


class GuardrailsError(ValueError):
    """``modelplane:guardrails`` is malformed; the message names the key path and what is valid."""


@dataclass(frozen=True)
class Guardrails:
    """The parsed ``modelplane:guardrails`` value (empty: all defaults)."""

    enforcement: EnforcementLevel | None = None
    """Level of every rule not in ``rules``. None: by stack name."""
    rules: Mapping[str, EnforcementLevel] = field(default_factory=dict)
    """Per-rule levels; they win over everything else the stack says."""
    max_gpus: int | None = None
    """GPU ceiling of the stack's workloads at their maximum replicas. None: no ceiling."""

    @classmethod
    def parse(cls, raw: Any, rule_names: Collection[str]) -> Guardrails:
        """From the config value (JSON text, as the engine passes structured config, or already decoded)."""
        if raw is None or raw == "":
            return cls()
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise GuardrailsError(f"{CONFIG_KEY}: not a map ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise GuardrailsError(f"{CONFIG_KEY}: expected a map with enforcement, rules, maxGpus; got {raw!r}")
        unknown = sorted(set(raw) - {"enforcement", "rules", "maxGpus"})
        if unknown:
            raise GuardrailsError(f"{CONFIG_KEY}.{unknown[0]}: unknown key; valid keys: enforcement, rules, maxGpus")
        return cls(enforcement=_level(raw.get("enforcement"), "enforcement", _STACK_LEVELS),
                   rules=_rules(raw.get("rules"), rule_names),
                   max_gpus=_count(raw.get("maxGpus")))

    @classmethod
    def from_stack_config(cls, config: Mapping[str, Any], rule_names: Collection[str]) -> Guardrails:
        """From the stack's whole config map (``namespace:key`` -> value), as the engine passes it."""
        return cls.parse(config.get(CONFIG_KEY), rule_names)


def _level(value: Any, path: str, valid: Mapping[str, EnforcementLevel]) -> EnforcementLevel | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in valid:
        raise GuardrailsError(f"{CONFIG_KEY}.{path}: {value!r} is not one of {', '.join(valid)}")
    return valid[value]


def _rules(value: Any, rule_names: Collection[str]) -> dict[str, EnforcementLevel]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GuardrailsError(f"{CONFIG_KEY}.rules: expected a map of rule name to level, got {value!r}")
    levels: dict[str, EnforcementLevel] = {}
    for name, level in value.items():
        if name not in rule_names:
            close = difflib.get_close_matches(str(name), list(rule_names), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"rules: {', '.join(sorted(rule_names))}"
            raise GuardrailsError(f"{CONFIG_KEY}.rules.{name}: no such rule; {hint}")
        parsed = _level(level, f"rules.{name}", _RULE_LEVELS)
        assert parsed is not None
        levels[name] = parsed
    return levels


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise GuardrailsError(f"{CONFIG_KEY}.maxGpus: {value!r} is not a whole number of GPUs (0 or more)")
    return int(value)


def is_prod_stack(stack: str) -> bool:
    """``prod``, ``prod-eu``, ``acme/modelplane/prod``: production stacks by name."""
    name = stack.rsplit("/", 1)[-1]
    return name == "prod" or name.startswith("prod-")


def enforcement_level(rule: str, prod_only: bool, stack: str | None, guardrails: Guardrails) -> EnforcementLevel:
    """The level of one rule on one stack.

    In order: the stack's ``rules`` entry for it, the stack's ``enforcement``, then by name: mandatory on a
    prod stack, advisory elsewhere (disabled for a ``prod_only`` rule). An unknown stack counts as prod:
    a pack that cannot tell where it runs fails closed.
    """
    if rule in guardrails.rules:
        return guardrails.rules[rule]
    if guardrails.enforcement is not None:
        return guardrails.enforcement
    if stack is None or is_prod_stack(stack):
        return EnforcementLevel.MANDATORY
    return EnforcementLevel.DISABLED if prod_only else EnforcementLevel.ADVISORY
