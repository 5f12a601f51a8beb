"""Scope checks. Each tool declares exactly one scope (tailops.tools.registry);
each playbook declares the scope needed to plan and apply it. ``admin``
implies all. There is no default: an undeclared scope is a refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tailops.config import SCOPES
from tailops.errors import PermissionDenied

if TYPE_CHECKING:
    from tailops.principal import Principal
    from tailops.tools.registry import ToolSpec

__all__ = ["Authorizer", "require_scope"]


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
