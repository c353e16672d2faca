"""What the parts of an estate cost per hour: modelplane's bundled, dated AWS price table.

Every figure is an AWS list price in USD for :data:`PRICE_REGION`, Linux,
on-demand, as published on :data:`AS_OF` (EC2 from the public on-demand price
list, P4d and P5 after AWS's June 2025 reduction; EKS, VPC, Elastic Load
Balancing, EBS and KMS from their pricing pages). Other regions list most of
these types higher (eu-west-1 about a tenth higher): the cost report says which
region its figures are for. Spot prices move by the hour and by zone; the
estimate here is :data:`SPOT_SHARE` of on-demand, the middle of the 30-50 %
band AWS's Spot Instance Advisor shows for these families most of the time.

Usage-billed parts (load balancer capacity units, NAT data processing, logs,
data transfer) are not in an hourly estimate; the report names them.
"""

from __future__ import annotations

from datetime import date

from . import catalog

__all__ = ["AS_OF", "GPU_HOURLY", "PER_GIB_HOUR", "PER_VCPU_HOUR", "EKS_STANDARD_SUPPORT_ENDS", "PRICE_REGION", "SPOT_SHARE", "Rates",
           "control_plane_hourly", "instance_hourly"]

PRICE_REGION = "us-east-1"
"""The region the bundled prices are for."""

AS_OF = date(2026, 12, 1)
"""The day the bundled prices were taken; support windows are judged on this day too, so a plan is the same every day."""

SPOT_SHARE = 0.4
"""The spot estimate as a share of the on-demand price."""


class Rates:
    """Hourly list prices of the non-EC2 parts (USD, :data:`PRICE_REGION`)."""

    EKS_STANDARD = 0.10
    """An EKS cluster on a Kubernetes version in standard support."""
    EKS_EXTENDED = 0.60
    """An EKS cluster on a version past standard support (extended support)."""
    NAT_GATEWAY = 0.045
    """A NAT gateway, per hour (plus $0.045 per GB it processes)."""
    ALB = 0.0225
    """An Application Load Balancer, per hour (plus $0.008 per load balancer capacity unit-hour)."""
    LCU = 0.008
    """An ALB load balancer capacity unit-hour: traffic, not estimated here."""
    PUBLIC_IPV4 = 0.005
    """A public IPv4 address (a NAT gateway's Elastic IP, each zone of an internet-facing ALB)."""
    GP3_GB_MONTH = 0.08
    """A GB-month of gp3 volume (3,000 IOPS and 125 MB/s included)."""
    KMS_KEY_MONTH = 1.0
    """A customer-managed KMS key, per month."""
    HOURS_PER_MONTH = 730
    """AWS's month for turning monthly prices into hourly ones."""


EKS_STANDARD_SUPPORT_ENDS: dict[str, date] = {
    "1.31": date(2025, 11, 26),
    "1.32": date(2026, 3, 23),
    "1.33": date(2026, 7, 29),
    "1.34": date(2026, 12, 2),
    "1.35": date(2027, 3, 27),
}
"""The last day of EKS standard support per Kubernetes minor (the EKS release calendar); after it, extended support."""


def _sizes(family: str, prices: dict[str, float]) -> dict[str, float]:
    return {f"{family}.{size}": price for size, price in prices.items()}


PER_VCPU_HOUR: dict[str, float] = {
    "m5": 0.048, "m5a": 0.043, "m6i": 0.048, "m6a": 0.0432, "m7i": 0.0504, "m7a": 0.05796,
    "m6g": 0.0385, "m7g": 0.0408, "m8g": 0.04488,
    "c5": 0.0425, "c5a": 0.0385, "c6i": 0.0425, "c6a": 0.03825, "c7i": 0.044625, "c7a": 0.05132,
    "c6g": 0.034, "c7g": 0.03625, "c8g": 0.03988,
    "r5": 0.063, "r6i": 0.063, "r6a": 0.0567, "r7i": 0.06615, "r6g": 0.0504, "r7g": 0.05355, "r8g": 0.05891,
}
"""General-purpose, compute- and memory-optimised families: the on-demand price of one vCPU-hour.

Within these families AWS prices every size (metal included) in proportion to its vCPUs
(c5.large $0.085, c5.9xlarge $1.53, c5.24xlarge $4.08), so one figure per family gives them all.
"""

PER_GIB_HOUR: dict[str, float] = {"t3": 0.0104, "t3a": 0.0094, "t4g": 0.0084}
"""Burstable families, priced in proportion to memory (t3.micro $0.0104, t3.medium $0.0416, t3.2xlarge $0.3328)."""

GPU_HOURLY: dict[str, float] = {
    **_sizes("g4dn", {"xlarge": 0.526, "2xlarge": 0.752, "4xlarge": 1.204, "8xlarge": 2.176, "12xlarge": 3.912,
                      "16xlarge": 4.352, "metal": 7.824}),
    **_sizes("g5", {"xlarge": 1.006, "2xlarge": 1.212, "4xlarge": 1.624, "8xlarge": 2.448, "12xlarge": 5.672,
                    "16xlarge": 4.096, "24xlarge": 8.144, "48xlarge": 16.288}),
    **_sizes("g5g", {"xlarge": 0.42, "2xlarge": 0.556, "4xlarge": 0.828, "8xlarge": 1.372, "16xlarge": 2.744,
                     "metal": 2.744}),
    **_sizes("g6", {"xlarge": 0.8048, "2xlarge": 0.9776, "4xlarge": 1.3232, "8xlarge": 2.0144, "12xlarge": 4.6016,
                    "16xlarge": 3.3968, "24xlarge": 6.6752, "48xlarge": 13.3504}),
    **_sizes("g6e", {"xlarge": 1.861, "2xlarge": 2.24208, "4xlarge": 3.00424, "8xlarge": 4.52856,
                     "12xlarge": 10.49264, "16xlarge": 7.57719, "24xlarge": 15.06559, "48xlarge": 30.13118}),
    **_sizes("p3", {"2xlarge": 3.06, "8xlarge": 12.24, "16xlarge": 24.48}),
    "p4d.24xlarge": 21.95764,
    "p5.48xlarge": 55.04,
}
"""GPU types, whose sizes are not priced in proportion to anything: each one as listed."""


def instance_hourly(instance_type: str) -> float | None:
    """The on-demand hourly price of ``instance_type`` (USD, :data:`PRICE_REGION`), or None when not in the table."""
    if instance_type in GPU_HOURLY:
        return GPU_HOURLY[instance_type]
    facts = catalog.lookup(instance_type)
    family = instance_type.split(".", 1)[0]
    if facts is None:
        return None
    if family in PER_VCPU_HOUR:
        return round(PER_VCPU_HOUR[family] * facts.vcpus, 6)
    if family in PER_GIB_HOUR:
        return round(PER_GIB_HOUR[family] * facts.memory_gib, 6)
    return None


def control_plane_hourly(kubernetes_version: str) -> tuple[float, date | None]:
    """The EKS control plane's hourly price for a minor on :data:`AS_OF`, and the end of its standard support."""
    ends = EKS_STANDARD_SUPPORT_ENDS.get(kubernetes_version)
    if ends is not None and AS_OF > ends:
        return Rates.EKS_EXTENDED, ends
    return Rates.EKS_STANDARD, ends
