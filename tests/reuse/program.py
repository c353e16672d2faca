"""A program of one's own built from the four public components, run offline with ``run_program``.

``tests/test_wheel.py`` runs this file in a fresh virtualenv that has only the built wheel installed.
It prints the registered resources as JSON lines: type, name and parent type.
"""

from __future__ import annotations

import json

import pulumi

from modelplane import (
    ApiConfig,
    AutoscalingConfig,
    AutoscalingPolicy,
    AutoscalingPolicyArgs,
    ClusterConfig,
    GpuNodeGroup,
    ModelApi,
    ModelApiArgs,
    NodeGroupArgs,
    NodeGroupConfig,
    ServingCluster,
    ServingClusterArgs,
    run_program,
)


def program() -> None:
    cluster = ServingCluster("shared", ServingClusterArgs(
        spec=ClusterConfig.model_validate({"name": "shared"}), region="us-east-1", nvidia_device_plugin=True))
    gpu = GpuNodeGroup("gpu", NodeGroupArgs(
        cluster=cluster.cluster, node_role=cluster.node_role, subnet_ids=cluster.private_subnet_ids,
        spec=NodeGroupConfig.model_validate({"instanceTypes": ["g5.xlarge"], "gpu": True, "maxSize": 2})))
    api = ModelApi("reranker", ModelApiArgs(
        spec=ApiConfig.model_validate({"image": "ghcr.io/acme/reranker:2.0.1", "nodeGroup": "gpu",
                                       "readinessProbe": {"path": "/healthz"},
                                       "compute": {"cpu": "2", "gpu": 1, "mem": "8Gi"},
                                       "autoscaling": {"metric": "cpu", "maxReplicas": 2}}),
        placement=gpu.placement, cluster=cluster.context))
    AutoscalingPolicy("batch", AutoscalingPolicyArgs(
        target="batch-worker", namespace=api.namespace,
        spec=AutoscalingConfig.model_validate({"metric": "cpu", "minReplicas": 1, "maxReplicas": 4})))
    pulumi.export("rerankerUrl", api.url)


if __name__ == "__main__":
    run = run_program(program, stack="reuse")
    types = {r.urn: r.type for r in run.resources}
    for resource in run.resources:
        print(json.dumps({"type": resource.type, "name": resource.name, "parent": types.get(resource.parent, "")}))
    print(json.dumps({"output": run.outputs["rerankerUrl"]}))
