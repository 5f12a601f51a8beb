"""Scopes: what each one means, and the one check.

Each tool declares exactly one scope in its ``@tool`` declaration (the registry is
the one table); each playbook declares the scope needed to plan and apply it.
``admin`` implies all. There is no default: an undeclared or unknown scope is a
refusal.

The check runs at the boundary before any work; a refusal names the missing scope
and is audited by the caller. This module never grants anything a token does not
carry, and imports nothing above it (tools, runtime, server): it is what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tailops.errors import PermissionDenied

if TYPE_CHECKING:
    from tailops.principal import Principal

__all__ = ["SCOPES", "SCOPE_MEANINGS", "require_scope"]

# DESIGN.md "Security model": every tool and playbook declares one of these.
SCOPES: tuple[str, ...] = (
    "readonly",
    "file:read",
    "network:diag",
    "container:write",
    "container:admin",
    "system:admin",
    "changes:approve",
    "admin",
)

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
