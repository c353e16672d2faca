"""The estate's hourly cost: every part a stack creates, at rest and with every node group at maxSize.

An estimate from the bundled price table (:mod:`components.pricing`), made from
the validated config alone: the same stack gives the same figures on any
machine and any day. ``modelplane cost`` prints it as a table; ``modelplane
plan`` prints its totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import pricing
from .config import EstateConfig
from .pricing import Rates

__all__ = ["CostEstimate", "CostLine", "estimate", "format_cost", "usd"]

SYSTEM_DISK_GIB = 50
"""Root volume of a system node (the system group's launch template)."""


@dataclass(frozen=True)
class CostLine:
    """One part of the estate: how many there are at minimum and at maximum, and what one costs per hour."""

    item: str
    detail: str
    count: tuple[int, int]
    """How many at rest (the APIs at minReplicas) and with every group at maxSize."""
    each: float | None
    """List (on-demand) price of one per hour; None when the table has no price for it."""
    spot_each: float | None = None
    """Spot estimate of one per hour (instances only)."""
    spot: bool = False
    """Billed at the spot estimate (a spot group)."""
    created: bool = True
    """The stack creates it; False for the pools of an existing cluster, shown but not in the total."""
    price: str = ""
    """How the price is quoted when not per hour (``$0.08 per GiB-month``); default: ``each`` per hour."""

    def hourly(self, at: int, spot: bool | None = None) -> float | None:
        """Per hour at minimum (``at=0``) or maximum (``at=1``), billed as configured unless ``spot`` says."""
        each = self.spot_each if (self.spot if spot is None else spot) and self.spot_each is not None else self.each
        return None if each is None else each * self.count[at]


@dataclass(frozen=True)
class CostEstimate:
    """The hourly cost of one stack's estate."""

    stack_region: str | None
    lines: list[CostLine]
    notes: list[str] = field(default_factory=list)

    def total(self, at: int) -> float:
        """What the created parts cost per hour at minimum (``at=0``) or maximum (``at=1``), as configured."""
        return sum(line.hourly(at) or 0.0 for line in self.lines if line.created)

    @property
    def unpriced(self) -> list[CostLine]:
        return [line for line in self.lines if line.each is None]

    @property
    def load_balancers(self) -> list[CostLine]:
        return [line for line in self.lines if line.item == "load balancer"]


def estimate(estate: EstateConfig) -> CostEstimate:
    """The estate's hourly cost from the bundled price table."""
    lines: list[CostLine] = []
    notes: list[str] = []
    created = estate.existing is None
    if created:
        cluster = estate.cluster
        price, ends = pricing.control_plane_hourly(cluster.kubernetes_version)
        if price == Rates.EKS_EXTENDED:
            support = f"extended support since {ends}"
            notes.append(f"Kubernetes {cluster.kubernetes_version} left EKS standard support on {ends}: the control "
                         f"plane bills ${Rates.EKS_EXTENDED:.2f}/h instead of ${Rates.EKS_STANDARD:.2f}/h until "
                         f"cluster.kubernetesVersion moves to a minor in standard support "
                         f"({', '.join(_standard_minors())})")
        else:
            support = f"standard support until {ends}" if ends else "standard support"
        lines.append(CostLine("EKS control plane", f"Kubernetes {cluster.kubernetes_version}, {support}", (1, 1),
                              price))
        lines.append(CostLine("KMS key", "EKS secrets encryption", (1, 1), Rates.KMS_KEY_MONTH / Rates.HOURS_PER_MONTH,
                              price=f"{usd(Rates.KMS_KEY_MONTH)}/month"))
        system = cluster.system_node_group
        # Always on-demand: no spot estimate.
        lines.append(replace(_nodes("system nodes", system.instance_type, "onDemand",
                                    (system.min_size, system.max_size)), spot_each=None))
    counts = node_counts(estate)
    for name, group in estate.node_groups.items():
        lines.append(_nodes(f"node group {name}", group.instance_types[0], group.capacity_type, counts[name],
                            created))
        if len(group.instance_types) > 1:
            others = ", ".join(f"{t} {_price_text(t)}" for t in group.instance_types[1:])
            notes.append(f"node group {name!r} is priced at {group.instance_types[0]}, its first (preferred) type; "
                         f"nodes of its other types cost {others}")
    if created:
        gib = [sum(g.disk_size_gib * counts[n][at] for n, g in estate.node_groups.items())
               + SYSTEM_DISK_GIB * (estate.cluster.system_node_group.min_size,
                                    estate.cluster.system_node_group.max_size)[at] for at in (0, 1)]
        lines.append(CostLine("root volumes", "encrypted gp3, GiB of all nodes", (gib[0], gib[1]),
                              Rates.GP3_GB_MONTH / Rates.HOURS_PER_MONTH, price=f"{usd(Rates.GP3_GB_MONTH)}/GiB-month"))
        vpc = estate.cluster.vpc
        if vpc.id is None:
            nats = vpc.availability_zones if vpc.nat_gateways == "perAz" else 1
            detail = f"one per zone ({nats})" if vpc.nat_gateways == "perAz" else "one, shared by the zones"
            lines.append(CostLine("NAT gateways", f"{detail}, each with a public IPv4 address", (nats, nats),
                                  Rates.NAT_GATEWAY + Rates.PUBLIC_IPV4))
    balancers = _load_balancers(estate)
    lines += balancers
    region = estate.region
    if region is not None and region != pricing.PRICE_REGION:
        where = ("where most of these types list about a tenth higher" if region == "eu-west-1"
                 else "whose prices differ (most regions list these types higher)")
        notes.insert(0, f"the figures are {pricing.PRICE_REGION} list prices; this stack runs in {region}, {where}")
    spot = [line.item.removeprefix("node group ") for line in lines if line.spot]
    if spot:
        notes.append(f"spot groups ({', '.join(spot)}) count at the spot estimate, {pricing.SPOT_SHARE:.0%} of "
                     "on-demand; the real price moves by the hour and by zone")
    fallback = [n for n, g in estate.node_groups.items() if g.capacity_type == "spotWithFallback"]
    if fallback:
        notes.append(f"spot-first groups ({', '.join(fallback)}) cost the on-demand column for the nodes that "
                     "fall back when spot cannot be had")
    if created and estate.karpenter:
        notes.append("Karpenter keeps no minimum: at rest each pool has the nodes its APIs' minReplicas need, "
                     "bin-packed; the interruption queue and its rules bill by message, cents a month")
    if not created:
        notes.append("the cluster, its network and its pools are not created by this stack: the pools are shown, "
                     "not totalled")
    usage = [f"load balancer capacity units (${Rates.LCU} per LCU-hour)" if balancers else "",
             "NAT gateway data ($0.045 per GB)" if created and estate.cluster.vpc.id is None else "",
             "CloudWatch logs of the control plane" if created else "", "data transfer"]
    notes.append("not in the figures, billed by use: " + ", ".join(u for u in usage if u))
    for line in lines:
        if line.each is None:
            notes.append(f"{line.item}: no bundled price for {line.detail.split(',')[0]}; it is left out of the total")
    return CostEstimate(region, lines, notes)


def node_counts(estate: EstateConfig) -> dict[str, tuple[int, int]]:
    """Nodes of each group at rest ("at min") and at most ("at max").

    At rest a group holds its APIs at minReplicas (bin-packed, :meth:`EstateConfig.node_need`), and a
    managed group never fewer than its minSize; Karpenter keeps no minimum of its own. At most: maxSize.
    """
    counts = {}
    for name, group in estate.node_groups.items():
        need = estate.node_need(name)
        resting = need.at_min if need is not None else 0
        floor = 0 if estate.karpenter else group.min_size
        counts[name] = (min(max(floor, resting), group.max_size), group.max_size)
    return counts


def _standard_minors() -> list[str]:
    return [minor for minor, ends in pricing.EKS_STANDARD_SUPPORT_ENDS.items() if ends >= pricing.AS_OF]


def _price_text(instance_type: str) -> str:
    price = pricing.instance_hourly(instance_type)
    return "(no bundled price)" if price is None else f"{usd(price, unit=True)}/h"


def _nodes(item: str, instance_type: str, capacity: str, count: tuple[int, int], created: bool = True) -> CostLine:
    price = pricing.instance_hourly(instance_type)
    spot_price = None if price is None else price * pricing.SPOT_SHARE
    kind = {"spot": "spot", "spotWithFallback": "spot, on-demand fallback"}.get(capacity, "on-demand")
    spot = capacity in ("spot", "spotWithFallback")
    return CostLine(item, f"{instance_type}, {kind}" + ("" if created else ", existing pool"), count, price,
                    spot_price, spot, created)


def _load_balancers(estate: EstateConfig) -> list[CostLine]:
    """One Application Load Balancer per visibility that has an exposed API."""
    lines = []
    for visibility in ("internal", "public"):
        apis = [n for n, a in estate.apis.items() if a.expose is not None and a.expose.visibility == visibility]
        if not apis:
            continue
        each = Rates.ALB
        detail = f"{visibility} ALB for {', '.join(apis)}"
        if visibility == "public":
            zones = _public_zones(estate)
            each += zones * Rates.PUBLIC_IPV4
            detail += f", a public IPv4 address in each of its {zones} zones"
        lines.append(CostLine("load balancer", detail, (1, 1), each))
    return lines


def _public_zones(estate: EstateConfig) -> int:
    """Zones an internet-facing ALB spans: the new VPC's, the public subnets given, else the two it needs at least."""
    vpc = estate.cluster.vpc
    if estate.existing is None and vpc.id is None:
        return vpc.availability_zones
    if estate.existing is None and vpc.public_subnet_ids:
        return len(vpc.public_subnet_ids)
    return 2


def usd(amount: float, unit: bool = False) -> str:
    """``$1,234.56``; a ``unit`` price, or an amount under a dollar, keeps up to four decimals (``$1.006``, ``$0.0225``)."""
    if amount and (unit or abs(amount) < 1):
        text = f"{amount:,.4f}".rstrip("0")
        return "$" + (text if len(text.split(".")[1]) >= 2 else f"{amount:,.2f}")
    return f"${amount:,.2f}"


def format_cost(stack: str, source: str, cost: CostEstimate) -> str:
    """The estimate as ``modelplane cost`` prints it."""
    lines = [f"modelplane cost: stack {stack} ({source}), region {cost.stack_region or 'none'}",
             f"hourly USD, {pricing.PRICE_REGION} list prices of {pricing.AS_OF} (modelplane's bundled table); at min: "
             "the APIs at minReplicas, bin-packed, each group at least its minSize; at max: every group at maxSize", ""]
    header = ["item", "what", "count", "each", "at min", "at max", "spot est. min", "spot est. max"]
    rows = []
    for line in cost.lines:
        count = str(line.count[0]) if line.count[0] == line.count[1] else f"{line.count[0]}-{line.count[1]}"
        each = "?" if line.each is None else line.price or usd(line.each, unit=True)
        at = [("?" if (h := line.hourly(i, spot=False)) is None else usd(h)) for i in (0, 1)]
        spot = [usd(line.hourly(i, spot=True) or 0) if line.spot_each is not None else "-" for i in (0, 1)]
        if not line.created:
            at = [f"({a})" for a in at]
            spot = [f"({s})" if s != "-" else s for s in spot]
        rows.append([line.item, line.detail, count, each, *at, *spot])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6, 7}

    def fmt(row: list[str]) -> str:
        return "  " + "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    lines += [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    low, high = cost.total(0), cost.total(1)
    lines += ["", f"total as configured (spot groups at the estimate): {usd(low)}/h at min, {usd(high)}/h at max "
                  f"({usd(low * Rates.HOURS_PER_MONTH)} to {usd(high * Rates.HOURS_PER_MONTH)} a 730-hour month)"]
    lines += ["", "Notes"] + [f"  - {note}" for note in cost.notes]
    return "\n".join(lines)
