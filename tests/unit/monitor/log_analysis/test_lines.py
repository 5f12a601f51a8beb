"""One line's level and timestamps (tailops.monitor.log_analysis.lines)."""

from __future__ import annotations

import pytest

from tailops.monitor.log_analysis.lines import APP_TS, DOCKER_TS, JSON_TS, level_of, strip_prefix


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("2024-05-01 10:00:00 ERROR db down", "error"),
        ("[error] 12#12: *1 connect() failed", "error"),
        ('{"level":"fatal","msg":"x"}', "error"),
        ("level=warn msg=slow", "warning"),
        ("E0501 10:00:00.000000 1 main.go:10] boom", "error"),
        ("W0501 10:00:00.000000 1 main.go:10] hm", "warning"),
        ("ValueError: bad input", "error"),  # an exception line with its message
        ("java.lang.IllegalStateException: x", "error"),
        ("Warning: deprecated option", "warning"),
        ("INFO terror in the error-free zone", None),  # 'err' inside words is only the prefilter
        ("all good", None),
    ],
)
def test_level_markers(line: str, level: str | None) -> None:
    body = strip_prefix(line)
    assert level_of(body, body.lower()) == level


def test_timestamps_engine_app_and_json() -> None:
    m = DOCKER_TS.match("2024-05-01T10:00:00.123456789Z hello")
    assert m is not None and m.group(1) == "2024-05-01T10:00:00"
    a = APP_TS.match("2024/05/01 10:00:00 [error] x")
    assert a is not None and a.group("ts") == "2024/05/01 10:00:00"
    s = APP_TS.match("May  1 10:00:00 host sshd[1]: x")
    assert s is not None and s.group("sys") == "May  1 10:00:00"
    j = JSON_TS.search('{"time":"2024-05-01T10:00:00.5Z","level":"error"}')
    assert j is not None and j.group(1) == "2024-05-01T10:00:00"
    assert strip_prefix("2024-05-01 10:00:00,123 ERROR x") == "ERROR x"
