"""Backup and restore time (issue 14, day two).

A store with N plans (each with a diff in its prediction), tokens, and an audit
log of M entries across rotated files, as a server leaves them; then
``create_backup`` (SQLite online backup + audit copy under its lock + hashes) and
``restore_backup`` into an empty data dir (hash checks, store open, audit verify).
Median of 3 each, for 2 store sizes. No target: reported for docs/operations.md.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tailops.audit import AuditLog
from tailops.auth.tokens import generate_keypair, mint_token
from tailops.backup import create_backup, restore_backup
from tailops.changes import plans
from tailops.changes.plans import HostPrediction, Plan, TaskPrediction
from tailops.config import Settings, load_config
from tailops.store import Store
from tests.bench.common import Row

GROUP = "backup"
SIZES = ((200, 1000), (2000, 10000))  # (plans, audit entries)
REPEAT = 3


def _settings(root: Path, name: str) -> Settings:
    empty = root / "empty.yaml"
    empty.write_text("{}\n")
    return load_config(empty, server={"data_dir": root / name}, audit={"rotate_bytes": 1024 * 1024})


def _fill(settings: Settings, n_plans: int, n_audit: int) -> None:
    generate_keypair(settings.private_key_path, settings.public_key_path)
    store = Store(settings.db_path)
    now = time.time()
    try:
        for i in range(n_plans):
            diff = f"--- before\n+++ /etc/app/{i}.conf\n@@ -1 +1 @@\n-old {i}\n+new {i}\n" * 4
            hosts = [
                HostPrediction(
                    host=f"web{h}",
                    status="changed",
                    tasks=[TaskPrediction(task="Write config", status="changed", changed=True, diff=diff)],
                )
                for h in range(3)
            ]
            params = {"message": f"plan {i}"}
            plan_id = plans.plan_id_for(
                playbook="tb_marker",
                version="1.0.0",
                playbook_sha256="a" * 64,
                params=params,
                limit=None,
                inventory_sha256="b" * 64,
                hosts=hosts,
            )
            plans.insert_plan(
                store,
                Plan(
                    id=plan_id,
                    playbook="tb_marker",
                    version="1.0.0",
                    playbook_sha256="a" * 64,
                    params=params,
                    inventory_sha256="b" * 64,
                    risk="low",
                    scope="system:admin",
                    status="pending",
                    stored_status="pending",
                    hosts=hosts,
                    requester={"subject": "alice", "transport": "http"},
                    requester_ids=["sub:alice"],
                    created_at=datetime.fromtimestamp(now, UTC),
                    expires_at=datetime.fromtimestamp(now + 3600, UTC),
                    updated_at=datetime.fromtimestamp(now, UTC),
                ),
            )
        for i in range(50):
            mint_token(
                private_key_path=settings.private_key_path,
                subject=f"user{i}",
                scopes="readonly",
                ttl=timedelta(hours=1),
                max_ttl=timedelta(days=1),
                audience=settings.mcp_url,
                issuer="tailops",
                store=store,
            )
    finally:
        store.close()
    audit = AuditLog(settings.audit_path, rotate_bytes=settings.audit.rotate_bytes)
    try:
        for i in range(n_audit):
            audit.record({"kind": "tool", "tool": "get_system_status", "args": {"i": i}, "outcome": "ok"})
    finally:
        audit.close()


def run() -> list[Row]:
    rows: list[Row] = []
    for n_plans, n_audit in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            src = _settings(root, "src")
            _fill(src, n_plans, n_audit)
            size_mb = sum(p.stat().st_size for p in src.server.data_dir.rglob("*") if p.is_file()) / 1e6
            backup_s, restore_s = [], []
            for i in range(REPEAT):
                t0 = time.perf_counter()
                create_backup(src, root / f"bk{i}")
                backup_s.append(time.perf_counter() - t0)
                dst = _settings(root, f"dst{i}")
                t0 = time.perf_counter()
                restore_backup(dst, root / f"bk{i}")
                restore_s.append(time.perf_counter() - t0)
            label = f"{n_plans} plans, {n_audit} audit entries ({size_mb:.1f} MB)"
            rows.append(Row(GROUP, f"backup: {label}", statistics.median(backup_s), "s"))
            rows.append(Row(GROUP, f"restore: {label}", statistics.median(restore_s), "s"))
    return rows
