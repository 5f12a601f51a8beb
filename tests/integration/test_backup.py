"""``tailops backup`` / ``tailops restore`` against a real server under load.

While a real HTTP server answers MCP tool calls (each one audited) and another
thread keeps writing plans into the store, ``tailops backup`` copies store, audit
log (rotated files included) and keys. The copy must be one consistent state: the
restored audit chain verifies with ``tailops audit verify``, every restored plan
reads back whole, and a token minted before the backup still verifies after the
restore. Restore's refusals (newer schema, changed file, foreign path in the
manifest, a data dir with state) each have a test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tailops.audit import AuditLog
from tailops.audit import verify as verify_audit
from tailops.auth.tokens import TokenVerifier, generate_keypair
from tailops.backup import create_backup, restore_backup
from tailops.changes import plans
from tailops.cli.main import app
from tailops.config import Settings, load_config
from tailops.principal import Principal
from tailops.store import Store
from tests.servers import http_server, mcp_http_client, with_port
from tests.testbed.seed import seed_plan

runner = CliRunner()
ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-a")


def write_config(path: Path, data_dir: Path, **extra: Any) -> Path:
    path.write_text(yaml.safe_dump({"server": {"data_dir": str(data_dir)}, **extra}))
    return path


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, Settings]:
    cfg = write_config(tmp_path / "source.yaml", tmp_path / "src-data", audit={"rotate_bytes": 4096})
    settings = load_config(cfg)
    generate_keypair(settings.private_key_path, settings.public_key_path)
    return cfg, settings


@pytest.fixture
def target(tmp_path: Path) -> tuple[Path, Settings]:
    cfg = write_config(tmp_path / "target.yaml", tmp_path / "dst-data")
    return cfg, load_config(cfg)


def test_backup_while_the_server_works_restores_a_consistent_state(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings]
) -> None:
    src_cfg, src = source
    dst_cfg, dst = target
    stop = threading.Event()
    calls = [0]
    written: list[str] = []
    errors: list[BaseException] = []
    with http_server(src) as srv:
        token = srv.mint("alice", "readonly")
        port = srv.settings.server.port

        def call_tools() -> None:
            async def loop() -> None:
                async with mcp_http_client(srv.url, token) as client:
                    while not stop.is_set():
                        result = await client.call_tool("health_check", {})
                        assert not result.is_error
                        calls[0] += 1

            try:
                asyncio.run(loop())
            except BaseException as exc:
                errors.append(exc)

        def write_plans() -> None:
            try:
                n = 0
                while not stop.is_set():
                    written.append(seed_plan(src.db_path, ALICE, message=f"load {n}").id)
                    n += 1
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=call_tools), threading.Thread(target=write_plans)]
        for w in workers:
            w.start()
        try:
            deadline = time.monotonic() + 60
            while (calls[0] < 20 or len(written) < 20) and time.monotonic() < deadline and not errors:
                time.sleep(0.05)
            before = len(written)
            result = cli("backup", str(tmp_path / "bk"), "--config", str(src_cfg))
            during = (calls[0], len(written))
            time.sleep(0.3)  # the load keeps going after the backup
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=30)
        assert not errors, errors
        assert result.exit_code == 0, result.output
        assert calls[0] > during[0] and len(written) > during[1], "the load did not run across the backup"

    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    rotated = [name for name in manifest["files"] if name.startswith("audit/audit.jsonl.") and name[-1].isdigit()]
    assert rotated, "the audit log should have rotated under load (rotate_bytes 4096)"
    assert manifest["files"]["keys/token.key"]["mode"] == "0600"
    assert stat.S_IMODE((tmp_path / "bk" / "keys" / "token.key").stat().st_mode) == 0o600
    assert manifest["audit"]["verified"] is True

    restored = cli("restore", str(tmp_path / "bk"), "--config", str(dst_cfg))
    assert restored.exit_code == 0, restored.output
    assert "audit chain verified" in restored.stdout
    verified = cli("audit", "verify", "--config", str(dst_cfg))
    assert verified.exit_code == 0 and verified.stdout.startswith("OK: "), verified.output

    store = Store(dst.db_path)
    try:
        got = {p.id for p in plans.list_plans(store, limit=100_000)[0]}
        for plan_id in got:
            assert plans.get_plan(store, plan_id).hosts[0].tasks[0].diff  # whole rows, readable
        # A consistent snapshot: a prefix of what the writer stored, at least what it had when the
        # backup started and at most what it had when the backup ended.
        assert got == set(written[: len(got)]) and before <= len(got) <= during[1]
        # The token minted before the backup verifies with the restored key (for the same server URL).
        verifier = TokenVerifier.from_config(with_port(dst, port), store)
        assert verifier.verify_claims(token)["sub"] == "alice"
    finally:
        store.close()
    assert (dst.private_key_path.stat().st_mode & 0o777) == 0o600
    assert (dst.public_key_path.stat().st_mode & 0o777) == 0o644
    tail = cli("audit", "tail", "-n", "1", "--json", "--config", str(dst_cfg))
    assert json.loads(tail.stdout)["command"] == "restore"  # the restore continues the chain


def test_restore_refuses_a_data_dir_with_state_unless_forced(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings]
) -> None:
    src_cfg, src = source
    dst_cfg, dst = target
    seed_plan(src.db_path, ALICE, message="from the backup")
    assert cli("backup", str(tmp_path / "bk"), "--config", str(src_cfg)).exit_code == 0
    generate_keypair(dst.private_key_path, dst.public_key_path)
    mine = seed_plan(dst.db_path, ALICE, message="already here")
    old_pub = dst.public_key_path.read_bytes()

    refused = cli("restore", str(tmp_path / "bk"), "--config", str(dst_cfg))
    assert refused.exit_code == 2
    assert "already holds tailops state" in one_error(refused)
    assert dst.public_key_path.read_bytes() == old_pub  # nothing touched

    forced = cli("restore", str(tmp_path / "bk"), "--force", "--config", str(dst_cfg))
    assert forced.exit_code == 0, forced.output
    aside = next(dst.server.data_dir.glob("replaced-*"))
    assert (aside / "keys" / "token.pub").read_bytes() == old_pub  # moved aside, not deleted
    old_store = Store(aside / "tailops.db")
    try:
        assert plans.get_plan(old_store, mine.id).params == {"message": "already here"}
    finally:
        old_store.close()
    assert dst.public_key_path.read_bytes() == src.public_key_path.read_bytes()


def _backup(tmp_path: Path, src: Settings) -> Path:
    seed_plan(src.db_path, ALICE)
    return create_backup(src, tmp_path / "bk").path


def test_restore_refuses_a_changed_file(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings]
) -> None:
    bk = _backup(tmp_path, source[1])
    with (bk / "tailops.db").open("r+b") as fh:
        fh.seek(200)
        fh.write(b"X")
    result = cli("restore", str(bk), "--config", str(target[0]))
    assert result.exit_code == 2
    assert "tailops.db does not match its SHA-256" in one_error(result)
    assert not target[1].db_path.exists()


def test_restore_refuses_a_newer_schema(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings]
) -> None:
    bk = _backup(tmp_path, source[1])
    manifest = json.loads((bk / "manifest.json").read_text())
    conn = sqlite3.connect(bk / "tailops.db")
    conn.execute("INSERT INTO schema_migrations(version, name) VALUES (999, 'from_the_future')")
    conn.commit()
    conn.close()
    manifest["schema_version"] = 999
    manifest["files"]["tailops.db"]["size"] = (bk / "tailops.db").stat().st_size
    manifest["files"]["tailops.db"]["sha256"] = hashlib.sha256((bk / "tailops.db").read_bytes()).hexdigest()
    (bk / "manifest.json").write_text(json.dumps(manifest))
    result = cli("restore", str(bk), "--config", str(target[0]))
    assert result.exit_code == 2
    assert "schema version 999, newer than this tailops understands" in one_error(result)
    assert not target[1].db_path.exists()


@pytest.mark.parametrize(
    "name",
    ["../../escape.pub", "keys/../../etc/passwd", "/etc/passwd", "runs/x", "keys/previous-keys/nothex.pub"],
)
def test_restore_refuses_a_manifest_naming_foreign_paths(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings], name: str
) -> None:
    bk = _backup(tmp_path, source[1])
    manifest = json.loads((bk / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": "0" * 64, "size": 0, "mode": "0644"}
    (bk / "manifest.json").write_text(json.dumps(manifest))
    result = cli("restore", str(bk), "--config", str(target[0]))
    assert result.exit_code == 2
    assert "not part of a tailops backup" in one_error(result)
    assert not (tmp_path / "escape.pub").exists()
    assert not target[1].server.data_dir.exists()


def test_bad_inputs_are_one_line_errors(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings]
) -> None:
    src_cfg, src = source
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    # No store yet: nothing to back up (and no directory created for it).
    result = cli("backup", str(tmp_path / "new"), "--config", str(src_cfg))
    assert result.exit_code == 2 and "no store at" in one_error(result)
    assert not (tmp_path / "new").exists()
    seed_plan(src.db_path, ALICE)
    result = cli("backup", str(tmp_path / "full"), "--config", str(src_cfg))
    assert result.exit_code == 2 and "is not empty" in one_error(result)
    (tmp_path / "file").write_text("x")
    result = cli("backup", str(tmp_path / "file"), "--config", str(src_cfg))
    assert result.exit_code == 2 and "not a directory" in one_error(result)
    # Not a backup / an unfinished one.
    result = cli("restore", str(tmp_path / "full"), "--config", str(target[0]))
    assert result.exit_code == 2 and "no manifest.json" in one_error(result)
    result = cli("restore", str(tmp_path / "missing"), "--config", str(target[0]))
    assert result.exit_code == 2 and "does not exist" in one_error(result)
    # Every attempt is in the source's audit log, refused ones included.
    records = [json.loads(x) for x in src.audit_path.read_text().splitlines()]
    assert [r["outcome"] for r in records if r.get("command") == "backup"] == ["error"] * 3


def test_backup_without_a_private_key_and_with_previous_keys(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings]
) -> None:
    _, src = source
    dst_cfg, dst = target
    src.previous_keys_dir.mkdir(mode=0o700)
    prev = src.previous_keys_dir / ("0123456789abcdef.pub")
    shutil.copy(src.public_key_path, prev)
    os.chmod(prev, 0o644)
    src.private_key_path.unlink()
    bk = _backup(tmp_path, src)
    assert not (bk / "keys" / "token.key").exists()
    assert restore_backup(dst, bk).files == len(json.loads((bk / "manifest.json").read_text())["files"])
    assert not dst.private_key_path.exists()
    assert (dst.previous_keys_dir / prev.name).read_bytes() == prev.read_bytes()
    assert verify_audit(dst.audit_path).ok
    assert cli("audit", "verify", "--config", str(dst_cfg)).exit_code == 0


def test_a_backup_from_an_older_schema_is_migrated_on_restore(
    tmp_path: Path, source: tuple[Path, Settings], target: tuple[Path, Settings]
) -> None:
    from tests.unit.test_upgrades import LATEST, MIGRATIONS, build_at

    src_cfg, src = source
    old = MIGRATIONS[1].version  # tokens exist, the change tables do not yet
    src.server.data_dir.mkdir(parents=True, exist_ok=True)
    build_at(src.db_path, old)
    assert cli("backup", str(tmp_path / "bk"), "--config", str(src_cfg)).exit_code == 0
    assert json.loads((tmp_path / "bk" / "manifest.json").read_text())["schema_version"] == old
    result = cli("restore", str(tmp_path / "bk"), "--config", str(target[0]))
    assert result.exit_code == 0, result.output
    assert f"store schema v{old} (migrated to v{LATEST})" in result.stdout
    store = Store(target[1].db_path)
    try:
        assert store.schema_version() == LATEST
        assert {t["jti"] for t in store.query("SELECT jti FROM tokens")} >= {"seeded-active", "seeded-revoked"}
        assert plans.list_plans(store)[1] == 0  # the change tables exist now, empty
    finally:
        store.close()


def test_the_audit_copy_waits_for_a_writer_holding_the_log(tmp_path: Path, source: tuple[Path, Settings]) -> None:
    """A writer appends under the log's exclusive flock; the copy takes it shared, so it
    cannot read the files between a writer's append and its head update."""
    import fcntl

    _, src = source
    seed_plan(src.db_path, ALICE)
    audit = AuditLog(src.audit_path)
    audit.record({"kind": "cli", "command": "x"})
    lock_fd = os.open(src.audit_path.with_name("audit.jsonl.lock"), os.O_RDWR)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a writer in the middle of an append
    done = threading.Event()

    def back_up() -> None:
        create_backup(src, tmp_path / "bk")
        done.set()

    worker = threading.Thread(target=back_up)
    worker.start()
    try:
        assert not done.wait(1.0), "the backup copied the audit log while a writer held it"
        audit.close()
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
    assert done.wait(30)
    worker.join()
    assert verify_audit(tmp_path / "bk" / "audit" / "audit.jsonl").entries == 1
