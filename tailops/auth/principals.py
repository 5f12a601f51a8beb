"""Resolve the principal of an MCP request from its transport.

HTTP: the verified token (the SDK's auth middleware has already rejected
requests without a valid one) plus, from a trusted proxy only, Tailscale
identity headers. stdio: the local OS user with ``auth.stdio_scopes``.
"""

from __future__ import annotations

import getpass
import ipaddress
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

from tailops.config import Settings
from tailops.principal import Principal

__all__ = ["PrincipalResolver"]


class PrincipalResolver:
    def __init__(self, config: Settings) -> None:
        self._config = config
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        self.stdio = Principal(
            subject=f"local:{user}", scopes=frozenset(config.auth.stdio_scopes), transport="stdio"
        )
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in config.auth.trusted_proxies]

    def is_trusted_proxy(self, addr: str | None) -> bool:
        if not addr or not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def resolve(self, ctx: Any) -> Principal:
        request = _http_request(ctx)
        if request is None:
            return self.stdio
        client_addr = request.client.host if request.client else None
        human_login = human_name = None
        if self.is_trusted_proxy(client_addr):
            human_login = request.headers.get("tailscale-user-login")
            human_name = request.headers.get("tailscale-user-name")
        token = get_access_token()
        if token is None:
            # Only reachable with auth.unsafe_no_auth: everyone is an anonymous reader.
            return Principal(
                subject="anonymous", scopes=frozenset({"readonly"}), transport="http",
                client_addr=client_addr, human_login=human_login, human_name=human_name,
            )
        claims = token.claims or {}
        return Principal(
            subject=token.subject or token.client_id,
            scopes=frozenset(token.scopes),
            transport="http",
            token_id=claims.get("jti"),
            client_addr=client_addr,
            human_login=human_login,
            human_name=human_name,
        )


def _http_request(ctx: Any) -> Any:
    if ctx is None:
        return None
    try:
        return ctx.request_context.request
    except (AttributeError, ValueError):
        return None
