"""Shared pieces of the config model: the namespace, value types, the base model, issues and errors."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

NAMESPACE = "modelplane"
"""The Pulumi config namespace every estate key lives in (``modelplane:<key>``)."""

AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
"""An AWS region name (``us-east-1``), the value of ``aws:region``."""


def _number_to_str(value: Any) -> Any:
    # YAML reads `cpu: 1` as an int; Kubernetes quantities are strings. A whole float is written as an
    # int (1e16 would otherwise become "1e+16"): JSON, and so the JSON Schema, does not tell 2.0 from 2.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=40)]

_CPU_TEXT = StringConstraints(pattern=r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")

CpuQuantity = Annotated[str, BeforeValidator(_number_to_str, json_schema_input_type=Annotated[str, _CPU_TEXT]
                                             | Annotated[float, Field(ge=0)]),
                        _CPU_TEXT]
"""A CPU quantity: ``500m``, ``"2"`` or the number ``2`` (at most three decimals, which the JSON Schema cannot say)."""

MemQuantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")]

Duration = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}(s|m|h|d)$")]
"""A period such as ``90s``, ``5m``, ``1h`` or ``2d``; nine digits at most (more would be no period a stack means)."""

IntOrPercent = Annotated[int, Field(ge=0)] | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}%$")]


def _cidr_text(value: Any) -> Any:
    # IPv4Network takes numbers too (true -> 0.0.0.1/32): a CIDR in a stack file is text.
    if not isinstance(value, (str, IPv4Network)):
        raise ValueError(f"a CIDR is text such as 10.0.0.0/16, got {_show(value)}")
    return value


_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"


def cidr_pattern(prefixes: Collection[int] = range(33)) -> str:
    """A regular expression of the CIDR text :class:`IPv4Network` takes, with a prefix length in ``prefixes``.

    The address has no leading zeros; the prefix is digits (leading zeros allowed), a netmask or a
    hostmask, or absent for a /32. Host bits (``10.0.0.1/16``) are beyond it: only the model checks them.
    """
    masks = {str(getattr(IPv4Network(f"0.0.0.0/{p}"), kind)) for p in range(33) for kind in ("netmask", "hostmask")}
    fitting = sorted(m for m in masks if IPv4Network(f"0.0.0.0/{m}").prefixlen in prefixes)
    suffix = "/(0*(" + "|".join(str(p) for p in sorted(prefixes)) + ")|" + "|".join(
        m.replace(".", r"\.") for m in fitting) + ")"
    return rf"^{_OCTET}(\.{_OCTET}){{3}}({suffix}{')?' if 32 in prefixes else ')'}$"


Cidr = Annotated[IPv4Network, BeforeValidator(_cidr_text, json_schema_input_type=Annotated[
    str, StringConstraints(pattern=cidr_pattern()), Field(json_schema_extra={"format": "ipv4network"})]),
                 Field(strict=False)]
"""An IPv4 CIDR block as text (``10.0.0.0/16``)."""

LabelKey = Annotated[str, StringConstraints(
    pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    max_length=253)]

LabelValue = Annotated[str, StringConstraints(
    pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", max_length=63)]

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def duration_seconds(value: str) -> int:
    """Seconds in a config duration such as ``"90s"``, ``"5m"`` or ``"1h"``."""
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[value[-1]]
    return int(value[:-1]) * unit


class _Model(BaseModel):
    # Strict: a YAML string where a number belongs is an error, not a guess.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False,
                              strict=True, frozen=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class Issue:
    """One problem in a stack file: where (key path), what was there, and what would be valid."""

    path: tuple[str | int, ...]
    message: str

    def where(self) -> str:
        key = _shown_key(self.path[0]) if self.path else NAMESPACE
        for part in self.path[1:]:
            key += f"[{part}]" if isinstance(part, int) else f".{_shown_key(part)}"
        return key


def _shown_key(part: str | int) -> str:
    """A key as it appears in a key path: as written, or quoted when it is empty or holds blanks or controls."""
    text = str(part)
    if text and text.isprintable() and not any(c.isspace() for c in text):
        return text
    return json.dumps(text)


class ConfigError(Exception):
    """The stack file is invalid; carries every issue found, each with its key path."""

    def __init__(self, source: str, issues: list[Issue], subject: str = "the estate config") -> None:
        self.source = source
        self.issues = issues
        self.subject = subject
        """What was checked: a stack file's estate config, or a component's inputs."""
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.issues)} problem(s) in {self.subject}:"]
        lines += [f"  {self.source}: {issue.where() + ': ' if issue.path else ''}{issue.message}"
                  for issue in self.issues]
        return "\n".join(lines)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _did_you_mean(word: str, candidates: Collection[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate to a misspelt ``word``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _millicores(cpu: str) -> float:
    return float(cpu[:-1]) if cpu.endswith("m") else float(cpu) * 1000


_MEM_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def _gib(mem: str) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", mem)
    assert match is not None
    number, unit = match.groups()
    return float(number) * _MEM_UNITS.get(unit, 1) / 2**30
