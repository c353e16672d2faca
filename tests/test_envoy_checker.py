"""Guards the guard: the Envoy bootstrap checker (tests/envoy_config) passes a sound bootstrap
and rejects each kind of mistake it is there to catch."""

from __future__ import annotations

import pytest

SAMPLE = """\
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: 9901}
static_resources:
  listeners:
  - name: model_api
    address:
      socket_address: {address: 0.0.0.0, port_value: 8888}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: model_api
          route_config:
            name: local
            virtual_hosts:
            - name: model
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: model, timeout: 0s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: model
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds:
      - max_connections: 4
        max_pending_requests: 100
        max_requests: 4
        max_retries: 0
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http_protocol_options: {}
    load_assignment:
      cluster_name: model
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: 127.0.0.1, port_value: 8080}
"""


def broken(old: str, new: str) -> str:
    assert SAMPLE.count(old) == 1, old
    return SAMPLE.replace(old, new)


def test_the_checker_passes_a_sound_bootstrap(envoy_checker) -> None:
    assert envoy_checker({"sample": SAMPLE}) == {"sample": None}


@pytest.mark.parametrize("config, reason", [
    pytest.param(broken("    connect_timeout: 1s\n", "    connect_timeout: 1s\n    max_connection: 4\n"),
                 'unknown field "max_connection"', id="unknown field"),
    pytest.param(broken("max_connections: 4", "max_connections: four"),
                 'invalid value for uint32 field value: "four"', id="wrong type"),
    pytest.param(broken("  - name: model\n    type: STATIC", '  - name: ""\n    type: STATIC'),
                 "invalid Cluster.Name: value length must be at least 1 runes", id="empty cluster name"),
    pytest.param(broken("connect_timeout: 1s", "connect_timeout: -1s"),
                 "invalid Cluster.ConnectTimeout: value must be greater than 0s", id="negative connect_timeout"),
    pytest.param(broken("stat_prefix: model_api", 'stat_prefix: ""'),
                 "invalid HttpConnectionManager.StatPrefix: value length must be at least 1 runes",
                 id="rule inside a typed_config"),
    pytest.param(broken("http.router.v3.Router", "http.router.v3.Routr"),
                 "envoy.extensions.filters.http.router.v3.Routr", id="unknown typed_config type"),
])
def test_the_checker_rejects_a_broken_bootstrap(envoy_checker, config: str, reason: str) -> None:
    verdicts = envoy_checker({"sample": SAMPLE, "broken": config})

    assert verdicts["sample"] is None
    assert verdicts["broken"] is not None and reason in verdicts["broken"], verdicts["broken"]
