"""Reuse from Python: the built wheel, installed alone in a fresh virtualenv, gives the four components."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True,
                   capture_output=True)
    [built] = out.glob("modelplane-*.whl")
    return built


def test_the_wheel_holds_the_package_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "modelplane/__init__.py" in names and "modelplane/config/apis.py" in names
    assert "modelplane/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "infra/", "stacks/", "components/", "policies/"))]


@pytest.mark.timeout(900)
def test_a_fresh_virtualenv_with_the_wheel_builds_each_component(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    # Run from an empty directory, so `modelplane` can only come from the installed wheel.
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import modelplane; print(modelplane.__file__)"], cwd=work, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(env_dir)), where
    done = subprocess.run([str(python), str(ROOT / "tests" / "reuse" / "program.py")], cwd=work,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    registered = {(r["type"], r["name"], r["parent"]) for r in rows if "type" in r}

    assert {("modelplane:index:ServingCluster", "shared", ""), ("modelplane:index:GpuNodeGroup", "gpu", ""),
            ("modelplane:index:ModelApi", "reranker", ""), ("modelplane:index:AutoscalingPolicy", "batch", "")} <= registered
    assert ("eks:index:Cluster", "shared", "modelplane:index:ServingCluster") in registered
    assert ("eks:index:ManagedNodeGroup", "gpu", "modelplane:index:GpuNodeGroup") in registered
    assert ("kubernetes:apps/v1:Deployment", "reranker", "modelplane:index:ModelApi") in registered
    assert ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "batch", "modelplane:index:AutoscalingPolicy") in registered
    assert {"output": "http://reranker.reranker.svc.cluster.local"} in rows
