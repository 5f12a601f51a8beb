"""``tailops drift``: the latest drift results, and a drift check run now.

A thin layer over :mod:`tailops.changes.drift` (the same answers as the ``get_drift`` and
``run_drift_check`` tools). ``list`` only reads; ``run`` runs the check in check mode
(nothing changes on any host) and is audited. Bad input prints one line and exits 2.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from tailops.changes import drift
from tailops.cli.common import ConfigOption, audit_cli, audit_cli_failure, cli_errors, console_err, load
from tailops.errors import TailopsError

__all__ = ["app"]

app = typer.Typer(help="Drift: hosts that left the state a catalog playbook describes.", no_args_is_help=True)


def _print(report: drift.DriftReport) -> None:
    if not report.results:
        console_err("no drift results yet (drift.checks run on their schedule, or `tailops drift run CHECK`).")
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("CHECK", "HOST", "STATE", "CHANGES", "AGE", "NOTE"):
        table.add_column(column, no_wrap=column not in ("CHANGES", "NOTE"), overflow="fold")
    for r in report.results:
        note = f"drifted after tailops run {r.after_apply[:12]}" if r.after_apply else ""
        table.add_row(r.check, r.host, r.state, ", ".join(r.changes), f"{int(r.age_s)} s", note)
    Console(width=160, highlight=False, soft_wrap=False).print(table)


@app.command("list")
@cli_errors
def list_command(
    host: Annotated[str | None, typer.Option("--host", help="Only this host.")] = None,
    check: Annotated[str | None, typer.Option("--check", help="Only this drift check.")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Only hosts of this inventory group (children included).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """The latest result per check and host: in line, drifted (with what would change) or unreachable."""
    from tailops.changes.planner import inventory_path
    from tailops.store import Store

    settings = load(config)
    members = drift.group_hosts(inventory_path(settings), group) if group is not None else None
    store = Store(settings.db_path)
    try:
        report = drift.latest_drift(store, host=host, check=check, hosts=members)
    finally:
        store.close()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    _print(report)


@app.command("run")
@cli_errors
def run_command(
    check: Annotated[str, typer.Argument(help="Name of the drift check (drift.checks).")],
    config: ConfigOption = None,
) -> None:
    """Run one drift check now, in check mode (nothing changes on any host), and show its results."""
    from tailops.cli.plans import _engine

    settings = load(config)
    args: dict[str, Any] = {"check": check}
    with _engine(settings) as engine:
        checker = drift.DriftChecker(engine)
        try:
            run_id = anyio.run(checker.run, checker.check_named(check))
        except TailopsError as exc:
            audit_cli_failure(settings, "drift run", args, exc)
            raise
        audit_cli(settings, "drift run", args, None, drift_run_id=run_id)
        _print(drift.latest_drift(engine.store, check=check))
