"""``http_request_test``: one HTTP(S) request to a checked address, with a timing breakdown.

Why this module exists: an HTTP probe is the classic SSRF door. Here the URL's
host goes through the target policy (strict HTTP rules: no loopback,
link-local, metadata, or the server's own port by default), the request is
sent to the *checked IP* with the original ``Host`` header and TLS SNI set
separately (httpx ``sni_hostname`` extension), so nothing resolves the name a
second time. Redirects are followed by hand, each hop's target checked again,
up to ``network.http_max_redirects``. Only ``network.http_methods`` (default
GET, HEAD) are sent, with no body; ``trust_env`` is off (no proxies or netrc
from the environment); the response body is read only up to the preview cap,
uncompressed (``Accept-Encoding: identity``).

What it must never do: connect to an unchecked address, follow a redirect
without re-checking it, send credentials, or read an unbounded body.
"""

from __future__ import annotations

import ssl
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import Field

from tailops import __version__
from tailops.errors import InvalidInput, OperationTimeout, PermissionDenied, TargetRefused, Unavailable
from tailops.models import Model
from tailops.netdiag.context import NetDiag
from tailops.netdiag.policy import CheckedTarget, parse_target

if TYPE_CHECKING:
    import httpx  # imported where used: the server starts without httpx's CLI extras

__all__ = ["HttpResult", "HttpTiming", "RedirectHop", "http_request"]

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_URL = 2048
_MAX_HEADERS = 64
_MAX_HEADER_VALUE = 512
_REDACTED_HEADERS = ("set-cookie", "www-authenticate", "proxy-authenticate")

Method = Literal["GET", "HEAD", "OPTIONS"]


class HttpTiming(Model):
    dns_ms: float = Field(description="Name resolution by the target policy (0 for an IP).")
    connect_ms: float | None = Field(None, description="TCP connect.")
    tls_ms: float | None = Field(None, description="TLS handshake (https only).")
    ttfb_ms: float | None = Field(None, description="Request sent until response headers arrived.")
    total_ms: float = Field(description="Whole request, all redirects included.")


class RedirectHop(Model):
    url: str
    status: int
    location: str
    address: str


class HttpResult(Model):
    url: str = Field(description="The URL asked for.")
    final_url: str = Field(description="The URL of the response shown (after redirects).")
    method: str
    address: str = Field(description="The checked address the final request went to.")
    status_code: int
    reason: str
    http_version: str
    headers: dict[str, str] = Field(description="Response headers (cookies and auth challenges redacted).")
    content_type: str | None = None
    content_length: int | None = Field(None, description="From the Content-Length header, if any.")
    body_preview: str | None = Field(None, description="Start of the body as text (null for binary or HEAD).")
    body_bytes_read: int = 0
    body_truncated: bool = Field(False, description="True when the body is longer than the preview cap.")
    body_binary: bool = False
    redirects: list[RedirectHop] = Field(default_factory=list)
    redirect_limit_reached: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    timing: HttpTiming


def _parse_url(raw: str) -> httpx.URL:
    """Parse and normalise a URL: its host goes through the target parser (every IPv4/IPv6 spelling
    becomes the canonical address, names become IDNA ASCII), then httpx builds the URL from the parts."""
    import httpx

    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("url is empty; give an http:// or https:// URL.")
    if len(raw) > _MAX_URL:
        raise InvalidInput(f"url is {len(raw)} characters long; at most {_MAX_URL}.")
    try:
        parts = urllib.parse.urlsplit(raw.strip())
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        text = str(exc)
        if "out of range" in text:
            raise InvalidInput("url port is out of range (1-65535).") from None
        raise InvalidInput(f"url is not a valid URL ({text[:80]}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInput(f"url scheme {scheme!r} is not supported; use http or https.")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url contains credentials (user:password@); they are never sent by this tool.")
    if not hostname:
        raise InvalidInput("url has no host.")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidInput(f"url port {port} is out of range (1-65535).")
    target = parse_target(hostname)
    host = f"[{target.host}]" if ":" in target.host else target.host
    netloc = host if port is None else f"{host}:{port}"
    try:
        return httpx.URL(urllib.parse.urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")))
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidInput(f"url is not a valid URL ({exc.__class__.__name__}).") from None


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _headers(response: httpx.Response) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in response.headers.multi_items():
        k = key.lower()
        if len(out) >= _MAX_HEADERS and k not in out:
            break
        v = "<redacted>" if k in _REDACTED_HEADERS else value[:_MAX_HEADER_VALUE]
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _translate(exc: httpx.HTTPError, where: str, timeout_s: float) -> Exception:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return OperationTimeout(f"HTTP request to {where} timed out ({timeout_s:g} s).")
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Unavailable(
                f"TLS verification of {where} failed: {cause.verify_message or cause.reason}.",
                hint="check_ssl_certificate shows the certificate; verify_tls=false skips verification.",
            )
        if isinstance(cause, ssl.SSLError):
            return Unavailable(f"TLS handshake with {where} failed: {cause.reason or 'SSL error'}.")
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return Unavailable(f"could not connect to {where}: connection failed or refused.")
    return Unavailable(f"HTTP request to {where} failed: {exc.__class__.__name__}.")


async def _one(
    url: httpx.URL,
    checked: CheckedTarget,
    method: str,
    *,
    timeout_s: float,
    body_cap: int,
    verify_tls: bool,
) -> tuple[httpx.Response, bytes, bool, dict[str, float], tuple[str | None, str | None]]:
    """One request to the pinned address; returns the response (closed), body head, truncation, marks, TLS."""
    import httpx

    ip = checked.address
    request_url = url.copy_with(host=str(ip))
    headers = {
        "Host": url.netloc.decode("ascii"),
        "User-Agent": f"tailops/{__version__} (http_request_test)",
        "Accept-Encoding": "identity",
        "Accept": "*/*",
    }
    marks: dict[str, float] = {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        marks[name] = time.perf_counter()

    extensions: dict[str, Any] = {"trace": trace}
    if url.scheme == "https" and checked.server_name:
        extensions["sni_hostname"] = checked.server_name
    verify: ssl.SSLContext | bool = ssl.create_default_context() if verify_tls else False
    client = httpx.AsyncClient(
        verify=verify,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_keepalive_connections=0, max_connections=1),
    )
    body = bytearray()
    truncated = False
    tls: tuple[str | None, str | None] = (None, None)
    async with client, client.stream(method, request_url, headers=headers, extensions=extensions) as response:
        stream = response.extensions.get("network_stream")
        if stream is not None:
            ssl_obj = stream.get_extra_info("ssl_object")
            if ssl_obj is not None:
                cipher = ssl_obj.cipher()
                tls = (ssl_obj.version(), cipher[0] if cipher else None)
        if method != "HEAD" and response.status_code not in _REDIRECTS:
            async for chunk in response.aiter_raw():
                body.extend(chunk)
                if len(body) > body_cap:
                    truncated = True
                    break
    return response, bytes(body[:body_cap]), truncated, marks, tls


def _span(marks: dict[str, float], start: str, end: str) -> float | None:
    if start in marks and end in marks:
        return round((marks[end] - marks[start]) * 1000, 3)
    return None


async def http_request(
    nd: NetDiag,
    url: str,
    *,
    method: str = "GET",
    timeout_s: float,
    max_redirects: int,
    body_cap: int,
    verify_tls: bool = True,
) -> HttpResult:
    import httpx

    method = method.upper()
    allowed = list(nd.config.network.http_methods)
    if method not in allowed:
        raise PermissionDenied(
            f"HTTP method {method} is not allowed; this server sends only: {', '.join(allowed)}.",
            hint="An admin can extend network.http_methods (read-only methods only).",
        )
    first = _parse_url(url)
    current = first
    hops: list[RedirectHop] = []
    started = time.perf_counter()
    dns_ms = 0.0
    limit_reached = False
    deadline = timeout_s * (max_redirects + 1) + 1
    async with nd.slot():
        try:
            with anyio.fail_after(deadline):
                while True:
                    try:
                        checked = await nd.check(current.raw_host.decode("ascii"), "http", port=_port(current))
                    except TargetRefused as exc:
                        if not hops:
                            raise
                        raise TargetRefused(
                            f"redirect {len(hops)} to {str(current)[:200]} refused: {exc.message}",
                            hint=exc.hint,
                        ) from None
                    dns_ms += checked.resolve_ms
                    where = f"{current.raw_host.decode('ascii')}:{_port(current)} ({checked.address})"
                    try:
                        response, body, truncated, marks, tls = await _one(
                            current,
                            checked,
                            method,
                            timeout_s=timeout_s,
                            body_cap=body_cap,
                            verify_tls=verify_tls,
                        )
                    except httpx.HTTPError as exc:
                        raise _translate(exc, where, timeout_s) from None
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        if len(hops) >= max_redirects:
                            limit_reached = True
                        else:
                            try:
                                nxt = _parse_url(str(current.join(location)))
                            except InvalidInput as exc:
                                raise InvalidInput(
                                    f"redirect {len(hops) + 1} has a bad Location: {exc.message}"
                                ) from None
                            hops.append(
                                RedirectHop(
                                    url=str(current),
                                    status=response.status_code,
                                    location=location[:_MAX_URL],
                                    address=str(checked.address),
                                )
                            )
                            current = nxt
                            continue
                    break
        except TimeoutError:
            raise OperationTimeout(f"HTTP test of {str(first)[:200]} took longer than {deadline:g} s.") from None
    total = round((time.perf_counter() - started) * 1000, 3)
    binary = b"\x00" in body
    preview: str | None = None
    if body and not binary:
        try:
            preview = body.decode(response.charset_encoding or "utf-8", errors="replace")
        except LookupError:  # a charset name Python does not know
            preview = body.decode("utf-8", errors="replace")
    length = response.headers.get("content-length")
    return HttpResult(
        url=str(first),
        final_url=str(current),
        method=method,
        address=str(checked.address),
        status_code=response.status_code,
        reason=response.reason_phrase,
        http_version=response.http_version,
        headers=_headers(response),
        content_type=response.headers.get("content-type"),
        content_length=int(length) if length and length.isdigit() else None,
        body_preview=preview,
        body_bytes_read=len(body),
        body_truncated=truncated,
        body_binary=binary,
        redirects=hops,
        redirect_limit_reached=limit_reached,
        tls_version=tls[0],
        tls_cipher=tls[1],
        timing=HttpTiming(
            dns_ms=round(dns_ms, 3),
            connect_ms=_span(marks, "connection.connect_tcp.started", "connection.connect_tcp.complete"),
            tls_ms=_span(marks, "connection.start_tls.started", "connection.start_tls.complete"),
            ttfb_ms=_span(marks, "http11.send_request_headers.started", "http11.receive_response_headers.complete"),
            total_ms=total,
        ),
    )
