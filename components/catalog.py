"""What modelplane knows about EC2 instance types: vCPUs, memory and GPUs.

The estate uses it to check, before anything is deployed, that each model API
fits on a node of the group it targets (GPUs, CPU, memory) and to size the
rolling-update headroom. Types not listed here are accepted for CPU groups; a
GPU group with an unlisted type must state ``gpusPerNode`` itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["InstanceType", "INSTANCE_TYPES", "architecture", "lookup"]


@dataclass(frozen=True)
class InstanceType:
    """Capacity of one EC2 instance type, as AWS publishes it."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory_gib: float = 0.0


def _family(prefix: str, rows: list[tuple[str, int, float, int]], gpu_model: str = "",
            gpu_memory_gib: float = 0.0) -> dict[str, InstanceType]:
    return {
        f"{prefix}.{size}": InstanceType(f"{prefix}.{size}", vcpus, mem, gpus, gpu_model,
                                         gpu_memory_gib * gpus)
        for size, vcpus, mem, gpus in rows
    }


_G_SIZES = [("xlarge", 4, 16, 1), ("2xlarge", 8, 32, 1), ("4xlarge", 16, 64, 1),
            ("8xlarge", 32, 128, 1), ("12xlarge", 48, 192, 4), ("16xlarge", 64, 256, 1)]

INSTANCE_TYPES: dict[str, InstanceType] = {
    # NVIDIA T4, 16 GiB each.
    **_family("g4dn", _G_SIZES + [("metal", 96, 384, 8)], "T4", 16),
    # NVIDIA A10G, 24 GiB each.
    **_family("g5", _G_SIZES + [("24xlarge", 96, 384, 4), ("48xlarge", 192, 768, 8)], "A10G", 24),
    # NVIDIA L4, 24 GiB each.
    **_family("g6", _G_SIZES + [("24xlarge", 96, 384, 4), ("48xlarge", 192, 768, 8)], "L4", 24),
    # NVIDIA L40S, 48 GiB each.
    **_family("g6e", [("xlarge", 4, 32, 1), ("2xlarge", 8, 64, 1), ("4xlarge", 16, 128, 1),
                      ("8xlarge", 32, 256, 1), ("12xlarge", 48, 384, 4), ("16xlarge", 64, 512, 1),
                      ("24xlarge", 96, 768, 4), ("48xlarge", 192, 1536, 8)], "L40S", 48),
    # NVIDIA V100, 16 GiB each.
    **_family("p3", [("2xlarge", 8, 61, 1), ("8xlarge", 32, 244, 4), ("16xlarge", 64, 488, 8)],
              "V100", 16),
    # NVIDIA A100 40 GiB, H100 80 GiB.
    **_family("p4d", [("24xlarge", 96, 1152, 8)], "A100", 40),
    **_family("p5", [("48xlarge", 192, 2048, 8)], "H100", 80),
    # General purpose and compute optimised CPU types.
    **_family("t3", [("medium", 2, 4, 0), ("large", 2, 8, 0), ("xlarge", 4, 16, 0),
                     ("2xlarge", 8, 32, 0)]),
    **{
        name: t
        for family in ("m5", "m6i", "m7i")
        for name, t in _family(family, [("large", 2, 8, 0), ("xlarge", 4, 16, 0),
                                        ("2xlarge", 8, 32, 0), ("4xlarge", 16, 64, 0),
                                        ("8xlarge", 32, 128, 0)]).items()
    },
    **{
        name: t
        for family in ("c5", "c6i", "c7i")
        for name, t in _family(family, [("large", 2, 4, 0), ("xlarge", 4, 8, 0),
                                        ("2xlarge", 8, 16, 0), ("4xlarge", 16, 32, 0),
                                        ("9xlarge" if family == "c5" else "8xlarge",
                                         36 if family == "c5" else 32,
                                         72 if family == "c5" else 64, 0)]).items()
    },
    **{
        name: t
        for family in ("r5", "r6i")
        for name, t in _family(family, [("large", 2, 16, 0), ("xlarge", 4, 32, 0),
                                        ("2xlarge", 8, 64, 0), ("4xlarge", 16, 128, 0)]).items()
    },
}


def lookup(instance_type: str) -> InstanceType | None:
    """The catalog entry for ``instance_type``, or None when modelplane does not know it."""
    return INSTANCE_TYPES.get(instance_type)


def architecture(instance_type: str) -> str:
    """``arm64`` for AWS Graviton types (a ``g`` after the generation: m7g, c7gn, g5g, t4g), else ``x86_64``."""
    return "arm64" if re.match(r"^[a-z]+[0-9]+[a-z]*g[a-z]*\.", instance_type) else "x86_64"
