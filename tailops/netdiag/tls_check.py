"""``check_ssl_certificate``: TLS handshake with a checked address and a certificate report.

Why this module exists: "is this certificate valid, for this name, and when
does it expire?" answered from a real handshake (anyio TLS over a TCP
connection to the address the target policy checked, SNI sent separately):
trust verdict with the verifier's reason, hostname match against the SANs,
the presented chain (issuer, subject, SANs, validity, key, fingerprint), days
to expiry, negotiated protocol and cipher. An untrusted certificate is still
reported (a second handshake without verification) with ``trusted: false``.

What it must never do: connect to an address the policy did not check, send
application data, or treat an unverified handshake as trusted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute, TLSStream
from pydantic import Field

from tailops.errors import InvalidInput, OperationTimeout, Unavailable
from tailops.models import Model
from tailops.netdiag.context import NetDiag
from tailops.netdiag.policy import CheckedTarget, parse_target

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["CertInfo", "CertificateReport", "check_certificate", "hostname_matches"]

_MAX_CHAIN = 10
_MAX_SANS = 100


class CertInfo(Model):
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    days_to_expiry: int = Field(description="Whole days until not_after (negative: expired).")
    expired: bool
    self_signed: bool
    san_dns: list[str] = Field(default_factory=list)
    san_ip: list[str] = Field(default_factory=list)
    signature_algorithm: str | None = None
    public_key: str | None = None
    sha256: str


class CertificateReport(Model):
    target: str
    address: str = Field(description="The checked address the handshake went to.")
    port: int
    server_name: str | None = Field(None, description="SNI sent (null for a bare IP).")
    trusted: bool = Field(description="The chain verified against the system CA store (hostname included).")
    verify_error: str | None = Field(None, description="Why verification failed, when it did.")
    hostname_matches: bool = Field(description="The leaf's SANs cover the name (or IP) asked for.")
    days_to_expiry: int | None = None
    protocol: str | None = None
    cipher: str | None = None
    cipher_bits: int | None = None
    alpn: str | None = None
    chain: list[CertInfo] = Field(default_factory=list, description="As presented by the server, leaf first.")
    handshake_ms: float
    resolve_ms: float = 0.0


def hostname_matches(name: str, san_dns: list[str], san_ip: list[str]) -> bool:
    """RFC 6125 matching: exact or a left-most ``*`` label covering exactly one label; IPs exactly."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return any(_same_ip(ip, s) for s in san_ip)
    host = name.lower().rstrip(".")
    for pattern in san_dns:
        p = pattern.lower().rstrip(".")
        if p == host:
            return True
        # A wildcard needs at least two labels after it (no "*.com") and covers exactly one label.
        if p.startswith("*.") and "*" not in p[2:] and p.count(".") >= 2:
            head, _, rest = host.partition(".")
            if head and rest == p[2:]:
                return True
    return False


def _same_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _key_text(cert: x509.Certificate) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    try:
        key = cert.public_key()
    except (ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def cert_info(der: bytes, now: datetime | None = None) -> CertInfo:
    # cryptography's X.509 layer loads on the first certificate check, not at start-up.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtensionOID

    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.now(UTC)
    dns_names: list[str] = []
    ips: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        assert isinstance(san, x509.SubjectAlternativeName)
        dns_names = [str(v) for v in san.get_values_for_type(x509.DNSName)][:_MAX_SANS]
        ips = [str(v) for v in san.get_values_for_type(x509.IPAddress)][:_MAX_SANS]
    not_after = cert.not_valid_after_utc
    seconds = (not_after - now).total_seconds()
    try:
        sig = cert.signature_algorithm_oid._name
    except AttributeError:
        sig = None
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=_iso(cert.not_valid_before_utc),
        not_after=_iso(not_after),
        days_to_expiry=int(seconds // 86400),
        expired=seconds < 0 or cert.not_valid_before_utc > now,
        self_signed=cert.issuer == cert.subject,
        san_dns=dns_names,
        san_ip=ips,
        signature_algorithm=sig,
        public_key=_key_text(cert),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def _extra(stream: TLSStream, attribute: Any) -> Any:
    """anyio typed attribute lookup (ruff's S610 mistakes ``.extra`` for Django's)."""
    return stream.extra(attribute, None)  # noqa: S610


def _chain_der(stream: TLSStream) -> list[bytes]:
    obj: Any = _extra(stream, TLSAttribute.ssl_object)
    inner = getattr(obj, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None) or getattr(obj, "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain][:_MAX_CHAIN]  # type: ignore[attr-defined]
        except (AttributeError, ValueError, ssl.SSLError):
            pass
    leaf = _extra(stream, TLSAttribute.peer_certificate_binary)
    return [leaf] if leaf else []


async def _handshake(address: str, port: int, sni: str | None, verify_name: str, verify: bool) -> TLSStream:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    tcp: ByteStream = await anyio.connect_tcp(address, port)
    try:
        # server_hostname drives both SNI (names only) and the hostname check.
        return await TLSStream.wrap(tcp, hostname=sni or verify_name, ssl_context=ctx, standard_compatible=False)
    except BaseException:
        await tcp.aclose()
        raise


async def check_certificate(
    nd: NetDiag, host: str, *, port: int, timeout_s: float, server_name: str | None = None
) -> CertificateReport:
    if not 1 <= port <= 65535:
        raise InvalidInput("port must be 1-65535.")
    checked: CheckedTarget = await nd.check(host, "tls", port=port)
    sni = checked.server_name
    if server_name is not None:
        named = parse_target(server_name)
        if named.is_ip:
            raise InvalidInput("server_name must be a host name (it is sent as SNI), not an address.")
        sni = named.host
    address = str(checked.address)
    verify_name = sni or address
    verify_error: str | None = None
    started = time.perf_counter()
    async with nd.slot():
        try:
            with anyio.fail_after(timeout_s):
                try:
                    stream = await _handshake(address, port, sni, verify_name, verify=True)
                    trusted = True
                except ssl.SSLCertVerificationError as exc:
                    verify_error = str(exc.verify_message or exc.reason or "verification failed")
                    trusted = False
                    stream = await _handshake(address, port, sni, verify_name, verify=False)
        except TimeoutError:
            raise OperationTimeout(
                f"TLS handshake with {checked.host}:{port} took longer than {timeout_s:g} s."
            ) from None
        except ssl.SSLError as exc:
            raise Unavailable(
                f"TLS handshake with {checked.host}:{port} ({address}) failed: {exc.reason or exc.__class__.__name__}.",
                hint="Check that the port speaks TLS (not plain HTTP) and supports TLS 1.2 or newer.",
            ) from None
        except ConnectionRefusedError:
            raise Unavailable(f"{checked.host}:{port} ({address}) refused the connection.") from None
        except OSError as exc:
            raise Unavailable(
                f"could not connect to {checked.host}:{port} ({address}): {exc.strerror or exc}."
            ) from None
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        try:
            ders = _chain_der(stream)
            cipher = _extra(stream, TLSAttribute.cipher)
            protocol = _extra(stream, TLSAttribute.tls_version)
            alpn = _extra(stream, TLSAttribute.alpn_protocol)
        finally:
            with anyio.move_on_after(1):
                await stream.aclose()
    chain = []
    for der in ders:
        try:
            chain.append(cert_info(der))
        except ValueError:
            continue
    leaf = chain[0] if chain else None
    matches = leaf is not None and hostname_matches(verify_name, leaf.san_dns, leaf.san_ip)
    return CertificateReport(
        target=checked.host,
        address=address,
        port=port,
        server_name=sni,
        trusted=trusted,
        verify_error=verify_error,
        hostname_matches=matches,
        days_to_expiry=leaf.days_to_expiry if leaf else None,
        protocol=protocol,
        cipher=cipher[0] if cipher else None,
        cipher_bits=cipher[2] if cipher else None,
        alpn=alpn,
        chain=chain,
        handshake_ms=elapsed,
        resolve_ms=checked.resolve_ms,
    )
