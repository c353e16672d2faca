"""What a rule is, and how it becomes a pulumi_policy policy.

A rule's check is a plain function: it takes a :class:`Resource` (or the whole
:class:`Stack`) with its props already thawed (see :mod:`._values`) and yields
one imperative message per violation. :meth:`Rule.policy` wraps it in a
``ResourceValidationPolicy`` or ``StackValidationPolicy`` at the enforcement
level chosen for the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._values import thaw

__all__ = ["Finding", "Resource", "Rule", "Stack"]


@dataclass(frozen=True)
class Resource:
    """One resource as a rule reads it."""

    type: str
    """Type token, e.g. ``kubernetes:apps/v1:Deployment``."""
    name: str
    """The Pulumi resource name."""
    urn: str
    props: dict[str, Any]
    """Inputs (resource rules) or outputs (stack rules), thawed: plain data, unknowns as ``UNKNOWN``."""

    @classmethod
    def of(cls, item: ResourceValidationArgs | PolicyResource) -> Resource:
        return cls(item.resource_type, item.name, item.urn, thaw(item.props))


@dataclass(frozen=True)
class Stack:
    """Every resource of the stack, for rules that relate resources to each other."""

    resources: tuple[Resource, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    """The rule's policy config (``--policy-pack-config`` over the pack's initial config)."""

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources if r.type in types]


@dataclass(frozen=True)
class Finding:
    """A stack rule's violation: the message and the resource it is about."""

    message: str
    urn: str


ResourceCheck = Callable[[Resource], Iterable[str]]
StackCheck = Callable[[Stack], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """One guardrail: what it checks, why, where the advice comes from, and the check itself."""

    name: str
    """Policy name (kebab-case); also the key under ``modelplane:guardrails.rules``."""
    description: str
    """What it checks, one sentence: the policy description every violation starts with."""
    why: str
    """Why it matters (README and remediation text)."""
    source: str
    """URL of the guidance it follows."""
    check: ResourceCheck | StackCheck
    types: frozenset[str] = frozenset()
    """Resource types a resource rule looks at. Empty: a stack rule (``check`` takes the :class:`Stack`)."""
    prod_only: bool = False
    """Off by default outside prod stacks (instead of advisory): the rule states a prod requirement."""
    config_schema: PolicyConfigSchema | None = None
    """Properties the rule reads from its policy config."""

    @property
    def is_stack_rule(self) -> bool:
        return not self.types

    def policy(self, level: EnforcementLevel) -> Policy:
        """The pulumi_policy policy that runs this rule at ``level``."""
        if self.is_stack_rule:
            return StackValidationPolicy(name=self.name, description=self.description,
                                         validate=self._validate_stack, enforcement_level=level,
                                         config_schema=self.config_schema, remediation_steps=self.why,
                                         url=self.source)
        return ResourceValidationPolicy(name=self.name, description=self.description,
                                        validate=self._validate_resource, enforcement_level=level,
                                        config_schema=self.config_schema, remediation_steps=self.why,
                                        url=self.source)

    def _validate_resource(self, args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type not in self.types:
            return
        check: ResourceCheck = self.check  # type: ignore[assignment]
        for message in check(Resource.of(args)):
            report(message, None)

    def _validate_stack(self, args: StackValidationArgs, report: ReportViolation) -> None:
        stack = Stack(tuple(Resource.of(r) for r in args.resources), dict(args.get_config()))
        check: StackCheck = self.check  # type: ignore[assignment]
        for finding in check(stack):
            report(finding.message, finding.urn)
