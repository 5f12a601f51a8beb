"""The vetted playbook catalog: manifests, content pins and parameter checks.

Why it exists: nothing changes a host except a catalog playbook (DESIGN.md, "The
change lifecycle", step 1). This module loads ``playbooks/<name>/manifest.yml``
next to each ``playbook.yml``, checks every manifest strictly (unknown keys,
semantic version, a JSON Schema (Draft 2020-12) that is itself valid, the roles
and collections the playbook really uses), computes the SHA-256 that pins a
playbook's content (its folder, every file of every role it uses, transitively,
and the versions of the collections it uses), compares that with
``playbooks/catalog.lock.json`` and validates a caller's parameters before
anything runs.

What it must never do: import ``ansible_runner`` or ansible itself (only
:mod:`tailops.changes.ansible` runs anything; collection versions are read from
the installed collections' ``MANIFEST.json`` as plain JSON), execute or template
anything from the catalog, or let a parameter through that the manifest's schema
and the semantic rules below do not allow.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import functools
import hashlib
import importlib.metadata
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import semver
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import tailops
from tailops.config import Scope, Settings
from tailops.errors import CatalogError, InvalidInput, NotFound

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaValidationError

__all__ = [
    "HASH_FORMAT",
    "LOCK_FILE",
    "PARAM_FORMATS",
    "PROTECTED_SERVICES",
    "Catalog",
    "CatalogEntry",
    "Drift",
    "DriftKind",
    "LockEntry",
    "Manifest",
    "catalog_dirs",
    "collection_versions",
    "compute_hash",
    "default_catalog_dirs",
    "installed_collections_root",
    "is_protected_service",
    "packaged_catalog_dir",
    "service_unit",
]

LOCK_FILE = "catalog.lock.json"
MANIFEST_FILE = "manifest.yml"
PLAYBOOK_FILE = "playbook.yml"
# First line of the hashed listing: a change of the listing format is a change of every hash.
HASH_FORMAT = "tailops-catalog-sha256 v1"

# Never part of a pin: test scenarios and caches (they do not run on a host).
_SKIP_DIRS = frozenset({"molecule", "__pycache__", ".ansible", ".cache", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo", ".retry")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PARAM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_RESERVED_PARAM_PREFIXES = ("ansible_", "tailops_")
_FQCN_KEY_RE = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+$")
_ROLE_ACTIONS = frozenset(
    f"{prefix}{action}"
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for action in ("include_role", "import_role")
)
_TASK_LIST_KEYS = ("pre_tasks", "tasks", "post_tasks", "handlers")
_BLOCK_KEYS = ("block", "rescue", "always")
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def packaged_catalog_dir() -> Path:
    """Where an installed wheel keeps its copy of the catalog (setup.py's build step writes it)."""
    return Path(tailops.__file__).resolve().parent / "_catalog"


def default_catalog_dirs() -> tuple[Path, Path]:
    """The catalog shipped inside the installed package, else the repository's folders.

    A wheel (pip, pipx, the container image) carries ``tailops/_catalog/{playbooks,roles}``;
    a source checkout or editable install has none, and uses ``playbooks/`` and ``roles/``
    next to the ``tailops`` package.
    """
    packaged = packaged_catalog_dir()
    if (packaged / "playbooks").is_dir():
        return packaged / "playbooks", packaged / "roles"
    root = Path(tailops.__file__).resolve().parent.parent
    return root / "playbooks", root / "roles"


def catalog_dirs(settings: Settings) -> tuple[Path, Path]:
    """``changes.playbooks_dir`` / ``changes.roles_dir``, else the repository defaults."""
    default_playbooks, default_roles = default_catalog_dirs()
    return (
        settings.changes.playbooks_dir or default_playbooks,
        settings.changes.roles_dir or default_roles,
    )


# --------------------------------------------------------------------------- parameter formats


@dataclass(frozen=True)
class _Format:
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
# tests/unit/test_service_names.py keeps the two equal.
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

PARAM_FORMATS: dict[str, _Format] = {
    "package-name": _Format(
        "package name",
        "^[a-z0-9][a-z0-9+.-]*$ (lowercase letters, digits, '+', '-', '.'; at most 128 characters)",
        _regex(r"[a-z0-9][a-z0-9+.-]*", 128),
    ),
    "package-version": _Format(
        "Debian version string",
        "[epoch:]upstream[-revision], upstream starting with a digit; letters, digits and . + ~ - only",
        _regex(_DEBIAN_VERSION, 128),
    ),
    "container-name": _Format(
        "container name",
        "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ (at most 128 characters)",
        _regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", 128),
    ),
    "image-reference": _Format(
        "image reference",
        "[registry[:port]/]repository:tag or [registry[:port]/]repository@sha256:<64 hex> "
        "(a tag or a digest is required; repository path in lowercase)",
        _image_reference,
    ),
    "image-repository": _Format(
        "image repository",
        "[registry[:port]/]repository in lowercase, without tag or digest",
        _image_repository,
    ),
    "image-tag": _Format(
        "image tag",
        "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        _regex(_TAG, 128),
    ),
    "image-digest": _Format(
        "image digest",
        "sha256:<64 lowercase hex digits>",
        _regex(_DIGEST, 71),
    ),
    "service-name": _Format(
        "systemd service name",
        "NAME or NAME.service, NAME matching ^[A-Za-z0-9][A-Za-z0-9:_.@-]*$ (at most 128 characters); "
        "other unit types (.target, .socket, .mount, .timer, ...) are refused, and so are the protected "
        "services (" + ", ".join(PROTECTED_SERVICES) + "), which only service_state_critical may touch",
        lambda value: (unit := service_unit(value)) is not None and not is_protected_service(unit),
    ),
    "protected-service-name": _Format(
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
def _jsonschema() -> tuple[Any, Any]:
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


# --------------------------------------------------------------------------- models


def _semver(value: str) -> semver.Version:
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
            _semver(value)
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
            _jsonschema()[0].check_schema(value)
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
        return _semver(self.version)


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


class LockEntry(BaseModel):
    """One playbook's pin in ``catalog.lock.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    collections: dict[str, str] = Field(default_factory=dict)


class DriftKind(StrEnum):
    CONTENT_CHANGED = "content_changed"  # same version, other content: needs a version bump
    NOT_LOCKED = "not_locked"  # new playbook, no lock entry
    LOCK_OUTDATED = "lock_outdated"  # version bumped, lock not updated yet
    NOT_IN_CATALOG = "not_in_catalog"  # lock entry without a playbook
    COLLECTION_CHANGED = "collection_changed"  # an installed collection has another version
    UNHASHABLE = "unhashable"  # the pin cannot be computed (e.g. collection missing)


@dataclass(frozen=True)
class Drift:
    name: str
    kind: DriftKind
    message: str


@dataclass(frozen=True)
class CatalogEntry:
    """A loaded playbook: its manifest, files, the roles it uses and its pin (if locked)."""

    manifest: Manifest
    directory: Path
    playbook: Path
    role_dirs: tuple[Path, ...]
    collections_root: Path | None = None
    locked: LockEntry | None = None
    _hash_cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def pinned_sha256(self) -> str | None:
        return self.locked.sha256 if self.locked is not None else None

    @property
    def sha256(self) -> str:
        """The current content hash (computed once per loaded entry)."""
        if "current" not in self._hash_cache:
            self._hash_cache["current"] = compute_hash(self)
        return self._hash_cache["current"]

    def extravars(
        self,
        params: Mapping[str, Any],
        *,
        serial: int | str | None = None,
        max_fail_percentage: int | None = None,
    ) -> dict[str, Any]:
        """Validated params plus the play keywords (manifest defaults unless overridden)."""
        out = dict(params)
        out["tailops_serial"] = serial if serial is not None else self.manifest.serial
        out["tailops_max_fail_percentage"] = (
            max_fail_percentage if max_fail_percentage is not None else self.manifest.max_fail_percentage
        )
        return out


# --------------------------------------------------------------------------- hashing


def installed_collections_root() -> Path | None:
    """The ``ansible_collections`` folder the ``ansible`` distribution installed (None without it).

    The lock pins these collections' versions, so the runner must load exactly these
    (:func:`tailops.changes.ansible.environment.build_env`), wherever ``ansible`` is installed.
    """
    try:
        dist = importlib.metadata.distribution("ansible")
    except importlib.metadata.PackageNotFoundError:
        return None
    root = Path(str(dist.locate_file("ansible_collections")))
    return root if root.is_dir() else None


def collection_versions(names: Iterable[str], root: Path | None = None) -> dict[str, str]:
    """Installed version of each collection (``ansible.builtin`` is ansible-core's version).

    Raises CatalogError naming the first collection that is not installed.
    """
    base = root if root is not None else installed_collections_root()
    out: dict[str, str] = {}
    for name in sorted(set(names)):
        if name == "ansible.builtin":
            try:
                out[name] = importlib.metadata.version("ansible-core")
            except importlib.metadata.PackageNotFoundError:
                raise CatalogError(
                    "ansible-core is not installed, so ansible.builtin has no version.",
                    hint="Install the project's dependencies (make venv).",
                ) from None
            continue
        namespace, coll = name.split(".", 1)
        manifest = base / namespace / coll / "MANIFEST.json" if base is not None else None
        if manifest is None or not manifest.is_file():
            raise CatalogError(
                f"collection {name} is not installed (no MANIFEST.json under the ansible package).",
                hint="Install the pinned `ansible` package (make venv).",
            )
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            out[name] = str(data["collection_info"]["version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CatalogError(f"collection {name}: its MANIFEST.json has no readable version.") from exc
    return out


def _files(base: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    if not base.is_dir():
        raise CatalogError(f"{base} is not a directory.")
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.name.endswith(_SKIP_SUFFIXES):
            continue
        if path.is_symlink():
            raise CatalogError(
                f"{prefix}{rel.as_posix()} is a symlink; the catalog holds regular files only.",
                hint="Replace the link with the file itself.",
            )
        if path.is_file():
            yield f"{prefix}{rel.as_posix()}", path
        elif not path.is_dir():
            raise CatalogError(f"{prefix}{rel.as_posix()} is not a regular file.")


def _listing(entry: CatalogEntry, collections: Mapping[str, str]) -> str:
    lines = [HASH_FORMAT]
    for rel, path in _files(entry.directory, ""):
        lines.append(f"playbook {rel} {hashlib.sha256(path.read_bytes()).hexdigest()}")
    role_lines: list[str] = []
    for role_dir in entry.role_dirs:
        for rel, path in _files(role_dir, f"{role_dir.name}/"):
            role_lines.append(f"role {rel} {hashlib.sha256(path.read_bytes()).hexdigest()}")
    lines.extend(sorted(role_lines))
    lines.extend(f"collection {name} {version}" for name, version in sorted(collections.items()))
    return "\n".join(lines) + "\n"


def compute_hash(entry: CatalogEntry, *, collections: Mapping[str, str] | None = None) -> str:
    """SHA-256 over a canonical listing of the entry's files and collection versions.

    The listing holds sorted relative paths with each file's own SHA-256 (no
    mtimes, no absolute paths), then ``collection NAME VERSION`` lines, so the
    same content gives the same hash on every machine. ``collections`` replaces
    the installed versions (used to tell a collection change from a file change).
    """
    versions = (
        dict(collections)
        if collections is not None
        else collection_versions(entry.manifest.collections, entry.collections_root)
    )
    return hashlib.sha256(_listing(entry, versions).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- YAML scanning


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{what}: {path.name} is missing.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{what}: {path.name} cannot be read ({exc.__class__.__name__}).") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CatalogError(f"{what}: {path.name} is not valid YAML{where}.") from exc


def _role_name(item: Any, where: str) -> str:
    name = item if isinstance(item, str) else (item.get("role") or item.get("name")) if isinstance(item, dict) else None
    if not isinstance(name, str) or not name:
        raise CatalogError(f"{where}: a role reference has no name.")
    if any(marker in name for marker in _TEMPLATE_MARKERS) or "/" in name:
        raise CatalogError(f"{where}: role reference {name!r} must be a plain role name (no templates, no paths).")
    return name


def _scan_tasks(tasks: Any, where: str, roles: set[str], collections: set[str]) -> None:
    if not isinstance(tasks, list):
        return
    for task in tasks:
        if not isinstance(task, dict):
            continue
        for key, value in task.items():
            if key in _BLOCK_KEYS:
                _scan_tasks(value, where, roles, collections)
                continue
            if key in _ROLE_ACTIONS:
                args = value if isinstance(value, dict) else {}
                roles.add(_role_name(args.get("name"), where))
            match = _FQCN_KEY_RE.fullmatch(key)
            if match and (match.group(1), match.group(2)) != ("ansible", "legacy"):
                collections.add(f"{match.group(1)}.{match.group(2)}")


def _scan_playbook(data: Any, where: str) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    if not isinstance(data, list) or not data or not all(isinstance(p, dict) for p in data):
        raise CatalogError(f"{where}: must be a non-empty list of plays.")
    roles: set[str] = set()
    collections: set[str] = set()
    for play in data:
        if "import_playbook" in play or "ansible.builtin.import_playbook" in play:
            raise CatalogError(f"{where}: import_playbook is not allowed (one playbook, its roles).")
        for item in play.get("roles") or []:
            roles.add(_role_name(item, where))
        for key in _TASK_LIST_KEYS:
            _scan_tasks(play.get(key), where, roles, collections)
    return data, roles, collections


def _scan_role(role_dir: Path) -> tuple[set[str], set[str]]:
    """Roles a role pulls in (meta dependencies, include/import_role) and collections it uses."""
    where = f"role {role_dir.name}"
    roles: set[str] = set()
    collections: set[str] = set()
    meta = role_dir / "meta" / "main.yml"
    if meta.is_file():
        data = _read_yaml(meta, where) or {}
        if isinstance(data, dict):
            for dep in data.get("dependencies") or []:
                roles.add(_role_name(dep, f"{where} meta/main.yml"))
    for sub in ("tasks", "handlers"):
        folder = role_dir / sub
        if not folder.is_dir():
            continue
        for path in sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")]):
            _scan_tasks(_read_yaml(path, where), where, roles, collections)
    return roles, collections


def _real_in(tasks: Any, where: str, out: set[str]) -> None:
    if not isinstance(tasks, list):
        return
    for task in tasks:
        if not isinstance(task, dict):
            continue
        mode = task.get("check_mode")
        if mode is not None and mode is not True:
            if mode is not False:
                raise CatalogError(
                    f"{where}: task {task.get('name')!r} sets check_mode to {mode!r}; only a literal true or "
                    "false is allowed (a plan must know which tasks run for real)."
                )
            name = task.get("name")
            if not isinstance(name, str) or not name:
                raise CatalogError(f"{where}: a task with check_mode: false needs a name.")
            out.add(name)
        for key in _BLOCK_KEYS:
            _real_in(task.get(key), where, out)


def _tasks_run_for_real(playbook_data: Any, role_dirs: Iterable[Path], what: str) -> set[str]:
    """Names of tasks that run for real in check mode (``check_mode: false``), in the
    playbook's plays and every file under its roles' ``tasks/`` and ``handlers/``."""
    out: set[str] = set()
    for play in playbook_data if isinstance(playbook_data, list) else []:
        if isinstance(play, dict):
            if play.get("check_mode") is not None:
                raise CatalogError(f"{what}: playbook.yml may not set check_mode on a play.")
            for key in _TASK_LIST_KEYS:
                _real_in(play.get(key), f"{what}: playbook.yml", out)
    for role_dir in role_dirs:
        for sub in ("tasks", "handlers"):
            folder = role_dir / sub
            if folder.is_dir():
                for path in sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")]):
                    _real_in(_read_yaml(path, f"role {role_dir.name}"), f"role {role_dir.name}", out)
    return out


# --------------------------------------------------------------------------- the catalog


def _close(name: str, names: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


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
        if any(marker in value for marker in _TEMPLATE_MARKERS):
            raise InvalidInput(f"parameter `{_param_path(path)}`: template markers ({{{{, {{%, {{#) are not allowed.")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise InvalidInput(f"parameter `{_param_path(path)}`: control characters are not allowed.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, [*path, index])


class Catalog:
    """The loaded catalog. Build with :meth:`Catalog.load`."""

    def __init__(
        self,
        playbooks_dir: Path,
        roles_dir: Path,
        entries: dict[str, CatalogEntry],
        lock: dict[str, LockEntry],
        collections_root: Path | None,
    ) -> None:
        self.playbooks_dir = playbooks_dir
        self.roles_dir = roles_dir
        self._entries = entries
        self._lock = lock
        self._collections_root = collections_root

    # ---- loading

    @classmethod
    def load(
        cls,
        playbooks_dir: Path | None = None,
        roles_dir: Path | None = None,
        *,
        collections_root: Path | None = None,
    ) -> Catalog:
        """Load every ``<playbooks_dir>/<name>/manifest.yml`` and the lock file.

        Any problem with a manifest or playbook raises CatalogError naming the
        file and the rule; drift against the lock is not an error here (see
        :meth:`verify`).
        """
        default_playbooks, default_roles = default_catalog_dirs()
        pdir = (playbooks_dir or default_playbooks).absolute()
        rdir = (roles_dir or default_roles).absolute()
        if not pdir.is_dir():
            raise CatalogError(f"playbooks directory {pdir} does not exist.", hint="Set changes.playbooks_dir.")
        lock = cls._read_lock(pdir / LOCK_FILE)
        entries: dict[str, CatalogEntry] = {}
        for folder in sorted(p for p in pdir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            if not (folder / MANIFEST_FILE).is_file():
                continue
            entry = cls._load_entry(folder, rdir, collections_root, lock)
            entries[entry.name] = entry
        return cls(pdir, rdir, entries, lock, collections_root)

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        playbooks_dir, roles_dir = catalog_dirs(settings)
        return cls.load(playbooks_dir, roles_dir)

    @staticmethod
    def _read_lock(path: Path) -> dict[str, LockEntry]:
        if not path.exists():
            return {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CatalogError(f"lock file {path.name} is not valid JSON.", hint="Restore it from git.") from exc
        if not isinstance(raw, dict):
            raise CatalogError(f"lock file {path.name} must map playbook names to pins.")
        out: dict[str, LockEntry] = {}
        for name, value in raw.items():
            try:
                out[name] = LockEntry.model_validate(value)
            except ValidationError as exc:
                raise CatalogError(f"lock file {path.name}: entry {name!r} is malformed.") from exc
        return out

    @staticmethod
    def _load_entry(
        folder: Path, roles_dir: Path, collections_root: Path | None, lock: Mapping[str, LockEntry]
    ) -> CatalogEntry:
        what = f"playbook {folder.name}"
        raw = _read_yaml(folder / MANIFEST_FILE, what)
        if not isinstance(raw, dict):
            raise CatalogError(f"{what}: manifest.yml must be a mapping of fields.")
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
            raise CatalogError(f"{what}: manifest.yml field `{key}`: {msg}{more}.") from None
        if manifest.name != folder.name:
            raise CatalogError(f"{what}: manifest name {manifest.name!r} must equal the folder name.")
        playbook = folder / PLAYBOOK_FILE
        plays, direct_roles, collections = _scan_playbook(_read_yaml(playbook, what), f"{what}: playbook.yml")
        expected_serial = f"{{{{ tailops_serial | default({manifest.serial!r}) }}}}".replace("'", '"')
        expected_fail = f"{{{{ tailops_max_fail_percentage | default({manifest.max_fail_percentage}) }}}}"
        for play in plays:
            if play.get("hosts") != manifest.target:
                raise CatalogError(
                    f"{what}: play hosts {play.get('hosts')!r} must equal the manifest target {manifest.target!r}."
                )
            serial = str(play.get("serial", "")).replace("'", '"')
            if serial != expected_serial or str(play.get("max_fail_percentage", "")) != expected_fail:
                raise CatalogError(
                    f"{what}: each play must set serial: {expected_serial!r} and "
                    f"max_fail_percentage: {expected_fail!r} (the manifest's defaults, overridable per run)."
                )
        # Resolve roles transitively.
        resolved: dict[str, Path] = {}
        pending = sorted(direct_roles)
        while pending:
            role = pending.pop()
            if role in resolved:
                continue
            role_dir = roles_dir / role
            if not role_dir.is_dir():
                raise CatalogError(f"{what}: uses role {role!r}, which is not in {roles_dir}.")
            resolved[role] = role_dir
            deps, role_collections = _scan_role(role_dir)
            collections |= role_collections
            pending.extend(sorted(deps - resolved.keys()))
        if sorted(manifest.roles) != sorted(resolved):
            raise CatalogError(
                f"{what}: manifest roles {sorted(manifest.roles)} must list exactly the roles the playbook "
                f"uses (transitively): {sorted(resolved)}."
            )
        real = _tasks_run_for_real(_read_yaml(playbook, what), resolved.values(), what)
        if sorted(manifest.check_mode_side_effects) != sorted(real):
            raise CatalogError(
                f"{what}: manifest check_mode_side_effects {sorted(manifest.check_mode_side_effects)} must name "
                f"exactly the tasks that run for real in check mode (check_mode: false): {sorted(real)}, each "
                "with what it may change on a host during a plan.",
            )
        if sorted(manifest.collections) != sorted(collections):
            raise CatalogError(
                f"{what}: manifest collections {sorted(manifest.collections)} must list exactly the "
                f"collections its tasks use: {sorted(collections)}."
            )
        return CatalogEntry(
            manifest=manifest,
            directory=folder,
            playbook=playbook,
            role_dirs=tuple(resolved[r] for r in sorted(resolved)),
            collections_root=collections_root,
            locked=lock.get(manifest.name),
        )

    # ---- lookups

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[CatalogEntry]:
        return [self._entries[name] for name in self.names()]

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> CatalogEntry:
        """The entry called ``name``; NotFound (with close names) otherwise."""
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(
                f"no playbook named {name!r} in the catalog.{_close(name, self._entries)}",
                hint="List them with `tailops playbooks list`.",
            )
        return entry

    def require_pinned(self, name: str) -> CatalogEntry:
        """The entry, only if its current content matches its lock pin (CatalogError otherwise)."""
        entry = self.get(name)
        drift = self._drift_of(entry)
        if drift is not None:
            raise CatalogError(drift.message, hint="Plans of this playbook cannot be made or applied until then.")
        return entry

    # ---- parameters

    def validate_params(self, name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check ``params`` against the playbook's schema and semantic rules.

        Returns a deep copy with top-level defaults filled in. Raises InvalidInput
        naming the parameter and the rule; nothing has run at that point.
        """
        entry = self.get(name)
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise InvalidInput(f"parameters for {name} must be an object (a mapping of names to values).")
        data = copy.deepcopy(dict(params))
        schema = entry.manifest.parameters
        validator_class, format_checker = _jsonschema()
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

    # ---- lock and verify

    @property
    def lock_path(self) -> Path:
        return self.playbooks_dir / LOCK_FILE

    def locked(self) -> dict[str, LockEntry]:
        return dict(self._lock)

    def _installed(self, entry: CatalogEntry) -> dict[str, str]:
        return collection_versions(entry.manifest.collections, self._collections_root)

    def _drift_of(self, entry: CatalogEntry) -> Drift | None:
        name, version = entry.name, entry.version
        pin = self._lock.get(name)
        if pin is None:
            return Drift(
                name,
                DriftKind.NOT_LOCKED,
                f"{name} {version} is not in {LOCK_FILE}: run `tailops playbooks lock` to pin it.",
            )
        try:
            installed = self._installed(entry)
            current = compute_hash(entry, collections=installed)
        except CatalogError as exc:
            return Drift(name, DriftKind.UNHASHABLE, f"{name} {version}: {exc.message}")
        if current == pin.sha256 and version == pin.version:
            return None
        if version != pin.version:
            return Drift(
                name,
                DriftKind.LOCK_OUTDATED,
                f"{name}: version is {version} but the lock pins {pin.version}: run `tailops playbooks lock` "
                "to pin the new version.",
            )
        changed_collections = {
            c: (pin.collections.get(c), v) for c, v in installed.items() if pin.collections.get(c) != v
        }
        files_same = compute_hash(entry, collections=pin.collections) == pin.sha256
        if changed_collections and files_same:
            what = ", ".join(f"{c} {old or 'absent'} -> {new}" for c, (old, new) in sorted(changed_collections.items()))
            return Drift(
                name,
                DriftKind.COLLECTION_CHANGED,
                f"{name} {version}: collection version changed ({what}): review the playbook against it, "
                "then run `tailops playbooks lock`.",
            )
        return Drift(
            name,
            DriftKind.CONTENT_CHANGED,
            f"{name} {version}: content changed but the version is still {version} (lock pins "
            f"{pin.sha256[:12]}, now {current[:12]}): an edit requires a version bump in "
            f"playbooks/{name}/manifest.yml, then `tailops playbooks lock`.",
        )

    def verify(self) -> list[Drift]:
        """Every difference between the catalog on disk and the lock file (empty = OK)."""
        drifts: list[Drift] = []
        for entry in self.entries():
            drift = self._drift_of(entry)
            if drift is not None:
                drifts.append(drift)
        for name in sorted(set(self._lock) - set(self._entries)):
            drifts.append(
                Drift(
                    name,
                    DriftKind.NOT_IN_CATALOG,
                    f"{name} is pinned in {LOCK_FILE} but has no playbook folder: restore "
                    f"playbooks/{name}/ or run `tailops playbooks lock` to drop the pin.",
                )
            )
        return drifts

    def lock(self, *, force: bool = False) -> list[str]:
        """Write the lock file from the catalog on disk; returns one line per change.

        Refuses (CatalogError) to re-pin a playbook whose content changed while its
        version did not, or whose version went down, unless ``force``.
        """
        new: dict[str, LockEntry] = {}
        changes: list[str] = []
        refused: list[str] = []
        for entry in self.entries():
            installed = self._installed(entry)
            digest = compute_hash(entry, collections=installed)
            pin = self._lock.get(entry.name)
            new[entry.name] = LockEntry(version=entry.version, sha256=digest, collections=installed)
            if pin is None:
                changes.append(f"pinned {entry.name} {entry.version}")
                continue
            if pin.sha256 == digest and pin.version == entry.version:
                continue
            drift = self._drift_of(entry)
            if drift is not None and drift.kind is DriftKind.CONTENT_CHANGED and not force:
                refused.append(drift.message)
                continue
            if entry.manifest.semver < _semver(pin.version) and not force:
                refused.append(f"{entry.name}: version {entry.version} is lower than the pinned {pin.version}.")
                continue
            changes.append(f"re-pinned {entry.name} {pin.version} -> {entry.version}")
        for name in sorted(set(self._lock) - set(self._entries)):
            changes.append(f"dropped {name} (no playbook folder)")
        if refused:
            raise CatalogError(
                "lock refused: " + " ".join(refused),
                hint="Bump the version in the manifest (or pass --force for a reviewed, deliberate edit).",
            )
        text = json.dumps({name: new[name].model_dump(mode="json") for name in sorted(new)}, indent=2, sort_keys=True)
        tmp = self.lock_path.with_suffix(".json.tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(self.lock_path)
        self._lock = dict(new)
        self._entries = {
            name: CatalogEntry(
                manifest=e.manifest,
                directory=e.directory,
                playbook=e.playbook,
                role_dirs=e.role_dirs,
                collections_root=e.collections_root,
                locked=new.get(name),
            )
            for name, e in self._entries.items()
        }
        return changes
