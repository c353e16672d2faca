"""The e2e tier's machinery: the toolchain, a local control plane, kwok nodes, CRDs, and the real engine.

Nothing here is mocked. The Pulumi CLI and its Kubernetes provider are real
(built by ``toolchain/build.sh``, or the user's own ``pulumi`` on PATH); the
control plane is a real kube-apiserver, kube-controller-manager and
kube-scheduler with kwok standing in for kubelets (or any cluster given by
``MODELPLANE_E2E_KUBECONFIG``). The modelplane program runs under the engine
through the Automation API with an inline program: the project's own
``Pulumi.yaml`` and ``infra/__main__.py``, copied into a scratch directory
whose ``stacks/`` the tests write. Previews and updates can run Python
policy packs (CrossGuard): the CLI starts them through the toolchain's own
``pulumi-language-python`` (``toolchain/langhost``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelplane import catalog
from modelplane.config import load_stack_file, parse_estate
from modelplane.placement import GPU_PRESENT_LABEL, GPU_RESOURCE, Placement

PROJECT = Path(__file__).resolve().parents[2]
TOOLCHAIN = Path(__file__).resolve().parent / "toolchain"
E2E_HOME = Path(os.environ.get("E2E_HOME", Path.home() / ".cache" / "modelplane-e2e"))
BIN = E2E_HOME / "bin"
NEWEST_MINOR = "1.35"
"""The Kubernetes minor the toolchain's binaries are (emulating older minors with --emulated-version)."""

ENGINE_BINARIES = ("pulumi", "pulumi-resource-kubernetes", "pulumi-language-python")
CLUSTER_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")


# --------------------------------------------------------------------------- the toolchain

def built_toolchain() -> bool:
    """Whether ``toolchain/build.sh`` has built every binary into ``$E2E_HOME/bin``."""
    return all((BIN / b).is_file() for b in (*ENGINE_BINARIES, *CLUSTER_BINARIES))


def pulumi_root() -> Path | None:
    """Directory holding ``bin/pulumi``: the built toolchain's, else the user's ``pulumi`` on PATH."""
    if (BIN / "pulumi").is_file():
        return E2E_HOME
    found = shutil.which("pulumi")
    return Path(found).resolve().parent.parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the control plane

@dataclass
class ControlPlane:
    """A kube-apiserver + controller-manager + scheduler + kwok on 127.0.0.1, started and stopped by PID."""

    instance: Path
    """State of this control plane: PIDs, logs, etcd data, kubeconfigs."""
    emulate: str | None = None
    """Kubernetes minor to emulate (``--emulated-version``); None: the binaries' own."""
    scheduler_profile: dict[str, Any] | None = None
    """A KubeSchedulerConfiguration profile to run the scheduler with; None: the default profile."""
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.instance / "admin.kubeconfig"

    def start(self) -> None:
        self.stop()
        shutil.rmtree(self.instance / "data", ignore_errors=True)
        self.ports = {name: free_port() for name in
                      ("ETCD_PORT", "ETCD_PEER_PORT", "APISERVER_PORT", "KCM_PORT", "SCHED_PORT")}
        env = {**os.environ, "E2E_HOME": str(E2E_HOME), "E2E_INSTANCE": str(self.instance),
               **{k: str(v) for k, v in self.ports.items()}}
        if self.emulate and self.emulate != NEWEST_MINOR:
            env["EMULATE"] = self.emulate
        if self.scheduler_profile is not None:
            self.instance.mkdir(parents=True, exist_ok=True)
            path = self.instance / "scheduler-config.yaml"
            path.write_text(yaml.safe_dump({
                "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": str(self.instance / "scheduler.kubeconfig")},
                "leaderElection": {"leaderElect": False},
                "profiles": [{"schedulerName": "default-scheduler", **self.scheduler_profile}]}))
            env["SCHEDULER_CONFIG"] = str(path)
        run = subprocess.run([str(TOOLCHAIN / "up.sh")], env=env, capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}"
                             for p in sorted((self.instance / "logs").glob("*.log")))
            self.stop()
            raise RuntimeError(f"control plane did not start:\n{run.stdout}\n{run.stderr}\n{logs}")

    def pids(self) -> dict[str, int]:
        run_dir = self.instance / "run"
        return {p.stem: int(p.read_text()) for p in run_dir.glob("*.pid")} if run_dir.is_dir() else {}

    def stop(self) -> None:
        """Stop every process this control plane started, by the PIDs it saved (never by name).

        A saved PID counts only while its process still carries this instance in its environment
        (up.sh exports ``E2E_INSTANCE`` to every process it starts): a PID the system has since given
        to another process is left alone.
        """
        ours = {name: pid for name, pid in self.pids().items() if _runs_in(pid, self.instance)}
        for pid in ours.values():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 15
        for pid in ours.values():
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for p in (self.instance / "run").glob("*.pid") if (self.instance / "run").is_dir() else ():
            p.unlink()


def _runs_in(pid: int, instance: Path) -> bool:
    """Whether process ``pid`` was started for ``instance`` (a control plane's directory)."""
    try:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"E2E_INSTANCE={instance}".encode() in environment


def instance_dir(minor: str) -> Path:
    """A fresh directory for one test run's control plane at ``minor``.

    Named after the run's PID, so two runs (two checkouts, or CI beside a developer) never share
    one and never stop each other's processes. Directories of runs that have ended are swept
    first, stopping what such a run left behind (a run killed before its teardown).
    """
    root = E2E_HOME / "instances"
    for stale in sorted(root.glob("*-*")) if root.is_dir() else ():
        owner = stale.name.rsplit("-", 1)[1]
        if owner.isdigit() and not _alive(int(owner)):
            ControlPlane(instance=stale).stop()
            shutil.rmtree(stale, ignore_errors=True)
    return root / f"{minor}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent shell) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------------------- kubectl

class Kube:
    """kubectl against one cluster."""

    def __init__(self, kubeconfig: Path, kubectl: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = kubectl or (str(BIN / "kubectl") if (BIN / "kubectl").is_file() else "kubectl")

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.kubectl, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, objects: list[dict[str, Any]], manager: str = "e2e-fixture") -> None:
        if objects:
            self.run("apply", "--server-side", f"--field-manager={manager}", "-f", "-",
                     stdin=yaml.safe_dump_all(objects))

    def items(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind] + (["-n", namespace] if namespace else ["-A"]) + (["-l", selector] if selector else [])
        return list(self.json(*args)["items"])

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        result = self.run("get", kind, name, *(["-n", namespace] if namespace else []), "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise RuntimeError(result.stderr)
        return dict(json.loads(result.stdout))

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 120, every: float = 1.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if check():
                return
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --------------------------------------------------------------------------- kwok nodes and CRDs

def kwok_nodes(config: dict[str, Any], zones: int = 2, groups: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Fake Nodes for every node group of a stack config: ``maxSize`` nodes (or ``groups[name]``) of each.

    Each node carries the labels and taints the group's :class:`Placement` says its nodes have (the
    very object the APIs' node selectors and tolerations come from), the labels EKS puts on nodes
    (and ``nvidia.com/gpu.present`` on GPU nodes, as the GPU AMI's nodeadm sets it), and the
    capacity and allocatable of the group's smallest instance type as the product computes them
    (:mod:`modelplane.catalog`: the EKS kubelet's reserve, eviction threshold and max pods), GPUs as
    ``nvidia.com/gpu`` as the device plugin advertises them. DaemonSets are not subtracted here: a
    scenario that wants them runs them (:func:`daemonset_stand_ins`), and the scheduler counts them.
    """
    estate = parse_estate(config, "e2e")
    region = estate.region or "us-east-1"
    nodes = []
    for group, spec in estate.node_groups.items():
        placement = Placement.for_existing_pool(group, spec) if estate.existing else Placement.for_group(group, spec)
        shape = estate.node_shape(group)
        assert shape is not None, f"kwok nodes need instance types modelplane knows, not {spec.instance_types}"
        itype, allocated = shape.instance_type, shape.allocatable
        for index in range(spec.max_size if groups is None else groups.get(group, 0)):
            zone = f"{region}{'abcdef'[index % zones]}"
            name = f"{group}-{index}"
            capacity = {"cpu": str(itype.vcpus), "memory": f"{itype.capacity_memory_mib}Mi",
                        "pods": str(allocated.pods), "ephemeral-storage": "100Gi"}
            allocatable = {"cpu": f"{int(allocated.cpu)}m", "memory": f"{int(allocated.mem)}Mi",
                           "pods": str(allocated.pods), "ephemeral-storage": "95Gi"}
            if spec.gpu:
                capacity[GPU_RESOURCE] = allocatable[GPU_RESOURCE] = str(allocated.gpus)
            node: dict[str, Any] = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name,
                             "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                             "labels": {**placement.labels, **placement.node_selector(),
                                        **({GPU_PRESENT_LABEL: "true"} if spec.gpu else {}),
                                        "kubernetes.io/arch": "arm64" if catalog.architecture(itype.name) == "arm64"
                                        else "amd64", "kubernetes.io/os": "linux",
                                        "kubernetes.io/hostname": name,
                                        "node.kubernetes.io/instance-type": itype.name,
                                        "topology.kubernetes.io/region": region,
                                        "topology.kubernetes.io/zone": zone, "type": "kwok"}},
                "spec": {"taints": [{"key": t.key, "value": t.value, "effect": t.effect}
                                    for t in placement.taints]},
                "status": {"capacity": capacity, "allocatable": allocatable},
            }
            if not node["spec"]["taints"]:
                del node["spec"]["taints"]
            nodes.append(node)
    return nodes


# (group, schema file stem) -> (kind, plural, scope) for the CRD schemas in ../shared/crd-schemas.
CRD_NAMES = {
    ("keda.sh", "scaledobject"): ("ScaledObject", "scaledobjects", "Namespaced"),
    ("keda.sh", "scaledjob"): ("ScaledJob", "scaledjobs", "Namespaced"),
    ("keda.sh", "triggerauthentication"): ("TriggerAuthentication", "triggerauthentications", "Namespaced"),
    ("monitoring.coreos.com", "podmonitor"): ("PodMonitor", "podmonitors", "Namespaced"),
    ("monitoring.coreos.com", "servicemonitor"): ("ServiceMonitor", "servicemonitors", "Namespaced"),
    ("monitoring.coreos.com", "prometheusrule"): ("PrometheusRule", "prometheusrules", "Namespaced"),
    ("karpenter.sh", "nodepool"): ("NodePool", "nodepools", "Cluster"),
    ("karpenter.k8s.aws", "ec2nodeclass"): ("EC2NodeClass", "ec2nodeclasses", "Cluster"),
    ("gateway.networking.k8s.io", "gateway"): ("Gateway", "gateways", "Namespaced"),
    ("gateway.networking.k8s.io", "httproute"): ("HTTPRoute", "httproutes", "Namespaced"),
    ("elbv2.k8s.aws", "targetgroupbinding"): ("TargetGroupBinding", "targetgroupbindings", "Namespaced"),
    ("elbv2.k8s.aws", "ingressclassparams"): ("IngressClassParams", "ingressclassparams", "Cluster"),
}

ADDON_GROUPS = {"keda": ["keda.sh"], "prometheus": ["monitoring.coreos.com"]}
"""The API groups whose CRDs an add-on brings."""


def _structural(schema: Any) -> Any:
    """A JSON Schema from the CRDs catalog as a CRD's structural openAPIV3Schema.

    The catalog closes every object (``additionalProperties: false``); a structural schema may not
    combine that with ``properties`` (the API server prunes unknown fields anyway).
    """
    if isinstance(schema, dict):
        out = {k: _structural(v) for k, v in schema.items() if k not in ("$schema", "$id")}
        if "properties" in out and out.get("additionalProperties") is False:
            del out["additionalProperties"]
        return out
    if isinstance(schema, list):
        return [_structural(v) for v in schema]
    return schema


def crds_from_schemas(schemas: Path, groups: list[str]) -> list[dict[str, Any]]:
    """CustomResourceDefinitions for every schema of ``groups`` in a CRD-schemas folder (one version each)."""
    crds: dict[str, dict[str, Any]] = {}
    for group in groups:
        for path in sorted((schemas / group).glob("*.json")):
            stem, version = path.stem.rsplit("_", 1)
            kind, plural, scope = CRD_NAMES[(group, stem)]
            schema = _structural(json.loads(path.read_text()))
            crd = crds.setdefault(plural, {
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {"group": group, "scope": scope, "versions": [],
                         "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                                   "listKind": f"{kind}List"}}})
            crd["spec"]["versions"].append({"name": version, "served": True, "storage": True,
                                            "schema": {"openAPIV3Schema": schema},
                                            "subresources": {"status": {}}})
    return list(crds.values())


# --------------------------------------------------------------------------- the real engine

@dataclass(frozen=True)
class Step:
    """One step of a preview or update, as the engine reported it."""

    op: str
    """``same``, ``create``, ``update``, ``delete``, ``replace``, ``create-replacement``, ``delete-replaced``, ``read`` ..."""
    type: str
    name: str
    urn: str
    diffs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyViolation:
    """One violation a policy pack reported, as the engine's policy event carried it."""

    pack: str
    """The pack's name (``PolicyPack(name=...)``)."""
    policy: str
    enforcement_level: str
    """``advisory``, ``mandatory`` or ``remediate``."""
    message: str
    """The policy's description and the violation's own message."""
    urn: str
    """The resource's URN; empty for a stack validation's violation without a resource."""


def _collector(steps: list[Step], violations: list[PolicyViolation]) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        policy = getattr(event, "policy_event", None)
        if policy is not None:
            violations.append(PolicyViolation(pack=policy.policy_pack_name, policy=policy.policy_name,
                                              enforcement_level=policy.enforcement_level,
                                              message=policy.message, urn=policy.resource_urn or ""))
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            return
        meta = pre.metadata
        urn = meta.urn
        steps.append(Step(op=str(meta.op.value if hasattr(meta.op, "value") else meta.op), type=meta.type,
                          name=urn.rsplit("::", 1)[-1], urn=urn, diffs=tuple(meta.diffs or ())))

    return on_event


class Workspace:
    """A scratch copy of the project (``Pulumi.yaml``, ``infra/``, ``stacks/``) on a local file backend."""

    def __init__(self, root: Path, pulumi: Path | None = None) -> None:
        self.root = root
        self.project = root / "project"
        self.state = root / "state"
        self.home = E2E_HOME / "pulumi-home"
        self.pulumi_root = pulumi or pulumi_root()
        if self.project.exists():
            shutil.rmtree(self.project)
        self.project.mkdir(parents=True)
        shutil.copy(PROJECT / "Pulumi.yaml", self.project / "Pulumi.yaml")
        shutil.copytree(PROJECT / "infra", self.project / "infra", ignore=shutil.ignore_patterns("__pycache__"))
        (self.project / "stacks").mkdir()
        self.state.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        env = {"PULUMI_BACKEND_URL": f"file://{self.state}", "PULUMI_CONFIG_PASSPHRASE": "modelplane-e2e",
               "PULUMI_HOME": str(self.home), "PULUMI_SKIP_UPDATE_CHECK": "true",
               "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
               # A policy pack without runtime.options.virtualenv runs on the tier's own interpreter
               # (the one with pulumi-policy installed), not on whatever python3 PATH finds.
               "PULUMI_PYTHON_CMD": sys.executable}
        if self.pulumi_root == E2E_HOME:
            # The built provider is used as an ambient plugin from PATH; nothing is ever downloaded.
            env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
            env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        return env

    def cli(self, *args: str, stack: str | None = None, check: bool = False,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The Pulumi CLI itself in the project copy (for what the Automation API does not cover)."""
        assert self.pulumi_root is not None
        command = [str(self.pulumi_root / "bin" / "pulumi"), *args, "--non-interactive",
                   *(["--stack", stack] if stack else [])]
        result = subprocess.run(command, cwd=self.project, env={**os.environ, **self.env}, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"pulumi {' '.join(args)}: {result.stdout}\n{result.stderr}")
        return result

    def stack(self, name: str, config: dict[str, Any], program: Callable[[], None] | None = None) -> LiveStack:
        """A stack of this project with ``config``, running modelplane's program or ``program``."""
        stack = LiveStack(self, name, program)
        stack.set_config(config)
        return stack


class LiveStack:
    """One stack of a :class:`Workspace`, driven by the real engine."""

    def __init__(self, workspace: Workspace, name: str, program: Callable[[], None] | None = None) -> None:
        from pulumi import automation as auto

        self.workspace = workspace
        self.name = name
        self.config: dict[str, Any] = {}
        self.ups: list[tuple[list[Step], Any]] = []
        """Every ``up`` this object ran: (steps, result)."""
        self.violations: list[PolicyViolation] = []
        """What the policy packs of the last operation reported."""
        self.log = workspace.root / f"{name}.log"
        main = workspace.project / "infra" / "__main__.py"
        command = auto.PulumiCommand(root=str(workspace.pulumi_root), skip_version_check=True)
        opts = auto.LocalWorkspaceOptions(work_dir=str(workspace.project), pulumi_home=str(workspace.home),
                                          env_vars=workspace.env, pulumi_command=command)
        if not self.path.exists():
            self.path.write_text(yaml.safe_dump({"config": {}}))
        self._stack = auto.create_or_select_stack(
            stack_name=name, project_name="modelplane", opts=opts,
            program=program or (lambda: runpy.run_path(str(main), run_name="__main__")))

    @property
    def path(self) -> Path:
        return self.workspace.project / "stacks" / f"Pulumi.{self.name}.yaml"

    def set_config(self, config: dict[str, Any]) -> None:
        """Write ``config`` as the stack file's ``config:``, keeping what Pulumi keeps there (encryption salt)."""
        document = yaml.safe_load(self.path.read_text()) if self.path.exists() else {}
        document = document or {}
        document["config"] = copy.deepcopy(config)
        self.path.write_text(yaml.safe_dump(document, sort_keys=False))
        self.config = copy.deepcopy(config)

    def write_text(self, text: str) -> None:
        """Write the stack file verbatim (for files the YAML dumper would not produce, e.g. duplicate keys)."""
        self.path.write_text(text)

    def _logged(self, what: str) -> Callable[[str], None]:
        with self.log.open("a") as handle:
            handle.write(f"\n===== {what} {time.strftime('%H:%M:%S')}\n")
        self.output: list[str] = []
        """What the last operation printed."""

        def out(line: str) -> None:
            with self.log.open("a") as handle:
                handle.write(line if line.endswith("\n") else line + "\n")
            self.output.append(line)

        return out

    def _policies(self, packs: Sequence[Path], configs: Sequence[Path]) -> dict[str, Any]:
        """The ``--policy-pack`` / ``--policy-pack-config`` arguments (``configs[i]`` configures ``packs[i]``)."""
        if len(configs) > len(packs):
            raise ValueError(f"{len(configs)} policy pack configs for {len(packs)} packs")
        self.violations = []
        return {"policy_packs": [str(p) for p in packs] or None,
                "policy_pack_configs": [str(c) for c in configs] or None}

    def preview(self, refresh: bool = False, policy_packs: Sequence[Path] = (),
                policy_pack_configs: Sequence[Path] = ()) -> list[Step]:
        """The planned steps. Policy violations land in :attr:`violations` (a mandatory one raises CommandError)."""
        policies = self._policies(policy_packs, policy_pack_configs)
        steps: list[Step] = []
        # Both streams: with --diff, the CLI writes the program's warnings to stderr.
        out = self._logged("preview")
        self._stack.preview(on_event=_collector(steps, self.violations), on_output=out, on_error=out, diff=True,
                            refresh=refresh or None, **policies)
        return steps

    def up(self, refresh: bool = False, policy_packs: Sequence[Path] = (),
           policy_pack_configs: Sequence[Path] = ()) -> tuple[list[Step], Any]:
        policies = self._policies(policy_packs, policy_pack_configs)
        steps: list[Step] = []
        out = self._logged("up")
        result = self._stack.up(on_event=_collector(steps, self.violations), on_output=out, on_error=out,
                                diff=True, refresh=refresh or None, **policies)
        self.ups.append((steps, result))
        return steps, result

    def refresh(self) -> tuple[list[Step], Any]:
        steps: list[Step] = []
        on_event = _collector(steps, [])
        out = self._logged("refresh")
        result = self._stack.refresh(on_event=on_event, on_output=out, on_error=out)
        return steps, result

    def destroy(self) -> Any:
        out = self._logged("destroy")
        return self._stack.destroy(on_output=out, on_error=out)

    def resources(self) -> list[dict[str, Any]]:
        """The resources in the stack's state (type, urn, inputs, outputs)."""
        state = self._stack.export_stack().deployment
        return list((state or {}).get("resources", []))

    def render(self, out: Path) -> Path:
        """``modelplane render`` of this stack's file, offline, as a user would run it."""
        modelplane = shutil.which("modelplane") or str(Path(sys.executable).parent / "modelplane")
        result = subprocess.run([modelplane, "--project", str(self.workspace.project), "render", "--stack", self.name,
                                 "--out", str(out)], capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"modelplane render: {result.stdout}\n{result.stderr}")
        return out


def rendered_objects(out: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects a ``modelplane render`` wrote."""
    return [yaml.safe_load(p.read_text()) for p in sorted((out / "k8s").rglob("*.yaml"))]


def object_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


# --------------------------------------------------------------------------- watching a rollout

@dataclass
class RolloutWatch:
    """What a watcher saw of one Deployment's pods while a rollout ran."""

    max_pods: int = 0
    """Most pods alive at once (not terminating)."""
    min_ready: int | None = None
    """Fewest ready pods at once."""
    samples: int = 0
    hashes: set[str] = field(default_factory=set)
    """pod-template-hash values seen."""
    lines: list[str] = field(default_factory=list)


@contextmanager
def watching(kube: Kube, namespace: str, selector: str, every: float = 0.3) -> Iterator[RolloutWatch]:
    """Sample the pods matching ``selector`` in a thread for as long as the block runs."""
    watch = RolloutWatch()
    stop = threading.Event()

    def sample() -> None:
        last = None
        while not stop.is_set():
            try:
                pods = kube.items("pods", namespace, selector)
            except RuntimeError:
                time.sleep(every)
                continue
            alive = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            ready = sum(1 for p in alive if any(c["type"] == "Ready" and c["status"] == "True"
                                                 for c in p.get("status", {}).get("conditions", [])))
            watch.samples += 1
            watch.max_pods = max(watch.max_pods, len(alive))
            watch.min_ready = ready if watch.min_ready is None else min(watch.min_ready, ready)
            watch.hashes |= {p["metadata"]["labels"].get("pod-template-hash", "") for p in alive}
            line = f"alive={len(alive)} ready={ready}"
            if line != last:
                watch.lines.append(f"{time.strftime('%H:%M:%S')} {line}")
                last = line
            time.sleep(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- the local stack and its cluster

LOCAL_STACK = PROJECT / "stacks" / "Pulumi.local.yaml"
USER_CLUSTER = os.environ.get("MODELPLANE_E2E_KUBECONFIG")
"""A cluster of the user's own to run against instead of the local control plane (it must be a throwaway)."""


def local_config() -> dict[str, Any]:
    """The committed ``local`` stack's config map (a fresh copy)."""
    return copy.deepcopy(load_stack_file(LOCAL_STACK))


def pointed_at(config: dict[str, Any], kubeconfig: Path, context: str | None) -> dict[str, Any]:
    """``config`` with its existing cluster reached through ``kubeconfig`` (and ``context``)."""
    config = copy.deepcopy(config)
    existing = config["modelplane:cluster"]["existing"]
    for source in ("kubeconfig", "kubeconfigPath", "stackReference", "context"):
        existing.pop(source, None)
    existing["kubeconfigPath"] = str(kubeconfig)
    if context:
        existing["context"] = context
    return config


class Cluster:
    """The cluster a session runs against: the kubeconfig, its context, kubectl, the emulated minor."""

    def __init__(self, kubeconfig: Path, context: str | None, minor: str, plane: ControlPlane | None):
        self.kubeconfig = kubeconfig
        self.context = context
        self.minor = minor
        self.plane = plane
        self.kube = Kube(kubeconfig)

    def prepare(self, config: dict[str, Any], crd_schemas: Path) -> None:
        """kwok Nodes for the stack's node groups and the CRDs of the add-ons it declares present."""
        if self.plane is not None:
            fake = kwok_nodes(config)
            self.kube.apply(fake)
            nodes = len(fake)
            self.kube.wait_for(f"{nodes} Ready nodes", lambda: sum(
                1 for n in self.kube.items("nodes") for c in n["status"].get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True") >= nodes, timeout=60)
        addons = config["modelplane:cluster"]["existing"].get("addons", {})
        groups = [g for addon, gs in ADDON_GROUPS.items() if addons.get(addon) == "present" for g in gs]
        crds = crds_from_schemas(crd_schemas, groups)
        self.kube.apply(crds)
        for crd in crds:
            # kubectl wait fails outright ("accessor error") while a new CRD has no status yet: ask again.
            self.kube.wait_for(f"CRD {crd['metadata']['name']} established", lambda name=crd["metadata"]["name"]:
                               self.kube.run("wait", "--for", "condition=established", "--timeout=10s",
                                             f"crd/{name}", check=False).returncode == 0, 60)


@contextlib.contextmanager
def load_balancer_stand_in(kube: Kube, every: float = 1.0) -> Iterator[None]:
    """What the AWS Load Balancer Controller answers an Ingress of class ``alb``: a hostname in its status.

    The provider waits for that address before it calls an Ingress created, so a control plane
    without AWS needs something to give one. Like kwok for nodes, this plays the controller's part
    in the API and nothing more (no load balancer exists): a thread sets each new ``alb`` Ingress's
    ``status.loadBalancer`` to one hostname per IngressGroup.
    """
    stop = threading.Event()

    def answer() -> None:
        while not stop.wait(every):
            listed = kube.run("get", "ingress", "-A", "-o", "json", check=False)
            if listed.returncode != 0:
                continue
            for ingress in json.loads(listed.stdout).get("items", []):
                if ingress["spec"].get("ingressClassName") != "alb" or \
                        (ingress.get("status", {}).get("loadBalancer") or {}).get("ingress"):
                    continue
                meta = ingress["metadata"]
                group = (meta.get("annotations") or {}).get("alb.ingress.kubernetes.io/group.name", meta["name"])
                status = {"status": {"loadBalancer": {"ingress": [{"hostname": f"k8s-{group}.elb.e2e.local"}]}}}
                kube.run("patch", "ingress", meta["name"], "-n", meta["namespace"], "--subresource=status",
                         "--type=merge", "-p", json.dumps(status), check=False)

    thread = threading.Thread(target=answer, name="load-balancer-stand-in", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def start_cluster(instance: Path, minor: str) -> Iterator[Cluster]:
    """A control plane emulating ``minor`` (or the user's cluster), stopped by PID when done."""
    if USER_CLUSTER:
        yield Cluster(Path(USER_CLUSTER), None, minor, None)
        return
    plane = ControlPlane(instance=instance, emulate=minor)
    plane.start()
    try:
        yield Cluster(plane.kubeconfig, "realk8s", minor, plane)
    finally:
        plane.stop()
        shutil.rmtree(instance, ignore_errors=True)
