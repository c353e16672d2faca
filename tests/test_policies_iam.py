"""policies/modelplane_policies/iam.py: service-account roles trusted by exactly one service account."""

from __future__ import annotations

from policy_support import ISSUER, UNKNOWN_STRING, irsa_statement, trust_policy, violations

ROLE = "aws:iam/role:Role"


def role_violations(*statements: dict) -> list[str]:
    return violations("irsa-single-service-account", ROLE, {"assumeRolePolicy": trust_policy(*statements)},
                      name="sentiment-api")


def test_irsa_passes_on_one_service_account_with_the_sts_audience() -> None:
    assert role_violations(irsa_statement()) == []


def test_irsa_leaves_roles_for_aws_services_alone() -> None:
    ec2 = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    assert role_violations(ec2) == []


def test_irsa_passes_while_the_trust_policy_is_unknown() -> None:
    # The policy is built from the cluster's OIDC outputs, unknown until the cluster exists.
    assert violations("irsa-single-service-account", ROLE, {"assumeRolePolicy": UNKNOWN_STRING}) == []


def test_irsa_fails_without_a_subject_condition() -> None:
    statement = irsa_statement()
    del statement["Condition"]["StringEquals"][f"{ISSUER}:sub"]
    assert role_violations(statement) == [
        "Add a StringEquals condition on the token's sub claim to role 'sentiment-api' "
        "(system:serviceaccount:<namespace>:<name>): without it every service account of the cluster can assume "
        "the role."]


def test_irsa_fails_on_string_like_subjects() -> None:
    assert role_violations(irsa_statement(sub="system:serviceaccount:*:*", operator="StringLike")) == [
        "Name the service account of role 'sentiment-api' with StringEquals on the token's sub claim, not "
        "StringLike: a pattern lets every matching service account assume the role.",
        "Add a StringEquals condition on the token's sub claim to role 'sentiment-api' "
        "(system:serviceaccount:<namespace>:<name>): without it every service account of the cluster can assume "
        "the role."]


def test_irsa_fails_on_two_service_accounts() -> None:
    two = irsa_statement(sub=["system:serviceaccount:a:reader", "system:serviceaccount:b:writer"])
    assert role_violations(two) == [
        "Trust exactly one service account in role 'sentiment-api', not 2 (system:serviceaccount:a:reader, "
        "system:serviceaccount:b:writer): give each workload its own role with only the permissions it needs."]


def test_irsa_counts_service_accounts_across_statements() -> None:
    first, second = irsa_statement(), irsa_statement(sub="system:serviceaccount:other:other")
    [message] = role_violations(first, second)
    assert message.startswith("Trust exactly one service account in role 'sentiment-api', not 2")


def test_irsa_fails_on_a_wildcard_in_string_equals_and_a_missing_audience() -> None:
    assert role_violations(irsa_statement(sub="system:serviceaccount:ml:*", aud=None)) == [
        "Name one service account in the sub condition of role 'sentiment-api' as "
        "system:serviceaccount:<namespace>:<name> (now 'system:serviceaccount:ml:*').",
        "Add a StringEquals condition on the token's aud claim = sts.amazonaws.com to role 'sentiment-api' "
        "(now none): only tokens minted for STS should be accepted."]


def test_irsa_reads_a_trust_policy_with_lists_everywhere() -> None:
    statement = irsa_statement(sub=["system:serviceaccount:sentiment:sentiment"], aud=["sts.amazonaws.com"])
    statement["Action"] = ["sts:AssumeRoleWithWebIdentity"]
    statement["Principal"]["Federated"] = [statement["Principal"]["Federated"]]
    assert role_violations(statement) == []
