"""``dns_lookup``: DNS queries with dnspython (A/AAAA/MX/TXT/CNAME/NS/SRV/PTR/SOA/CAA).

Why this module exists: answer "what does this name resolve to, and from which
server" with real queries to a chosen nameserver (checked by the target policy
like any other probe target), per-type status (NXDOMAIN, no answer, timeout,
SERVFAIL) instead of one opaque failure, and bounded time.

What it must never do: shell out to dig/nslookup, query a resolver the policy
refuses, or wait longer than the timeout per query.
"""

from __future__ import annotations

import time
from typing import Literal

import anyio
from pydantic import Field

from tailops.errors import InvalidInput
from tailops.models import Model
from tailops.netdiag.context import NetDiag
from tailops.netdiag.policy import IPAddress, parse_target

__all__ = ["RECORD_TYPES", "DnsAnswer", "DnsLookupResult", "DnsRecord", "dns_lookup", "parse_record_types"]

RECORD_TYPES: tuple[str, ...] = ("A", "AAAA", "MX", "TXT", "CNAME", "NS", "SRV", "PTR", "SOA", "CAA")
_MAX_RECORDS = 50
_MAX_VALUE = 512

Status = Literal["ok", "nxdomain", "no_answer", "timeout", "servfail", "error"]


class DnsRecord(Model):
    name: str
    type: str
    ttl: int
    value: str


class DnsAnswer(Model):
    type: str
    status: Status = Field(description="ok, nxdomain, no_answer, timeout, servfail (no server answered well), error.")
    records: list[DnsRecord] = Field(default_factory=list)
    elapsed_ms: float
    detail: str | None = None


class DnsLookupResult(Model):
    name: str = Field(description="The name as given, normalised.")
    query_name: str = Field(description="The name actually queried (the in-addr.arpa name for PTR of an IP).")
    resolver: str = Field(description="Nameserver(s) asked: address:port, or 'system' (resolv.conf).")
    transport: Literal["udp", "tcp"]
    answers: list[DnsAnswer]


def parse_record_types(values: list[str]) -> list[str]:
    if not values:
        raise InvalidInput(f"give at least one record type: {', '.join(RECORD_TYPES)}.")
    if len(values) > len(RECORD_TYPES):
        raise InvalidInput(f"at most {len(RECORD_TYPES)} record types per call.")
    out: list[str] = []
    for v in values:
        t = v.strip().upper() if isinstance(v, str) else ""
        if t not in RECORD_TYPES:
            shown = repr(v[:20]) if isinstance(v, str) else "a non-string"
            raise InvalidInput(f"unknown DNS record type {shown}; use one of: {', '.join(RECORD_TYPES)}.")
        if t not in out:
            out.append(t)
    return out


def _query_name(name: str, types: list[str]) -> tuple[str, str, IPAddress | None]:
    import dns.reversename  # dnspython loads on first use (server start stays fast)

    target = parse_target(name)
    if target.ip is not None:
        if types != ["PTR"]:
            raise InvalidInput(
                f"{target.host} is an address: only PTR (reverse) lookups apply to it.",
                hint="Pass record_types=['PTR'], or a host name for forward lookups.",
            )
        return target.host, dns.reversename.from_address(str(target.ip)).to_text(), target.ip
    return target.host, target.host + ".", None


async def dns_lookup(
    nd: NetDiag,
    name: str,
    *,
    record_types: list[str],
    resolver: str | None,
    resolver_port: int,
    timeout_s: float,
    tcp: bool = False,
) -> DnsLookupResult:
    import dns.exception
    import dns.rdatatype
    import dns.resolver

    types = parse_record_types(record_types)
    shown, qname, _ip = _query_name(name, types)
    servers: list[tuple[IPAddress, int]] | None
    if resolver is not None:
        if not parse_target(resolver).is_ip:  # never resolve the resolver's name
            raise InvalidInput("resolver must be an IP address, not a name.")
        checked = await nd.check(resolver, "dns")
        servers = [(checked.address, resolver_port)]
        label = f"{checked.address}:{resolver_port}"
    elif nd.resolver.nameservers:
        servers = None
        label = ", ".join(f"{ip}:{port}" for ip, port in nd.resolver.nameservers)
    else:
        servers = None
        label = "system"
    res = nd.resolver.dns_resolver(servers)
    res.lifetime = timeout_s
    res.timeout = timeout_s
    answers: dict[str, DnsAnswer] = {}

    async def one(rdtype: str) -> None:
        started = time.perf_counter()

        def done(status: Status, records: list[DnsRecord] | None = None, detail: str | None = None) -> None:
            answers[rdtype] = DnsAnswer(
                type=rdtype,
                status=status,
                records=records or [],
                elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
                detail=detail,
            )

        try:
            answer = await res.resolve(qname, rdtype, tcp=tcp, search=False, raise_on_no_answer=True)
        except dns.resolver.NXDOMAIN:
            return done("nxdomain", detail="the name does not exist")
        except dns.resolver.NoAnswer:
            return done("no_answer", detail=f"the name exists but has no {rdtype} records")
        except dns.resolver.LifetimeTimeout:
            return done("timeout", detail=f"no answer within {timeout_s:g} s")
        except dns.exception.Timeout:
            return done("timeout", detail=f"no answer within {timeout_s:g} s")
        except dns.resolver.NoNameservers:
            return done("servfail", detail="every nameserver failed (SERVFAIL, REFUSED or unreachable)")
        except (dns.exception.DNSException, OSError) as exc:
            return done("error", detail=exc.__class__.__name__)
        records: list[DnsRecord] = []
        assert answer.rrset is not None
        for rrset in answer.response.answer:
            for rr in rrset:
                records.append(
                    DnsRecord(
                        name=rrset.name.to_text(),
                        type=dns.rdatatype.to_text(rrset.rdtype),
                        ttl=rrset.ttl,
                        value=rr.to_text()[:_MAX_VALUE],
                    )
                )
                if len(records) >= _MAX_RECORDS:
                    break
        return done("ok", records)

    async with nd.slot():
        with anyio.move_on_after(timeout_s * 2 + 1):
            async with anyio.create_task_group() as tg:
                for t in types:
                    tg.start_soon(one, t)
    out = [answers.get(t) or DnsAnswer(type=t, status="timeout", elapsed_ms=timeout_s * 1000) for t in types]
    return DnsLookupResult(
        name=shown,
        query_name=qname,
        resolver=label,
        transport="tcp" if tcp else "udp",
        answers=out,
    )
