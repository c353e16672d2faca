"""Envoy v3 bootstrap configs judged by Envoy's own API definitions (tests/envoy_config, Go).

The checker is a small Go command built on go-control-plane: it parses each file
as Envoy does (YAML to JSON, then proto3 JSON with unknown fields rejected, every
``typed_config`` resolved to its message) and applies the API's
protoc-gen-validate rules, including to the messages inside ``typed_config``.

``build_envoy_checker`` builds it once (``None`` without a Go toolchain); the
``envoy_checker`` session fixture in ``conftest.py`` wraps it and skips when
``go`` is absent. ``check_envoy_configs`` runs the binary on configs given as text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parent / "envoy_config"
"""The Go module of the checker."""

NO_GO = ("the Go toolchain is not installed; tests/envoy_config needs it to build the Envoy "
         "bootstrap checker (go-control-plane)")
"""The reason given when a test needing the checker is skipped."""


def build_envoy_checker(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Build the checker into a fresh session temp dir; ``None`` when ``go`` is not installed.

    Uses Go's usual module and build caches (a second build is quick); only
    when Go would have none, because HOME is unset, does it keep them under the
    session's temp dir. Raises ``RuntimeError`` with the compiler's output if the build fails.
    """
    go = shutil.which("go")
    if go is None:
        return None
    out = tmp_path_factory.mktemp("envoy-config")
    env = dict(os.environ)
    if not env.get("HOME"):
        if not (env.get("GOCACHE") or env.get("XDG_CACHE_HOME")):
            env["GOCACHE"] = str(out / "go-build")
        if not (env.get("GOMODCACHE") or env.get("GOPATH")):
            env["GOMODCACHE"] = str(out / "go-mod")
            env["GOFLAGS"] = f"{env.get('GOFLAGS', '')} -modcacherw".strip()  # so pytest can delete it later
    binary = out / "envoy_config"
    build = subprocess.run([go, "build", "-buildvcs=false", "-o", str(binary), "."], cwd=CHECKER, env=env, check=False,
                           capture_output=True, text=True, timeout=900)
    if build.returncode != 0:
        raise RuntimeError(f"building {CHECKER} failed:\n{build.stdout}{build.stderr}")
    return binary


def check_envoy_configs(binary: Path, configs: Mapping[str, str]) -> dict[str, str | None]:
    """Judge each bootstrap config (name -> YAML text): name -> ``None`` if valid, else the checker's errors.

    All configs go to one run of the checker. Raises ``RuntimeError`` when the
    checker itself fails (exit code other than 0 or 1) or leaves a config unanswered.
    """
    names = list(configs)
    with tempfile.TemporaryDirectory(prefix="envoy-config-") as tmp:
        # Files are named by position, so that any name (with spaces, slashes, ": ") maps back.
        files = [Path(tmp, f"{i}.yaml") for i in range(len(names))]
        for file, name in zip(files, names, strict=True):
            file.write_text(configs[name], encoding="utf-8")
        if not files:
            return {}
        run = subprocess.run([str(binary), *map(str, files)], check=False, capture_output=True, text=True, timeout=120)
    if run.returncode not in (0, 1):
        raise RuntimeError(f"{binary} exited {run.returncode}:\n{run.stdout}{run.stderr}")
    by_file = {str(file): name for file, name in zip(files, names, strict=True)}
    results: dict[str, str | None] = {}
    for line in run.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status == "ok" and rest in by_file:
            results[by_file[rest]] = None
        elif status == "invalid":
            file, _, errors = rest.partition(": ")
            if file in by_file:
                results[by_file[file]] = errors
    missing = [name for name in names if name not in results]
    if missing:
        raise RuntimeError(f"{binary} gave no verdict on {missing}:\n{run.stdout}{run.stderr}")
    return results
