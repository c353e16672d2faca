"""Docs generated from the config models: the README's config reference and
the stack file's JSON Schema. Nothing here restates a field by hand."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .config import NAMESPACE, ApiConfig, ClusterConfig, NodeGroupConfig, _inner_model

__all__ = ["SECTIONS", "config_reference", "json_schema"]

SECTIONS: list[tuple[str, type[BaseModel], bool]] = [
    ("cluster", ClusterConfig, False),
    ("nodeGroups", NodeGroupConfig, True),
    ("apis", ApiConfig, True),
]
"""(key under the ``modelplane`` namespace, model, whether it is a map keyed by name)."""


def _shape(schema: dict[str, Any]) -> str:
    """A short type description from a property's JSON Schema."""
    if "$ref" in schema:
        return "object"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "anyOf" in schema:
        return " or ".join(dict.fromkeys(_shape(s) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_shape(schema.get('items', {}))}"
    if kind == "object":
        return f"map of {_shape(schema.get('additionalProperties', {'type': 'string'}))}"
    if schema.get("format") == "ipv4network":
        return "CIDR"
    if kind == "string" and str(schema.get("pattern", "")).endswith("%$"):
        return "percent"
    return {"integer": "int", "number": "number", "boolean": "bool", "string": "string",
            "null": "null"}.get(str(kind), "any")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "(see below)"
    return "`" + json.dumps(value, default=str) + "`"


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    schema = model.model_json_schema(by_alias=True)
    rows = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        key = f"{prefix}.{alias}"
        doc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append((key, _shape(schema["properties"][alias]), _default(field), doc))
        nested = _inner_model(field.annotation)
        if nested is not None:
            rows += _rows(nested, key + ("[]" if repr(field.annotation).startswith("list") else ""))
    return rows


def config_reference() -> str:
    """Markdown tables of every config key, its type, default and doc."""
    out: list[str] = []
    for section, model, keyed in SECTIONS:
        prefix = f"{NAMESPACE}:{section}" + (".<name>" if keyed else "")
        out.append(f"### `{NAMESPACE}:{section}`\n")
        out.append((model.__doc__ or "").strip() + "\n")
        out.append("| key | type | default | description |")
        out.append("|---|---|---|---|")
        for key, type_name, default, doc in _rows(model, prefix):
            out.append(f"| `{key}` | {type_name} | {default} | {doc} |")
        out.append("")
    return "\n".join(out)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a ``stacks/Pulumi.<stack>.yaml`` file, for editor completion."""
    defs: dict[str, Any] = {}
    properties: dict[str, Any] = {"aws:region": {"type": "string", "description": "AWS region."}}
    for section, model, keyed in SECTIONS:
        schema = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
        ref = {"$ref": f"#/$defs/{model.__name__}"}
        properties[f"{NAMESPACE}:{section}"] = (
            {"type": "object", "additionalProperties": ref, "propertyNames": {"pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"}}
            if keyed else ref)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "modelplane stack file",
        "type": "object",
        "properties": {"config": {"type": "object", "properties": properties, "required": [
            f"{NAMESPACE}:cluster", "aws:region"]}},
        "$defs": defs,
    }
