"""Running the real ``tailops`` CLI in-process (typer's CliRunner) and reading what it left.

Why: the CLI tests of each command group need the same three things: invoke a group's
command with ``--config``, check that a refusal is exactly one ``error: ...`` line on stderr
(STYLE: bad input is one line and an exit code, never a traceback), and read the ``cli``
records the command wrote to the audit log. One copy here, imported by those tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from tailops.cli.main import app
from tailops.config import Settings

__all__ = ["cli_records", "group_runner", "one_error_line"]

_runner = CliRunner()


def group_runner(group: str) -> Callable[..., Result]:
    """``run(cfg, *args)``: ``tailops GROUP *args --config cfg``, in-process."""

    def run(cfg: Path, *args: str) -> Result:
        return _runner.invoke(app, [group, *args, "--config", str(cfg)])

    return run


def one_error_line(result: Result) -> str:
    """The single ``error: ...`` line a refused command prints (asserts there is exactly one)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def cli_records(settings: Settings) -> list[dict[str, Any]]:
    """The audit log's ``kind: cli`` records (none when there is no log yet)."""
    if not settings.audit_path.exists():
        return []
    return [r for r in map(json.loads, settings.audit_path.read_text().splitlines()) if r.get("kind") == "cli"]
