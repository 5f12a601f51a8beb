"""http_request_test cannot reach loopback, metadata or the server itself, in any spelling.

Everything runs against a real tailops HTTP server through the real MCP client.
A canary HTTP server on loopback answers "SECRET"; every test asserts that it
was never contacted and that no answer carries the canary. DNS names are
resolved by a local test DNS server (``network.resolver``), so names that
resolve to loopback, mapped IPv6 or metadata addresses are covered, and the
rebinding test proves that a probe connects to the address that was checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import TextContent

from tailops.config import Settings
from tests.netfixtures import DnsServer, Route, RunningHttp, dns_server, http_server
from tests.servers import RunningServer, mcp_http_client
from tests.servers import http_server as tailops_server

CANARY = b"SECRET-CANARY"

ZONE: dict[str, Any] = {
    "loop.test": {"A": ["127.0.0.1"]},
    "loop6.test": {"AAAA": ["::1"]},
    "mapped.test": {"AAAA": ["::ffff:127.0.0.1"]},
    "nat64.test": {"AAAA": ["64:ff9b::7f00:1"]},
    "meta.test": {"A": ["169.254.169.254"]},
    "zero.test": {"A": ["0.0.0.0"]},
    "mixed.test": {"A": ["192.0.2.10", "127.0.0.1"]},
    "alias.test": {"CNAME": ["loop.test."]},
    "good.test": {"A": ["127.0.0.2"]},
    # First answer allowed (127.0.0.2 via allow_cidrs), then loopback: DNS rebinding.
    "rebind.test": {"A": [["127.0.0.2"], ["127.0.0.1"]]},
}


@dataclass
class Env:
    client: Client
    server: RunningServer
    dns: DnsServer
    canary: RunningHttp
    good: RunningHttp


@contextlib.contextmanager
def _pair_on_one_port() -> Iterator[tuple[RunningHttp, RunningHttp]]:
    """An allowed server on 127.0.0.2:P and the canary on 127.0.0.1:P (same port)."""
    for _ in range(20):
        with http_server(
            {"/": Route(200, b"GOOD"), "/go": Route(302, b"", (("Location", "/"),))}, host="127.0.0.2"
        ) as good:
            try:
                with http_server(
                    {"/": Route(200, CANARY), "/secret": Route(200, CANARY)}, host="127.0.0.1", port=good.port
                ) as canary:
                    yield good, canary
                    return
            except OSError:
                continue
    raise RuntimeError("could not bind the test servers on one port")


@contextlib.asynccontextmanager
async def ssrf_env(make_settings: Callable[..., Settings], **network: Any) -> AsyncIterator[Env]:
    with dns_server(ZONE) as dns, _pair_on_one_port() as (good, canary):
        settings = make_settings(network={"resolver": [dns.address], "timeout": "3s", **network})
        with tailops_server(settings) as srv:
            async with mcp_http_client(srv.url, srv.mint("prober", "network:diag")) as client:
                yield Env(client, srv, dns, canary, good)
        assert canary.seen == [], f"the loopback canary was contacted: {canary.seen}"


async def http_test(env: Env, url: str, **args: Any) -> tuple[bool, str, dict[str, Any] | None]:
    with anyio.fail_after(20):
        result = await env.client.call_tool("http_request_test", {"url": url, **args})
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert CANARY.decode() not in block.text
    return bool(result.is_error), block.text, result.structured_content


async def refused(env: Env, url: str, rule: str) -> str:
    is_error, text, _ = await http_test(env, url)
    assert is_error, (url, text[:300])
    assert text.startswith("target_refused: "), (url, text)
    assert f"(rule {rule})" in text, (url, text)
    return text


LOOPBACK_SPELLINGS = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("0x7f.1", "loopback"),
    ("0x7f000001", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("017700000001", "loopback"),
    ("2130706433", "loopback"),
    ("127.0.0.1.", "loopback"),
    ("localhost", "loopback"),
    ("LOCALHOST.", "loopback"),
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:7f00:1]", "loopback"),
    ("[::127.0.0.1]", "loopback"),
    ("[64:ff9b::7f00:1]", "loopback"),
    ("[2002:7f00:1::]", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified"),
    ("[::]", "unspecified"),
    ("[::ffff:0.0.0.0]", "unspecified"),
]


async def test_every_loopback_spelling_is_refused(make_settings: Callable[..., Settings]) -> None:
    async with ssrf_env(make_settings) as env:
        port = env.canary.port
        for host, rule in LOOPBACK_SPELLINGS:
            await refused(env, f"http://{host}:{port}/secret", rule)
            await refused(env, f"https://{host}:{port}/secret", rule)


async def test_link_local_metadata_multicast_and_broadcast_are_refused(make_settings: Callable[..., Settings]) -> None:
    async with ssrf_env(make_settings) as env:
        for url, rule in [
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("http://0xa9fea9fe/", "metadata"),
            ("http://[::ffff:169.254.169.254]/", "metadata"),
            ("http://[fd00:ec2::254]/", "metadata"),
            ("http://100.100.100.200/", "metadata"),
            ("http://169.254.1.1/", "link_local"),
            ("http://[fe80::1]/", "link_local"),
            ("http://224.0.0.1/", "multicast"),
            ("http://[ff02::1]/", "multicast"),
            ("http://255.255.255.255/", "broadcast"),
            ("http://240.0.0.1/", "reserved"),
        ]:
            await refused(env, url, rule)


async def test_names_that_resolve_to_refused_addresses(make_settings: Callable[..., Settings]) -> None:
    async with ssrf_env(make_settings) as env:
        port = env.canary.port
        for name, rule in [
            ("loop.test", "loopback"),
            ("LOOP.test.", "loopback"),
            ("loop6.test", "loopback"),
            ("mapped.test", "loopback"),
            ("nat64.test", "loopback"),
            ("alias.test", "loopback"),
            ("meta.test", "metadata"),
            ("zero.test", "unspecified"),
            ("mixed.test", "loopback"),  # one refused address refuses the whole name
        ]:
            text = await refused(env, f"http://{name}:{port}/secret", rule)
            assert name.lower().rstrip(".") in text
        is_error, text, _ = await http_test(env, f"http://nxdomain.test:{port}/")
        assert is_error and text.startswith("not_found:") and "does not exist" in text


async def test_dns_rebinding_cannot_switch_the_connection_to_loopback(make_settings: Callable[..., Settings]) -> None:
    async with ssrf_env(make_settings, allow_cidrs=["127.0.0.2/32"]) as env:
        url = f"http://rebind.test:{env.good.port}/"
        is_error, text, first = await http_test(env, url)
        assert not is_error, text
        assert first is not None and first["status_code"] == 200 and first["body_preview"] == "GOOD"
        assert first["address"] == "127.0.0.2"
        # Resolved exactly once: the connection used the checked address, not a second lookup.
        assert env.dns.count("rebind.test", "A") == 1
        assert env.good.seen == [("GET", "/", f"rebind.test:{env.good.port}")]
        # The next resolution answers loopback: refused before any connection.
        await refused(env, url, "loopback")
        assert env.dns.count("rebind.test", "A") == 2


async def test_redirects_to_refused_targets_are_refused_after_recheck(make_settings: Callable[..., Settings]) -> None:
    async with ssrf_env(make_settings, allow_cidrs=["127.0.0.2/32"]) as env:
        port = env.canary.port
        targets = [
            (f"http://127.0.0.1:{port}/secret", "loopback"),
            (f"http://127.1:{port}/secret", "loopback"),
            (f"http://localhost:{port}/secret", "loopback"),
            (f"http://[::ffff:127.0.0.1]:{port}/secret", "loopback"),
            (f"http://loop.test:{port}/secret", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ]
        routes = {f"/r{i}": Route(302, b"", (("Location", t),)) for i, (t, _) in enumerate(targets)}
        with http_server(routes, host="127.0.0.2") as hop:
            for i, (_target, rule) in enumerate(targets):
                text = await refused(env, f"http://127.0.0.2:{hop.port}/r{i}", rule)
                assert "redirect 1 to" in text
            assert len(hop.seen) == len(targets)


async def test_the_servers_own_port_is_refused_even_with_loopback_allowed(
    make_settings: Callable[..., Settings],
) -> None:
    async with ssrf_env(make_settings, http_allow_loopback=True) as env:
        own = env.server.settings.server.port
        for host in ("127.0.0.1", "127.1", "localhost", "loop.test", "[::ffff:127.0.0.1]", "0x7f.1"):
            await refused(env, f"http://{host}:{own}/health", "own_port")
        with http_server({"/": Route(302, b"", (("Location", f"http://127.0.0.1:{own}/health"),))}) as hop:
            text = await refused(env, hop.url("/"), "own_port")
            assert "redirect 1" in text
        # Loopback itself is allowed in this configuration: the canary's neighbour answers.
        is_error, text, data = await http_test(env, env.good.url("/"))
        assert not is_error and data is not None and data["body_preview"] == "GOOD"


async def test_disallowed_methods_and_urls_are_refused(make_settings: Callable[..., Settings]) -> None:
    async with ssrf_env(make_settings, allow_cidrs=["127.0.0.2/32"]) as env:
        is_error, text, _ = await http_test(env, env.good.url("/"), method="OPTIONS")
        assert is_error and text.startswith("permission_denied:") and "OPTIONS is not allowed" in text
        is_error, text, _ = await http_test(env, env.good.url("/"), method="POST")
        assert is_error and "method" in text
        for url, fragment in [
            ("file:///etc/passwd", "scheme 'file'"),
            ("gopher://127.0.0.2/", "scheme 'gopher'"),
            (f"http://user:pw@127.0.0.2:{env.good.port}/", "credentials"),
            ("http://127.0.0.2:70000/", "out of range"),
            ("http://a;reboot/", "cannot hold"),
            ("http://" + "x" * 3000 + "/", "at most 2048"),
        ]:
            is_error, text, _ = await http_test(env, url)
            assert is_error and fragment in text, (url, text)
        assert env.good.seen == []


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("ping_host", {"host": "127.0.0.1; reboot"}, "cannot hold"),
        ("ping_host", {"host": "$(id)"}, "cannot hold"),
        ("ping_host", {"host": "x" * 10_000}, "1024"),
        ("ping_host", {"host": "127.0.0.1", "count": -1}, "count"),
        ("ping_host", {"host": "127.0.0.1", "count": 0}, "count"),
        ("ping_host", {"host": "224.0.0.1"}, "rule multicast"),
        ("ping_host", {"host": "255.255.255.255"}, "rule broadcast"),
        ("traceroute", {"host": "0.0.0.0"}, "rule unspecified"),
        ("traceroute", {"host": "a|b"}, "cannot hold"),
        ("test_port_connectivity", {"host": "127.0.0.1", "port": 0}, "port"),
        ("test_port_connectivity", {"host": "127.0.0.1", "port": 70000}, "port"),
        ("test_port_connectivity", {"host": "127.0.0.1", "ports": [22, 0]}, "ports"),
        ("test_port_connectivity", {"host": "127.0.0.1", "ports": list(range(1, 200))}, "ports"),
        ("test_port_connectivity", {"host": "127.0.0.1"}, "give port or ports"),
        ("test_port_connectivity", {"host": "0.0.0.0", "port": 80}, "rule unspecified"),
        (
            "dns_lookup",
            {"name": "example.test", "record_types": ["BOGUS"], "resolver": "127.0.0.1"},
            "unknown DNS record type",
        ),
        ("dns_lookup", {"name": "example.test", "resolver": "224.0.0.251"}, "rule multicast"),
        ("dns_lookup", {"name": "bad name", "resolver": "127.0.0.1"}, "cannot hold"),
        ("dns_lookup", {"name": "example.test", "resolver": "not-an-ip.example"}, "must be an IP"),
        ("check_ssl_certificate", {"host": "127.0.0.1", "port": 0}, "port"),
        ("check_ssl_certificate", {"host": "`id`"}, "cannot hold"),
        ("check_ssl_certificate", {"host": "0.0.0.0"}, "rule unspecified"),
    ],
)
async def test_bad_probe_input_is_a_clear_error(
    make_settings: Callable[..., Settings], tool: str, args: dict[str, Any], fragment: str
) -> None:
    settings = make_settings()
    with tailops_server(settings) as srv:
        async with mcp_http_client(srv.url, srv.mint("prober", "network:diag")) as client:
            with anyio.fail_after(20):
                result = await client.call_tool(tool, args)
            block = result.content[0]
            assert isinstance(block, TextContent)
            assert result.is_error, (tool, args, block.text[:200])
            assert fragment in block.text, (tool, block.text)
            assert len(block.text) < 2000  # a 10 KB input is never echoed back whole
            assert not block.text.startswith("internal_error")
