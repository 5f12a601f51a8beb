"""Scopes: the names, what each one means, and the one check.

Which scope each surface action needs (every tool, resource, HTTP route and review-page
action) is the policy table, :mod:`tailops.auth.policy`; each playbook declares the
scope needed to plan and apply it in its manifest.
``admin`` implies all. There is no default: an undeclared or unknown scope is a
refusal.

The check runs at the boundary before any work; a refusal names the missing scope
and is audited by the caller. This module never grants anything a token does not
carry, and imports nothing above it (tools, runtime, server): it is what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from tailops.config import Scope
from tailops.errors import PermissionDenied

if TYPE_CHECKING:
    from tailops.principal import Principal

__all__ = ["SCOPES", "SCOPE_MEANINGS", "Scope", "require_scope"]

# DESIGN.md "Security model": every surface action and playbook needs one of these.
# The type (tailops.config.Scope, where the settings validate against it: config sits
# below auth/) is the one list; SCOPES is the same names, in this order, as a tuple.
SCOPES: tuple[Scope, ...] = get_args(Scope)

# What holding each scope lets a caller do (docs and `tailops token scopes`).
SCOPE_MEANINGS: dict[Scope, str] = {
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
