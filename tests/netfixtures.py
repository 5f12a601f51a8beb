"""Real local network services for the network-probe tests (loopback only).

- :func:`dns_server`: a tiny authoritative DNS server (dnspython messages over
  real UDP and TCP sockets on 127.0.0.1:<free port>) serving a zone given as a
  dict; a record value may be a list of answers served in turn (DNS rebinding).
- :func:`http_server`: a threaded HTTP server on a loopback address answering
  fixed routes (status, headers, body), e.g. a redirect to loopback.
- :func:`tls_server`: the same HTTP server behind TLS with a self-signed
  certificate generated here with ``cryptography``.

Every server runs in daemon threads, binds only loopback addresses, and stops
when its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ipaddress
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "DnsServer",
    "Route",
    "dns_server",
    "free_port",
    "http_server",
    "self_signed_cert",
    "tls_server",
]

# name -> type -> list of record texts, or list of lists served in rotation.
Zone = dict[str, dict[str, list[str] | list[list[str]]]]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class DnsServer:
    host: str
    port: int
    zone: Zone
    queries: list[tuple[str, str]] = field(default_factory=list)
    _turns: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def count(self, name: str, rdtype: str) -> int:
        key = (name.lower().rstrip(".") + ".", rdtype)
        with self._lock:
            return sum(1 for q in self.queries if q == key)

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # a malformed packet gets no answer
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        qname = q.name.to_text().lower()
        qtype = dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.queries.append((qname, qtype))
        records = self.zone.get(qname)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        values = records.get(qtype)
        if values is None and "CNAME" in records and qtype != "CNAME":
            values, qtype = records["CNAME"], "CNAME"
        if not values:
            return response.to_wire()  # NOERROR, no data
        if isinstance(values[0], list):
            with self._lock:
                turn = self._turns.get((qname, qtype), 0)
                self._turns[(qname, qtype)] = turn + 1
            chosen = values[turn % len(values)]
            assert isinstance(chosen, list)
            texts = chosen
        else:
            texts = [v for v in values if isinstance(v, str)]
        rrset = dns.rrset.from_text_list(q.name, 60, dns.rdataclass.IN, dns.rdatatype.from_text(qtype), texts)
        response.answer.append(rrset)
        wanted = dns.rdatatype.to_text(q.rdtype)
        if qtype == "CNAME" and wanted != "CNAME":
            # Like a recursive server: add the target's records to the answer.
            target = texts[0].lower()
            follow = self.zone.get(target, {}).get(wanted)
            if follow and isinstance(follow[0], str):
                response.answer.append(
                    dns.rrset.from_text_list(
                        target, 60, dns.rdataclass.IN, q.rdtype, [v for v in follow if isinstance(v, str)]
                    )
                )
        return response.to_wire()


@contextlib.contextmanager
def dns_server(zone: Zone, host: str = "127.0.0.1") -> Iterator[DnsServer]:
    """Serve ``zone`` (names with trailing dot, lower case) over UDP and TCP on one free port."""
    norm: Zone = {k.lower() if k.endswith(".") else k.lower() + ".": v for k, v in zone.items()}
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((host, port))
            break
        except OSError:
            udp.close()
            tcp.close()
    else:
        raise RuntimeError("no free port for the test DNS server")
    tcp.listen(16)
    udp.settimeout(0.1)
    tcp.settimeout(0.1)
    server = DnsServer(host=host, port=port, zone=norm)
    stop = threading.Event()

    def serve_udp() -> None:
        while not stop.is_set():
            try:
                wire, peer = udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            out = server.answer(wire)
            if out is not None:
                udp.sendto(out, peer)

    def serve_tcp() -> None:
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(2)
                    if len(head) < 2:
                        continue
                    (length,) = struct.unpack("!H", head)
                    wire = b""
                    while len(wire) < length:
                        chunk = conn.recv(length - len(wire))
                        if not chunk:
                            break
                        wire += chunk
                    out = server.answer(wire)
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    continue

    threads = [threading.Thread(target=serve_udp, daemon=True), threading.Thread(target=serve_tcp, daemon=True)]
    for t in threads:
        t.start()
    try:
        yield server
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        udp.close()
        tcp.close()


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # seconds the server waits before answering (a slow server)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, Route] = {}  # noqa: RUF012 - replaced per server class
    seen: list[tuple[str, str, str]] = []  # noqa: RUF012 - (method, path, Host header)
    stop_event: threading.Event = threading.Event()
    protocol_version = "HTTP/1.1"

    def _reply(self, with_body: bool) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Host", "")))
        route = self.routes.get(self.path.split("?", 1)[0], Route(404, b"not found"))
        if route.delay:
            self.stop_event.wait(route.delay)
        self.send_response(route.status)
        names = {k.lower() for k, _ in route.headers}
        for k, v in route.headers:
            # "{port}" in a header value stands for this server's own port.
            self.send_header(k, v.replace("{port}", str(self.server.server_address[1])))  # type: ignore[index]
        if "content-type" not in names:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(route.body)

    def do_GET(self) -> None:
        self._reply(True)

    def do_HEAD(self) -> None:
        self._reply(False)

    def do_OPTIONS(self) -> None:
        self._reply(False)

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class RunningHttp:
    host: str
    port: int
    scheme: str
    seen: list[tuple[str, str, str]]

    def url(self, path: str = "/", host: str | None = None) -> str:
        h = host or self.host
        if ":" in h:
            h = f"[{h}]"
        return f"{self.scheme}://{h}:{self.port}{path}"


@contextlib.contextmanager
def http_server(
    routes: dict[str, Route],
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[RunningHttp]:
    """Serve ``routes`` (path -> Route) on ``host:port`` (0: free) until the block ends."""
    seen: list[tuple[str, str, str]] = []
    stop = threading.Event()
    handler = type("Handler", (_Handler,), {"routes": dict(routes), "seen": seen, "stop_event": stop})
    server = _Server((host, port), handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield RunningHttp(
            host=host, port=int(server.server_address[1]), scheme="https" if ssl_context else "http", seen=seen
        )
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def self_signed_cert(
    directory: Path,
    *,
    names: tuple[str, ...] = ("tls.test", "localhost"),
    ips: tuple[str, ...] = ("127.0.0.1",),
    days: int = 30,
) -> tuple[Path, Path]:
    """A self-signed EC P-256 certificate (PEM cert, PEM key) valid for ``days`` days."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextlib.contextmanager
def tls_server(
    directory: Path, routes: dict[str, Route] | None = None, host: str = "127.0.0.1", days: int = 30
) -> Iterator[RunningHttp]:
    """HTTPS on ``host`` with a fresh self-signed certificate for tls.test, localhost, 127.0.0.1."""
    cert, key = self_signed_cert(directory, days=days)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with http_server(routes or {"/": Route(200, b"tls ok")}, host=host, ssl_context=ctx) as srv:
        yield srv
