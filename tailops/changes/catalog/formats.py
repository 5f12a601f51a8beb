"""Parameter formats: the named string rules a manifest's schema may use, and the validator.

Why it exists: a playbook parameter reaches Ansible as an extra var, so a manifest can only
say ``"format": "image-reference"`` (or another name here) and never invent its own check;
:data:`PARAM_FORMATS` is the whole list, each with a label and the rule a caller is told
when a value is refused. The protected systemd services live here too: the
``service-name`` format refuses them and ``protected-service-name`` admits only them.

What it must never do: accept a value a rule does not describe, import jsonschema before
a catalog is loaded or parameters are checked (the server starts without it), or execute
or template anything.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PARAM_FORMATS",
    "PROTECTED_SERVICES",
    "TEMPLATE_MARKERS",
    "ParamFormat",
    "is_protected_service",
    "schema_validator",
    "service_unit",
]

# What starts a Jinja expression, statement or comment: never in a role name or a parameter.
TEMPLATE_MARKERS = ("{{", "{%", "{#")


@dataclass(frozen=True)
class ParamFormat:
    """One named format: what a value is (``label``), the ``rule`` a caller is shown, the check."""

    label: str
    rule: str
    check: Callable[[str], bool]


def _regex(pattern: str, max_len: int) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda value: len(value) <= max_len and compiled.fullmatch(value) is not None


# Docker image references (the distribution/reference grammar, IPv6 hosts left out).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]{{1,5}})?"
_REPOSITORY = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
_IMAGE_REF_RE = re.compile(rf"(?P<repo>{_REPOSITORY})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
_IMAGE_REPO_RE = re.compile(_REPOSITORY)


def _image_reference(value: str) -> bool:
    match = _IMAGE_REF_RE.fullmatch(value)
    return len(value) <= 255 and match is not None and bool(match.group("tag") or match.group("digest"))


def _image_repository(value: str) -> bool:
    return len(value) <= 255 and _IMAGE_REPO_RE.fullmatch(value) is not None


# systemd services tailops' ordinary service_state playbook never stops or restarts (a way
# in, tailops itself, the container engine, the system manager's own services). Shell-style
# patterns over the unit's base name. roles/service_state/vars/main.yml holds the same list
# (the role refuses them too, and also checks the unit's real name and aliases on the host);
# tests/unit/changes/catalog/test_formats.py keeps the two equal.
PROTECTED_SERVICES: tuple[str, ...] = (
    "ssh",
    "sshd",
    "ssh@*",
    "sshd@*",
    "tailscaled",
    "tailops",
    "tailops-*",
    "tailops@*",
    "docker",
    "containerd",
    "dbus",
    "dbus-broker",
    "dbus-org.*",
    "systemd-*",
    "getty@*",
    "serial-getty@*",
    "console-getty",
    "container-getty@*",
    "autovt@*",
    "user@*",
    "user-runtime-dir@*",
    "networking",
    "NetworkManager",
    "polkit",
    "emergency",
    "rescue",
)
_UNIT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_.@-]{0,127}")
_OTHER_UNIT_TYPES = (
    "target",
    "socket",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
    "device",
)


def service_unit(value: str) -> str | None:
    """``value`` as a ``.service`` unit name (a name without a suffix means .service, as
    systemctl reads it), or None when it is not a service: another unit type, a template
    without an instance (``name@.service``) or characters systemd does not allow."""
    if not _UNIT_NAME_RE.fullmatch(value):
        return None
    if value.rsplit(".", 1)[-1] in _OTHER_UNIT_TYPES and "." in value:
        return None
    unit = value if value.endswith(".service") else f"{value}.service"
    if unit == ".service" or unit.endswith("@.service"):
        return None
    return unit


def is_protected_service(unit: str) -> bool:
    """True when the ``.service`` unit matches :data:`PROTECTED_SERVICES`."""
    base = unit.removesuffix(".service")
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in PROTECTED_SERVICES)


# Debian policy: [epoch:]upstream[-revision]; upstream starts with a digit.
_DEBIAN_VERSION = r"(?:[0-9]{1,9}:)?[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)*"

PARAM_FORMATS: dict[str, ParamFormat] = {
    "package-name": ParamFormat(
        "package name",
        "^[a-z0-9][a-z0-9+.-]*$ (lowercase letters, digits, '+', '-', '.'; at most 128 characters)",
        _regex(r"[a-z0-9][a-z0-9+.-]*", 128),
    ),
    "package-version": ParamFormat(
        "Debian version string",
        "[epoch:]upstream[-revision], upstream starting with a digit; letters, digits and . + ~ - only",
        _regex(_DEBIAN_VERSION, 128),
    ),
    "container-name": ParamFormat(
        "container name",
        "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ (at most 128 characters)",
        _regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", 128),
    ),
    "image-reference": ParamFormat(
        "image reference",
        "[registry[:port]/]repository:tag or [registry[:port]/]repository@sha256:<64 hex> "
        "(a tag or a digest is required; repository path in lowercase)",
        _image_reference,
    ),
    "image-repository": ParamFormat(
        "image repository",
        "[registry[:port]/]repository in lowercase, without tag or digest",
        _image_repository,
    ),
    "image-tag": ParamFormat(
        "image tag",
        "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        _regex(_TAG, 128),
    ),
    "image-digest": ParamFormat(
        "image digest",
        "sha256:<64 lowercase hex digits>",
        _regex(_DIGEST, 71),
    ),
    "service-name": ParamFormat(
        "systemd service name",
        "NAME or NAME.service, NAME matching ^[A-Za-z0-9][A-Za-z0-9:_.@-]*$ (at most 128 characters); "
        "other unit types (.target, .socket, .mount, .timer, ...) are refused, and so are the protected "
        "services (" + ", ".join(PROTECTED_SERVICES) + "), which only service_state_critical may touch",
        lambda value: (unit := service_unit(value)) is not None and not is_protected_service(unit),
    ),
    "protected-service-name": ParamFormat(
        "protected systemd service name",
        "one of the protected services (" + ", ".join(PROTECTED_SERVICES) + "), as NAME or NAME.service",
        lambda value: (unit := service_unit(value)) is not None and is_protected_service(unit),
    ),
}


def _format_check(check: Callable[[str], bool]) -> Callable[[object], bool]:
    # Formats apply to strings only; "type" reports any other kind of value.
    return lambda value: not isinstance(value, str) or check(value)


def _unique_by(validator: Any, key: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    """``x-unique-by: KEY``: no two objects in the array share the same KEY."""
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    for item in instance:
        if isinstance(item, dict) and key in item:
            value = json.dumps(item[key], sort_keys=True)
            if value in seen:
                yield ValidationError(f"lists {key} {item[key]!r} more than once")
            seen.add(value)


@functools.cache
def schema_validator() -> tuple[Any, Any]:
    """(validator class with ``x-unique-by``, format checker with PARAM_FORMATS).

    Built on first use: the server starts without importing jsonschema (it is
    needed only once a catalog is loaded or parameters are checked).
    """
    import jsonschema.validators
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker(formats=())
    for fmt_name, fmt in PARAM_FORMATS.items():
        checker.checks(fmt_name)(_format_check(fmt.check))
    validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"x-unique-by": _unique_by}
    )
    return validator, checker
