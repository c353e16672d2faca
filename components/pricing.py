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

__all__ = ["AS_OF", "EC2_HOURLY", "EKS_STANDARD_SUPPORT_ENDS", "PRICE_REGION", "SPOT_SHARE", "Rates",
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


_M5 = {"large": 0.096, "xlarge": 0.192, "2xlarge": 0.384, "4xlarge": 0.768, "8xlarge": 1.536}
_R5 = {"large": 0.126, "xlarge": 0.252, "2xlarge": 0.504, "4xlarge": 1.008}

EC2_HOURLY: dict[str, float] = {
    **_sizes("t3", {"medium": 0.0416, "large": 0.0832, "xlarge": 0.1664, "2xlarge": 0.3328}),
    **_sizes("t3a", {"medium": 0.0376, "large": 0.0752, "xlarge": 0.1504, "2xlarge": 0.3008}),
    **_sizes("m5", _M5),
    **_sizes("m6i", _M5),
    **_sizes("m6a", {"large": 0.0864, "xlarge": 0.1728, "2xlarge": 0.3456, "4xlarge": 0.6912, "8xlarge": 1.3824}),
    **_sizes("m7i", {"large": 0.1008, "xlarge": 0.2016, "2xlarge": 0.4032, "4xlarge": 0.8064, "8xlarge": 1.6128}),
    **_sizes("m6g", {"large": 0.077, "xlarge": 0.154, "2xlarge": 0.308, "4xlarge": 0.616, "8xlarge": 1.232}),
    **_sizes("m7g", {"large": 0.0816, "xlarge": 0.1632, "2xlarge": 0.3264, "4xlarge": 0.6528, "8xlarge": 1.3056}),
    **_sizes("c5", {"large": 0.085, "xlarge": 0.17, "2xlarge": 0.34, "4xlarge": 0.68, "9xlarge": 1.53}),
    **_sizes("c6i", {"large": 0.085, "xlarge": 0.17, "2xlarge": 0.34, "4xlarge": 0.68, "8xlarge": 1.36}),
    **_sizes("c7i", {"large": 0.08925, "xlarge": 0.1785, "2xlarge": 0.357, "4xlarge": 0.714, "8xlarge": 1.428}),
    **_sizes("c6g", {"large": 0.068, "xlarge": 0.136, "2xlarge": 0.272, "4xlarge": 0.544, "8xlarge": 1.088}),
    **_sizes("c7g", {"large": 0.0725, "xlarge": 0.145, "2xlarge": 0.29, "4xlarge": 0.58, "8xlarge": 1.16}),
    **_sizes("r5", _R5),
    **_sizes("r6i", _R5),
    **_sizes("r7g", {"large": 0.1071, "xlarge": 0.2142, "2xlarge": 0.4284, "4xlarge": 0.8568}),
    **_sizes("g4dn", {"xlarge": 0.526, "2xlarge": 0.752, "4xlarge": 1.204, "8xlarge": 2.176, "12xlarge": 3.912,
                      "16xlarge": 4.352, "metal": 7.824}),
    **_sizes("g5", {"xlarge": 1.006, "2xlarge": 1.212, "4xlarge": 1.624, "8xlarge": 2.448, "12xlarge": 5.672,
                    "16xlarge": 4.096, "24xlarge": 8.144, "48xlarge": 16.288}),
    **_sizes("g5g", {"xlarge": 0.42, "2xlarge": 0.556, "4xlarge": 0.828, "8xlarge": 1.372, "16xlarge": 2.744}),
    **_sizes("g6", {"xlarge": 0.8048, "2xlarge": 0.9776, "4xlarge": 1.3232, "8xlarge": 2.0144, "12xlarge": 4.6016,
                    "16xlarge": 3.3968, "24xlarge": 6.6752, "48xlarge": 13.3504}),
    **_sizes("g6e", {"xlarge": 1.861, "2xlarge": 2.24208, "4xlarge": 3.00424, "8xlarge": 4.52856,
                     "12xlarge": 10.49264, "16xlarge": 7.57719, "24xlarge": 15.06559, "48xlarge": 30.13118}),
    **_sizes("p3", {"2xlarge": 3.06, "8xlarge": 12.24, "16xlarge": 24.48}),
    "p4d.24xlarge": 21.95764,
    "p5.48xlarge": 55.04,
}
"""On-demand Linux price per hour of each instance type (USD, :data:`PRICE_REGION`, :data:`AS_OF`)."""


def instance_hourly(instance_type: str) -> float | None:
    """The on-demand hourly price of ``instance_type``, or None when the table does not have it."""
    return EC2_HOURLY.get(instance_type)


def control_plane_hourly(kubernetes_version: str) -> tuple[float, date | None]:
    """The EKS control plane's hourly price for a minor on :data:`AS_OF`, and the end of its standard support."""
    ends = EKS_STANDARD_SUPPORT_ENDS.get(kubernetes_version)
    if ends is not None and AS_OF > ends:
        return Rates.EKS_EXTENDED, ends
    return Rates.EKS_STANDARD, ends
