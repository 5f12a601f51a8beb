"""Pinning: the content hash of a playbook, the lock file that pins it, and drift against it.

Why it exists: a plan is made and applied only from reviewed content (DESIGN.md, "The
change lifecycle"). ``playbooks/catalog.lock.json`` pins each playbook's version and the
SHA-256 over its folder, every file of every role it uses (transitively) and the versions
of the collections it uses; :func:`drift_of` names how content and pin differ, and
:func:`relock` writes new pins only where the version says the content was meant to change.

What it must never do: import ``ansible_runner`` or ansible itself (collection versions
are read from the installed collections' ``MANIFEST.json`` as plain JSON), follow a
symlink into a pin, let machine-specific facts (mtimes, absolute paths) into a hash, or
re-pin changed content under an unchanged version unless forced.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tailops.changes.catalog.manifest import Manifest, parse_semver
from tailops.errors import CatalogError

__all__ = [
    "HASH_FORMAT",
    "LOCK_FILE",
    "Drift",
    "DriftKind",
    "LockEntry",
    "Pinnable",
    "collection_versions",
    "compute_hash",
    "drift_of",
    "installed_collections_root",
    "read_lock",
    "relock",
    "verify",
    "write_lock",
]

LOCK_FILE = "catalog.lock.json"
# First line of the hashed listing: a change of the listing format is a change of every hash.
HASH_FORMAT = "tailops-catalog-sha256 v1"

# Never part of a pin: test scenarios and caches (they do not run on a host).
_SKIP_DIRS = frozenset({"molecule", "__pycache__", ".ansible", ".cache", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo", ".retry")


class Pinnable(Protocol):
    """What a pin covers (a :class:`~tailops.changes.catalog.entry.CatalogEntry` is one).

    A protocol, so that the entry, which hashes itself, and pinning need not import each other.
    """

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def manifest(self) -> Manifest: ...
    @property
    def directory(self) -> Path: ...
    @property
    def role_dirs(self) -> tuple[Path, ...]: ...
    @property
    def collections_root(self) -> Path | None: ...


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


def installed_collections_root() -> Path | None:
    """The ``ansible_collections`` folder the ``ansible`` distribution installed (None without it).

    The lock pins these collections' versions, so the runner must load exactly these
    (:func:`tailops.changes.runner.build_env`), wherever ``ansible`` is installed.
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


def _listing(entry: Pinnable, collections: Mapping[str, str]) -> str:
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


def compute_hash(entry: Pinnable, *, collections: Mapping[str, str] | None = None) -> str:
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


def read_lock(path: Path) -> dict[str, LockEntry]:
    """The pins in the lock file at ``path`` (none when it does not exist yet)."""
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


def write_lock(path: Path, pins: Mapping[str, LockEntry]) -> None:
    """Replace the lock file at ``path`` with ``pins`` in one rename (sorted, reviewable JSON)."""
    text = json.dumps({name: pins[name].model_dump(mode="json") for name in sorted(pins)}, indent=2, sort_keys=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def drift_of(entry: Pinnable, pin: LockEntry | None) -> Drift | None:
    """How ``entry`` on disk differs from its ``pin`` (None: it matches)."""
    name, version = entry.name, entry.version
    if pin is None:
        return Drift(
            name,
            DriftKind.NOT_LOCKED,
            f"{name} {version} is not in {LOCK_FILE}: run `tailops playbooks lock` to pin it.",
        )
    try:
        installed = collection_versions(entry.manifest.collections, entry.collections_root)
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
    changed_collections = {c: (pin.collections.get(c), v) for c, v in installed.items() if pin.collections.get(c) != v}
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


def verify(entries: Iterable[Pinnable], lock: Mapping[str, LockEntry]) -> list[Drift]:
    """Every difference between ``entries`` on disk and the ``lock`` pins (empty = OK)."""
    drifts: list[Drift] = []
    names: set[str] = set()
    for entry in entries:
        names.add(entry.name)
        drift = drift_of(entry, lock.get(entry.name))
        if drift is not None:
            drifts.append(drift)
    for name in sorted(set(lock) - names):
        drifts.append(
            Drift(
                name,
                DriftKind.NOT_IN_CATALOG,
                f"{name} is pinned in {LOCK_FILE} but has no playbook folder: restore "
                f"playbooks/{name}/ or run `tailops playbooks lock` to drop the pin.",
            )
        )
    return drifts


def relock(
    entries: Iterable[Pinnable], lock: Mapping[str, LockEntry], *, force: bool = False
) -> tuple[dict[str, LockEntry], list[str]]:
    """New pins for ``entries`` and one line per change against ``lock``.

    Refuses (CatalogError) to re-pin a playbook whose content changed while its
    version did not, or whose version went down, unless ``force``.
    """
    new: dict[str, LockEntry] = {}
    changes: list[str] = []
    refused: list[str] = []
    for entry in entries:
        installed = collection_versions(entry.manifest.collections, entry.collections_root)
        digest = compute_hash(entry, collections=installed)
        pin = lock.get(entry.name)
        new[entry.name] = LockEntry(version=entry.version, sha256=digest, collections=installed)
        if pin is None:
            changes.append(f"pinned {entry.name} {entry.version}")
            continue
        if pin.sha256 == digest and pin.version == entry.version:
            continue
        drift = drift_of(entry, pin)
        if drift is not None and drift.kind is DriftKind.CONTENT_CHANGED and not force:
            refused.append(drift.message)
            continue
        if entry.manifest.semver < parse_semver(pin.version) and not force:
            refused.append(f"{entry.name}: version {entry.version} is lower than the pinned {pin.version}.")
            continue
        changes.append(f"re-pinned {entry.name} {pin.version} -> {entry.version}")
    for name in sorted(set(lock) - set(new)):
        changes.append(f"dropped {name} (no playbook folder)")
    if refused:
        raise CatalogError(
            "lock refused: " + " ".join(refused),
            hint="Bump the version in the manifest (or pass --force for a reviewed, deliberate edit).",
        )
    return new, changes
