"""Resolve the principal of a request from its transport.

HTTP: the verified token (the transport has already rejected requests without
a valid one) plus, for requests that arrived on the proxy socket only, the
Tailscale identity headers (``Tailscale-User-Login``/``-Name``) and the client
address the proxy forwarded (``X-Forwarded-For``). stdio: the local OS user
with ``auth.stdio_scopes``. CLI: the local OS user, for the audit record only.

Why a socket and not an address: ``tailscale serve`` reaches a backend from
loopback, and so can every other local process, an agent on the same machine
included. Trusting headers from "a peer on 127.0.0.1" let any local process
name the human behind its token, get a real approver refused as "the same
person", or move its failed-login budget onto another address. The proxy socket
(``server.proxy_socket``, created 0600) is reachable only by the tailops user
and root (tailscaled), so a header that arrives there was set by the proxy.

Headers on the TCP listener are ignored, always: a client must never be able to
name the human behind its token, or choose its own address, by sending a header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

from tailops.auth import local_user
from tailops.config import Settings
from tailops.principal import Principal

__all__ = ["Peer", "PrincipalResolver", "clean_header", "local_user"]

_MAX_HEADER = 256
# What the audit log names as the peer of a request that came through the proxy socket.
PROXY_PEER = "proxy-socket"


def clean_header(value: str | None) -> str | None:
    """A header value fit for the audit log: printable, trimmed, capped; None if empty."""
    if value is None:
        return None
    text = "".join(c for c in value if c.isprintable()).strip()[:_MAX_HEADER]
    return text or None


@dataclass(frozen=True)
class Peer:
    """Where a request came from: the TCP peer address, or the proxy socket."""

    addr: str | None
    via_proxy: bool = False

    @property
    def label(self) -> str | None:
        return PROXY_PEER if self.via_proxy else self.addr


class PrincipalResolver:
    def __init__(self, config: Settings) -> None:
        self._config = config
        user = local_user()
        self.stdio = Principal(subject=f"local:{user}", scopes=frozenset(config.auth.stdio_scopes), transport="stdio")
        self.cli = Principal(subject=f"local:{user}", scopes=frozenset(), transport="cli")
        socket = config.server.proxy_socket
        self._proxy_socket = str(socket.absolute()) if socket is not None else None

    def peer(self, scope: Mapping[str, Any]) -> Peer:
        """The peer of an ASGI request. A request is from the proxy socket only when the
        server accepted it on exactly that unix socket (uvicorn reports a unix listener as
        ``server=(path, None)`` and no client address); nothing a client sends changes that."""
        client = scope.get("client")
        server = scope.get("server")
        if (
            self._proxy_socket is not None
            and not client
            and isinstance(server, tuple | list)
            and len(server) >= 1
            and server[0] == self._proxy_socket
        ):
            return Peer(None, via_proxy=True)
        return Peer(str(client[0]) if client else None)

    def client_address(self, peer: Peer, headers: Mapping[str, str]) -> str:
        """The address to hold responsible: the TCP peer, or what the proxy says it forwarded."""
        if peer.via_proxy:
            forwarded = headers.get("x-forwarded-for")
            if forwarded:
                # The proxy appends the address it saw last; earlier entries are client claims.
                last = forwarded.rsplit(",", 1)[-1].strip()
                try:
                    return str(ipaddress.ip_address(last))
                except ValueError:
                    pass
            return PROXY_PEER
        return peer.addr or "unknown"

    def human(self, peer: Peer, headers: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(login, name) from Tailscale headers, only for requests from the proxy socket."""
        if not peer.via_proxy:
            return None, None
        login = clean_header(headers.get("tailscale-user-login"))
        return login, clean_header(headers.get("tailscale-user-name"))

    def resolve(self, ctx: Any) -> Principal:
        request = _http_request(ctx)
        if request is None:
            return self.stdio
        return self.for_http(self.peer(request.scope), request.headers, get_access_token())

    def for_http(self, peer: Peer, headers: Mapping[str, str], token: Any) -> Principal:
        """The principal of an HTTP request from ``peer`` that carried the verified ``token``
        (an SDK ``AccessToken``; None only with ``auth.unsafe_no_auth``)."""
        human_login, human_name = self.human(peer, headers)
        client_addr = self.client_address(peer, headers)
        extra = {"via": PROXY_PEER} if peer.via_proxy else {}
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
