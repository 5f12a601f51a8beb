"""Generated documentation: the README's config reference and tool table come
from the code (config model, tool registry), so they cannot drift; a test
compares README.md with :func:`generated_sections`."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tailops.auth import policy
from tailops.auth.scopes import SCOPE_MEANINGS, SCOPES
from tailops.config import config_reference_markdown

if TYPE_CHECKING:
    from tailops.tools.registry import ToolSpec

__all__ = ["generated_sections", "render_scope_table", "render_surface_table", "tools_table_markdown"]


def tools_table_markdown() -> str:
    from tailops.tools.registry import declared_specs

    lines = ["| tool | group | scope | read-only | what it does |", "| --- | --- | --- | --- | --- |"]
    for spec in sorted(declared_specs(), key=lambda s: (s.group, s.name)):
        scope = f"`{spec.scope}`"
        if spec.scope_for is not None:
            # The scope its arguments add, enforced on top (e.g. apply_plan: the plan's playbook scope).
            rule = inspect.getdoc(spec.scope_for)
            if not rule:
                raise ValueError(f"tool {spec.name}: its scope_for needs a docstring saying which scope it adds")
            scope += " " + rule
        elif spec.scope_note:
            scope += " " + spec.scope_note
        lines.append(
            f"| `{spec.name}` | {spec.group} | {scope} | {'yes' if spec.read_only else 'no'} | "
            f"{spec.description.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def generated_sections() -> dict[str, str]:
    return {"config-reference": config_reference_markdown(), "tools-table": tools_table_markdown()}


_SURFACE_TITLES: dict[policy.Surface, str] = {
    "resource": "MCP resource",
    "protocol": "MCP method",
    "http": "HTTP route",
    "review": "review page",
}


def render_surface_table() -> str:
    """Markdown table: every resource, MCP method, HTTP route and review-page action of the
    policy table (:mod:`tailops.auth.policy`) and what it needs."""
    lines = ["| surface | action | needs |", "|---|---|---|"]
    for surface, title in _SURFACE_TITLES.items():
        for action, rule in policy.table(surface).items():
            if rule.open:
                needs = "nothing: served without a token"
            elif rule.scope is None:
                needs = "a valid token"
            else:
                needs = f"`{rule.scope}`"
            if rule.plus:
                needs += f"; {rule.plus}"
            lines.append(f"| {title} | `{action}` | {needs} |")
    return "\n".join(lines) + "\n"


def render_scope_table(specs: Iterable[ToolSpec]) -> str:
    by_scope: dict[str, list[str]] = {s: [] for s in SCOPES}
    for spec in specs:
        # A tool whose arguments add a scope (plan_change: the playbook's) says so.
        extra = spec.scope_for is not None or spec.scope_note is not None
        shown = f"{spec.name}` (+ the playbook's scope)" if extra else f"{spec.name}`"
        by_scope.setdefault(spec.scope, []).append(shown)
    lines = ["| scope | allows | tools that need it |", "|---|---|---|"]
    for scope in SCOPES:
        tools = ", ".join(f"`{n}" for n in sorted(by_scope[scope])) or "—"
        if scope == "admin":
            tools = "every tool (admin implies all scopes)" + (f"; only: {tools}" if by_scope[scope] else "")
        lines.append(f"| `{scope}` | {SCOPE_MEANINGS[scope]} | {tools} |")
    return "\n".join(lines) + "\n"
