"""The pack on resources registered offline (``modelplane plan``, the tests), sent through it as the engine would.

The same calls in the same order as a ``pulumi preview --policy-pack``:
ConfigureStack with the stack's config, GetAnalyzerInfo, Configure with the
levels it reported, Analyze per resource with its inputs (through a protobuf
Struct, so numbers arrive as floats), then AnalyzeStack over all of them. The
one difference: offline, stack rules see inputs where the engine gives them
outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel

from .pack import PACK_NAME, Pack, servicer_class

__all__ = ["Diagnostic", "Registered", "evaluate"]

LEVELS = {analyzer_pb2.MANDATORY: "mandatory", analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.DISABLED: "disabled"}


class Registered(Protocol):
    """A registered resource as an offline run records it."""

    type: str
    name: str
    urn: str
    parent: str | None
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Diagnostic:
    """One violation: the rule, its level on this stack, the resource's name ("" for the stack) and the message."""

    policy: str
    level: str
    resource: str
    message: str


def _engine_config(config: Mapping[str, Any]) -> dict[str, str]:
    # The engine sends every config value as text, structured values as JSON.
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(value))
    return message


def evaluate(stack: str, config: Mapping[str, Any], resources: Iterable[Registered],
             project: str = "modelplane") -> list[Diagnostic]:
    """Every diagnostic the pack reports on ``resources`` of ``stack`` whose stack file holds ``config``."""
    resources = list(resources)
    pack = Pack()
    servicer = servicer_class(pack)(PACK_NAME, "0.1.0", pack.policies, EnforcementLevel.ADVISORY,
                                    pack.initial_config)
    servicer.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(stack=stack, project=project,
                                                                       config=_engine_config(config)), None)
    info = servicer.GetAnalyzerInfo(empty_pb2.Empty(), None)
    configure = analyzer_pb2.ConfigureAnalyzerRequest()
    for policy in info.policies:
        configure.policyConfig[policy.name].enforcementLevel = policy.enforcementLevel
        if policy.name in info.initialConfig:
            configure.policyConfig[policy.name].properties.CopyFrom(info.initialConfig[policy.name].properties)
    servicer.Configure(configure, None)

    names = {r.urn: r.name for r in resources}
    found: list[Diagnostic] = []

    def collect(response: Any, default: str = "") -> None:
        for d in response.diagnostics:
            resource = names.get(d.urn, default) if d.urn else default
            found.append(Diagnostic(d.policyName, LEVELS[d.enforcementLevel], resource, d.message))

    for r in resources:
        collect(servicer.Analyze(analyzer_pb2.AnalyzeRequest(type=r.type, name=r.name, urn=r.urn,
                                                             properties=_struct(r.inputs)), None), r.name)
    collect(servicer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r.type, name=r.name, urn=r.urn, parent=r.parent or "",
                                      properties=_struct(r.inputs)) for r in resources]), None))
    return found
