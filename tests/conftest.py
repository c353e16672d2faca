"""Shared fixtures: the project, rendered plans of the committed stacks, and stack configs to edit.

Every render goes through :func:`modelplane.offline.run_stack`, i.e. the real
``infra/__main__.py`` under the Pulumi SDK's mock engine. ``run_stack`` resets
the Pulumi runtime each time, and a returned :class:`~modelplane.offline.Plan`
is plain data, so plans can be kept and compared side by side.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelplane.config import ConfigError, Issue, load_stack_file, parse_estate
from modelplane.offline import Plan, run_stack

from envoy_check import NO_GO, build_envoy_checker, check_envoy_configs

PROJECT = Path(__file__).resolve().parent.parent
"""The modelplane project (the directory holding Pulumi.yaml), found from this file, not hard-coded."""

Key = tuple[str | int, ...]
"""A path into a stack's ``config:`` map: ``("modelplane:apis", "sentiment", "autoscaling", "maxReplicas")``.

A tuple, not a dotted string, because keys such as ``modelplane.io/interruptible``
contain dots themselves."""

DELETE = object()
"""Value for :meth:`StackConfigs.edited` that removes the key instead of setting it."""


class StackConfigs:
    """Loads ``stacks/Pulumi.<stack>.yaml`` once and hands out edited deep copies of its ``config:`` map."""

    DELETE = DELETE

    def __init__(self, project: Path) -> None:
        self.project = project
        self._loaded: dict[str, dict[str, Any]] = {}

    def path(self, stack: str) -> Path:
        return self.project / "stacks" / f"Pulumi.{stack}.yaml"

    def load(self, stack: str) -> dict[str, Any]:
        """A fresh deep copy of the stack's config map (safe to modify)."""
        if stack not in self._loaded:
            self._loaded[stack] = load_stack_file(self.path(stack))
        return copy.deepcopy(self._loaded[stack])

    def edited(self, stack: str, *edits: tuple[Key, Any]) -> dict[str, Any]:
        """The stack's config map with each ``(key path, value)`` set (or removed, for ``DELETE``)."""
        config = self.load(stack)
        for key, value in edits:
            set_in(config, key, value)
        return config


def problems(config: dict[str, Any], source: str = "stacks/Pulumi.dev.yaml") -> list[Issue]:
    """The issues parse_estate reports for ``config`` (fails the test if it is accepted)."""
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, source)
    return caught.value.issues


def set_in(config: dict[str, Any], key: Key, value: Any) -> None:
    """Set (or, with ``DELETE``, remove) ``config[key[0]][key[1]]...``, creating missing mappings."""
    node: Any = config
    for part in key[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            node = node[part]
    if value is DELETE:
        del node[key[-1]]
    else:
        node[key[-1]] = copy.deepcopy(value)


@pytest.fixture(scope="session")
def project() -> Path:
    """The project directory (``tests/..``)."""
    assert (PROJECT / "Pulumi.yaml").is_file(), f"{PROJECT} is not the modelplane project"
    return PROJECT


@pytest.fixture(scope="session")
def stack_configs(project: Path) -> StackConfigs:
    """Loader of stack config maps: ``stack_configs.load("dev")``, ``stack_configs.edited("dev", (key, value))``."""
    return StackConfigs(project)


@pytest.fixture(scope="session")
def render(project: Path) -> Callable[..., Plan]:
    """``render(stack, config_map=None)``: run the Pulumi program offline and return its :class:`Plan`."""

    def _render(stack: str, config_map: dict[str, Any] | None = None) -> Plan:
        return run_stack(stack, project=project, config_map=config_map)

    return _render


@pytest.fixture(scope="session")
def dev_plan(render: Callable[..., Plan]) -> Plan:
    """The committed dev stack, rendered once per session."""
    return render("dev")


@pytest.fixture(scope="session")
def prod_plan(render: Callable[..., Plan]) -> Plan:
    """The committed prod stack, rendered once per session."""
    return render("prod")


@pytest.fixture(scope="session")
def crd_schemas(project: Path) -> Path:
    """``../shared/crd-schemas`` (CRD OpenAPI schemas by API group), or skip the test when it is absent."""
    path = (project / ".." / "shared" / "crd-schemas").resolve()
    if not path.is_dir():
        pytest.skip("../shared/crd-schemas not present (it exists in CI and on dev machines, not on a user's machine)")
    return path


def _stable(value: Any) -> str:
    # Inputs that reference a resource (ManagedNodeGroup.cluster, .nodeRole) come back as SDK objects
    # whose default repr carries a memory address; name the class instead so that two renders of the
    # same config serialise identically.
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def fingerprint(plan: Plan) -> dict[str, str]:
    """Every registered resource's inputs, serialised deterministically, by URN."""
    return {r.urn: json.dumps(r.inputs, sort_keys=True, default=_stable) for r in plan.resources}


@pytest.fixture(scope="session")
def fingerprints() -> Callable[[Plan], dict[str, str]]:
    """``fingerprints(plan)``: URN -> the resource's inputs as canonical JSON, for comparing renders."""
    return fingerprint


# ----------------------------------------------------------------------------------- plan helpers
# Small readers over a Plan, shared by the test modules through the `find` fixture.

class PlanReader:
    """Lookups over a :class:`Plan` by (type, name), as the tests need them."""

    @staticmethod
    def one(plan: Plan, type_: str, name: str) -> Any:
        found = [r for r in plan.resources if r.type == type_ and r.name == name]
        assert len(found) == 1, f"expected one {type_} {name!r}, found {len(found)}"
        return found[0]

    @staticmethod
    def children(plan: Plan, type_: str, name: str) -> set[tuple[str, str]]:
        parent = PlanReader.one(plan, type_, name)
        return {(r.type, r.name) for r in plan.children(parent.urn)}

    @staticmethod
    def objects(plan: Plan, kind: str | None = None) -> list[dict[str, Any]]:
        from modelplane.offline import kubernetes_objects

        return [o for o in kubernetes_objects(plan) if kind is None or o["kind"] == kind]

    @staticmethod
    def object(plan: Plan, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = [o for o in PlanReader.objects(plan, kind) if o["metadata"]["name"] == name
                 and (namespace is None or o["metadata"].get("namespace") == namespace)]
        assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
        return found[0]


@pytest.fixture(scope="session")
def find() -> type[PlanReader]:
    """``find.one(plan, type, name)``, ``find.children(plan, type, name)``, ``find.object(plan, kind, name)``."""
    return PlanReader


# ----------------------------------------------------------------------------------- Envoy configs

@pytest.fixture(scope="session")
def envoy_checker(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, str]], dict[str, str | None]]:
    """``envoy_checker({name: bootstrap_yaml})``: name -> ``None`` if Envoy's API accepts it, else the errors.

    Builds tests/envoy_config once per session; skips the test when ``go`` is not installed."""
    binary = build_envoy_checker(tmp_path_factory)
    if binary is None:
        pytest.skip(NO_GO)

    def check(configs: dict[str, str]) -> dict[str, str | None]:
        return check_envoy_configs(binary, configs)

    return check
