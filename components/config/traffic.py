"""``apis.<name>.expose``, ``.canary`` and ``.shadow``: reaching an API from outside the cluster, and a second version.

Exposed APIs of one visibility share one Application Load Balancer (an
IngressGroup of the AWS Load Balancer Controller); the ALB targets the pods'
IPs on the proxy port, so the proxy's concurrency limits apply to every
outside request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ._base import Cidr, EnvName, Issue, _Model

if TYPE_CHECKING:
    from .apis import ApiConfig

Visibility = Literal["internal", "public"]

VersionKind = Literal["canary", "shadow"]
"""The two kinds of second version an API can run beside its stable one."""

HOST = r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
"""A DNS host name (a leading ``*.`` for a wildcard), lower case."""

ACM_ARN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}$"
"""An ACM certificate ARN."""

ALB_RULE_VALUES = 5
"""Condition values one ALB listener rule may hold (path, host and each source CIDR count one each)."""

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""The listener's TLS policy: TLS 1.3 and 1.2 with forward-secret ciphers only (AWS's recommended policy)."""


class CertificateConfig(_Model):
    """The HTTPS certificate of an exposed API: an existing ACM certificate, or one modelplane requests for ``host``."""

    arn: str | None = Field(None, pattern=ACM_ARN)
    """ARN of an ACM certificate (in the cluster's region) that covers ``host``."""
    zone: str | None = Field(None, pattern=HOST)
    """A Route 53 public hosted zone (``ml.example.com``) that ``host`` is in: modelplane requests an ACM certificate for the host, validates it by DNS there, and points the host at the load balancer."""


class ExposeConfig(_Model):
    """Reach the API from outside the cluster over HTTPS, through the shared load balancer of its visibility."""

    visibility: Visibility = "internal"
    """``internal``: a load balancer in the private subnets, for callers in the VPC (and networks peered with it); ``public``: internet-facing, in the public subnets."""
    host: str | None = Field(None, pattern=HOST)
    """Host name the API answers on (``sentiment.ml.example.com``). Unset: any host, told apart by ``path``."""
    path: str = Field("/", pattern=r"^/[A-Za-z0-9._~/-]*$")
    """Path prefix the API answers on (``/sentiment``); requests reach the server with the path unchanged."""
    certificate: CertificateConfig | None = None
    """The HTTPS certificate. Unset: plain HTTP only, which a public API must allow explicitly (``allowHttp``)."""
    allow_http: bool = False
    """Serve plain HTTP instead of HTTPS (no certificate). With a certificate HTTP always redirects to HTTPS."""
    allow_from: list[Cidr] | None = Field(None, max_length=60)
    """Source CIDRs allowed to call the API through the load balancer. Unset: anywhere for ``public``, the VPC for ``internal``."""
    idle_timeout_seconds: int = Field(60, ge=1, le=4000)
    """Seconds a connection may sit without data before the load balancer closes it: the longest a response may take to start (the ALB's idle timeout, one per load balancer: APIs of a visibility must agree)."""


class CanaryConfig(_Model):
    """A second version beside the stable one, taking ``weight`` percent of the load balancer's requests; promote it by copying its fields to the API and removing it."""

    image: str = Field(pattern=r"^[^\s]+$")
    """The canary's container image. Required."""
    weight: int = Field(ge=0, le=100)
    """Percent of the API's requests (through its load balancer) that go to the canary. Required."""
    env: dict[EnvName, str] | None = None
    """The canary's environment variables. Unset: the API's."""
    args: list[str] | None = None
    """The canary's container arguments. Unset: the API's."""
    min_replicas: int | None = Field(None, ge=1, le=1000)
    """Fewest canary replicas. Unset: 1."""
    max_replicas: int | None = Field(None, ge=1, le=1000)
    """Most canary replicas (it autoscales on the API's metric). Unset: the API's maxReplicas x weight%, at least 1."""


class ShadowConfig(_Model):
    """A second version that receives a copy of a share of the API's requests; its responses are discarded (a dark launch)."""

    image: str = Field(pattern=r"^[^\s]+$")
    """The shadow's container image. Required."""
    percent: float = Field(gt=0, le=100)
    """Percent of the API's requests whose copy goes to the shadow (the stable replica's proxy mirrors them). Required."""
    env: dict[EnvName, str] | None = None
    """The shadow's environment variables. Unset: the API's."""
    args: list[str] | None = None
    """The shadow's container arguments. Unset: the API's."""
    replicas: int = Field(1, ge=1, le=100)
    """Shadow replicas (fixed: mirrored load is a share of the stable load)."""


def _check_traffic(name: str, api: ApiConfig, path: tuple[str | int, ...]) -> Iterator[Issue]:
    from .apis import PINNED_IMAGE

    expose = api.expose
    if expose is not None:
        at = path + ("expose",)
        certificate = expose.certificate
        if certificate is not None:
            if (certificate.arn is None) == (certificate.zone is None):
                yield Issue(at + ("certificate",), "give exactly one of arn (an existing ACM certificate) or zone (a "
                                                   "Route 53 zone modelplane requests one in)")
            if certificate.zone is not None:
                if expose.host is None:
                    yield Issue(at + ("host",), "is required with certificate.zone: the certificate is requested "
                                                "for this host name")
                elif not _in_zone(expose.host, certificate.zone):
                    yield Issue(at + ("certificate", "zone"), f"{expose.host!r} is not in zone "
                                                              f"{certificate.zone!r}")
            if expose.allow_http:
                yield Issue(at + ("allowHttp",), "with a certificate HTTP redirects to HTTPS; remove allowHttp, or "
                                                 "the certificate to serve plain HTTP")
        elif expose.visibility == "public" and not expose.allow_http:
            yield Issue(at + ("certificate",), "is required for a public API (give arn, or zone with host), unless "
                                               "plain HTTP is allowed explicitly: allowHttp: true")
        rule_values = 1 + (expose.host is not None) + len(expose.allow_from or [])
        if rule_values > ALB_RULE_VALUES:
            yield Issue(at + ("allowFrom",), f"{len(expose.allow_from or [])} CIDRs, with the path"
                                             f"{' and host' if expose.host else ''}, are {rule_values} values in "
                                             f"one listener rule; an ALB rule holds at most {ALB_RULE_VALUES}: merge "
                                             "them into wider blocks")
    for kind in ("canary", "shadow"):
        second = getattr(api, kind)
        if second is None:
            continue
        if not PINNED_IMAGE.fullmatch(second.image):
            yield Issue(path + (kind, "image"), f"{second.image!r} needs an explicit tag or digest other than latest")
        if second.image == api.image and second.env is None and second.args is None:
            yield Issue(path + (kind,), f"runs exactly what the API runs (same image, env and args); give the "
                                        f"{kind} the version to try")
    canary = api.canary
    if canary is not None:
        if expose is None:
            yield Issue(path + ("canary",), "splits the load balancer's traffic by weight and needs expose; "
                                            "expose the API, or try the version as a shadow")
        low, high = canary_replicas(api)
        if low > high:
            given = "" if canary.max_replicas is not None else (
                f" (unset: the API's maxReplicas {api.autoscaling.max_replicas} x weight {canary.weight}%)")
            yield Issue(path + ("canary", "maxReplicas"), f"maxReplicas {high}{given} is less than minReplicas "
                                                          f"{low}; set maxReplicas to {low} or more")
    if api.shadow is not None and not api.proxy.enabled:
        yield Issue(path + ("shadow",), "the proxy mirrors the requests; turn it on (proxy.enabled: true): the "
                                        "load balancer cannot mirror traffic")
    if api.shadow is not None and api.canary is not None:
        yield Issue(path + ("shadow",), "one second version at a time: a canary or a shadow")


def canary_replicas(api: ApiConfig) -> tuple[int, int]:
    """(minReplicas, maxReplicas) of the API's canary, defaults applied: 1, and maxReplicas x weight% (at least 1)."""
    canary = api.canary
    assert canary is not None
    low = 1 if canary.min_replicas is None else canary.min_replicas
    # Integer ceiling: the canary can take its share of the API's peak.
    share = -(-api.autoscaling.max_replicas * canary.weight // 100)
    high = max(1, share) if canary.max_replicas is None else canary.max_replicas
    return low, high


def version_name(api: str, kind: VersionKind) -> str:
    """``<api>-canary`` or ``<api>-shadow``: the name of a second version's objects and its selector label value."""
    return f"{api}-{kind}"


def canary_service_name(api: str) -> str:
    """The canary's Service, in the API's namespace, on the API Service's port (80, same target port): the
    second target of the load balancer's weighted forward."""
    return version_name(api, "canary")


def second_version_replicas(api: ApiConfig) -> int:
    """Most replicas the API's canary (at maxReplicas) or shadow runs; 0 without either."""
    if api.canary is not None:
        return canary_replicas(api)[1]
    if api.shadow is not None:
        return api.shadow.replicas
    return 0


def _in_zone(host: str, zone: str) -> bool:
    return host == zone or host.endswith("." + zone)


def _check_load_balancers(apis: dict[str, ApiConfig], path: tuple[str | int, ...]) -> Iterator[Issue]:
    """Hosts and paths are unique on each shared load balancer, whose one idle timeout its APIs agree on."""
    for visibility in ("internal", "public"):
        exposed = {n: a for n, a in sorted(apis.items()) if a.expose is not None and a.expose.visibility == visibility}
        seen: dict[tuple[str, str], str] = {}
        for name, api in exposed.items():
            assert api.expose is not None
            route = (api.expose.host or "*", api.expose.path.rstrip("/") or "/")
            if route in seen:
                yield Issue(path + (name, "expose"), f"host {route[0]} and path {route[1]} are already taken by "
                                                     f"{seen[route]!r} on the {visibility} load balancer; give each "
                                                     "API its own host or path")
            seen.setdefault(route, name)
        schemes = {a.expose.certificate is not None for a in exposed.values() if a.expose is not None}
        if len(schemes) > 1:
            plain = ", ".join(n for n, a in exposed.items() if a.expose and a.expose.certificate is None)
            yield Issue(path, f"the {visibility} load balancer redirects HTTP to HTTPS for the APIs with a "
                              f"certificate, which would break {plain} (plain HTTP); give every {visibility} API a "
                              "certificate, or none")
        timeouts = {a.expose.idle_timeout_seconds for a in exposed.values() if a.expose is not None}
        if len(timeouts) > 1:
            listed = ", ".join(f"{n} {a.expose.idle_timeout_seconds}s" for n, a in exposed.items() if a.expose)
            yield Issue(path, f"the {visibility} APIs share one load balancer with one idle timeout but ask for "
                              f"different ones ({listed}); give them the same idleTimeoutSeconds")


def api_url(api: ApiConfig) -> str | None:
    """The URL an exposed API answers on (None when it is not exposed or answers on any host)."""
    expose = api.expose
    if expose is None or expose.host is None:
        return None
    scheme = "http" if expose.certificate is None else "https"
    return f"{scheme}://{expose.host}{expose.path if expose.path != '/' else ''}"

