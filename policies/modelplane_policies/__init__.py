"""modelplane's CrossGuard policy pack: guardrails for ML serving estates on EKS.

Rules live by concern (:mod:`.availability`, :mod:`.kubernetes`, :mod:`.gpu`,
:mod:`.cluster`, :mod:`.nodes`, :mod:`.iam`); :mod:`.pack` assembles them at
the levels :mod:`.guardrails` chooses for the stack and serves them.
"""

from ._rule import Finding, Resource, Rule, Stack
from .guardrails import CONFIG_KEY, Guardrails, GuardrailsError, enforcement_level, is_prod_stack
from .pack import PACK_NAME, RULES, Pack, serve, servicer_class, stack_from_environment

__all__ = [
    "CONFIG_KEY", "PACK_NAME", "RULES", "Finding", "Guardrails", "GuardrailsError", "Pack", "Resource", "Rule",
    "Stack", "enforcement_level", "is_prod_stack", "serve", "servicer_class", "stack_from_environment",
]
