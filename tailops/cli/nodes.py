"""``tailops nodes``: the execution nodes — ``list`` (config only) and ``check`` (ask each over SSH).

A thin layer over :mod:`tailops.changes.nodes.health`. ``check`` exits 1 when
a node is unreachable or runs other ansible-core/ansible-runner versions than
this machine. It never runs a job.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tailops.changes.nodes.health import NodeHealth, check_nodes, describe_nodes, select_nodes
from tailops.cli.common import ConfigOption, cli_errors, load

__all__ = ["app"]

app = typer.Typer(help="Execution nodes: list them and check their health.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str | None, typer.Argument(help="Only this node (default: every node).")]


def _print(rows: list[NodeHealth], as_json: bool, checked: bool) -> None:
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        typer.echo("No execution nodes configured (nodes: in the config); every host runs on this machine.")
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    columns = ["NAME", "ADDRESS", "FORKS", "CLAIMS"]
    if checked:
        columns += ["HEALTH", "ANSIBLE-CORE", "ANSIBLE-RUNNER", "ERROR"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in rows:
        cells = [r.name, r.address, str(r.forks), ", ".join(r.claims)]
        if checked:
            cells += [
                "ok" if r.healthy else ("unreachable" if r.reachable is False else "mismatch"),
                r.ansible_core or "-",
                r.ansible_runner or "-",
                r.error or "",
            ]
        table.add_row(*cells)
    Console(width=200).print(table)


@app.command("list")
@cli_errors
def list_nodes(name: NameArg = None, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List the configured execution nodes: address, forks (capacity) and what they claim."""
    nodes = select_nodes(load(config).nodes, name)
    _print(describe_nodes(nodes), as_json, checked=False)


@app.command("check")
@cli_errors
def check(name: NameArg = None, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Ask each node for its versions over SSH; exit 1 if one is unreachable or mismatched."""
    nodes = select_nodes(load(config).nodes, name)
    rows = check_nodes(nodes)
    _print(rows, as_json, checked=True)
    if any(not r.healthy for r in rows):
        raise typer.Exit(1)
