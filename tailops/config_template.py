"""The commented config file ``tailops init`` writes, generated from :mod:`tailops.config`.

Why it exists: an operator's first config file should name every section and key with
what it does and its safe default, and it must not go stale when a key is added or a
default changes. So the file is rendered from the pydantic model itself (field
descriptions and defaults), never kept as a hand-written template.

Every key is written commented out (``# key: default``), so the defaults of the installed
version apply until someone decides otherwise; only the values passed as ``values`` (e.g.
``server.data_dir``) are written active. An all-commented section loads as "defaults"
(:func:`tailops.config.load_config` treats an empty section as ``{}``).

What it must never do: write a secret (the config names key *paths* only), or emit a
value that does not load back to the same setting (tests/unit/test_config_template.py
uncomments every line and compares with the defaults).
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel

from tailops.config import Settings
from tailops.durations import format_duration

__all__ = ["render_config"]


def _top_level_lists() -> dict[str, type[BaseModel]]:
    """Settings fields that are lists of sections (e.g. ``nodes``), wrapped in a one-field model so
    :func:`_section` renders them like the lists inside sections."""
    from pydantic import create_model

    out: dict[str, type[BaseModel]] = {}
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        if get_origin(ann) is list:
            out[name] = create_model(f"_{name}", **{name: (ann, field)})  # type: ignore[call-overload]
    return out


_TopLevel = _top_level_lists()

_WIDTH = 96


def _scalar(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix(" ...").strip()


def _default(field: Any) -> Any:
    if field.default_factory is not None:
        return field.default_factory()
    return field.default


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, _WIDTH - len(indent) - 2)] if text else []


def _section(model: type[BaseModel], values: dict[str, Any], indent: str, commented: bool) -> list[str]:
    lines: list[str] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        lines.extend(_comment(field.description or "", indent))
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            # A nested block stays commented as a whole (an empty mapping would not load).
            lines.append(f"{indent}# {name}:")
            lines.extend(_section(ann, {}, indent + "  ", True))
            continue
        item = get_args(ann)[0] if get_origin(ann) is list and get_args(ann) else None
        if isinstance(item, type) and issubclass(item, BaseModel):
            # A list of sections (drift.checks, notifications.endpoints): empty by default; each item's
            # keys are described as `list[].key` lines (documentation, never uncommented into YAML).
            lines.append(f"{indent}# {name}: []")
            for sub, sub_field in item.model_fields.items():
                default = "required" if sub_field.is_required() else f"default {_scalar(_default(sub_field))}"
                text = f"{name}[].{sub} ({default}): {sub_field.description or ''}"
                lines.extend(f"{indent}#   {line}" for line in textwrap.wrap(text, _WIDTH - len(indent) - 4))
            continue
        if name in values:
            lines.append(f"{indent}{name}: {_scalar(values[name])}")
        else:
            prefix = "" if commented else "# "
            lines.append(f"{indent}{prefix}{name}: {_scalar(_default(field))}")
    if commented:
        lines = [line if line.lstrip().startswith("#") else _commented(line) for line in lines]
    return lines


def _commented(line: str) -> str:
    stripped = line.lstrip()
    return f"{line[: len(line) - len(stripped)]}# {stripped}"


def render_config(values: dict[str, dict[str, Any]] | None = None, *, header: str = "") -> str:
    """The whole file: every section and key, commented defaults, ``values`` set actively.

    ``values`` maps section -> key -> value (top-level scalar keys of a section only).
    """
    values = values or {}
    lines = [
        "# tailops configuration.",
        *(f"# {line}" for line in header.splitlines()),
        "# Every key is listed with what it does and its default, commented out: the installed",
        "# version's defaults apply until you uncomment a line. Environment variables",
        "# TAILOPS_<SECTION>__<KEY> override this file. Check it with `tailops config check`.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            # A top-level list of sections (nodes): written like one inside a section.
            lines.extend(_section(_TopLevel[name], {}, "", True) if name in _TopLevel else [])
            lines.append("")
            continue
        unknown = set(values.get(name, {})) - set(model.model_fields)
        if unknown:
            raise KeyError(f"no such key: {name}.{sorted(unknown)[0]}")
        lines.extend(_comment(field.description or "", ""))
        lines.append(f"{name}:")
        lines.extend(_section(model, values.get(name, {}), "  ", False))
        lines.append("")
    return "\n".join(lines)
