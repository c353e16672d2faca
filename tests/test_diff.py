"""``modelplane diff``: verdicts per resource, the Markdown report (golden files), and both sides rendered by their own code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from modelplane.cli import main
from modelplane.diff import _classify, changed_paths, diff_stack, format_markdown

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MODELPLANE_UPDATE_GOLDEN") == "1"
FRAUD_IMAGE = ("fraud-score:2024.11.3@sha256:1b333ba1b7c2aa5299b99572a6b7fbe35bd4c13613aabcc0b210ad7bd93d7ac0",
               "fraud-score:2024.12.1@sha256:2c444ba1b7c2aa5299b99572a6b7fbe35bd4c13613aabcc0b210ad7bd93d7ac1")
CPU_TYPES = ("instanceTypes: [c6i.2xlarge, c5.2xlarge, c7i.2xlarge]", "instanceTypes: [m7i.2xlarge, c7i.2xlarge]")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding the project at one commit, whose working tree a test then edits."""
    project = tmp_path / "repo"
    project.mkdir()
    for part in ("Pulumi.yaml", "infra", "components", "stacks"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, project / part)
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-qm", "base")
    return project


def edit(project: Path, stack: str, *replacements: tuple[str, str]) -> None:
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    text = path.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)


def golden(name: str, report: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(report)
    assert report == path.read_text(), f"the report differs from {path} (MODELPLANE_UPDATE_GOLDEN=1 rewrites it)"


def test_an_image_bump_is_a_rolling_update_and_nothing_is_replaced(repo: Path) -> None:
    edit(repo, "prod", FRAUD_IMAGE)
    diff = diff_stack(repo, "prod", "HEAD")

    assert [(c.verdict, c.type, c.name) for c in diff.changes] == [
        ("rolling update", "kubernetes:apps/v1:Deployment", "fraud-score")]
    report = format_markdown(diff)
    assert "No replacement." in report and "```mermaid" in report
    golden("diff-prod-image-bump.md", report)


def test_an_instance_type_change_replaces_the_node_groups_nodes(repo: Path) -> None:
    # prod's pools are Karpenter NodePools: the pool updates in place and Karpenter replaces its nodes.
    edit(repo, "prod", CPU_TYPES, ("maxReplicas: 60", "maxReplicas: 80"))
    diff = diff_stack(repo, "prod", "HEAD")

    assert [(c.verdict, c.type, c.name) for c in diff.changes if "node" in c.verdict] == [
        ("node replacement", "kubernetes:karpenter.sh/v1:NodePool", "cpu")]
    assert ("scale change", "fraud-score-autoscaling") in [(c.verdict, c.name) for c in diff.changes]
    report = format_markdown(diff)
    assert "Karpenter replaces the pool's nodes that no longer match (drift)" in report
    # 25 nodes x (m7i.2xlarge $0.4032 - c6i.2xlarge $0.34) at most, spot-first at the estimate (40 %).
    assert "| every group at maxSize | $45.99/h | $46.62/h | +$0.632/h |" in report
    golden("diff-prod-instance-type.md", report)


def test_a_managed_groups_instance_type_change_is_its_replacement(repo: Path) -> None:
    edit(repo, "dev", ("instanceTypes: [m6i.xlarge, m5.xlarge]", "instanceTypes: [m7i.xlarge, m6i.xlarge]"))
    diff = diff_stack(repo, "dev", "HEAD")

    assert [(c.verdict, c.type, c.name) for c in diff.replacements] == [
        ("replacement", "eks:index:ManagedNodeGroup", "cpu")]
    assert "**1 replacement(s)**" in format_markdown(diff)


def test_an_api_added_and_one_removed(repo: Path) -> None:
    path = repo / "stacks" / "Pulumi.dev.yaml"
    text = path.read_text()
    # doc-embed goes (its block runs to the end of the file); a copy of sentiment named echo comes.
    head, doc_embed = text.split("    doc-embed:\n", 1)
    sentiment = head.split("    sentiment:\n", 1)[1].split("    image-embed:\n", 1)[0]
    sentiment = "".join(line for line in sentiment.splitlines(keepends=True)
                        if "expose" not in line and "visibility" not in line and ".ml.example.com" not in line
                        and "certificate" not in line and "Public, over HTTPS" not in line)
    path.write_text(head + "    echo:\n" + sentiment)
    diff = diff_stack(repo, "dev", "HEAD")

    report = format_markdown(diff)
    assert "**APIs**: 1 added, 1 removed, 0 changed." in report
    assert {c.verdict for c in diff.changes if c.api == "echo"} == {"create"}
    assert {c.verdict for c in diff.changes if c.api == "doc-embed"} == {"delete"}
    golden("diff-dev-api-added-removed.md", report)


def test_no_change_says_so(repo: Path) -> None:
    report = format_markdown(diff_stack(repo, "dev", "HEAD"))
    assert "No change: the stack renders the same resources with the same inputs." in report
    assert "0 added, 0 removed, 0 changed. No replacement." in report


def test_the_base_is_rendered_by_its_own_program(repo: Path) -> None:
    # A code change with no stack change: the working tree's ModelApi labels its Deployment differently.
    model_api = repo / "components" / "model_api.py"
    source = model_api.read_text()
    assert '"app.kubernetes.io/managed-by": "modelplane"' in source
    model_api.write_text(source.replace('"app.kubernetes.io/managed-by": "modelplane"',
                                        '"app.kubernetes.io/managed-by": "modelplane-next"'))
    diff = diff_stack(repo, "dev", "HEAD")
    assert diff.changes and all(c.verdict in ("rolling update", "in-place update") for c in diff.changes)


def test_the_command_prints_markdown_and_a_bad_base_is_a_clear_error(repo: Path, capsys) -> None:
    edit(repo, "prod", FRAUD_IMAGE)
    assert main(["--project", str(repo), "diff", "--stack", "prod", "--base", "HEAD"]) == 0
    assert capsys.readouterr().out.startswith("## modelplane diff: stack `prod`, `HEAD` → working tree\n")
    assert main(["--project", str(repo), "diff", "--stack", "prod", "--base", "no-such-rev"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modelplane diff: git archive") and "no-such-rev" in err


# --------------------------------------------------------------------------- verdicts, without rendering

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def deployment(**spec) -> dict:
    base = {"metadata": {"name": "a", "namespace": "a"},
            "spec": {"selector": {"matchLabels": {"modelplane.io/api": "a"}},
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"spec": {"containers": [{"name": "model", "image": "x:1"},
                                                          {"name": "proxy", "image": "envoy:1"}]}}}}
    base["spec"].update(spec)
    return base


@pytest.mark.parametrize(("type_", "old", "new", "verdict"), [
    (DEPLOYMENT, deployment(), deployment(template={"spec": {"containers": [
        {"name": "model", "image": "x:2"}, {"name": "proxy", "image": "envoy:1"}]}}), "rolling update"),
    (DEPLOYMENT, deployment(), deployment(replicas=3), "scale change"),
    (DEPLOYMENT, deployment(), deployment(minReadySeconds=10), "in-place update"),
    (DEPLOYMENT, deployment(), deployment(selector={"matchLabels": {"app": "b"}}), "replacement"),
    (DEPLOYMENT, deployment(), {**deployment(), "metadata": {"name": "a", "namespace": "b"}}, "replacement"),
    ("kubernetes:core/v1:ConfigMap", {"immutable": True, "data": {"a": "1"}}, {"immutable": True, "data": {"a": "2"}},
     "replacement"),
    ("kubernetes:core/v1:ConfigMap", {"data": {"a": "1"}}, {"data": {"a": "2"}}, "in-place update"),
    ("kubernetes:core/v1:Service", {"spec": {"clusterIP": "10.0.0.1"}}, {"spec": {"clusterIP": "10.0.0.2"}},
     "replacement"),
    ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", {"spec": {"maxReplicas": 3}}, {"spec": {"maxReplicas": 4}},
     "scale change"),
    ("eks:index:ManagedNodeGroup", {"scalingConfig": {"maxSize": 3}}, {"scalingConfig": {"maxSize": 5}},
     "scale change"),
    ("eks:index:ManagedNodeGroup", {"labels": {"a": "1"}}, {"labels": {"a": "2"}}, "in-place update"),
    ("eks:index:ManagedNodeGroup", {"launchTemplate": {"version": "1"}}, {"launchTemplate": {"version": "2"}},
     "node replacement"),
    ("kubernetes:karpenter.sh/v1:NodePool", {"spec": {"limits": {"cpu": "8"}}}, {"spec": {"limits": {"cpu": "16"}}},
     "scale change"),
    ("kubernetes:karpenter.sh/v1:NodePool", {"spec": {"disruption": {"consolidateAfter": "1m"}}},
     {"spec": {"disruption": {"consolidateAfter": "5m"}}}, "in-place update"),
    ("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", {"spec": {"amiSelectorTerms": [{"alias": "al2023@v1"}]}},
     {"spec": {"amiSelectorTerms": [{"alias": "al2023@v2"}]}}, "node replacement"),
    ("eks:index:ManagedNodeGroup", {"capacityType": "ON_DEMAND"}, {"capacityType": "SPOT"}, "replacement"),
    ("eks:index:Cluster", {"version": "1.33"}, {"version": "1.34"}, "in-place update"),
    ("eks:index:Cluster", {"name": "a"}, {"name": "b"}, "replacement"),
    ("aws:sqs/queue:Queue", {"name": "q", "visibilityTimeoutSeconds": 30}, {"name": "q", "visibilityTimeoutSeconds": 60},
     "in-place update"),
    ("kubernetes:helm.sh/v3:Release", {"version": "1.0.0"}, {"version": "1.1.0"}, "in-place update"),
])
def test_each_change_gets_the_engines_verdict(type_, old, new, verdict) -> None:
    assert _classify(type_, "r", None, old, new).verdict == verdict


def test_a_rolling_update_names_the_container_and_the_surge() -> None:
    change = _classify(DEPLOYMENT, "a", "a", deployment(), deployment(template={"spec": {"containers": [
        {"name": "model", "image": "x:2"}, {"name": "proxy", "image": "envoy:1"}]}}))
    assert change.details == ('`spec.template.spec.containers[model].image`: "x:1" → "x:2"',
                              "pods roll with maxSurge 1, maxUnavailable 0")


def test_changed_paths_walk_named_lists_by_name_and_others_by_index() -> None:
    old = {"containers": [{"name": "a", "x": 1}, {"name": "b", "x": 1}], "args": ["1", "2"]}
    new = {"containers": [{"name": "b", "x": 2}, {"name": "a", "x": 1}], "args": ["1", "3"], "extra": True}
    assert [p for p, _, _ in changed_paths(old, new)] == ["args[1]", "containers[b].x", "extra"]
