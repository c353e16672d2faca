"""Reading a stack file as Pulumi reads it, and the running program's config."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ._base import NAMESPACE, ConfigError, Issue

STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
"""The top-level keys of a Pulumi stack file: ``config:`` and Pulumi's own secrets and environment settings."""


def load_stack_file(path: str | os.PathLike[str], source: str | None = None) -> dict[str, Any]:
    """The ``config:`` map of a Pulumi stack file; YAML errors become a :class:`ConfigError` with the line.

    ``source`` names the file in messages (default: ``path``).
    """
    source = source or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [Issue((), f"cannot read the stack file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(source, [Issue((), f"line {line}: byte 0x{exc.object[exc.start]:02x} is not UTF-8; a stack "
                                             "file is UTF-8 text")]) from None
    try:
        document = _load_yaml(text, source)
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        shown = f"U+{code:04X}" if isinstance(code, int) else repr(code)
        raise ConfigError(source, [Issue((), f"line {line}: the character {shown} may not appear in YAML; "
                                             "remove it")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        # One line per problem: PyYAML's messages may span several.
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(source, [Issue((), f"{where}the file is not valid YAML ({problem})")]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(source, [Issue((), "a stack file is a YAML mapping with a `config:` key")])
    unknown = sorted(set(document) - set(STACK_FILE_KEYS))
    if unknown:
        raise ConfigError(source, [Issue((), f"unknown top-level key(s) {unknown}; a stack file "
                                             "holds `config:` (and Pulumi's secrets settings)")])
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(source, [Issue(("config",), "must be a mapping of `namespace:key` to value")])
    return config


def _load_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``, refusing what Pulumi's own stack-file reader refuses: a key twice in one mapping.

    PyYAML lets the last of two equal keys win (a second ``sentiment:`` would silently replace the
    first API); Go's yaml.v3, which Pulumi reads stack files with, refuses the file. The check runs
    on the composed nodes before anything is constructed, compares keys as yaml.v3 does (same node
    kind, same text after unquoting: ``1`` and ``"1"`` collide) and reports every duplicate.
    """
    loader = _StackFileLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicate_keys(node, ()))
        if duplicates:
            raise ConfigError(source, duplicates)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(source, [Issue((), "the file nests lists or mappings too deeply to be read (a stack "
                                             "file needs a handful of levels)")]) from None
    finally:
        loader.dispose()


class _StackFileLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with a keyed error where it would raise a bare ValueError."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-any-return]
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} digits, more than this reader takes (4300)",
                node.start_mark) from None


_StackFileLoader.add_constructor("tag:yaml.org,2002:int", _StackFileLoader.construct_yaml_int)


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...]) -> Iterator[Issue]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[type, str], yaml.Node] = {}
        for key, value in node.value:
            ident = (type(key), key.value if isinstance(key, yaml.ScalarNode) else "")
            first = seen.setdefault(ident, key)
            if first is not key:
                shown = json.dumps(key.value) if isinstance(key, yaml.ScalarNode) else "(a complex key)"
                # Issue paths start inside `config:` (that is where key paths are read from).
                inside = path[:1] == ("config",) and isinstance(key, yaml.ScalarNode)
                yield Issue(path[1:] + (key.value,) if inside else (),
                            f"line {key.start_mark.line + 1}: mapping key {shown} already defined at line "
                            f"{first.start_mark.line + 1}; Pulumi refuses a stack file with a key twice in one "
                            "mapping: keep one")
            child = key.value if isinstance(key, yaml.ScalarNode) else "?"
            yield from _duplicate_keys(value, path + (child,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, path + (index,))


def config_from_pulumi() -> dict[str, Any]:
    """The running Pulumi program's config as a stack file's ``config:`` map (objects decoded)."""
    import pulumi.runtime.config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(f"{NAMESPACE}:") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        decoded[key] = value
    return decoded
