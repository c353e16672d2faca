"""What modelplane knows about EC2 instance types, and what a node of one offers pods.

The estate uses it to check, before anything is deployed, that every API's pod
fits on one node of the group it targets and how many nodes a group needs
(:mod:`modelplane.config.schedulability`). An instance type not in the table
is a config error offline; under the real engine, with AWS credentials, the
program asks EC2 (:func:`learn_from_aws`) before it validates the stack.

Sources (read 2026-12-02):

- vCPUs, memory, GPUs, GPU model and memory: the EC2 instance type pages
  (aws.amazon.com/ec2/instance-types), as ``DescribeInstanceTypes`` reports them.
- ENIs and IPv4 addresses per ENI (the max-pods inputs): the EKS AMI's table,
  ``nodeadm/internal/kubelet/instance-info.jsonl`` in awslabs/amazon-eks-ami
  (commit 4d63a3b, 2026-07-01; ``defaultMaxENIs``, ``ipv4AddressesPerInterface``);
  p3, which that table no longer lists, from the AL2 ``eni-max-pods.txt`` before
  its removal (commit 72b6046, 2026-03-19).
- Max pods: nodeadm's ``ENIs x (IPv4 per ENI - 1) + 2`` (the VPC CNI without
  prefix delegation), capped by EKS managed node groups (without a custom AMI)
  at 110 for types of fewer than 30 vCPUs and 250 above (EKS user guide,
  "How maxPods is determined").
- Kubelet reserve: nodeadm's ``kubeReserved`` (``config.go``,
  ``withDefaultReservedResources``): memory ``11 MiB x maxPods + 255 MiB``
  (maxPods from the ENI formula, before the managed node group's cap: the cap
  is a drop-in applied after the reserve is computed), CPU 6% of the first core,
  1% of the second, 0.5% of the third and fourth, 0.25% of every further one;
  and ``evictionHard: memory.available 100Mi``. Bottlerocket's defaults follow
  the same formulas.
- Memory the kubelet sees: less than the type's nominal memory (firmware and the
  kernel keep some); counted as 7.5% less, Karpenter's default
  ``vmMemoryOverheadPercent`` for the same estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EVICTION_HARD_MIB", "INSTANCE_TYPES", "VM_MEMORY_OVERHEAD", "InstanceType", "architecture",
           "cpu_reserved_millicores", "families", "known_types", "learn", "learn_from_aws", "lookup",
           "memory_reserved_mib"]

EVICTION_HARD_MIB = 100
"""The EKS AMI kubelet's ``evictionHard`` ``memory.available``: memory kept free, off allocatable."""

VM_MEMORY_OVERHEAD = 0.075
"""Share of an instance's nominal memory the kubelet does not see as capacity (Karpenter's default estimate)."""


def cpu_reserved_millicores(vcpus: int) -> int:
    """CPU the EKS AMI's kubelet reserves (``kubeReserved.cpu``) on a node of ``vcpus``, in millicores."""
    total = vcpus * 1000
    reserved = 0
    # (range start, range end, reserve in hundredths of a percent), as nodeadm computes it, each range rounded down.
    for start, end, share in ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, max(total, 4000), 25)):
        if total > start:
            reserved += (min(total, end) - start) * share // 10000
    return reserved


def memory_reserved_mib(eni_max_pods: int) -> int:
    """Memory the EKS AMI's kubelet reserves (``kubeReserved.memory``), in MiB: 11 MiB a pod plus 255 MiB."""
    return 11 * eni_max_pods + 255


@dataclass(frozen=True)
class InstanceType:
    """Capacity of one EC2 instance type, as AWS publishes it, and what its node offers pods."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory_gib: float = 0.0
    """GPU memory of the whole instance (all its GPUs)."""
    enis: int = 0
    """Network interfaces of its default network card."""
    ipv4_per_eni: int = 0
    """IPv4 addresses per interface."""
    source: str = "table"
    """``table`` (bundled) or ``ec2`` (asked at run time)."""

    @property
    def eni_max_pods(self) -> int:
        """Pods the VPC CNI can give addresses (without prefix delegation): ENIs x (IPv4 per ENI - 1) + 2."""
        return self.enis * (self.ipv4_per_eni - 1) + 2

    @property
    def max_pods(self) -> int:
        """The kubelet's ``maxPods`` on an EKS managed node group: the ENI limit, at most 110 (< 30 vCPUs) or 250."""
        return min(self.eni_max_pods, 110 if self.vcpus < 30 else 250)

    @property
    def capacity_memory_mib(self) -> int:
        """Memory the kubelet reports as capacity: the nominal memory less :data:`VM_MEMORY_OVERHEAD`."""
        return int(self.memory_gib * 1024 * (1 - VM_MEMORY_OVERHEAD))

    @property
    def allocatable_cpu_millicores(self) -> int:
        """CPU allocatable to pods: the vCPUs less the kubelet's reserve."""
        return self.vcpus * 1000 - cpu_reserved_millicores(self.vcpus)

    @property
    def allocatable_memory_mib(self) -> int:
        """Memory allocatable to pods: capacity less the kubelet's reserve and the eviction threshold."""
        return self.capacity_memory_mib - memory_reserved_mib(self.eni_max_pods) - EVICTION_HARD_MIB


def _family(prefix: str, rows: list[tuple[str, int, float, int, int, int]], gpu_model: str = "",
            gpu_memory_gib: float = 0.0) -> dict[str, InstanceType]:
    """One family's types from rows of (size, vCPUs, GiB, GPUs, ENIs, IPv4 per ENI)."""
    return {
        f"{prefix}.{size}": InstanceType(f"{prefix}.{size}", vcpus, mem, gpus, gpu_model if gpus else "",
                                         gpu_memory_gib * gpus, enis, ips)
        for size, vcpus, mem, gpus, enis, ips in rows
    }


# ENIs x IPv4 per ENI by size, shared by the Nitro general, compute and memory families (instance-info.jsonl).
_NET = {"medium": (2, 4), "large": (3, 10), "xlarge": (4, 15), "2xlarge": (4, 15), "4xlarge": (8, 30),
        "8xlarge": (8, 30), "9xlarge": (8, 30), "12xlarge": (8, 30), "16xlarge": (15, 50), "18xlarge": (15, 50),
        "24xlarge": (15, 50), "32xlarge": (15, 50), "48xlarge": (15, 50)}
_VCPUS = {"medium": 1, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "9xlarge": 36,
          "12xlarge": 48, "16xlarge": 64, "18xlarge": 72, "24xlarge": 96, "32xlarge": 128, "48xlarge": 192}


def _cpu_family(prefix: str, gib_per_vcpu: int, sizes: str) -> dict[str, InstanceType]:
    """A general (4 GiB/vCPU), compute (2) or memory (8) optimised family in the given sizes."""
    return _family(prefix, [(s, _VCPUS[s], _VCPUS[s] * gib_per_vcpu, 0, *_NET[s]) for s in sizes.split()])


_INTEL_AMD = "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge"
_GRAVITON = "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge"
_BURSTABLE = [("nano", 2, 0.5, 0, 2, 2), ("micro", 2, 1, 0, 2, 2), ("small", 2, 2, 0, 3, 4),
              ("medium", 2, 4, 0, 3, 6), ("large", 2, 8, 0, 3, 12), ("xlarge", 4, 16, 0, 4, 15),
              ("2xlarge", 8, 32, 0, 4, 15)]

INSTANCE_TYPES: dict[str, InstanceType] = {
    # NVIDIA T4, 16 GiB each.
    **_family("g4dn", [("xlarge", 4, 16, 1, 3, 10), ("2xlarge", 8, 32, 1, 3, 10), ("4xlarge", 16, 64, 1, 3, 10),
                       ("8xlarge", 32, 128, 1, 4, 15), ("12xlarge", 48, 192, 4, 8, 30),
                       ("16xlarge", 64, 256, 1, 4, 15), ("metal", 96, 384, 8, 15, 50)], "T4", 16),
    # NVIDIA A10G, 24 GiB each.
    **_family("g5", [("xlarge", 4, 16, 1, 4, 15), ("2xlarge", 8, 32, 1, 4, 15), ("4xlarge", 16, 64, 1, 8, 30),
                     ("8xlarge", 32, 128, 1, 8, 30), ("12xlarge", 48, 192, 4, 15, 50),
                     ("16xlarge", 64, 256, 1, 8, 30), ("24xlarge", 96, 384, 4, 15, 50),
                     ("48xlarge", 192, 768, 8, 7, 50)], "A10G", 24),
    # NVIDIA L4, 24 GiB each.
    **_family("g6", [("xlarge", 4, 16, 1, 4, 15), ("2xlarge", 8, 32, 1, 4, 15), ("4xlarge", 16, 64, 1, 8, 30),
                     ("8xlarge", 32, 128, 1, 8, 30), ("12xlarge", 48, 192, 4, 8, 30),
                     ("16xlarge", 64, 256, 1, 15, 50), ("24xlarge", 96, 384, 4, 15, 50),
                     ("48xlarge", 192, 768, 8, 15, 50)], "L4", 24),
    # NVIDIA L40S, 48 GiB each.
    **_family("g6e", [("xlarge", 4, 32, 1, 4, 15), ("2xlarge", 8, 64, 1, 4, 15), ("4xlarge", 16, 128, 1, 8, 30),
                      ("8xlarge", 32, 256, 1, 8, 30), ("12xlarge", 48, 384, 4, 10, 30),
                      ("16xlarge", 64, 512, 1, 15, 50), ("24xlarge", 96, 768, 4, 10, 50),
                      ("48xlarge", 192, 1536, 8, 10, 50)], "L40S", 48),
    # NVIDIA T4G (Graviton2 hosts), 16 GiB each.
    **_family("g5g", [("xlarge", 4, 8, 1, 4, 15), ("2xlarge", 8, 16, 1, 4, 15), ("4xlarge", 16, 32, 1, 8, 30),
                      ("8xlarge", 32, 64, 1, 8, 30), ("16xlarge", 64, 128, 2, 15, 50)], "T4G", 16),
    # NVIDIA V100, 16 GiB each.
    **_family("p3", [("2xlarge", 8, 61, 1, 4, 15), ("8xlarge", 32, 244, 4, 8, 30), ("16xlarge", 64, 488, 8, 8, 30)],
              "V100", 16),
    # NVIDIA A100 40 GiB, H100 80 GiB.
    **_family("p4d", [("24xlarge", 96, 1152, 8, 15, 50)], "A100", 40),
    **_family("p5", [("48xlarge", 192, 2048, 8, 2, 50)], "H100", 80),
    # Burstable.
    **_family("t3", _BURSTABLE),
    **_family("t3a", [r if r[0] != "small" else ("small", 2, 2, 0, 2, 4) for r in _BURSTABLE]),
    **_family("t4g", _BURSTABLE),
    # General purpose (4 GiB per vCPU).
    **_cpu_family("m5", 4, _INTEL_AMD),
    **_cpu_family("m5a", 4, _INTEL_AMD),
    **_cpu_family("m6i", 4, _INTEL_AMD + " 32xlarge"),
    **_cpu_family("m6a", 4, _INTEL_AMD + " 32xlarge 48xlarge"),
    **_cpu_family("m7i", 4, _INTEL_AMD + " 48xlarge"),
    **_cpu_family("m7a", 4, "medium " + _INTEL_AMD + " 32xlarge 48xlarge"),
    **_cpu_family("m6g", 4, _GRAVITON),
    **_cpu_family("m7g", 4, _GRAVITON),
    **_cpu_family("m8g", 4, _GRAVITON + " 24xlarge 48xlarge"),
    # Compute optimised (2 GiB per vCPU).
    **_cpu_family("c5", 2, "large xlarge 2xlarge 4xlarge 9xlarge 12xlarge 18xlarge 24xlarge"),
    **_cpu_family("c5a", 2, _INTEL_AMD),
    **_cpu_family("c6i", 2, _INTEL_AMD + " 32xlarge"),
    **_cpu_family("c6a", 2, _INTEL_AMD + " 32xlarge 48xlarge"),
    **_cpu_family("c7i", 2, _INTEL_AMD + " 48xlarge"),
    **_cpu_family("c7a", 2, "medium " + _INTEL_AMD + " 32xlarge 48xlarge"),
    **_cpu_family("c6g", 2, _GRAVITON),
    **_cpu_family("c7g", 2, _GRAVITON),
    **_cpu_family("c8g", 2, _GRAVITON + " 24xlarge 48xlarge"),
    # Memory optimised (8 GiB per vCPU).
    **_cpu_family("r5", 8, _INTEL_AMD),
    **_cpu_family("r6i", 8, _INTEL_AMD + " 32xlarge"),
    **_cpu_family("r6a", 8, _INTEL_AMD + " 32xlarge 48xlarge"),
    **_cpu_family("r7i", 8, _INTEL_AMD + " 48xlarge"),
    **_cpu_family("r6g", 8, _GRAVITON),
    **_cpu_family("r7g", 8, _GRAVITON),
    **_cpu_family("r8g", 8, _GRAVITON + " 24xlarge 48xlarge"),
}
"""The bundled table: every type modelplane knows offline."""

_LEARNED: dict[str, InstanceType] = {}
"""Types the running program learnt from EC2 (:func:`learn_from_aws`)."""


def lookup(instance_type: str) -> InstanceType | None:
    """The facts of ``instance_type``: the bundled table's, else what EC2 told this run, else None."""
    return INSTANCE_TYPES.get(instance_type) or _LEARNED.get(instance_type)


def known_types() -> list[str]:
    """Every type :func:`lookup` knows, sorted."""
    return sorted({*INSTANCE_TYPES, *_LEARNED})


def families() -> list[str]:
    """The families of the bundled table (``g5``, ``m6i`` ...), sorted."""
    return sorted({name.split(".", 1)[0] for name in INSTANCE_TYPES})


def learn(facts: InstanceType) -> None:
    """Make ``facts`` known to :func:`lookup` for the rest of this run (the bundled table keeps precedence)."""
    _LEARNED[facts.name] = facts


def learn_from_aws(names: list[str], region: str | None) -> list[str]:
    """Ask EC2 (``aws.ec2.get_instance_type``) for each of ``names`` the table lacks; the names it could not learn.

    Only under the real engine with AWS credentials: the caller decides. A failed call (no
    credentials, a type the region does not offer) leaves the type unknown, and validation
    reports it as it would offline.
    """
    import pulumi_aws as aws

    missing = []
    for name in dict.fromkeys(names):
        if lookup(name) is not None:
            continue
        try:
            found = aws.ec2.get_instance_type(instance_type=name, region=region)
        except Exception:  # noqa: BLE001 - any failure means "not learnt"; validation says so in a sentence
            missing.append(name)
            continue
        gpus = list(found.gpuses or [])
        cards = [c for c in (found.network_cards or []) if c.index == found.default_network_card_index]
        enis = int(cards[0].maximum_network_interfaces) if cards else int(found.maximum_network_interfaces)
        learn(InstanceType(
            name=name, vcpus=int(found.default_vcpus), memory_gib=float(found.memory_size) / 1024,
            gpus=sum(int(g.count) for g in gpus),
            gpu_model=gpus[0].name if gpus else "",
            gpu_memory_gib=sum(int(g.count) * float(g.memory_size) for g in gpus) / 1024,
            enis=enis, ipv4_per_eni=int(found.maximum_ipv4_addresses_per_interface), source="ec2"))
    return missing


def architecture(instance_type: str) -> str:
    """``arm64`` for AWS Graviton types (a ``g`` after the generation: m7g, c7gn, g5g, t4g), else ``x86_64``."""
    return "arm64" if re.match(r"^[a-z]+[0-9]+[a-z]*g[a-z]*\.", instance_type) else "x86_64"
