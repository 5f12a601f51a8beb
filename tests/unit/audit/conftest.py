"""The audit tests' fixture: a fresh log in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailops.audit import AuditLog


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit" / "audit.jsonl")
