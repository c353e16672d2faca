"""The stack file's JSON Schema accepts exactly what ``modelplane validate`` accepts, but for the rules it names.

Every file here is written to disk and read by the loader as ``modelplane validate --stack`` reads
it (``load_config``), and parsed by PyYAML for the schema, which ``jsonschema`` checks with the
draft the schema declares. A validator crash is a failure, not a refusal.

* Single-field mutations of the committed stack files (hypothesis, derandomized): wrong types,
  int/float/string swaps, numbers out of range, bad enum values and patterns, unknown keys, removed
  keys, nulls, empty maps, bad names, other namespaces, the top-level shape. The validator accepts
  only what the schema accepts; where the schema accepts and the validator refuses, every issue is
  one of the rules the schema names as checked by ``modelplane validate`` only (:data:`VALIDATOR_ONLY`).
* Relational mutations, one or more per rule of :data:`VALIDATOR_ONLY`: the validator refuses them
  with that rule and the schema accepts them (a rule the schema learns to state moves out of the list).
* Examples: the two reported disagreements, and one case for each single-value rule the schema states
  on top of the models.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from modelplane.config import ConfigError, Issue
from modelplane.offline import load_config
from modelplane.reference import SECTIONS
from modelplane.schema import DRAFT, VALIDATOR_ONLY, json_schema

ROOT = Path(__file__).resolve().parents[1]
STACKS = {p.name.split(".")[1]: yaml.safe_load(p.read_text(encoding="utf-8"))
          for p in sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))}
SCHEMA = json_schema()

C = ("config", "modelplane:cluster")
G = ("config", "modelplane:nodeGroups")
A = ("config", "modelplane:apis")

# 500 examples (about 10 s), the same ones every run (derandomize): a red build reproduces from its log.
AGREEMENT = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- the two judges

@functools.cache
def _ecma(pattern: str) -> re.Pattern[str]:
    r"""``pattern`` as ECMA-262, the dialect of JSON Schema, reads it: ``$`` ends the input.

    Python's ``$`` also matches before a final newline, so ``re.search`` would let ``"cpu\n"``
    through a pattern an editor (and the model) refuses; ``\Z`` is ECMA's ``$``.
    """
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


SchemaValidator = jsonschema.validators.extend(jsonschema.validators.validator_for(SCHEMA), {"pattern": _pattern})
SCHEMA_VALIDATOR = SchemaValidator(SCHEMA)


YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def schema_errors(text: str) -> list[str]:
    """What the JSON Schema says about a stack file's text (empty: it accepts it), read as an editor reads it."""
    document = yaml.load(text, Loader=YAML_LOADER)
    assert _is_json(document), "the corpus holds JSON data only (string keys, finite numbers)"
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:300]
            for e in SCHEMA_VALIDATOR.iter_errors(document)]


def _is_json(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_is_json, value))
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    return value is None or isinstance(value, (str, int, bool))


def validator_issues(project: Path, text: str) -> list[Issue] | None:
    """What ``modelplane validate`` says about a stack file's text: None when it accepts it, else its issues."""
    (project / "stacks" / "Pulumi.mutant.yaml").write_text(text, encoding="utf-8")
    try:
        load_config(project, "mutant")
    except ConfigError as exc:
        return exc.issues
    return None


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project the CLI finds (Pulumi.yaml, infra/__main__.py) whose one stack file is the mutant."""
    root = tmp_path_factory.mktemp("agreement")
    for name in ("stacks", "infra"):
        (root / name).mkdir()
    (root / "Pulumi.yaml").write_text("name: modelplane\nruntime: python\n", encoding="utf-8")
    (root / "infra" / "__main__.py").write_text("", encoding="utf-8")
    return root


def test_the_schema_is_valid_under_the_draft_it_declares() -> None:
    assert SCHEMA["$schema"] == DRAFT
    SchemaValidator.check_schema(SCHEMA)


def test_every_default_in_the_schema_is_valid_under_its_own_property() -> None:
    defaults = [(model, key, prop) for model, schema in SCHEMA["$defs"].items()
                for key, prop in schema.get("properties", {}).items() if "default" in prop]
    assert len(defaults) > 100
    wrong = [(model, key, prop["default"]) for model, key, prop in defaults
             if not SchemaValidator({**prop, "$defs": SCHEMA["$defs"]}).is_valid(prop["default"])]
    assert not wrong


# --------------------------------------------------------------------------- the rules only the validator checks

def _message(*patterns: str) -> Callable[[Issue], bool]:
    return lambda issue: any(re.search(p, issue.message) for p in patterns)


def _at(path: str, *patterns: str) -> Callable[[Issue], bool]:
    """An issue at a key path matching ``path`` (a regular expression) with one of the messages."""
    return lambda issue: bool(re.fullmatch(path, issue.where())) and _message(*patterns)(issue)


def _host_bits(issue: Issue) -> bool:
    # The text is a CIDR in every other respect: only its host bits are set.
    got = re.search(r"not a valid IPv4 network; got '([^']*)'$", issue.message)
    try:
        return got is not None and ipaddress.IPv4Network(got.group(1), strict=False) is not None
    except ValueError:
        return False


def _secret_dir(issue: Issue) -> bool:
    # The root and the directories modelplane always mounts are in the schema; the rest relate values.
    got = re.match(r"'([^']*)' is the root, a writable path", issue.message)
    fixed = ("/etc/modelplane/config", "/var/run/modelplane", "/dev/shm")
    return got is not None and (got.group(1).rstrip("/") or "/") not in ("/", *fixed)


RECOGNIZERS: dict[str, list[Callable[[Issue], bool]]] = {
    "duplicate-key": [_message(r"already defined at line \d+; Pulumi refuses")],
    "near-namespace": [_at(r"[^:]+:(?!(cluster|nodeGroups|apis)$)[^:]+", r"which modelplane does not read")],
    "whole-float": [_message(r"valid integer.*; got -?[0-9]+(\.0|(\.[0-9]+)?e\+[0-9]+)$")],
    "cpu-decimals": [_at(r".*\.cpu", r"should match pattern '\^\(\[0-9\]\+m.*; got '[0-9]+\.[0-9]+'$",
                         r"should match pattern '\^\(\[0-9\]\+m.*; got '[0-9.]+e-[0-9]+'$")],
    "cidr-host-bits": [_host_bits],
    "sizes": [_message(r"minSize \d+ is greater than maxSize", r"desiredSize \d+ must lie between")],
    "capacity-engine": [_message(r"applies to managed node groups; Karpenter", r"applies to Karpenter NodePools",
                                 r"configures Karpenter NodePools modelplane creates",
                                 r"a budget with a schedule needs a duration", r"must be longer than 0s; to protect",
                                 r"karpenter applies to a cluster modelplane creates",
                                 r"spotWithFallback makes an on-demand group")],
    "instance-types": [_message(r"mixes x86_64 and arm64", r"does not suit a (GPU|CPU) group", r"AMI but the instance",
                                r"only applies to GPU groups", r"has no GPU; a GPU group", r"has no facts \(vCPUs")],
    "system-group": [_message(r"is the cluster's own add-on group")],
    "certificate": [_message(r"give exactly one of arn \(an existing ACM certificate\) or zone")],
    "node-group-fit": [_message(r"does not exist in modelplane:nodeGroups", r"GPU\(s\) but node group",
                                r"GPUs per replica do not fit", r"per pod.*; one node of group")],
    "replicas": [_message(r"maxReplicas \d+ is less than minReplicas")],
    "metric": [_message(r"applies to metric", r"is measured by the proxy", r"can never be reached",
                        r"is required with metric", r"metric queue scales on", r"measured outside the pods",
                        r"applies to KEDA metrics", r"has no tolerance field", r"HPA tolerance is an alpha",
                        r"metric (cpu|memory) scales on a percent")],
    "queue": [_message(r"the queue modelplane creates would be named", r"applies to a queue modelplane creates")],
    "proxy": [_message(r"only the proxy enforces", r"is taken by the proxy", r"is the request proxy's name",
                       r"gives the proxy that every request passes no CPU"),
              _at(r".*\.proxy\.image", r"needs an explicit tag"), _at(r".*\.proxy\.mem", r"is no memory at all")],
    "sidecars": [_message(r"probes the sidecar over HTTP", r"is already .* in the same pod")],
    "rollout": [_message(r"cannot both be 0: the rollout", r"must be greater than minReadySeconds")],
    "mounts": [_secret_dir, _message(r"' (is listed twice|is already the shm mount|is a directory modelplane mounts)")],
    "resources": [_message(r"of shared memory counts against", r"CPU on a GPU API", r"add up to more than 900 KiB")],
    "vpc": [_message(r"only apply to a new VPC", r"needs at least two private subnets", r"subnet ids need the")],
    "endpoint": [_message(r"public and private cannot both be false", r"with the private endpoint off")],
    "prometheus": [_message(r"applies to the Prometheus modelplane installs"),
                   _message(r"is required: .* scale\(s\) on request metrics that the Prometheus at")],
    "traffic": [_message(r"give exactly one of arn", r"is required with certificate.zone", r"is not in zone",
                         r"with a certificate HTTP redirects to HTTPS", r"is required for a public API",
                         r"values in one listener rule", r"are already taken by .* load balancer",
                         r"load balancer redirects HTTP to HTTPS for the APIs", r"with one idle timeout but ask",
                         r"splits the load balancer's traffic by weight and needs expose",
                         r"is less than minReplicas \d+; set maxReplicas", r"runs exactly what the API runs",
                         r"the proxy mirrors the requests", r"one second version at a time"),
                _at(r".*\.(canary|shadow)\.image", r"needs an explicit tag or digest")],
    "existing": [_message(r"configures (a cluster|nodes) modelplane creates", r"needs exactly one of kubeconfig",
                          r"is required with oidc", r"install needs an EKS cluster's OIDC", r"install conflicts with",
                          r"scale\(s\) on a request metric", r"through a service-account role",
                          r"creates this queue in aws:region", r"scales through KEDA, and",
                          r"advertised by the NVIDIA device plugin", r"made by the AWS Load Balancer Controller",
                          r"installs the AWS Load Balancer Controller for")],
}


def validator_only_rules(issue: Issue) -> set[str]:
    """The rules of :data:`VALIDATOR_ONLY` an issue reports (empty: one the schema should have refused)."""
    return {rule for rule, tests in RECOGNIZERS.items() if any(test(issue) for test in tests)}


def test_every_rule_the_schema_leaves_out_is_named_and_recognised() -> None:
    assert VALIDATOR_ONLY and set(RECOGNIZERS) == set(VALIDATOR_ONLY)
    for rule, text in VALIDATOR_ONLY.items():
        assert f"{text} [{rule}]" in SCHEMA["description"]


# --------------------------------------------------------------------------- comparing the two

@dataclass(frozen=True)
class Mutant:
    """A stack file made from a committed one."""

    label: str
    """What was changed, for failure messages."""
    text: str
    rule: str | None = None
    """For a relational mutation: the rule of :data:`VALIDATOR_ONLY` it breaks."""


def judge(project: Path, mutant: Mutant) -> str:
    """``accepted``, ``refused`` or ``validator only: <rules>``; fails on any disagreement the schema does not name."""
    schema = schema_errors(mutant.text)
    issues = validator_issues(project, mutant.text)
    shown = "\n  ".join([f"{i.where()}: {i.message}"[:300] for i in issues or []] + schema[:5])
    if issues is None:
        assert not schema, f"{mutant.label}: the validator accepts the file, the schema refuses it:\n  {shown}"
        return "accepted"
    if schema:
        return "refused"
    unexplained = [i for i in issues if not validator_only_rules(i)]
    assert not unexplained, (f"{mutant.label}: the schema accepts the file, the validator refuses it for a reason "
                             f"the schema does not name:\n  {shown}")
    return "validator only: " + ", ".join(sorted(set().union(*map(validator_only_rules, issues))))


def _dump(document: Any) -> str:
    text = yaml.dump(document, Dumper=YAML_DUMPER, sort_keys=False, allow_unicode=True, width=1 << 16)
    assert yaml.load(text, Loader=YAML_LOADER) == document, "the mutant survives the YAML round trip"
    return text


MISSING = object()
"""A value for :func:`_edit` that removes the key."""


def _edit(document: Any, path: tuple[Any, ...], value: Any) -> None:
    parent = document
    for part in path[:-1]:
        parent = parent.setdefault(part, {}) if isinstance(parent, dict) else parent[part]
    if value is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


# --------------------------------------------------------------------------- single-field mutations

def _unwrap(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """(the model inside a field's annotation, how it is held: ``""``, ``list`` or ``dict``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            model, held = _unwrap(arg)
            if model is not None:
                return model, held
        return None, ""
    if origin in (list, dict):
        model, _ = _unwrap(typing.get_args(annotation)[-1])
        return model, origin.__name__
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    return None, ""


def model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model of the mapping at ``path`` of a stack file, or None (the file, ``config:``, a map by name)."""
    if len(path) < 3 or path[0] != "config":
        return None
    section = path[1].removeprefix("modelplane:")
    found = [(model, keyed) for name, model, keyed in SECTIONS if name == section]
    if not found:
        return None
    model, keyed = found[0]
    current: type[BaseModel] | None = model
    pending = "dict" if keyed else ""
    for part in path[2:]:
        if pending:
            pending = ""
            continue
        fields = {f.alias or n: f for n, f in current.model_fields.items()} if current else {}
        if part not in fields:
            return None
        current, pending = _unwrap(fields[part].annotation)
    return None if pending else current


def _nodes(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, prefix + (index,))


SCALARS: list[Any] = [
    None, True, False, 0, 1, -1, 2, 2.0, 2.5, 0.0001, 1000, 1001, 65536, 10**6, 1e16,
    "", "x", "2", "0", "2.5", "-1", "Bad Name", "a" * 41, "a\n", "latest", "repo/model", "repo/model:latest",
    "repo/model:1.0", "repo@sha256:abc", "500m", "0.5", "2Gi", "0Mi", "1Ti", "10.0.0.0/16", "10.0.0.0/8",
    "10.0.0.1/16", "10.0.0.0/255.255.0.0", "0.0.0.0/0", "10s", "30s", "2h", "61m", "0d", "100%", "101%", "0%",
    "25%", "/tmp", "/", "/etc/modelplane/config", "us-east-1", "mars-1", "MODELPLANE_X", "vpc-0abc", "spot",
    "perAz", "cpu", "gpu-spot", "1.33", "1.35", 1.33, "present", "install", "none", "inFlight", "queue",
    "NoSchedule", "s3://bucket/models", "https://prometheus.example.com",
]
CONTAINERS: list[Any] = [{}, [], ["x"], [None], [1], {"secure": "v1:abc"}, {"x": 1}, {"path": "/ready"}]
KEYS = ["x", "replicas", "Image", "bad name", "", "a" * 41, "a" * 40, "1x", "x-", "a_b", "default", "keda",
        "monitoring", "system", "model", "proxy", "MODELPLANE_X", "X_Y", "modelplane.io/x", "UPPER"]
CONFIG_KEYS = [*(k for name, _, _ in SECTIONS for k in (name, f"modelplane:{name}", f"foo:{name}")), "aws:apis",
               "modelplane:extra", "kubernetes:context", "pulumi:tags", "eks:x", "other:setting", "a:b:c",
               "has space", "Modelplane:apis", "region", "aws:region", "aws:profile", ":x", "x:"]
TOP_KEYS = ["config", "Config", "encryptionsalt", "secretsprovider", "encryptedkey", "environment", "foo"]
EXAMPLES: dict[str, list[Any]] = {
    # Valid values of fields the committed stacks leave out, so the mutations reach them too.
    "existing": [{"kubeconfigPath": "~/.kube/config"}], "kubeconfig": [{"secure": "v1:abc"}, "apiVersion: v1"],
    "stackReference": [{"stack": "acme/infra/prod"}], "oidcProviderArn": ["arn:aws:iam::123456789012:oidc-provider/x"],
    "addonNodeSelector": [{"pool": "system"}], "charts": [{"keda": {"version": "2.16.0"}}],
    "prometheus": [{"retention": "3d"}], "url": ["https://prometheus.example.com"], "amiType": ["BOTTLEROCKET_x86_64"],
    "desiredSize": [2], "gpusPerNode": [1], "labels": [{"tier": "gold"}], "taints": [[{"key": "dedicated"}]],
    "livenessProbe": [{"path": "/live"}], "startupProbe": [{"path": "/start"}], "secrets": [{"token": "/var/secret"}],
    "writablePaths": [["/tmp", "/cache"]], "metricsPath": ["/metrics"], "queue": [{}], "custom": [{"query": "x",
                                                                                                     "target": 2}],
    "updateStrategy": [{"maxSurge": 1, "maxUnavailable": "10%"}], "sidecars": [{"helper": {"image": "h:1.0"}}],
    "shm": ["1Gi"], "window": ["90s"], "targetInFlight": [2.0], "port": [9000], "configFiles": [{"a.json": "{}"}],
    "env": [{"LEVEL": "debug"}], "tags": [{"owner": "ml"}], "publicSubnetIds": [["subnet-0abc"]],
}


def _near(value: Any) -> list[Any]:
    """Values next to ``value``: off by one, another numeric type, as text, as a number, padded, emptied."""
    if isinstance(value, bool):
        return [not value, int(value), str(value).lower()]
    if isinstance(value, int):
        return [value + 1, value - 1, -value, value * 10, float(value), value + 0.5, str(value)]
    if isinstance(value, float):
        return [int(value), value * 2, -value, str(value), value + 0.0001]
    if isinstance(value, str):
        numbers = [float(value)] if re.fullmatch(r"[0-9]+\.[0-9]+", value) else \
            [int(value)] if re.fullmatch(r"[0-9]{1,6}", value) else []
        return [value + "\n", value.upper(), value + "x", "x" + value, value[:-1], " " + value, *numbers]
    if isinstance(value, list):
        return [[], value + value[:1], value[:1], value * 25, [None, *value]]
    if isinstance(value, dict):
        return [{}, None]
    return []


def _edges(schema: dict[str, Any]) -> list[Any]:
    """Values at and just past the bounds, enums and lengths a property's schema states (its branches too)."""
    values: list[Any] = []
    for branch in [schema, *schema.get("anyOf", []), *schema.get("allOf", [])]:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in branch:
                bound = branch[key]
                values += [bound, bound - 1, bound + 1, bound - 0.5, bound + 0.5, float(bound)]
        for value in branch.get("enum", []):
            values += [value, f"{value}x", str(value).upper()]
        for key in ("minLength", "maxLength"):
            if key in branch:
                values += ["a" * max(branch[key] + d, 0) for d in (-1, 0, 1)]
        for key in ("minItems", "maxItems"):
            if key in branch:
                values += [["a"] * max(branch[key] + d, 0) for d in (-1, 0, 1)]
    return values


CONFIG_VALUES: list[Any] = [None, {}, [], 1, "x", {"secure": "v1:abc"}, "us-east-1", "eu-west-1", "mars-1",
                            "us-east-1\n", "US-EAST-1"]


def _fields() -> dict[tuple[str, str], list[tuple[str, tuple[Any, ...]]]]:
    """Every key of every model in the committed stacks, set or not: (model, key) -> [(stack, its mapping)]."""
    found: dict[tuple[str, str], list[tuple[str, tuple[Any, ...]]]] = {}
    for stack, document in STACKS.items():
        for path, node in _nodes(document):
            model = model_at(path) if isinstance(node, dict) else None
            for key in sorted(f.alias or n for n, f in model.model_fields.items()) if model else ():
                found.setdefault((model.__name__, key), []).append((stack, path))
    return found


FIELDS = _fields()


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


@st.composite
def single_field_mutants(draw: st.DrawFn) -> Mutant:
    kind = draw(st.sampled_from(["field"] * 6 + ["set", "delete", "add", "rename", "config", "config"]))
    if kind == "field":
        # Uniform over the models' keys (not over the nodes of the files, which long lists would dominate).
        model_name, key = draw(st.sampled_from(sorted(FIELDS)))
        stack, path = draw(st.sampled_from(FIELDS[model_name, key]))
        document = copy.deepcopy(STACKS[stack])
        node = _get(document, path)
        current = node.get(key, MISSING)
        values = _edges(SCHEMA["$defs"][model_name]["properties"][key]) + EXAMPLES.get(key, [])
        values += _near(current) if current is not MISSING else []
        new = draw(st.sampled_from(values + SCALARS + CONTAINERS) if draw(st.booleans()) or not values
                   else st.sampled_from(values))
        node[key] = new
        return Mutant(f"{stack}: {'.'.join(map(str, path + (key,)))} = {new!r}", _dump(document))
    stack = draw(st.sampled_from(sorted(STACKS)))
    document = copy.deepcopy(STACKS[stack])
    nodes = [n for n in _nodes(document) if n[0]]
    mappings = [(path, node) for path, node in _nodes(document) if isinstance(node, dict)]
    if kind == "set":
        path, value = draw(st.sampled_from(nodes))
        new = draw(st.sampled_from(_near(value) + SCALARS + CONTAINERS))
        _edit(document, path, new)
        label = f"{'.'.join(map(str, path))} = {new!r}"
    elif kind == "delete":
        path, node = draw(st.sampled_from([m for m in mappings if m[1]]))
        key = draw(st.sampled_from(sorted(node)))
        del node[key]
        label = f"delete {'.'.join(map(str, path + (key,)))}"
    elif kind == "config":
        config = document["config"]
        key = draw(st.sampled_from(CONFIG_KEYS))
        old = draw(st.sampled_from([None, *sorted(config)]))
        config[key] = config.pop(old) if old is not None else draw(st.sampled_from(CONFIG_VALUES))
        label = f"config.{key} = {'config.' + old if old else repr(config[key])}"
    else:
        path, node = draw(st.sampled_from(mappings))
        keys = TOP_KEYS if path == () else CONFIG_KEYS if path == ("config",) else KEYS
        new_key = draw(st.sampled_from(keys))
        if kind == "add" or not node:
            node[new_key] = draw(st.sampled_from(SCALARS + CONTAINERS))
            label = f"{'.'.join(map(str, path + (new_key,)))} = {node[new_key]!r} (added)"
        else:
            old = draw(st.sampled_from(sorted(node)))
            node[new_key] = node.pop(old)
            label = f"rename {'.'.join(map(str, path + (old,)))} to {new_key!r}"
    return Mutant(f"{stack}: {label}", _dump(document))


def test_the_schema_agrees_with_the_validator_on_single_field_mutations(project: Path) -> None:
    outcomes: Counter[str] = Counter()

    @AGREEMENT
    @given(single_field_mutants())
    def check(mutant: Mutant) -> None:
        outcome = judge(project, mutant)
        outcomes["validator only" if outcome.startswith("validator only") else outcome] += 1

    check()
    # The corpus exercises both judges both ways (a property over files both accept proves little).
    assert outcomes["refused"] >= 200 and outcomes["accepted"] >= 50 and outcomes["validator only"] >= 5, outcomes


# --------------------------------------------------------------------------- relational mutations

Edits = list[tuple[tuple[Any, ...], Any]]

RELATIONAL: list[tuple[str, str, Edits]] = [
    # (rule of VALIDATOR_ONLY, stack, edits); each breaks the rule and nothing else.
    ("near-namespace", "dev", [(("config", "modelplan:extra"), 1)]),
    ("whole-float", "dev", [((*G, "cpu", "maxSize"), 4.0)]),
    ("whole-float", "prod", [((*A, "fraud-score", "updateStrategy", "maxUnavailable"), 0.0)]),
    ("cpu-decimals", "dev", [((*A, "sentiment", "compute", "cpu"), 0.0005)]),
    ("cidr-host-bits", "dev", [((*C, "vpc", "cidr"), "10.40.0.1/16")]),
    ("cidr-host-bits", "dev", [((*C, "endpoint", "publicAccessCidrs"), ["203.0.113.1/24"])]),
    ("sizes", "dev", [((*G, "cpu", "minSize"), 5)]),
    ("traffic", "dev", [((*A, "sentiment", "expose", "certificate"), {})]),
    ("traffic", "dev", [((*A, "sentiment", "expose", "allowHttp"), True)]),
    ("capacity-engine", "prod", [((*G, "cpu", "minSize"), 2)]),
    ("capacity-engine", "prod", [((*G, "gpu-spot", "desiredSize"), 2)]),
    ("capacity-engine", "dev", [((*G, "cpu", "disruption"), {"consolidateAfter": "5m"})]),
    ("capacity-engine", "prod", [((*G, "gpu-llm", "disruption", "budgets", 1, "schedule"), MISSING)]),
    ("capacity-engine", "prod", [((*G, "gpu-llm", "disruption", "startupTime"), "0m")]),
    ("capacity-engine", "local", [((*C, "capacityEngine"), "karpenter")]),
    ("capacity-engine", "dev", [((*G, "gpu-spot", "capacityType"), "spotWithFallback"),
                                ((*G, "gpu-spot-on-demand"), {"instanceTypes": ["g5.xlarge"], "gpu": True})]),
    ("sizes", "dev", [((*G, "cpu", "desiredSize"), 9)]),
    ("sizes", "dev", [((*C, "systemNodeGroup", "minSize"), 3)]),
    ("instance-types", "dev", [((*G, "cpu", "instanceTypes"), ["m6i.xlarge", "m7g.xlarge"])]),
    ("instance-types", "dev", [((*G, "gpu-spot", "amiType"), "AL2023_x86_64_STANDARD")]),
    ("instance-types", "dev", [((*G, "cpu", "amiType"), "AL2023_ARM_64_STANDARD")]),
    ("instance-types", "dev", [((*G, "cpu", "gpusPerNode"), 1)]),
    ("instance-types", "dev", [((*G, "gpu-spot", "instanceTypes"), ["g5.xlarge", "m6i.xlarge"])]),
    ("instance-types", "dev", [((*G, "gpu-spot", "instanceTypes"), ["g5.xlarge", "x9z.large"])]),
    ("system-group", "dev", [((*G, "system"), {"instanceTypes": ["m6i.large"]})]),
    ("node-group-fit", "dev", [((*A, "sentiment", "nodeGroup"), "nope")]),
    ("node-group-fit", "dev", [((*A, "image-embed", "nodeGroup"), "cpu")]),
    ("node-group-fit", "dev", [((*A, "image-embed", "compute", "gpu"), 2)]),
    ("node-group-fit", "dev", [((*A, "sentiment", "compute", "cpu"), "64")]),
    ("node-group-fit", "dev", [((*A, "sentiment", "compute", "mem"), "1000Gi")]),
    ("replicas", "dev", [((*A, "sentiment", "autoscaling", "minReplicas"), 7)]),
    ("metric", "dev", [((*A, "sentiment", "autoscaling", "targetRps"), 5)]),
    ("metric", "dev", [((*A, "doc-embed", "autoscaling", "metric"), "inFlight"),
                       ((*A, "doc-embed", "autoscaling", "targetQueueLength"), MISSING),
                       ((*A, "doc-embed", "autoscaling", "minReplicas"), 1)]),
    ("metric", "dev", [((*A, "image-embed", "autoscaling", "targetInFlight"), 1000)]),
    ("metric", "dev", [((*A, "sentiment", "autoscaling", "metric"), "rps"),
                       ((*A, "sentiment", "autoscaling", "targetUtilization"), MISSING)]),
    ("metric", "dev", [((*A, "sentiment", "autoscaling", "metric"), "custom"),
                       ((*A, "sentiment", "autoscaling", "targetUtilization"), MISSING)]),
    ("metric", "dev", [((*A, "sentiment", "autoscaling", "metric"), "queue"),
                       ((*A, "sentiment", "autoscaling", "targetUtilization"), MISSING)]),
    ("metric", "dev", [((*A, "sentiment", "autoscaling", "minReplicas"), 0)]),
    ("metric", "dev", [((*A, "sentiment", "autoscaling", "activationThreshold"), 1)]),
    ("metric", "dev", [((*A, "image-embed", "autoscaling", "upscaleTolerance"), 0.1)]),
    ("metric", "dev", [((*A, "sentiment", "autoscaling", "upscaleTolerance"), 0.1)]),
    ("metric", "dev", [((*A, "sentiment", "compute", "cpu"), "0")]),
    ("metric", "local", [((*A, "recommender", "compute", "mem"), MISSING)]),
    ("queue", "dev", [((*C, "name"), "c" * 40), ((*A, "doc-embed"), MISSING),
                      ((*A, "q" * 40), STACKS["dev"]["config"]["modelplane:apis"]["doc-embed"])]),
    ("queue", "dev", [((*A, "doc-embed", "queue", "url"),
                       "https://sqs.us-east-1.amazonaws.com/123456789012/jobs")]),
    ("proxy", "dev", [((*A, "doc-embed", "maxQueueLength"), 10)]),
    ("proxy", "dev", [((*A, "sentiment", "port"), 8888)]),
    ("proxy", "dev", [((*A, "sentiment", "proxy", "image"), "envoyproxy/envoy:latest")]),
    ("proxy", "dev", [((*A, "sentiment", "proxy", "cpu"), "0")]),
    ("proxy", "dev", [((*A, "sentiment", "proxy", "mem"), "0Mi")]),
    ("proxy", "prod", [((*A, "recommender", "sidecars", "proxy"),
                        STACKS["prod"]["config"]["modelplane:apis"]["recommender"]["sidecars"]["bandit-model"]),
                       ((*A, "recommender", "sidecars", "bandit-model"), MISSING)]),
    ("sidecars", "local", [((*A, "recommender", "sidecars", "ranker", "readinessProbe"), {"path": "/ready"})]),
    ("sidecars", "prod", [((*A, "recommender", "sidecars", "bandit-model", "port"), 8080)]),
    ("rollout", "prod", [((*A, "fraud-score", "updateStrategy", "maxSurge"), 0)]),
    ("rollout", "dev", [((*A, "sentiment", "updateStrategy"), {"minReadySeconds": 700})]),
    ("mounts", "dev", [((*A, "sentiment", "secrets"), {"token": "/tmp/"})]),
    ("mounts", "dev", [((*A, "sentiment", "secrets"), {"token": "/s", "other": "/s"})]),
    ("mounts", "dev", [((*A, "sentiment", "writablePaths"), ["/tmp", "/tmp/"])]),
    ("mounts", "prod", [((*A, "llm-chat", "writablePaths"), ["/dev/shm"])]),
    ("mounts", "prod", [((*A, "recommender", "writablePaths"), ["/etc/modelplane/config"])]),
    ("resources", "prod", [((*A, "llm-chat", "compute", "shm"), "200Gi")]),
    ("resources", "dev", [((*A, "image-embed", "compute", "cpu"), "0")]),
    ("resources", "dev", [((*A, "sentiment", "configFiles"), {"big.txt": "x" * (901 * 1024)})]),
    ("vpc", "dev", [((*C, "vpc", "id"), "vpc-0abc"), ((*C, "vpc", "privateSubnetIds"), ["subnet-1", "subnet-2"])]),
    ("vpc", "dev", [((*C, "vpc"), {"id": "vpc-0abc", "privateSubnetIds": ["subnet-1"]})]),
    ("vpc", "dev", [((*C, "vpc", "publicSubnetIds"), ["subnet-1"])]),
    ("endpoint", "dev", [((*C, "endpoint", "public"), False), ((*C, "endpoint", "private"), False)]),
    ("endpoint", "dev", [((*C, "endpoint", "private"), False)]),
    ("prometheus", "local", [((*C, "prometheus", "retention"), "3d")]),
    ("prometheus", "local", [((*C, "prometheus", "url"), "https://prometheus.example.com")]),
    ("prometheus", "local", [((*C, "prometheus"), {"retention": "3d"}),
                             ((*C, "existing", "addons", "prometheus"), "present"),
                             ((*A, "image-embed", "autoscaling", "metric"), "cpu")]),
    ("traffic", "dev", [((*A, "sentiment", "expose", "certificate", "arn"),
                         "arn:aws:acm:us-east-1:123456789012:certificate/0f6c1e9a-3b4d-4c5e-8f70-1a2b3c4d5e6f")]),
    ("traffic", "dev", [((*A, "sentiment", "expose", "host"), MISSING)]),
    ("traffic", "dev", [((*A, "sentiment", "expose", "host"), "sentiment.other.example.com")]),
    ("traffic", "prod", [((*A, "sentiment", "expose", "allowHttp"), True)]),
    ("traffic", "dev", [((*A, "sentiment", "expose", "certificate"), MISSING)]),
    ("traffic", "prod", [((*A, "fraud-score", "expose", "allowFrom"), ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16",
                                                                      "10.4.0.0/16"])]),
    ("traffic", "dev", [((*A, "doc-embed", "expose"), {"visibility": "internal", "path": "/embed",
                                                        "allowHttp": True})]),
    ("traffic", "prod", [((*A, "recommender", "expose"), {"visibility": "internal", "allowHttp": True})]),
    ("traffic", "prod", [((*A, "recommender", "expose"), {"visibility": "internal", "idleTimeoutSeconds": 300,
                                                          "host": "recommender.internal.ml.example.com",
                                                          "certificate": {"zone": "internal.ml.example.com"}})]),
    ("traffic", "prod", [((*A, "recommender", "canary"), {"image": "ghcr.io/acme/bandit-frontend:3.3.0",
                                                          "weight": 10})]),
    ("traffic", "prod", [((*A, "fraud-score", "canary"), {"image": "ghcr.io/acme/fraud-score:2", "weight": 10,
                                                          "minReplicas": 5, "maxReplicas": 3})]),
    ("traffic", "prod", [((*A, "fraud-score", "canary"), {"image": "ghcr.io/acme/fraud-score:latest",
                                                          "weight": 10})]),
    ("traffic", "prod", [((*A, "llm-chat", "shadow"), {"image": "ghcr.io/acme/vllm:0.7.0", "percent": 5})]),
    ("existing", "local", [((*C, "vpc"), {"cidr": "10.0.0.0/16"})]),
    ("existing", "local", [((*C, "existing", "stackReference"), {"stack": "acme/infra/prod"})]),
    ("existing", "local", [((*C, "existing", "kubeconfigPath"), None)]),
    ("existing", "local", [((*C, "existing", "oidcIssuer"), "https://oidc.example.com/id/x")]),
    ("existing", "local", [((*C, "existing", "addons", "clusterAutoscaler"), "install")]),
    ("existing", "local", [((*C, "existing", "addons", "prometheus"), "install")]),
    ("existing", "local", [((*C, "prometheus"), {})]),
    ("existing", "local", [((*G, "cpu", "diskSizeGib"), 50)]),
    ("existing", "local", [((*A, "sentiment", "modelUri"), "s3://acme-models/x/")]),
    ("existing", "local", [((*C, "existing", "addons", "keda"), "none")]),
    ("existing", "local", [((*C, "existing", "addons", "nvidiaDevicePlugin"), "none")]),
    ("existing", "local", [((*A, "sentiment", "expose"), {}), ((*C, "existing", "addons", "loadBalancerController"),
                                                               "none")]),
    ("existing", "local", [((*A, "sentiment", "expose"), {})]),
    ("certificate", "dev", [((*A, "sentiment", "expose", "certificate"), {})]),
    ("instance-types", "dev", [((*C, "systemNodeGroup", "instanceType"), "m6i.larg")]),
    ("node-group-fit", "local", [((*A, "recommender", "sidecars", "ranker", "compute", "mem"), "14Gi")]),
]


def _relational(rule: str, stack: str, edits: Edits) -> Mutant:
    document = copy.deepcopy(STACKS[stack])
    for path, value in edits:
        _edit(document, path, value if value is MISSING else copy.deepcopy(value))
    shown = ", ".join(f"{'.'.join(map(str, p[1:]))} = {'(removed)' if v is MISSING else repr(v)[:60]}"
                      for p, v in edits)
    return Mutant(f"{stack}: {shown}", _dump(document), rule)


def _duplicate_key(stack: str, line: str) -> Mutant:
    text = _dump(STACKS[stack])
    assert f"\n{line}\n" in text
    return Mutant(f"{stack}: {line.strip()!r} twice", text.replace(f"\n{line}\n", f"\n{line}\n{line}\n", 1),
                  "duplicate-key")


MUTANTS = [_relational(*case) for case in RELATIONAL] + [
    _duplicate_key("dev", "  aws:region: us-east-1"), _duplicate_key("dev", "      nodeGroup: cpu")]


def test_every_rule_the_schema_leaves_out_has_a_relational_mutation() -> None:
    assert {m.rule for m in MUTANTS} == set(VALIDATOR_ONLY)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.label[:90] for m in MUTANTS])
def test_the_validator_alone_refuses_relational_mutations(project: Path, mutant: Mutant) -> None:
    assert not schema_errors(mutant.text), f"the schema now states {mutant.rule}: move it out of VALIDATOR_ONLY"
    issues = validator_issues(project, mutant.text)
    assert issues is not None, f"{mutant.label}: the validator accepts it"
    assert judge(project, mutant).startswith("validator only")
    assert any(mutant.rule in validator_only_rules(i) for i in issues), [i.message for i in issues]


# --------------------------------------------------------------------------- examples

def _stack(stack: str, *edits: tuple[tuple[Any, ...], Any]) -> str:
    document = copy.deepcopy(STACKS[stack])
    for path, value in edits:
        _edit(document, path, value)
    return _dump(document)


ACCEPTED = {
    "cpu: 2 (reported: refused by the schema)": _stack("dev", ((*A, "sentiment", "compute", "cpu"), 2)),
    "cpu: 2.0, 0.5 and 1e16": _stack("dev", ((*A, "sentiment", "compute", "cpu"), 0.5),
                                     ((*A, "image-embed", "compute", "cpu"), 2.0),
                                     ((*A, "doc-embed", "proxy", "cpu"), 1e16)),
    "keys without the namespace": _stack("dev", ((*A[:1], "apis"), STACKS["dev"]["config"]["modelplane:apis"]),
                                         (A, MISSING)),
    "the cluster without the namespace": _stack("dev", (("config", "cluster"), STACKS["dev"]["config"]
                                                        ["modelplane:cluster"]), (C, MISSING)),
    "keys of other namespaces": _stack("dev", (("config", "aws:profile"), "ml"),
                                       (("config", "kubernetes:context"), {"secure": "v1:abc"}),
                                       (("config", "other:apis-url"), [1, 2])),
    "Pulumi's top-level keys": _stack("dev", (("encryptionsalt",), "v1:abc"), (("secretsprovider",), "awskms://k"),
                                      (("environment",), ["ml-dev"])),
    "a secret kubeconfig": _stack("local", ((*C, "existing", "kubeconfigPath"), MISSING),
                                  ((*C, "existing", "kubeconfig"), {"secure": "v1:abc"})),
    "aws:region: null on an existing cluster": _stack("local", (("config", "aws:region"), None)),
    "a CIDR as a netmask": _stack("dev", ((*C, "vpc", "cidr"), "10.40.0.0/255.255.240.0")),
    "an empty API map": _stack("dev", (A, {})),
}

REFUSED = {
    "no config: (reported: accepted by the schema)": "encryptionsalt: v1:abc\n",
    "an empty file": "",
    "a list as the file": "- config\n",
    "an invalid API under a key without the namespace": _stack("dev", (("config", "apis"), {"x": {"image": 1}}),
                                                                (A, MISSING)),
    "config: null": "config:\n",
    "config: {}": "config: {}\n",
    "an unknown top-level key": _stack("dev", (("configs",), {})),
    "no cluster": _stack("dev", (C, MISSING)),
    "cluster twice (with and without the namespace)": _stack("dev", (("config", "cluster"), {"name": "other"})),
    "an unknown modelplane key": _stack("dev", (("config", "modelplane:extra"), 1)),
    "a section in another namespace": _stack("dev", (("config", "foo:apis"), {})),
    "no aws:region on a created cluster": _stack("dev", (("config", "aws:region"), MISSING)),
    "aws:region: null on a created cluster": _stack("dev", (("config", "aws:region"), None)),
    "a region that is none": _stack("dev", (("config", "aws:region"), "mars")),
    "cpu: -1": _stack("dev", ((*A, "sentiment", "compute", "cpu"), -1)),
    "cpu: true": _stack("dev", ((*A, "sentiment", "compute", "cpu"), True)),
    "mem: 512 (a number)": _stack("dev", ((*A, "sentiment", "compute", "mem"), 512)),
    "an env name the model refuses": _stack("dev", ((*A, "sentiment", "env", "1BAD"), "x")),
    "an env name modelplane reserves": _stack("dev", ((*A, "sentiment", "env", "MODELPLANE_X"), "x")),
    "an image on latest": _stack("dev", ((*A, "sentiment", "image"), "ghcr.io/acme/sentiment-api:latest")),
    "a sidecar image without a tag": _stack("local", ((*A, "recommender", "sidecars", "ranker", "image"), "pause")),
    "a sidecar named model": _stack("local", ((*A, "recommender", "sidecars", "model"), {"image": "x:1"})),
    "an API named kube-system": _stack("dev", ((*A, "kube-system"), STACKS["dev"]["config"]["modelplane:apis"]
                                               ["sentiment"])),
    "an API name of 41 characters": _stack("dev", ((*A, "a" * 41), STACKS["dev"]["config"]["modelplane:apis"]
                                                   ["sentiment"])),
    "a null API": _stack("dev", ((*A, "sentiment"), None)),
    "maxUnavailable: 101%": _stack("prod", ((*A, "fraud-score", "updateStrategy", "maxUnavailable"), "101%")),
    "a /24 VPC": _stack("dev", ((*C, "vpc", "cidr"), "10.40.0.0/24")),
    "a CIDR that is no address": _stack("dev", ((*C, "endpoint", "publicAccessCidrs"), ["banana"])),
    "mem: 0Mi": _stack("dev", ((*A, "sentiment", "compute", "mem"), "0Mi")),
    "a window of 20s": _stack("dev", ((*A, "sentiment", "autoscaling", "window"), "20s")),
    "a stabilization period of 61m": _stack("dev", ((*A, "sentiment", "autoscaling", "upscaleStabilizationPeriod"),
                                                    "61m")),
    "a duration of 5,000 digits": _stack("dev", ((*A, "sentiment", "autoscaling", "downscaleStabilizationPeriod"),
                                                 "9" * 5000 + "s")),
    "a kubeconfig in plain text": _stack("local", ((*C, "existing", "kubeconfigPath"), MISSING),
                                         ((*C, "existing", "kubeconfig"), "apiVersion: v1")),
    "a secret at the root of the file system": _stack("dev", ((*A, "sentiment", "secrets"), {"token": "/"})),
    "a secret on the config directory": _stack("dev", ((*A, "sentiment", "secrets"),
                                                       {"token": "/etc/modelplane/config/"})),
    "the root as a writable path": _stack("dev", ((*A, "sentiment", "writablePaths"), ["//"])),
    "an image with a trailing newline": _stack("dev", ((*A, "sentiment", "image"), "acme/sentiment:1.0\n")),
}


@pytest.mark.parametrize("label", sorted(ACCEPTED))
def test_both_accept(project: Path, label: str) -> None:
    assert judge(project, Mutant(label, ACCEPTED[label])) == "accepted"


@pytest.mark.parametrize("label", sorted(REFUSED))
def test_both_refuse(project: Path, label: str) -> None:
    assert judge(project, Mutant(label, REFUSED[label])) == "refused"


def test_modelplane_validate_answers_the_reported_cases(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelplane.cli import main

    def validate(text: str) -> int:
        (project / "stacks" / "Pulumi.mutant.yaml").write_text(text, encoding="utf-8")
        return main(["--project", str(project), "validate", "--stack", "mutant"])

    assert validate(ACCEPTED["cpu: 2 (reported: refused by the schema)"]) == 0
    assert "ok  stacks/Pulumi.mutant.yaml" in capsys.readouterr().out
    assert validate(REFUSED["no config: (reported: accepted by the schema)"]) == 2
    assert "stacks/Pulumi.mutant.yaml: holds no configuration" in capsys.readouterr().err
