"""``tailops audit``: check the hash chain, show recent entries.

Read-only: these commands never write to the log (``verify`` holds the log's
lock shared while it reads, so a running server waits rather than races).
Exit codes: ``verify`` 0 when the chain is intact and holds no gap record; 1
with every gap record (what is missing, when it was detected) and the first
broken line (file, line number, kind); 2 for configuration problems. A gap
never stops counting: the chain does not heal.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from tailops.audit import GAP_KIND
from tailops.audit import tail as audit_tail
from tailops.audit import verify as audit_verify
from tailops.cli.common import ConfigOption, cli_errors, console_err, load

__all__ = ["app"]

app = typer.Typer(
    help="The tamper-evident audit log: verify its hash chain, show recent entries.", no_args_is_help=True
)


@app.command()
@cli_errors
def verify(config: ConfigOption = None) -> None:
    """Walk every audit file oldest to newest; report OK, or every gap and the first broken line."""
    settings = load(config)
    report = audit_verify(settings.audit_path)
    files = len(report.files)
    if report.problems:
        for problem in report.problems:
            typer.echo(f"{'GAP' if problem.kind == 'gap' else 'BROKEN'}: {problem.describe()}")
        gaps = f"; {len(report.gaps)} gap record(s): entries were lost" if report.gaps else ""
        typer.echo(f"({report.entries} entries verified, in {files} file(s){gaps})")
        raise typer.Exit(1)
    if report.entries == 0:
        typer.echo(f"OK: the audit log at {settings.audit_path} is empty")
        return
    typer.echo(f"OK: {report.entries} entries in {files} file(s), chain intact, no gaps; head {report.head}")


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _readable(entry: dict[str, Any]) -> str:
    if "unreadable" in entry:
        return f"?  unreadable line: {_short(entry['unreadable'])}"
    who_info = entry.get("principal") or {}
    who = str(who_info.get("sub") or "-")
    if who_info.get("human"):
        who += f" ({who_info['human']})"
    via = f"{who_info.get('transport', '?')}"
    if who_info.get("addr"):
        via += f"@{who_info['addr']}"
    kind = entry.get("kind")
    if kind == "tool":
        what = str(entry.get("tool"))
        if entry.get("phase") == "start":
            what += " (start)"
    elif kind == "cli":
        what = f"tailops {entry.get('command')}"
    elif kind == GAP_KIND:
        what = f"AUDIT GAP ({', '.join(map(str, entry.get('reasons') or []))}"
        if entry.get("missing_from") is not None:
            what += f"; entries {entry['missing_from']}-{entry.get('missing_to') or '?'} missing"
        what += ")"
    else:
        what = f"{entry.get('method', '')} {entry.get('path', '')}".strip() or str(kind)
    verdict = "DENIED" if entry.get("decision") == "denied" else str(entry.get("outcome") or "-")
    if verdict == "error":
        verdict = "ERROR"
    if kind == GAP_KIND:
        verdict = "GAP"
        who, via = "-", f"pid {(entry.get('detected_by') or {}).get('pid', '?')}"
    parts = [str(entry.get("ts", "-")), f"#{entry.get('seq', '?')}", verdict, who, via, what]
    if entry.get("args"):
        parts.append(_short(entry["args"]))
    detail = entry.get("error") or entry.get("reason")
    if detail:
        parts.append(f"— {_short(detail, 120)}")
    for key in ("plan_id", "run_id"):
        if entry.get(key):
            parts.append(f"{key}={entry[key]}")
    if isinstance(entry.get("ms"), int | float):
        parts.append(f"{entry['ms']:.1f} ms")
    return "  ".join(parts)


@app.command()
@cli_errors
def tail(
    n: Annotated[int, typer.Option("-n", "--lines", min=1, max=100_000, help="How many entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON lines.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show the most recent audit entries (oldest first)."""
    settings = load(config)
    lines = audit_tail(settings.audit_path, n)
    if not lines:
        console_err(f"the audit log at {settings.audit_path} is empty")
        return
    for raw in lines:
        if as_json:
            typer.echo(raw.decode("utf-8", "replace"))
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = {"unreadable": raw[:200].decode("utf-8", "replace")}
        typer.echo(_readable(entry if isinstance(entry, dict) else {"unreadable": str(entry)}))
