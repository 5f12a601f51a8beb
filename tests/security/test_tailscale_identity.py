"""Tailscale identity headers count only when they come from a trusted proxy.

One server trusts ``127.0.0.2`` (standing in for ``tailscale serve``); clients
connect from ``127.0.0.1`` (an ordinary, untrusted peer) or bind ``127.0.0.2``
(the proxy). The audit log must name the human only in the second case, and
nothing a client sends can make it name one in the first.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tailops.auth.tokens import generate_keypair
from tailops.config import load_config
from tests.netfixtures import free_port
from tests.servers import RunningServer, http_server, serve_process

PROXY = "127.0.0.2"
HEADERS = {
    "Tailscale-User-Login": "alice@example.com",
    "Tailscale-User-Name": "Alice Example",
    "X-Forwarded-For": "100.64.0.7",
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("tailscale")
    (tmp / "empty.yaml").write_text("{}\n")
    settings = load_config(
        tmp / "empty.yaml", server={"data_dir": str(tmp / "data")}, auth={"trusted_proxies": [f"{PROXY}/32"]}
    )
    with pytest.MonkeyPatch.context() as mp:
        # uvicorn rewrites the peer address from X-Forwarded-For for loopback peers unless told
        # otherwise; tailops decides that itself (auth.trusted_proxies). See test_served_app_... below.
        mp.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
        with http_server(settings) as running:
            yield running


@contextlib.asynccontextmanager
async def client_from(url: str, token: str, local: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    transport = httpx2.AsyncHTTPTransport(local_address=local)
    all_headers = {"Authorization": f"Bearer {token}", **headers}
    async with (
        httpx2.AsyncClient(headers=all_headers, transport=transport, timeout=httpx2.Timeout(30)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def records(srv: RunningServer, **match: Any) -> list[dict[str, Any]]:
    out = []
    for line in srv.settings.audit_path.read_text().splitlines():
        rec = json.loads(line)
        if all(rec.get(k) == v or rec.get("principal", {}).get(k) == v for k, v in match.items()):
            out.append(rec)
    return out


async def test_headers_from_an_untrusted_peer_are_ignored(srv: RunningServer) -> None:
    token = srv.mint("untrusted-caller", "readonly")
    async with client_from(srv.url, token, "127.0.0.1", HEADERS) as client:
        result = await client.call_tool("health_check", {})
        assert not result.is_error
    (rec,) = records(srv, sub="untrusted-caller", tool="health_check")
    principal = rec["principal"]
    assert principal["human"] is None and principal["human_name"] is None
    assert principal["addr"] == "127.0.0.1"  # X-Forwarded-For ignored too
    assert "via" not in principal
    assert "alice@example.com" not in json.dumps(rec)


async def test_headers_from_the_trusted_proxy_are_recorded(srv: RunningServer) -> None:
    token = srv.mint("service-token", "readonly")
    async with client_from(srv.url, token, PROXY, HEADERS) as client:
        result = await client.call_tool("health_check", {})
        assert not result.is_error
    (rec,) = records(srv, sub="service-token", tool="health_check")
    principal = rec["principal"]
    assert principal["human"] == "alice@example.com"
    assert principal["human_name"] == "Alice Example"
    assert principal["addr"] == "100.64.0.7" and principal["via"] == PROXY
    assert principal["jti"]  # the token is still the credential; the human is context


async def test_trusted_headers_are_cleaned_and_capped(srv: RunningServer) -> None:
    token = srv.mint("messy-headers", "readonly")
    headers = {"Tailscale-User-Login": "bob@example.com\t" + "x" * 1000, "X-Forwarded-For": "not-an-ip"}
    async with client_from(srv.url, token, PROXY, headers) as client:
        await client.call_tool("health_check", {})
    (rec,) = records(srv, sub="messy-headers", tool="health_check")
    login = rec["principal"]["human"]
    assert login.startswith("bob@example.com") and "\t" not in login and len(login) <= 256
    assert rec["principal"]["addr"] == PROXY  # an unparsable forwarded address falls back to the peer


async def test_refused_requests_record_identity_by_the_same_rule(srv: RunningServer) -> None:
    async with httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(local_address="127.0.0.1")) as http:
        r = await http.post(srv.url, json={}, headers={**HEADERS, "Authorization": "Bearer nope"})
    assert r.status_code == 401
    async with httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(local_address=PROXY)) as http:
        r = await http.post(srv.url, json={}, headers={**HEADERS, "Authorization": "Bearer nope2"})
    assert r.status_code == 401
    refused = [r for r in records(srv, event="authentication")][-2:]
    assert refused[0]["principal"]["human"] is None and refused[0]["principal"]["addr"] == "127.0.0.1"
    assert refused[1]["principal"]["human"] == "alice@example.com"
    assert refused[1]["principal"]["addr"] == "100.64.0.7" and refused[1]["via"] == PROXY


def test_served_app_does_not_let_uvicorn_trust_forwarded_for(tmp_path: Path) -> None:
    """The real `tailops serve`: a loopback client must not become the trusted proxy by a header.

    uvicorn's default ``proxy_headers=True`` rewrites the peer of loopback clients from
    X-Forwarded-For before tailops sees it, so ``X-Forwarded-For: 127.0.0.2`` would make an
    ordinary local client look like the trusted proxy (and lets any local client pick its
    failed-authentication bucket). tailops must serve with ``proxy_headers=False``.
    """
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "server": {"data_dir": str(tmp_path / "data"), "port": port, "log_level": "WARNING"},
                "auth": {"trusted_proxies": [PROXY]},
            }
        )
    )
    settings = load_config(cfg)
    generate_keypair(settings.private_key_path, settings.public_key_path)
    with serve_process(cfg, port, tmp_path / "serve.log"):
        spoof = {**HEADERS, "X-Forwarded-For": PROXY, "Authorization": "Bearer not-a-token"}
        r = httpx2.post(f"http://127.0.0.1:{port}/mcp", json={}, headers=spoof)
        assert r.status_code == 401
    refused = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    (rec,) = [x for x in refused if x.get("event") == "authentication"]
    assert rec["principal"]["addr"] == "127.0.0.1", "uvicorn let a client choose its address (proxy_headers)"
    assert rec["principal"]["human"] is None, "a loopback client posed as the trusted proxy"
