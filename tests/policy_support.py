"""Run the policy pack's rules the way the Pulumi engine does, on objects built for the tests.

The engine sends a resource's properties as a protobuf ``Struct`` (so every
number is a float), pulumi_policy deserializes them and wraps them in its
unknown-checking proxy, then calls the policy with a ``ResourceValidationArgs``
(or, for stack rules, ``StackValidationArgs`` of ``PolicyResource``\\ s).
:func:`violations` and :func:`stack_violations` do exactly that.

The ``*_object`` builders return objects shaped like what modelplane registers
(a compact copy of a rendered API, node group, cluster); each passes every
rule, and a test edits one field to make it fail.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from modelplane_policies import RULES

__all__ = [
    "DELETE", "DIGEST", "ISSUER", "UNKNOWN_ARRAY", "UNKNOWN_STRING", "deployment_object", "edited",
    "eks_cluster_object",
    "eks_component_object", "engine_props", "hpa_object", "irsa_statement", "launch_template_object",
    "managed_node_group_object", "namespace_object", "network_policy_object", "pdb_object", "scaled_object",
    "stack_violations", "trust_policy", "urn", "violations",
]

UNKNOWN_STRING = UNKNOWN_STRING_VALUE
"""What the engine sends for a string it does not know yet (preview)."""
UNKNOWN_ARRAY = UNKNOWN_ARRAY_VALUE

OPTIONS = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[])

_RULES = {rule.name: rule for rule in RULES}


def engine_props(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``inputs`` as a policy receives them: through a protobuf Struct, deserialized, in the unknown-checking proxy."""
    struct = struct_pb2.Struct()
    struct.update(inputs)
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def urn(type_: str, name: str, stack: str = "prod") -> str:
    return f"urn:pulumi:{stack}::modelplane::{type_}::{name}"


def violations(rule: str, type_: str, inputs: Mapping[str, Any], name: str = "subject") -> list[str]:
    """What resource rule ``rule`` reports on one resource."""
    policy = _RULES[rule].policy(EnforcementLevel.MANDATORY)
    assert isinstance(policy, ResourceValidationPolicy), f"{rule} is not a resource rule"
    reported: list[str] = []
    args = ResourceValidationArgs(type_, engine_props(inputs), urn(type_, name), name, OPTIONS, None, {}, {})
    policy.validate(args, lambda message, _urn=None: reported.append(message))
    return reported


def stack_violations(rule: str, resources: list[tuple[str, str, Mapping[str, Any]]],
                     config: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """What stack rule ``rule`` reports on ``(type, name, props)`` resources: (resource name, message) pairs."""
    policy = _RULES[rule].policy(EnforcementLevel.MANDATORY)
    assert isinstance(policy, StackValidationPolicy), f"{rule} is not a stack rule"
    stack = [PolicyResource(t, engine_props(props), urn(t, n), n, OPTIONS, None, None, [], {})
             for t, n, props in resources]
    reported: list[tuple[str, str]] = []
    policy.validate(StackValidationArgs(stack, _as_engine_config(config or {}), {}),
                    lambda message, at=None: reported.append(((at or "").rsplit("::", 1)[-1], message)))
    return reported


def _as_engine_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Policy config as pulumi_policy's Configure hands it over (through a Struct: numbers are floats)."""
    struct = struct_pb2.Struct()
    struct.update(config)
    return json_format.MessageToDict(struct)


Path = str | tuple[str | int, ...]


def edited(obj: Mapping[str, Any], *edits: tuple[Path, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` with each ``("a.b.0.c", value)`` set; value ``DELETE`` removes the key.

    A path is dotted text, or a tuple where a key itself holds dots (a label).
    """
    copied = copy.deepcopy(dict(obj))
    for path, value in edits:
        parts = path if isinstance(path, tuple) else tuple(int(p) if p.isdigit() else p for p in path.split("."))
        *parents, last = parts
        node: Any = copied
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)
    return copied


DELETE = object()
"""Value for :func:`edited` that removes the key."""

MODELPLANE_LABELS = {"app.kubernetes.io/managed-by": "modelplane", "app.kubernetes.io/name": "sentiment",
                     "modelplane.io/api": "sentiment"}
DIGEST = "@sha256:" + "ab" * 32


def deployment_object(gpus: int = 0) -> dict[str, Any]:
    """A modelplane API's Deployment: the serving container, the proxy as a native sidecar, a model sidecar."""
    def resources(cpu: str, mem: str, gpu: int = 0) -> dict[str, Any]:
        extra = {"nvidia.com/gpu": str(gpu)} if gpu else {}
        return {"requests": {"cpu": cpu, "memory": mem, **extra}, "limits": {"memory": mem, **extra}}

    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "sentiment", "namespace": "sentiment", "labels": MODELPLANE_LABELS},
        "spec": {
            "selector": {"matchLabels": {"modelplane.io/api": "sentiment"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": MODELPLANE_LABELS},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true",
                                     "effect": "NoSchedule"}] if gpus else [],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"modelplane.io/api": "sentiment"}}}],
                    "initContainers": [{
                        "name": "proxy", "image": "envoyproxy/envoy:distroless-v1.39.6" + DIGEST,
                        "restartPolicy": "Always",
                        "ports": [{"name": "proxy", "containerPort": 8888}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "metrics"}},
                        "resources": resources("100m", "128Mi")}],
                    "containers": [
                        {"name": "model", "image": "ghcr.io/acme/sentiment:1.4.2" + DIGEST,
                         "ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                         "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                         "env": [{"name": "MODEL_NAME", "value": "distilbert"}],
                         "volumeMounts": [{"name": "secret-0", "mountPath": "/var/run/secrets/hf"}],
                         "resources": resources("2", "8Gi", gpus)},
                        {"name": "ranker", "image": "ghcr.io/acme/ranker:0.1" + DIGEST,
                         "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                         "resources": resources("500m", "1Gi")},
                    ],
                    "volumes": [{"name": "secret-0", "secret": {"secretName": "hf-token"}}],
                },
            },
        },
    }


def hpa_object(min_replicas: int = 2, max_replicas: int = 6) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "sentiment", "namespace": "sentiment", "labels": MODELPLANE_LABELS},
            "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sentiment"}}}


def scaled_object(min_count: int = 2, max_count: int = 6, trigger: str = "prometheus") -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "sentiment", "namespace": "sentiment", "labels": MODELPLANE_LABELS},
            "spec": {"minReplicaCount": min_count, "maxReplicaCount": max_count,
                     "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sentiment"},
                     "triggers": [{"type": trigger, "metadata": {"threshold": "1"}}]}}


def pdb_object() -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "sentiment", "namespace": "sentiment", "labels": MODELPLANE_LABELS},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"modelplane.io/api": "sentiment"}}}}


def network_policy_object() -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "sentiment", "namespace": "sentiment", "labels": MODELPLANE_LABELS},
            "spec": {"podSelector": {"matchLabels": {"modelplane.io/api": "sentiment"}},
                     "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": "proxy"}]}]}}


def namespace_object() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "sentiment", "labels": {**MODELPLANE_LABELS,
                                                        "pod-security.kubernetes.io/enforce": "restricted"}}}


def managed_node_group_object() -> dict[str, Any]:
    """``eks:index:ManagedNodeGroup`` inputs of a modelplane GPU group."""
    return {"amiType": "AL2023_x86_64_NVIDIA", "capacityType": "ON_DEMAND", "instanceTypes": ["g5.2xlarge"],
            "labels": {"modelplane.io/node-group": "gpu", "nvidia.com/gpu.present": "true"},
            "launchTemplate": {"id": "lt-0123456789abcdef0", "version": "1"},
            "scalingConfig": {"minSize": 0, "desiredSize": 0, "maxSize": 4},
            "tags": {"modelplane.io/node-group": "gpu"},
            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]}


def launch_template_object() -> dict[str, Any]:
    return {"metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda",
                                     "ebs": {"encrypted": "true", "volumeSize": 100, "volumeType": "gp3"}}]}


def eks_component_object() -> dict[str, Any]:
    """``eks:index:Cluster`` inputs of a modelplane cluster."""
    return {"name": "ml-prod", "endpointPrivateAccess": True, "endpointPublicAccess": True,
            "publicAccessCidrs": ["198.51.100.0/24"], "enabledClusterLogTypes": ["api", "audit", "authenticator"],
            "encryptionConfigKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d",
            "tags": {"modelplane.io/cluster": "ml-prod"}}


def eks_cluster_object() -> dict[str, Any]:
    """``aws:eks/cluster:Cluster`` inputs, as pulumi-eks registers them."""
    return {"name": "ml-prod", "enabledClusterLogTypes": ["api", "audit", "authenticator", "scheduler"],
            "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False,
                          "subnetIds": ["subnet-1", "subnet-2"]},
            "encryptionConfig": {"provider": {"keyArn": "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d"},
                                 "resources": ["secrets"]}}


ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/3CBA6A290D68013BB1E80FC2E4236250"


def trust_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def irsa_statement(sub: Any = "system:serviceaccount:sentiment:sentiment", operator: str = "StringEquals",
                   aud: Any = "sts.amazonaws.com") -> dict[str, Any]:
    condition: dict[str, Any] = {operator: {f"{ISSUER}:sub": sub}}
    if aud is not None:
        condition.setdefault("StringEquals", {})[f"{ISSUER}:aud"] = aud
    return {"Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}"},
            "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition}
