"""Fixtures of the e2e tier: a real control plane with kwok nodes, the add-ons' CRDs, and the real engine.

The tier runs with ``pytest -m e2e`` (``.ci/run`` does, after the unit tests).
It needs either the toolchain ``toolchain/build.sh`` builds into
``$E2E_HOME/bin`` (default ``~/.cache/modelplane-e2e``), or your own ``pulumi``
on PATH and a throwaway cluster in ``MODELPLANE_E2E_KUBECONFIG`` whose nodes
carry the ``local`` stack's node-group labels, taints and GPU capacity. Tests
skip, saying which, when neither is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import harness
from .harness import USER_CLUSTER, Cluster, local_config, start_cluster


@pytest.fixture(scope="session")
def engine() -> Path:
    """The Pulumi installation the tier drives (``$E2E_HOME`` with the built CLI and provider, or PATH's)."""
    if not harness.built_toolchain() and not (USER_CLUSTER and harness.pulumi_root()):
        pytest.skip("no e2e toolchain: run tests/e2e/toolchain/build.sh (cold ~17 min), or set "
                    "MODELPLANE_E2E_KUBECONFIG to a throwaway cluster and put pulumi on PATH")
    root = harness.pulumi_root()
    assert root is not None
    return root


@pytest.fixture(scope="session")
def crd_schemas(project: Path) -> Path:
    path = (project / ".." / "shared" / "crd-schemas").resolve()
    if not path.is_dir():
        pytest.skip("../shared/crd-schemas not present: the add-ons the local stack declares present need "
                    "their CRDs, generated from it (it exists in CI and on dev machines)")
    return path


@pytest.fixture(scope="session")
def cluster(engine: Path) -> Iterator[Cluster]:
    """The control plane at the ``local`` stack's own Kubernetes minor (``--emulated-version``)."""
    minor = local_config()["modelplane:cluster"]["kubernetesVersion"]
    yield from start_cluster(harness.instance_dir(minor), minor)


@pytest.fixture(scope="session")
def workspace(engine: Path, tmp_path_factory: pytest.TempPathFactory) -> harness.Workspace:
    """A scratch copy of the project on a fresh local file backend."""
    return harness.Workspace(tmp_path_factory.mktemp("e2e-workspace"), engine)
