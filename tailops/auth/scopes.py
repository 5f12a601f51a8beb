"""Scope checks. Each tool declares exactly one scope in its ``@tool``
declaration (the registry is the one table); each playbook declares the scope
needed to plan and apply it. ``admin`` implies all. There is no default: an
undeclared or unknown scope is a refusal.

The check runs in the tool boundary before the tool body; a refusal names the
missing scope and is audited by the caller. This module never grants anything
a token does not carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tailops.config import SCOPES
from tailops.errors import PermissionDenied

if TYPE_CHECKING:
    from tailops.principal import Principal
    from tailops.tools.registry import ToolSpec

__all__ = ["SCOPE_MEANINGS", "Authorizer", "render_scope_table", "require_scope"]

# What holding each scope lets a caller do (docs and `tailops token scopes`).
SCOPE_MEANINGS: dict[str, str] = {
    "readonly": "read host, process, network and container status",
    "file:read": "read/tail/search files under the allowed roots",
    "network:diag": "run network probes (ping, DNS, TCP/HTTP tests, traceroute)",
    "container:write": "change containers through plans: start/stop/restart, image pulls",
    "container:admin": "container administration: updates, and sensitive reads such as a container's env",
    "system:admin": "change the host through plans: package updates/installs, service restarts",
    "changes:approve": "approve someone else's plan (never the requester's own)",
    "admin": "everything above, plus /metrics",
}


def require_scope(principal: Principal, scope: str, what: str) -> None:
    """Raise PermissionDenied unless ``principal`` holds ``scope`` (or admin)."""
    if scope not in SCOPES:
        raise PermissionDenied(f"{what} declares unknown scope {scope!r}; refusing.")
    if principal.has_scope(scope):
        return
    held = " ".join(sorted(principal.scopes)) or "none"
    raise PermissionDenied(
        f"{what} needs scope '{scope}'; {principal.subject} has: {held}.",
        hint="Ask an admin for a token with that scope (tailops token mint --scopes ...).",
    )


class Authorizer:
    def check_tool(self, principal: Principal, spec: ToolSpec) -> None:
        require_scope(principal, spec.scope, f"tool {spec.name}")


def render_scope_table(specs: Iterable[ToolSpec]) -> str:
    """Markdown table: each scope, what it allows, and the tools that need it."""
    by_scope: dict[str, list[str]] = {s: [] for s in SCOPES}
    for spec in specs:
        # A tool whose arguments add a scope (plan_change: the playbook's) says so.
        shown = f"{spec.name}` (+ the playbook's scope)" if spec.scope_for is not None else f"{spec.name}`"
        by_scope.setdefault(spec.scope, []).append(shown)
    lines = ["| scope | allows | tools that need it |", "|---|---|---|"]
    for scope in SCOPES:
        tools = ", ".join(f"`{n}" for n in sorted(by_scope[scope])) or "—"
        if scope == "admin":
            tools = "every tool (admin implies all scopes)" + (f"; only: {tools}" if by_scope[scope] else "")
        lines.append(f"| `{scope}` | {SCOPE_MEANINGS[scope]} | {tools} |")
    return "\n".join(lines) + "\n"
