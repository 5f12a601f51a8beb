"""``tailops audit verify`` / ``tail``: exit codes, the broken line named, readable output."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from tailops.audit import AuditLog
from tailops.cli.main import app
from tailops.config import Settings

runner = CliRunner()


def run(cfg: Path, *args: str) -> Result:
    return runner.invoke(app, ["audit", *args, "--config", str(cfg)])


def fill(settings: Settings, n: int = 5) -> AuditLog:
    log = AuditLog(settings.audit_path)
    for i in range(n):
        log.record(
            {
                "kind": "tool",
                "tool": f"tool{i}",
                "phase": "end",
                "principal": {
                    "sub": "alice",
                    "jti": "j1",
                    "transport": "http",
                    "addr": "127.0.0.1",
                    "human": "alice@example.com",
                },
                "args": {"i": i, "password": "hunter2"},
                "decision": "allowed",
                "outcome": "ok",
                "ms": 1.25,
            }
        )
    log.record(
        {
            "kind": "tool",
            "tool": "apply_plan",
            "principal": {"sub": "bob", "transport": "stdio"},
            "decision": "denied",
            "reason": "needs scope 'system:admin'",
            "outcome": "denied",
            "plan_id": "p-123",
        }
    )
    log.record(
        {
            "kind": "cli",
            "command": "token revoke",
            "principal": {"sub": "local:root", "transport": "cli"},
            "args": {"jti": "abc"},
            "decision": "allowed",
            "outcome": "ok",
        }
    )
    return log


def test_verify_ok_and_empty(cfg: Path, settings: Settings) -> None:
    empty = run(cfg, "verify")
    assert empty.exit_code == 0 and "empty" in empty.stdout
    fill(settings)
    result = run(cfg, "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 7 entries in 1 file(s)")


def test_verify_reports_the_first_broken_line(cfg: Path, settings: Settings) -> None:
    fill(settings)
    lines = settings.audit_path.read_bytes().splitlines()
    lines[3] = lines[3].replace(b'"tool3"', b'"tool9"')
    settings.audit_path.write_bytes(b"\n".join(lines) + b"\n")
    result = run(cfg, "verify")
    assert result.exit_code == 1
    assert f"BROKEN: {settings.audit_path}:4: edited:" in result.stdout
    del lines[5]
    settings.audit_path.write_bytes(b"\n".join(lines) + b"\n")
    assert ":4: edited:" in run(cfg, "verify").stdout  # still the first problem


def test_tail_is_readable_and_never_shows_secrets(cfg: Path, settings: Settings) -> None:
    fill(settings)
    result = run(cfg, "tail", "-n", "3")
    assert result.exit_code == 0
    out = result.stdout.splitlines()
    assert len(out) == 3
    assert "tool4" in out[0] and "alice (alice@example.com)" in out[0] and "http@127.0.0.1" in out[0]
    assert "[REDACTED]" in out[0] and "hunter2" not in result.stdout
    assert "  DENIED  " in out[1] and "needs scope" in out[1] and "plan_id=p-123" in out[1]
    assert "tailops token revoke" in out[2]


def test_tail_json_prints_raw_lines(cfg: Path, settings: Settings) -> None:
    fill(settings)
    result = run(cfg, "tail", "--json", "-n", "2")
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [6, 7]


def test_tail_empty_and_bad_n(cfg: Path) -> None:
    empty = run(cfg, "tail")
    assert empty.exit_code == 0 and "empty" in empty.stderr
    for bad in ("0", "-5", "many"):
        result = run(cfg, "tail", "-n", bad)
        assert result.exit_code == 2, bad
        assert "Traceback" not in result.output


def test_bad_config_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("audit:\n  rotate_bytes: 1\n")
    result = runner.invoke(app, ["audit", "verify", "--config", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: bad config")


def test_verify_lists_every_gap_and_keeps_failing(cfg: Path, settings: Settings) -> None:
    log = fill(settings)
    lines = settings.audit_path.read_bytes().splitlines(keepends=True)
    settings.audit_path.write_bytes(b"".join(lines[:4]))  # entries 5-7 cut off the end
    log.record({"kind": "tool", "tool": "after", "decision": "allowed", "outcome": "ok"})
    with open(settings.audit_path, "ab") as fh:
        fh.write(b'{"seq":10,"ts":"cut')  # then a crash cuts a line in half
    AuditLog(settings.audit_path).record({"kind": "cli", "command": "token revoke", "outcome": "ok"})
    for _ in range(2):  # it never heals
        result = run(cfg, "verify")
        assert result.exit_code == 1, result.output
        out = result.stdout.splitlines()
        assert out[0].startswith(f"GAP: {settings.audit_path}:5: gap: gap recorded as entry 8, detected 20")
        assert "entries 5-7 missing (the log ended at entry 4, the head recorded entry 7)" in out[0]
        assert out[1].startswith(f"GAP: {settings.audit_path}:8: gap: gap recorded as entry 10")
        assert "19 bytes of a cut or unrecognised line kept as evidence" in out[1]
        assert out[2] == "(8 entries verified, in 1 file(s); 2 gap record(s): entries were lost)"
    shown = run(cfg, "tail", "-n", "5").stdout.splitlines()
    assert "  #8  GAP  -  pid " in shown[0] and shown[0].endswith("AUDIT GAP (truncated; entries 5-7 missing)")
    assert shown[2].startswith("?  unreadable line: {") and shown[3].endswith("AUDIT GAP (partial_line)")
