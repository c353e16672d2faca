"""The policy pack: every rule, at the level its stack asks for, served to the Pulumi engine.

Where the pack learns its stack. pulumi_policy fixes a policy's level when the
engine first asks for the pack's policies (GetAnalyzerInfo), so the stack name
and its ``modelplane:guardrails`` config must be known before that:

- at load time, from the environment: ``PULUMI_STACK`` and ``PULUMI_CONFIG``
  (a JSON object of ``namespace:key`` to the value's text, structured values as
  JSON), as the engine's legacy ``pulumi-analyzer-policy-python`` path and
  language hosts that forward them set;
- from the engine's ``ConfigureStack`` call, which Pulumi 3.274 sends right
  after starting the pack and before GetAnalyzerInfo, with the stack name and
  its decrypted config. pulumi_policy 1.21 keeps only the stack's tags from it,
  so the pack's servicer re-applies the levels from it first.

``--policy-pack-config`` levels need nothing from the pack: the engine merges
them over the reported levels and sends them in ``Configure``, and
pulumi_policy prefers them over a policy's own level.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import pulumi_policy.policy as policy_module
from pulumi_policy import EnforcementLevel, Policy, PolicyPack

from . import availability, cluster, gpu, iam, kubernetes, nodes
from ._rule import Rule
from .guardrails import Guardrails, GuardrailsError, enforcement_level

__all__ = ["PACK_NAME", "RULES", "Pack", "serve", "servicer_class", "stack_from_environment"]

PACK_NAME = "modelplane-guardrails"
GPU_CEILING = "gpu-ceiling"

RULES: tuple[Rule, ...] = (*availability.RULES, *kubernetes.RULES, *gpu.RULES, *cluster.RULES, *nodes.RULES,
                           *iam.RULES)
"""Every rule of the pack."""


class Pack:
    """The rules as pulumi_policy policies, at the levels of the stack the pack runs for."""

    def __init__(self, rules: Sequence[Rule] = RULES) -> None:
        names = [rule.name for rule in rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        self.rules = tuple(rules)
        self.names = frozenset(names)
        self.policies: list[Policy] = [rule.policy(EnforcementLevel.MANDATORY) for rule in self.rules]
        self.initial_config: dict[str, dict[str, Any]] = {}
        """Policy config the pack reports to the engine (the GPU ceiling); changed in place by :meth:`configure`."""
        self.stack: str | None = None
        self.guardrails = Guardrails()
        self.configure(None, {})

    def configure(self, stack: str | None, config: Mapping[str, Any]) -> None:
        """Set every policy's level, and the GPU ceiling, for ``stack`` and its config map."""
        guardrails = Guardrails.from_stack_config(config, self.names)
        for rule, policy in zip(self.rules, self.policies, strict=True):
            policy.enforcement_level = enforcement_level(rule.name, rule.prod_only, stack, guardrails)
        self.initial_config.clear()
        if guardrails.max_gpus is not None:
            self.initial_config[GPU_CEILING] = {"maxGpus": guardrails.max_gpus}
        self.stack, self.guardrails = stack, guardrails

    def level(self, name: str) -> EnforcementLevel:
        """The current level of the rule called ``name``."""
        policy = next(p for p in self.policies if p.name == name)
        assert policy.enforcement_level is not None
        return policy.enforcement_level


def stack_from_environment(environ: Mapping[str, str]) -> tuple[str | None, dict[str, Any]]:
    """The stack name and config map in the pack's environment (None and {} when they are not there)."""
    stack = environ.get("PULUMI_STACK") or None
    try:
        config = json.loads(environ.get("PULUMI_CONFIG") or "{}")
    except json.JSONDecodeError as exc:
        raise GuardrailsError(f"PULUMI_CONFIG is not JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise GuardrailsError("PULUMI_CONFIG is not a JSON object of config keys to values")
    return stack, config


def servicer_class(pack: Pack) -> type[policy_module._PolicyAnalyzerServicer]:
    """pulumi_policy's analyzer servicer, also taking the stack and its config from ``ConfigureStack``."""
    base = policy_module._PolicyAnalyzerServicer

    class StackAwareServicer(base):  # type: ignore[misc, valid-type]
        def ConfigureStack(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
            if request.stack:
                try:
                    pack.configure(request.stack, dict(request.config))
                except GuardrailsError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"stack {request.stack}: {exc}")
            return super().ConfigureStack(request, context)

    return StackAwareServicer


def serve(environ: Mapping[str, str] = os.environ) -> None:
    """Start the pack's gRPC server for the engine (prints its port, then serves until killed)."""
    pack = Pack()
    try:
        pack.configure(*stack_from_environment(environ))
    except GuardrailsError as exc:
        sys.exit(f"modelplane guardrails: {exc}")
    # PolicyPack builds its servicer from this module attribute.
    policy_module._PolicyAnalyzerServicer = servicer_class(pack)  # type: ignore[misc]
    PolicyPack(name=PACK_NAME, policies=pack.policies, initial_config=pack.initial_config,  # type: ignore[arg-type]
               description="modelplane guardrails for ML serving estates on EKS: availability, GPUs, security.")
