"""Run the real Pulumi program offline, under the Pulumi SDK's mock engine.

No cloud, no credentials, no Pulumi CLI: the program in ``infra/`` runs as it
would in ``pulumi up``, and every resource it registers is recorded with its
type, name, parent and inputs. ``modelplane plan`` and ``modelplane render``
and the tests are built on this.

Cloud-side outputs that the program reads (VPC and subnet ids, role ARNs, the
cluster's kubeconfig and OIDC issuer) are filled with realistic, deterministic
fake values so that the rendered objects look exactly like the real ones.
"""

from __future__ import annotations

import concurrent.futures
import gc
import hashlib
import json
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from .config import EstateConfig, load_stack_file, parse_estate

__all__ = ["Plan", "Registered", "find_project", "kubernetes_objects", "normalize", "run_stack", "start_mock_engine"]

ACCOUNT = "123456789012"


@dataclass
class Registered:
    """One resource the program registered."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: tuple[str, ...] = ()
    """URNs the resource explicitly waits for (``depends_on``, resolved by the SDK)."""
    provider: str = ""
    """Reference (``<urn>::<id>``) of the provider a custom resource goes through; empty: the default provider."""

    @property
    def provider_urn(self) -> str:
        """URN of the provider the resource goes through ("" for the default provider)."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    def as_json(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent,
                "custom": self.custom, "provider": self.provider_urn, "dependsOn": sorted(self.dependencies),
                "inputs": normalize(self.inputs)}


@dataclass
class ProgramRun:
    """What one offline run of a program of one's own registered and exported (see :func:`run_program`)."""

    resources: list[Registered] = field(default_factory=list)
    """Every resource, in URN order."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """The stack's exports, resolved."""
    secret_outputs: set[str] = field(default_factory=set)

    def by_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def children(self, urn: str) -> list[Registered]:
        return [r for r in self.resources if r.parent == urn]


@dataclass(kw_only=True)
class Plan(ProgramRun):
    """What one offline run of the program produced."""

    stack: str
    config: EstateConfig


DEFAULT_REGION = "us-east-1"
"""Region of the fake cloud values when the estate names none (an existing cluster outside AWS)."""


class EstateMocks(pulumi.runtime.Mocks):
    """Answers the program's resource registrations and invokes with realistic fake cloud values."""

    def __init__(self, region: str | None, kubeconfig_outputs: dict[str, str] | None = None,
                 stack_outputs: dict[str, dict[str, Any]] | None = None) -> None:
        self.region = region or DEFAULT_REGION
        self.kubeconfig_outputs = kubeconfig_outputs or {}
        """Stack name -> the output of it that holds a kubeconfig (``existing.stackReference``)."""
        self.stack_outputs = stack_outputs or {}
        """Stack name -> its outputs, as given (a ``kubeconfig`` among them is secret)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            stack = args.inputs.get("name") or args.name
            if stack in self.stack_outputs:
                outputs = self.stack_outputs[stack]
                return stack, {"name": stack, "outputs": outputs,
                               "secretOutputNames": [k for k in ("kubeconfig",) if k in outputs]}
            # Another stack's outputs: the kubeconfig of the cluster that stack made, as pulumi-eks exports it.
            output = self.kubeconfig_outputs.get(stack, "kubeconfig")
            kubeconfig = _fake_kubeconfig(stack.rsplit("/", 1)[-1], self.region, context=f"{stack}:{output}")
            return stack, {"name": stack, "outputs": {output: kubeconfig}, "secretOutputNames": [output]}
        # Remote components (eks:index:Cluster, eks:index:ManagedNodeGroup) are not custom but have outputs.
        fake = _fake_outputs(args.typ, args.name, self.region, args.inputs)
        if not args.custom:
            return None, {**args.inputs, **fake}
        resource_id = fake.pop("id", None) or f"{args.name}-{_digest(args.typ, args.name)[:8]}"
        return resource_id, {**args.inputs, **fake}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = [f"{self.region}{letter}" for letter in "abcdef"]
            return {"id": self.region, "names": zones, "zoneIds": [f"use1-az{i}" for i in range(1, 7)],
                    "groupNames": [self.region], "state": "available"}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/offline", "userId": "AIDAOFFLINE"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if args.token == "aws:ec2/getVpc:getVpc":
            # An existing VPC's CIDR (offline: a stand-in, as AWS is not asked).
            return {"id": args.args.get("id", "vpc-offline"), "cidrBlock": "10.0.0.0/16"}
        if args.token == "aws:route53/getZone:getZone":
            zone = str(args.args.get("name", "example.com"))
            return {"id": "Z" + _digest("zone", zone)[:20].upper(), "zoneId": "Z" + _digest("zone", zone)[:20].upper(),
                    "name": zone}
        return {}


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _fake_kubeconfig(cluster: str, region: str, context: str = "aws") -> dict[str, Any]:
    """The kubeconfig pulumi-eks would give an EKS cluster named ``cluster`` (fake endpoint and CA)."""
    h = _digest("kubeconfig", cluster)
    endpoint = f"https://{h[:32].upper()}.gr7.{region}.eks.amazonaws.com"
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": endpoint, "certificate-authority-data": "T0ZGTElORS1DQQ=="}}],
        "contexts": [{"name": context, "context": {"cluster": "kubernetes", "user": "aws"}}],
        "users": [{"name": "aws", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region]}}}],
    }


def _fake_outputs(typ: str, name: str, region: str, inputs: dict[str, Any]) -> dict[str, Any]:
    h = _digest(typ, name)
    if typ == "eks:index:Cluster":
        cluster = inputs.get("name") or name
        issuer = f"oidc.eks.{region}.amazonaws.com/id/{h[:32].upper()}"
        kubeconfig = _fake_kubeconfig(cluster, region)
        return {
            "kubeconfig": kubeconfig,
            "kubeconfigJson": json.dumps(kubeconfig),
            "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}",
            "oidcProviderUrl": f"https://{issuer}",
            "oidcIssuer": issuer,
            "clusterSecurityGroupId": f"sg-{h[:17]}",
            "nodeSecurityGroupId": f"sg-{h[17:34]}",
        }
    prefixes = {
        "aws:ec2/vpc:Vpc": "vpc-", "aws:ec2/subnet:Subnet": "subnet-", "aws:ec2/internetGateway:InternetGateway": "igw-",
        "aws:ec2/natGateway:NatGateway": "nat-", "aws:ec2/eip:Eip": "eipalloc-", "aws:ec2/routeTable:RouteTable": "rtb-",
        "aws:ec2/launchTemplate:LaunchTemplate": "lt-", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-",
    }
    if typ in prefixes:
        fake: dict[str, Any] = {"id": prefixes[typ] + h[:17]}
        if typ == "aws:ec2/launchTemplate:LaunchTemplate":
            fake["latestVersion"] = 1
        return fake
    if typ == "aws:iam/role:Role":
        return {"id": name, "name": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}"}
    if typ == "aws:sqs/queue:Queue":
        queue = inputs.get("name") or name
        url = f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{queue}"
        return {"id": url, "url": url, "arn": f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}"}
    if typ == "aws:cloudwatch/eventRule:EventRule":
        # Autonamed by the provider: the Pulumi name plus a random suffix.
        rule = inputs.get("name") or f"{name}-{h[:7]}"
        return {"id": rule, "name": rule, "arn": f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule}"}
    if typ == "kubernetes:networking.k8s.io/v1:Ingress":
        # The controller's answer: the shared ALB's DNS name (one per IngressGroup).
        group = ((inputs.get("metadata") or {}).get("annotations") or {}).get("alb.ingress.kubernetes.io/group.name",
                                                                             name)
        host = f"k8s-{group[:20]}-{_digest('alb', group)[:10]}-{int(_digest('id', group)[:8], 16)}.{region}.elb.amazonaws.com"
        return {"status": {"loadBalancer": {"ingress": [{"hostname": host}]}}}
    if typ == "aws:acm/certificate:Certificate":
        domain = str(inputs.get("domainName", name))
        return {"arn": f"arn:aws:acm:{region}:{ACCOUNT}:certificate/{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
                "domainValidationOptions": [{"domainName": domain, "resourceRecordName": f"_{h[:32]}.{domain}.",
                                             "resourceRecordType": "CNAME",
                                             "resourceRecordValue": f"_{h[32:64]}.acm-validations.aws."}]}
    if typ == "aws:acm/certificateValidation:CertificateValidation":
        return {"certificateArn": inputs.get("certificateArn", "")}
    if typ == "aws:route53/record:Record":
        return {"fqdn": str(inputs.get("name", name)).rstrip(".")}
    if typ == "aws:kms/key:Key":
        key_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        return {"id": key_id, "keyId": key_id, "arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"}
    return {}


class RecordingMonitor(_mocks.MockMonitor):
    """The SDK's mock monitor, also recording each resource's parent and inputs."""

    def __init__(self, mocks: EstateMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Registered] = []
        self.stack_outputs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the real engine gives: the parent's whole type chain, then this type (the stack's own omitted).

        The SDK's mock monitor keeps only the parent's last type, so its URNs differ from those a
        real ``pulumi up`` records for every resource nested two levels or more.
        """
        if parent:
            qualified = parent.split("::")[2]
            if qualified != "pulumi:pulumi:Stack":
                type_ = f"{qualified}${type_}"
        return "::".join(["urn:pulumi:" + pulumi.get_stack(), pulumi.get_project(), type_, name])

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        inputs = _plain(json_format.MessageToDict(request.object))
        args = pulumi.runtime.MockResourceArgs(typ=request.type, name=request.name, inputs=inputs,
                                               provider=request.provider, resource_id=request.importId,
                                               custom=request.custom or False)
        resource_id, state = self.mocks.new_resource(args)
        with self._lock:
            self.recorded.append(Registered(urn, request.type, request.name, request.parent,
                                            bool(request.custom), inputs, tuple(request.dependencies),
                                            request.provider))
            self.resources[urn] = _mocks.MockMonitor.ResourceRegistration(urn, resource_id or "", state)
        # The state is plain data, so it goes on the wire without the SDK's (async) serializer, which
        # would pump the event loop re-entrantly from inside this call.
        wire = struct_pb2.Struct()
        wire.update(state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id or "", object=wire)


    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        # Reads (a StackReference) are part of the estate too: record them like registrations.
        urn = self.make_urn(request.parent, request.type, request.name)
        inputs = _plain(json_format.MessageToDict(request.properties))
        args = pulumi.runtime.MockResourceArgs(typ=request.type, name=request.name, inputs=inputs,
                                               provider=request.provider, resource_id=request.id)
        resource_id, state = self.mocks.new_resource(args)
        with self._lock:
            self.recorded.append(Registered(urn, request.type, request.name, request.parent, True, inputs,
                                            tuple(request.dependencies)))
            self.resources[urn] = _mocks.MockMonitor.ResourceRegistration(urn, resource_id or "", state)
        wire = struct_pb2.Struct()
        wire.update(state)
        return resource_pb2.ReadResourceResponse(urn=urn, properties=wire)


def _plain(value: Any) -> Any:
    """Engine wire values as plain data: resource references become ``{"$ref": urn}``, secrets their value.

    The SDK's own deserializer would rehydrate referenced resources through an invoke scheduled on this
    monitor thread's event loop, racing the program's loop; the recording needs only the URN.
    """
    if isinstance(value, dict):
        signature = value.get(rpc._special_sig_key)
        if signature == rpc._special_resource_sig:
            return {"$ref": value["urn"]}
        if signature in (rpc._special_secret_sig, rpc._special_output_value_sig):
            return _plain(value.get("value"))
        # Sorted: the wire's map order is the protobuf runtime's, which differs from run to run.
        return {k: _plain(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value == rpc.UNKNOWN:
        return None
    return value


def find_project(start: Path | None = None) -> Path:
    """The directory holding ``Pulumi.yaml``: ``start`` or one of its parents."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file() and (candidate / "infra" / "__main__.py").is_file():
            return candidate
    raise FileNotFoundError(f"no modelplane project (Pulumi.yaml with infra/__main__.py) at or above {here}")


def stack_names(project: Path) -> list[str]:
    """The stacks of a project: ``dev`` for ``stacks/Pulumi.dev.yaml``, sorted."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (project / "stacks").glob("Pulumi.*.yaml"))


def stack_file(project: Path, stack: str) -> Path:
    return project / "stacks" / f"Pulumi.{stack}.yaml"


def load_config(project: Path, stack: str) -> tuple[dict[str, Any], EstateConfig]:
    """Read and validate one stack file (raises ConfigError before anything is registered)."""
    path = stack_file(project, stack)
    source = str(path.relative_to(project)) if path.is_relative_to(project) else str(path)
    raw = load_stack_file(path, source) if path.exists() else _missing(source, project)
    return raw, parse_estate(raw, source)


def _missing(source: str, project: Path) -> dict[str, Any]:
    from .config import ConfigError, Issue

    stacks = stack_names(project)
    raise ConfigError(source, [Issue((), f"no such stack file; stacks here: {', '.join(stacks) or 'none'}")])


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each submitted call at once on the calling thread.

    The SDK sends every engine RPC through the event loop's default executor
    (a thread pool) because a real engine is a gRPC server in another process.
    The mock monitor lives in this process and answers instantly, so the
    thread hand-off is pure overhead (and GIL contention) offline. (asyncio
    only accepts a ThreadPoolExecutor as the default; this one never starts a thread.)
    """

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)
        return future


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def start_mock_engine(stack: str, region: str | None, kubeconfig_outputs: dict[str, str] | None = None,
                      stack_outputs: dict[str, dict[str, Any]] | None = None,
                      project: str = "modelplane") -> RecordingMonitor:
    """Reset the Pulumi runtime and point it at a fresh recording mock engine for ``stack``.

    It pauses the cyclic garbage collector (see below); a caller other than
    :func:`run_stack` turns it back on with ``gc.enable()`` when its run is over.

    The SDK captures the Python stack of every resource registration so that the
    real engine can show source positions; the mock monitor discards them, and
    the capture costs time in proportion to how deeply the program nests its
    components, so offline runs skip it.
    """
    mocks = EstateMocks(region, kubeconfig_outputs, stack_outputs)
    monitor = RecordingMonitor(mocks)
    settings.reset_options(project=project, stack=stack, preview=False)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    runtime_resource._get_stack_trace = _no_stack_trace
    _ensure_event_loop().set_default_executor(_InlineExecutor())
    # An offline run builds a large graph of long-lived objects (resources, outputs, tasks) and
    # frees almost nothing until it ends, so the cyclic collector only rescans that graph, over and
    # over: half the run time at 500 APIs. Like other batch tools, an offline run pauses it
    # (reference counting still frees everything acyclic); run_stack restores it afterwards.
    gc.disable()
    return monitor


_ACTIVE = threading.local()


def active() -> bool:
    """Whether the program is running offline, under :func:`run_stack`'s mock engine (and must not read this machine)."""
    return bool(getattr(_ACTIVE, "running", False))


def run_stack(stack: str, project: Path | None = None, config_map: dict[str, Any] | None = None) -> Plan:
    """Validate ``stacks/Pulumi.<stack>.yaml`` and run ``infra/__main__.py`` on it under mocks.

    ``config_map`` replaces the file's ``config:`` map (tests and benchmarks use it).
    """
    collecting = gc.isenabled()
    _ACTIVE.running = True
    try:
        return _run_stack(stack, project or find_project(), config_map)
    finally:
        _ACTIVE.running = False
        if collecting:
            gc.enable()


def run_program(program: Callable[[], None], stack: str = "dev", region: str | None = DEFAULT_REGION,
                config: dict[str, Any] | None = None,
                stack_outputs: dict[str, dict[str, Any]] | None = None, project: str = "modelplane") -> ProgramRun:
    """Run a Pulumi program of one's own (a function that builds resources) offline, as ``modelplane plan`` runs infra/.

    The program runs under modelplane's mock engine: nothing is created, no credentials are read,
    and cloud values (ids, ARNs, endpoints, kubeconfigs) are realistic fakes for ``region``.
    ``config`` is the stack config the program reads (``{"modelplane:apis": {...}}``; values
    that are not strings are passed as JSON, as Pulumi does). ``stack_outputs`` are the outputs
    of the stacks a ``StackReference`` reads, by stack name (a platform stack's ``platform`` and
    ``kubeconfig``: :func:`run_stack`'s ``Plan.outputs``). ``project`` is the Pulumi project's
    name, the default namespace of ``pulumi.Config()``. Use it to unit-test a stack that
    imports modelplane's components::

        from modelplane import run_program
        run = run_program(my_program, stack="test")
        assert run.by_type("kubernetes:apps/v1:Deployment")
    """
    collecting = gc.isenabled()
    _ACTIVE.running = True
    try:
        monitor = start_mock_engine(stack, region, stack_outputs=stack_outputs, project=project)
        pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in (config or {}).items()})
        from pulumi.runtime.stack import run_pulumi_func

        _sync_await(run_pulumi_func(program))
        run = ProgramRun(resources=sorted(monitor.recorded, key=lambda r: r.urn))
        _read_outputs(run)
        return run
    finally:
        _ACTIVE.running = False
        if collecting:
            gc.enable()


def _read_outputs(run: ProgramRun) -> None:
    root = settings.get_root_resource()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        run.outputs[key] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            run.secret_outputs.add(key)


def _run_stack(stack: str, project: Path, config_map: dict[str, Any] | None) -> Plan:
    gc.disable()  # see start_mock_engine; validation and reading the outputs are part of the run
    if config_map is None:
        config_map, estate = load_config(project, stack)
    else:
        estate = parse_estate(config_map, f"stacks/Pulumi.{stack}.yaml")

    reference = estate.existing.stack_reference if estate.existing is not None else None
    monitor = start_mock_engine(stack, estate.region, {reference.stack: reference.output} if reference else None)
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config_map.items()})

    program = project / "infra" / "__main__.py"
    sys.path.insert(0, str(program.parent))
    try:
        _sync_await(_run(program))
    finally:
        sys.path.remove(str(program.parent))

    # In URN order: the SDK registers resources as their inputs resolve, in an order that varies
    # between runs, and two runs of the same stack must read the same.
    plan = Plan(stack=stack, config=estate, resources=sorted(monitor.recorded, key=lambda r: r.urn))
    _read_outputs(plan)
    return plan


async def _run(program: Path) -> None:
    from pulumi.runtime.stack import run_pulumi_func

    await run_pulumi_func(lambda: runpy.run_path(str(program), run_name="__main__"))


def normalize(value: Any) -> Any:
    """Engine values as the Kubernetes API expects them: integral floats back to ints, no nulls."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


_NOT_OBJECTS = ("pulumi:providers:kubernetes", "kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")


def kubernetes_objects(plan: Plan) -> Iterator[dict[str, Any]]:
    """Every Kubernetes object the program registered, as the API server would receive it."""
    for resource in plan.resources:
        if not resource.type.startswith("kubernetes:") or resource.type in _NOT_OBJECTS:
            continue
        body = normalize(resource.inputs)
        head = {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind"), "metadata": body.pop("metadata")}
        yield {**head, **body}
