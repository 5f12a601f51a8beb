"""Notification enqueue cost (issue 17, notifications): what a lifecycle step pays to
notify, measured in-process on a real SQLite store (WAL, the server's settings).

- ``emit`` of one event to 1 and to 3 endpoints (one transaction, one row each), while
  the delivery worker runs against a receiver that never answers — the target is that
  a dead endpoint adds nothing: p50 <= 2 ms, and the ratio against the same emit with
  no worker running stays near 1;
- the baseline: one plain single-row INSERT transaction on the same store (the floor
  any outbox pays).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tailops.config import Settings, load_config
from tailops.notify import Event, EventKind, Notifier, emit
from tailops.store import Store
from tests.bench.common import Row, summarize_ms
from tests.webhooks import receiver

GROUP = "notify"
N = 2000
WARMUP = 100
TARGET_P50_MS = 2.0


def _settings(data_dir: Path, url: str, endpoints: int) -> Settings:
    key = data_dir / "hook.key"
    key.write_text("bench-key")
    eps = [{"name": f"ep{i}", "url": url, "secret_file": str(key), "timeout": "30s"} for i in range(endpoints)]
    return load_config(None, server={"data_dir": str(data_dir)}, notifications={"endpoints": eps})


def _emit_times(store: Store, settings: Settings, n: int) -> list[float]:
    out: list[float] = []
    for i in range(n + WARMUP):
        event = Event(kind=EventKind.RUN_STARTED, run_id=f"r{i}", playbook="package_update", hosts=3)
        t = time.perf_counter()
        emit(store, event, settings=settings)
        if i >= WARMUP:
            out.append(time.perf_counter() - t)
    return out


def _baseline(store: Store, n: int) -> list[float]:
    store.execute("CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    out: list[float] = []
    body = "x" * 400
    for i in range(n + WARMUP):
        t = time.perf_counter()
        store.execute("INSERT INTO bench_rows(body) VALUES (?)", (body,))
        if i >= WARMUP:
            out.append(time.perf_counter() - t)
    return out


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, receiver("hang") as stuck:
        base_dir = Path(tmp) / "base"
        base_store = Store(load_config(None, server={"data_dir": str(base_dir)}).db_path)
        base = summarize_ms(_baseline(base_store, N))
        base_store.close()
        rows.append(Row(GROUP, "single-row INSERT transaction p50 (baseline)", base["p50"], "ms"))
        for endpoints in (1, 3):
            quiet_dir = Path(tmp) / f"quiet{endpoints}"
            quiet_dir.mkdir()
            settings = _settings(quiet_dir, stuck.url, endpoints)
            store = Store(settings.db_path)
            quiet = summarize_ms(_emit_times(store, settings, N))
            store.close()

            busy_dir = Path(tmp) / f"busy{endpoints}"
            busy_dir.mkdir()
            settings = _settings(busy_dir, stuck.url, endpoints)
            store = Store(settings.db_path)
            worker = Notifier(store, settings)
            worker.start()
            try:
                busy = summarize_ms(_emit_times(store, settings, N))
            finally:
                worker.stop()
                store.close()
            rows.append(
                Row(
                    GROUP,
                    f"emit to {endpoints} endpoint(s) p50, worker stuck on a hanging receiver",
                    busy["p50"],
                    "ms",
                    baseline=quiet["p50"],
                    target=f"p50 <= {TARGET_P50_MS} ms",
                    ok=busy["p50"] <= TARGET_P50_MS,
                    note="baseline: no worker running",
                )
            )
            rows.append(
                Row(
                    GROUP,
                    f"emit to {endpoints} endpoint(s) p99, worker stuck",
                    busy["p99"],
                    "ms",
                    baseline=quiet["p99"],
                    note="baseline: no worker running",
                )
            )
            rows.append(
                Row(
                    GROUP, f"emit to {endpoints} endpoint(s) p50 vs one INSERT", busy["p50"], "ms", baseline=base["p50"]
                )
            )
    return rows
