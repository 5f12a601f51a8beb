"""Reading the audit files: the newest lines, across rotated files."""

from __future__ import annotations

import json

from tailops.audit import AuditLog, tail
from tests.unit.audit.logs import (
    write_entries,
)


def test_tail_returns_the_newest_lines_in_order(log: AuditLog) -> None:
    assert tail(log.path, 5) == []
    write_entries(log, 10)
    assert [json.loads(x)["seq"] for x in tail(log.path, 3)] == [8, 9, 10]
    assert len(tail(log.path, 100)) == 10
    assert [e["seq"] for e in log.tail(2)] == [9, 10]
