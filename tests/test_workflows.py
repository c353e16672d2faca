"""The GitHub Actions workflows: valid for GitHub (its schema, actionlint) and shaped as the PR flow needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
ACTIONLINT_BUILT = Path.home() / ".cache" / "modelplane-tools" / "bin" / "actionlint"


def load(name: str) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True)
    return workflow


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def actionlint() -> str | None:
    found = os.environ.get("MODELPLANE_ACTIONLINT") or shutil.which("actionlint")
    return found or (str(ACTIONLINT_BUILT) if ACTIONLINT_BUILT.is_file() else None)


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, files)], capture_output=True, text=True, check=False)


def test_there_are_the_three_workflows() -> None:
    assert [f.name for f in FILES] == ["deploy.yml", "diff-comment.yml", "preview.yml"]


def test_workflows_pass_githubs_workflow_schema() -> None:
    done = check_jsonschema(*FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_pass_actionlint() -> None:
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (.ci/run builds it: go install github.com/rhysd/actionlint/"
                    "cmd/actionlint@v1.7.12)")
    done = subprocess.run([binary, "-no-color", "-oneline", *map(str, FILES)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_both_checks_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (WORKFLOWS / "preview.yml").read_text()
    broken.write_text(text.replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert check_jsonschema(broken).returncode != 0
    binary = actionlint()
    if binary is not None:
        bad_expression = tmp_path / "expression.yml"
        bad_expression.write_text(text.replace("needs.stacks.outputs.stacks", "needs.stack.outputs.stacks", 1))
        done = subprocess.run([binary, "-no-color", "-oneline", str(bad_expression)], capture_output=True, text=True)
        assert done.returncode != 0 and 'property "stack" is not defined' in done.stdout


def test_pull_requests_preview_every_cloud_stack_with_the_pack_and_oidc() -> None:
    workflow = load("preview.yml")
    preview = workflow["jobs"]["preview"]
    [pulumi] = steps_using(preview, "pulumi/actions")
    [aws] = steps_using(preview, "aws-actions/configure-aws-credentials")

    assert workflow["on"] == {"pull_request": None}
    assert workflow["concurrency"] == {"group": "preview-${{ github.event.pull_request.number }}",
                                       "cancel-in-progress": True}
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    assert pulumi["uses"] == "pulumi/actions@v7"
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policies"
    # OIDC: the job may ask for an ID token, and AWS is reached by assuming a role, with no stored keys.
    assert preview["permissions"]["id-token"] == "write"
    assert set(aws["with"]) >= {"role-to-assume", "aws-region"}
    assert not any(k in json.dumps(workflow) for k in ("aws-access-key-id", "AWS_SECRET_ACCESS_KEY"))
    [cache] = steps_using(preview, "actions/cache")
    assert cache["with"]["path"] == "~/.pulumi/plugins"
    # Forks get no cloud credentials.
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


def test_the_diff_needs_no_secret_and_is_one_updated_comment() -> None:
    preview, comment = load("preview.yml"), load("diff-comment.yml")
    diff = preview["jobs"]["diff"]
    script = steps_using(comment["jobs"]["comment"], "actions/github-script")[0]["with"]["script"]

    assert "secrets." not in json.dumps(diff) and "permissions" not in diff
    assert "modelplane diff --stack" in json.dumps(diff)
    assert comment["on"] == {"workflow_run": {"workflows": ["preview"], "types": ["completed"]}}
    assert "updateComment" in script and "createComment" in script and "<!-- modelplane-diff -->" in script
    # The artifact comes from a run a fork controls: its pull request number is checked against the diffed commit.
    assert "pull.head.sha !== context.payload.workflow_run.head_sha" in script
    assert script.index("pulls.get") < script.index("listComments")


def test_the_comment_script_is_javascript(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH to parse the github-script step with")
    script = steps_using(load("diff-comment.yml")["jobs"]["comment"], "actions/github-script")[0]["with"]["script"]
    # github-script runs the text as the body of an async function.
    for name, text in (("script.js", script), ("broken.js", script.replace("});", "};", 1))):
        (tmp_path / name).write_text(f"(async function (github, context) {{\n{text}\n}});\n")
    assert subprocess.run([node, "--check", str(tmp_path / "script.js")], capture_output=True).returncode == 0
    assert subprocess.run([node, "--check", str(tmp_path / "broken.js")], capture_output=True).returncode != 0


def test_merges_deploy_dev_then_prod_behind_its_environment() -> None:
    workflow = load("deploy.yml")
    dev, prod = workflow["jobs"]["dev"], workflow["jobs"]["prod"]

    assert workflow["on"] == {"push": {"branches": ["main"]}}
    assert (dev["environment"], dev["env"]["STACK"]) == ("dev", "dev")
    assert (prod["environment"], prod["env"]["STACK"], prod["needs"]) == ("prod", "prod", "dev")
    for job in (dev, prod):
        [pulumi] = steps_using(job, "pulumi/actions")
        assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "policies"
        assert job["permissions"]["id-token"] == "write"
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_the_jobs_that_run_pulumi_build_the_virtualenvs_pulumi_runs_in() -> None:
    """The program and the policy pack run in the virtualenvs their Pulumi files name, or not at all."""
    import re

    program = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    pack = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())["runtime"]["options"]["virtualenv"]
    jobs = [load("preview.yml")["jobs"]["preview"], *load("deploy.yml")["jobs"].values()]
    for job in jobs:
        assert steps_using(job, "pulumi/actions"), job["name"]
        made = {m for step in job["steps"] for m in re.findall(r"python -m venv (\S+)", step.get("run", ""))}
        assert made == {program, f"policies/{pack}"}, (job["name"], made)


def test_the_preview_matrix_is_the_stacks_ci_can_reach() -> None:
    done = subprocess.run([sys.executable, str(ROOT / ".github" / "scripts" / "preview_stacks.py")], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    # local reads a kubeconfig file on its owner's machine; dev and prod are reached from CI.
    assert json.loads(done.stdout) == ["dev", "prod"]
