"""Python policy packs under the real engine, through the toolchain's own language host.

``pulumi preview --policy-pack DIR`` starts a pack whose ``PulumiPolicy.yaml``
says ``runtime: python`` by asking the ``python`` language host to run it
(``toolchain/langhost``). A toy pack written here (one mandatory and one
advisory rule on ConfigMaps) judges a one-ConfigMap stack on the e2e control
plane: compliant, violating, advisory only, and made mandatory by a policy
pack config file. The pack also records what it was given (its interpreter,
environment, the engine's ConfigureStack call, the resources it saw), which
the tests pin down because a real pack depends on it: the engine delivers
the stack and its config in ConfigureStack, not in the environment.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from pulumi.automation.errors import CommandError

from . import harness
from .harness import Cluster, LiveStack, local_config, pointed_at

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PACK = "toy-guardrails"
OWNER = "configmap-has-owner"
DESCRIBED = "configmap-has-description"
DATA = "configmap-data-is-short"
READS_DATA = "modelplane.io/check-data"
"""The label that makes the DATA rule read the ConfigMap's data (whose provider entry is unknown in a preview)."""
STACK = "policy-host"
GUARDRAILS = {"owner": "mandatory", "description": "advisory", "maxReplicas": 3}
"""A structured config value, to see how the engine hands an object to the pack."""

# The pack's __main__.py. It records to seen.jsonl beside itself: what it ran with when loaded,
# the engine's ConfigureStack request (which pulumi_policy keeps only the tags of, hence the
# wrapper around its private servicer), and every resource it was asked about.
PACK_MAIN = '''
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pulumi_policy.policy
from pulumi_policy import (EnforcementLevel, PolicyPack, ReportViolation, ResourceValidationArgs,
                           ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy)
from pulumi_policy.proxy import UnknownValueError

SEEN = Path(__file__).resolve().parent / "seen.jsonl"
WATCHED = ("PULUMI_STACK", "PULUMI_PROJECT", "PULUMI_ORGANIZATION", "PULUMI_CONFIG",
           "PULUMI_CONFIG_SECRET_KEYS", "PULUMI_DRY_RUN")


def record(kind, **data):
    with SEEN.open("a") as out:
        out.write(json.dumps({"kind": kind, **data}, sort_keys=True, default=repr) + "\\n")


record("load", executable=sys.executable, cwd=os.getcwd(), argv=sys.argv,
       pulumi_env=sorted(k for k in os.environ if k.startswith("PULUMI_")),
       watched={k: os.environ.get(k) for k in WATCHED})

servicer = pulumi_policy.policy._PolicyAnalyzerServicer
configure_stack = servicer.ConfigureStack


def recording_configure_stack(self, request, context):
    record("configure_stack", stack=request.stack, project=request.project,
           organization=request.organization, dry_run=request.dry_run, config=dict(request.config),
           secret_keys=list(request.config_secret_keys), tags=dict(request.tags))
    return configure_stack(self, request, context)


servicer.ConfigureStack = recording_configure_stack


def shape(value, path=""):
    """(path, type name) of every leaf of resource properties; unknown values (preview) as 'unknown'."""
    if isinstance(value, Mapping):
        keys = list(value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        keys = range(len(value))
    else:
        return [(path, type(value).__name__)]
    out = []
    for key in keys:
        child_path = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
        try:
            child = value[key]
        except UnknownValueError:
            out.append((child_path, "unknown"))
            continue
        out += shape(child, child_path)
    return out


def seen(args: ResourceValidationArgs, report_violation: ReportViolation):
    record("resource", type=args.resource_type, urn=args.urn, name=args.name,
           parent=args.opts.parent, shape=shape(args.props))


def owner(args: ResourceValidationArgs, report_violation: ReportViolation):
    if args.resource_type != "kubernetes:core/v1:ConfigMap":
        return
    labels = args.props.get("metadata", {}).get("labels") or {}
    if "modelplane.io/owner" not in labels:
        report_violation(f"ConfigMap {args.name} has no modelplane.io/owner label")


def described(args: ResourceValidationArgs, report_violation: ReportViolation):
    if args.resource_type != "kubernetes:core/v1:ConfigMap":
        return
    annotations = args.props.get("metadata", {}).get("annotations") or {}
    if "modelplane.io/description" not in annotations:
        report_violation(f"ConfigMap {args.name} has no modelplane.io/description annotation")


def data_is_short(args: ResourceValidationArgs, report_violation: ReportViolation):
    if args.resource_type != "kubernetes:core/v1:ConfigMap":
        return
    if "%(reads_data)s" in (args.props.get("metadata", {}).get("labels") or {}):
        for key, value in args.props["data"].items():
            if len(value) > 100:
                report_violation(f"ConfigMap {args.name}: data.{key} is longer than 100 characters")


def stack(args: StackValidationArgs, report_violation: ReportViolation):
    record("stack", resources=[{"type": r.resource_type, "urn": r.urn,
                                "parent": r.parent.urn if r.parent else None} for r in args.resources])


PolicyPack(name="%(pack)s", enforcement_level=EnforcementLevel.MANDATORY, policies=[
    ResourceValidationPolicy(name="%(owner)s", description="ConfigMaps carry an owner label.",
                             validate=owner),
    ResourceValidationPolicy(name="%(described)s", description="ConfigMaps say what they are for.",
                             validate=described, enforcement_level=EnforcementLevel.ADVISORY),
    ResourceValidationPolicy(name="%(data)s", description="ConfigMap values are short.",
                             validate=data_is_short),
    ResourceValidationPolicy(name="record-resources", description="Records every resource it sees.",
                             validate=seen, enforcement_level=EnforcementLevel.ADVISORY),
    StackValidationPolicy(name="record-stack", description="Records the stack it sees.",
                          validate=stack, enforcement_level=EnforcementLevel.ADVISORY),
])
''' % {"pack": PACK, "owner": OWNER, "described": DESCRIBED, "data": DATA, "reads_data": READS_DATA}


@pytest.fixture(scope="module", autouse=True)
def own_language_host(engine: Path) -> None:
    """These tests prove the toolchain's host; Pulumi's own (with a user's pulumi) picks interpreters otherwise."""
    if engine != harness.E2E_HOME:
        pytest.skip("proves the toolchain's own pulumi-language-python (tests/e2e/toolchain/build.sh); "
                    "this run uses the pulumi on PATH")


def write_pack(directory: Path, runtime: dict[str, Any]) -> Path:
    """The toy pack in ``directory`` with ``runtime`` as its PulumiPolicy.yaml's runtime."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "PulumiPolicy.yaml").write_text(yaml.safe_dump(
        {"runtime": runtime, "name": PACK, "version": "0.1.0", "description": "The e2e tier's toy pack."}))
    (directory / "__main__.py").write_text(PACK_MAIN)
    return directory


@dataclass
class Pack:
    """A written pack and what it recorded during the last run."""

    path: Path

    def reset(self) -> None:
        (self.path / "seen.jsonl").unlink(missing_ok=True)

    def seen(self, kind: str) -> list[dict[str, Any]]:
        lines = (self.path / "seen.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["kind"] == kind]


@dataclass
class Metadata:
    """The labels and annotations the probe ConfigMap gets in the next run."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Probe:
    """The one-ConfigMap stack and the metadata its program gives the ConfigMap."""

    stack: LiveStack
    metadata: Metadata
    urn = f"urn:pulumi:{STACK}::modelplane::kubernetes:core/v1:ConfigMap::probe"


def configmap_program(metadata: Metadata, kubeconfig: Path, context: str | None) -> Callable[[], None]:
    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig=kubeconfig.read_text(),
                                **({"context": context} if context else {}))
        # The provider's ID is not known during a preview: the pack sees that value as unknown.
        k8s.core.v1.ConfigMap("probe", metadata={"namespace": "default", "labels": metadata.labels,
                                                 "annotations": metadata.annotations},
                              data={"purpose": "policy probe", "provider": provider.id},
                              opts=pulumi.ResourceOptions(provider=provider))

    return program


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    """The toy pack on the tier's interpreter, named as a virtualenv relative to the pack directory."""
    directory = tmp_path_factory.mktemp("toy-pack")
    # A relative runtime.options.virtualenv resolves against the pack directory: point one at the
    # tier's own environment (the one with pulumi-policy).
    (directory / "venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return Pack(write_pack(directory, {"name": "python", "options": {"virtualenv": "venv"}}))


@pytest.fixture(scope="module")
def probe(cluster: Cluster, workspace: harness.Workspace) -> Probe:
    """The one-ConfigMap stack (never deployed: the tests only preview it), its config a guardrails object."""
    metadata = Metadata()
    stack = workspace.stack(STACK, {"modelplane:guardrails": GUARDRAILS},
                            program=configmap_program(metadata, cluster.kubeconfig, cluster.context))
    return Probe(stack, metadata)


def preview(probe: Probe, pack: Pack, labels: dict[str, str], annotations: dict[str, str],
            configs: tuple[Path, ...] = ()) -> None:
    """Preview the probe stack with the pack, the ConfigMap carrying ``labels`` and ``annotations``."""
    probe.metadata.labels, probe.metadata.annotations = labels, annotations
    pack.reset()
    probe.stack.preview(policy_packs=[pack.path], policy_pack_configs=configs)


def violations(probe: Probe) -> set[tuple[str, str, str]]:
    """(policy, enforcement level, URN) of every violation the last preview reported."""
    return {(v.policy, v.enforcement_level, v.urn) for v in probe.stack.violations}


def printed(stack: LiveStack) -> str:
    return "\n".join(stack.output)


# --------------------------------------------------------------------------- the rules

def test_a_compliant_configmap_passes(probe: Probe, pack: Pack) -> None:
    preview(probe, pack, {"modelplane.io/owner": "e2e"}, {"modelplane.io/description": "probe"})
    assert violations(probe) == set()
    assert f"{PACK}@v0.1.0 [" not in printed(probe.stack)
    # The pack really ran, on the ConfigMap, with the interpreter its PulumiPolicy.yaml names.
    assert "kubernetes:core/v1:ConfigMap" in {r["type"] for r in pack.seen("resource")}
    [load] = pack.seen("load")
    assert load["executable"] == str(pack.path / "venv" / "bin" / "python")


def test_a_mandatory_violation_fails_preview_and_names_the_policy_and_the_resource(probe: Probe,
                                                                                  pack: Pack) -> None:
    with pytest.raises(CommandError) as failure:
        preview(probe, pack, {}, {"modelplane.io/description": "probe"})
    assert violations(probe) == {(OWNER, "mandatory", probe.urn)}
    [violation] = probe.stack.violations
    assert violation.pack == PACK
    assert "ConfigMap probe has no modelplane.io/owner label" in violation.message
    text = str(failure.value)
    assert f"{PACK}@v0.1.0 [mandatory]  {OWNER}  (kubernetes:core/v1:ConfigMap: probe)" in text, text[-3000:]
    assert "ConfigMap probe has no modelplane.io/owner label" in text
    assert "error: preview failed" in text


def test_an_advisory_violation_is_reported_and_does_not_fail(probe: Probe, pack: Pack) -> None:
    preview(probe, pack, {"modelplane.io/owner": "e2e"}, {})
    assert violations(probe) == {(DESCRIBED, "advisory", probe.urn)}
    text = printed(probe.stack)
    assert f"{PACK}@v0.1.0 [advisory]  {DESCRIBED}  (kubernetes:core/v1:ConfigMap: probe)" in text, text[-3000:]
    assert "ConfigMap probe has no modelplane.io/description annotation" in text


def test_a_policy_pack_config_raises_an_advisory_rule_to_mandatory(probe: Probe, pack: Pack,
                                                                   tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({DESCRIBED: "mandatory"}))
    with pytest.raises(CommandError):
        preview(probe, pack, {"modelplane.io/owner": "e2e"}, {}, configs=(config,))
    assert violations(probe) == {(DESCRIBED, "mandatory", probe.urn)}


def test_a_mandatory_rule_that_reads_an_unknown_value_is_only_advisory_in_a_preview(probe: Probe,
                                                                                    pack: Pack) -> None:
    preview(probe, pack, {"modelplane.io/owner": "e2e", READS_DATA: "yes"}, {"modelplane.io/description": "probe"})
    # pulumi_policy turns the UnknownValueError into an advisory diagnostic (the engine files it under
    # the resource): the preview passes although the rule is mandatory and did not run.
    [violation] = probe.stack.violations
    assert (violation.policy, violation.enforcement_level, violation.urn) == (DATA, "advisory", probe.urn)
    # (pulumi_policy's own placeholder version, not PulumiPolicy.yaml's.)
    assert (f"can't run policy '{DATA}' from policy pack '{PACK}@v0.0.1' during preview: "
            "string value at .data.provider can't be known during preview") in violation.message


# --------------------------------------------------------------------------- what a pack is given

def test_the_stack_and_its_config_come_in_configure_stack_not_in_the_environment(probe: Probe,
                                                                                 pack: Pack) -> None:
    preview(probe, pack, {"modelplane.io/owner": "e2e"}, {"modelplane.io/description": "probe"})
    [load] = pack.seen("load")
    # Engine v3.274.1 starts a pack with the CLI's own environment: no stack, project or config.
    assert load["watched"] == dict.fromkeys(load["watched"])
    # `python -u -m pulumi.policy <engine address> <pack>` in the project's program directory (main: infra/).
    assert load["cwd"] == str(probe.stack.workspace.project / "infra")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", load["argv"][1]), load["argv"]
    assert load["argv"][2:] == [str(pack.path)]
    [configure] = pack.seen("configure_stack")
    assert {k: v for k, v in configure.items() if k != "config"} == {
        "kind": "configure_stack", "stack": STACK, "project": "modelplane", "organization": "organization",
        "dry_run": True, "secret_keys": [], "tags": {}}
    # Every stack config value arrives as a string, keyed "project:key"; an object is JSON text.
    assert configure["config"] == {"modelplane:guardrails": json.dumps(GUARDRAILS, sort_keys=True,
                                                                       separators=(",", ":"))}


def test_every_resource_is_analyzed_and_the_stack_validation_sees_them_all(probe: Probe, pack: Pack) -> None:
    preview(probe, pack, {"modelplane.io/owner": "e2e"}, {"modelplane.io/description": "probe"})
    stack_urn = f"urn:pulumi:{STACK}::modelplane::pulumi:pulumi:Stack::modelplane-{STACK}"
    provider_urn = f"urn:pulumi:{STACK}::modelplane::pulumi:providers:kubernetes::cluster"
    analyzed = {r["urn"]: r for r in pack.seen("resource")}
    assert set(analyzed) == {stack_urn, provider_urn, probe.urn}
    assert analyzed[probe.urn]["parent"] == stack_urn
    # The provider's inputs are strings; an input that is an output not known yet is unknown.
    assert dict(map(tuple, analyzed[provider_urn]["shape"])) == {
        ".kubeconfig": "str", ".context": "str", ".version": "str"}
    assert [".data.provider", "unknown"] in analyzed[probe.urn]["shape"]
    [stack] = pack.seen("stack")
    assert {r["urn"]: r["parent"] for r in stack["resources"]} == {
        stack_urn: None, provider_urn: stack_urn, probe.urn: stack_urn}


# --------------------------------------------------------------------------- modelplane's own stack

@pytest.fixture(scope="module")
def modelplane_seen(cluster: Cluster, crd_schemas: Path, workspace: harness.Workspace,
                    tmp_path_factory: pytest.TempPathFactory) -> Pack:
    """The toy pack over a preview of the local stack, on the tier's interpreter through PULUMI_PYTHON_CMD."""
    directory = tmp_path_factory.mktemp("recording-pack")
    recording = Pack(write_pack(directory, {"name": "python"}))
    # modelplane's ConfigMaps carry neither the toy owner label nor the annotation: only record.
    disabled = directory.parent / "recording-pack-config.json"
    disabled.write_text(json.dumps({OWNER: "disabled", DESCRIBED: "disabled"}))
    config = pointed_at(local_config(), cluster.kubeconfig, cluster.context)
    cluster.prepare(config, crd_schemas)
    stack = workspace.stack("policy-local", config)
    stack.preview(policy_packs=[recording.path], policy_pack_configs=[disabled])
    assert stack.violations == []
    return recording


def test_modelplane_components_are_analyzed_without_properties_and_numbers_are_floats(
        modelplane_seen: Pack) -> None:
    [load] = modelplane_seen.seen("load")
    assert load["executable"] == sys.executable
    analyzed = modelplane_seen.seen("resource")
    components = {r["type"] for r in analyzed if r["type"].startswith("modelplane:index:")}
    assert components == {"modelplane:index:Estate", "modelplane:index:ExistingCluster",
                          "modelplane:index:ModelApi", "modelplane:index:AutoscalingPolicy"}
    # A component resource has no inputs the engine knows of: a rule on it sees empty props.
    assert all(r["shape"] == [] for r in analyzed if r["type"] in components)
    services = [r for r in analyzed if r["type"] == "kubernetes:core/v1:Service"]
    assert services and all([".spec.ports[0].port", "float"] in r["shape"] for r in services)
    [stack] = modelplane_seen.seen("stack")
    assert sorted(r["urn"] for r in stack["resources"]) == sorted(r["urn"] for r in analyzed)
    parents = {r["urn"]: r["parent"] for r in stack["resources"]}
    deployments = [urn for urn in parents if "kubernetes:apps/v1:Deployment::" in urn]
    assert deployments and all("$modelplane:index:ModelApi::" in parents[urn] for urn in deployments)
