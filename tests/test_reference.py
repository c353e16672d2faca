"""The README's config reference and the stack-file JSON Schema come from the model."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from modelplane.reference import BEGIN, END, config_reference
from modelplane.schema import json_schema

ROOT = Path(__file__).resolve().parents[1]


def test_readme_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert section == config_reference().strip(), \
        "README config reference is stale: run `modelplane reference --write README.md`"


@pytest.mark.parametrize("stack", sorted(p.name for p in (ROOT / "stacks").glob("Pulumi.*.yaml")))
def test_stack_files_match_the_json_schema(stack: str) -> None:
    document = yaml.safe_load((ROOT / "stacks" / stack).read_text())
    jsonschema.Draft202012Validator(json_schema()).validate(document)


def test_json_schema_rejects_unknown_keys() -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    document["config"]["modelplane:apis"]["sentiment"]["replicas"] = 3
    with pytest.raises(jsonschema.ValidationError, match="replicas"):
        jsonschema.Draft202012Validator(json_schema()).validate(document)
