"""Backup and restore of one tailops instance's state, safe while the server runs.

What a backup holds (a directory, written 0700):

- ``tailops.db``: the SQLite store, copied with SQLite's online backup API
  (``sqlite3.Connection.backup``), so a server writing at the same time neither
  blocks for long nor leaves a torn copy;
- ``audit/``: every audit log file (rotated files, the live file) and the ``.head``
  sidecar, copied while holding the log's ``flock`` *shared*: writers take it
  exclusively around each append, so the copy is one consistent chain that
  ``tailops audit verify`` accepts;
- ``keys/``: the token public key, previous public keys still accepted during a
  rotation (``previous-keys/``) and the private key only if it exists here (kept
  0600);
- ``manifest.json``, written last: format, tailops version, store schema version,
  and the SHA-256, size and mode of every file. A directory without a manifest is
  an unfinished backup and restore refuses it.

Restore refuses a backup whose schema is newer than this code, a file whose hash
does not match, and a manifest naming a path outside the layout above. It writes
only into a data dir that holds no state (no store, no audit file, no key) unless
``force`` is given; then the state found there is moved aside into
``DATA_DIR/replaced-<UTC time>/`` rather than deleted. An older schema is migrated
by the normal ``Store`` open afterwards (that is the upgrade path too).

Not in a backup: run artifacts (``runs/``, regenerated diagnostics that can hold
diffs), the generated default inventory, and the config file (it lives outside the
data dir; back it up with the host's config management).

This module must never write into the source data dir during a backup, never
delete state during a restore, and never print key material.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tailops import __version__
from tailops.audit import log_files
from tailops.audit import verify as verify_audit
from tailops.config import Settings
from tailops.errors import ConfigError, InvalidInput, NotFound, StoreError
from tailops.store import Store, load_migrations

__all__ = [
    "BACKUP_FORMAT",
    "BackupResult",
    "RestoreResult",
    "create_backup",
    "read_manifest",
    "restore_backup",
]

BACKUP_FORMAT = "tailops-backup v1"
MANIFEST = "manifest.json"
_DB = "tailops.db"
_CHUNK = 1024 * 1024
_PAGES_PER_STEP = 1024  # lets writers in between steps of the online backup
# Every path a manifest may name (anything else is refused on restore).
_ALLOWED = re.compile(
    r"tailops\.db"
    r"|audit/[A-Za-z0-9._-]{1,200}"
    r"|keys/token\.pub|keys/token\.key"
    r"|keys/previous-keys/[0-9a-f]{16}\.pub"
)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    schema_version: int
    files: int
    bytes: int
    audit_entries: int
    audit_ok: bool
    private_key: bool
    seconds: float


@dataclass(frozen=True)
class RestoreResult:
    data_dir: Path
    schema_version_backup: int
    schema_version_now: int
    files: int
    audit_entries: int
    moved_aside: Path | None
    manifest: dict[str, Any] = field(repr=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _schema_of(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the schema version of {db}: {exc}.") from exc
    return int(row[0])


def latest_schema() -> int:
    migrations = load_migrations()
    return migrations[-1].version if migrations else 0


def _prepare_dest(dest: Path) -> None:
    if dest.is_symlink():
        raise InvalidInput(f"backup destination {dest} is a symlink; give a real directory.")
    if dest.exists():
        if not dest.is_dir():
            raise InvalidInput(f"backup destination {dest} exists and is not a directory.")
        if any(dest.iterdir()):
            raise InvalidInput(
                f"backup destination {dest} is not empty; refusing to mix backups.",
                hint="Give a new directory, e.g. /var/backups/tailops/$(date +%F).",
            )
    try:
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(dest, 0o700)
    except OSError as exc:
        raise InvalidInput(f"cannot create the backup directory {dest}: {exc.strerror}.") from exc


def _backup_store(source: Path, target: Path) -> None:
    """Online backup: a consistent snapshot even while another process writes."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            src.execute("PRAGMA busy_timeout = 30000")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            os.close(fd)
            dst = sqlite3.connect(target)
            try:
                src.backup(dst, pages=_PAGES_PER_STEP)
                # A standalone file: no -wal beside it.
                dst.execute("PRAGMA journal_mode = DELETE")
                ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise StoreError(f"backing up the store {source} failed: {exc}.") from exc
    except OSError as exc:
        raise StoreError(f"cannot write the store copy {target}: {exc.strerror}.") from exc
    if ok != "ok":
        raise StoreError(f"the store copy failed its integrity check ({ok}).")


@contextlib.contextmanager
def _audit_shared_lock(audit_path: Path) -> Iterator[None]:
    """Hold the audit log's lock shared: appends wait, the chain cannot move under us."""
    lock = audit_path.with_name(f"{audit_path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield  # no writer ever ran
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _copy_file(source: Path, target: Path, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        with source.open("rb") as src, os.fdopen(fd, "wb", closefd=False) as out:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(fd)
    finally:
        os.close(fd)


def previous_key_files(settings: Settings) -> list[Path]:
    directory = settings.previous_keys_dir
    try:
        return sorted(p for p in directory.iterdir() if re.fullmatch(r"[0-9a-f]{16}\.pub", p.name) and p.is_file())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot list {directory}: {exc.strerror}.") from exc


def create_backup(settings: Settings, dest: Path) -> BackupResult:
    """Copy store, audit log and keys of ``settings``' instance into the new directory ``dest``."""
    started = time.monotonic()
    dest = dest.absolute()
    if not settings.db_path.is_file():
        raise NotFound(
            f"no store at {settings.db_path}; nothing to back up.",
            hint="Check server.data_dir (tailops config show) or start the server once.",
        )
    if not settings.public_key_path.is_file():
        raise NotFound(f"no token public key at {settings.public_key_path}; nothing to back up for auth.")
    _prepare_dest(dest)
    _backup_store(settings.db_path, dest / _DB)
    audit_path = settings.audit_path
    with _audit_shared_lock(audit_path):
        head = audit_path.with_name(f"{audit_path.name}.head")
        for f in [*log_files(audit_path), *([head] if head.is_file() else [])]:
            _copy_file(f, dest / "audit" / f.name, 0o600)
    report = verify_audit(dest / "audit" / audit_path.name)
    _copy_file(settings.public_key_path, dest / "keys" / "token.pub", 0o644)
    for prev in previous_key_files(settings):
        _copy_file(prev, dest / "keys" / "previous-keys" / prev.name, 0o644)
    has_private = settings.private_key_path.is_file()
    if has_private:
        _copy_file(settings.private_key_path, dest / "keys" / "token.key", 0o600)
    files: dict[str, dict[str, Any]] = {}
    total = 0
    for p in sorted(dest.rglob("*")):
        if p.is_file():
            st = p.stat()
            total += st.st_size
            files[p.relative_to(dest).as_posix()] = {
                "sha256": _sha256(p),
                "size": st.st_size,
                "mode": f"{st.st_mode & 0o777:04o}",
            }
    schema = _schema_of(dest / _DB)
    manifest = {
        "format": BACKUP_FORMAT,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tailops_version": __version__,
        "schema_version": schema,
        "source_data_dir": str(settings.server.data_dir),
        "audit_log_name": audit_path.name,
        "audit": {"entries": report.entries, "head": report.head, "verified": report.ok},
        "files": files,
    }
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest / MANIFEST)
    return BackupResult(
        path=dest,
        schema_version=schema,
        files=len(files),
        bytes=total,
        audit_entries=report.entries,
        audit_ok=report.ok,
        private_key=has_private,
        seconds=time.monotonic() - started,
    )


# -- restore ---------------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest of the backup at ``source``, checked for shape and allowed paths."""
    path = source / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"{source} has no {MANIFEST}: not a tailops backup, or an unfinished one.",
            hint="Give the directory `tailops backup DEST` created.",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{path} cannot be read as JSON: {exc.__class__.__name__}.") from exc
    if not isinstance(data, dict) or data.get("format") != BACKUP_FORMAT:
        raise InvalidInput(f"{path} is not a {BACKUP_FORMAT!r} manifest.")
    schema, files = data.get("schema_version"), data.get("files")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
        raise InvalidInput(f"{path}: schema_version must be a non-negative integer.")
    if not isinstance(files, dict) or _DB not in files or "keys/token.pub" not in files:
        raise InvalidInput(f"{path}: the file list must name {_DB} and keys/token.pub.")
    log_name = data.get("audit_log_name")
    if not isinstance(log_name, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", log_name):
        raise InvalidInput(f"{path}: audit_log_name is missing or not a plain file name.")
    for name, info in files.items():
        pure = PurePosixPath(name)
        if not _ALLOWED.fullmatch(name) or ".." in pure.parts or pure.is_absolute():
            raise InvalidInput(f"{path} names {name[:80]!r}, which is not part of a tailops backup; refusing.")
        if not (isinstance(info, dict) and isinstance(info.get("sha256"), str) and isinstance(info.get("size"), int)):
            raise InvalidInput(f"{path}: the entry for {name} lacks sha256/size.")
    return data


def _verify_files(source: Path, manifest: dict[str, Any]) -> None:
    for name, info in manifest["files"].items():
        path = source / name
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"backup file {name} is missing (or not a regular file); refusing to restore.")
        if path.stat().st_size != info["size"] or _sha256(path) != info["sha256"]:
            raise InvalidInput(
                f"backup file {name} does not match its SHA-256 in the manifest (changed or damaged); "
                "refusing to restore."
            )


def _targets(settings: Settings, manifest: dict[str, Any]) -> dict[str, Path]:
    """Backup path → where it goes for this configuration."""
    audit_dir = settings.audit_path.parent
    live_name = settings.audit_path.name
    backup_name = str(manifest["audit_log_name"])
    out: dict[str, Path] = {}
    for name in manifest["files"]:
        if name == _DB:
            out[name] = settings.db_path
        elif name == "keys/token.pub":
            out[name] = settings.public_key_path
        elif name == "keys/token.key":
            out[name] = settings.private_key_path
        elif name.startswith("keys/previous-keys/"):
            out[name] = settings.previous_keys_dir / PurePosixPath(name).name
        else:  # audit/<file>: renamed if this config names the log differently
            file_name = PurePosixPath(name).name
            if file_name.startswith(backup_name):
                file_name = live_name + file_name[len(backup_name) :]
            out[name] = audit_dir / file_name
    return out


def existing_state(settings: Settings) -> list[Path]:
    """State files a restore would replace (store, audit files, keys)."""
    found: list[Path] = []
    db = settings.db_path
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if p.exists():
            found.append(p)
    audit_path = settings.audit_path
    found.extend(log_files(audit_path))
    for suffix in ("head", "lock"):
        side = audit_path.with_name(f"{audit_path.name}.{suffix}")
        if side.exists():
            found.append(side)
    for p in (settings.public_key_path, settings.private_key_path):
        if p.exists() or p.is_symlink():
            found.append(p)
    found.extend(previous_key_files(settings))
    return found


def restore_backup(settings: Settings, source: Path, *, force: bool = False) -> RestoreResult:
    """Restore the backup at ``source`` into ``settings``' data dir (see the module doc)."""
    source = source.absolute()
    if not source.is_dir():
        raise NotFound(f"backup directory {source} does not exist.")
    manifest = read_manifest(source)
    latest = latest_schema()
    if manifest["schema_version"] > latest:
        raise InvalidInput(
            f"the backup has store schema version {manifest['schema_version']}, newer than this tailops "
            f"understands ({latest}); refusing to restore.",
            hint=f"Restore it with tailops {manifest.get('tailops_version', '?')} or newer.",
        )
    _verify_files(source, manifest)
    if _schema_of(source / _DB) != manifest["schema_version"]:
        raise InvalidInput("the store in the backup does not have the schema version its manifest states.")
    targets = _targets(settings, manifest)
    present = existing_state(settings)
    moved: Path | None = None
    if present:
        if not force:
            shown = ", ".join(str(p) for p in present[:4]) + (" …" if len(present) > 4 else "")
            raise InvalidInput(
                f"the data dir already holds tailops state ({shown}); refusing to overwrite it.",
                hint="Stop the server, then restore into an empty data dir or pass --force "
                "(the current state is moved to DATA_DIR/replaced-<time>/, not deleted).",
            )
        moved = _move_aside(settings, present)
    for name, target in targets.items():
        mode = 0o600 if name == "keys/token.key" or name.startswith("audit/") or name == _DB else 0o644
        tmp = target.with_name(f".{target.name}.restore")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _copy_file(source / name, tmp, mode)
        if _sha256(tmp) != manifest["files"][name]["sha256"]:
            raise InvalidInput(f"backup file {name} changed while it was restored; run the restore again.")
        os.replace(tmp, target)
    # Opening the store runs the pending migrations: an older backup is upgraded here.
    store = Store(settings.db_path)
    try:
        now_schema = store.schema_version()
    finally:
        store.close()
    report = verify_audit(settings.audit_path)
    if not report.ok and report.problem is not None:
        raise StoreError(f"the restored audit log does not verify: {report.problem.describe()}.")
    return RestoreResult(
        data_dir=settings.server.data_dir,
        schema_version_backup=int(manifest["schema_version"]),
        schema_version_now=now_schema,
        files=len(targets),
        audit_entries=report.entries,
        moved_aside=moved,
        manifest=manifest,
    )


def _move_aside(settings: Settings, present: list[Path]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = settings.server.data_dir / f"replaced-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = settings.server.data_dir / f"replaced-{stamp}-{n}"
    aside.mkdir(parents=True, mode=0o700)
    for p in present:
        try:
            rel = p.relative_to(settings.server.data_dir)
        except ValueError:
            rel = Path("outside") / p.name
        target = aside / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.rename(p, target)
        except OSError as exc:
            raise ConfigError(f"cannot move {p} aside to {target}: {exc.strerror}.") from exc
    return aside
