"""``modelplane:guardrails``: how strictly the policy pack judges this stack, and its GPU ceiling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ._base import Issue, _Model

if TYPE_CHECKING:
    from .apis import ApiConfig

Enforcement = Literal["mandatory", "advisory"]

RULES = (
    "control-plane-logging", "encrypted-volumes", "gpu-ceiling", "gpu-group-taint", "gpu-max-unavailable-zero",
    "gpu-pool-consolidation", "gpu-toleration", "graceful-shutdown", "images-by-digest", "imdsv2-hop-limit-1",
    "irsa-single-service-account", "kms-key-rotation", "kms-secrets-encryption", "memory-limit-equals-request",
    "min-le-max-replicas", "min-two-replicas", "network-policy-per-namespace", "pdb-per-api", "private-endpoint",
    "readiness-probe", "resource-requests", "restricted-pod-security", "secrets-as-files", "zone-spread",
)
"""The policy pack's rule names (``policies/``; a test holds the two lists equal), for ``guardrails.rules``."""

RuleName = Literal[RULES]  # type: ignore[valid-type]


class GuardrailsConfig(_Model):
    """What the CrossGuard pack in ``policies/`` enforces on this stack (``pulumi preview --policy-pack policies``)."""

    enforcement: Enforcement | None = None
    """Level of every rule: ``mandatory`` fails the preview, ``advisory`` reports. Unset: mandatory for a stack named ``prod`` or ``prod-*``, advisory elsewhere."""
    rules: dict[RuleName, Literal["mandatory", "advisory", "disabled"]] = {}
    """Per-rule levels that override ``enforcement``, by rule name (``images-by-digest: advisory``); ``disabled`` turns a rule off."""
    max_gpus: int | None = Field(None, ge=0, le=100000)
    """Most GPUs the stack's APIs may request at maxReplicas, all together (a budget: a typo in maxReplicas cannot order a fleet). Checked by ``modelplane validate`` and the pack's ``gpu-ceiling`` rule. Unset: no ceiling."""


def gpus_at_max(apis: dict[str, ApiConfig]) -> int:
    """GPUs all APIs request at maxReplicas, their canaries at maxReplicas and their shadows included."""
    from .apis import api_gpus
    from .traffic import second_version_replicas

    return sum((api.autoscaling.max_replicas + second_version_replicas(api)) * api_gpus(api)
               for api in apis.values())


def _share(api: ApiConfig) -> str:
    """``6x1``, or ``6x1 + canary 2x1``: replicas x GPUs of the API and of its second version."""
    from .apis import api_gpus
    from .traffic import second_version_replicas

    gpus = api_gpus(api)
    second = second_version_replicas(api)
    kind = "canary" if api.canary is not None else "shadow"
    return f"{api.autoscaling.max_replicas}x{gpus}" + (f" + {kind} {second}x{gpus}" if second else "")


def _check_guardrails(guardrails: GuardrailsConfig, apis: dict[str, ApiConfig],
                      path: tuple[str | int, ...]) -> Iterator[Issue]:
    if guardrails.max_gpus is None:
        return
    total = gpus_at_max(apis)
    if total > guardrails.max_gpus:
        from .apis import api_gpus

        shares = ", ".join(f"{n} {_share(a)}" for n, a in sorted(apis.items()) if api_gpus(a))
        yield Issue(path + ("maxGpus",), f"the APIs request {total} GPUs at maxReplicas ({shares}), more than the "
                                         f"stack's ceiling of {guardrails.max_gpus}; lower maxReplicas or raise "
                                         "the ceiling")
