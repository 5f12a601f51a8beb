"""Execution node tool (group ``changes``): ``list_nodes``, read-only.

Shows the configured execution nodes (address, forks, claims) and, with
``check``, asks each over SSH whether it answers and runs this server's
ansible-core/ansible-runner. A thin adapter over
:mod:`tailops.changes.nodes.health`; it never runs a job on a node.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tailops.changes.nodes.health import NodeHealth, check_nodes, describe_nodes, select_nodes
from tailops.models import ListResult
from tailops.tools.registry import ToolCall, tool

__all__ = ["NodeList"]


class NodeList(ListResult):
    nodes: list[NodeHealth]


@tool(group="changes", list_field="nodes", projectable=False, title="List execution nodes")
async def list_nodes(
    call: ToolCall,
    check: Annotated[
        bool, Field(description="Also ask each node over SSH for its versions (slower; health columns).")
    ] = False,
    name: Annotated[
        str | None, Field(description="Only this node.", max_length=40, pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    ] = None,
) -> NodeList:
    """Execution nodes that run playbooks for hosts they claim: address, forks (capacity), claimed groups or
    host patterns and, with check, whether each is reachable and runs this server's ansible versions."""
    nodes = select_nodes(call.rt.config.nodes, name)
    rows = await call.rt.run_blocking(check_nodes, nodes) if check else describe_nodes(nodes)
    return NodeList(nodes=rows, total=len(rows))
