"""Network probes against real local targets, through a real server and the real MCP client.

Targets: loopback, a container of our own on the Docker bridge (ICMP, TCP and
HTTP to a non-loopback address), a local DNS server (dnspython), local HTTP and
TLS servers (self-signed certificate generated here). No other address is
ever contacted: names resolve through the local DNS server only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import TextContent

from tailops.config import Settings
from tests.helpers import unique_name
from tests.netfixtures import DnsServer, Route, dns_server, http_server, tls_server
from tests.servers import RunningServer, mcp_http_client
from tests.servers import http_server as tailops_server

ZONE: dict[str, Any] = {
    "tls.test": {"A": ["127.0.0.1"]},
    "web.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
    "mail.test": {
        "MX": ["10 mx1.mail.test.", "20 mx2.mail.test."],
        "TXT": ['"v=spf1 -all"', '"hello world"'],
        "NS": ["ns1.mail.test."],
        "A": ["127.0.0.5"],
    },
    "www.mail.test": {"CNAME": ["mail.test."]},
    "_sip._tcp.mail.test": {"SRV": ["10 60 5060 sip.mail.test."]},
    "1.0.0.127.in-addr.arpa": {"PTR": ["loopback.test."]},
}


async def call(client: Client, tool: str, args: dict[str, Any], limit: float = 30) -> tuple[bool, str, Any]:
    with anyio.fail_after(limit):
        result = await client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return bool(result.is_error), block.text, result.structured_content


@contextlib.asynccontextmanager
async def probe_env(
    make_settings: Callable[..., Settings], dns: DnsServer | None = None, **network: Any
) -> AsyncIterator[tuple[Client, RunningServer]]:
    if dns is not None:
        network = {"resolver": [dns.address], **network}
    settings = make_settings(network={"timeout": "3s", **network})
    with tailops_server(settings) as srv:
        async with mcp_http_client(srv.url, srv.mint("netops", "network:diag readonly")) as client:
            yield client, srv


@contextlib.contextmanager
def listening_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


# -- ping / traceroute -------------------------------------------------------------------------------


async def test_ping_and_traceroute_loopback(make_settings: Callable[..., Settings]) -> None:
    async with probe_env(make_settings) as (client, _):
        is_error, text, ping = await call(client, "ping_host", {"host": "127.0.0.1", "count": 3, "interval": 0.2})
        assert not is_error, text
        assert ping["is_alive"] and ping["packets_sent"] == 3 and ping["packets_received"] == 3
        assert ping["packet_loss"] == 0.0 and ping["privileged"] is (os.geteuid() == 0)
        assert 0 <= ping["min_rtt_ms"] <= ping["avg_rtt_ms"] <= ping["max_rtt_ms"] < 1000
        is_error, text, ping = await call(client, "ping_host", {"host": "localhost", "count": 1})
        assert not is_error and ping["address"] in ("127.0.0.1", "::1"), text
        is_error, text, trace = await call(client, "traceroute", {"host": "127.0.0.1", "max_hops": 5})
        assert not is_error, text
        assert trace["reached"] and trace["completed"]
        assert [h["address"] for h in trace["hops"]] == ["127.0.0.1"]


async def test_unprivileged_icmp_mode(make_settings: Callable[..., Settings]) -> None:
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    allowed = low <= os.getgid() <= high
    async with probe_env(make_settings, icmp_mode="unprivileged") as (client, _):
        is_error, text, ping = await call(client, "ping_host", {"host": "127.0.0.1", "count": 1})
        if allowed:
            assert not is_error and ping["privileged"] is False and ping["is_alive"], text
        else:
            assert is_error and text.startswith("unavailable: unprivileged ICMP sockets are not permitted"), text
            assert "ping_group_range" in text
        is_error, text, _ = await call(client, "traceroute", {"host": "127.0.0.1"})
        assert is_error and "traceroute needs raw ICMP sockets" in text


@pytest.fixture
def bridge_container(docker_client: Any, base_image: str, test_labels: dict[str, str]) -> Iterator[str]:
    """A container of ours on the default bridge serving HTTP on 8080; yields its IP."""
    container = docker_client.containers.run(
        base_image,
        ["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0", "--directory", "/etc/apt"],
        name=unique_name("netdiag"),
        labels=test_labels,
        detach=True,
    )
    try:
        deadline = time.monotonic() + 30
        ip = ""
        while time.monotonic() < deadline:
            container.reload()
            ip = container.attrs["NetworkSettings"]["IPAddress"]
            if ip:
                with contextlib.suppress(OSError), socket.create_connection((ip, 8080), timeout=0.5):
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"container HTTP server did not come up (ip {ip!r})")
        yield ip
    finally:
        container.remove(force=True, v=True)


async def test_probes_reach_a_container_on_the_docker_bridge(
    make_settings: Callable[..., Settings], bridge_container: str
) -> None:
    ip = bridge_container
    async with probe_env(make_settings) as (client, _):
        is_error, text, ping = await call(client, "ping_host", {"host": ip, "count": 2, "interval": 0.2})
        assert not is_error and ping["is_alive"] and ping["address"] == ip, text
        is_error, text, trace = await call(client, "traceroute", {"host": ip, "max_hops": 4})
        assert not is_error and trace["reached"] and trace["hops"][-1]["address"] == ip, text
        is_error, text, scan = await call(client, "test_port_connectivity", {"host": ip, "ports": [8080, 8081]})
        assert not is_error, text
        assert [(p["port"], p["state"]) for p in scan["ports"]] == [(8080, "open"), (8081, "closed")]
        # Default policy: a private bridge address is a fine HTTP target.
        is_error, text, http = await call(client, "http_request_test", {"url": f"http://{ip}:8080/"})
        assert not is_error, text
        assert http["status_code"] == 200 and http["address"] == ip
        assert "sources.list" in http["body_preview"]


# -- TCP ports -------------------------------------------------------------------------------------------------


async def test_port_connectivity_open_closed_and_many(make_settings: Callable[..., Settings]) -> None:
    with listening_port() as open_port:
        async with probe_env(make_settings) as (client, _):
            is_error, text, scan = await call(
                client, "test_port_connectivity", {"host": "127.0.0.1", "port": open_port}
            )
            assert not is_error, text
            assert scan["ports"][0]["state"] == "open" and scan["open_count"] == 1
            with listening_port() as closed_port:
                pass  # now closed
            started = time.perf_counter()
            wanted = [open_port, closed_port, *range(40000, 40060)]
            is_error, text, scan = await call(
                client, "test_port_connectivity", {"host": "127.0.0.1", "ports": wanted, "timeout": 2}
            )
            assert not is_error, text
            states = {p["port"]: p["state"] for p in scan["ports"]}
            assert states[open_port] == "open" and states[closed_port] == "closed"
            assert [p["port"] for p in scan["ports"]] == list(dict.fromkeys(wanted))
            assert time.perf_counter() - started < 10


# -- DNS ------------------------------------------------------------------------------------------------------


async def test_dns_lookup_record_types_against_a_local_server(make_settings: Callable[..., Settings]) -> None:
    with dns_server(ZONE) as dns:
        async with probe_env(make_settings) as (client, _):
            base = {"resolver": "127.0.0.1", "resolver_port": dns.port, "timeout": 2}

            async def lookup(name: str, types: list[str], **extra: Any) -> dict[str, Any]:
                is_error, text, data = await call(
                    client, "dns_lookup", {**base, "name": name, "record_types": types, **extra}
                )
                assert not is_error, text
                assert data["resolver"] == dns.address
                return {a["type"]: a for a in data["answers"]}

            a = await lookup("web.test", ["A", "AAAA"])
            assert [r["value"] for r in a["A"]["records"]] == ["127.0.0.1"]
            assert [r["value"] for r in a["AAAA"]["records"]] == ["::1"]
            m = await lookup("mail.test", ["MX", "TXT", "NS", "SRV", "cname"])
            assert sorted(r["value"] for r in m["MX"]["records"]) == ["10 mx1.mail.test.", "20 mx2.mail.test."]
            assert sorted(r["value"] for r in m["TXT"]["records"]) == ['"hello world"', '"v=spf1 -all"']
            assert [r["value"] for r in m["NS"]["records"]] == ["ns1.mail.test."]
            assert m["SRV"]["status"] == "no_answer" and m["CNAME"]["status"] == "no_answer"
            c = await lookup("www.mail.test", ["CNAME", "A"])
            assert [r["value"] for r in c["CNAME"]["records"]] == ["mail.test."]
            assert [r["type"] for r in c["A"]["records"]] == ["CNAME", "A"]
            s = await lookup("_sip._tcp.mail.test", ["SRV"], tcp=True)
            assert [r["value"] for r in s["SRV"]["records"]] == ["10 60 5060 sip.mail.test."]
            p = await lookup("127.0.0.1", ["PTR"])
            assert [r["value"] for r in p["PTR"]["records"]] == ["loopback.test."]
            n = await lookup("missing.test", ["A"])
            assert n["A"]["status"] == "nxdomain"
            assert dns.count("_sip._tcp.mail.test", "SRV") == 1
        # The configured resolver (network.resolver) is used when none is given.
        async with probe_env(make_settings, dns) as (client, _):
            is_error, text, data = await call(client, "dns_lookup", {"name": "web.test", "record_types": ["A"]})
            assert not is_error and data["resolver"] == dns.address, text
            assert data["answers"][0]["records"][0]["value"] == "127.0.0.1"


async def test_dns_lookup_dead_resolver_is_reported_per_type(make_settings: Callable[..., Settings]) -> None:
    with listening_port() as port:
        pass  # nothing listens on this UDP port now
    async with probe_env(make_settings) as (client, _):
        is_error, text, data = await call(
            client,
            "dns_lookup",
            {"name": "web.test", "record_types": ["A"], "resolver": "127.0.0.1", "resolver_port": port, "timeout": 1},
        )
        assert not is_error, text
        assert data["answers"][0]["status"] in ("servfail", "timeout")


# -- TLS ----------------------------------------------------------------------------------------------------------


async def test_check_ssl_certificate_of_a_self_signed_local_server(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with dns_server(ZONE) as dns, tls_server(tmp_path) as tls:
        async with probe_env(make_settings, dns) as (client, _):
            is_error, text, rep = await call(client, "check_ssl_certificate", {"host": "tls.test", "port": tls.port})
            assert not is_error, text
            assert rep["address"] == "127.0.0.1" and rep["server_name"] == "tls.test"
            assert rep["trusted"] is False and "self" in rep["verify_error"] and "signed" in rep["verify_error"]
            assert rep["hostname_matches"] is True
            assert rep["days_to_expiry"] in (29, 30)
            assert rep["protocol"] in ("TLSv1.3", "TLSv1.2") and rep["cipher"] and rep["cipher_bits"] >= 128
            (leaf,) = rep["chain"]
            assert leaf["self_signed"] and leaf["subject"] == "CN=tls.test" and leaf["issuer"] == "CN=tls.test"
            assert leaf["san_dns"] == ["tls.test", "localhost"] and leaf["san_ip"] == ["127.0.0.1"]
            assert leaf["public_key"] == "EC secp256r1" and len(leaf["sha256"]) == 64
            is_error, text, other = await call(
                client, "check_ssl_certificate", {"host": "tls.test", "port": tls.port, "server_name": "other.test"}
            )
            assert not is_error and other["hostname_matches"] is False and other["server_name"] == "other.test"
            is_error, text, by_ip = await call(client, "check_ssl_certificate", {"host": "127.0.0.1", "port": tls.port})
            assert not is_error and by_ip["server_name"] is None and by_ip["hostname_matches"] is True
            with http_server({"/": Route(200, b"plain")}) as plain:
                is_error, text, _ = await call(
                    client, "check_ssl_certificate", {"host": "127.0.0.1", "port": plain.port}
                )
                assert is_error and text.startswith("unavailable: TLS handshake") and "failed" in text


# -- HTTP --------------------------------------------------------------------------------------------------------


async def test_http_request_test_against_local_servers(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    big = b"x" * 100_000
    routes = {
        "/": Route(200, b"hello", (("Set-Cookie", "session=abc"), ("X-Test", "yes"))),
        "/a": Route(302, b"", (("Location", "/b"),)),
        "/b": Route(301, b"", (("Location", "http://web.test:{port}/"),)),
        "/big": Route(200, big),
        "/slow": Route(200, b"late", delay=5),
    }
    with dns_server(ZONE) as dns, http_server(routes) as web, tls_server(tmp_path) as tls:
        port = web.port
        async with probe_env(make_settings, dns, http_allow_loopback=True) as (client, _):
            is_error, text, r = await call(client, "http_request_test", {"url": web.url("/")})
            assert not is_error, text
            assert r["status_code"] == 200 and r["body_preview"] == "hello" and r["body_truncated"] is False
            assert r["headers"]["set-cookie"] == "<redacted>" and r["headers"]["x-test"] == "yes"
            t = r["timing"]
            assert t["connect_ms"] is not None and t["ttfb_ms"] is not None and t["tls_ms"] is None
            assert t["total_ms"] >= t["ttfb_ms"]

            is_error, text, r = await call(client, "http_request_test", {"url": web.url("/"), "method": "HEAD"})
            assert not is_error and r["method"] == "HEAD" and r["body_preview"] is None, text

            is_error, text, r = await call(client, "http_request_test", {"url": web.url("/a")})
            assert not is_error, text
            assert [h["status"] for h in r["redirects"]] == [302, 301]
            assert r["final_url"] == f"http://web.test:{port}/" and r["body_preview"] == "hello"
            assert r["timing"]["dns_ms"] > 0
            assert web.seen[-1] == ("GET", "/", f"web.test:{port}")

            is_error, text, r = await call(client, "http_request_test", {"url": web.url("/a"), "max_redirects": 1})
            assert not is_error and r["redirect_limit_reached"] and r["status_code"] == 301, text

            is_error, text, r = await call(client, "http_request_test", {"url": web.url("/big"), "body_bytes": 100})
            assert not is_error and r["body_truncated"] and r["body_preview"] == "x" * 100
            assert r["body_bytes_read"] == 100 and r["content_length"] == len(big)

            started = time.perf_counter()
            is_error, text, _ = await call(client, "http_request_test", {"url": web.url("/slow"), "timeout": 1})
            assert is_error and text.startswith("timeout:"), text
            assert time.perf_counter() - started < 4

            tls_url = f"https://tls.test:{tls.port}/"
            is_error, text, _ = await call(client, "http_request_test", {"url": tls_url})
            assert is_error and "TLS verification of tls.test" in text, text
            is_error, text, r = await call(client, "http_request_test", {"url": tls_url, "verify_tls": False})
            assert not is_error and r["status_code"] == 200 and r["body_preview"] == "tls ok", text
            assert r["tls_version"] in ("TLSv1.3", "TLSv1.2") and r["timing"]["tls_ms"] is not None
            assert tls.seen[-1] == ("GET", "/", f"tls.test:{tls.port}")

            with listening_port() as closed:
                pass
            is_error, text, _ = await call(client, "http_request_test", {"url": f"http://127.0.0.1:{closed}/"})
            assert is_error and text.startswith("unavailable: could not connect"), text


# -- concurrency ------------------------------------------------------------------------------------------------


async def _health_latencies(client: Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        is_error, text, _ = await call(client, "health_check", {})
        assert not is_error, text
        out.append(time.perf_counter() - t)
    return out


async def test_slow_probes_do_not_delay_other_requests(make_settings: Callable[..., Settings]) -> None:
    async with probe_env(make_settings) as (client, srv):
        await _health_latencies(client, 10)
        idle = statistics.median(await _health_latencies(client, 40))
        token = srv.mint("pinger", "network:diag")
        done: list[float] = []

        async def pinger() -> None:
            async with mcp_http_client(srv.url, token) as c:
                is_error, text, ping = await call(c, "ping_host", {"host": "127.0.0.1", "count": 5, "interval": 0.5})
                assert not is_error and ping["packets_received"] == 5, text
                done.append(time.perf_counter())

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(pinger)
            await anyio.sleep(0.5)  # let all 20 pings get under way (they take >= 2 s each)
            busy_samples = await _health_latencies(client, 30)
            assert not done, "pings finished before the busy sample: the test measured nothing"
        busy = statistics.median(busy_samples)
        assert len(done) == 20
        # A probe that held the event loop would cost each /health call at least one ping
        # interval (0.5 s); the slack is for a machine whose load shifts between the samples.
        assert busy <= idle * 2 + 0.05, (idle, busy)


async def test_probe_slots_bound_concurrency_and_waits(make_settings: Callable[..., Settings]) -> None:
    async with probe_env(make_settings, max_concurrent_probes=1, timeout="1s") as (client, srv):
        token = srv.mint("pinger", "network:diag")
        results: list[tuple[bool, str]] = []

        async def long_ping() -> None:
            async with mcp_http_client(srv.url, token) as c:
                is_error, text, _ = await call(c, "ping_host", {"host": "127.0.0.1", "count": 4, "interval": 1})
                results.append((is_error, text))

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_ping)
            await anyio.sleep(0.5)  # the long ping holds the only slot for ~3 s
            started = time.perf_counter()
            is_error, text, _ = await call(client, "ping_host", {"host": "127.0.0.1", "count": 1})
            waited = time.perf_counter() - started
        assert is_error and text.startswith("unavailable: all 1 probe slots stayed busy"), text
        assert 0.9 <= waited < 3
        assert results == [(False, results[0][1])]
