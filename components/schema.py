"""The JSON Schema of a stack file (``modelplane schema``), generated from the config models and the loader's rules.

It accepts what ``modelplane validate`` accepts, except where a file breaks one of
:data:`VALIDATOR_ONLY`: rules a JSON Schema cannot state (most relate two or more
values), which only ``modelplane validate`` checks and the schema's description names.
``tests/test_schema_agreement.py`` holds the two to that on mutated stack files.

What the models cannot say themselves is stated here once, from the validator's own
constants: the file's top-level keys and namespaces, the rules on one value that live
in the rule functions (:data:`_REFINEMENTS`), and ``aws:region`` for a created cluster.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .config import (
    ADDON_NAMESPACES,
    CONFIG_DIR,
    MAIN_CONTAINER,
    NAMESPACE,
    RESERVED_NAMESPACES,
    SCRAPE_INTERVAL_SECONDS,
    SHM_DIR,
    SOCKET_DIR,
    ApiConfig,
    AutoscalingConfig,
    ComputeConfig,
    ContainerComputeConfig,
    DnsLabel,
    ExistingClusterConfig,
    SidecarConfig,
    UpdateStrategyConfig,
    VpcConfig,
)
from .config._base import AWS_REGION, cidr_pattern
from .config.apis import PINNED_IMAGE
from .config.estate import _NAMESPACE_OF_OTHERS, _SECTIONS, _required_keys
from .config.loading import STACK_FILE_KEYS
from .reference import SECTIONS

__all__ = ["DRAFT", "VALIDATOR_ONLY", "duration_pattern", "json_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect of :func:`json_schema`."""

VALIDATOR_ONLY: dict[str, str] = {
    "duplicate-key": "a key twice in one YAML mapping (a JSON Schema sees the parsed file, in which the last one won)",
    "near-namespace": "a key in a namespace that looks like a misspelling of modelplane (modelplan:extra)",
    "whole-float": "a whole number written as a float (minSize: 2.0) where an integer belongs: JSON does not tell "
                   "2.0 from 2",
    "cpu-decimals": "a CPU number with more than three decimals (cpu: 0.0001)",
    "cidr-host-bits": "a CIDR with host bits set (10.0.0.1/16)",
    "sizes": "minSize <= desiredSize <= maxSize of a node group, and minSize <= maxSize of systemNodeGroup",
    "instance-types": "a node group's (and systemNodeGroup's) instance types known to modelplane (offline: its "
                      "bundled table) and of one architecture, GPU types in a GPU group, an amiType that suits gpu "
                      "and the architecture, gpusPerNode only with gpu",
    "system-group": "the node-group name system on a cluster modelplane creates",
    "node-group-fit": "an API's nodeGroup is declared; a GPU API runs on a GPU group; one replica's pod (every "
                      "container, the proxy included) fits the GPUs, CPU, memory and pod slots one node of each of "
                      "the group's instance types has after the kubelet reserve and the DaemonSets",
    "certificate": "an exposed API's certificate gives exactly one of arn and zone",
    "replicas": "minReplicas <= maxReplicas",
    "metric": "what the autoscaling metric needs and allows: its own keys only (targetInFlight, targetRps, "
              "targetQueueLength, targetUtilization, custom, activationThreshold, the tolerances), the proxy for "
              "inFlight and rps, a queue for queue, compute.cpu for cpu, compute.mem for memory, targetInFlight "
              "within maxConcurrency + maxQueueLength, minReplicas 0 only with queue or custom, tolerances only "
              "from Kubernetes 1.35",
    "queue": "the name of a queue modelplane creates (<cluster>-<api>) within 80 characters; "
             "visibilityTimeoutSeconds only for such a queue",
    "proxy": "maxQueueLength only with the proxy on; with it on: an API port other than the proxy's, no sidecar "
             "named proxy, a pinned proxy.image, some proxy.cpu and proxy.mem",
    "sidecars": "a sidecar probe needs the sidecar's port; no two containers of a pod share a port",
    "rollout": "maxSurge and maxUnavailable not both 0; minReadySeconds below progressDeadlineSeconds",
    "mounts": "secrets and writablePaths name distinct directories, not /dev/shm with compute.shm, the config "
              "directory with configFiles nor the socket directory with sidecars",
    "resources": "compute.shm below compute.mem; some CPU for a GPU API; configFiles of 900 KiB at most in all",
    "vpc": "an existing VPC (vpc.id) with two privateSubnetIds at least and no cidr, availabilityZones or "
           "natGateways; subnet ids only with vpc.id",
    "endpoint": "endpoint public or private; private off only with 0.0.0.0/0 in publicAccessCidrs",
    "prometheus": "prometheus.retention only for a Prometheus modelplane installs; prometheus.scrapers when an "
                  "isolated API scales on request metrics of a Prometheus outside the cluster",
    "traffic": "expose: a certificate of exactly one of arn and zone, a host inside a zone certificate's zone, "
               "allowHttp only without a certificate, a certificate for a public API unless allowHttp, at most 5 "
               "values (path, host, allowFrom CIDRs) in one listener rule; per load balancer: a host and path "
               "once, HTTPS for all APIs or none, one idleTimeoutSeconds; a canary only with expose, its "
               "maxReplicas not below its minReplicas; a canary or shadow with a pinned image other than the "
               "API's run, a shadow only with the proxy on, not both",
    "existing": "on an existing cluster: exactly one of kubeconfig, kubeconfigPath and stackReference; "
                "oidcProviderArn together with oidcIssuer; none of the keys of a cluster or nodes modelplane "
                "creates (vpc, endpoint, systemNodeGroup, logTypes, deletionProtection, desiredSize, diskSizeGib, "
                "amiType); add-ons that fit (clusterAutoscaler install needs the OIDC provider and aws:region, "
                "prometheus install not with prometheus.url, prometheus.url for request metrics without an "
                "installed Prometheus, KEDA and the device plugin for the APIs that need them, the load balancer "
                "controller for exposed APIs, installed with the OIDC provider, aws:region and vpcId, present with "
                "vpcCidr or vpcId); the OIDC "
                "provider for modelUri and queue; aws:region for a queue modelplane creates",
    "capacity-engine": "what a node group's capacity engine allows: minSize and desiredSize only on managed node "
                       "groups, disruption only on Karpenter NodePools, a budget's schedule together with its "
                       "duration, a startupTime above 0s; karpenter only on a cluster modelplane creates; no group "
                       "named like a spotWithFallback group's on-demand fallback (<group>-on-demand)",
}
"""Rules that only ``modelplane validate`` checks, by id: the schema accepts a file that breaks them."""

REQUIRED_SECTIONS = ("cluster",)
"""The sections :func:`~modelplane.config.parse_estate` requires (the others default to empty)."""


def _literal(text: str) -> str:
    """``text`` as a regular expression that matches it (ECMA-262 and Python alike)."""
    return "".join("\\" + c if c in r".^$*+?()[]{}|\/" else c for c in text)


def _span(low: str, high: str) -> str:
    """A regular expression of the digit strings from ``low`` to ``high`` (of one length, low <= high)."""
    if not low:
        return ""
    if low[0] == high[0]:
        return low[0] + _span(low[1:], high[1:])
    rest = len(low) - 1
    low_whole, high_whole = low[1:] == "0" * rest, high[1:] == "9" * rest
    first, last = int(low[0]) + (not low_whole), int(high[0]) - (not high_whole)
    parts = [] if low_whole else [low[0] + _span(low[1:], "9" * rest)]
    if first <= last:
        parts.append((f"[{first}-{last}]" if first < last else str(first)) + "[0-9]" * min(rest, 1)
                     + (f"{{{rest}}}" if rest > 1 else ""))
    if not high_whole:
        parts.append(high[0] + _span("0" * rest, high[1:]))
    return parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"


def _int_range(low: int, high: int) -> str:
    """A regular expression of the decimal integers ``low``..``high``, leading zeros allowed; ``""`` for none."""
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start, end = max(low, 10 ** (digits - 1) if digits > 1 else 0), min(high, 10 ** digits - 1)
        if start <= end:
            parts.append(_span(str(start), str(end)))
    return f"0*({'|'.join(parts)})" if parts else ""


def duration_pattern(low: int, high: int) -> str:
    """A regular expression of the config durations (``90s``, ``5m``, ``1h``, ``2d``) of ``low`` to ``high`` seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = [f"{span}{unit}" for unit, seconds in units.items()
             if (span := _int_range(math.ceil(low / seconds), high // seconds))]
    return f"^({'|'.join(parts)})$"


_REFINEMENTS: list[tuple[type[BaseModel], str, str, dict[str, Any]]] = [
    # (model, key, where in its schema: "" the value, "items", "keys" or "values" of it, what it must match too)
    (ApiConfig, "image", "", {"pattern": PINNED_IMAGE.pattern}),
    (SidecarConfig, "image", "", {"pattern": PINNED_IMAGE.pattern}),
    (ApiConfig, "sidecars", "keys", {"not": {"const": MAIN_CONTAINER}}),
    (ApiConfig, "env", "keys", {"not": {"type": "string", "pattern": "^MODELPLANE_"}}),
    (SidecarConfig, "env", "keys", {"not": {"type": "string", "pattern": "^MODELPLANE_"}}),
    (UpdateStrategyConfig, "maxUnavailable", "", {"pattern": "^([0-9]{1,2}|0[0-9]{2}|100)%$"}),
    (VpcConfig, "cidr", "", {"pattern": cidr_pattern(range(16, 21))}),
    (ContainerComputeConfig, "mem", "", {"not": {"type": "string", "pattern": r"^0+(\.0+)?[A-Za-z]*$"}}),
    (ComputeConfig, "mem", "", {"not": {"type": "string", "pattern": r"^0+(\.0+)?[A-Za-z]*$"}}),
    (ComputeConfig, "shm", "", {"not": {"type": "string", "pattern": r"^0+(\.0+)?[A-Za-z]*$"}}),
    (AutoscalingConfig, "window", "", {"pattern": duration_pattern(2 * SCRAPE_INTERVAL_SECONDS, 3600)}),
    (AutoscalingConfig, "upscaleStabilizationPeriod", "", {"pattern": duration_pattern(0, 3600)}),
    (AutoscalingConfig, "downscaleStabilizationPeriod", "", {"pattern": duration_pattern(0, 3600)}),
    (ExistingClusterConfig, "kubeconfig", "", {"not": {"type": "string"}}),
    (ApiConfig, "secrets", "values", {"not": {"type": "string", "pattern": "^(/+|" + "|".join(
        f"{_literal(d)}/*" for d in (CONFIG_DIR, SOCKET_DIR, SHM_DIR)) + ")$"}}),
    (ApiConfig, "writablePaths", "items", {"not": {"type": "string", "pattern": "^/+$"}}),
]
"""Rules on one value that the rule functions check (``_check_api``, ``_check_cluster``, ``_check_autoscaling``,
``_check_existing``), stated for the schema. A stack file keeps secrets as ``{secure: ...}``: a kubeconfig string
in it is plain text, which ``_check_existing`` refuses."""


class _StackFileSchema(GenerateJsonSchema):
    """pydantic's schema generator, with maps whose keys are constrained stated as the validator checks them."""

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        # pydantic states a key pattern as patternProperties, which leaves keys that do not match it
        # unconstrained; the model refuses them.
        out = super().dict_schema(schema)
        patterns = out.pop("patternProperties", None)
        if patterns:
            ((pattern, value),) = patterns.items()
            out["propertyNames"] = {**out.get("propertyNames", {}), "pattern": pattern}
            out["additionalProperties"] = value
        return out


def _refine(defs: dict[str, Any]) -> None:
    for model, key, where, rule in _REFINEMENTS:
        target = defs[model.__name__]["properties"][key]
        if where:
            target = target[{"items": "items", "keys": "propertyNames", "values": "additionalProperties"}[where]]
        target.setdefault("allOf", []).append(rule)


def _description() -> str:
    rules = "; ".join(f"{text} [{rule}]" for rule, text in VALIDATOR_ONLY.items())
    return (f"A modelplane stack file, stacks/Pulumi.<stack>.yaml. It accepts what `modelplane validate` accepts, "
            f"except for these rules, which a JSON Schema cannot state (most relate two or more values) and "
            f"only `modelplane validate` checks: {rules}.")


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a ``stacks/Pulumi.<stack>.yaml`` file, for editors and CI."""
    defs: dict[str, Any] = {}
    names = TypeAdapter(DnsLabel).json_schema()
    sections: dict[str, Any] = {}
    for section, model, keyed in SECTIONS:
        schema = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}",
                                         schema_generator=_StackFileSchema)
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
        ref = {"$ref": f"#/$defs/{model.__name__}"}
        if keyed:
            # A null entry is read as {} (`sentiment:` with nothing under it).
            entry = ref if _required_keys(model) else {"anyOf": [ref, {"type": "null"}]}
            sections[section] = {"type": "object", "propertyNames": names, "additionalProperties": entry}
        else:
            sections[section] = ref if section in REQUIRED_SECTIONS else {"anyOf": [ref, {"type": "null"}]}
    _refine(defs)
    sections["apis"]["propertyNames"] = {**names, "not": {"enum": [*RESERVED_NAMESPACES, *ADDON_NAMESPACES]}}
    missing = set(_SECTIONS) - set(sections)
    if missing:
        raise RuntimeError(f"config sections without a model in reference.SECTIONS: {sorted(missing)}")

    # Pulumi reads a key without a namespace as the project's (`apis` is modelplane:apis).
    spellings = {s: (s, f"{NAMESPACE}:{s}") for s in sections}
    section_names = "|".join(sections)
    others = "|".join(_NAMESPACE_OF_OTHERS)
    keys = {"anyOf": [
        {"enum": [k for pair in spellings.values() for k in pair]},
        {"pattern": rf"^({others}):[^:\s]+$"},
        {"pattern": r"^[^:\s]+:[^:\s]+$",
         "not": {"anyOf": [{"pattern": f"^{NAMESPACE}:"}, {"pattern": f"^[^:]+:({section_names})$"}]}},
    ]}
    properties: dict[str, Any] = {"aws:region": {
        "type": ["string", "null"], "pattern": AWS_REGION.pattern,
        "description": "AWS region; required unless the cluster is an existing one that uses no AWS service."}}
    for section, schema in sections.items():
        for key in spellings[section]:
            properties[key] = schema
    existing = {"anyOf": [{"required": [key], "properties": {key: {
        "required": ["existing"], "properties": {"existing": {"type": "object"}}}}} for key in spellings["cluster"]]}
    config = {
        "type": "object",
        "description": f"Pulumi config: `namespace:key` to value; keys without a namespace are {NAMESPACE}'s. Keys "
                       f"of other namespaces are left to their providers.",
        "propertyNames": keys,
        "properties": properties,
        "allOf": [
            *({"anyOf": [{"required": [k]} for k in spellings[s]]} for s in REQUIRED_SECTIONS),
            *({"not": {"required": list(pair)}} for pair in spellings.values()),
            {"if": existing, "else": {"required": ["aws:region"], "properties": {"aws:region": {"type": "string"}}}},
        ],
    }
    return {
        "$schema": DRAFT,
        "title": "modelplane stack file",
        "description": _description(),
        "type": "object",
        "properties": {"config": config, **{k: {"description": "Pulumi's own setting (left to Pulumi)."}
                                            for k in STACK_FILE_KEYS if k != "config"}},
        "required": ["config"],
        "additionalProperties": False,
        "$defs": defs,
    }
