"""Tailscale identity headers count only on the proxy socket, never on the TCP listener.

``tailscale serve`` is pointed at ``server.proxy_socket`` (a 0600 unix socket). Any local
process can reach the TCP listener from loopback — an agent on the same machine included —
so headers sent there must never name a human, pick a client address, move a failed-login
budget, or make a real approver look like the requester. Each attack below was possible
with the old "trust loopback peers" rule (``auth.trusted_proxies: [127.0.0.1]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tailops.auth.principals import PROXY_PEER
from tailops.auth.tokens import generate_keypair
from tailops.config import load_config
from tailops.errors import ConfigError
from tailops.principal import Principal
from tailops.server.run import bind_proxy_socket
from tests.netfixtures import free_port
from tests.servers import RunningServer, http_server, serve_process
from tests.testbed.seed import seed_plan

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
        tmp / "empty.yaml",
        server={"data_dir": str(tmp / "data"), "proxy_socket": str(tmp / "run" / "proxy.sock")},
    )
    with pytest.MonkeyPatch.context() as mp:
        # uvicorn would rewrite a loopback peer from X-Forwarded-For unless told otherwise.
        mp.setenv("FORWARDED_ALLOW_IPS", "*")
        with http_server(settings) as running:
            yield running


def transport(srv: RunningServer, via: str) -> httpx2.AsyncHTTPTransport:
    """TCP from a local address (any local process), or the proxy socket (tailscale serve)."""
    if via == "socket":
        assert srv.settings.server.proxy_socket is not None
        return httpx2.AsyncHTTPTransport(uds=str(srv.settings.server.proxy_socket))
    return httpx2.AsyncHTTPTransport(local_address=via)


@contextlib.asynccontextmanager
async def client_via(srv: RunningServer, token: str, via: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    all_headers = {"Authorization": f"Bearer {token}", **headers}
    async with (
        httpx2.AsyncClient(headers=all_headers, transport=transport(srv, via), timeout=httpx2.Timeout(30)) as http,
        Client(streamable_http_client(srv.url, http_client=http)) as client,
    ):
        yield client


def records(srv: RunningServer, **match: Any) -> list[dict[str, Any]]:
    out = []
    for line in srv.settings.audit_path.read_text().splitlines():
        rec = json.loads(line)
        if all(rec.get(k) == v or rec.get("principal", {}).get(k) == v for k, v in match.items()):
            out.append(rec)
    return out


@pytest.mark.parametrize("local", ["127.0.0.1", "127.0.0.2"])
async def test_headers_on_the_tcp_listener_are_ignored_from_any_local_address(srv: RunningServer, local: str) -> None:
    subject = f"local-agent-{local.rsplit('.', 1)[1]}"
    token = srv.mint(subject, "readonly")
    async with client_via(srv, token, local, HEADERS) as client:
        result = await client.call_tool("health_check", {})
        assert not result.is_error
    (rec,) = records(srv, sub=subject, tool="health_check")
    principal = rec["principal"]
    assert principal["human"] is None and principal["human_name"] is None
    assert principal["addr"] == local  # X-Forwarded-For ignored too
    assert "via" not in principal
    assert "alice@example.com" not in json.dumps(rec)


async def test_headers_on_the_proxy_socket_are_recorded(srv: RunningServer) -> None:
    token = srv.mint("service-token", "readonly")
    async with client_via(srv, token, "socket", HEADERS) as client:
        result = await client.call_tool("health_check", {})
        assert not result.is_error
    (rec,) = records(srv, sub="service-token", tool="health_check")
    principal = rec["principal"]
    assert principal["human"] == "alice@example.com"
    assert principal["human_name"] == "Alice Example"
    assert principal["addr"] == "100.64.0.7" and principal["via"] == PROXY_PEER
    assert principal["jti"]  # the token is still the credential; the human is context


async def test_proxy_headers_are_cleaned_and_capped(srv: RunningServer) -> None:
    token = srv.mint("messy-headers", "readonly")
    headers = {"Tailscale-User-Login": "bob@example.com\t" + "x" * 1000, "X-Forwarded-For": "not-an-ip"}
    async with client_via(srv, token, "socket", headers) as client:
        await client.call_tool("health_check", {})
    (rec,) = records(srv, sub="messy-headers", tool="health_check")
    login = rec["principal"]["human"]
    assert login.startswith("bob@example.com") and "\t" not in login and len(login) <= 256
    assert rec["principal"]["addr"] == PROXY_PEER  # an unparsable forwarded address names the socket


async def test_refused_requests_record_identity_by_the_same_rule(srv: RunningServer) -> None:
    async with httpx2.AsyncClient(transport=transport(srv, "127.0.0.1")) as http:
        r = await http.post(srv.url, json={}, headers={**HEADERS, "Authorization": "Bearer nope"})
    assert r.status_code == 401
    async with httpx2.AsyncClient(transport=transport(srv, "socket")) as http:
        r = await http.post(srv.url, json={}, headers={**HEADERS, "Authorization": "Bearer nope2"})
    assert r.status_code == 401
    refused = [r for r in records(srv, event="authentication")][-2:]
    assert refused[0]["principal"]["human"] is None and refused[0]["principal"]["addr"] == "127.0.0.1"
    assert refused[1]["principal"]["human"] == "alice@example.com"
    assert refused[1]["principal"]["addr"] == "100.64.0.7" and refused[1]["via"] == PROXY_PEER


async def test_a_forged_login_cannot_make_a_real_approver_look_like_the_requester(srv: RunningServer) -> None:
    """An agent on the same machine requested a plan while sending Alice's login over TCP (to get
    her refused as "the same person"); Alice, reaching tailops through tailscale serve, approves."""
    agent = Principal(subject="local-agent", scopes=frozenset({"system:admin"}), transport="http")
    # What the server resolved for the agent's request: the forged headers were ignored.
    peer = srv.runtime.principals.peer({"type": "http", "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 1)})
    resolved = srv.runtime.principals.for_http(peer, {k.lower(): v for k, v in HEADERS.items()}, None)
    assert resolved.human_login is None and not any(i.startswith("tailscale:") for i in resolved.identities())
    plan = seed_plan(srv.settings.db_path, agent, message="forged-login")
    token = srv.mint("alice-approver", "changes:approve")
    async with client_via(srv, token, "socket", HEADERS) as client:
        result = await client.call_tool("approve_plan", {"plan_id": plan.id, "comment": "fine"})
    assert not result.is_error, result.content
    assert result.structured_content is not None and result.structured_content["status"] == "approved"


async def test_a_local_process_cannot_spend_another_address_s_failure_budget(srv: RunningServer) -> None:
    """X-Forwarded-For on TCP does not move the failed-login charge onto another address."""
    victim = "100.64.9.9"
    async with httpx2.AsyncClient(transport=transport(srv, "127.0.0.1")) as http:
        for _ in range(3):
            await http.post(srv.url, json={}, headers={"X-Forwarded-For": victim, "Authorization": "Bearer bad"})
    assert srv.runtime.auth_failures.retry_after(victim) == 0.0
    assert all(r["principal"]["addr"] != victim for r in records(srv, event="authentication"))


def test_the_proxy_socket_is_private_and_a_stale_one_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "run" / "proxy.sock"
    first = bind_proxy_socket(path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(ConfigError, match="another server already listens"):
            bind_proxy_socket(path)
    finally:
        first.close()
    # The listener is gone but its file is left (a crash): the next server takes the path.
    assert path.is_socket()
    again = bind_proxy_socket(path)
    again.close()
    regular = tmp_path / "not-a-socket"
    regular.write_text("x")
    with pytest.raises(ConfigError, match="not a socket"):
        bind_proxy_socket(regular)
    assert regular.read_text() == "x"


def test_the_removed_trusted_proxies_key_is_refused_with_a_way_forward(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"auth": {"trusted_proxies": ["127.0.0.1"]}}))
    with pytest.raises(ConfigError, match=r"trusted_proxies was removed.*server\.proxy_socket"):
        load_config(cfg)


def test_served_app_trusts_headers_only_on_its_socket(tmp_path: Path) -> None:
    """The real `tailops serve`: a loopback client's headers are ignored (uvicorn must not let
    X-Forwarded-For pick the peer either: proxy_headers=False); the socket's are recorded."""
    port = free_port()
    sock_path = tmp_path / "run" / "proxy.sock"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "server": {
                    "data_dir": str(tmp_path / "data"),
                    "port": port,
                    "log_level": "WARNING",
                    "proxy_socket": str(sock_path),
                },
            }
        )
    )
    settings = load_config(cfg)
    generate_keypair(settings.private_key_path, settings.public_key_path)
    with serve_process(cfg, port, tmp_path / "serve.log"):
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        spoof = {**HEADERS, "X-Forwarded-For": "127.0.0.9", "Authorization": "Bearer not-a-token"}
        assert httpx2.post(f"http://127.0.0.1:{port}/mcp", json={}, headers=spoof).status_code == 401
        with httpx2.Client(transport=httpx2.HTTPTransport(uds=str(sock_path))) as via_socket:
            r = via_socket.post(f"http://127.0.0.1:{port}/mcp", json={}, headers=spoof)
            assert r.status_code == 401
            assert via_socket.get(f"http://127.0.0.1:{port}/health").status_code == 200
    refused = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    tcp, sock = [x for x in refused if x.get("event") == "authentication"]
    assert tcp["principal"]["addr"] == "127.0.0.1", "uvicorn let a client choose its address (proxy_headers)"
    assert tcp["principal"]["human"] is None, "a loopback client posed as the proxy"
    assert sock["principal"]["human"] == "alice@example.com" and sock["principal"]["addr"] == "127.0.0.9"
    # The server removed nothing it did not own; a new start finds the stale socket and takes it.
    assert not _listening(sock_path)


def _listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True
