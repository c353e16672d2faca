#!/usr/bin/env python
"""How rendering scales with the number of model APIs, and what modelplane adds.

For N synthetic model APIs (default 10, 100 and 500) spread over the dev
stack's node groups, this measures, each in its own fresh child process:

* **modelplane**: ``modelplane.offline.run_stack`` on the synthetic config: the
  real program in ``infra/`` under the Pulumi mock engine, with config
  validation, the cluster / VPC / node-group resources and every component.
* **baseline**: exactly the Kubernetes objects that run produced
  (``modelplane.offline.kubernetes_objects``), registered directly with the
  matching ``pulumi_kubernetes`` classes under the same mock engine
  (modelplane's ``EstateMocks`` and ``RecordingMonitor``, same runtime reset),
  with no modelplane component, no validation and no cloud resources.

Wall seconds (``time.perf_counter`` around the mock run only; both sides
import and warm their libraries first) and peak RSS (``ru_maxrss`` of the
child) are taken per side; each measurement runs ``--repeats`` times (3) and
the median seconds / RSS are reported. The baseline child also checks that the
objects it registered are identical to modelplane's (outside the timing).

    python benchmarks/render_scale.py [--sizes 10 100 500] [--repeats 3]

A benchmark, not a test: nothing is asserted about timing.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEV_STACK = REPO / "stacks" / "Pulumi.dev.yaml"
STACK = "bench"
NS = "modelplane"

# --------------------------------------------------------------------------- synthetic estate

# (family, image repository, port, readiness path, cpu, mem, gpus per replica, env)
_CPU_MODELS = [
    ("sentiment", "ghcr.io/acme/sentiment-api", 8080, "/healthz", "500m", "1Gi",
     {"MODEL_NAME": "distilbert-sst2", "WORKERS": "4"}),
    ("ner", "ghcr.io/acme/ner-api", 8080, "/healthz", "1", "2Gi",
     {"MODEL_NAME": "bert-base-ner", "BATCH_SIZE": "16", "LOG_LEVEL": "info"}),
    ("rerank", "123456789012.dkr.ecr.us-east-1.amazonaws.com/rerank", 8000, "/ready", "2", "4Gi",
     {"MODEL_NAME": "ms-marco-minilm", "MAX_PAIRS": "256"}),
    ("langid", "ghcr.io/acme/langid", 9000, "/health", "250m", "512Mi",
     {"MODEL_NAME": "fasttext-lid176"}),
]
_GPU_MODELS = [
    ("clip-embed", "ghcr.io/acme/clip-embed", 8080, "/ready", "2", "8Gi",
     {"MODEL_NAME": "openai/clip-vit-base-patch32", "DTYPE": "float16"}),
    ("whisper", "ghcr.io/acme/whisper-api", 8080, "/healthz", "3", "12Gi",
     {"MODEL_NAME": "whisper-small", "BEAM_SIZE": "5", "HF_HUB_OFFLINE": "1"}),
    ("llm-chat", "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm", 8000, "/health", "3500m", "14Gi",
     {"MODEL_NAME": "qwen2.5-1.5b-instruct", "MAX_MODEL_LEN": "4096", "GPU_MEMORY_UTILIZATION": "0.9"}),
]


def _api(index: int, gpu: bool, group: str) -> tuple[str, dict[str, Any]]:
    """One realistic API entry (deterministic in ``index``)."""
    models = _GPU_MODELS if gpu else _CPU_MODELS
    family, repo, port, path, cpu, mem, env = models[index % len(models)]
    name = f"{family}-{index:04d}"
    api: dict[str, Any] = {
        "image": f"{repo}:{1 + index % 3}.{index % 17}.{index % 5}",
        "nodeGroup": group,
        "port": port,
        "readinessProbe": {"path": path, **({"initialDelaySeconds": 20, "periodSeconds": 10} if gpu else {})},
        "compute": {"cpu": cpu, "mem": mem, **({"gpu": 1} if gpu else {})},
        "maxConcurrency": 1 if gpu else 1 + index % 8,
        "env": {**env, "TEAM": f"team-{index % 7}"},
        "autoscaling": {
            "minReplicas": 1 if gpu else 1 + index % 2,
            "maxReplicas": 1 + index % 3 if gpu else 4 + index % 6,
            "metric": "memory" if index % 5 == 0 else "cpu",
            "targetUtilization": 60 + index % 4 * 5,
            **({"downscaleStabilizationPeriod": "10m"} if gpu else {}),
        },
    }
    if gpu:
        api["command"] = ["python", "-m", "serve"]
        api["args"] = ["--model", env["MODEL_NAME"], "--port", str(port)]
    if index % 4 == 3:
        api["updateStrategy"] = {"maxSurge": 2, "maxUnavailable": 0} if not gpu else {"maxSurge": 1}
    return name, api


def synthetic_config(n: int) -> dict[str, Any]:
    """The dev stack's config map with its APIs replaced by ``n`` generated ones (about 1 in 3 on GPUs)."""
    from modelplane import catalog
    from modelplane.config import load_stack_file

    cfg = copy.deepcopy(load_stack_file(DEV_STACK))
    groups: dict[str, dict[str, Any]] = cfg[f"{NS}:nodeGroups"]
    cpu_groups = sorted(g for g, spec in groups.items() if not spec.get("gpu"))
    gpu_groups = sorted(g for g, spec in groups.items() if spec.get("gpu"))
    apis: dict[str, Any] = {}
    counts = {"cpu": 0, "gpu": 0}
    for index in range(n):
        gpu = bool(gpu_groups) and index % 3 == 1
        pool = gpu_groups if gpu else cpu_groups
        group = pool[counts["gpu" if gpu else "cpu"] % len(pool)]
        counts["gpu" if gpu else "cpu"] += 1
        name, api = _api(index, gpu, group)
        apis[name] = api
    cfg[f"{NS}:apis"] = apis

    # Size the groups for what is declared on them (a 500-API estate on a 3-node GPU group would not be
    # realistic, and a capacity rule in validation would reject it). Only maxSize changes.
    for group, spec in groups.items():
        on_group = [a for a in apis.values() if a["nodeGroup"] == group]
        if spec.get("gpu"):
            per_node = min((t.gpus for t in map(catalog.lookup, spec["instanceTypes"]) if t and t.gpus), default=1)
            # All the group's GPU APIs at maxReplicas, plus the largest single rollout surge (GPU APIs
            # surge 1 replica unless updateStrategy says otherwise).
            steady = sum(a["autoscaling"]["maxReplicas"] * a["compute"].get("gpu", 0) for a in on_group)
            surge = max((a.get("updateStrategy", {}).get("maxSurge", 1) * a["compute"].get("gpu", 0)
                         for a in on_group), default=0)
            needed = math.ceil((steady + surge) / per_node)
        else:
            vcpus = min((t.vcpus for t in map(catalog.lookup, spec["instanceTypes"]) if t), default=4)
            demand = sum(a["autoscaling"]["maxReplicas"] * _millicores(a["compute"]["cpu"]) for a in on_group)
            needed = math.ceil(demand / (vcpus * 1000))
        spec["maxSize"] = min(1000, max(spec.get("maxSize", 3), needed))
    return cfg


def _millicores(cpu: str) -> float:
    return float(cpu[:-1]) if cpu.endswith("m") else float(cpu) * 1000


# --------------------------------------------------------------------------- the two sides (run in children)

class _GcTimer:
    """Time spent in the cyclic garbage collector (any thread), via ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full_collections = 0
        self._started = 0.0

    def __enter__(self) -> _GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full_collections += info["generation"] == 2


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _warm_modelplane() -> None:
    """Import everything the program touches, so the timing is the render, not module loading."""
    import pulumi_aws as aws
    import pulumi_eks as eks
    import pulumi_kubernetes as k8s

    import modelplane  # noqa: F401  (components, config models, pydantic schemas)
    from modelplane import offline  # noqa: F401

    _ = (aws.ec2.Vpc, aws.iam.Role, aws.kms.Key, eks.Cluster, eks.ManagedNodeGroup, k8s.Provider,
         k8s.helm.v3.Release)
    _warm_kubernetes()


def _warm_kubernetes() -> None:
    from modelplane import offline  # noqa: F401  (the mocks both sides use)

    for cls in _k8s_classes().values():
        _ = cls


def measure_modelplane(cfg: dict[str, Any], objects_out: Path | None) -> dict[str, Any]:
    """Run the real program on ``cfg``; optionally write the Kubernetes objects it produced."""
    _warm_modelplane()
    from modelplane import offline

    with _GcTimer() as gc_timer:
        start, cpu_start = time.perf_counter(), time.process_time()
        plan = offline.run_stack(STACK, project=REPO, config_map=cfg)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    rss = _peak_rss_kib()
    objects = list(offline.kubernetes_objects(plan))
    if objects_out is not None:
        objects_out.write_text(json.dumps(objects))
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "resources": len(plan.resources),
            "k8s_objects": len(objects),
            "rss_kib": rss, "gc_seconds": gc_timer.seconds, "gc_full": gc_timer.full_collections}


def _k8s_classes() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> the pulumi_kubernetes class that registers it."""
    import pulumi_kubernetes as k8s

    return {
        ("v1", "Namespace"): k8s.core.v1.Namespace,
        ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
        ("v1", "Service"): k8s.core.v1.Service,
        ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
        ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
        ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
        ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    }


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def _resource_name(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return "-".join(p for p in (obj["kind"].lower(), meta.get("namespace"), meta["name"]) if p)


def register_directly(objects: list[dict[str, Any]]) -> None:
    """Create each object with its pulumi_kubernetes class: no components, parents, providers or checks."""
    import pulumi_kubernetes as k8s

    classes = _k8s_classes()
    for obj in objects:
        if "." in obj["apiVersion"].partition("/")[0]:  # a custom resource (KEDA, Prometheus Operator)
            k8s.apiextensions.CustomResource(_resource_name(obj), api_version=obj["apiVersion"], kind=obj["kind"],
                                             **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
            continue
        cls = classes.get((obj["apiVersion"], obj["kind"]))
        if cls is None:
            raise SystemExit(f"baseline: no pulumi_kubernetes class mapped for {obj['apiVersion']} {obj['kind']}")
        fields = {_snake(k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        cls(_resource_name(obj), **fields)


def run_baseline(objects: list[dict[str, Any]], region: str) -> list[Any]:
    """Register ``objects`` under the same mock engine, monitor and runtime reset as ``run_stack``."""
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from modelplane.offline import start_mock_engine

    monitor = start_mock_engine(STACK, region)
    _sync_await(run_pulumi_func(lambda: register_directly(objects)))
    return list(monitor.recorded)


def measure_baseline(objects: list[dict[str, Any]], region: str) -> dict[str, Any]:
    _warm_kubernetes()
    from modelplane.offline import normalize

    with _GcTimer() as gc_timer:
        start, cpu_start = time.perf_counter(), time.process_time()
        recorded = run_baseline(objects, region)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    rss = _peak_rss_kib()
    # Outside the timing: the baseline registered exactly modelplane's objects (the engine records
    # registrations as they complete, so match them up by name rather than by order).
    registered = {r.name: normalize(r.inputs) for r in recorded}
    identical = len(recorded) == len(objects) and all(
        registered.get(_resource_name(obj)) == obj for obj in objects)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "resources": len(recorded), "rss_kib": rss,
            "identical": identical,
            "gc_seconds": gc_timer.seconds, "gc_full": gc_timer.full_collections}


def _child(args: argparse.Namespace) -> None:
    cfg = json.loads(Path(args._config).read_text())
    if args._child == "modelplane":
        result = measure_modelplane(cfg, Path(args._objects) if args._objects else None)
    else:
        objects = json.loads(Path(args._objects).read_text())
        result = measure_baseline(objects, cfg["aws:region"])
    Path(args._result).write_text(json.dumps(result))


# --------------------------------------------------------------------------- parent: orchestration

def _spawn(side: str, config: Path, result: Path, objects: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", side, "--_config", str(config),
           "--_result", str(result)]
    if objects is not None:
        cmd += ["--_objects", str(objects)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{side} child failed (exit {proc.returncode})")
    return json.loads(result.read_text())


def bench_size(n: int, repeats: int, workdir: Path) -> dict[str, Any]:
    from modelplane.config import parse_estate

    cfg = synthetic_config(n)
    # Fail early and clearly if the synthetic config is invalid; show what validation warns about.
    for warning in parse_estate(cfg, f"synthetic {n}-API estate").warnings:
        print(f"  N={n}: config warning: {warning}", file=sys.stderr)
    config = workdir / f"config-{n}.json"
    config.write_text(json.dumps(cfg))
    objects = workdir / f"objects-{n}.json"
    runs: dict[str, list[dict[str, Any]]] = {"modelplane": [], "baseline": []}
    for rep in range(repeats):
        # The first modelplane run writes the objects the baseline registers; the sides alternate.
        runs["modelplane"].append(_spawn("modelplane", config, workdir / "result.json",
                                         objects if rep == 0 else None))
        runs["baseline"].append(_spawn("baseline", config, workdir / "result.json", objects))
        print(f"  N={n} rep {rep + 1}/{repeats}: modelplane {runs['modelplane'][-1]['seconds']:.3f}s, "
              f"baseline {runs['baseline'][-1]['seconds']:.3f}s", file=sys.stderr, flush=True)
    mp, base = runs["modelplane"], runs["baseline"]
    return {
        "n": n,
        "mp_resources": mp[0]["resources"],
        "k8s_objects": mp[0]["k8s_objects"],
        "base_resources": base[0]["resources"],
        "identical": all(r["identical"] for r in base),
        "mp_s": statistics.median(r["seconds"] for r in mp),
        "base_s": statistics.median(r["seconds"] for r in base),
        "mp_cpu_s": statistics.median(r["cpu_seconds"] for r in mp),
        "base_cpu_s": statistics.median(r["cpu_seconds"] for r in base),
        "mp_runs": [r["seconds"] for r in mp],
        "base_runs": [r["seconds"] for r in base],
        "mp_gc_s": statistics.median(r["gc_seconds"] for r in mp),
        "base_gc_s": statistics.median(r["gc_seconds"] for r in base),
        "mp_gc_full": statistics.median(r["gc_full"] for r in mp),
        "base_gc_full": statistics.median(r["gc_full"] for r in base),
        "mp_rss_mib": statistics.median(r["rss_kib"] for r in mp) / 1024,
        "base_rss_mib": statistics.median(r["rss_kib"] for r in base) / 1024,
    }


def _sources_digest() -> str:
    """Digest of the package sources; the package is edited concurrently, so say exactly what was measured."""
    sources = hashlib.sha256()
    for path in sorted([*(REPO / "components").glob("*.py"), REPO / "infra" / "__main__.py"]):
        sources.update(path.name.encode() + b"\0" + path.read_bytes())
    return sources.hexdigest()[:16]


def _versions() -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"Python {platform.python_version()} ({platform.python_implementation()}), "
            f"pulumi {version('pulumi')}, pulumi-kubernetes {version('pulumi_kubernetes')}, "
            f"pulumi-aws {version('pulumi_aws')}, pulumi-eks {version('pulumi_eks')}, "
            f"pydantic {version('pydantic')}\n"
            f"CPUs: {os.cpu_count()} (usable by this process: {affinity}); load average at start: {load}; "
            f"{platform.platform()}\n"
            f"modelplane {version('modelplane')} sources (components/*.py, infra/__main__.py) sha256 "
            f"{_sources_digest()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500], help="numbers of model APIs")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per side and size (median reported)")
    for hidden in ("--_child", "--_config", "--_result", "--_objects"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        _child(args)
        return

    print(_versions())
    print(f"median of {args.repeats} runs per cell; each run in a fresh process; seconds = the mock run only "
          "(wall clock); CPU ratio = ratio of the median process CPU times (less sensitive to a noisy host)")
    digest = _sources_digest()
    rows = []
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-") as tmp:
        for n in args.sizes:
            rows.append(bench_size(n, args.repeats, Path(tmp)))
    if _sources_digest() != digest:
        print(f"WARNING: the modelplane sources changed during the run (sha256 {digest} -> {_sources_digest()}); "
              "the numbers below may mix versions: run again.")

    header = (f"{'N':>5}  {'resources (mp / base)':>21}  {'modelplane s':>12}  {'baseline s':>10}  "
              f"{'ratio':>6}  {'CPU ratio':>9}  {'mp RSS MiB':>10}  {'base RSS MiB':>12}")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['n']:>5}  {str(r['mp_resources']) + ' / ' + str(r['base_resources']):>21}  "
              f"{r['mp_s']:>12.3f}  {r['base_s']:>10.3f}  {r['mp_s'] / r['base_s']:>6.2f}  "
              f"{r['mp_cpu_s'] / r['base_cpu_s']:>9.2f}  "
              f"{r['mp_rss_mib']:>10.1f}  {r['base_rss_mib']:>12.1f}")
    print()
    for r in rows:
        same = "identical" if r["identical"] else "NOT IDENTICAL"
        print(f"N={r['n']}: {r['k8s_objects']} Kubernetes objects, baseline registrations {same} to modelplane's; "
              f"runs modelplane {', '.join(f'{s:.3f}' for s in r['mp_runs'])} s, "
              f"baseline {', '.join(f'{s:.3f}' for s in r['base_runs'])} s; "
              f"median time in the garbage collector: modelplane {r['mp_gc_s']:.2f} s "
              f"({r['mp_gc_full']:g} full collections), baseline {r['base_gc_s']:.2f} s "
              f"({r['base_gc_full']:g} full collections)")


if __name__ == "__main__":
    main()
