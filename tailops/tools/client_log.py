"""Log messages to MCP clients during a tool call (``notifications/message``).

Why it exists here, beside the tools: a long tool call (an apply) reports as it goes,
and the tool boundary (:class:`tailops.tools.registry.ToolCall`) must reach the
client's log level without depending on the transport layer. ``server/protocol``
installs ``logging/setLevel`` on top of :class:`ClientLogLevels`; everything that
sends a client log goes through :func:`send_client_log`.

It must never send anything below the level a 2025-era connection asked for, nor keep
a connection's level after the connection is gone.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Final

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import LoggingLevel
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from tailops.errors import InvalidInput

__all__ = ["DEFAULT_CLIENT_LOG_LEVEL", "LOG_LEVELS", "ClientLogLevels", "connection_key", "send_client_log"]

# Severity-ascending (RFC 5424), as the MCP LoggingLevel literal declares them.
LOG_LEVELS: Final[tuple[LoggingLevel, ...]] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
DEFAULT_CLIENT_LOG_LEVEL: Final[LoggingLevel] = "info"


def connection_key(session: Any) -> Any | None:
    """An object that lives exactly as long as the client's connection.

    The client's ``initialize`` params are stored once on the connection and
    handed back by every request's session proxy, so they identify the
    connection; ``None`` on 2026-era connections that sent no client info
    (they have no ``logging/setLevel`` or ``resources/subscribe`` anyway).
    """
    return getattr(session, "client_params", None)


# ================================================================== logging


class ClientLogLevels:
    """``logging/setLevel`` per connection (forgotten when the connection goes).

    ``get(session, default)`` keeps the mapping interface the tool registry
    uses; any request's session of the same connection finds the same level.
    """

    def __init__(self) -> None:
        # id(connection key) -> level; the entry is dropped when the key object dies.
        self._levels: dict[int, LoggingLevel] = {}

    def set(self, session: Any, level: LoggingLevel) -> None:
        key = connection_key(session)
        if key is None:
            raise InvalidInput("logging/setLevel needs an initialized connection (client info missing).")
        if id(key) not in self._levels:
            weakref.finalize(key, self._levels.pop, id(key), None)
        self._levels[id(key)] = level

    def get(self, session: Any, default: LoggingLevel = DEFAULT_CLIENT_LOG_LEVEL) -> LoggingLevel:
        key = connection_key(session)
        if key is None:
            return default
        return self._levels.get(id(key), default)

    def wants(self, session: Any, level: LoggingLevel) -> bool:
        """True when ``level`` is at or above the connection's level."""
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.get(session))


async def send_client_log(
    ctx: Context,
    levels: ClientLogLevels,
    level: LoggingLevel,
    data: Any,
    *,
    logger_name: str = "tailops",
) -> bool:
    """Send one ``notifications/message`` on the request in ``ctx``; True if it was sent.

    2025-era connections: sent when ``level`` is at or above the connection's
    ``logging/setLevel`` (default ``info``). 2026-era connections have no
    setLevel: the SDK applies the request's own ``_meta`` log-level opt-in.
    """
    session = ctx.request_context.session
    if session.protocol_version not in MODERN_PROTOCOL_VERSIONS and not levels.wants(session, level):
        return False
    with warnings.catch_warnings():
        # Deliberate: logging is deprecated from 2026-07-28 on (SEP-2577), and
        # 2025-11-25 clients, which tailops serves, rely on it. The warning is
        # raised when the coroutine is created, so nothing awaits in here.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        pending = session.send_log_message(
            level=level, data=data, logger=logger_name, related_request_id=ctx.request_id
        )
    await pending
    return True
