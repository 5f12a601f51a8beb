"""The audit alarm: read from the head alone, and raised by /health and /metrics of a real server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx2

from tailops.audit import AuditLog, AuditStatus, verify
from tailops.audit.status import read_status
from tailops.config import Settings
from tests.servers import http_server
from tests.unit.audit.logs import (
    cut_records,
    write_entries,
)


def test_read_status_is_the_cheap_alarm(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    assert read_status(path) == AuditStatus(0, "empty")
    log = AuditLog(path)
    write_entries(log, 4)
    assert read_status(path).ok and read_status(path).seq == 4
    cut_records(path, 1)
    write_entries(log, 1, start=9)
    status = read_status(path)
    assert not status.ok and status.gaps == 1 and "1 gap record(s)" in status.describe()
    head = path.with_name("audit.jsonl.head")
    head.write_bytes(b"garbage")
    assert read_status(path).head == "unreadable" and not read_status(path).ok
    head.unlink()
    assert read_status(path).head == "missing" and not read_status(path).ok


def _gauge(text: str, name: str) -> float:
    [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_health_and_metrics_raise_the_audit_alarm(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with http_server(settings) as srv:
        admin = {"Authorization": f"Bearer {srv.mint('ops', 'admin')}"}

        def refused_request() -> None:  # audited by the server's own writer
            r = httpx2.get(f"{srv.base_url}/mcp", headers={"Authorization": "Bearer not-a-token"}, timeout=10)
            assert r.status_code == 401

        for _ in range(4):
            refused_request()
        health = httpx2.get(f"{srv.base_url}/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["checks"]["audit"]["status"] == "ok"
        metrics = httpx2.get(f"{srv.base_url}/metrics", headers=admin, timeout=10).text
        assert _gauge(metrics, "tailops_audit_gaps") == 0
        cut_records(settings.audit_path, 2)  # a plain truncate under the running server
        refused_request()
        health = httpx2.get(f"{srv.base_url}/health", timeout=10)
        # Degraded but serving (200, like Docker down): the log still records everything,
        # and no restart can bring the lost entries back.
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded" and body["checks"]["audit"]["status"] == "failed"
        assert "1 gap record(s)" in body["checks"]["audit"]["detail"]
        assert body["checks"]["store"]["status"] == "ok"
        metrics = httpx2.get(f"{srv.base_url}/metrics", headers=admin, timeout=10).text
        assert _gauge(metrics, "tailops_audit_gaps") == 1
        # The head vanishing is an alarm at once, before the next append turns it into a gap.
        settings.audit_path.with_name("audit.jsonl.head").unlink()
        assert httpx2.get(f"{srv.base_url}/health", timeout=10).json()["checks"]["audit"]["status"] == "failed"
        metrics = httpx2.get(f"{srv.base_url}/metrics", headers=admin, timeout=10).text
        assert _gauge(metrics, "tailops_audit_gaps") >= 1
    report = verify(settings.audit_path)
    assert [g.reasons for g in report.gaps][:1] == [("truncated",)]
