"""ASGI middleware around the app, one check each (starlette style).

- :class:`RequestMetrics`: counts requests by route class and status.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailops.runtime import Runtime

__all__ = ["RequestMetrics", "build_middleware"]


def _route_class(path: str) -> str:
    if path.startswith("/mcp"):
        return "mcp"
    if path in ("/health", "/metrics"):
        return path[1:]
    if path.startswith("/.well-known/"):
        return "well-known"
    return "other"


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


def build_middleware(rt: Runtime) -> list[Middleware]:
    return [Middleware(RequestMetrics, rt=rt)]
