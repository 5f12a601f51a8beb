"""Generated documentation: the README's config reference and tool table come
from the code (config model, tool registry), so they cannot drift; a test
compares README.md with :func:`generated_sections`."""

from __future__ import annotations

import inspect

from tailops.config import config_reference_markdown

__all__ = ["generated_sections", "tools_table_markdown"]


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
        lines.append(
            f"| `{spec.name}` | {spec.group} | {scope} | {'yes' if spec.read_only else 'no'} | "
            f"{spec.description.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def generated_sections() -> dict[str, str]:
    return {"config-reference": config_reference_markdown(), "tools-table": tools_table_markdown()}
