"""``tailops inventory show|check``: the configured inventory as tailops sees it.

A thin layer over :mod:`tailops.changes.inventory`. Both commands are read-only
(``check`` runs Ansible's ``ping`` module, which changes nothing), so neither is
written to the audit log. ``check`` prints progress on stderr as hosts answer and
exits 1 when any host did not answer ok, so scripts can gate on it.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tailops.changes.inventory import HostReachability, InventoryHost, check_inventory, load_inventory
from tailops.cli.common import ConfigOption, cli_errors, console_err, load
from tailops.durations import parse_duration

__all__ = ["app"]

app = typer.Typer(
    help="The Ansible inventory as tailops sees it: hosts, groups, snapshot hash, reachability.",
    no_args_is_help=True,
)

LimitOption = Annotated[
    str | None, typer.Option("--limit", "-l", help="Ansible host pattern, e.g. web or 'all:!db1' (default: all).")
]


def _connection(host: InventoryHost) -> str:
    c = host.connection
    kind = c.get("ansible_connection", "ssh")
    where = c.get("ansible_host", host.name)
    if c.get("ansible_user"):
        where = f"{c['ansible_user']}@{where}"
    if c.get("ansible_port"):
        where = f"{where}:{c['ansible_port']}"
    text = f"{kind} {where}" if kind in ("ssh", "paramiko", "paramiko_ssh") else kind
    if str(c.get("ansible_become", "")).lower() in ("true", "yes", "1"):
        text += f" become({c.get('ansible_become_method', 'sudo')}"
        text += f" {c['ansible_become_user']})" if c.get("ansible_become_user") else ")"
    return text


@app.command()
@cli_errors
def show(
    limit: LimitOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole view as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Hosts and groups Ansible reads from changes.inventory, and the snapshot hash a plan would pin."""
    settings = load(config)
    view = load_inventory(settings, limit=limit)
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
        return
    typer.echo(f"inventory: {view.source}")
    typer.echo(f"snapshot:  {view.snapshot_sha256} (a plan made now pins this)")
    if not view.hosts:
        typer.echo("no hosts" + (f" match {limit!r}" if limit else ""))
        return
    rows = [("HOST", "GROUPS", "CONNECTION", "OTHER VARS")] + [
        (h.name, ",".join(h.groups) or "-", _connection(h), str(h.other_vars)) for h in view.hosts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    typer.echo("groups:")
    for g in view.groups:
        if g.name == "all":
            continue
        kids = f" (children: {', '.join(g.children)})" if g.children else ""
        typer.echo(f"  {g.name}: {', '.join(g.hosts) or '-'}{kids}")


@app.command()
@cli_errors
def check(
    limit: LimitOption = None,
    timeout: Annotated[str, typer.Option("--timeout", help="Give up on hosts silent this long, e.g. 2m.")] = "5m",
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
    config: ConfigOption = None,
) -> None:
    """Read-only reachability: Ansible's ping on every host; names the hosts that did not answer and why."""
    settings = load(config)
    wait = parse_duration(timeout)

    def progress(done: int, total: int, result: HostReachability) -> None:
        if quiet:
            return
        line = f"[{done}/{total}] {result.host} {result.status}"
        if result.reason:
            line += f": {result.reason.splitlines()[0][:200]}"
        console_err(line)

    report = check_inventory(settings, limit=limit, timeout=wait, on_progress=progress)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        typer.echo(
            f"{report.ok}/{report.total} hosts answered ({report.pattern}, {report.duration_s:.1f} s); "
            f"inventory snapshot {report.snapshot_sha256}"
        )
        for r in report.not_ok:
            typer.echo(f"  {r.host}  {r.status}: {' '.join((r.reason or '').split())[:500]}")
    sys.stdout.flush()
    if report.not_ok:
        raise typer.Exit(1)
