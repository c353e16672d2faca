"""The ``modelplane`` command: offline plan, render and validation of stacks.

``plan`` and ``render`` run the real Pulumi program in ``infra/`` under the
Pulumi SDK's mock engine: no cloud account, no credentials, no Pulumi CLI.
A config error exits with code 2, prints every problem on stderr, and
registers and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import __version__, pricing
from .addons import chart_source
from .charts import ADDON_CHARTS
from .cost import estimate, format_cost, usd
from .config import (
    ADDONS,
    FALLBACK_SUFFIX,
    ApiConfig,
    ConfigError,
    EstateConfig,
    api_gpus,
    canary_replicas,
    duration_seconds,
    effective_update_strategy,
    gpu_demand,
    scaling_metric,
    scaling_target,
    uses_prometheus,
    version_name,
)
from .offline import Plan, find_project, kubernetes_objects, load_config, normalize, run_stack, stack_names

__all__ = ["main"]

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelplane", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"modelplane {__version__}")
    parser.add_argument("--project", type=Path, default=None,
                        help="project directory (holds Pulumi.yaml); default: the current directory or a parent")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="run the program offline and print the estate")
    plan.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    render = commands.add_parser("render", help="write every Kubernetes object and resources.json")
    render.add_argument("--stack", required=True)
    render.add_argument("--out", type=Path, required=True, help="output directory")
    diff = commands.add_parser("diff", help="what the working tree changes in a stack against a git revision "
                                            "(Markdown)")
    diff.add_argument("--stack", required=True)
    diff.add_argument("--base", default="HEAD", help="git revision to compare with (default: HEAD)")
    cost = commands.add_parser("cost", help="print the estate's hourly cost from the bundled price table")
    cost.add_argument("--stack", required=True)
    validate = commands.add_parser("validate", help="validate one stack file, or all of them")
    validate.add_argument("--stack", default=None)
    commands.add_parser("schema", help="print the JSON Schema of a stack file")
    reference = commands.add_parser("reference", help="print the config reference (Markdown)")
    reference.add_argument("--write", type=Path, default=None,
                           help="replace the reference between the markers in this file (e.g. README.md)")
    args = parser.parse_args(argv)

    try:
        project = find_project(args.project)
    except FileNotFoundError as exc:
        if args.command in ("schema", "reference"):
            project = Path.cwd()
        else:
            print(f"modelplane: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        if args.command == "plan":
            plan = run_stack(args.stack, project)
            guardrails = policy_report(project, plan)
            print(format_plan(plan, guardrails))
            if guardrails.mandatory:
                return EXIT_POLICY
        elif args.command == "render":
            return _render(project, args.stack, args.out)
        elif args.command == "diff":
            from .diff import DiffError, diff_stack, format_markdown
            try:
                print(format_markdown(diff_stack(project, args.stack, args.base)), end="")
            except DiffError as exc:
                print(f"modelplane diff: {exc}", file=sys.stderr)
                return EXIT_CONFIG
        elif args.command == "cost":
            _, estate = load_config(project, args.stack)
            print(format_cost(args.stack, estate.source, estimate(estate)))
        elif args.command == "validate":
            return _validate(project, args.stack)
        elif args.command == "schema":
            from .schema import json_schema
            print(json.dumps(json_schema(), indent=2))
        elif args.command == "reference":
            from .reference import config_reference, write_reference
            if args.write is not None:
                write_reference(args.write)
                print(f"updated the config reference in {args.write}")
            else:
                print(config_reference())
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        # The reader went away (`modelplane plan | head`): stop quietly, as a shell tool does, and keep
        # Python from reporting the flush of the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    return 0


EXIT_PIPE = 141
"""Exit code after a closed pipe: what a shell reports for a tool that SIGPIPE ended."""

EXIT_POLICY = 3
"""Exit code of a plan that breaks a mandatory rule of the policy pack (``pulumi preview`` would fail)."""


# --------------------------------------------------------------------------- the policy pack, offline

@dataclass(frozen=True)
class PolicyReport:
    """What the project's policy pack (``policies/``) says about an offline run; ``skipped`` says why it did not run."""

    diagnostics: list[Any] = field(default_factory=list)
    rules: int = 0
    skipped: str | None = None

    @property
    def mandatory(self) -> list[Any]:
        return [d for d in self.diagnostics if d.level == "mandatory"]


def policy_report(project: Path, plan: Plan) -> PolicyReport:
    """Every resource of ``plan`` through the project's CrossGuard pack, as ``pulumi preview --policy-pack`` would."""
    pack_dir = project / "policies"
    if not (pack_dir / "PulumiPolicy.yaml").is_file():
        return PolicyReport(skipped=f"no policy pack in {pack_dir}")
    if str(pack_dir) not in sys.path:
        sys.path.insert(0, str(pack_dir))
    try:
        from modelplane_policies import RULES
        from modelplane_policies.offline import evaluate
    except ImportError as exc:
        return PolicyReport(skipped=f"the pack needs {exc.name or exc} (pip install 'modelplane[policy]')")
    raw, _ = load_config(project, plan.stack)
    return PolicyReport(evaluate(plan.stack, raw, plan.resources), len(RULES))


# --------------------------------------------------------------------------- validate

def _validate(project: Path, stack: str | None) -> int:
    stacks = [stack] if stack else stack_names(project)
    failed = 0
    for name in stacks:
        try:
            _, estate = load_config(project, name)
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
            failed += 1
            continue
        print(f"ok  {estate.source}: cluster {estate.cluster.name}, {len(estate.node_groups)} node group(s), "
              f"{len(estate.apis)} API(s)")
        for warning in estate.warnings:
            print(f"    warning: {warning}")
    return EXIT_CONFIG if failed else 0


# --------------------------------------------------------------------------- render

def _render(project: Path, stack: str, out: Path) -> int:
    # Validate first: a broken stack writes nothing at all.
    load_config(project, stack)
    plan = run_stack(stack, project)
    objects = list(kubernetes_objects(plan))
    k8s_dir = out / "k8s"
    k8s_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for obj in objects:
        meta = obj["metadata"]
        folder = k8s_dir / meta.get("namespace", "_cluster")
        folder.mkdir(exist_ok=True)
        path = folder / f"{obj['kind'].lower()}-{meta['name']}.yaml"
        path.write_text(yaml.safe_dump(_sorted(obj), sort_keys=False), encoding="utf-8")
        written.append(str(path.relative_to(k8s_dir)))
    _remove_stale(k8s_dir, written)
    resources = {
        "stack": plan.stack,
        "source": plan.config.source,
        "resources": [r.as_json() for r in plan.resources],
        "outputs": {k: ("[secret]" if k in plan.secret_outputs else normalize(v)) for k, v in plan.outputs.items()},
    }
    (out / "resources.json").write_text(json.dumps(resources, indent=2, sort_keys=True, default=str) + "\n",
                                        encoding="utf-8")
    print(f"wrote {len(objects)} Kubernetes objects to {k8s_dir} and {len(plan.resources)} resources "
          f"to {out / 'resources.json'}")
    return 0


RENDERED = ".modelplane-rendered"
"""The list, in ``DIR/k8s``, of the files the last ``render`` wrote there: only those may be removed."""


def _remove_stale(k8s_dir: Path, written: list[str]) -> None:
    """Remove what an earlier render wrote and this one did not (an object that is gone); nothing else."""
    listing = k8s_dir / RENDERED
    before = listing.read_text(encoding="utf-8").splitlines() if listing.is_file() else []
    for stale in sorted(set(before) - set(written)):
        path = k8s_dir / stale
        if path.is_file() and path.resolve().is_relative_to(k8s_dir.resolve()):
            path.unlink()
            if path.parent != k8s_dir and not any(path.parent.iterdir()):
                path.parent.rmdir()
    listing.write_text("".join(f"{name}\n" for name in sorted(written)), encoding="utf-8")


def _sorted(obj: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first, then everything in key order (stable files, readable diffs)."""
    def deep(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: deep(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [deep(v) for v in value]
        return value
    head = ("apiVersion", "kind", "metadata")
    return {**{k: deep(obj[k]) for k in head}, **{k: deep(obj[k]) for k in sorted(obj) if k not in head}}


# --------------------------------------------------------------------------- plan

def format_plan(plan: Plan, guardrails: PolicyReport | None = None) -> str:
    """The estate as a person reads it: resources by type, the component tree, the API table, the pack's verdict."""
    estate = plan.config
    where = f"region {estate.region}" if estate.existing is None else _existing_summary(estate)
    lines = [
        f"modelplane plan: stack {plan.stack} ({estate.source}), cluster {estate.cluster.name}, "
        f"{where}, Kubernetes {estate.cluster.kubernetes_version}",
        "offline run of infra/ under the Pulumi mock engine: no cloud calls were made",
        "",
        f"Resources by type ({len(plan.resources)})",
    ]
    counts = Counter(r.type for r in plan.resources)
    width = max(map(len, counts), default=0)
    lines += [f"  {t.ljust(width)}  {n:>4}" for t, n in sorted(counts.items())]
    lines += ["", "Component tree"]
    lines += _tree(plan)
    lines += ["", "Cluster add-ons"]
    lines += _table(["add-on", "here", "chart"], [_addon_row(estate, addon) for addon in ADDONS]
                    + ([_karpenter_row(estate)] if estate.karpenter else []))
    lines += ["", "Node groups" if estate.existing is None else "Node groups (pools of the existing cluster)"]
    lines[-1] += _engine_note(estate)
    lines += _table(["group", "instance types", "capacity", "nodes", "one node, for API pods", "GPUs at peak+surge",
                     "nodes needed at min / at max"], [
        [name, ", ".join(g.instance_types), g.capacity_type, f"{0 if estate.karpenter else g.min_size}-{g.max_size}",
         _room(name, estate), _demand(name, estate), _needed(name, estate)]
        for name, g in estate.node_groups.items()])
    lines += ["", "Model APIs"]
    lines += _table(["api", "image", "replicas", "GPUs", "scales on", "behaviour", "proxy limits",
                     "surge/unavail", "node group"],
                    [row for name in estate.apis for row in (_api_row(estate, name), *_version_rows(estate, name))])
    exposed = [name for name, api in estate.apis.items() if api.expose is not None]
    if exposed:
        balancers = estimate(estate).load_balancers
        lines += ["", f"Traffic (one shared load balancer per visibility: {len(balancers)}, "
                      f"{usd(sum(b.hourly(0) or 0 for b in balancers))}/h plus traffic)"]
        lines += _table(["api", "url", "visibility", "certificate", "allowed from", "split"],
                        [_traffic_row(estate, plan, name) for name in exposed])
    lines += ["", *_cost_lines(plan)]
    cold = [note for name in estate.apis if (note := cold_start_note(estate, name))]
    if cold:
        lines += ["", "Scale to zero"] + [f"  - {note}" for note in cold]
    lines += ["", "Outputs"]
    for key, value in plan.outputs.items():
        shown = "[secret]" if key in plan.secret_outputs else json.dumps(normalize(value))
        if key == "platform" and isinstance(value, dict) and key not in plan.secret_outputs:
            # Long and for machines: what it is for, not every field.
            shown = (f"cluster {value['cluster']['name']}, node groups {', '.join(value['nodeGroups']) or 'none'} "
                     "(what other stacks read through modelplane.PlatformReference)")
        lines.append(f"  {key}: {shown}")
    if guardrails is not None:
        lines += ["", *_guardrails_lines(guardrails)]
    if estate.warnings:
        lines += ["", "Warnings"] + [f"  - {w}" for w in estate.warnings]
    return "\n".join(lines)


def _cost_lines(plan: Plan) -> list[str]:
    cost = estimate(plan.config)
    low, high = cost.total(0), cost.total(1)
    lines = [f"Hourly cost ({pricing.PRICE_REGION} list prices of {pricing.AS_OF}; `modelplane cost --stack "
             f"{plan.stack}` itemises it)",
             f"  {usd(low)}/h at rest (the APIs at minReplicas), {usd(high)}/h with every group at maxSize (spot at the "
             "estimate)"]
    balancers = cost.load_balancers
    if balancers:
        lines.append(f"  load balancers: {len(balancers)}, {usd(sum(b.hourly(0) or 0 for b in balancers))}/h "
                     "in the total, plus their capacity units (traffic)")
    # The notes that change the figures most; `modelplane cost` gives them all.
    lines += [f"  - {note}" for note in cost.notes if note.startswith(("the figures", "Kubernetes", "the cluster"))]
    lines += [f"  - {line.item}: no bundled price for {line.detail.split(',')[0]}, left out" for line in cost.unpriced]
    return lines


def _guardrails_lines(report: PolicyReport) -> list[str]:
    if report.skipped is not None:
        return [f"Guardrails: the policy pack did not run ({report.skipped})"]
    shown = [d for d in report.diagnostics if d.level != "disabled"]
    mandatory = len(report.mandatory)
    lines = [f"Guardrails: policy pack, {report.rules} rules: {mandatory} mandatory and "
             f"{len(shown) - mandatory} advisory violation(s)" + (" (pulumi preview --policy-pack policies "
                                                                 "would fail)" if mandatory else "")]
    for d in sorted(shown, key=lambda d: (d.level != "mandatory", d.policy, d.resource)):
        # pulumi_policy puts the rule's description first; the violation's own sentence follows.
        message = d.message.split("\n", 1)[-1].replace("\n", " ")
        lines.append(f"  - {d.level} {d.policy} on {d.resource or 'the stack'}: {message}")
    return lines


def _existing_summary(estate: EstateConfig) -> str:
    existing = estate.existing
    assert existing is not None
    if existing.kubeconfig_path is not None:
        reached = f"kubeconfig {existing.kubeconfig_path}"
    elif existing.stack_reference is not None:
        reached = f"kubeconfig from stack {existing.stack_reference.stack} output {existing.stack_reference.output}"
    else:
        reached = "kubeconfig from a secret"
    context = f" context {existing.context}" if existing.context else ""
    region = f", region {estate.region}" if estate.region else ""
    return f"an existing cluster ({reached}{context}){region}"


def _addon_row(estate: EstateConfig, addon: str) -> list[str]:
    """One add-on: whether the estate needs it, and whether it installs it (from which chart) or finds it there."""
    needed = {
        "keda": estate.needs_keda,
        "prometheus": any(uses_prometheus(a) for a in estate.apis.values()),
        "nvidiaDevicePlugin": any(g.gpu for g in estate.node_groups.values()),
        "clusterAutoscaler": True,
        "loadBalancerController": estate.needs_load_balancer_controller,
    }[addon]
    mode = estate.addon(addon)
    if not needed:
        return [addon, "not needed", "-"]
    if mode == "install":
        reference, version, repository = chart_source(estate.cluster, ADDON_CHARTS[addon])
        source = repository["repo"] if repository else reference.rsplit("/", 1)[0]
        return [addon, "installed by modelplane", f"{ADDON_CHARTS[addon]} {version} from {source}"]
    here = {"present": "present, only used", "none": "none"}[mode]
    if addon == "prometheus" and estate.cluster.prometheus.url:
        kind = "present (APIs get PodMonitors)" if mode == "present" else "outside (scrapes pod annotations)"
        here = f"{kind}; KEDA queries {estate.cluster.prometheus.url}"
    return [addon, here, "-"]


def _karpenter_row(estate: EstateConfig) -> list[str]:
    """The Karpenter controller: the capacity engine of a ``karpenter`` cluster, with its interruption queue."""
    reference, version, repository = chart_source(estate.cluster, "karpenter")
    source = repository["repo"] if repository else reference.rsplit("/", 1)[0]
    return ["karpenter", "installed by modelplane", f"karpenter {version} from {source} "
                                                     "(+ karpenter-crd; interruption queue + 4 EventBridge rules)"]


def _engine_note(estate: EstateConfig) -> str:
    """What makes the nodes, after the node-groups title: Karpenter NodePools, or spot groups' on-demand fallbacks."""
    if estate.karpenter:
        return (" (Karpenter NodePools: nodes launched for pending pods up to max; spotWithFallback = spot and "
                "on-demand in one pool)")
    fallbacks = estate.spot_first_managed_groups
    if fallbacks:
        return (f" (managed node groups; {', '.join(f'{g}{FALLBACK_SUFFIX}' for g in fallbacks)}: on-demand "
                "fallback, grown by the autoscaler's priority expander only when spot cannot be had)")
    return ""


def _demand(group: str, estate: EstateConfig) -> str:
    demand = gpu_demand(group, estate.node_groups[group], estate.apis)
    if demand is None:
        return "-"
    return f"{demand.steady}+{demand.surge} of {demand.capacity}"


def _room(group: str, estate: EstateConfig) -> str:
    """What one node of the group offers the APIs' pods (after the kubelet reserve and DaemonSets), and its type."""
    shape = estate.node_shape(group)
    if shape is None:
        return "-"
    room = shape.room
    gpus = f"{room.gpus} GPU, " if room.gpus else ""
    several = len(set(estate.node_groups[group].instance_types)) > 1
    named = shape.name if shape.label or not several else f"{shape.name}, the smallest"
    return f"{gpus}{room.cpu / 1000:.2f} CPU, {room.mem / 1024:.1f}Gi, {room.pods} pods ({named})"


def _needed(group: str, estate: EstateConfig) -> str:
    """Nodes the group's APIs need, bin-packed: at minReplicas, and at maxReplicas plus the largest surge."""
    need = estate.node_need(group)
    if need is None:
        return "-"
    return f"{need.at_min} / {need.at_max}" + ("" if need.fits else f"  (short: maxSize {need.max_size})")


def _api_row(estate: EstateConfig, name: str) -> list[str]:
    api = estate.apis[name]
    scaling = api.autoscaling
    surge, unavailable = effective_update_strategy(api)
    behaviour = (f"up x{scaling.max_upscale_factor:g}/{duration_seconds(scaling.upscale_stabilization_period)}s, "
                 f"down x{scaling.max_downscale_factor:g}/{duration_seconds(scaling.downscale_stabilization_period)}s")
    image = _short_image(api.image)
    if api.sidecars:
        image += f" +{len(api.sidecars)} sidecar" + ("s" if len(api.sidecars) > 1 else "")
    limits = (f"{api.max_concurrency} at once + {api.max_queue_length} queued" if api.proxy.enabled else "off")
    return [name, image, f"{scaling.min_replicas}-{scaling.max_replicas}", str(api_gpus(api) or "-"),
            scaling_summary(api), behaviour, limits, f"{surge}/{unavailable}", api.node_group]


def _version_rows(estate: EstateConfig, name: str) -> list[list[str]]:
    """The API's canary or shadow, under the API's row: its Deployment's name, image, replicas and share of the
    requests (a canary's weight at the load balancer, the percent a shadow gets a copy of)."""
    api = estate.apis[name]
    row = _api_row(estate, name)
    if api.canary is not None:
        low, high = canary_replicas(api)
        return [[version_name(name, "canary"), _short_image(api.canary.image), f"{low}-{high}", row[3], row[4],
                 f"canary, weight {api.canary.weight}%", *row[6:]]]
    if api.shadow is not None:
        return [[version_name(name, "shadow"), _short_image(api.shadow.image), str(api.shadow.replicas), row[3],
                 "fixed replicas", f"shadow, {api.shadow.percent:g}% mirrored", *row[6:]]]
    return []


def _short_image(image: str) -> str:
    """The image's last path segment, a digest cut to its first 12 hex digits."""
    image = image.rsplit("/", 1)[-1]
    if "@sha256:" in image:
        image = image[:image.index("@sha256:") + 20] + "…"
    return image


def scaling_summary(api: ApiConfig) -> str:
    """What the API scales on, and through what, in a few words."""
    metric = scaling_metric(api)
    target = scaling_target(api)
    if metric in ("cpu", "memory"):
        return f"{metric} {target:g}% (HPA)"
    unit = {"inFlight": "in flight", "rps": "req/s", "queue": "msgs", "custom": "custom"}[metric]
    window = f", {api.autoscaling.window} avg" if metric in ("inFlight", "rps") else ""
    return f"{metric} {target:g} {unit}/replica{window} (KEDA)"


NODE_START = {True: "3-6 min for a GPU node to boot and load its driver", False: "1-2 min for a CPU node"}
"""Rough time for a managed node group to add a ready node, for cold-start notes."""


def cold_start_note(estate: EstateConfig, name: str) -> str | None:
    """What the first request after idle waits for, for an API that scales to zero; None otherwise."""
    api = estate.apis[name]
    scaling = api.autoscaling
    if scaling.min_replicas > 0:
        return None
    group = estate.node_groups[api.node_group]
    queued = scaling_metric(api) == "queue"
    waits = []
    if group.min_size == 0:
        waits.append(f"a node of {api.node_group!r} if none has room ({NODE_START[group.gpu]}; "
                     "the group scales from 0)")
    waits.append(f"pulling {api.image.rsplit('/', 1)[-1]} onto the node")
    if api.startup_probe is not None:
        budget = api.startup_probe.period_seconds * api.startup_probe.failure_threshold
        waits.append(f"the model load (startup probe allows up to {budget}s)")
    else:
        waits.append("the model load until the readiness probe passes")
    held = ("messages wait in the queue meanwhile, none is lost" if queued
            else "callers must wait or retry meanwhile: with no replica the Service refuses connections")
    idle = duration_seconds(scaling.downscale_stabilization_period)
    load = "its queue last held" if queued else "its query last read"
    return (f"{name}: drops to 0 replicas {idle}s after {load} more than {scaling.activation_threshold:g}; "
            f"the next {'message' if queued else 'request'} then waits for "
            + ", then ".join(waits) + f"; {held}")


def _traffic_row(estate: EstateConfig, plan: Plan, name: str) -> list[str]:
    api = estate.apis[name]
    expose = api.expose
    assert expose is not None
    url = (plan.outputs.get("externalUrls") or {}).get(name, "")
    certificate = expose.certificate
    shown = ("none (HTTP)" if certificate is None else certificate.arn.rsplit("/", 1)[-1][:8] + "… (ACM)"
             if certificate.arn else f"ACM, DNS-validated in {certificate.zone}")
    allowed = ", ".join(str(c) for c in expose.allow_from) if expose.allow_from is not None else (
        "anywhere" if expose.visibility == "public" else "the VPC")
    split = (f"canary {api.canary.weight}%" if api.canary is not None else
             f"shadow {api.shadow.percent:g}% mirrored" if api.shadow is not None else "-")
    return [name, url, expose.visibility, shown, allowed, split]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    def fmt(row: list[str]) -> str:
        return "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def _tree(plan: Plan) -> list[str]:
    children: dict[str, list[Any]] = {}
    for r in plan.resources:
        children.setdefault(r.parent, []).append(r)
    roots = [r for r in plan.resources if r.parent not in {x.urn for x in plan.resources}]
    lines: list[str] = []

    def walk(resource: Any, prefix: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└─ " if last else "├─ ")
        kids = children.get(resource.urn, [])
        label = f"{_short(resource.type)} {resource.name}"
        components = sorted((k for k in kids if not k.custom and k.type.startswith("modelplane:")),
                            key=lambda k: (_TREE_ORDER.get(_short(k.type), len(_TREE_ORDER)), k.name))
        leaves = [k for k in kids if k not in components]
        if leaves:
            label += "  [" + ", ".join(f"{n} {t}" if n > 1 else t for t, n in
                                       Counter(_short(k.type) for k in leaves).items()) + "]"
        lines.append("  " + prefix + branch + label)
        extension = "" if depth == 0 else ("   " if last else "│  ")
        for index, kid in enumerate(components):
            walk(kid, prefix + extension, index == len(components) - 1, depth + 1)

    for root in roots:
        walk(root, "", True, 0)
    return lines


_TREE_ORDER = {kind: rank for rank, kind in enumerate(
    ["ServingCluster", "ExistingCluster", "NodeGroup", "GpuNodeGroup", "ModelApi", "AutoscalingPolicy"])}
"""The component tree lists the cluster first, then node groups, then APIs (each by name)."""


def _short(type_: str) -> str:
    """``kubernetes:apps/v1:Deployment`` -> ``Deployment``; ``modelplane:index:ModelApi`` -> ``ModelApi``."""
    name = type_.rsplit(":", 1)[-1]
    return "EksCluster" if type_ == "eks:index:Cluster" else "K8sProvider" if type_.startswith("pulumi:providers") \
        else name


if __name__ == "__main__":
    sys.exit(main())
