"""The HTTP application: ``/mcp`` (streamable HTTP), ``/health``, ``/metrics``, ``/review``.

Layout (outermost first): the middleware stack of ``tailops.server.middleware``
(metrics → Host/Origin check → failed-auth limit → bearer token → per-principal
rate limit → /metrics scope) → routes. Every route except ``/health`` and the
RFC 9728 metadata needs a valid token (401 + ``WWW-Authenticate`` with
``resource_metadata``); ``/metrics`` needs the ``admin`` scope. ``/mcp`` is the
SDK's streamable HTTP app; its own bearer check reuses our verification.
``/review`` is the plan review page (:mod:`tailops.web.review`; its session
cookie stands in for the bearer header there, ``server.review_page``).

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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tailops.auth.tokens import TokenVerifier
from tailops.runtime import Runtime
from tailops.server.mcp_server import build_mcp
from tailops.server.middleware import build_middleware, resource_metadata_path, transport_security
from tailops.server.protocol import features

__all__ = ["build_app"]

log = logging.getLogger("tailops.server")


def build_app(
    rt: Runtime,
    *,
    extra: Callable[[MCPServer[Any]], None] | None = None,
) -> Starlette:
    """Build the Starlette app for ``rt`` (does not start anything)."""
    token_verifier: TokenVerifier | None = None
    auth = None
    if not rt.config.auth.unsafe_no_auth:
        # Refuses to start on unsafe key file permissions (ConfigError).
        token_verifier = TokenVerifier.from_config(
            rt.config, rt.store, on_failure=lambda reason: rt.metrics.auth_failures.labels(reason).inc()
        )
        auth = AuthSettings(
            issuer_url=rt.config.mcp_url.rsplit("/mcp", 1)[0] or rt.config.mcp_url,
            resource_server_url=rt.config.mcp_url,
            required_scopes=[],
            validate_token_resource=False,
        )
    else:
        log.warning("HTTP authentication is DISABLED (auth.unsafe_no_auth); every caller is an anonymous reader")
    mcp = build_mcp(rt, token_verifier=token_verifier, auth=auth, extra=extra)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=transport_security(rt.config),
        host=rt.config.server.host,
    )

    async def health(request: Request) -> Response:
        report = await rt.run_blocking(_health, rt)
        # Docker down is "degraded" but the server still serves: 200. No store: 503.
        store_ok = report["checks"]["store"]["status"] == "ok"
        return JSONResponse(report, status_code=200 if store_ok else 503)

    async def resource_metadata(request: Request) -> Response:
        # RFC 9728 metadata that names no authorization server: tokens come from
        # `tailops token mint`, and there is no OAuth server to send a client to. (The SDK's
        # own route names this server as one, so clients such as the MCP Inspector start an
        # OAuth flow that cannot work.) `authorization_servers` is optional in RFC 9728.
        from tailops.auth.scopes import SCOPES

        body = {
            "resource": rt.config.mcp_url,
            "scopes_supported": list(SCOPES),
            "bearer_methods_supported": ["header"],
            "resource_name": "tailops",
        }
        return JSONResponse(body, headers={"cache-control": "public, max-age=3600"})

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
            features(mcp).close()
            rt.stop()

    routes: list[Route | Mount] = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if auth is not None:
        routes.append(Route(resource_metadata_path(rt.config), resource_metadata, methods=["GET"]))
    if rt.config.server.review_page:
        from tailops.web.review import build_review

        routes += build_review(rt, token_verifier)
    app = Starlette(
        routes=[*routes, Mount("/", app=mcp_app)],
        lifespan=lifespan,
        middleware=build_middleware(rt, token_verifier),
    )
    app.state.runtime = rt
    app.state.mcp = mcp
    return app


def _health(rt: Runtime) -> dict[str, Any]:
    from tailops.health import health_report

    return health_report(rt).model_dump(mode="json")
