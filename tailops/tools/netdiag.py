"""Network diagnostic tools (group ``network``, scope ``network:diag``).

Thin and async: argument bounds here; the target policy, resolution and
pinning in :mod:`tailops.netdiag.policy`; one module per probe. Every probe
runs on the event loop inside one of ``network.max_concurrent_probes`` slots,
so a slow probe never holds a worker thread or delays other requests. No
shell anywhere.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tailops.errors import InvalidInput
from tailops.netdiag.context import for_runtime
from tailops.netdiag.dns_lookup import RECORD_TYPES, DnsLookupResult, dns_lookup
from tailops.netdiag.http_test import HttpResult, Method, http_request
from tailops.netdiag.ping import PingResult, ping
from tailops.netdiag.ports import MAX_PORTS, PortScan, check_ports
from tailops.netdiag.tls_check import CertificateReport, check_certificate
from tailops.netdiag.traceroute import TracerouteResult
from tailops.netdiag.traceroute import traceroute as run_traceroute
from tailops.tools.registry import ToolCall, tool

Host = Annotated[str, Field(min_length=1, max_length=1024, description="Host name or IP address (no scheme, no port).")]
Timeout = Annotated[float | None, Field(gt=0, le=30, description="Seconds to wait (default: network.timeout).")]


def _timeout(call: ToolCall, value: float | None) -> float:
    return value if value is not None else call.rt.config.network.timeout.total_seconds()


@tool(group="network", open_world=True, title="Ping host")
async def ping_host(
    call: ToolCall,
    *,
    host: Host,
    count: Annotated[int, Field(ge=1, le=20, description="Echo requests to send (1-20).")] = 4,
    interval: Annotated[float, Field(ge=0.2, le=5, description="Seconds between requests (0.2-5).")] = 1.0,
    timeout: Annotated[  # noqa: ASYNC109 - the MCP argument name
        float, Field(gt=0, le=10, description="Seconds to wait for each reply (max 10).")
    ] = 2.0,
) -> PingResult:
    """ICMP ping of a host (checked against the target policy): loss, min/avg/max RTT and jitter."""
    return await ping(for_runtime(call.rt), host, count=count, interval=interval, timeout_s=timeout)


@tool(group="network", open_world=True, title="Traceroute")
async def traceroute(
    call: ToolCall,
    *,
    host: Host,
    max_hops: Annotated[int, Field(ge=1, le=30, description="Highest TTL to try (1-30).")] = 30,
    probes_per_hop: Annotated[int, Field(ge=1, le=3, description="Probes per TTL (1-3).")] = 1,
    timeout: Annotated[  # noqa: ASYNC109 - the MCP argument name
        float, Field(gt=0, le=3, description="Seconds to wait per probe (max 3).")
    ] = 1.0,
) -> TracerouteResult:
    """ICMP traceroute to a host: the address and RTT of each hop (stops at the target or after 60 s)."""
    return await run_traceroute(for_runtime(call.rt), host, max_hops=max_hops, count=probes_per_hop, timeout_s=timeout)


@tool(group="network", open_world=True, list_field="ports", title="Test TCP ports")
async def test_port_connectivity(
    call: ToolCall,
    *,
    host: Host,
    port: Annotated[int | None, Field(ge=1, le=65535, description="One TCP port (1-65535).")] = None,
    ports: Annotated[
        list[Annotated[int, Field(ge=1, le=65535)]] | None,
        Field(max_length=MAX_PORTS, description=f"Several TCP ports (at most {MAX_PORTS})."),
    ] = None,
    timeout: Timeout = None,  # noqa: ASYNC109 - the MCP argument name
) -> PortScan:
    """TCP connect test of one or many ports: open, closed (refused), filtered (no answer) or unreachable."""
    wanted = ([port] if port is not None else []) + list(ports or [])
    if not wanted:
        raise InvalidInput("give port or ports (1-65535).")
    return await check_ports(for_runtime(call.rt), host, wanted, timeout_s=_timeout(call, timeout))


@tool(group="network", open_world=True, name="dns_lookup", title="DNS lookup")
async def dns_lookup_tool(
    call: ToolCall,
    *,
    name: Annotated[str, Field(min_length=1, max_length=1024, description="Name to look up (an IP for PTR lookups).")],
    record_types: Annotated[
        list[str], Field(min_length=1, max_length=10, description=f"Record types: {', '.join(RECORD_TYPES)}.")
    ] = ["A", "AAAA"],  # noqa: B006 - pydantic copies defaults
    resolver: Annotated[
        str | None, Field(max_length=64, description="Nameserver IP to ask (default: configured/system).")
    ] = None,
    resolver_port: Annotated[int, Field(ge=1, le=65535, description="Nameserver port.")] = 53,
    tcp: Annotated[bool, Field(description="Query over TCP instead of UDP.")] = False,
    timeout: Timeout = None,  # noqa: ASYNC109 - the MCP argument name
) -> DnsLookupResult:
    """DNS records of a name (A/AAAA/MX/TXT/CNAME/NS/SRV/PTR/SOA/CAA) from a chosen or configured resolver."""
    return await dns_lookup(
        for_runtime(call.rt),
        name,
        record_types=record_types,
        resolver=resolver,
        resolver_port=resolver_port,
        timeout_s=_timeout(call, timeout),
        tcp=tcp,
    )


@tool(group="network", open_world=True, title="Check TLS certificate")
async def check_ssl_certificate(
    call: ToolCall,
    *,
    host: Host,
    port: Annotated[int, Field(ge=1, le=65535, description="TLS port.")] = 443,
    server_name: Annotated[
        str | None, Field(max_length=253, description="SNI name to send (default: host, if it is a name).")
    ] = None,
    timeout: Timeout = None,  # noqa: ASYNC109 - the MCP argument name
) -> CertificateReport:
    """TLS certificate of host:port: trust, name match, chain, issuer, SANs, expiry, protocol, cipher."""
    return await check_certificate(
        for_runtime(call.rt), host, port=port, timeout_s=_timeout(call, timeout), server_name=server_name
    )


@tool(group="network", open_world=True, title="HTTP request test")
async def http_request_test(
    call: ToolCall,
    *,
    url: Annotated[str, Field(min_length=1, max_length=2048, description="http:// or https:// URL.")],
    method: Annotated[Method, Field(description="GET or HEAD (others only if the server allows them).")] = "GET",
    timeout: Timeout = None,  # noqa: ASYNC109 - the MCP argument name
    max_redirects: Annotated[
        int | None,
        Field(ge=0, le=20, description="Redirects to follow (default/max: network.http_max_redirects)."),
    ] = None,
    body_bytes: Annotated[int, Field(ge=0, le=65536, description="Bytes of the body to preview.")] = 2048,
    verify_tls: Annotated[bool, Field(description="Verify the server certificate (https).")] = True,
) -> HttpResult:
    """HTTP(S) request to a URL the target policy allows: status, timing breakdown, headers, body preview."""
    cfg = call.rt.config.network
    redirects = cfg.http_max_redirects if max_redirects is None else min(max_redirects, cfg.http_max_redirects)
    budget = max(0, call.rt.config.server.max_output_bytes // 2)
    return await http_request(
        for_runtime(call.rt),
        url,
        method=method,
        timeout_s=_timeout(call, timeout),
        max_redirects=redirects,
        body_cap=min(body_bytes, budget),
        verify_tls=verify_tls,
    )
