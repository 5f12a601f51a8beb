"""ASGI middleware around the app, one check each (starlette style).

Outermost first:

- :class:`RequestMetrics`: counts requests by route class and status.
- :class:`HostCheck`: Host/Origin allow-list (DNS-rebinding protection) on
  every route except ``/health`` → 421 / 403.
- :class:`BearerAuth`: verifies the bearer token once per request. Every route
  except ``/health`` and the RFC 9728 metadata needs a valid one → 401 with
  ``WWW-Authenticate: Bearer …, resource_metadata=…``; the refusal is audited.
  The SDK's own bearer check on ``/mcp`` then reuses this verification (and a 401
  it answers is audited here too). Failed authentications have a budget per client
  address (``auth.auth_failures_per_minute``): a failure over budget gets 429 +
  ``Retry-After``; a valid token is never refused by that budget.
- :class:`PrincipalRateLimit`: ``auth.rate_limit_per_minute`` per principal
  (the token's ``sub``; the client address for unauthenticated routes) → 429 +
  ``Retry-After``.
- :class:`MetricsScope`: ``/metrics`` needs the scope of its row in the policy table
  (:data:`tailops.auth.policy.HTTP`: ``admin``) → 403.

Which routes are served without a token is that table too (its ``open`` rows).

With ``auth.unsafe_no_auth`` there is no verifier: :class:`BearerAuth` and
:class:`MetricsScope` let everything through and the rate limit keys on the
client address. Nothing here ever logs or audits a token.

Every refusal says why in its body. On the MCP endpoint that body is a JSON-RPC
error (``id: null``; the SDK client puts the request's id back), because MCP
clients surface a JSON-RPC error's message to the agent and turn any other error
body into a bare "Server returned an error response": an agent that is told "rate
limit … retry in 2 s" can wait and retry in the same session. Elsewhere (the review
page's forms, ``/metrics``) it is the RFC 6750 shape ``{error, error_description}``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import anyio.to_thread
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailops.auth import policy
from tailops.auth.tokens import TokenVerifier, failure_reason
from tailops.config import Settings
from tailops.errors import AuditError, AuthError, RateLimited
from tailops.runtime import Runtime
from tailops.web.session import (
    ACCESS_TOKEN_KEY,
    AUTH_VIA_KEY,
    LOGIN_PATH,
    clear_cookie,
    cookie_secure,
    is_review_path,
    open_review_path,
)
from tailops.web.session import COOKIE as REVIEW_COOKIE

__all__ = [
    "ACCESS_TOKEN_KEY",
    "AUTH_VIA_KEY",
    "BearerAuth",
    "HostCheck",
    "MetricsScope",
    "PrincipalRateLimit",
    "RequestMetrics",
    "allowed_origin",
    "build_middleware",
    "open_paths",
    "resource_metadata_path",
    "transport_security",
]

# Where BearerAuth leaves the verified AccessToken in the ASGI scope.
log = logging.getLogger("tailops.server")

# The open rows of the policy table (the RFC 9728 metadata path depends on the MCP URL: below).
_METADATA_ACTION = "/.well-known/oauth-protected-resource"
_OPEN_PATHS = frozenset(path for path, rule in policy.HTTP.items() if rule.open and path != _METADATA_ACTION)


def resource_metadata_path(config: Settings) -> str:
    """The path of the RFC 9728 resource metadata (path-suffixed: /.well-known/oauth-protected-resource/mcp)."""
    return urlsplit(str(build_resource_metadata_url(AnyHttpUrl(config.mcp_url)))).path


def open_paths(config: Settings) -> frozenset[str]:
    """Exact paths served without a token (the policy table's open routes): /health and the
    RFC 9728 resource metadata."""
    metadata = {resource_metadata_path(config)} if policy.rule("http", _METADATA_ACTION).open else set()
    return _OPEN_PATHS | metadata


def _route_class(path: str) -> str:
    if path.startswith("/mcp"):
        return "mcp"
    if path in ("/health", "/metrics"):
        return path[1:]
    if path.startswith("/.well-known/"):
        return "well-known"
    if is_review_path(path):
        return "review"
    return "other"


# JSON-RPC's implementation-defined server error: a refusal before the MCP server saw the
# request. ``data.error`` names which (the RFC 6750 / OAuth error name) and ``data.status``
# the HTTP status, so a client can tell a bad token from a rate limit without parsing text.
REFUSED_CODE = -32000


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    error: str,
    description: str,
    headers: Iterable[tuple[str, str]] = (),
    **data: object,
) -> None:
    body: dict[str, object]
    if _route_class(scope["path"]) == "mcp":
        body = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": REFUSED_CODE, "message": description, "data": {"error": error, "status": status, **data}},
        }
    else:
        body = {"error": error, "error_description": description, **data}
    await _answer(send, status, body, headers)


async def _answer(send: Send, status: int, body: Mapping[str, object], headers: Iterable[tuple[str, str]] = ()) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def _see_other(send: Send, location: str, cookie: str | None = None) -> None:
    """303 to a local page (the review login form), optionally replacing the session cookie."""
    raw = [(b"location", location.encode("latin-1")), (b"content-length", b"0"), (b"cache-control", b"no-store")]
    if cookie is not None:
        raw.append((b"set-cookie", cookie.encode("latin-1")))
    await send({"type": "http.response.start", "status": 303, "headers": raw})
    await send({"type": "http.response.body", "body": b""})


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def transport_security(config: Settings) -> TransportSecuritySettings:
    """Allowed Host/Origin values: loopback names, the bind address, the public URL's host,
    plus ``server.allowed_hosts``/``allowed_origins``. Protection is on for every bind address."""
    cfg = config.server
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
    if cfg.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):  # noqa: S104
        h = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        hosts += [f"{h}:*", h]
    origins: list[str] = []
    if cfg.public_url:
        parts = urlsplit(cfg.public_url)
        if parts.hostname:
            name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            hosts += [parts.netloc, name, f"{name}:*"]
            origins += [f"{parts.scheme}://{parts.netloc}", f"{parts.scheme}://{name}"]
    hosts += list(cfg.allowed_hosts)
    origins += [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts if not h[:1].isdigit()]
    origins += list(cfg.allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


def allowed_origin(origin: str, settings: TransportSecuritySettings) -> bool:
    """``origin`` is one of the server's own (the allow-list of :func:`transport_security`)."""
    return _allowed(origin, list(settings.allowed_origins))


def _allowed(value: str, allowed: list[str]) -> bool:
    if value in allowed:
        return True
    # "name:*" allows "name:<port>" (as the SDK's check does).
    return any(a.endswith(":*") and value.startswith(a[:-1]) and value[len(a) - 1 :].isdigit() for a in allowed)


class RequestMetrics:
    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.rt.metrics.http_requests.labels(_route_class(scope["path"]), str(status["code"])).inc()


class HostCheck:
    """Refuse requests whose Host (421) or Origin (403) is not on the allow-list.

    A form posted to the review page from a foreign origin is refused here, before the page
    sees it; that refusal is audited like the page's own (``kind: web``, denied)."""

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings, rt: Runtime | None = None) -> None:
        self.app = app
        self.rt = rt
        self.hosts = list(settings.allowed_hosts)
        self.origins = list(settings.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not _allowed(host, self.hosts):
            await _refuse(scope, send, 421, "misdirected_request", "Host not allowed")
            return
        origin = headers.get("origin")
        if origin and not _allowed(origin, self.origins):
            if self.rt is not None and scope.get("method") == "POST" and is_review_path(scope["path"]):
                await self._audit_form(scope, headers, origin)
            await _refuse(scope, send, 403, "forbidden", "Origin not allowed")
            return
        await self.app(scope, receive, send)

    async def _audit_form(self, scope: Scope, headers: Headers, origin: str) -> None:
        assert self.rt is not None
        rt = self.rt
        peer = rt.principals.peer(scope)
        entry = {
            "kind": "web",
            "event": "review:form",
            "path": scope["path"],
            "principal": {"sub": None, "transport": "http", "addr": rt.principals.client_address(peer, headers)},
            "decision": "denied",
            "outcome": "denied",
            "error": f"refused: a form from the foreign origin {origin[:200]} (not allowed)",
        }
        try:
            await anyio.to_thread.run_sync(lambda: rt.audit.record(entry, sync=True))
        except AuditError:
            log.exception("audit write failed for a refused form")


class BearerAuth:
    """Every route except the open ones needs a valid bearer token (verified here, once).

    Failed authentications have a budget per client address
    (``auth.auth_failures_per_minute``). The token is always verified first: a valid
    token passes even when its address has spent its budget (one noisy client behind
    the same proxy address must not lock everyone else out); only a failure from an
    address over budget is answered 429 instead of 401. Every 401 is audited (fsynced)
    and charged to the address, including the ones the MCP SDK's own bearer layer
    answers further down (e.g. a token that expired within our clock leeway); refusals
    over budget are counted, and audited once per address and window, so a flood of
    bad tokens cannot turn into a flood of fsyncs.
    """

    _OVER_BUDGET_AUDIT_S = 60.0

    def __init__(self, app: ASGIApp, rt: Runtime, verifier: TokenVerifier | None) -> None:
        self.app = app
        self.rt = rt
        self.verifier = verifier
        self.metadata_url = str(build_resource_metadata_url(AnyHttpUrl(rt.config.mcp_url)))
        self.open = open_paths(rt.config)
        self._over_budget_audited: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self.verifier is None:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = Headers(scope=scope)
        header = headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        # The review page's browser session: its cookie stands in for the header there only.
        review = scope["type"] == "http" and is_review_path(path)
        from_cookie = False
        if token is None and review:
            token = cookie_parser(headers.get("cookie", "")).get(REVIEW_COOKIE) or None
            from_cookie = token is not None
        if token is None:
            if path in self.open or (review and open_review_path(path)):
                await self.app(scope, receive, send)
                return
            if review:
                await _see_other(send, LOGIN_PATH)
                return
            await self._refuse(scope, send, headers, None)
            return
        try:
            access = self.verifier.authenticate(token)
        except AuthError as exc:
            if path in self.open or (review and open_review_path(path)):
                await self.app(scope, receive, send)
                return
            if from_cookie:
                # An expired or revoked session: audited like any refused token, then back to the form.
                await self._audit(scope, headers, failure_reason(exc), exc.message)
                secure = cookie_secure(str(scope.get("scheme", "http")), self.rt.config.server.public_url)
                await _see_other(send, f"{LOGIN_PATH}?expired=1", clear_cookie(secure=secure))
                return
            await self._refuse(scope, send, headers, exc)
            return
        scope[ACCESS_TOKEN_KEY] = access
        # Which credential authenticated: the review page skips its CSRF checks only for the header.
        scope[AUTH_VIA_KEY] = "cookie" if from_cookie else "header"
        marker = self.verifier.remember(token, access)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                # Refused further down (the SDK's bearer layer): audited and charged like ours.
                self.rt.auth_failures.record_failure(self._address(scope, headers))
                self.rt.metrics.auth_failures.labels("refused_by_mcp_layer").inc()
                await self._audit(scope, headers, "refused_by_mcp_layer", "the MCP layer refused the token (401)")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.verifier.forget(marker)

    def _address(self, scope: Scope, headers: Headers) -> str:
        return self.rt.principals.client_address(self.rt.principals.peer(scope), headers)

    async def _refuse(self, scope: Scope, send: Send, headers: Headers, exc: AuthError | None) -> None:
        addr = self._address(scope, headers)
        wait = self.rt.auth_failures.retry_after(addr)
        if wait > 0:
            await self._refuse_over_budget(scope, send, headers, addr, wait)
            return
        self.rt.auth_failures.record_failure(addr)
        if exc is None:
            reason, description = "missing", "Authentication required: send Authorization: Bearer <token>"
            challenge = f'Bearer realm="tailops", resource_metadata="{self.metadata_url}"'
            self.rt.metrics.auth_failures.labels("missing").inc()
        else:
            reason, description = failure_reason(exc), exc.message
            challenge = (
                f'Bearer realm="tailops", error="invalid_token", error_description="{description}", '
                f'resource_metadata="{self.metadata_url}"'
            )
        # The refusal is on disk before the client learns of it.
        await self._audit(scope, headers, reason, description)
        if scope["type"] == "http":
            await _refuse(scope, send, 401, "invalid_token", description, [("www-authenticate", challenge)])

    async def _refuse_over_budget(self, scope: Scope, send: Send, headers: Headers, addr: str, wait: float) -> None:
        self.rt.metrics.rate_limited.labels("auth_failures").inc()
        description = f"too many failed authentications from {addr}; retry in {_retry_after(wait)} s"
        now = time.monotonic()
        if now - self._over_budget_audited.get(addr, -math.inf) >= self._OVER_BUDGET_AUDIT_S:
            if len(self._over_budget_audited) > 10_000:
                self._over_budget_audited.clear()
            self._over_budget_audited[addr] = now
            await self._audit(
                scope, headers, "failure_budget", description + " (further refusals for this address are counted)"
            )
        if scope["type"] == "http":
            await _refuse(
                scope,
                send,
                429,
                "too_many_failed_authentications",
                description,
                [("retry-after", _retry_after(wait))],
                retry_after=wait,
            )

    async def _audit(self, scope: Scope, headers: Headers, reason: str, description: str) -> None:
        peer = self.rt.principals.peer(scope)
        login, name = self.rt.principals.human(peer, headers)
        addr = self.rt.principals.client_address(peer, headers)
        entry = {
            "kind": "http",
            "event": "authentication",
            "method": scope.get("method"),
            "path": scope.get("path"),
            "principal": {"sub": None, "transport": "http", "addr": addr, "human": login, "human_name": name},
            "decision": "denied",
            "reason": f"{reason}: {description}",
            "outcome": "denied",
            "error": "429 too many failed authentications" if reason == "failure_budget" else "401 unauthenticated",
        }
        if peer.via_proxy:
            entry["via"] = peer.label
        try:
            await anyio.to_thread.run_sync(lambda: self.rt.audit.record(entry, sync=True))
        except AuditError:
            # The request is refused either way; losing this record must not crash the server.
            log.exception("audit write failed for a refused request")


class PrincipalRateLimit:
    """``auth.rate_limit_per_minute`` per principal → 429 + Retry-After."""

    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = scope.get(ACCESS_TOKEN_KEY)
        if access is not None and access.subject:
            # Subjects are identities: "Alice" and "alice" share one budget.
            key, who = f"sub:{str(access.subject).lower()}", str(access.subject)
        else:
            who = self.rt.principals.client_address(self.rt.principals.peer(scope), Headers(scope=scope))
            key = f"addr:{who}"
        try:
            self.rt.rate_limiter.check_key(key, who)
        except RateLimited as exc:
            self.rt.metrics.rate_limited.labels("principal").inc()
            await _refuse(
                scope,
                send,
                429,
                "rate_limited",
                exc.public_message(),
                [("retry-after", _retry_after(exc.retry_after))],
                retry_after=exc.retry_after,
            )
            return
        await self.app(scope, receive, send)


class MetricsScope:
    """``/metrics`` needs a token with the scope of its policy row (``admin``)."""

    def __init__(self, app: ASGIApp, rt: Runtime, enforce: bool) -> None:
        self.app = app
        self.rt = rt
        self.enforce = enforce

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enforce or scope["type"] != "http" or scope["path"] != "/metrics":
            await self.app(scope, receive, send)
            return
        access = scope.get(ACCESS_TOKEN_KEY)
        if access is None or not policy.token_allows(access.scopes, "http", "/metrics"):
            needed = policy.rule("http", "/metrics").scope
            await _refuse(
                scope,
                send,
                403,
                "insufficient_scope",
                f"/metrics needs the {needed} scope.",
                [("www-authenticate", f'Bearer realm="tailops", error="insufficient_scope", scope="{needed}"')],
            )
            return
        await self.app(scope, receive, send)


def build_middleware(rt: Runtime, verifier: TokenVerifier | None = None) -> list[Middleware]:
    """The stack, outermost first (see the module docstring)."""
    return [
        Middleware(RequestMetrics, rt=rt),
        Middleware(HostCheck, settings=transport_security(rt.config), rt=rt),
        Middleware(BearerAuth, rt=rt, verifier=verifier),
        Middleware(PrincipalRateLimit, rt=rt),
        Middleware(MetricsScope, rt=rt, enforce=verifier is not None),
    ]
