"""Resolve the principal of a request from its transport.

HTTP: the verified token (the transport has already rejected requests without
a valid one) plus, from a trusted proxy only, the Tailscale identity headers
(``Tailscale-User-Login``/``-Name``) and the client address the proxy
forwarded. stdio: the local OS user with ``auth.stdio_scopes``. CLI: the local
OS user, for the audit record only.

Headers from any peer that is not in ``auth.trusted_proxies`` are ignored: a
client must never be able to name the human behind its token, or move its own
failed-authentication budget to another address, by sending a header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

from tailops.auth import local_user
from tailops.config import Settings
from tailops.principal import Principal

__all__ = ["PrincipalResolver", "clean_header", "local_user"]

_MAX_HEADER = 256


def clean_header(value: str | None) -> str | None:
    """A header value fit for the audit log: printable, trimmed, capped; None if empty."""
    if value is None:
        return None
    text = "".join(c for c in value if c.isprintable()).strip()[:_MAX_HEADER]
    return text or None


class PrincipalResolver:
    def __init__(self, config: Settings) -> None:
        self._config = config
        user = local_user()
        self.stdio = Principal(subject=f"local:{user}", scopes=frozenset(config.auth.stdio_scopes), transport="stdio")
        self.cli = Principal(subject=f"local:{user}", scopes=frozenset(), transport="cli")
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in config.auth.trusted_proxies]

    def is_trusted_proxy(self, addr: str | None) -> bool:
        if not addr or not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def client_address(self, peer: str | None, headers: Mapping[str, str]) -> str:
        """The address to hold responsible: the peer, or what a trusted proxy says it forwarded."""
        if peer and self.is_trusted_proxy(peer):
            forwarded = headers.get("x-forwarded-for")
            if forwarded:
                # The proxy appends the address it saw last; earlier entries are client claims.
                last = forwarded.rsplit(",", 1)[-1].strip()
                try:
                    return str(ipaddress.ip_address(last))
                except ValueError:
                    pass
        return peer or "unknown"

    def human(self, peer: str | None, headers: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(login, name) from Tailscale headers, only when ``peer`` is a trusted proxy."""
        if not self.is_trusted_proxy(peer):
            return None, None
        login = clean_header(headers.get("tailscale-user-login"))
        return login, clean_header(headers.get("tailscale-user-name"))

    def resolve(self, ctx: Any) -> Principal:
        request = _http_request(ctx)
        if request is None:
            return self.stdio
        peer = request.client.host if request.client else None
        return self.for_http(peer, request.headers, get_access_token())

    def for_http(self, peer: str | None, headers: Mapping[str, str], token: Any) -> Principal:
        """The principal of an HTTP request from ``peer`` that carried the verified ``token``
        (an SDK ``AccessToken``; None only with ``auth.unsafe_no_auth``)."""
        human_login, human_name = self.human(peer, headers)
        client_addr = self.client_address(peer, headers)
        extra = {"via": peer} if peer and client_addr != peer else {}
        if token is None:
            # Only reachable with auth.unsafe_no_auth: everyone is an anonymous reader.
            return Principal(
                subject="anonymous",
                scopes=frozenset({"readonly"}),
                transport="http",
                client_addr=client_addr,
                human_login=human_login,
                human_name=human_name,
                extra=extra,
            )
        claims = token.claims or {}
        jti = claims.get("jti")
        return Principal(
            subject=token.subject or token.client_id,
            scopes=frozenset(token.scopes),
            transport="http",
            token_id=str(jti) if jti is not None else None,
            client_addr=client_addr,
            human_login=human_login,
            human_name=human_name,
            extra=extra,
        )


def _http_request(ctx: Any) -> Any:
    if ctx is None:
        return None
    try:
        return ctx.request_context.request
    except (AttributeError, ValueError):
        return None
