"""deploy/tailscale/: the serve config, the Services definition and the policy snippet.

What is checked here is the files' syntax and what they promise (HTTPS only, every path to
the proxy unix socket, no Funnel, access granted to a group on 443 only). Whether a
tailnet accepts them cannot be tested here: there is no Tailscale control plane or
tailscaled on this machine (docs/operations.md says so).
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.deploy.hujson import loads, standardize
from tests.helpers import REPO_ROOT

TAILSCALE = REPO_ROOT / "deploy" / "tailscale"
SOCKET = "unix:/run/tailops/proxy.sock"


def test_hujson_reader_is_strict() -> None:
    text = '{\n  // comment\n  "a": "x // not a comment", /* block */ "b": [1, 2,],\n}\n'
    assert loads(text) == {"a": "x // not a comment", "b": [1, 2]}
    assert loads('{"s": "quote \\" and /* kept */"}') == {"s": 'quote " and /* kept */'}
    for bad in ('{"a": 1,,}', '{"a": }', '{"a": "open}', "{/* open", "{'a': 1}"):
        with pytest.raises(ValueError):
            loads(bad)
    assert standardize("[1,\n]").replace(" ", "").replace("\n", "") == "[1]"


def test_serve_json_proxies_https_to_the_proxy_socket_only() -> None:
    config = json.loads((TAILSCALE / "serve.json").read_text())  # plain JSON: containerboot reads it as such
    assert config["TCP"] == {"443": {"HTTPS": True}}
    [(host, web)] = config["Web"].items()
    assert host == "${TS_CERT_DOMAIN}:443"  # substituted by the Tailscale container at start
    # One handler at "/": Tailscale strips a non-root mount point from the path, so /mcp,
    # /review and /.well-known/... reach tailops unchanged only when mounted at "/".
    assert web["Handlers"] == {"/": {"Proxy": SOCKET}}
    assert config["AllowFunnel"] == {host: False}


def test_services_definition_targets_the_proxy_socket() -> None:
    service = loads((TAILSCALE / "service.hujson").read_text())
    assert service["version"] == "0.0.1"
    assert service["services"] == {"svc:tailops": {"endpoints": {"tcp:443": SOCKET}}}


def test_policy_snippet_grants_only_https_to_a_group() -> None:
    policy = loads((TAILSCALE / "policy.hujson").read_text())
    assert set(policy) == {"groups", "tagOwners", "grants", "autoApprovers"}
    assert set(policy["tagOwners"]) == {"tag:tailops", "tag:tailops-managed"}
    to_tailops = [g for g in policy["grants"] if set(g["dst"]) & {"tag:tailops", "svc:tailops"}]
    assert len(to_tailops) == 2
    for grant in to_tailops:
        assert grant["src"] == ["group:tailops-users"] and grant["ip"] == ["tcp:443"]
    for grant in policy["grants"]:
        assert "*" not in grant["src"] and "*" not in grant["dst"] and "*" not in grant["ip"]
        assert all(src in policy["groups"] or src in policy["tagOwners"] for src in grant["src"])
    from_tailops = [g for g in policy["grants"] if g["src"] == ["tag:tailops"]]
    assert from_tailops == [{"src": ["tag:tailops"], "dst": ["tag:tailops-managed"], "ip": ["tcp:22"]}]
    assert policy["autoApprovers"] == {"services": {"svc:tailops": ["tag:tailops"]}}


def test_the_compose_sidecar_mounts_this_serve_config() -> None:
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "compose" / "compose.yaml").read_text())
    sidecar = compose["services"]["tailscale"]
    assert "../tailscale/serve.json:/config/serve.json:ro" in sidecar["volumes"]
    assert sidecar["environment"]["TS_SERVE_CONFIG"] == "/config/serve.json"
