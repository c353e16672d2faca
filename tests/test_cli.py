"""The `modelplane` command: plan, render, validate, and what a broken stack file does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelplane.cli import EXIT_POLICY, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scratch_project(tmp_path: Path) -> Path:
    """A copy of the project's program and stacks that a test may break."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copytree(ROOT / "infra", project / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "stacks", project / "stacks")
    return project


def test_plan_prints_the_dev_estate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project", str(ROOT), "plan", "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert "stack dev (stacks/Pulumi.dev.yaml), cluster ml-dev" in out
    assert "eks:index:Cluster" in out and "kubernetes:apps/v1:Deployment" in out
    assert "ModelApi sentiment" in out and "GpuNodeGroup gpu-spot" in out
    table = out.split("\nModel APIs\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = {line.split()[0]: line.split() for line in table}
    assert rows["image-embed"][1:4] == ["clip-embed:0.9.1", "1-3", "1"]
    assert rows["image-embed"][-2:] == ["1/0", "gpu-spot"]
    assert rows["sentiment"][-2:] == ["25%/25%", "cpu"]
    assert "kubeconfig: [secret]" in out


def test_plan_shows_a_canary_and_a_shadow_under_their_apis(render, stack_configs) -> None:
    from modelplane.cli import format_plan

    apis = "modelplane:apis"
    plan = render("dev", stack_configs.edited(
        "dev", ((apis, "sentiment", "expose"), {"allowHttp": True}),
        ((apis, "sentiment", "canary"), {"image": "ghcr.io/acme/sentiment-api:1.5.0", "weight": 50}),
        ((apis, "image-embed", "shadow"), {"image": "ghcr.io/acme/clip-embed:1.0.0", "percent": 12.5,
                                           "replicas": 2})))
    lines = format_plan(plan).splitlines()
    table = lines[lines.index("Model APIs") + 3:lines.index("Model APIs") + 8]
    names = [line.split()[0] for line in table]
    rows = {line.split()[0]: line for line in table}

    # Each version right under its API, named as its Deployment is.
    assert names == ["doc-embed", "image-embed", "image-embed-shadow", "sentiment", "sentiment-canary"]
    assert rows["sentiment-canary"].split()[1:4] == ["sentiment-api:1.5.0", "1-3", "-"]
    assert "canary, weight 50%" in rows["sentiment-canary"]
    assert rows["image-embed-shadow"].split()[1:4] == ["clip-embed:1.0.0", "2", "1"]
    assert "shadow, 12.5% mirrored" in rows["image-embed-shadow"]


def test_plan_runs_the_policy_pack_and_fails_like_the_preview_on_a_mandatory_rule(
        scratch_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pulumi_policy", reason="the pack needs pulumi-policy (the test extras install it)")
    shutil.copytree(ROOT / "policies", scratch_project / "policies", ignore=shutil.ignore_patterns("__pycache__"))
    assert main(["--project", str(scratch_project), "plan", "--stack", "prod"]) == 0
    assert "Guardrails: policy pack, 24 rules: 0 mandatory and 0 advisory violation(s)" in capsys.readouterr().out

    # fraud-score by tag: prod's images-by-digest is mandatory.
    prod = scratch_project / "stacks" / "Pulumi.prod.yaml"
    text, unpinned = re.subn(r"(fraud-score:2024\.11\.3)@sha256:[0-9a-f]{64}", r"\1", prod.read_text())
    assert unpinned == 1
    prod.write_text(text)
    assert main(["--project", str(scratch_project), "plan", "--stack", "prod"]) == EXIT_POLICY
    out = capsys.readouterr().out
    assert "1 mandatory and 0 advisory violation(s) (pulumi preview --policy-pack policies would fail)" in out
    [line] = [line for line in out.splitlines() if line.startswith("  - mandatory")]
    assert line.startswith("  - mandatory images-by-digest on fraud-score: Pin image ")
    assert line.endswith("(stack file: modelplane:apis.fraud-score.image).")


def test_plan_says_when_the_pack_cannot_run(scratch_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project", str(scratch_project), "plan", "--stack", "dev"]) == 0
    assert f"Guardrails: the policy pack did not run (no policy pack in {scratch_project / 'policies'})" \
        in capsys.readouterr().out


def test_render_writes_each_object_once_and_resources_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["--project", str(ROOT), "render", "--stack", "prod", "--out", str(out)]) == 0
    files = sorted((out / "k8s").rglob("*.yaml"))
    objects = [yaml.safe_load(f.read_text()) for f in files]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    scalers = {"fraud-score": "HorizontalPodAutoscaler", "recommender": "HorizontalPodAutoscaler",
               "sentiment": "ScaledObject", "image-embed": "ScaledObject", "llm-chat": "ScaledObject"}
    for api, scaler in scalers.items():
        for kind in ("Namespace", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "PodMonitor",
                     "NetworkPolicy", scaler):
            assert (kind, api) in kinds
    # Five APIs with eight objects each, the recommender's content-named config ConfigMap, a proxy
    # ConfigMap for each of the four APIs behind the proxy (llm-chat runs without), an Ingress for each
    # of the two exposed APIs, and a Karpenter NodePool and EC2NodeClass for each of the four node groups.
    assert {name for kind, name in kinds if kind == "Ingress"} == {"fraud-score", "sentiment"}
    assert len(files) == len(kinds) == 5 * 8 + 1 + 4 + 2 + 4 * 2
    assert sum(1 for kind, _ in kinds if kind == "ConfigMap") == 5
    deployment = yaml.safe_load((out / "k8s" / "llm-chat" / "deployment-llm-chat.yaml").read_text())
    assert list(deployment)[:3] == ["apiVersion", "kind", "metadata"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8000 and isinstance(container["ports"][0]["containerPort"], int)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"

    resources = json.loads((out / "resources.json").read_text())
    types = [r["type"] for r in resources["resources"]]
    assert types.count("eks:index:Cluster") == 1
    # prod's four groups are Karpenter NodePools; the system group is the one managed node group.
    assert types.count("eks:index:ManagedNodeGroup") == 1
    assert types.count("kubernetes:karpenter.sh/v1:NodePool") == 4
    assert resources["outputs"]["kubeconfig"] == "[secret]"
    assert all({"urn", "type", "name", "parent", "inputs"} <= set(r) for r in resources["resources"])
    node_group = next(r for r in resources["resources"] if r["type"] == "eks:index:ManagedNodeGroup")
    assert node_group["inputs"]["cluster"]["$ref"].endswith("eks:index:Cluster::ml-prod")


def test_validate_checks_every_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project", str(ROOT), "validate"]) == 0
    out = capsys.readouterr().out
    assert "ok  stacks/Pulumi.dev.yaml" in out and "ok  stacks/Pulumi.prod.yaml" in out


BROKEN = {
    "unknown key": ("    name: ml-dev\n", "    name: ml-dev\n    colour: blue\n",
                    "modelplane:cluster.colour: unknown key 'colour'; valid keys here: name, kubernetesVersion"),
    "wrong type": ("        maxReplicas: 6\n", "        maxReplicas: six\n",
                   "modelplane:apis.sentiment.autoscaling.maxReplicas: Input should be a valid integer; got 'six'"),
    "max below min": ("        maxReplicas: 6\n", "        maxReplicas: 0\n",
                      "modelplane:apis.sentiment.autoscaling.maxReplicas"),
    "unknown node group": ("      nodeGroup: cpu\n", "      nodeGroup: cpus\n",
                           "modelplane:apis.sentiment.nodeGroup: node group 'cpus' does not exist in "
                           "modelplane:nodeGroups (declared: cpu, gpu-spot)"),
    "GPU API on a CPU group": ("      nodeGroup: gpu-spot\n", "      nodeGroup: cpu\n",
                               "modelplane:apis.image-embed.nodeGroup: API 'image-embed' asks for 1 GPU(s) but "
                               "node group 'cpu' has no GPUs (GPU groups: gpu-spot)"),
    "bad YAML": ("    name: ml-dev\n", "    name: [ml-dev\n", "line "),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
@pytest.mark.parametrize("command", ["plan", "render"])
def test_broken_stack_exits_2_names_file_and_key_and_writes_nothing(
        case: str, command: str, scratch_project: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    old, new, expected = BROKEN[case]
    stack = scratch_project / "stacks" / "Pulumi.dev.yaml"
    text = stack.read_text()
    assert old in text
    stack.write_text(text.replace(old, new, 1))
    out_dir = tmp_path / "rendered"
    argv = ["--project", str(scratch_project), command, "--stack", "dev"]
    if command == "render":
        argv += ["--out", str(out_dir)]

    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "stacks/Pulumi.dev.yaml: " in captured.err
    assert expected in captured.err
    assert "Traceback" not in captured.err
    assert not out_dir.exists()


def test_console_script_reports_config_errors_without_traceback(scratch_project: Path) -> None:
    stack = scratch_project / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("    name: ml-dev\n", "    name: [ml-dev\n"))
    result = subprocess.run([sys.executable, "-m", "modelplane.cli", "plan", "--stack", "dev"],
                            cwd=scratch_project, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "stacks/Pulumi.dev.yaml: line " in result.stderr and "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_stack_lists_the_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--project", str(ROOT), "plan", "--stack", "staging"]) == 2
    assert "no such stack file; stacks here: dev, local, prod" in capsys.readouterr().err


# ------------------------------------------------------------------------ deterministic, safe output

STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
MODELPLANE = str(Path(sys.executable).parent / "modelplane")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stack", STACKS)
def test_two_renders_and_two_plans_of_a_stack_are_byte_identical(tmp_path: Path, stack: str) -> None:
    # Separate processes with different hash seeds: the order Python gives sets and the protobuf runtime
    # gives maps differs between them, and must not show in what modelplane writes.
    outputs = []
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": str(Path(sys.executable).parent)}
        out = tmp_path / f"render-{seed}"
        subprocess.run([MODELPLANE, "--project", str(ROOT), "render", "--stack", stack, "--out", str(out)],
                       check=True, capture_output=True, env=env)
        plan = subprocess.run([MODELPLANE, "--project", str(ROOT), "plan", "--stack", stack], check=True,
                              capture_output=True, env=env).stdout
        outputs.append((_tree(out), plan))
    (first, first_plan), (second, second_plan) = outputs
    assert len(first) > 10 and first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    assert first_plan == second_plan


def test_render_keeps_files_it_did_not_write_and_removes_objects_that_are_gone(
        scratch_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "k8s" / "sentiment").mkdir(parents=True)
    mine = out / "k8s" / "sentiment" / "my-notes.txt"
    mine.write_text("not modelplane's")
    (out / "README").write_text("mine too")
    assert main(["--project", str(scratch_project), "render", "--stack", "dev", "--out", str(out)]) == 0
    deployment = out / "k8s" / "doc-embed" / "deployment-doc-embed.yaml"
    assert deployment.is_file()
    # doc-embed leaves the stack: its files go on the next render, nothing else does.
    stack_file = scratch_project / "stacks" / "Pulumi.dev.yaml"
    document = yaml.safe_load(stack_file.read_text())
    del document["config"]["modelplane:apis"]["doc-embed"]
    stack_file.write_text(yaml.safe_dump(document))
    assert main(["--project", str(scratch_project), "render", "--stack", "dev", "--out", str(out)]) == 0
    assert not deployment.exists() and not (out / "k8s" / "doc-embed").exists()
    assert mine.read_text() == "not modelplane's" and (out / "README").read_text() == "mine too"
    assert (out / "k8s" / "sentiment" / "deployment-sentiment.yaml").is_file()


def test_version_and_a_closed_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == "modelplane 0.1.0"
    # The JSON Schema is larger than a pipe's buffer: `| head -1` closes the pipe mid-write.
    piped = subprocess.run(f"'{MODELPLANE}' --project '{ROOT}' schema | head -1", shell=True, capture_output=True,
                           text=True, executable="/bin/bash")
    assert piped.stdout == "{\n"
    assert "Traceback" not in piped.stderr and "BrokenPipeError" not in piped.stderr
