"""Resource properties as the engine delivers them, turned into plain data a rule can read.

In a preview, a property that depends on a resource not yet created is *unknown*:
pulumi_policy's proxy raises ``UnknownValueError`` on reading it. :func:`thaw`
reads the whole property tree once and puts :data:`UNKNOWN` in each such place,
so a rule can judge the known parts and pass over the rest (an unknown value is
never a violation). Numbers arrive as floats (``2.0``), and Kubernetes
quantities as strings or numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, Final

from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

__all__ = ["UNKNOWN", "Unknown", "dig", "is_unknown", "number", "quantity", "selects", "show", "thaw"]


class Unknown:
    """A value the engine does not know yet; its one instance is :data:`UNKNOWN`."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final[Unknown] = Unknown()
"""Stands in for every unknown value after :func:`thaw`."""

_SENTINELS = frozenset({UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, UNKNOWN_ARRAY_VALUE,
                        UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_OBJECT_VALUE})


def is_unknown(value: Any) -> bool:
    """Whether ``value`` is unknown (after :func:`thaw`, or an engine sentinel string before it)."""
    return value is UNKNOWN or (isinstance(value, str) and value in _SENTINELS)


def thaw(value: Any) -> Any:
    """``value`` (props behind pulumi_policy's proxy, or plain data) as dicts and lists, unknowns as :data:`UNKNOWN`."""
    if is_unknown(value):
        return UNKNOWN
    if isinstance(value, Mapping):
        thawed: dict[str, Any] = {}
        for key in value:
            try:
                thawed[key] = thaw(value[key])
            except UnknownValueError:
                thawed[key] = UNKNOWN
        return thawed
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(thaw(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def dig(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...``: None where a key or index is missing, :data:`UNKNOWN` below an unknown."""
    for key in path:
        if is_unknown(value):
            return UNKNOWN
        if isinstance(key, str):
            value = value.get(key) if isinstance(value, dict) else None
        else:
            value = value[key] if isinstance(value, list) and -len(value) <= key < len(value) else None
        if value is None:
            return None
    return value


def number(value: Any) -> float | None:
    """A count as the engine sends it (``2.0``, sometimes ``"2"``), or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def show(value: Any) -> str:
    """A value for a message: ``2.0`` as ``2``, text as is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIXES = {
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000), "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
    "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18), None: Fraction(1),
}


def quantity(value: Any) -> Fraction | None:
    """A Kubernetes quantity (``"1Gi"``, ``"500m"``, ``"1e3"``, ``2.0``) as an exact number; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Fraction(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if match is None:
        return None
    digits, exponent, suffix = match.groups()
    scale = Fraction(10) ** int(exponent[1:]) if exponent else _SUFFIXES[suffix]
    return Fraction(digits) * scale


def selects(selector: Any, labels: Any) -> bool | Unknown:
    """Whether a Kubernetes label selector matches ``labels`` (:data:`UNKNOWN` when either is not known).

    An empty selector (``{}``) matches everything; an absent one (None) nothing, as in policy/v1.
    """
    if selector is None:
        return False
    if is_unknown(selector) or is_unknown(labels) or not isinstance(selector, dict):
        return UNKNOWN
    labels = labels if isinstance(labels, dict) else {}
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if is_unknown(match_labels) or is_unknown(expressions):
        return UNKNOWN
    undecided = False
    for key, wanted in match_labels.items():
        have = labels.get(key)
        if is_unknown(wanted) or is_unknown(have):
            undecided = True
        elif have != wanted:
            return False
    for expression in expressions:
        verdict = _expression_matches(expression, labels)
        if is_unknown(verdict):
            undecided = True
        elif not verdict:
            return False
    return UNKNOWN if undecided else True


def _expression_matches(expression: Any, labels: dict[str, Any]) -> bool | Unknown:
    if not isinstance(expression, dict):
        return UNKNOWN
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    if UNKNOWN in (key, operator, values) or labels.get(str(key)) is UNKNOWN:
        return UNKNOWN
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    return UNKNOWN
