"""Structured logs: one JSON object per line on stderr, secrets never written."""

from __future__ import annotations

import json
import logging

import pytest

from tailops.logsetup import JsonFormatter, TextFormatter

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("tailops.test", logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_context_and_redact_secrets() -> None:
    line = JsonFormatter().format(
        record("verified %s", JWT, tool="get_system_status", password="hunter2", headers={"Authorization": "x"})
    )
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO" and entry["logger"] == "tailops.test"
    assert entry["tool"] == "get_system_status"
    assert JWT not in line and "hunter2" not in line
    assert entry["password"] == "[REDACTED]"
    assert entry["headers"]["Authorization"] == "[REDACTED]"


def test_exceptions_are_redacted_too() -> None:
    try:
        raise RuntimeError(f"Bearer {JWT}")
    except RuntimeError:
        import sys

        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(rec))
    assert "RuntimeError" in entry["exc"] and JWT not in entry["exc"]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_uvicorn_colour_message_is_not_repeated(formatter: logging.Formatter) -> None:
    line = formatter.format(record("Finished server process [%d]", 42, color_message="\x1b[36m%d\x1b[0m"))
    assert "\x1b" not in line and "42" in line
