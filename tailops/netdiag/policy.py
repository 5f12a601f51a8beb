"""The target policy every network probe goes through: parse, resolve, check, pin.

Why this module exists: a probe target is attacker-controlled text. Before any
packet leaves, the target is

1. **parsed and normalised** (:func:`parse_target`): surrounding whitespace
   dropped, IPv6 literals with or without brackets (``::ffff:127.0.0.1`` is the
   IPv4 address it maps to), IPv4 in every form ``inet_aton`` accepts
   (``127.1``, ``0x7f.1``, ``0177.0.0.1``, ``2130706433``), one trailing dot,
   IDNA (UTS 46) for names; anything with characters a host name or address
   cannot hold (shell metacharacters, spaces, zone ids) is an input error;
2. **resolved once** (:class:`Resolver`: the system resolver, or the
   nameservers in ``network.resolver``);
3. **checked**: every resolved address, and any IPv4 address embedded in an
   IPv6 one (mapped, compatible, 6to4, Teredo, NAT64), against the rules
   below; one refused address refuses the target;
4. **pinned**: probes connect to :attr:`CheckedTarget.address`, the address
   that was checked, and never resolve the name again (no DNS rebinding).

Rules, in order (first match decides):

- ``unspecified`` / ``multicast`` / ``broadcast``: refused for every probe,
  always (not even ``allow_cidrs`` lifts them);
- ``own_port`` (HTTP only): a local address (loopback, this host's interface
  addresses) with the server's own listening port, always;
- ``allow_cidrs``: allowed;
- ``deny_cidrs``: refused;
- HTTP defaults: ``loopback``, ``link_local`` (169.254/16, fe80::/10) unless
  ``network.http_allow_loopback``; cloud ``metadata`` addresses
  (169.254.169.254, fd00:ec2::254, 100.100.100.200) always; ``reserved``;
- other probes (ping, traceroute, port, TLS, DNS): ``reserved`` refused;
  private, tailnet (100.64/10) and loopback ranges are allowed, since
  diagnosing them is the point.

What this module must never do: hand a probe a name instead of the checked
address, echo an unbounded input back, or let a parse failure become anything
but :class:`~tailops.errors.InvalidInput`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
import idna
import psutil  # type: ignore[import-untyped,unused-ignore]

from tailops.errors import ConfigError, InvalidInput, NotFound, OperationTimeout, TargetRefused, Unavailable

if TYPE_CHECKING:
    import dns.asyncresolver

__all__ = [
    "MAX_HOST_CHARS",
    "RULES",
    "CheckedTarget",
    "IPAddress",
    "Purpose",
    "Resolver",
    "Target",
    "TargetPolicy",
    "embedded_ipv4",
    "parse_ipv4_legacy",
    "parse_nameserver",
    "parse_target",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Purpose = Literal["http", "tls", "ping", "traceroute", "port", "dns"]

MAX_HOST_CHARS = 253
# Longest raw input we even look at; longer is an input error, echoed only by length.
_MAX_RAW_CHARS = 1024

RULES: dict[str, str] = {
    "unspecified": "0.0.0.0/8 and :: mean 'this host' and are never a target",
    "multicast": "multicast addresses are never a target",
    "broadcast": "the broadcast address is never a target",
    "own_port": "the tailops server's own listening port is never an HTTP target",
    "deny_cidr": "the address is in network.deny_cidrs",
    "loopback": "loopback is refused for HTTP tests (network.http_allow_loopback)",
    "link_local": "link-local addresses are refused for HTTP tests (network.http_allow_loopback)",
    "metadata": "cloud metadata endpoints are refused for HTTP tests",
    "reserved": "reserved (unroutable) addresses are refused",
}

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_UNSPECIFIED = (_V4("0.0.0.0/8"), _V6("::/128"))
_MULTICAST = (_V4("224.0.0.0/4"), _V6("ff00::/8"))
_BROADCAST = (_V4("255.255.255.255/32"),)
_LOOPBACK = (_V4("127.0.0.0/8"), _V6("::1/128"))
_LINK_LOCAL = (_V4("169.254.0.0/16"), _V6("fe80::/10"))
_METADATA = (_V4("169.254.169.254/32"), _V6("fd00:ec2::254/128"), _V4("100.100.100.200/32"))
_RESERVED = (_V4("240.0.0.0/4"),)
_NAT64 = (_V6("64:ff9b::/96"), _V6("64:ff9b:1::/48"))
_V4_COMPAT = _V6("::/96")

_HOST_CHARS = re.compile(r"[^\w.\-:\[\]]", re.UNICODE)
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_V4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


def _shown(raw: str) -> str:
    """A bounded, printable rendering of untrusted input for messages."""
    cut = raw[:80]
    text = repr(cut)
    return text + (f"… ({len(raw)} characters)" if len(raw) > 80 else "")


def parse_ipv4_legacy(text: str) -> ipaddress.IPv4Address | None:
    """IPv4 in any form ``inet_aton`` accepts (1-4 parts, decimal/octal/hex); None if not one.

    Raises :class:`InvalidInput` when the text *looks* numeric (its last label
    is a number, as the WHATWG URL parser decides) but is not a valid address.
    """
    parts = text.split(".")
    if not parts or not _V4_PART.match(parts[-1]):
        return None
    if len(parts) > 4 or not all(_V4_PART.match(p) for p in parts):
        raise InvalidInput(f"{_shown(text)} looks like an IPv4 address but is not a valid one.")
    values: list[int] = []
    for p in parts:
        if p[:2].lower() == "0x":
            values.append(int(p[2:], 16) if len(p) > 2 else 0)
        elif len(p) > 1 and p.startswith("0"):
            if any(c in "89" for c in p):
                raise InvalidInput(f"{_shown(text)} has an invalid octal part {p!r}.")
            values.append(int(p, 8))
        else:
            values.append(int(p, 10))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise InvalidInput(f"{_shown(text)} is out of range for an IPv4 address.")
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


@dataclass(frozen=True)
class Target:
    """A parsed target: a literal address, or a normalised (ASCII, lower-case) host name."""

    host: str
    ip: IPAddress | None

    @property
    def is_ip(self) -> bool:
        return self.ip is not None


def _canonical(ip: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 is the IPv4 address it maps to (that is where the kernel sends it)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_target(raw: object) -> Target:
    """Parse a host name or address (see the module docstring); never resolves."""
    if not isinstance(raw, str):
        raise InvalidInput("target must be a string (host name or IP address).")
    if len(raw) > _MAX_RAW_CHARS:
        raise InvalidInput(f"target is {len(raw)} characters long; a host name has at most {MAX_HOST_CHARS}.")
    text = raw.strip()
    if not text:
        raise InvalidInput("target is empty; give a host name or IP address.")
    bad = sorted(set(_HOST_CHARS.findall(text)))
    if bad or any(not c.isprintable() for c in text):
        shown = ", ".join(repr(c) for c in bad[:5]) or "control characters"
        raise InvalidInput(
            f"target {_shown(text)} contains characters a host name or address cannot hold ({shown}).",
            hint="Give a plain host name (example.com) or IP address; no URL, port, spaces or shell syntax.",
        )
    bracketed = text.startswith("[") and text.endswith("]")
    if bracketed:
        text = text[1:-1]
    if "[" in text or "]" in text:
        raise InvalidInput(f"target {_shown(raw)} has unbalanced brackets.")
    if ":" in text:
        try:
            ip6 = ipaddress.IPv6Address(text)
        except ValueError:
            raise InvalidInput(
                f"target {_shown(text)} is not a valid IPv6 address.",
                hint="Give the port in its own argument, not as host:port.",
            ) from None
        ip = _canonical(ip6)
        return Target(host=str(ip), ip=ip)
    if bracketed:
        raise InvalidInput(f"target {_shown(raw)}: brackets are only for IPv6 addresses.")
    # UTS 46 mapping first (full-width digits and dots become ASCII), then the
    # WHATWG order: a name whose last label is a number is an IPv4 address.
    try:
        mapped = idna.uts46_remap(text, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        raise InvalidInput(f"target {_shown(text)} is not a valid host name.") from None
    if _HOST_CHARS.search(mapped) or ":" in mapped:
        raise InvalidInput(f"target {_shown(text)} maps to characters a host name cannot hold.")
    if mapped.endswith(".") and not mapped.endswith(".."):
        mapped = mapped[:-1]
    if not mapped or ".." in mapped or mapped.startswith("."):
        raise InvalidInput(f"target {_shown(raw)} has an empty label.")
    ip4 = parse_ipv4_legacy(mapped)
    if ip4 is not None:
        return Target(host=str(ip4), ip=ip4)
    labels: list[str] = []
    for label in mapped.split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(idna.encode(label, uts46=True, transitional=False, std3_rules=False).decode("ascii"))
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise InvalidInput(f"target {_shown(text)} is not a valid host name ({exc.__class__.__name__}).") from None
    ascii_host = ".".join(labels).lower()
    if len(ascii_host) > MAX_HOST_CHARS:
        raise InvalidInput(f"host name is {len(ascii_host)} characters long; at most {MAX_HOST_CHARS}.")
    for label in ascii_host.split("."):
        if not _LABEL.match(label):
            raise InvalidInput(
                f"target {_shown(text)} is not a valid host name (label {_shown(label)}).",
                hint="Labels are 1-63 letters, digits, '-' or '_', not starting or ending with '-'.",
            )
    return Target(host=ascii_host, ip=None)


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if any(ip in n for n in _NAT64) or (ip in _V4_COMPAT and int(ip) > 1):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _in_any(ip: IPAddress, nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    return any(ip.version == n.version and ip in n for n in nets)


def parse_nameserver(entry: str) -> tuple[IPAddress, int]:
    """``IP``, ``IP:port``, ``[v6]:port`` or ``v6`` → (address, port)."""
    text = entry.strip()
    port = 53
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?", text)
    if m:
        host, p = m.group(1), m.group(2)
    elif text.count(":") == 1:
        host, p = text.split(":")
    else:
        host, p = text, None
    try:
        ip = _canonical(ipaddress.ip_address(host))
    except ValueError:
        raise InvalidInput(f"nameserver {_shown(entry)} must be an IP address (optionally with :port).") from None
    if p is not None:
        port = int(p)
        if not 1 <= port <= 65535:
            raise InvalidInput(f"nameserver {_shown(entry)} has an invalid port.")
    return ip, port


@dataclass(frozen=True)
class CheckedTarget:
    """A target whose every address passed the policy; connect to :attr:`address` only."""

    host: str
    is_ip: bool
    addresses: tuple[IPAddress, ...]
    resolve_ms: float = 0.0

    @property
    def address(self) -> IPAddress:
        return self.addresses[0]

    @property
    def server_name(self) -> str | None:
        """The name for SNI / Host, or None when the target was a literal address."""
        return None if self.is_ip else self.host


class Resolver:
    """Resolves a host name once: the system resolver, or the configured nameservers."""

    def __init__(self, nameservers: Sequence[str] = (), *, timeout_s: float = 5.0) -> None:
        self.timeout = timeout_s
        self.nameservers: list[tuple[IPAddress, int]] = []
        for entry in nameservers:
            try:
                self.nameservers.append(parse_nameserver(entry))
            except InvalidInput as exc:
                raise ConfigError(f"network.resolver: {exc.message}") from None

    def dns_resolver(self, nameservers: Sequence[tuple[IPAddress, int]] | None = None) -> dns.asyncresolver.Resolver:
        # dnspython is imported on first use: it costs ~0.2 s at server start otherwise.
        import dns.asyncresolver
        import dns.nameserver

        servers = list(nameservers) if nameservers is not None else self.nameservers
        res = dns.asyncresolver.Resolver(configure=not servers)
        if servers:
            res.nameservers = [dns.nameserver.Do53Nameserver(str(ip), port) for ip, port in servers]
        res.lifetime = self.timeout
        res.timeout = min(self.timeout, 2.0)
        res.cache = None
        return res

    async def resolve(self, host: str) -> list[IPAddress]:
        """All addresses of ``host`` (a normalised name), in resolver order, de-duplicated."""
        if host == "localhost" or host.endswith(".localhost"):
            # RFC 6761: always loopback, whatever a nameserver would say.
            return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
        if self.nameservers:
            found = await self._resolve_dns(host)
        else:
            found = await self._resolve_system(host)
        out: list[IPAddress] = []
        for ip in found:
            c = _canonical(ip)
            if c not in out:
                out.append(c)
        if not out:
            raise NotFound(f"host {host} has no A or AAAA records.")
        return out

    async def _resolve_system(self, host: str) -> list[IPAddress]:
        try:
            with anyio.fail_after(self.timeout):
                infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise OperationTimeout(f"resolving {host} took longer than {self.timeout:g} s.") from None
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                raise NotFound(f"host {host} does not resolve.") from None
            raise Unavailable(f"resolving {host} failed: {exc.strerror or exc}.") from None
        out: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            addr = str(sockaddr[0]).split("%", 1)[0]
            try:
                out.append(ipaddress.ip_address(addr))
            except ValueError:
                continue
        return out

    async def _resolve_dns(self, host: str) -> list[IPAddress]:
        import dns.exception
        import dns.resolver

        res = self.dns_resolver()
        out: list[IPAddress] = []
        missing = 0
        for rdtype in ("A", "AAAA"):
            try:
                answer = await res.resolve(host, rdtype, search=False)
            except dns.resolver.NXDOMAIN:
                raise NotFound(f"host {host} does not exist (NXDOMAIN).") from None
            except (dns.resolver.NoAnswer, dns.resolver.NoNameservers):
                missing += 1
                continue
            except dns.exception.Timeout:
                raise OperationTimeout(f"resolving {host} took longer than {self.timeout:g} s.") from None
            except dns.exception.DNSException as exc:
                raise Unavailable(f"resolving {host} failed: {exc.__class__.__name__}.") from None
            for rr in answer:
                out.append(ipaddress.ip_address(rr.to_text()))
        return out


@dataclass
class TargetPolicy:
    """Allow/deny decisions for one server instance."""

    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    deny: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    http_allow_loopback: bool = False
    own_ports: frozenset[int] = frozenset()
    own_hosts: frozenset[IPAddress] = frozenset()
    _local_cache: tuple[float, frozenset[IPAddress]] | None = field(default=None, repr=False)

    @classmethod
    def from_lists(
        cls,
        allow: Sequence[str] = (),
        deny: Sequence[str] = (),
        *,
        http_allow_loopback: bool = False,
        own_ports: Iterable[int] = (),
        own_hosts: Iterable[str] = (),
    ) -> TargetPolicy:
        def nets(key: str, values: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
            out = []
            for v in values:
                try:
                    out.append(ipaddress.ip_network(v.strip(), strict=False))
                except ValueError:
                    raise ConfigError(f"network.{key}: {v!r} is not a CIDR (e.g. 10.0.0.0/8).") from None
            return tuple(out)

        hosts: set[IPAddress] = set()
        for h in own_hosts:
            try:
                hosts.add(_canonical(ipaddress.ip_address(h)))
            except ValueError:
                continue
        return cls(
            allow=nets("allow_cidrs", allow),
            deny=nets("deny_cidrs", deny),
            http_allow_loopback=http_allow_loopback,
            own_ports=frozenset(p for p in own_ports if p > 0),
            own_hosts=frozenset(hosts),
        )

    def _local_addresses(self) -> frozenset[IPAddress]:
        now = time.monotonic()
        if self._local_cache is not None and now - self._local_cache[0] < 30:
            return self._local_cache[1]
        found: set[IPAddress] = set(self.own_hosts)
        try:
            for addrs in psutil.net_if_addrs().values():
                for a in addrs:
                    if a.family in (socket.AF_INET, socket.AF_INET6):
                        try:
                            found.add(_canonical(ipaddress.ip_address(a.address.split("%", 1)[0])))
                        except ValueError:
                            continue
        except OSError:
            pass
        value = frozenset(found)
        self._local_cache = (now, value)
        return value

    def is_local(self, ip: IPAddress) -> bool:
        """Loopback, unspecified, or one of this host's interface addresses."""
        return ip.is_loopback or ip.is_unspecified or ip in self._local_addresses()

    def verdict(self, ip: IPAddress, purpose: Purpose, port: int | None = None) -> str | None:
        """The rule that refuses ``ip`` for ``purpose`` (None: allowed). Pure apart from local addresses."""
        ip = _canonical(ip)
        family = [ip, *embedded_ipv4(ip)]
        for a in family:
            if _in_any(a, _UNSPECIFIED):
                return "unspecified"
            if _in_any(a, _MULTICAST):
                return "multicast"
            if _in_any(a, _BROADCAST):
                return "broadcast"
        if purpose == "http" and port is not None and port in self.own_ports and any(self.is_local(a) for a in family):
            return "own_port"
        if any(_in_any(a, self.allow) for a in family):
            return None
        if any(_in_any(a, self.deny) for a in family):
            return "deny_cidr"
        for a in family:
            if _in_any(a, _RESERVED):
                return "reserved"
            if purpose == "http":
                if _in_any(a, _METADATA):
                    return "metadata"
                if not self.http_allow_loopback:
                    if _in_any(a, _LOOPBACK):
                        return "loopback"
                    if _in_any(a, _LINK_LOCAL):
                        return "link_local"
        return None

    def check_address(self, ip: IPAddress, purpose: Purpose, *, port: int | None = None, shown: str = "") -> None:
        rule = self.verdict(ip, purpose, port)
        if rule is None:
            return
        what = shown or str(ip)
        via = f" (resolves to {ip})" if shown and shown != str(ip) else ""
        port_text = f" port {port}" if rule == "own_port" else ""
        raise TargetRefused(
            f"target refused (rule {rule}): {what}{via}{port_text} — {RULES[rule]}.",
            hint=_HINTS.get(rule),
        )

    async def check(
        self, raw: object, purpose: Purpose, resolver: Resolver, *, port: int | None = None
    ) -> CheckedTarget:
        """Parse, resolve once, check every address; the result pins the addresses to use."""
        target = parse_target(raw)
        if target.ip is not None:
            self.check_address(target.ip, purpose, port=port, shown=target.host)
            return CheckedTarget(host=target.host, is_ip=True, addresses=(target.ip,))
        started = time.perf_counter()
        addresses = await resolver.resolve(target.host)
        elapsed = (time.perf_counter() - started) * 1000
        for ip in addresses:
            self.check_address(ip, purpose, port=port, shown=target.host)
        return CheckedTarget(host=target.host, is_ip=False, addresses=tuple(addresses), resolve_ms=round(elapsed, 3))


_HINTS: dict[str, str] = {
    "loopback": "Use ping_host or test_port_connectivity; an admin may set network.http_allow_loopback.",
    "link_local": "An admin can set network.http_allow_loopback, or list the address in network.allow_cidrs.",
    "metadata": "Metadata services hold credentials; only an admin can allow one (network.allow_cidrs).",
    "own_port": "The server cannot be asked to call itself.",
    "deny_cidr": "An admin refused this range in network.deny_cidrs.",
}
