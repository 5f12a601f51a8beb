"""The network target policy: parsing/normalisation and the allow/deny verdicts (no network)."""

from __future__ import annotations

import ipaddress

import pytest

from tailops.errors import ConfigError, InvalidInput, TargetRefused
from tailops.netdiag.policy import (
    TargetPolicy,
    embedded_ipv4,
    parse_ipv4_legacy,
    parse_nameserver,
    parse_target,
)

LOOP = ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        (" 127.0.0.1 ", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::", "::"),
        ("169.254.169.254", "169.254.169.254"),
        ("０x7f.1", "127.0.0.1"),  # full-width digits map to ASCII under UTS 46
    ],
)
def test_ip_forms_normalise_to_the_address_the_kernel_would_use(raw: str, expected: str) -> None:
    t = parse_target(raw)
    assert t.is_ip
    assert str(t.ip) == expected
    assert t.host == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("Bücher.example", "xn--bcher-kva.example"),
        ("_sip._tcp.example.com", "_sip._tcp.example.com"),
        ("localhost", "localhost"),
        ("a-b.c", "a-b.c"),
    ],
)
def test_names_are_idna_encoded_lower_case_without_trailing_dot(raw: str, expected: str) -> None:
    t = parse_target(raw)
    assert not t.is_ip
    assert t.host == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a;rm -rf /", "cannot hold"),
        ("$(reboot)", "cannot hold"),
        ("`id`", "cannot hold"),
        ("host|cat", "cannot hold"),
        ("host&&x", "cannot hold"),
        ("a b", "cannot hold"),
        ("example.com/path", "cannot hold"),
        ("http://example.com", "cannot hold"),
        ("example.com:80", "not a valid IPv6"),
        ("fe80::1%eth0", "cannot hold"),
        ("x" * 10_000, "10000 characters"),
        ("a." * 130 + "com", "at most 253"),
        ("x" * 64 + ".com", "not a valid host name"),
        ("-bad.com", "not a valid host name"),
        ("1.2.3.4.5", "not a valid one"),
        ("256.1.1.1", "out of range"),
        ("1.2.3.08", "invalid octal"),
        ("4294967296", "out of range"),
        ("a..b", "empty label"),
        ("[example.com]", "brackets are only for IPv6"),
        ("[1.2.3.4]", "brackets are only for IPv6"),
        ("::ffff:1.2.3.4.5", "not a valid IPv6"),
        ("exa\x00mple.com", "cannot hold"),
        ("exa\nmple.com", "cannot hold"),
    ],
)
def test_bad_targets_are_clear_input_errors(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_target(raw)
    assert fragment in info.value.message
    assert len(info.value.message) < 400  # a 10 KB input is never echoed back


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_target(123)


def test_legacy_ipv4_parser_matches_inet_aton_semantics() -> None:
    assert parse_ipv4_legacy("example.com") is None
    assert parse_ipv4_legacy("1.2.3.x") is None
    assert parse_ipv4_legacy("10.1") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_ipv4_legacy("10.1.65535") == ipaddress.IPv4Address("10.1.255.255")
    with pytest.raises(InvalidInput):
        parse_ipv4_legacy("10.1.65536")


def test_embedded_ipv4_is_found_in_every_transition_form() -> None:
    def emb(text: str) -> list[str]:
        return [str(a) for a in embedded_ipv4(ipaddress.ip_address(text))]

    assert emb("::ffff:127.0.0.1") == ["127.0.0.1"]
    assert emb("2002:7f00:1::") == ["127.0.0.1"]  # 6to4
    assert emb("64:ff9b::7f00:1") == ["127.0.0.1"]  # NAT64
    assert emb("::127.0.0.1") == ["127.0.0.1"]  # IPv4-compatible
    assert "127.0.0.1" in emb("2001:0:4136:e378:8000:63bf:80ff:fffe")  # Teredo client 127.0.0.1
    assert emb("::1") == []
    assert emb("2001:db8::1") == []
    assert emb("10.0.0.1") == []


def _policy(**kw: object) -> TargetPolicy:
    return TargetPolicy.from_lists(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("addr", "rule"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
    ],
)
def test_http_default_refusals(addr: str, rule: str) -> None:
    assert _policy().verdict(ipaddress.ip_address(addr), "http", 80) == rule


@pytest.mark.parametrize("addr", ["10.0.0.1", "192.168.1.1", "172.17.0.2", "100.64.0.1", "fd7a:115c:a1e0::1"])
def test_http_allows_private_and_tailnet_ranges(addr: str) -> None:
    assert _policy().verdict(ipaddress.ip_address(addr), "http", 80) is None


@pytest.mark.parametrize("purpose", ["ping", "port", "dns", "tls", "traceroute"])
def test_diagnostic_probes_allow_loopback_private_and_link_local(purpose: str) -> None:
    p = _policy()
    for addr in ("127.0.0.1", "::1", "10.1.2.3", "100.101.102.103", "169.254.169.254", "192.168.0.1"):
        assert p.verdict(ipaddress.ip_address(addr), purpose, 80) is None, (purpose, addr)  # type: ignore[arg-type]
    for addr, rule in (("0.0.0.0", "unspecified"), ("224.0.0.5", "multicast"), ("255.255.255.255", "broadcast")):
        assert p.verdict(ipaddress.ip_address(addr), purpose, 80) == rule  # type: ignore[arg-type]


def test_http_allow_loopback_lifts_loopback_and_link_local_but_not_metadata() -> None:
    p = _policy(http_allow_loopback=True)
    assert p.verdict(LOOP, "http", 80) is None
    assert p.verdict(ipaddress.ip_address("169.254.1.1"), "http", 80) is None
    assert p.verdict(ipaddress.ip_address("169.254.169.254"), "http", 80) == "metadata"


def test_own_port_is_refused_on_every_local_address_even_when_loopback_and_cidr_are_allowed() -> None:
    p = _policy(http_allow_loopback=True, own_ports=[8787], allow=["127.0.0.0/8", "::/0"], own_hosts=["127.0.0.1"])
    assert p.verdict(LOOP, "http", 8787) == "own_port"
    assert p.verdict(ipaddress.ip_address("127.0.0.2"), "http", 8787) == "own_port"
    assert p.verdict(ipaddress.ip_address("::1"), "http", 8787) == "own_port"
    assert p.verdict(ipaddress.ip_address("::ffff:127.0.0.1"), "http", 8787) == "own_port"
    assert p.verdict(LOOP, "http", 8788) is None
    # Not an HTTP probe: a port check of our own port is harmless.
    assert p.verdict(LOOP, "port", 8787) is None


def test_allow_cidrs_beat_deny_and_defaults_but_never_the_hard_rules() -> None:
    p = _policy(allow=["127.0.0.2/32", "224.0.0.0/4", "0.0.0.0/0"], deny=["127.0.0.0/8"])
    assert p.verdict(ipaddress.ip_address("127.0.0.2"), "http", 80) is None
    assert p.verdict(ipaddress.ip_address("127.0.0.3"), "http", 80) is None  # 0.0.0.0/0 allow wins
    assert p.verdict(ipaddress.ip_address("224.0.0.1"), "http", 80) == "multicast"
    assert p.verdict(ipaddress.ip_address("0.0.0.0"), "http", 80) == "unspecified"
    p2 = _policy(allow=["127.0.0.2/32"], deny=["10.0.0.0/8"])
    assert p2.verdict(ipaddress.ip_address("127.0.0.3"), "http", 80) == "loopback"
    assert p2.verdict(ipaddress.ip_address("10.9.9.9"), "ping", None) == "deny_cidr"
    assert p2.verdict(ipaddress.ip_address("::ffff:10.9.9.9"), "ping", None) == "deny_cidr"


def test_refusal_names_the_rule_and_the_target() -> None:
    with pytest.raises(TargetRefused) as info:
        _policy().check_address(LOOP, "http", port=80, shown="loop.test")
    text = info.value.public_message()
    assert "rule loopback" in text and "loop.test" in text and "127.0.0.1" in text


def test_bad_cidrs_and_nameservers_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="allow_cidrs"):
        _policy(allow=["not-a-cidr"])
    with pytest.raises(ConfigError, match="deny_cidrs"):
        _policy(deny=["10.0.0.0/33"])
    from tailops.netdiag.policy import Resolver

    with pytest.raises(ConfigError, match=r"network\.resolver"):
        Resolver(["dns.example"])


@pytest.mark.parametrize(
    ("entry", "ip", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("[::1]:5300", "::1", 5300),
        ("::1", "::1", 53),
        ("[::1]", "::1", 53),
    ],
)
def test_nameserver_entries(entry: str, ip: str, port: int) -> None:
    got_ip, got_port = parse_nameserver(entry)
    assert str(got_ip) == ip and got_port == port


@pytest.mark.parametrize("entry", ["host:53", "127.0.0.1:0", "127.0.0.1:70000", "[::1]:x"])
def test_bad_nameserver_entries(entry: str) -> None:
    with pytest.raises(InvalidInput):
        parse_nameserver(entry)
