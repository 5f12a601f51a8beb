"""A caller's playbook parameters, checked against the manifest's schema before anything runs.

Why it exists: the parameters of a plan become Ansible extra vars, the strongest variables
Ansible knows, so they are held to the manifest's JSON Schema (with the named
:mod:`~tailops.changes.catalog.formats`) and to rules no schema can say: no template
markers, no control characters. A refusal names the parameter and the rule, so an agent
can correct its call.

What it must never do: let a value through that the schema or these rules do not allow,
change the caller's mapping (it works on a deep copy), or echo a long value in full.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tailops.changes.catalog.formats import PARAM_FORMATS, TEMPLATE_MARKERS, schema_validator
from tailops.errors import InvalidInput

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaValidationError

__all__ = ["check_parameters"]


def check_parameters(name: str, schema: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` for playbook ``name`` checked against its parameter ``schema`` and the string rules.

    Returns a deep copy with top-level defaults filled in. Raises InvalidInput
    naming the parameter and the rule; nothing has run at that point.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidInput(f"parameters for {name} must be an object (a mapping of names to values).")
    data = copy.deepcopy(dict(params))
    validator_class, format_checker = schema_validator()
    validator = validator_class(schema, format_checker=format_checker)
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        described = [f"`{_param_path(e.absolute_path)}`: {_describe(e)}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InvalidInput(
            f"invalid parameters for {name}: {'; '.join(described)}{more}.",
            hint=f"See `tailops playbooks show {name}` for the parameter schema.",
        )
    _check_strings(data, [])
    for key, prop in schema.get("properties", {}).items():
        if key not in data and isinstance(prop, dict) and "default" in prop:
            data[key] = copy.deepcopy(prop["default"])
    return data


def _param_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(parameters)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(error: SchemaValidationError) -> str:
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("errorMessage")
    if isinstance(custom, str):
        return custom
    if error.validator == "format" and isinstance(error.validator_value, str):
        fmt = PARAM_FORMATS.get(error.validator_value)
        if fmt is not None:
            return f"{_short(error.instance)} is not a valid {fmt.label} (rule: {fmt.rule})"
    if error.validator == "additionalProperties":
        given = error.instance if isinstance(error.instance, dict) else {}
        extra = sorted(set(given) - set(schema.get("properties", {})))
        allowed = ", ".join(sorted(schema.get("properties", {}))) or "none"
        return f"unknown parameter(s) {', '.join(extra)} (allowed: {allowed})"
    if error.validator == "x-unique-by":
        return error.message
    return error.message


def _check_strings(value: Any, path: list[Any]) -> None:
    """No string parameter may carry template markers or control characters."""
    if isinstance(value, str):
        if any(marker in value for marker in TEMPLATE_MARKERS):
            raise InvalidInput(f"parameter `{_param_path(path)}`: template markers ({{{{, {{%, {{#) are not allowed.")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise InvalidInput(f"parameter `{_param_path(path)}`: control characters are not allowed.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, [*path, index])
