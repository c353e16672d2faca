"""modelplane's own policy pack (``policies/``) under the real engine: ``pulumi preview --policy-pack policies``.

The engine loads the pack through the tier's language host, on the tier's
interpreter (the pack's ``runtime.options.virtualenv`` pointed at it). The
``local`` stack passes with every rule mandatory that is not a prod-only
requirement; a variant that drops one API's NetworkPolicy fails the preview
naming that API; and the engine's verdict is the one ``modelplane plan``
gives offline.
"""

from __future__ import annotations

import copy
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.automation.errors import CommandError

from . import harness
from .harness import Cluster, LiveStack, local_config, pointed_at

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PROJECT = Path(__file__).resolve().parents[2]
GUARDRAILS = "modelplane:guardrails"
STRICT = {"enforcement": "mandatory", "rules": {"images-by-digest": "disabled", "min-two-replicas": "disabled"}}
"""Every rule mandatory, but the two that state prod requirements the local stack does not meet (tags, 1 replica)."""


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``policies/`` whose virtualenv is the interpreter running the tests (it has pulumi-policy)."""
    pytest.importorskip("pulumi_policy", reason="the pack needs pulumi-policy (the test extras install it)")
    if not (harness.E2E_HOME / "bin" / "pulumi-language-python").exists() and not harness.USER_CLUSTER:
        pytest.skip("no language host for Python packs: run tests/e2e/toolchain/build.sh")
    copied = tmp_path_factory.mktemp("pack") / "policies"
    shutil.copytree(PROJECT / "policies", copied, ignore=shutil.ignore_patterns("__pycache__", "venv"))
    manifest = yaml.safe_load((copied / "PulumiPolicy.yaml").read_text())
    manifest["runtime"]["options"]["virtualenv"] = sys.prefix
    (copied / "PulumiPolicy.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return copied


@pytest.fixture(scope="module")
def guarded(cluster: Cluster, crd_schemas: Path, workspace: harness.Workspace) -> LiveStack:
    config = pointed_at(local_config(), cluster.kubeconfig, cluster.context)
    cluster.prepare(config, crd_schemas)
    return workspace.stack("guarded", config)


def with_guardrails(config: dict[str, Any], guardrails: dict[str, Any], *edits: tuple[tuple[str, ...], Any]
                    ) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    changed[GUARDRAILS] = guardrails
    for path, value in edits:
        target = changed
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return changed


def offline_verdict(stack: str, config: dict[str, Any]) -> Counter[tuple[str, str]]:
    """(rule, resource) of every mandatory violation ``modelplane plan`` reports offline for ``config``."""
    from modelplane_policies.offline import evaluate

    from modelplane.offline import run_stack

    plan = run_stack(stack, PROJECT, config)
    return Counter((d.policy, d.resource) for d in evaluate(stack, config, plan.resources) if d.level == "mandatory")


def test_the_local_stack_passes_the_pack_with_every_rule_mandatory(guarded: LiveStack, pack: Path) -> None:
    guarded.set_config(with_guardrails(guarded.config, STRICT))
    guarded.preview(policy_packs=[pack])

    assert [v for v in guarded.violations if v.enforcement_level == "mandatory"] == []
    assert any("modelplane-guardrails" in line for line in guarded.output), "the pack did not load"


def test_a_stack_that_breaks_a_mandatory_rule_fails_the_preview_naming_the_resource(
        guarded: LiveStack, pack: Path) -> None:
    base = {k: v for k, v in guarded.config.items() if k != GUARDRAILS}
    broken = with_guardrails(base, STRICT, (("modelplane:apis", "sentiment", "network", "isolated"), False))
    guarded.set_config(broken)

    with pytest.raises(CommandError) as failure:
        guarded.preview(policy_packs=[pack])
    mandatory = [v for v in guarded.violations if v.enforcement_level == "mandatory"]
    assert [(v.policy, v.urn.rsplit("::", 1)[-1]) for v in mandatory] == [
        ("network-policy-per-namespace", "sentiment")]
    assert "modelplane:apis.sentiment.network.isolated" in mandatory[0].message
    assert "network-policy-per-namespace" in str(failure.value)
    # modelplane plan says the same, offline.
    assert offline_verdict("guarded", broken) == Counter({("network-policy-per-namespace", "sentiment"): 1})


def test_the_stack_name_sets_the_default_level(guarded: LiveStack, pack: Path) -> None:
    base = {k: v for k, v in guarded.config.items() if k != GUARDRAILS}
    # No guardrails: the stack is not prod, so the same break is only advisory and the preview passes.
    guarded.set_config(with_guardrails(base, {}, (("modelplane:apis", "sentiment", "network", "isolated"), False)))
    guarded.preview(policy_packs=[pack])

    assert [(v.policy, v.enforcement_level) for v in guarded.violations] == [
        ("network-policy-per-namespace", "advisory")]
