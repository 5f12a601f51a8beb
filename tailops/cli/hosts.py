"""``tailops hosts history HOST``: what changed on one host, who asked, who decided, what ran.

A thin layer over :mod:`tailops.changes.history` (the same answer as the
``get_host_history`` tool and the review page's host page). Read-only; bad input prints
one line and exits 2.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from tailops.changes import history
from tailops.cli.common import ConfigOption, cli_errors, console_err, load
from tailops.store import Store

__all__ = ["app"]

app = typer.Typer(help="Per-host views: every plan and run that touched a host.", no_args_is_help=True)


@app.command("history")
@cli_errors
def history_command(
    host: Annotated[str, typer.Argument(help="Inventory host name.")],
    since: Annotated[
        str | None, typer.Option("--since", help="From then on: a duration back (7d, 12h) or an ISO time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most plans shown, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    config: ConfigOption = None,
) -> None:
    """Every plan that targeted HOST, newest first: predicted and actual changes, requester, decisions, runs."""
    settings = load(config)
    since_ts = history.parse_since(since)
    store = Store(settings.db_path)
    try:
        found = history.host_history(store, host, since=since_ts, limit=limit)
    finally:
        store.close()
    if as_json:
        typer.echo(history.as_json(found))
        return
    if not found.changes:
        console_err(f"no plan targeted {found.host}" + (f" since {since}" if since else "") + ".")
        return
    console = Console(width=160, highlight=False, soft_wrap=False)
    for change in found.changes:
        when = change.planned_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        who = (change.requested_by or "?") + (f" ({change.requester_human})" if change.requester_human else "")
        console.print(
            f"[bold]{when}[/bold] plan {change.plan_id[:12]} {change.playbook} {change.version}: {change.status}"
        )
        console.print(f"  requested by {who}; host {change.host_status} in the dry run")
        for task in change.predicted:
            console.print(f"  predicted   {task}")
        for approver in change.approved_by:
            console.print(f"  approved by {approver}")
        for denier in change.denied_by:
            console.print(f"  denied by   {denier}")
        for run in change.runs:
            changed = ", ".join(run.changed) or "nothing"
            console.print(
                f"  run {run.run_id[:12]} {run.status} by {run.applied_by}: here {run.host_status or '-'}, "
                f"changed {changed}"
            )
            for mismatch in run.mismatches:
                console.print(f"    differs: {mismatch}")
    if found.truncated:
        console_err(found.truncation or "older plans not shown")
