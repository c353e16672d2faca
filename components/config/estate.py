"""The whole estate: validate a stack's config map at once and collect every issue with its key path."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from .. import catalog

from ._base import AWS_REGION, NAMESPACE, ConfigError, Issue, _did_you_mean, _Model, _show
from .apis import (
    ADDON_NAMESPACES,
    RESERVED_NAMESPACES,
    ApiConfig,
    _check_api,
    _check_partly_valid_api,
    effective_update_strategy,
)
from .autoscaling import uses_keda, uses_prometheus
from .cluster import ClusterConfig, _check_cluster
from .existing import ExistingClusterConfig, _check_existing, _existing_warnings, addon_mode
from .guardrails import GuardrailsConfig, _check_guardrails
from .network import _check_scrapers
from .traffic import _check_load_balancers
from .node_groups import (FALLBACK_SUFFIX, RESERVED_GROUP, NodeGroupConfig, _check_node_group, gpus_per_node,
                          unknown_type_issue)
from .schedulability import GroupNeed, NodeShape, check_pod_fit, group_need, headroom_warnings, node_shape


@dataclass(frozen=True)
class EstateConfig:
    """A whole validated estate: what one stack file describes."""

    source: str
    """The stack file (or config source) it came from, for messages."""
    region: str | None
    """AWS region (``aws:region``); None only for an existing cluster that uses no AWS service."""
    cluster: ClusterConfig
    node_groups: dict[str, NodeGroupConfig] = field(default_factory=dict)
    apis: dict[str, ApiConfig] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """Things that are valid but worth a second look; the plan prints them."""
    guardrails: GuardrailsConfig = GuardrailsConfig()
    """What the policy pack enforces on the stack."""

    def gpus_per_node(self, group: str) -> int:
        """GPUs on one node of ``group`` (0 for CPU groups)."""
        return gpus_per_node(self.node_groups[group])

    def node_shape(self, group: str) -> NodeShape | None:
        """What one node of ``group`` offers the APIs' pods (its smallest type, after the kubelet reserve and DaemonSets)."""
        return node_shape(self.node_groups[group], self.installs_prometheus)

    def node_need(self, group: str) -> GroupNeed | None:
        """Nodes ``group`` needs at minReplicas and at maxReplicas plus the largest surge (None: no API runs there)."""
        return group_need(group, self.node_groups[group], self.apis, self.installs_prometheus)

    def max_surge(self, api: str) -> int | str:
        """The API's effective ``maxSurge``."""
        return effective_update_strategy(self.apis[api])[0]

    def max_unavailable(self, api: str) -> int | str:
        """The API's effective ``maxUnavailable``."""
        return effective_update_strategy(self.apis[api])[1]

    @property
    def needs_keda(self) -> bool:
        """Some API scales through KEDA."""
        return any(uses_keda(api) for api in self.apis.values())

    @property
    def existing(self) -> ExistingClusterConfig | None:
        """The existing cluster the estate installs into, or None when modelplane creates EKS."""
        return self.cluster.existing

    def addon(self, name: str) -> str:
        """``install``, ``present`` or ``none``: what the cluster does about an add-on (see :func:`addon_mode`)."""
        return addon_mode(self.cluster, self.node_groups, name)

    @property
    def installs_keda(self) -> bool:
        """The estate installs KEDA: an API scales through it and the cluster does not bring its own."""
        return self.needs_keda and self.addon("keda") == "install"

    @property
    def installs_prometheus(self) -> bool:
        """The cluster gets a kube-prometheus-stack release: an API needs Prometheus and no URL is given."""
        return self.addon("prometheus") == "install" and any(uses_prometheus(a) for a in self.apis.values())

    @property
    def pod_monitors(self) -> bool:
        """APIs get PodMonitors: a Prometheus Operator runs (installed here, or present)."""
        return self.installs_prometheus or self.addon("prometheus") == "present"

    @property
    def installs_device_plugin(self) -> bool:
        """The estate installs the NVIDIA device plugin."""
        return self.addon("nvidiaDevicePlugin") == "install"

    @property
    def installs_cluster_autoscaler(self) -> bool:
        """The estate installs the cluster autoscaler."""
        return self.addon("clusterAutoscaler") == "install"

    @property
    def karpenter(self) -> bool:
        """The cluster's node groups are Karpenter NodePools (``cluster.capacityEngine: karpenter``)."""
        return self.existing is None and self.cluster.capacity_engine == "karpenter"

    @property
    def spot_first_managed_groups(self) -> list[str]:
        """``spotWithFallback`` groups made as managed node groups: each gets an on-demand fallback group."""
        if self.existing is not None or self.karpenter:
            return []
        return [n for n, g in self.node_groups.items() if g.capacity_type == "spotWithFallback"]

    @property
    def needs_load_balancer_controller(self) -> bool:
        """Some API is exposed (``expose``): the AWS Load Balancer Controller makes its load balancer."""
        return any(api.expose is not None for api in self.apis.values())

    @property
    def installs_load_balancer_controller(self) -> bool:
        """The estate installs the AWS Load Balancer Controller: an API is exposed and the cluster has none of its own."""
        return self.needs_load_balancer_controller and self.addon("loadBalancerController") == "install"


_SECTIONS: dict[str, str] = {
    "cluster": "ClusterConfig",
    "nodeGroups": "NodeGroupConfig map",
    "apis": "ApiConfig map",
    "guardrails": "GuardrailsConfig",
}


def parse_estate(config: Mapping[str, Any], source: str, secret_keys: Collection[str] = ()) -> EstateConfig:
    """Validate a stack's whole config map; raise :class:`ConfigError` with every issue found.

    ``secret_keys`` are the config keys the Pulumi engine decrypted (a secret inside
    ``modelplane:cluster`` makes that whole key secret); a kubeconfig in plain text is
    accepted only under one of them.
    """
    issues: list[Issue] = []

    def key(name: str) -> str:
        return f"{NAMESPACE}:{name}"

    config = _qualified_keys(config, issues)
    if not config and not issues:
        raise ConfigError(source, [Issue((), "holds no configuration; a stack file starts with `config:` and "
                                             f"needs at least {key('cluster')} (and aws:region unless the "
                                             "cluster is an existing one); see stacks/Pulumi.dev.yaml")])

    cluster = _validate(ClusterConfig, config.get(key("cluster")), (key("cluster"),), issues,
                        required=True)
    existing = _existing_section(config.get(key("cluster")), cluster)
    region = config.get("aws:region")
    if (region is not None or not existing) and (
            not isinstance(region, str) or not AWS_REGION.fullmatch(region)):
        optional = "; an existing cluster that uses no AWS service may leave it out" if existing else ""
        issues.append(Issue(("aws:region",), f"must be an AWS region such as us-east-1, got {region!r}{optional}"))
    node_groups = _validate_map(NodeGroupConfig, config.get(key("nodeGroups"), {}),
                                (key("nodeGroups"),), issues)
    apis = _validate_map(ApiConfig, config.get(key("apis"), {}), (key("apis"),), issues)

    raw_groups = config.get(key("nodeGroups"), {})
    group_names = sorted(str(n) for n in raw_groups) if isinstance(raw_groups, dict) else []
    warnings: list[str] = []
    if cluster is not None:
        issues += _check_cluster(cluster, (key("cluster"),), warnings)
    for name, group in node_groups.items():
        if name == RESERVED_GROUP and not existing:
            issues.append(Issue((key("nodeGroups"), name), f"{RESERVED_GROUP!r} is the cluster's own add-on "
                                "group (cluster.systemNodeGroup); pick another name"))
        engine = "existing" if existing else cluster.capacity_engine if cluster is not None else "managedNodeGroups"
        issues += _check_node_group(group, (key("nodeGroups"), name), engine)
        fallback = f"{name}{FALLBACK_SUFFIX}"
        if engine == "managedNodeGroups" and group.capacity_type == "spotWithFallback" and fallback in node_groups:
            issues.append(Issue((key("nodeGroups"), name, "capacityType"),
                                f"spotWithFallback makes an on-demand group named {fallback!r}, which is declared "
                                "too; rename that group"))
    for name, api in apis.items():
        issues += _check_api(name, api, node_groups, group_names, (key("apis"), name), cluster)
    if cluster is not None and cluster.existing is not None:
        issues += _check_existing(cluster, node_groups, apis, region if isinstance(region, str) else None,
                                  secret_keys)
    raw_apis = config.get(key("apis"), {})
    for name, entry in (raw_apis.items() if isinstance(raw_apis, dict) else ()):
        if not isinstance(name, str):
            continue  # reported by _validate_map as an invalid name
        if name in RESERVED_NAMESPACES:
            issues.append(Issue((key("apis"), name), f"{name!r} is a namespace Kubernetes owns and each API "
                                "gets a namespace of its own name; pick another API name"))
        if name in ADDON_NAMESPACES:
            issues.append(Issue((key("apis"), name), f"{name!r} is the namespace of {ADDON_NAMESPACES[name]}, an "
                                "add-on of the cluster, and each API gets a namespace of its own name; pick "
                                "another API name"))
        if name not in apis and isinstance(entry, dict):
            issues += _check_partly_valid_api(name, entry, issues, node_groups, group_names, (key("apis"), name),
                                              cluster)

    raw_guardrails = config.get(key("guardrails"))
    issues += _check_load_balancers(apis, (key("apis"),))
    guardrails = _validate(GuardrailsConfig, {} if raw_guardrails is None else raw_guardrails, (key("guardrails"),),
                           issues)
    if guardrails is not None:
        issues += _check_guardrails(guardrails, apis, (key("guardrails"),))
    if cluster is not None:
        installs = addon_mode(cluster, node_groups, "prometheus") == "install" and any(
            uses_prometheus(a) for a in apis.values())
        pod_monitors = installs or addon_mode(cluster, node_groups, "prometheus") == "present"
        issues += _check_scrapers(cluster, apis, installs, pod_monitors,
                                  (key("cluster"), "prometheus", "scrapers"), warnings)
        # The kube-prometheus-stack modelplane installs runs a node exporter on every node.
        issues += check_pod_fit(apis, node_groups, installs, (key("apis"),))
        if cluster.existing is None and catalog.lookup(cluster.system_node_group.instance_type) is None:
            issues.append(unknown_type_issue(cluster.system_node_group.instance_type,
                                             (key("cluster"), "systemNodeGroup", "instanceType")))

    if issues:
        raise ConfigError(source, issues)
    assert cluster is not None and guardrails is not None and (region is None or isinstance(region, str))
    node_exporter = addon_mode(cluster, node_groups, "prometheus") == "install" and any(
        uses_prometheus(a) for a in apis.values())
    warnings += headroom_warnings(node_groups, apis, node_exporter)
    if cluster.existing is not None:
        warnings += _existing_warnings(cluster, apis)
    return EstateConfig(source=source, region=region, cluster=cluster,
                        node_groups=dict(sorted(node_groups.items())),
                        apis=dict(sorted(apis.items())), warnings=warnings, guardrails=guardrails)


_NAMESPACE_OF_OTHERS = ("aws", "kubernetes", "pulumi", "eks")
"""Config namespaces of the providers a stack file may also configure (left alone)."""


def _qualified_keys(config: Mapping[Any, Any], issues: list[Issue]) -> dict[str, Any]:
    """The config map with every key as Pulumi reads it (``namespace:name``), reporting keys it would refuse.

    Pulumi qualifies a key without a namespace with the project's (``apis`` is ``modelplane:apis``)
    and refuses keys that are not strings or have more than one colon. modelplane refuses, besides,
    a key written both ways (Pulumi silently keeps the last), its own keys with a misspelt namespace
    (``modelplan:apis`` would deploy an estate without APIs) and unknown keys of its namespace.
    """
    qualified: dict[str, Any] = {}
    sections = [f"{NAMESPACE}:{s}" for s in _SECTIONS]
    for raw, value in config.items():
        if not isinstance(raw, str) or not re.fullmatch(r"[^:\s]+(:[^:\s]+)?", raw):
            issues.append(Issue((str(raw),), f"is not a configuration key: keys are text of the form "
                                             f"<namespace>:<name> (e.g. {NAMESPACE}:apis), got {_show(raw)}"))
            continue
        name = raw if ":" in raw else f"{NAMESPACE}:{raw}"
        if name in qualified:
            issues.append(Issue((name,), f"is given twice, as {raw!r} and with its namespace; Pulumi reads a key "
                                         f"without a namespace as {NAMESPACE}:<key>: keep one"))
            continue
        namespace, _, section = name.partition(":")
        if namespace == NAMESPACE and section not in _SECTIONS:
            hint = _did_you_mean(name, sections)
            issues.append(Issue((name,), f"unknown key{hint}; valid keys are {', '.join(sections)}"))
            continue
        if namespace != NAMESPACE and namespace not in _NAMESPACE_OF_OTHERS and (
                section in _SECTIONS or _did_you_mean(namespace, [NAMESPACE])):
            hint = _did_you_mean(name, sections) or f" (did you mean '{NAMESPACE}:{section}'?)"
            issues.append(Issue((raw,), f"is in namespace {namespace!r}, which modelplane does not read{hint}"))
            continue
        qualified[name] = value
    return qualified


def _existing_section(raw_cluster: Any, cluster: ClusterConfig | None) -> bool:
    """Whether the stack declares an existing cluster (judged from the raw file when the section is broken)."""
    if cluster is not None:
        return cluster.existing is not None
    return isinstance(raw_cluster, dict) and raw_cluster.get("existing") is not None


def _validate(model: type[_Model], value: Any, path: tuple[str | int, ...], issues: list[Issue],
              required: bool = False) -> Any:
    if value is None:
        if required:
            issues.append(Issue(path, f"is required: the {model.__name__.removesuffix('Config').lower()} "
                                      f"settings (required keys: {', '.join(_required_keys(model))})"))
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        issues.extend(_issues_from_pydantic(model, exc, path))
        return None


def _validate_map(model: type[_Model], value: Any, path: tuple[str | int, ...],
                  issues: list[Issue]) -> dict[str, Any]:
    if not isinstance(value, dict):
        issues.append(Issue(path, f"must be a mapping of name to settings, got {type(value).__name__}"))
        return {}
    parsed: dict[str, Any] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) \
                or len(name) > 40:
            issues.append(Issue(path + (str(name),), "is not a valid name: use lower-case letters, digits "
                                                    "and hyphens, starting with a letter, at most 40 "
                                                    "characters (it names Kubernetes and AWS objects)"))
            continue
        result = _validate(model, entry if entry is not None else {}, path + (name,), issues)
        if result is not None:
            parsed[name] = result
    return parsed


def _required_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items() if f.is_required()]


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that owns the key at ``loc`` (for listing the valid keys there)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list field: its model is the list's item model
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {f.alias or n: f for n, f in current.model_fields.items()}
        found = by_alias.get(str(part))
        if found is None:
            return None
        current = _inner_model(found.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _issues_from_pydantic(model: type[BaseModel], exc: ValidationError,
                          path: tuple[str | int, ...]) -> Iterator[Issue]:
    by_loc: dict[tuple[str | int, ...], list[str]] = {}
    for error in exc.errors(include_url=False):
        # pydantic names union branches in the loc ("int", "constrained-str", "function-before[...]");
        # they are not keys of the file.
        kind = error["type"]
        raw = tuple(error["loc"])
        # The key an extra_forbidden error names is the user's, whatever it spells ("int", "none").
        keep = raw[-1:] if kind == "extra_forbidden" else ()
        head = raw[:-1] if keep else raw
        loc = tuple(part for part in head if not (isinstance(part, str) and _is_branch_tag(part))) + keep
        if kind == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            keys = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
            message = f"unknown key {loc[-1]!r}{_did_you_mean(str(loc[-1]), keys)}; valid keys here: {', '.join(keys)}"
        elif kind == "missing":
            message = "is required"
            if (owner := _model_at(model, loc)) is not None:
                message += f" (required keys: {', '.join(_required_keys(owner))})"
        elif kind == "value_error":
            message = str((error.get("ctx") or {}).get("error") or error["msg"])  # our own validators' sentences
        else:
            message = error["msg"].rstrip(".") + f"; got {_show(error.get('input'))}" + _quote_hint(error)
            if kind == "literal_error" and isinstance(error.get("input"), str):
                message += _did_you_mean(error["input"], _literal_values(error))
        messages = by_loc.setdefault(loc, [])
        if message not in messages:
            messages.append(message)
    for loc, messages in by_loc.items():
        if len(messages) > 1:
            # A value that fits none of a union's branches: one issue listing what each branch wanted.
            got = messages[0].rsplit("; got ", 1)[-1]
            wanted = " or ".join(dict.fromkeys(m.rsplit("; got ", 1)[0] for m in messages))
            messages = [f"{wanted}; got {got}"]
        yield Issue(path + loc, messages[0])


def _literal_values(error: Any) -> list[str]:
    """The values a literal_error wanted (pydantic gives them as text: ``'a', 'b' or 'c'``; strings are quoted)."""
    return re.findall(r"'((?:[^'\\]|\\.)*)'", str((error.get("ctx") or {}).get("expected", "")))


def _quote_hint(error: Any) -> str:
    """A hint for a number YAML read where text was wanted (``kubernetesVersion: 1.33``): quote it."""
    value = error.get("input")
    wants_text = error["type"] in ("literal_error", "string_type", "string_pattern_mismatch")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and wants_text:
        return f" (a number to YAML; quote it for text: \"{value}\")"
    return ""


def _is_branch_tag(part: str) -> bool:
    return "[" in part or part in ("int", "str", "float", "bool", "list", "dict", "none") \
        or part.startswith(("constrained-", "function-", "lax-", "strict-"))
