"""Property-based checks (hypothesis) of the target parser/policy and the file path checks.

No input crashes them (only the documented InvalidInput/PathRefused/NotFound
come out), and nothing they allow lies outside the policy: an allowed HTTP
address is never loopback, link-local, metadata, unspecified or multicast, in
any spelling; an allowed file is always inside a root and never the server's.
No network traffic: the properties run on the pure parts.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tailops.config import load_config
from tailops.errors import InvalidInput, NotFound, PathRefused, TailopsError
from tailops.files.policy import FilePolicy
from tailops.netdiag.policy import Purpose, TargetPolicy, embedded_ipv4, parse_target

FORBIDDEN_FOR_HTTP = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "::1/128",
        "169.254.0.0/16",
        "fe80::/10",
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
        "255.255.255.255/32",
        "240.0.0.0/4",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
    )
]
NEVER = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "::/128", "224.0.0.0/4", "ff00::/8", "255.255.255.255/32")]
HOST_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")

POLICY = TargetPolicy.from_lists()


def _inside(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    return any(ip.version == n.version and ip in n for n in nets)


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ip, *embedded_ipv4(ip)]


host_chars = st.text(
    alphabet=st.sampled_from([*list("abcxyz0189.-_:[]%/ ;|&$`'\"\\\n\t\x00"), "ü", "０", "。", "ẞ", "ℂ", "⑴"]),
    max_size=40,
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(max_size=300), host_chars))
@example("127.1")
@example("0x7f.1")
@example("[::ffff:127.0.0.1]")
@example("x" * 10_000)
def test_parse_target_never_crashes_and_normalises(raw: str) -> None:
    try:
        t = parse_target(raw)
    except InvalidInput as exc:
        assert len(exc.public_message()) < 600
        return
    if t.ip is not None:
        assert t.host == str(t.ip)
        assert not (isinstance(t.ip, ipaddress.IPv6Address) and t.ip.ipv4_mapped is not None)
    else:
        assert len(t.host) <= 253
        assert HOST_RE.match(t.host), t.host
        # A name is never numeric in its last label (those are IPv4 spellings).
        assert not re.fullmatch(r"(0x[0-9a-f]*|[0-9]+)", t.host.rsplit(".", 1)[-1])


def _spell(value: int, parts: int, radixes: list[str], trailing_dot: bool) -> str:
    octets = list(value.to_bytes(4, "big"))
    head = octets[: parts - 1]
    last = int.from_bytes(bytes(octets[parts - 1 :]), "big")
    out = []
    for i, v in enumerate([*head, last]):
        r = radixes[i % len(radixes)]
        out.append(hex(v) if r == "hex" else (("0" + oct(v)[2:]) if r == "oct" else str(v)))
    return ".".join(out) + ("." if trailing_dot else "")


@settings(max_examples=1000, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.lists(st.sampled_from(["dec", "oct", "hex"]), min_size=1, max_size=4),
    st.booleans(),
)
def test_every_ipv4_spelling_parses_to_the_same_address(value: int, parts: int, radixes: list[str], dot: bool) -> None:
    text = _spell(value, parts, radixes, dot)
    t = parse_target(text)
    assert t.ip == ipaddress.IPv4Address(value), text
    mapped = parse_target(f"[::ffff:{ipaddress.IPv4Address(value)}]")
    assert mapped.ip == ipaddress.IPv4Address(value)


addresses = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6),
    st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}")),
    st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(a))),
    st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address((0x2002 << 112) | (int(a) << 80))),
    st.sampled_from([ipaddress.ip_address(a) for a in ("127.0.0.1", "169.254.169.254", "::1", "fe80::1", "0.0.0.0")]),
)


@settings(max_examples=3000, deadline=None)
@given(addresses, st.integers(1, 65535))
def test_no_allowed_http_address_lies_outside_the_policy(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    verdict = POLICY.verdict(ip, "http", port)
    if verdict is None:
        for a in _family(ip):
            assert not _inside(a, FORBIDDEN_FOR_HTTP), (ip, a)
    else:
        assert any(_inside(a, FORBIDDEN_FOR_HTTP) for a in _family(ip)) or verdict == "own_port", (ip, verdict)
    purposes: tuple[Purpose, ...] = ("ping", "port", "dns", "tls", "traceroute")
    for purpose in purposes:
        v = POLICY.verdict(ip, purpose, port)
        if v is None:
            assert not any(_inside(a, NEVER) for a in _family(ip)), (purpose, ip)


@settings(max_examples=2000, deadline=None)
@given(addresses)
def test_the_verdict_does_not_depend_on_the_spelling(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    spellings = [str(ip), f"[{ip}]"] if ip.version == 6 else [str(ip), str(int(ip)), hex(int(ip)), f"[::ffff:{ip}]"]
    verdicts = set()
    for s in spellings:
        t = parse_target(s)
        assert t.ip is not None
        verdicts.add(POLICY.verdict(t.ip, "http", 80))
    assert len(verdicts) == 1, (ip, verdicts)


# -- file paths -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FilePolicy]:
    base = tmp_path_factory.mktemp("props")
    outside = base / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("outside\n")
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("a\n")
    (root / "a" / "b" / "f.txt").write_text("b\n")
    (root / "a" / "x.key").write_text("k\n")
    data = root / "data"
    cfg = base / "empty.yaml"
    cfg.write_text("{}\n")
    settings_ = load_config(cfg, server={"data_dir": str(data)}, files={"allowed_roots": [str(root)]})
    data.mkdir(mode=0o700)
    (data / "tailops.db").write_text("db\n")
    (data / "keys").mkdir()
    (data / "keys" / "token.key").write_text("key\n")
    os.symlink(outside, root / "a" / "link_out")
    os.symlink("b", root / "a" / "link_in")
    os.symlink("..", root / "a" / "link_up")
    os.symlink("../data", root / "a" / "link_data")
    os.symlink("/", root / "a" / "link_root")
    os.link(data / "tailops.db", root / "a" / "hard_db")
    return root, FilePolicy.from_settings(settings_)


components = st.sampled_from(
    [
        "a",
        "b",
        "..",
        ".",
        "",
        "link_out",
        "link_in",
        "link_up",
        "link_data",
        "link_root",
        "data",
        "keys",
        "f.txt",
        "x.key",
        "tailops.db",
        "token.key",
        "hard_db",
        "etc",
        "passwd",
        "root",
        "outside",
    ]
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(components, min_size=0, max_size=8), st.sampled_from(["root", "base", "abs"]))
def test_no_allowed_path_lies_outside_the_roots_or_inside_the_server(
    fs: tuple[Path, FilePolicy], parts: list[str], start: str
) -> None:
    root, policy = fs
    prefix = {"root": str(root), "base": str(root.parent), "abs": ""}[start]
    path = prefix + "/" + "/".join(parts)
    assume(len(path) < 4096)
    try:
        res = policy.resolve(path)
    except (InvalidInput, PathRefused, NotFound):
        return
    assert res.real == root or res.real.is_relative_to(root)
    assert not res.real.is_relative_to(root / "data")
    assert all(policy.denied_by(p) is None for p in res.parts)
    try:
        with policy.open_file(path) as f:
            opened = Path(os.readlink(f"/proc/self/fd/{f.fd}"))
            assert opened.is_relative_to(root) and not opened.is_relative_to(root / "data")
            assert os.fstat(f.fd).st_nlink == 1
            assert os.pread(f.fd, 16, 0) in (b"a\n", b"b\n")
    except TailopsError:
        pass
