#!/usr/bin/env python
"""Wall time of the real Pulumi engine on an existing cluster, beside the offline plan of the same stack.

For the committed ``local`` stack and a synthetic existing-cluster stack of N
model APIs (default 100), on a fresh local control plane with kwok nodes
(``tests/e2e/toolchain``; build it first with ``tests/e2e/toolchain/build.sh``):

* ``modelplane plan``: the offline run (mock engine), as a subprocess;
* ``preview`` of the empty stack, ``up`` (every object created, every
  Deployment rolled out), ``preview`` with nothing to change, an image bump of
  one API (``up``: one Deployment update and its rollout), and ``destroy``:
  the real engine through the Automation API, each timed around the call.

One run per figure (a real ``up`` takes seconds to minutes); the control
plane is restarted empty for each stack. A benchmark, not a test: it prints
figures and asserts nothing about them.

    python benchmarks/real_engine.py [--apis 100] [--only local|synthetic]
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from e2e import harness  # noqa: E402  (the e2e tier's machinery: control plane, kwok nodes, engine)

IMAGE = "nginxinc/nginx-unprivileged:1.27.4-alpine"


def synthetic(apis: int) -> dict[str, Any]:
    """An existing-cluster stack of ``apis`` CPU APIs: half on in-flight requests (KEDA), half on CPU (HPA)."""
    config = harness.local_config()
    per_node = 8  # m6i.2xlarge: 8 vCPU; each replica asks 250m + the proxy's 100m
    config["modelplane:nodeGroups"] = {"cpu": {"instanceTypes": ["m6i.2xlarge"], "minSize": 1,
                                               "maxSize": max(2, -(-apis * 350 // (per_node * 1000 - 500)) + 1)}}
    config["modelplane:apis"] = {
        f"model-{i:03d}": {
            "image": IMAGE, "nodeGroup": "cpu", "readinessProbe": {"path": "/"},
            "compute": {"cpu": "250m", "mem": "256Mi"}, "maxConcurrency": 4,
            "env": {"MODEL_NAME": f"model-{i:03d}"},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 4,
                            **({"metric": "cpu"} if i % 2 else {})},
        }
        for i in range(apis)
    }
    return config


def timed(what: str, figures: dict[str, float], call: Any) -> Any:
    started = time.perf_counter()
    result = call()
    figures[what] = time.perf_counter() - started
    print(f"  {what:<24} {figures[what]:8.1f} s", flush=True)
    return result


def measure(name: str, config: dict[str, Any], root: Path, crd_schemas: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    print(f"{name}: {len(config['modelplane:apis'])} APIs", flush=True)
    plane = harness.ControlPlane(instance=root / f"cluster-{name}",
                                 emulate=config["modelplane:cluster"]["kubernetesVersion"])
    plane.start()
    try:
        cluster = harness.Cluster(plane.kubeconfig, "realk8s", plane.emulate or harness.NEWEST_MINOR, plane)
        config = harness.pointed_at(config, cluster.kubeconfig, cluster.context)
        cluster.prepare(config, crd_schemas)
        workspace = harness.Workspace(root / f"workspace-{name}")
        stack = workspace.stack(name, config)
        modelplane = str(Path(sys.executable).parent / "modelplane")
        timed("modelplane plan", figures, lambda: subprocess.run(
            [modelplane, "--project", str(workspace.project), "plan", "--stack", name], check=True,
            capture_output=True))
        steps = timed("preview (empty stack)", figures, stack.preview)
        figures["resources"] = sum(1 for s in steps if s.op == "create")
        timed("up (create)", figures, stack.up)
        timed("preview (no change)", figures, stack.preview)
        first = sorted(config["modelplane:apis"])[0]
        bumped = copy.deepcopy(config)
        bumped["modelplane:apis"][first]["image"] = IMAGE.replace("1.27.4", "1.27.5")
        stack.set_config(bumped)
        timed("up (one image bump)", figures, stack.up)
        timed("destroy", figures, stack.destroy)
    finally:
        plane.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apis", type=int, default=100)
    parser.add_argument("--only", choices=["local", "synthetic"], default=None)
    args = parser.parse_args()
    if not harness.built_toolchain():
        sys.exit("benchmarks/real_engine.py needs the e2e toolchain: tests/e2e/toolchain/build.sh")
    crd_schemas = REPO.parent / "shared" / "crd-schemas"
    if not crd_schemas.is_dir():
        sys.exit("benchmarks/real_engine.py needs ../shared/crd-schemas for the KEDA CRDs the stacks declare present")
    stacks = {"local": harness.local_config(), f"synthetic-{args.apis}": synthetic(args.apis)}
    if args.only:
        stacks = {k: v for k, v in stacks.items() if k.startswith(args.only)}
    results = {}
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-") as tmp:
        for name, config in stacks.items():
            results[name] = measure(name, config, Path(tmp), crd_schemas)
    columns = ["modelplane plan", "preview (empty stack)", "up (create)", "preview (no change)",
               "up (one image bump)", "destroy"]
    print()
    print(f"{'stack':<16} {'resources':>9}  " + "  ".join(f"{c:>22}" for c in columns))
    for name, figures in results.items():
        print(f"{name:<16} {int(figures['resources']):>9}  " + "  ".join(f"{figures[c]:>20.1f} s" for c in columns))
    print(f"\nhost: {os.cpu_count()} cores; engine: {harness.E2E_HOME / 'bin' / 'pulumi'}; kwok pod-ready delay "
          "4-11 s per pod (what a rollout waits for here)")


if __name__ == "__main__":
    main()
