"""The one place that opens tailops' SQLite database.

Tokens, revocations, plans, approvals and runs live here. SQLite runs in WAL
mode with foreign keys on and a busy timeout; all writes go through one
connection guarded by a lock (one writer, as SQLite wants), reads use a
connection per thread so they never wait behind a write.

Schema changes are numbered SQL files in ``tailops/migrations/`` (``0001_*.sql``,
``0002_*.sql``, …), applied in order at open inside a transaction each and
recorded in ``schema_migrations``. A database newer than this code is refused
rather than silently misread.

This module must never log row contents: rows can hold token ids and diffs.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tailops.errors import StoreError

__all__ = ["Migration", "Store", "load_migrations"]

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

Params = Sequence[Any] | dict[str, Any]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged migrations, sorted by version; gaps or duplicates are a bug."""
    found: list[Migration] = []
    for entry in resources.files("tailops.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StoreError(f"migration numbering is broken at {migration.version:04d} (expected {expected:04d}).")
    return found


class Store:
    """SQLite in WAL mode with versioned migrations. Thread-safe."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._writer = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}.") from exc
        self.migrate()

    # -- connections -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        is_new = not self.path.exists()
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # autocommit; transactions are explicit
            check_same_thread=False,
        )
        if is_new:
            os.chmod(self.path, 0o600)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"the store at {self.path} cannot use WAL mode (got {mode}).")
        conn.execute("PRAGMA synchronous = NORMAL")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed.")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store at {self.path}: {exc}.") from exc
            self._local.conn = conn
        return conn

    # -- schema -------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        migrations = load_migrations()
        latest = migrations[-1].version if migrations else 0
        with self._write_lock:
            try:
                self._writer.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                    " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
                )
                row = self._writer.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
                current = int(row[0])
                if current > latest:
                    raise StoreError(
                        f"the store at {self.path} has schema version {current}, newer than this tailops "
                        f"understands ({latest}).",
                        hint="Upgrade tailops or point server.data_dir at another directory.",
                    )
                for migration in migrations:
                    if migration.version <= current:
                        continue
                    self._writer.execute("BEGIN IMMEDIATE")
                    try:
                        for statement in _split_sql(migration.sql):
                            self._writer.execute(statement)
                        self._writer.execute(
                            "INSERT INTO schema_migrations(version, name) VALUES (?, ?)",
                            (migration.version, migration.name),
                        )
                        self._writer.execute("COMMIT")
                    except BaseException:
                        self._writer.execute("ROLLBACK")
                        raise
                return max(current, latest)
            except sqlite3.Error as exc:
                raise StoreError(f"migrating the store at {self.path} failed: {exc}.") from exc

    def schema_version(self) -> int:
        row = self.query_one("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    # -- queries ------------------------------------------------------------
    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store query failed: {exc}.") from exc

    def query_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        try:
            row: sqlite3.Row | None = self._reader().execute(sql, params).fetchone()
            return row
        except sqlite3.Error as exc:
            raise StoreError(f"store query failed: {exc}.") from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return rows changed."""
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction on the writer connection (serialised)."""
        if self._closed:
            raise StoreError("the store is closed.")
        with self._write_lock:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"store is busy or unwritable: {exc}.") from exc
            try:
                yield self._writer
            except sqlite3.Error as exc:
                self._writer.execute("ROLLBACK")
                raise StoreError(f"store write failed: {exc}.") from exc
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            else:
                try:
                    self._writer.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise StoreError(f"store commit failed: {exc}.") from exc

    def check(self) -> None:
        """Raise StoreError unless the database answers a trivial query."""
        self.query_one("SELECT 1")

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement aware)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
