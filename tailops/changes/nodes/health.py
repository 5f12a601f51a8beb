"""What ``tailops nodes`` and the ``list_nodes`` tool show: nodes, capacity, health.

Why: before a run goes to a node, an operator (or an agent) wants to know which
nodes are configured, what they claim, how many forks they offer, and whether
each answers and runs the controller's ansible-core/ansible-runner. ``list``
reads only the config; ``check`` asks every node for ``info`` over SSH, in
parallel, each bounded by its own timeout.

It never raises for one bad node (the row says what is wrong) and never shows
key material: only the key's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pydantic import Field

from tailops.changes.nodes.transport import local_versions, node_info, require_same_versions
from tailops.config import NodeSettings
from tailops.errors import NotFound, TailopsError
from tailops.models import Model

__all__ = ["NodeHealth", "check_nodes", "describe_nodes", "select_nodes"]


class NodeHealth(Model):
    name: str = Field(description="Node name (nodes[].name).")
    address: str = Field(description="user@host:port the controller connects to.")
    claims: list[str] = Field(description="Inventory groups or host patterns the node runs.")
    forks: int = Field(description="Ansible forks on the node (its capacity).")
    checked: bool = Field(False, description="True when the node was asked (`check`); false for a config listing.")
    reachable: bool | None = Field(None, description="The node answered `info` over SSH.")
    ansible_core: str | None = Field(None, description="ansible-core the node runs.")
    ansible_runner: str | None = Field(None, description="ansible-runner the node runs.")
    cpu_count: int | None = Field(None, description="CPUs the node reports.")
    healthy: bool | None = Field(None, description="Reachable and running the controller's versions.")
    error: str | None = Field(None, description="Why the node is not healthy.")


def select_nodes(nodes: Sequence[NodeSettings], name: str | None) -> list[NodeSettings]:
    """All nodes, or the one called ``name`` (NotFound names the configured ones)."""
    if name is None:
        return list(nodes)
    for node in nodes:
        if node.name == name:
            return [node]
    known = ", ".join(n.name for n in nodes) or "none"
    raise NotFound(f"No execution node named {name!r} (configured: {known}).", hint="See `tailops nodes list`.")


def _row(node: NodeSettings) -> NodeHealth:
    return NodeHealth(
        name=node.name,
        address=f"{node.user}@{node.host}:{node.port}",
        claims=list(node.claims),
        forks=node.forks,
    )


def describe_nodes(nodes: Sequence[NodeSettings]) -> list[NodeHealth]:
    """The configured nodes, without contacting them."""
    return [_row(n) for n in nodes]


def _check(node: NodeSettings, local: dict[str, str | None]) -> NodeHealth:
    row = _row(node).model_copy(update={"checked": True})
    try:
        info = node_info(node)
    except TailopsError as exc:
        return row.model_copy(update={"reachable": False, "healthy": False, "error": exc.public_message()})
    update: dict[str, object] = {
        "reachable": True,
        "ansible_core": info.ansible_core,
        "ansible_runner": info.ansible_runner,
        "cpu_count": info.cpu_count,
        "healthy": True,
    }
    try:
        require_same_versions(info, local)
    except TailopsError as exc:
        update.update(healthy=False, error=exc.message)
    return row.model_copy(update=update)


def check_nodes(nodes: Sequence[NodeSettings]) -> list[NodeHealth]:
    """Ask every node for ``info`` in parallel (blocking; each call bounded)."""
    if not nodes:
        return []
    local = local_versions()
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        return list(pool.map(lambda n: _check(n, local), nodes))
