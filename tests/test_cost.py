"""The estate's hourly cost: the bundled price table, what is counted, and how plan and cost print it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelplane import catalog, pricing
from modelplane.cli import main
from modelplane.config import parse_estate
from modelplane.cost import estimate, usd

from conftest import DELETE

CLUSTER = "modelplane:cluster"
GROUPS = "modelplane:nodeGroups"
APIS = "modelplane:apis"
HOUR = 1 / 730
ROOT = Path(__file__).resolve().parents[1]


def cost_of(stack_configs, stack: str, *edits):
    return estimate(parse_estate(stack_configs.edited(stack, *edits), f"stacks/Pulumi.{stack}.yaml"))


def line(cost, item: str):
    [found] = [entry for entry in cost.lines if entry.item == item]
    return found


def test_dev_costs_what_its_parts_list_at(stack_configs) -> None:
    cost = cost_of(stack_configs, "dev")
    # By hand from the price list: control plane (1.33: extended support), KMS key, one t3.large system node,
    # one m6i.xlarge, one spot g5.xlarge at 40 % (image-embed's one replica at minReplicas; doc-embed scales
    # to zero), 300 GiB of gp3, one NAT gateway and its address, an internal ALB and a public one with an
    # address in each of the two zones.
    at_min = (0.60 + 1 * HOUR + 0.0832 + 0.192 + 1.006 * 0.4 + 300 * 0.08 * HOUR + (0.045 + 0.005) + 0.0225
              + (0.0225 + 2 * 0.005))
    # At max: 2 system nodes, 4 cpu nodes, 6 spot g5.xlarge at 40 %, 2x50 + 4x100 + 6x150 GiB.
    at_max = (0.60 + 1 * HOUR + 2 * 0.0832 + 4 * 0.192 + 6 * 1.006 * 0.4 + 1400 * 0.08 * HOUR + 0.05 + 0.0225
              + 0.0325)
    assert cost.total(0) == pytest.approx(at_min)
    assert cost.total(1) == pytest.approx(at_max)
    assert [lb.detail for lb in cost.load_balancers] == [
        "internal ALB for image-embed", "public ALB for sentiment, a public IPv4 address in each of its 2 zones"]


def test_one_load_balancer_per_visibility_whatever_the_number_of_apis(stack_configs) -> None:
    internal = {"visibility": "internal", "path": "/score", "allowHttp": True}
    cost = cost_of(stack_configs, "dev", ((APIS, "sentiment", "expose"), {**internal, "path": "/sentiment"}),
                   ((APIS, "doc-embed", "expose"), internal))
    assert [(lb.detail, lb.hourly(0)) for lb in cost.load_balancers] == [
        ("internal ALB for doc-embed, image-embed, sentiment", 0.0225)]
    unexposed = cost_of(stack_configs, "dev", ((APIS, "sentiment", "expose"), DELETE),
                        ((APIS, "image-embed", "expose"), DELETE))
    assert unexposed.load_balancers == []
    assert cost_of(stack_configs, "dev").total(0) - unexposed.total(0) == pytest.approx(0.0225 + 0.0325)


def test_prod_public_load_balancer_pays_an_address_in_each_of_three_zones(stack_configs) -> None:
    cost = cost_of(stack_configs, "prod")
    assert [lb.hourly(0) for lb in cost.load_balancers] == [pytest.approx(0.0225), pytest.approx(0.0225 + 0.015)]
    assert line(cost, "NAT gateways").count == (3, 3)


def test_control_plane_price_follows_the_eks_support_calendar(stack_configs) -> None:
    extended = line(cost_of(stack_configs, "dev"), "EKS control plane")
    standard = line(cost_of(stack_configs, "dev", ((CLUSTER, "kubernetesVersion"), "1.35")), "EKS control plane")
    assert (extended.each, extended.detail) == (0.60, "Kubernetes 1.33, extended support since 2026-07-29")
    assert (standard.each, standard.detail) == (0.10, "Kubernetes 1.35, standard support until 2027-03-27")
    # The table's day, not today, decides: the same stack costs the same on any day.
    assert pricing.control_plane_hourly("1.34") == (0.10, pricing.EKS_STANDARD_SUPPORT_ENDS["1.34"])
    notes = cost_of(stack_configs, "dev").notes
    assert any(n.startswith("Kubernetes 1.33 left EKS standard support on 2026-07-29") for n in notes)
    assert not any(n.startswith("Kubernetes") for n in cost_of(
        stack_configs, "dev", ((CLUSTER, "kubernetesVersion"), "1.35")).notes)


def test_spot_groups_count_at_the_estimate_and_on_demand_groups_at_list(stack_configs) -> None:
    cost = cost_of(stack_configs, "dev", ((GROUPS, "cpu", "capacityType"), "spot"))
    cpu, system = line(cost, "node group cpu"), line(cost, "system nodes")
    assert (cpu.hourly(1), cpu.hourly(1, spot=False)) == (pytest.approx(4 * 0.192 * 0.4), pytest.approx(4 * 0.192))
    assert system.spot_each is None and system.hourly(1) == pytest.approx(2 * 0.0832)
    assert cost.total(1) == pytest.approx(cost_of(stack_configs, "dev").total(1) - 4 * 0.192 * 0.6)


def test_nat_gateways_per_az_single_or_none_in_an_existing_vpc(stack_configs) -> None:
    single = line(cost_of(stack_configs, "dev"), "NAT gateways")
    per_az = line(cost_of(stack_configs, "dev", ((CLUSTER, "vpc", "natGateways"), "perAz"),
                          ((CLUSTER, "vpc", "availabilityZones"), 3)), "NAT gateways")
    existing_vpc = cost_of(stack_configs, "dev", ((CLUSTER, "vpc"), {
        "id": "vpc-0abc", "privateSubnetIds": ["subnet-01", "subnet-02"],
        "publicSubnetIds": ["subnet-03", "subnet-04", "subnet-05"]}))
    assert (single.count, per_az.count) == ((1, 1), (3, 3))
    assert "NAT gateways" not in [entry.item for entry in existing_vpc.lines]
    assert existing_vpc.load_balancers[1].hourly(0) == pytest.approx(0.0225 + 3 * 0.005)


def test_an_existing_cluster_totals_only_what_the_stack_creates(stack_configs) -> None:
    cost = cost_of(stack_configs, "local")
    assert {entry.item for entry in cost.lines} == {"node group cpu", "node group gpu"}
    assert not any(entry.created for entry in cost.lines) and cost.total(1) == 0
    exposed = cost_of(stack_configs, "local", ((APIS, "sentiment", "expose"), {"visibility": "internal",
                                                                             "allowHttp": True}),
                      ((CLUSTER, "existing", "vpcCidr"), "10.0.0.0/16"),
                      ((CLUSTER, "existing", "addons", "loadBalancerController"), "present"))
    assert exposed.total(0) == pytest.approx(0.0225)


def test_an_unpriced_instance_type_is_named_and_left_out(stack_configs, monkeypatch) -> None:
    monkeypatch.delitem(pricing.PER_VCPU_HOUR, "m6i")
    cost = cost_of(stack_configs, "dev")
    assert [entry.item for entry in cost.unpriced] == ["node group cpu"]
    assert "node group cpu: no bundled price for m6i.xlarge; it is left out of the total" in cost.notes


def test_every_catalogued_instance_type_has_a_price() -> None:
    assert len(catalog.INSTANCE_TYPES) > 50
    assert [t for t in catalog.INSTANCE_TYPES if pricing.instance_hourly(t) is None] == []


@pytest.mark.parametrize(("instance_type", "listed"), [
    # AWS's own list prices (us-east-1), against which the per-vCPU and per-GiB figures are checked.
    ("c5.2xlarge", 0.34), ("c5.4xlarge", 0.68), ("m5.xlarge", 0.192), ("m6i.large", 0.096),
    ("r5.4xlarge", 1.008), ("c6i.2xlarge", 0.34), ("m7g.large", 0.0816), ("t3.large", 0.0832),
    ("t3.medium", 0.0416), ("g5.xlarge", 1.006), ("g6e.48xlarge", 30.13118)])
def test_family_rates_give_the_listed_prices(instance_type: str, listed: float) -> None:
    assert pricing.instance_hourly(instance_type) == pytest.approx(listed)


@pytest.mark.parametrize(("amount", "unit", "text"), [
    (0.0225, True, "$0.0225"), (1.006, True, "$1.006"), (0.1, True, "$0.10"), (1.006, False, "$1.01"),
    (36014.0, False, "$36,014.00"), (0.998, False, "$0.998"), (0, False, "$0.00")])
def test_money_is_printed_with_the_digits_that_matter(amount, unit, text) -> None:
    assert usd(amount, unit=unit) == text


def test_cost_command_prints_the_table_and_plan_prints_the_totals(capsys) -> None:
    assert main(["cost", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert "node group gpu-llm        g5.12xlarge, on-demand" in out
    assert "load balancer             public ALB for sentiment" in out
    assert "total as configured (spot groups at the estimate): $15.91/h at min, $45.99/h at max" in out
    assert "this stack runs in eu-west-1, where most of these types list about a tenth higher" in out
    assert main(["plan", "--stack", "dev"]) == 0
    plan = capsys.readouterr().out
    assert "Traffic (one shared load balancer per visibility: 2, $0.055/h plus traffic)" in plan
    assert "  $1.42/h at rest (the APIs at minReplicas), $4.21/h with every group at maxSize (spot at the estimate)" in plan


def test_cost_of_a_bad_stack_is_the_config_error(tmp_path, capsys) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns("__pycache__", ".*", "build", "tests", "policies"))
    stack = project / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("name: ml-dev", "name: ML_dev"))
    assert main(["--project", str(project), "cost", "--stack", "dev"]) == 2
    captured = capsys.readouterr()
    assert "stacks/Pulumi.dev.yaml: modelplane:cluster.name:" in captured.err and captured.out == ""


def test_the_readme_cost_example_is_what_the_command_prints(capsys) -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("$ modelplane cost --stack dev\n", 1)[1].split("```", 1)[0]
    shown = [row for row in block.splitlines() if row.strip() not in ("", "...")]
    assert main(["cost", "--stack", "dev"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(shown) >= 6 and [row for row in shown if row not in printed] == []
