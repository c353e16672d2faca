"""Fuzzing stack files: whatever a stack file holds, modelplane answers with keyed errors, never a traceback.

Hypothesis mutates the committed stack files (values of every type and size
where any key was, keys removed, renamed, added or given other namespaces,
deep nesting, numbers YAML reads as floats) and sometimes the YAML text itself
(stray bytes, duplicated lines, broken indentation), then runs ``modelplane
validate`` and, for a file it refuses, ``modelplane render``: exit code 0 or
2, a key path or line on every problem line, no traceback, and for a refused
file nothing written.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelplane.cli import main
from modelplane.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
STACKS = {p.name: load_stack_file(p) for p in sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))}

# 500 examples in CI, the same ones every run (derandomize): a red build reproduces from its log.
FUZZ = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["1.33", 1.33, "0", 0, "0Mi", "-1", "500m", "2Gi", "latest", "s3://x", "~", "null", "yes"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=12), st.integers(), st.booleans()),
                                                 inner, max_size=4)), max_leaves=12)
KEYS = st.one_of(st.sampled_from(["image", "nodeGroup", "gpu", "name", "existing", "apis", "modelplane:apis",
                                  "modelplan:apis", "aws:region", "kubernetesVersion", "maxReplicas", "cpu"]),
                 st.text(min_size=1, max_size=15), st.integers(), st.booleans(), st.none())


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, prefix + (index,))
    return out


@st.composite
def stack_files(draw: st.DrawFn) -> bytes:
    config = copy.deepcopy(STACKS[draw(st.sampled_from(sorted(STACKS)))])
    deep = 0
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(config)
        path = draw(st.sampled_from(paths)) if paths else ()
        parent: Any = config
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1] if path else None
        action = draw(st.sampled_from(["set", "delete", "add", "rename", "deep", "long-number"]))
        if action == "set" and path:
            parent[last] = draw(VALUES)
        elif action == "delete" and path and isinstance(parent, dict):
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        elif action == "rename" and path and isinstance(parent, dict):
            parent[draw(KEYS)] = parent.pop(last)
        elif action == "deep" and path:
            # Spliced into the text below: building it as data would hit the recursion limit here first.
            parent[last] = "DEEP-NESTING"
            deep = draw(st.integers(50, 3000))
        elif action == "long-number" and path:
            parent[last] = "LONG-NUMBER"  # an integer past Python's 4300-digit limit, spliced in below
    text = yaml.safe_dump({"config": config}, allow_unicode=True).encode()
    text = text.replace(b"DEEP-NESTING", b"[" * deep + b"]" * deep).replace(b"LONG-NUMBER", b"9" * 4400)
    if draw(st.booleans()):
        lines = text.split(b"\n")
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(lines) - 1))
            edit = draw(st.sampled_from(["bytes", "duplicate", "indent", "drop"]))
            if edit == "bytes":
                lines[at] += draw(st.binary(min_size=1, max_size=4))
            elif edit == "duplicate":
                lines.insert(at, lines[at])
            elif edit == "indent":
                lines[at] = b" " + lines[at]
            elif len(lines) > 1:
                del lines[at]
        text = b"\n".join(lines)
    if draw(st.integers(0, 9)) == 0:
        text = draw(st.sampled_from([b"", b"config:\n", b"\n", b"- a\n", b"config: [1, 2]\n", b"\xff\xfe",
                                     b"config:\n  " + b"[" * 5000 + b"\n", b"just text"]))
    return text


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("fuzz")
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copytree(ROOT / "infra", project / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "stacks").mkdir()
    return project


@FUZZ
@given(text=stack_files())
def test_any_stack_file_gets_keyed_errors_and_never_a_traceback(project: Path, text: bytes,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (project / "stacks" / "Pulumi.fuzz.yaml").write_bytes(text)
    code = main(["--project", str(project), "validate", "--stack", "fuzz"])
    out, err = capsys.readouterr()
    assert code in (0, 2), (code, err)
    assert "Traceback" not in out + err
    if code == 0:
        assert out.startswith("ok  stacks/Pulumi.fuzz.yaml")
        return
    lines = err.splitlines()
    assert re.fullmatch(r"stacks/Pulumi\.fuzz\.yaml: \d+ problem\(s\) in the estate config:", lines[0]), err
    assert len(lines) > 1 and all(line.startswith("  stacks/Pulumi.fuzz.yaml: ") for line in lines[1:]), err
    # A refused file renders nothing: no directory, no file.
    out_dir = project / "out"
    assert main(["--project", str(project), "render", "--stack", "fuzz", "--out", str(out_dir)]) == 2
    capsys.readouterr()
    assert not out_dir.exists()
