"""The manifest model: what ``playbooks/<name>/manifest.yml`` may say, checked strictly.

Why it exists: a manifest is the reviewed promise about a playbook (its parameters as JSON
Schema, risk, scope, target, batch defaults, the roles and collections it uses, what check
mode cannot simulate). The model refuses unknown keys, a version that is not semantic, a
parameter schema that is not valid Draft 2020-12, lets extra parameters through or names
an unknown format, and parameter names Ansible or tailops reserve.

What it must never do: read files or scan the playbook (that is
:mod:`~tailops.changes.catalog.scanning`, which also holds the manifest to what the
playbook really uses), or accept a field it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

import semver
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tailops.changes.catalog.formats import PARAM_FORMATS, schema_validator
from tailops.config import Scope

__all__ = ["Manifest", "parse_semver"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PARAM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_RESERVED_PARAM_PREFIXES = ("ansible_", "tailops_")


def parse_semver(value: str) -> semver.Version:
    """``value`` as a semantic version (ValueError otherwise)."""
    return semver.Version.parse(value)


class Manifest(BaseModel):
    """``playbooks/<name>/manifest.yml``: what a playbook is, needs and risks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Playbook name; equals its folder name.")
    version: str = Field(description="Semantic version; any content change needs a bump.")
    description: str = Field(min_length=1, description="One paragraph: what the playbook does.")
    parameters: dict[str, Any] = Field(description="JSON Schema (Draft 2020-12) of the parameters.")
    target: str = Field(min_length=1, description="Host pattern the plays run against (`hosts:`).")
    risk: Literal["low", "high", "critical"] = Field(description="Risk class; drives the approval policy.")
    risk_reason: str = Field("", description="Why this risk class was chosen.")
    scope: Scope = Field(description="Scope needed to plan and apply this playbook.")
    not_simulated: list[str] = Field(
        default_factory=list,
        description="Names of tasks check mode cannot simulate (skipped or run for real).",
    )
    check_mode_notes: str = Field("", description="What a check run can and cannot predict.")
    check_mode_side_effects: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Task name -> what it may change on a host DURING A PLAN: exactly the tasks of the playbook "
            "and its roles that run for real in check mode (`check_mode: false`); checked at load time."
        ),
    )
    serial: int | str = Field("100%", description="Default batch size (hosts or 'N%').")
    max_fail_percentage: int = Field(0, ge=0, le=100, description="Default max failed hosts (%) before stopping.")
    roles: list[str] = Field(default_factory=list, description="Every role the playbook uses, transitively.")
    collections: list[str] = Field(
        default_factory=list, description="Collections the playbook and its roles use (FQCN prefixes)."
    )
    os_families: list[str] = Field(
        default_factory=list, description="OS families the roles have branches for (e.g. Debian, RedHat)."
    )
    notes: str = Field("", description="Anything else a reviewer should know (untested branches, limits).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError("must match ^[a-z][a-z0-9_]*$ (lowercase, digits, underscores)")
        return value

    @field_validator("version")
    @classmethod
    def _version_ok(cls, value: str) -> str:
        try:
            parse_semver(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)") from None
        return value

    @field_validator("serial")
    @classmethod
    def _serial_ok(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("must be at least 1 (or a percentage like '25%')")
            return value
        if not re.fullmatch(r"(100|[1-9][0-9]?)%", value):
            raise ValueError("must be a host count or a percentage between 1% and 100%")
        return value

    @field_validator("collections")
    @classmethod
    def _collections_ok(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", item):
                raise ValueError(f"{item!r} is not a collection name (namespace.name)")
        return value

    @field_validator("parameters")
    @classmethod
    def _schema_ok(cls, value: dict[str, Any]) -> dict[str, Any]:
        from jsonschema.exceptions import SchemaError

        try:
            schema_validator()[0].check_schema(value)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "(top level)"
            raise ValueError(f"not a valid JSON Schema (Draft 2020-12) at {where}: {exc.message}") from None
        if value.get("type") != "object":
            raise ValueError('must have "type": "object" at the top level')
        if value.get("additionalProperties") is not False:
            raise ValueError('must set "additionalProperties": false (no parameter may slip through)')
        for name in value.get("properties", {}):
            if not _PARAM_NAME_RE.fullmatch(name) or name.startswith(_RESERVED_PARAM_PREFIXES):
                raise ValueError(
                    f"parameter name {name!r} must match ^[a-z][a-z0-9_]*$ and not start with "
                    "ansible_ or tailops_ (those are reserved)"
                )
        for fmt in _formats_in(value):
            if fmt not in PARAM_FORMATS:
                raise ValueError(f"unknown format {fmt!r} (known: {', '.join(sorted(PARAM_FORMATS))})")
        return value

    @model_validator(mode="after")
    def _lists_unique(self) -> Manifest:
        for label, items in (("roles", self.roles), ("collections", self.collections)):
            if len(set(items)) != len(items):
                raise ValueError(f"{label} lists an entry twice")
        return self

    @property
    def semver(self) -> semver.Version:
        return parse_semver(self.version)


def _formats_in(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        fmt = schema.get("format")
        if isinstance(fmt, str):
            yield fmt
        for value in schema.values():
            yield from _formats_in(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _formats_in(value)
