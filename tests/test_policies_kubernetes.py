"""policies/modelplane_policies/kubernetes.py: pod-level rules, autoscaler bounds, namespaces.

Each rule passes on the modelplane-shaped object of :mod:`policy_support` and
fails on one edit of it, through pulumi_policy's own argument objects.
"""

from __future__ import annotations

from policy_support import (
    DELETE,
    DIGEST,
    UNKNOWN_ARRAY,
    UNKNOWN_STRING,
    deployment_object,
    edited,
    hpa_object,
    namespace_object,
    scaled_object,
    violations,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
NAMESPACE = "kubernetes:core/v1:Namespace"
POD = "spec.template.spec"
MODEL = f"{POD}.containers.0"
RANKER = f"{POD}.containers.1"
PROXY = f"{POD}.initContainers.0"


def deployment_violations(rule: str, *edits: tuple[str, object], gpus: int = 0) -> list[str]:
    return violations(rule, DEPLOYMENT, edited(deployment_object(gpus), *edits))


# ----------------------------------------------------------------------------- readiness-probe

def test_readiness_probe_passes_when_every_serving_container_has_one() -> None:
    assert deployment_violations("readiness-probe") == []


def test_readiness_probe_names_the_stack_key_of_the_serving_container() -> None:
    assert deployment_violations("readiness-probe", (f"{MODEL}.readinessProbe", DELETE)) == [
        "Add a readiness probe to container 'model' of Deployment sentiment/sentiment: it serves on a port, and "
        "without a probe its pod gets traffic before it can answer "
        "(stack file: modelplane:apis.sentiment.readinessProbe)."]


def test_readiness_probe_covers_native_sidecars_that_serve() -> None:
    [message] = deployment_violations("readiness-probe", (f"{PROXY}.readinessProbe", DELETE))
    assert message.startswith("Add a readiness probe to sidecar 'proxy' of Deployment sentiment/sentiment")
    assert message.endswith("(stack file: modelplane:apis.sentiment.proxy.readinessProbe).")


def test_readiness_probe_leaves_containers_without_ports_alone() -> None:
    # The ranker sidecar has no probe: it serves no port. Once it does, it needs one.
    assert deployment_violations("readiness-probe") == []
    [message] = deployment_violations("readiness-probe", (f"{RANKER}.ports", [{"containerPort": 9000}]))
    assert message.startswith("Add a readiness probe to container 'ranker' of Deployment sentiment/sentiment")
    assert message.endswith("(stack file: modelplane:apis.sentiment.sidecars.ranker.readinessProbe).")


def test_readiness_probe_is_not_judged_while_the_ports_are_unknown() -> None:
    assert deployment_violations("readiness-probe", (f"{MODEL}.readinessProbe", DELETE),
                                 (f"{MODEL}.ports", UNKNOWN_ARRAY)) == []


def test_readiness_probe_names_the_field_outside_modelplane() -> None:
    [message] = deployment_violations("readiness-probe", ("metadata.labels", {"app": "web"}),
                                      (f"{MODEL}.readinessProbe", DELETE))
    assert message.endswith("(field spec.template.spec.containers[0].readinessProbe).")


# ----------------------------------------------------------------------------- graceful-shutdown

def test_graceful_shutdown_passes_with_a_pre_stop_sleep_shorter_than_the_grace_period() -> None:
    assert deployment_violations("graceful-shutdown") == []


def test_graceful_shutdown_asks_for_a_pre_stop_hook_on_serving_containers() -> None:
    assert deployment_violations("graceful-shutdown", (f"{MODEL}.lifecycle", DELETE)) == [
        "Add a preStop hook to container 'model' of Deployment sentiment/sentiment (a sleep of a few seconds): "
        "endpoint removal and SIGTERM race, and without one it stops while requests still arrive "
        "(field spec.template.spec.containers[0].lifecycle.preStop)."]


def test_graceful_shutdown_asks_for_a_grace_period_longer_than_the_pre_stop_wait() -> None:
    assert deployment_violations("graceful-shutdown", (f"{POD}.terminationGracePeriodSeconds", 5)) == [
        "Set terminationGracePeriodSeconds of Deployment sentiment/sentiment above the 5s preStop wait of "
        "container 'model' (now 5s): the kubelet kills the container before it finishes in-flight requests "
        "(field spec.template.spec.terminationGracePeriodSeconds)."]


def test_graceful_shutdown_reads_an_exec_sleep_and_the_default_grace_period() -> None:
    shell_sleep = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 45"]}}}
    [message] = deployment_violations("graceful-shutdown", (f"{MODEL}.lifecycle", shell_sleep),
                                      (f"{POD}.terminationGracePeriodSeconds", DELETE))
    assert "above the 45s preStop wait of container 'model' (now 30s)" in message


def test_graceful_shutdown_needs_no_pre_stop_on_native_sidecars_or_portless_containers() -> None:
    # The proxy (a native sidecar with ports) has none: it stops after the server has exited.
    assert deployment_violations("graceful-shutdown", (f"{RANKER}.lifecycle", DELETE)) == []
    [message] = deployment_violations("graceful-shutdown", (f"{RANKER}.lifecycle", DELETE),
                                      (f"{RANKER}.ports", [{"containerPort": 9000}]))
    assert message.startswith("Add a preStop hook to container 'ranker' of Deployment sentiment/sentiment")


# ----------------------------------------------------------------------------- resource-requests

def test_resource_requests_pass_when_every_container_requests_cpu_and_memory() -> None:
    assert deployment_violations("resource-requests") == []


def test_resource_requests_name_the_compute_key_of_each_container() -> None:
    assert deployment_violations("resource-requests", (f"{RANKER}.resources.requests.cpu", DELETE),
                                 (f"{PROXY}.resources", DELETE)) == [
        "Set a cpu request on container 'ranker' of Deployment sentiment/sentiment: the scheduler places pods by "
        "their requests, and one without them lands on full nodes and is evicted first "
        "(stack file: modelplane:apis.sentiment.sidecars.ranker.compute.cpu).",
        "Set a cpu request on sidecar 'proxy' of Deployment sentiment/sentiment: the scheduler places pods by "
        "their requests, and one without them lands on full nodes and is evicted first "
        "(stack file: modelplane:apis.sentiment.proxy.cpu).",
        "Set a memory request on sidecar 'proxy' of Deployment sentiment/sentiment: the scheduler places pods by "
        "their requests, and one without them lands on full nodes and is evicted first "
        "(stack file: modelplane:apis.sentiment.proxy.mem)."]


def test_resource_requests_take_a_limit_as_the_request_as_kubernetes_does() -> None:
    assert deployment_violations("resource-requests", (f"{MODEL}.resources.requests.memory", DELETE)) == []


# ----------------------------------------------------------------------------- memory-limit-equals-request

def test_memory_limit_equal_to_the_request_passes_in_any_spelling() -> None:
    assert deployment_violations("memory-limit-equals-request") == []
    assert deployment_violations("memory-limit-equals-request", (f"{MODEL}.resources.limits.memory", "8192Mi")) == []
    # Quantities can arrive as numbers (bytes): 1 GiB as a float.
    assert deployment_violations("memory-limit-equals-request", (f"{RANKER}.resources.limits.memory", 2.0**30)) == []


def test_memory_limit_above_the_request_fails() -> None:
    assert deployment_violations("memory-limit-equals-request", (f"{MODEL}.resources.limits.memory", "16Gi")) == [
        "Set the memory limit of container 'model' of Deployment sentiment/sentiment to its request (8Gi, limit now "
        "16Gi): above the request the node is overcommitted and the container is the first killed under memory "
        "pressure (stack file: modelplane:apis.sentiment.compute.mem)."]


def test_missing_memory_limit_fails() -> None:
    assert deployment_violations("memory-limit-equals-request", (f"{PROXY}.resources.limits", DELETE)) == [
        "Set a memory limit on sidecar 'proxy' of Deployment sentiment/sentiment equal to its request (128Mi): "
        "without one it can take the node's memory and get other pods OOM-killed "
        "(stack file: modelplane:apis.sentiment.proxy.mem)."]


def test_memory_limit_is_not_judged_while_unknown() -> None:
    assert deployment_violations("memory-limit-equals-request",
                                 (f"{MODEL}.resources.limits.memory", UNKNOWN_STRING)) == []


# ----------------------------------------------------------------------------- zone-spread

def test_zone_spread_passes_with_a_zone_constraint_on_the_pods() -> None:
    assert deployment_violations("zone-spread") == []


def test_zone_spread_fails_without_a_zone_constraint() -> None:
    assert deployment_violations("zone-spread", (f"{POD}.topologySpreadConstraints.0.topologyKey",
                                                 "kubernetes.io/hostname")) == [
        "Add a topologySpreadConstraint on topology.kubernetes.io/zone that selects the pods of Deployment "
        "sentiment/sentiment: without one the scheduler may put every replica in one zone, and a zone outage "
        "takes all of them (field spec.template.spec.topologySpreadConstraints)."]


def test_zone_spread_fails_when_the_constraint_selects_other_pods() -> None:
    other = {"matchLabels": {"modelplane.io/api": "another-api"}}
    assert len(deployment_violations("zone-spread",
                                     (f"{POD}.topologySpreadConstraints.0.labelSelector", other))) == 1


def test_zone_spread_accepts_zone_anti_affinity() -> None:
    anti_affinity = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"topologyKey": "topology.kubernetes.io/zone",
                                           "labelSelector": {"matchLabels": {"modelplane.io/api": "sentiment"}}}}]}}
    assert deployment_violations("zone-spread", (f"{POD}.topologySpreadConstraints", DELETE),
                                 (f"{POD}.affinity", anti_affinity)) == []


# ----------------------------------------------------------------------------- images-by-digest

def test_images_by_digest_passes_when_every_image_has_a_digest() -> None:
    assert deployment_violations("images-by-digest") == []


def test_images_by_digest_names_the_image_key_of_each_container() -> None:
    assert deployment_violations("images-by-digest", (f"{MODEL}.image", "ghcr.io/acme/sentiment:1.4.2"),
                                 (f"{PROXY}.image", "envoyproxy/envoy:distroless-v1.39.6")) == [
        "Pin image 'ghcr.io/acme/sentiment:1.4.2' of container 'model' of Deployment sentiment/sentiment by digest "
        "(name:tag@sha256:...): a tag can be moved to other content, so what runs would not be what was reviewed "
        "(stack file: modelplane:apis.sentiment.image).",
        "Pin image 'envoyproxy/envoy:distroless-v1.39.6' of sidecar 'proxy' of Deployment sentiment/sentiment by "
        "digest (name:tag@sha256:...): a tag can be moved to other content, so what runs would not be what was "
        "reviewed (stack file: modelplane:apis.sentiment.proxy.image)."]


def test_images_by_digest_catches_a_digest_of_the_wrong_length() -> None:
    short = "ghcr.io/acme/ranker@sha256:" + "a" * 63
    assert deployment_violations("images-by-digest", (f"{RANKER}.image", short)) == [
        f"Fix the digest of image {short!r} of container 'ranker' of Deployment sentiment/sentiment: a sha256 "
        "digest is 64 lowercase hex characters, this one is 63 long, and the image cannot be pulled "
        "(stack file: modelplane:apis.sentiment.sidecars.ranker.image)."]


def test_images_by_digest_leaves_unknown_images_alone() -> None:
    assert deployment_violations("images-by-digest", (f"{MODEL}.image", UNKNOWN_STRING)) == []
    assert DIGEST.startswith("@sha256:")


# ----------------------------------------------------------------------------- secrets-as-files

def test_secrets_as_files_passes_with_mounted_secrets() -> None:
    assert deployment_violations("secrets-as-files") == []


def test_secrets_as_files_fails_on_secret_env_vars_and_env_from() -> None:
    env = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}]
    assert deployment_violations("secrets-as-files", (f"{MODEL}.env", env),
                                 (f"{RANKER}.envFrom", [{"secretRef": {"name": "db"}}])) == [
        "Mount secret 'hf-token' as a file instead of env var 'HF_TOKEN' of container 'model' of Deployment "
        "sentiment/sentiment: environment variables leak into logs, crash dumps and child processes "
        "(stack file: modelplane:apis.sentiment.secrets).",
        "Mount secret 'db' as files instead of envFrom in container 'ranker' of Deployment sentiment/sentiment: "
        "environment variables leak into logs, crash dumps and child processes "
        "(stack file: modelplane:apis.sentiment.secrets)."]


def test_config_map_env_vars_are_not_secrets() -> None:
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]
    assert deployment_violations("secrets-as-files", (f"{MODEL}.env", env)) == []


# ----------------------------------------------------------------------------- min-le-max-replicas

def test_min_le_max_replicas_passes_within_bounds() -> None:
    assert violations("min-le-max-replicas", HPA, hpa_object(2, 6)) == []
    assert violations("min-le-max-replicas", SCALED_OBJECT, scaled_object(0, 2)) == []


def test_min_above_max_fails_for_an_hpa() -> None:
    assert violations("min-le-max-replicas", HPA, hpa_object(8, 6)) == [
        "Set minReplicas of HorizontalPodAutoscaler sentiment/sentiment (8) at most its maxReplicas (6): the "
        "autoscaler cannot hold both bounds (stack file: modelplane:apis.sentiment.autoscaling.minReplicas)."]


def test_min_above_max_fails_for_a_scaled_object_with_keda_defaults() -> None:
    # KEDA's maxReplicaCount defaults to 100.
    obj = edited(scaled_object(), ("spec.maxReplicaCount", DELETE), ("spec.minReplicaCount", 101))
    [message] = violations("min-le-max-replicas", SCALED_OBJECT, obj)
    assert message.startswith("Set minReplicaCount of ScaledObject sentiment/sentiment (101) at most its "
                              "maxReplicaCount (100)")


# ----------------------------------------------------------------------------- restricted-pod-security

def test_restricted_pod_security_passes_on_a_restricted_api_namespace() -> None:
    assert violations("restricted-pod-security", NAMESPACE, namespace_object()) == []


def test_restricted_pod_security_fails_on_a_baseline_api_namespace() -> None:
    baseline = edited(namespace_object(), (("metadata", "labels", "pod-security.kubernetes.io/enforce"), "baseline"))
    assert violations("restricted-pod-security", NAMESPACE, baseline) == [
        "Label namespace 'sentiment' pod-security.kubernetes.io/enforce=restricted (now baseline): it runs a model "
        "API, and the API server should refuse pods that run as root, escalate privileges or mount host paths "
        "there (field metadata.labels)."]


def test_restricted_pod_security_leaves_other_namespaces_alone() -> None:
    other = {"metadata": {"name": "monitoring", "labels": {"team": "platform"}}}
    assert violations("restricted-pod-security", NAMESPACE, other) == []
