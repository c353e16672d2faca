"""checkov finds nothing wrong in any stack's rendered Kubernetes manifests.

Every stack is rendered as ``modelplane render`` writes it, and checkov scans
each ``k8s/`` directory with the checked-in ``.checkov.yaml``: every check must
pass except the few that file skips, each with its reason. checkov runs from
its own venv (its pins conflict with ours): ``$MODELPLANE_CHECKOV``, else
``.venv-checkov/bin/checkov`` (``.ci/run`` makes it); without either the tests
skip. It runs offline: no API key, ``skip-download`` in the config, no update
check, and a scratch HOME and working directory, so that no other
``.checkov.yaml`` is read.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.cli import main
from modelplane.offline import stack_names

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".checkov.yaml"
STACKS = stack_names(ROOT)
CHECKOV_VERSION = "3.3.30"
"""The checkov ``.ci/run`` installs."""
VENV_CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
NOT_INSTALLED = (f"checkov is not installed at {VENV_CHECKOV} and MODELPLANE_CHECKOV is unset (.ci/run makes it: "
                 f"python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov=={CHECKOV_VERSION})")


@pytest.fixture(scope="module")
def checkov() -> Path:
    """The checkov executable; skips the tests when none is installed."""
    named = os.environ.get("MODELPLANE_CHECKOV")
    if named:
        path = Path(named)
        # Asked for by name: a wrong path is a mistake to report, not a reason to skip.
        assert path.is_file() and os.access(path, os.X_OK), f"MODELPLANE_CHECKOV={named} is not an executable file"
        return path
    if not VENV_CHECKOV.is_file():
        pytest.skip(NOT_INSTALLED)
    return VENV_CHECKOV


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every stack rendered by ``modelplane render`` into ``<dir>/<stack>/k8s`` (nothing else in ``<dir>``)."""
    root = tmp_path_factory.mktemp("rendered")
    for stack in STACKS:
        assert main(["--project", str(ROOT), "render", "--stack", stack, "--out", str(root / stack)]) == 0
        (root / stack / "resources.json").unlink()  # not a manifest: checkov would only parse it
    return root


def run_checkov(checkov: Path, scratch: Path, *args: str) -> dict[str, Any]:
    """checkov's JSON report for ``args``, run offline from ``scratch`` (its working directory and HOME)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env |= {"HOME": str(scratch), "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    run = subprocess.run([str(checkov), *args, "--output", "json"], cwd=scratch, env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exited {run.returncode} without a JSON report:\n{run.stdout}\n{run.stderr}")
    assert isinstance(report, dict), f"expected one kubernetes report, got: {json.dumps(report)[:2000]}"
    assert report.get("check_type") == "kubernetes", f"unexpected report: {json.dumps(report)[:2000]}"
    report["returncode"] = run.returncode
    return report


def failures(report: dict[str, Any]) -> list[str]:
    return [f"{f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']})"
            for f in report["results"]["failed_checks"]]


def skipped_checks() -> list[str]:
    skips = yaml.safe_load(CONFIG.read_text())["skip-check"]
    assert isinstance(skips, list) and all(isinstance(s, str) for s in skips), f"{CONFIG}: skip-check is not a list"
    return skips


def test_there_are_stacks_to_check() -> None:
    assert STACKS, f"no stacks/Pulumi.*.yaml in {ROOT}"


def test_ci_installs_the_checkov_named_here() -> None:
    assert f"pip install -q checkov=={CHECKOV_VERSION}\n" in (ROOT / ".ci" / "run").read_text()


def test_the_skip_list_is_short() -> None:
    # Each skip is a check that is wrong for this platform, with its reason in the file; not a way out.
    assert 0 < len(skipped_checks()) <= 5, skipped_checks()


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_passes_the_rendered_manifests(checkov: Path, rendered: Path, tmp_path: Path, stack: str) -> None:
    report = run_checkov(checkov, tmp_path, "--config-file", str(CONFIG), "--directory", str(rendered / stack / "k8s"))
    summary = report["summary"]

    assert summary["failed"] == 0 and not failures(report), \
        (f"checkov {summary['checkov_version']} on stack {stack}: {summary['failed']} failed\n"
         + "\n".join(failures(report)))
    assert summary["parsing_errors"] == 0, report["results"]["parsing_errors"]
    # It did look: the stack's objects were read and checks ran on them.
    assert summary["resource_count"] > 0 and summary["passed"] > 0, summary
    assert report["returncode"] == 0


def test_every_skipped_check_is_still_needed(checkov: Path, rendered: Path, tmp_path: Path) -> None:
    # Only the skipped checks, with nothing skipped, over every stack at once: each must still fail
    # somewhere, or its skip hides nothing and goes.
    skips = skipped_checks()
    report = run_checkov(checkov, tmp_path, "--framework", "kubernetes", "--skip-download",
                         "--check", ",".join(skips), "--directory", str(rendered))

    failing = {f["check_id"] for f in report["results"]["failed_checks"]}
    assert not set(skips) - failing, (f"skipped in {CONFIG.name} but no stack fails them any more, so remove "
                                      f"them there: {sorted(set(skips) - failing)}")
    assert failing <= set(skips), "--check ran other checks too"
