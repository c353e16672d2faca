"""``modelplane diff``: what a change to a stack does to the estate, offline and without secrets.

The stack is rendered twice under the mock engine — at a base git revision, with
that revision's own program, and in the working tree — and the two sets of
registered resources are compared. Each changed resource gets a verdict a
reviewer can act on: a rolling update of an API's pods (with its surge), a
scale change, an in-place update, or a replacement and why. Capacity and the
hourly cost before and after, and a mermaid picture of the estate, follow.

Which input changes replace a resource is what the providers' schemas say for
the types an estate registers (:data:`REPLACED_BY`); the e2e tier holds the
Kubernetes verdicts to what the real engine's preview does.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import cost as costs
from .config import ConfigError, EstateConfig, gpu_demand, parse_estate
from .config.loading import load_stack_file

__all__ = ["Change", "DiffError", "EstateDiff", "REPLACED_BY", "Side", "compare", "diff_stack", "format_markdown", "rendered_at"]

REPLACED_BY: dict[str, tuple[str, ...]] = {
    # EKS cannot change these of a managed node group (the underlying aws:eks/nodeGroup's ForceNew inputs).
    "eks:index:ManagedNodeGroup": ("instanceTypes", "capacityType", "amiType", "diskSize", "subnetIds", "nodeRole",
                                   "nodeRoleArn", "nodeGroupName", "cluster", "remoteAccess"),
    "eks:index:Cluster": ("name", "vpcId", "serviceRole", "encryptionConfigKeyArn"),
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "vpcId"),
    "aws:ec2/natGateway:NatGateway": ("subnetId", "allocationId"),
    "aws:ec2/eip:Eip": ("domain",),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "role"),
    "aws:sqs/queue:Queue": ("name", "fifoQueue"),
    "aws:acm/certificate:Certificate": ("domainName", "subjectAlternativeNames", "validationMethod", "keyAlgorithm"),
    "aws:route53/record:Record": ("name", "type", "zoneId"),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion"),
    "kubernetes:helm.sh/v3:Release": ("name", "namespace"),
    # Immutable fields of the Kubernetes objects: the provider deletes and recreates the object.
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:core/v1:Service": ("spec.clusterIP",),
    "kubernetes:core/v1:ConfigMap": ("data", "binaryData"),  # when immutable: true, as modelplane's are
}
"""Per resource type, the inputs (dotted prefixes) whose change makes Pulumi replace the resource."""

KUBERNETES_IDENTITY = ("metadata.name", "metadata.namespace")
"""Every Kubernetes object is replaced when its name or namespace changes."""

NODES_REPLACED_BY = {
    # Karpenter replaces the nodes that no longer match their NodePool's template or EC2NodeClass (drift).
    "kubernetes:karpenter.sh/v1:NodePool": ("spec.template",),
    "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": ("spec",),
    # EKS rolls a managed group's nodes onto a new launch template version.
    "eks:index:ManagedNodeGroup": ("launchTemplate",),
}
"""Per type, the inputs whose change updates the resource in place but replaces the nodes it made."""

SCALE_ONLY = {
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": ("spec.minReplicas", "spec.maxReplicas", "spec.behavior",
                                                          "spec.metrics"),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": ("spec",),
    "eks:index:ManagedNodeGroup": ("scalingConfig",),
    "kubernetes:apps/v1:Deployment": ("spec.replicas",),
    "kubernetes:karpenter.sh/v1:NodePool": ("spec.limits",),
}
"""Per type, the inputs whose change alone is a scale change (autoscaling bounds and behaviour, node counts)."""


class DiffError(Exception):
    """A side could not be rendered (an unknown revision, a stack its program refuses); the message says which."""


@dataclass(frozen=True)
class Change:
    """One resource whose registration differs between the base and the working tree."""

    verdict: str
    """``create``, ``delete``, ``rolling update``, ``scale change``, ``in-place update``, ``node replacement``
    (the resource updates in place and the nodes it made are replaced) or ``replacement``."""
    type: str
    name: str
    api: str | None
    """The model API the resource belongs to, or None for the cluster's own resources."""
    details: tuple[str, ...] = ()
    """What changed (``image a -> b``) and, for a replacement, why."""
    urn: str = ""
    """The resource's URN."""


@dataclass(frozen=True)
class Side:
    """One rendering of the stack: its resources by URN and its validated config."""

    resources: dict[str, dict[str, Any]]
    estate: EstateConfig | None
    """None when the stack file does not exist on this side, or the working tree's validator refuses it."""
    exists: bool = True
    """The stack file exists on this side."""


@dataclass
class EstateDiff:
    """Everything ``modelplane diff`` reports."""

    stack: str
    base: str
    before: Side
    after: Side
    changes: list[Change] = field(default_factory=list)

    def apis(self, side: Side) -> set[str]:
        return {r["name"] for r in side.resources.values() if r["type"] == "modelplane:index:ModelApi"}

    @property
    def replacements(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "replacement"]


# --------------------------------------------------------------------------- rendering both sides

def _git(project: Path, *args: str, binary: bool = False) -> Any:
    done = subprocess.run(["git", "-C", str(project), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise DiffError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout if binary else done.stdout.decode()


def rendered_at(project: Path, stack: str, rev: str | None, workdir: Path) -> Side:
    """The stack rendered by the program of git revision ``rev`` (None: the working tree) in a fresh process."""
    if rev is None:
        root, sources = project, project / "components"
    else:
        top = Path(_git(project, "rev-parse", "--show-toplevel").strip())
        inside = project.resolve().relative_to(top.resolve())
        archive = _git(project, "archive", "--format=tar", rev, "--", ".", binary=True)
        tree = workdir / "base"
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        root = tree / inside
        sources = root / "components"
    stack_file = root / "stacks" / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        return Side({}, None, exists=False)
    try:
        # Capacity and cost of both sides come from the working tree's rules and prices.
        estate: EstateConfig | None = parse_estate(load_stack_file(stack_file), f"stacks/Pulumi.{stack}.yaml")
    except ConfigError:
        if rev is None:
            raise
        estate = None
    # The revision's own package: `modelplane` imported from its components/.
    site = workdir / f"site-{rev or 'work'}"
    (site).mkdir(parents=True, exist_ok=True)
    (site / "modelplane").symlink_to(sources.resolve(), target_is_directory=True)
    out = workdir / f"out-{rev or 'work'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    done = subprocess.run([sys.executable, "-m", "modelplane.cli", "--project", str(root), "render", "--stack", stack,
                           "--out", str(out)], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        where = "the working tree" if rev is None else f"revision {rev}"
        raise DiffError(f"stacks/Pulumi.{stack}.yaml does not render at {where}:\n{done.stderr.strip()[-4000:]}")
    rendered = json.loads((out / "resources.json").read_text())
    return Side({r["urn"]: r for r in rendered["resources"]}, estate)


def diff_stack(project: Path, stack: str, base: str) -> EstateDiff:
    """Render ``stack`` at ``base`` and in the working tree and compare the two."""
    with tempfile.TemporaryDirectory(prefix="modelplane-diff-") as tmp:
        before = rendered_at(project, stack, base, Path(tmp))
        after = rendered_at(project, stack, None, Path(tmp))
    if not after.exists:
        raise DiffError(f"stacks/Pulumi.{stack}.yaml does not exist in the working tree")
    return compare(stack, base, before, after)


# --------------------------------------------------------------------------- comparing

def compare(stack: str, base: str, before: Side, after: Side) -> EstateDiff:
    """The changes between two renderings of one stack."""
    diff = EstateDiff(stack, base, before, after)
    for urn in sorted(set(before.resources) | set(after.resources), key=lambda u: _order(before, after, u)):
        old, new = before.resources.get(urn), after.resources.get(urn)
        resource = new or old
        assert resource is not None
        if not _judged(resource):
            continue
        api = _api_of(after if new else before, urn)
        if old is None:
            diff.changes.append(Change("create", resource["type"], resource["name"], api, urn=urn))
        elif new is None:
            diff.changes.append(Change("delete", resource["type"], resource["name"], api, urn=urn))
        elif old["inputs"] != new["inputs"]:
            change = _classify(resource["type"], resource["name"], api, old["inputs"], new["inputs"])
            diff.changes.append(replace(change, urn=urn))
    return diff


def _order(before: Side, after: Side, urn: str) -> tuple[str, str, str]:
    resource = after.resources.get(urn) or before.resources[urn]
    api = _api_of(after if urn in after.resources else before, urn) or ""
    return api, resource["type"], resource["name"]


def _judged(resource: dict[str, Any]) -> bool:
    """Custom resources and the providers' components (pulumi-eks); modelplane's own components only group them."""
    return not resource["type"].startswith(("modelplane:", "pulumi:providers:"))


def _api_of(side: Side, urn: str) -> str | None:
    seen = set()
    while urn and urn not in seen:
        seen.add(urn)
        resource = side.resources.get(urn)
        if resource is None:
            return None
        if resource["type"] == "modelplane:index:ModelApi":
            return resource["name"]
        urn = resource["parent"]
    return None


def changed_paths(old: Any, new: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Dotted paths where two input trees differ (list items of named dicts by name: ``containers[model]``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from changed_paths(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{prefix}.{key}" if prefix else key)
    elif isinstance(old, list) and isinstance(new, list) and _named(old) and _named(new):
        olds, news = {i["name"]: i for i in old}, {i["name"]: i for i in new}
        for key in sorted(set(olds) | set(news)):
            yield from changed_paths(olds.get(key, _ABSENT), news.get(key, _ABSENT), f"{prefix}[{key}]")
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new)):
            yield from changed_paths(a, b, f"{prefix}[{index}]")
    elif old != new:
        yield prefix, old, new


class _Absent:
    def __repr__(self) -> str:
        return "(none)"


_ABSENT = _Absent()


def _named(items: list[Any]) -> bool:
    names = [i.get("name") for i in items if isinstance(i, dict)]
    return bool(items) and len(names) == len(items) and None not in names and len(set(names)) == len(names)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


def _classify(type_: str, name: str, api: str | None, old: dict[str, Any], new: dict[str, Any]) -> Change:
    paths = list(changed_paths(old, new))
    shown = tuple(_shown(p, a, b) for p, a, b in paths[:4]) + ((f"and {len(paths) - 4} more",) if len(paths) > 4 else ())
    replacing = REPLACED_BY.get(type_, ()) + (KUBERNETES_IDENTITY if type_.startswith("kubernetes:") else ())
    if type_ == "kubernetes:core/v1:ConfigMap" and not new.get("immutable"):
        replacing = KUBERNETES_IDENTITY
    forcing = [p for p, _, _ in paths if _under(p, replacing)]
    if forcing and type_ == "kubernetes:core/v1:ConfigMap" and new.get("immutable"):
        return Change("replacement", type_, name, api, shown + (
            "content-named and immutable: the new ConfigMap is created beside the old one, which goes after the "
            "pods that mount it have rolled (expected, no downtime)",))
    if forcing:
        why = (f"{', '.join(sorted({_top(p, replacing) for p in forcing}))} cannot change in place: Pulumi replaces "
               f"the {_short(type_)}" + (_REPLACEMENT_NOTES.get(type_, "")))
        return Change("replacement", type_, name, api, shown + (why,))
    if all(_under(p, SCALE_ONLY.get(type_, ())) for p, _, _ in paths):
        return Change("scale change", type_, name, api, shown)
    if type_ == "kubernetes:apps/v1:Deployment" and any(_under(p, ("spec.template",)) for p, _, _ in paths):
        rolling = new.get("spec", {}).get("strategy", {}).get("rollingUpdate", {})
        surge = f"maxSurge {rolling.get('maxSurge', '25%')}, maxUnavailable {rolling.get('maxUnavailable', '25%')}"
        return Change("rolling update", type_, name, api, shown + (f"pods roll with {surge}",))
    if any(_under(p, NODES_REPLACED_BY.get(type_, ())) for p, _, _ in paths):
        how = ("EKS rolls the group's nodes onto the new launch template version, draining each"
               if type_.startswith("eks:") else
               "Karpenter replaces the pool's nodes that no longer match (drift), draining each within the "
               "pool's disruption budgets")
        return Change("node replacement", type_, name, api, shown + (how,))
    return Change("in-place update", type_, name, api, shown)


_REPLACEMENT_NOTES = {
    "eks:index:ManagedNodeGroup": " (a new group first, then the old one drains and goes: its nodes are replaced)",
    "eks:index:Cluster": " (a new cluster: everything in it is recreated)",
    "kubernetes:apps/v1:Deployment": " (its pods are deleted before the new ones start: downtime)",
}


def _top(path: str, prefixes: tuple[str, ...]) -> str:
    return next(p for p in prefixes if _under(path, (p,)))


def _shown(path: str, old: Any, new: Any) -> str:
    def value(v: Any) -> str:
        if isinstance(v, str) and "/" in v and ":" in v.rsplit("/", 1)[-1] + "@":
            # An image: its repository's last part, the tag and the digest's first 12 hex digits.
            name, _, digest = v.rsplit("/", 1)[-1].partition("@sha256:")
            v = name + (f"@sha256:{digest[:12]}…" if digest else "")
        text = repr(v) if v is _ABSENT else json.dumps(v, sort_keys=True, ensure_ascii=False)
        return text if len(text) <= 72 else text[:34] + "…" + text[-34:]
    return f"`{path}`: {value(old)} → {value(new)}"


def _short(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


# --------------------------------------------------------------------------- the report

_VERDICT_ORDER = ("replacement", "node replacement", "delete", "create", "rolling update", "in-place update",
                  "scale change")


def format_markdown(diff: EstateDiff) -> str:
    """The report as GitHub renders it in a pull-request comment."""
    before_apis, after_apis = diff.apis(diff.before), diff.apis(diff.after)
    added, removed = sorted(after_apis - before_apis), sorted(before_apis - after_apis)
    changed = sorted({c.api for c in diff.changes if c.api and c.api in before_apis & after_apis})
    lines = [f"## modelplane diff: stack `{diff.stack}`, `{diff.base}` → working tree", ""]
    if not diff.changes:
        lines += ["No change: the stack renders the same resources with the same inputs.", ""]
    replacements = diff.replacements
    nodes = [c for c in diff.changes if c.verdict == "node replacement"]
    lines.append(f"**APIs**: {_names(added)} added, {_names(removed)} removed, {_names(changed)} changed. "
                 + (f"**{len(replacements)} replacement(s)**." if replacements else "No replacement.")
                 + (f" **Nodes replaced** in {', '.join(sorted(c.name for c in nodes))}." if nodes else ""))
    lines.append("")
    for api in added + removed + changed:
        verdicts = sorted({c.verdict for c in diff.changes if c.api == api}, key=_VERDICT_ORDER.index)
        what = "added" if api in added else "removed" if api in removed else ", ".join(verdicts)
        lines.append(f"- `{api}`: {what}")
    if added or removed or changed:
        lines.append("")
    if diff.changes:
        lines += ["| verdict | resource | API | what changed |", "|---|---|---|---|"]
        for change in sorted(diff.changes, key=lambda c: (_VERDICT_ORDER.index(c.verdict), c.api or "", c.type,
                                                           c.name)):
            detail = "<br>".join(_cell(d) for d in change.details) or "-"
            lines.append(f"| {change.verdict} | {_short(change.type)} `{change.name}` | {change.api or '-'} | "
                         f"{detail} |")
        lines.append("")
    lines += _capacity(diff) + _cost(diff) + _mermaid(diff)
    return "\n".join(lines).rstrip() + "\n"


def _names(names: list[str]) -> str:
    return str(len(names))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _capacity(diff: EstateDiff) -> list[str]:
    groups = sorted(set(_groups(diff.before)) | set(_groups(diff.after)))
    if not groups:
        return []
    lines = ["### Capacity", "", "| node group | nodes (at rest-max) | GPUs at max | GPUs the APIs use at peak+surge |",
             "|---|---|---|---|"]
    for group in groups:
        old, new = _groups(diff.before).get(group), _groups(diff.after).get(group)
        cells = [_arrow(old and o, new and n) for o, n in zip(old or ("",) * 3, new or ("",) * 3)]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines + [""]


def _groups(side: Side) -> dict[str, tuple[str, str, str]]:
    estate = side.estate
    if estate is None:
        return {}
    rows = {}
    counts = costs.node_counts(estate)
    for name, group in estate.node_groups.items():
        demand = gpu_demand(name, group, estate.apis)
        per_node = estate.gpus_per_node(name)
        low, high = counts[name]
        rows[name] = (f"{low}-{high}", str(high * per_node) if group.gpu else "-",
                      str(demand.steady + demand.surge) if demand else "-")
    return rows


def _arrow(old: str | None, new: str | None) -> str:
    if old is None or old == "":
        return f"(new) {new}"
    if new is None or new == "":
        return f"{old} (gone)"
    return old if old == new else f"{old} → **{new}**"


def _cost(diff: EstateDiff) -> list[str]:
    assert diff.after.estate is not None
    after = costs.estimate(diff.after.estate)
    before = costs.estimate(diff.before.estate) if diff.before.estate else None
    if before is None and diff.before.exists:
        return ["### Hourly cost", "", f"The base's stack file does not validate under the working tree's rules: "
                f"{costs.usd(after.total(0))}/h at min, {costs.usd(after.total(1))}/h at max after.", ""]
    lines = ["### Hourly cost", "", "| | before | after | change |", "|---|---|---|---|"]
    for at, label in ((0, "at rest (APIs at minReplicas)"), (1, "every group at maxSize")):
        old = before.total(at) if before else 0.0
        new = after.total(at)
        delta = new - old
        sign = "+" if delta > 0.00005 else "-" if delta < -0.00005 else "±"
        lines.append(f"| {label} | {costs.usd(old)}/h | {costs.usd(new)}/h | {sign}{costs.usd(abs(delta))}/h |")
    return lines + ["", f"List prices of modelplane's bundled table (`modelplane cost --stack {diff.stack}` "
                        "itemises them); spot groups at the estimate.", ""]


def _mermaid(diff: EstateDiff) -> list[str]:
    estate = diff.after.estate
    if estate is None:
        return []
    touched = {c.api for c in diff.changes if c.api}
    added = diff.apis(diff.after) - diff.apis(diff.before)
    lines = ["### Estate", "", "```mermaid", "flowchart LR",
             f'  cluster["{estate.cluster.name}<br>Kubernetes {estate.cluster.kubernetes_version}"]']
    counts = costs.node_counts(estate)
    for name, group in estate.node_groups.items():
        gpu = f", {estate.gpus_per_node(name)} GPU/node" if group.gpu else ""
        low, high = counts[name]  # as the capacity table counts them (a Karpenter pool has no minSize)
        lines.append(f'  cluster --> g_{_id(name)}["{name}<br>{group.instance_types[0]} x{low}-{high}{gpu}"]')
    for name, api in estate.apis.items():
        lines.append(f'  g_{_id(api.node_group)} --> a_{_id(name)}(["{name}"])')
    for name in sorted(touched & set(estate.apis)):
        lines.append(f"  class a_{_id(name)} {'added' if name in added else 'changed'}")
    lines += ["  classDef changed fill:#fff3b0,stroke:#b08800", "  classDef added fill:#d6f5d6,stroke:#2e7d32", "```"]
    return lines


def _id(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
