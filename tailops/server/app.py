"""The HTTP application: ``/mcp`` (streamable HTTP), ``/health``, ``/metrics``.

Layout (outermost first): request metrics → rate limit / auth-failure limit
(``tailops.server.middleware``) → routes. ``/mcp`` is the SDK's streamable HTTP
app, which enforces Bearer tokens (401 + ``WWW-Authenticate`` with RFC 9728
metadata) through our token verifier; ``/health`` is open; ``/metrics`` needs a
token with the ``admin`` scope unless auth is disabled.

The SDK's session manager is started in *our* lifespan: Starlette never runs a
mounted app's lifespan.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tailops.runtime import Runtime
from tailops.server.mcp_server import build_mcp

__all__ = ["build_app"]

log = logging.getLogger("tailops.server")


def _transport_security(rt: Runtime) -> TransportSecuritySettings:
    """DNS-rebinding protection on by default, for any bind address."""
    cfg = rt.config.server
    port = "*"
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "127.0.0.1", "localhost", "[::1]"]
    if cfg.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):  # noqa: S104
        h = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        hosts += [f"{h}:*", h]
    hosts += list(cfg.allowed_hosts)
    origins = [f"http://{h}" for h in hosts if not h.endswith(":*")]
    origins += [f"http://{h}" for h in hosts if h.endswith(":*")]
    origins += list(cfg.allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def build_app(
    rt: Runtime,
    *,
    extra: Callable[[MCPServer[Any]], None] | None = None,
) -> Starlette:
    """Build the Starlette app for ``rt`` (does not start anything)."""
    token_verifier = None
    auth = None
    if not rt.config.auth.unsafe_no_auth:
        from tailops.auth.tokens import TokenVerifier

        token_verifier = TokenVerifier.from_config(rt)
        auth = AuthSettings(
            issuer_url=rt.config.mcp_url.rsplit("/mcp", 1)[0] or rt.config.mcp_url,  # type: ignore[arg-type]
            resource_server_url=rt.config.mcp_url,  # type: ignore[arg-type]
            required_scopes=[],
            validate_token_resource=False,
        )
    else:
        log.warning("HTTP authentication is DISABLED (auth.unsafe_no_auth); every caller is an anonymous reader")
    mcp = build_mcp(rt, token_verifier=token_verifier, auth=auth, extra=extra)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=_transport_security(rt),
        host=rt.config.server.host,
    )

    async def health(request: Request) -> Response:
        report = await rt.run_blocking(_health, rt)
        # Docker down is "degraded" but the server still serves: 200. No store: 503.
        store_ok = report["checks"]["store"]["status"] == "ok"
        return JSONResponse(report, status_code=200 if store_ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt.start()
        try:
            async with mcp.session_manager.run():
                log.info("serving", extra={"url": rt.config.mcp_url})
                yield
        finally:
            rt.stop()

    from tailops.server.middleware import build_middleware

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Mount("/", app=mcp_app),
        ],
        lifespan=lifespan,
        middleware=build_middleware(rt),
    )
    app.state.runtime = rt
    app.state.mcp = mcp
    return app


def _health(rt: Runtime) -> dict[str, Any]:
    from tailops.health import health_report

    return health_report(rt).model_dump(mode="json")
