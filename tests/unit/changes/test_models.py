"""The run vocabulary's defaults (what a request means when a caller says nothing)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tailops.changes.models import RunMode, RunRequest, TaskStatus


def test_request_defaults() -> None:
    req = RunRequest(playbook=Path("/p.yml"), inventory=Path("/i"), mode=RunMode.APPLY, artifacts_root=Path("/a"))
    assert req.timeout == timedelta(minutes=30) and req.forks == 20 and req.limit is None
    assert dict(req.extravars) == {} and req.not_simulated_hint == frozenset()
    assert [s.value for s in TaskStatus] == ["ok", "changed", "skipped", "failed", "unreachable"]
