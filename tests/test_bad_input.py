"""Bad input never hurts: each way a stack file was seen to crash modelplane, or to be silently accepted.

Every case here once gave a traceback, or an estate that quietly differed from
the file; each now gets a keyed error (file, key path or line, the bad value,
what would be valid), or is read as Pulumi reads it. ``test_fuzz`` searches
for more of them.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from modelplane.cli import main
from modelplane.config import ConfigError, load_stack_file, parse_estate

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "stacks/Pulumi.dev.yaml"
APIS = "modelplane:apis"
GROUPS = "modelplane:nodeGroups"
CLUSTER = "modelplane:cluster"


def issues(config: dict[Any, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_estate(config, SOURCE)
    return {issue.where(): issue.message for issue in caught.value.issues}


def file_issues(tmp_path: Path, content: bytes | str) -> list[str]:
    path = tmp_path / "Pulumi.x.yaml"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        parse_estate(load_stack_file(path), str(path))
    return [f"{i.where()}: {i.message}" if i.path else i.message for i in caught.value.issues]


@pytest.fixture
def dev(stack_configs) -> dict[str, Any]:
    return stack_configs.load("dev")


# ------------------------------------------------------------------------ once a traceback

def test_a_byte_that_is_not_utf8_names_its_line_and_validate_goes_on_with_the_other_stacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert file_issues(tmp_path, b"config:\n  aws:region: us-east-1\n  a: \xff\n") == [
        "line 3: byte 0xff is not UTF-8; a stack file is UTF-8 text"]
    project = tmp_path / "project"
    shutil.copytree(ROOT / "stacks", project / "stacks")
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copytree(ROOT / "infra", project / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "stacks" / "Pulumi.broken.yaml").write_bytes(b"config:\n  \xfe: 1\n")
    assert main(["--project", str(project), "validate"]) == 2
    out, err = capsys.readouterr()
    assert "stacks/Pulumi.broken.yaml: line 2: byte 0xfe is not UTF-8" in err
    assert [line.split()[1] for line in out.splitlines() if line.startswith("ok")] == [
        "stacks/Pulumi.dev.yaml:", "stacks/Pulumi.local.yaml:", "stacks/Pulumi.prod.yaml:"]


@pytest.mark.parametrize("key", [5, True, None, "a:b:c"], ids=["int", "bool", "null", "two-colons"])
def test_a_config_key_that_is_not_namespace_name_text(dev: dict[Any, Any], key: Any) -> None:
    found = issues({**dev, key: "x"})
    [(where, message)] = found.items()
    assert "is not a configuration key: keys are text of the form <namespace>:<name>" in message


def test_node_group_and_api_names_that_are_not_text(dev: dict[str, Any]) -> None:
    dev[GROUPS][7] = {"instanceTypes": ["m6i.large"]}
    dev[APIS][8] = {}
    found = issues(dev)
    assert set(found) == {f"{GROUPS}.7", f"{APIS}.8"}
    assert all("is not a valid name" in m for m in found.values())


def test_nesting_deeper_than_the_reader_goes(tmp_path: Path) -> None:
    assert file_issues(tmp_path, "config:\n  a: " + "[" * 5000 + "]" * 5000 + "\n") == [
        "the file nests lists or mappings too deeply to be read (a stack file needs a handful of levels)"]


def test_an_integer_longer_than_pythons_limit(tmp_path: Path) -> None:
    [message] = file_issues(tmp_path, "config:\n  aws:region: us-east-1\n  a: " + "9" * 4400 + "\n")
    assert message.startswith("line 3, column 6: the file is not valid YAML (an integer of 4400 digits")


def test_a_character_yaml_forbids_is_one_line_with_its_line(tmp_path: Path) -> None:
    assert file_issues(tmp_path, "config:\n  a: b\x00\n") == ["line 2: the character U+0000 may not appear in "
                                                             "YAML; remove it"]


# ------------------------------------------------------------------------ once silently accepted

def test_a_misspelt_namespace_is_an_error_with_the_right_key(dev: dict[str, Any]) -> None:
    dev["modelplan:apis"] = dev.pop(APIS)
    found = issues(dev)
    assert found == {"modelplan:apis": "is in namespace 'modelplan', which modelplane does not read (did you mean "
                                       "'modelplane:apis'?)"}


def test_keys_without_a_namespace_are_the_projects_as_pulumi_reads_them(dev: dict[str, Any]) -> None:
    # Pulumi qualifies `apis` with the project's namespace, modelplane: the same estate.
    plain = {("apis" if k == APIS else k): v for k, v in dev.items()}
    assert parse_estate(plain, SOURCE).apis.keys() == parse_estate(dev, SOURCE).apis.keys()
    both = {**dev, "apis": {}}
    assert "is given twice, as 'apis' and with its namespace" in issues(both)[APIS]


def test_zero_resources_where_they_would_starve_the_pod(dev: dict[str, Any]) -> None:
    embed = dev[APIS]["image-embed"]
    embed["compute"] = {"cpu": "0", "mem": "0Gi", "gpu": 1, "shm": "0"}
    dev[APIS]["sentiment"]["proxy"] = {"cpu": "0m", "mem": "0"}
    found = issues(dev)
    assert set(found) == {f"{APIS}.image-embed.compute.cpu", f"{APIS}.image-embed.compute.mem",
                          f"{APIS}.image-embed.compute.shm", f"{APIS}.sentiment.proxy.cpu",
                          f"{APIS}.sentiment.proxy.mem"}
    assert "is no memory at all" in found[f"{APIS}.image-embed.compute.mem"]


@pytest.mark.parametrize("name", ["monitoring", "keda"])
def test_api_names_that_are_an_add_ons_namespace(dev: dict[str, Any], name: str) -> None:
    dev[APIS][name] = copy.deepcopy(dev[APIS]["sentiment"])
    assert "is the namespace of" in issues(dev)[f"{APIS}.{name}"]


# ------------------------------------------------------------------------ once unclear

@pytest.mark.parametrize("content", ["", "config:\n", "config: {}\n"], ids=["empty", "bare", "empty-map"])
def test_an_empty_stack_file_says_what_a_stack_file_needs(tmp_path: Path, content: str) -> None:
    [message] = file_issues(tmp_path, content)
    assert message.startswith("holds no configuration; a stack file starts with `config:` and needs at least "
                              "modelplane:cluster")


def test_a_version_yaml_reads_as_a_number_gets_a_hint_to_quote_it(dev: dict[str, Any]) -> None:
    dev[CLUSTER]["kubernetesVersion"] = 1.33
    assert issues(dev)[f"{CLUSTER}.kubernetesVersion"].endswith('got 1.33 (a number to YAML; quote it for text: '
                                                                '"1.33")')


def test_an_unknown_key_gets_a_did_you_mean(dev: dict[str, Any]) -> None:
    dev[APIS]["sentiment"]["maxConcurency"] = 4
    assert issues(dev)[f"{APIS}.sentiment.maxConcurency"].startswith(
        "unknown key 'maxConcurency' (did you mean 'maxConcurrency'?); valid keys here: image,")


def test_odd_keys_are_shown_quoted_and_a_key_named_like_a_type_is_still_named(dev: dict[str, Any]) -> None:
    dev["\r"] = "x"
    dev[CLUSTER]["int"] = 2
    dev[CLUSTER]["endpoint"]["publicAccessCidrs"] = [True]
    found = issues(dev)
    assert '"\\r"' in found and f"{CLUSTER}.int" in found
    # A CIDR is text: IPv4Network would take `true` as 0.0.0.1/32.
    assert found[f"{CLUSTER}.endpoint.publicAccessCidrs[0]"] == "a CIDR is text such as 10.0.0.0/16, got true"
