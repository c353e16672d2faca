"""IAM rules: a role for service accounts (IRSA) is assumable by exactly one service account of one cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ._rule import Resource, Rule
from ._values import is_unknown

__all__ = ["RULES"]

ROLE = "aws:iam/role:Role"
WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"
AUDIENCE = "sts.amazonaws.com"
SERVICE_ACCOUNT = re.compile(r"^system:serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")


def _as_list(value: Any) -> list[Any]:
    """IAM's "one value or a list of them"."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _oidc_statements(document: Any) -> list[dict[str, Any]]:
    """Allow statements that let an OIDC provider's tokens assume the role."""
    statements = document.get("Statement") if isinstance(document, dict) else None
    found = []
    for statement in _as_list(statements):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        federated = _as_list(principal.get("Federated")) if isinstance(principal, dict) else []
        actions = _as_list(statement.get("Action"))
        if any(isinstance(f, str) and ":oidc-provider/" in f for f in federated) and WEB_IDENTITY in actions:
            found.append(statement)
    return found


def _claims(statement: dict[str, Any], operator: str, claim: str) -> list[Any]:
    """The values a condition ``operator`` (StringEquals, StringLike) allows for a token claim (``sub``, ``aud``)."""
    block = statement.get("Condition", {}).get(operator, {}) if isinstance(statement.get("Condition"), dict) else {}
    if not isinstance(block, dict):
        return []
    return [v for key, value in block.items() if isinstance(key, str) and key.endswith(f":{claim}")
            for v in _as_list(value)]


def _irsa_single_service_account(resource: Resource) -> Iterator[str]:
    policy = resource.props.get("assumeRolePolicy")
    if is_unknown(policy) or policy is None:
        return
    try:
        document = json.loads(policy) if isinstance(policy, str) else policy
    except json.JSONDecodeError:
        return  # IAM refuses the role; there is nothing to judge
    statements = _oidc_statements(document)
    if not statements:
        return
    role = resource.name
    subjects: set[str] = set()
    for statement in statements:
        if _claims(statement, "StringLike", "sub"):
            yield (f"Name the service account of role {role!r} with StringEquals on the token's sub claim, not "
                   f"StringLike: a pattern lets every matching service account assume the role.")
        equal = _claims(statement, "StringEquals", "sub")
        if not equal:
            yield (f"Add a StringEquals condition on the token's sub claim to role {role!r} "
                   f"(system:serviceaccount:<namespace>:<name>): without it every service account of the cluster "
                   f"can assume the role.")
        for subject in equal:
            if not (isinstance(subject, str) and SERVICE_ACCOUNT.match(subject)):
                yield (f"Name one service account in the sub condition of role {role!r} as "
                       f"system:serviceaccount:<namespace>:<name> (now {subject!r}).")
            else:
                subjects.add(subject)
        audiences = _claims(statement, "StringEquals", "aud")
        if audiences != [AUDIENCE]:
            yield (f"Add a StringEquals condition on the token's aud claim = {AUDIENCE} to role {role!r} "
                   f"(now {audiences or 'none'}): only tokens minted for STS should be accepted.")
    if len(subjects) > 1:
        yield (f"Trust exactly one service account in role {role!r}, not {len(subjects)} "
               f"({', '.join(sorted(subjects))}): give each workload its own role with only the permissions it "
               f"needs.")


RULES = [
    Rule("irsa-single-service-account",
         "A role trusted through the cluster's OIDC provider names exactly one service account (StringEquals on "
         f"sub) and the {AUDIENCE} audience.",
         "A service-account role without an exact subject condition can be assumed by any pod of the cluster; one "
         "role per service account keeps each workload to its own permissions.",
         "https://docs.aws.amazon.com/eks/latest/best-practices/identity-and-access-management.html",
         _irsa_single_service_account, frozenset({ROLE})),
]
