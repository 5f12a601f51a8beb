"""Build the MCP server (SDK ``MCPServer``) for one runtime.

Chooses which declared tools to expose (enabled groups; ``read_only`` hides
every tool that can lead to a change), binds each through the registry
boundary, and adds the protocol features the SDK leaves to servers:
``logging/setLevel`` (per-session level for log messages sent during long
runs) and ``completion/complete``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus

from tailops import __version__
from tailops.runtime import Runtime
from tailops.server.protocol import LOG_LEVELS
from tailops.server.protocol import install as install_protocol
from tailops.server.tool_schemas import SchemaCache
from tailops.tools.registry import ToolSpec, annotations_for, bind, declared_specs

__all__ = ["LOG_LEVELS", "build_mcp", "exposed_specs"]

log = logging.getLogger("tailops.server")

INSTRUCTIONS = (
    "tailops watches Linux hosts and containers. Reading tools answer directly. "
    "Changes happen only through vetted playbooks: plan a change (dry run with diff), "
    "a different person approves the plan, then apply exactly that plan."
)


def exposed_specs(rt: Runtime) -> list[ToolSpec]:
    groups = set(rt.config.tools.groups)
    return [s for s in declared_specs() if s.group in groups and (s.read_only or not rt.config.server.read_only)]


def build_mcp(
    rt: Runtime,
    *,
    token_verifier: Any = None,
    auth: Any = None,
    extra: Callable[[MCPServer[Any]], None] | None = None,
) -> MCPServer[Any]:
    """The MCP server with every exposed tool bound to ``rt``.

    ``extra`` lets a test register fixture tools/resources/prompts on this
    instance (the conformance suite's ``test_*`` fixtures) without them ever
    being part of the product.
    """
    schemas = SchemaCache.load(rt.config.server.data_dir / "cache" / "tool-schemas.json")
    tools = [
        schemas.tool(
            bind(spec, rt),
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=annotations_for(spec),
            meta={"tailops/group": spec.group, "tailops/scope": spec.scope},
            output_model=spec.output_model,
        )
        for spec in exposed_specs(rt)
    ]
    schemas.save()
    bus = InMemorySubscriptionBus()
    server: MCPServer[Any] = MCPServer(
        "tailops",
        version=__version__,
        instructions=INSTRUCTIONS,
        token_verifier=token_verifier,
        auth=auth,
        log_level=rt.config.server.log_level,
        tools=tools,
        subscriptions=bus,
    )
    install_protocol(server, rt, bus)
    if extra is not None:
        extra(server)
    return server
