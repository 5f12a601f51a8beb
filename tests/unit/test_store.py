"""The SQLite store: WAL, foreign keys, migrations, one writer."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from tailops import store as store_mod
from tailops.errors import StoreError
from tailops.store import Migration, Store, load_migrations


def test_opens_in_wal_with_foreign_keys_and_private_mode(tmp_path: Path) -> None:
    s = Store(tmp_path / "db" / "t.db")
    assert s.query_one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
    assert s.query_one("PRAGMA foreign_keys")[0] == 1  # type: ignore[index]
    assert s.query_one("PRAGMA busy_timeout")[0] == 5000  # type: ignore[index]
    assert stat.S_IMODE((tmp_path / "db" / "t.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o700
    s.close()


def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    s = Store(path)
    versions = [r["version"] for r in s.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in load_migrations()]
    instance = s.query_one("SELECT value FROM meta WHERE key='instance_id'")
    s.close()
    again = Store(path)  # reopening applies nothing twice
    assert again.schema_version() == versions[-1]
    assert again.query_one("SELECT value FROM meta WHERE key='instance_id'")["value"] == instance["value"]  # type: ignore[index]
    again.close()


def test_refuses_a_database_newer_than_the_code(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations(version, name) VALUES (999, 'future')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 999, newer than"):
        Store(path)


def test_failed_migration_rolls_back_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = load_migrations()
    bad = [*good, Migration(len(good) + 1, "broken", "CREATE TABLE half(x INTEGER);\nINSERT INTO nope VALUES (1);")]
    monkeypatch.setattr(store_mod, "load_migrations", lambda: bad)
    with pytest.raises(StoreError, match="migrating the store"):
        Store(tmp_path / "t.db")
    monkeypatch.setattr(store_mod, "load_migrations", lambda: good)
    s = Store(tmp_path / "t.db")
    assert s.query_one("SELECT name FROM sqlite_master WHERE name='half'") is None
    assert s.schema_version() == good[-1].version
    s.close()


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    s = Store(tmp_path / "t.db")
    with pytest.raises(StoreError), s.transaction() as conn:
        conn.execute("INSERT INTO meta(key, value) VALUES ('k1', 'v')")
        conn.execute("INSERT INTO meta(key, value) VALUES ('k1', 'dup')")
    assert s.query_one("SELECT 1 FROM meta WHERE key='k1'") is None
    s.close()


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    s = Store(tmp_path / "t.db")

    def writer(n: int) -> None:
        for i in range(50):
            s.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"w{n}-{i}", "x"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.query_one("SELECT COUNT(*) FROM meta WHERE key LIKE 'w%'")[0] == 300  # type: ignore[index]
    s.close()


def test_bad_query_is_a_store_error_not_sqlite(tmp_path: Path) -> None:
    s = Store(tmp_path / "t.db")
    with pytest.raises(StoreError, match="store query failed"):
        s.query("SELECT * FROM no_such_table")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.query("SELECT 1")


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(blocker / "t.db")


def test_packaged_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
