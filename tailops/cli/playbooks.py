"""``tailops playbooks``: look at the vetted catalog and pin it.

A thin layer over :mod:`tailops.changes.catalog` (no logic of its own): ``list``,
``show NAME``, ``verify`` (exit 1 on any drift; ``make test`` runs it) and
``lock [--force]``. It never runs a playbook.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tailops.changes.catalog import LOCK_FILE, Catalog
from tailops.cli.common import ConfigOption, cli_errors, console_err, load

__all__ = ["app"]

app = typer.Typer(help="The vetted playbook catalog: list, show, verify and lock it.", no_args_is_help=True)


def _catalog(config: ConfigOption) -> Catalog:
    return Catalog.from_settings(load(config))


@app.command("list")
@cli_errors
def list_playbooks(config: ConfigOption = None) -> None:
    """List the catalog: name, version, risk, scope, description."""
    catalog = _catalog(config)
    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("NAME", "VERSION", "RISK", "SCOPE", "DESCRIPTION"):
        table.add_column(
            column, overflow="fold" if column == "DESCRIPTION" else "ignore", no_wrap=column != "DESCRIPTION"
        )
    for entry in catalog.entries():
        m = entry.manifest
        first = m.description.split(". ")[0].rstrip(".") + "."
        table.add_row(m.name, m.version, m.risk, m.scope, first)
    Console(width=160).print(table)


@app.command("show")
@cli_errors
def show(
    name: Annotated[str, typer.Argument(help="Playbook name (see `tailops playbooks list`).")],
    config: ConfigOption = None,
) -> None:
    """Show one playbook: manifest, parameter schema, content hash and lock status."""
    catalog = _catalog(config)
    entry = catalog.get(name)
    m = entry.manifest
    drift = next((d for d in catalog.verify() if d.name == name), None)
    lines = [
        f"name:        {m.name}",
        f"version:     {m.version}",
        f"risk:        {m.risk}" + (f" ({m.risk_reason.strip()})" if m.risk_reason else ""),
        f"scope:       {m.scope}",
        f"target:      {m.target}",
        f"serial:      {m.serial}",
        f"max_fail_percentage: {m.max_fail_percentage}",
        f"roles:       {', '.join(m.roles)}",
        f"collections: {', '.join(m.collections) or '-'}",
        f"os families: {', '.join(m.os_families) or '-'}",
        f"playbook:    {entry.playbook}",
        f"sha256:      {entry.sha256}",
        f"locked:      {entry.pinned_sha256 or 'not locked'}",
        f"lock status: {'OK' if drift is None else drift.message}",
        f"description: {m.description.strip()}",
        "not simulated in check mode: " + (", ".join(m.not_simulated) or "none"),
    ]
    for task, effect in sorted(m.check_mode_side_effects.items()):
        lines.append(f"runs for real during a plan: {task}: {' '.join(effect.split())}")
    if m.check_mode_notes:
        lines.append(f"check mode:  {m.check_mode_notes.strip()}")
    if m.notes:
        lines.append(f"notes:       {m.notes.strip()}")
    lines.append("parameters (JSON Schema):")
    lines.append(json.dumps(m.parameters, indent=2))
    typer.echo("\n".join(lines))


@app.command("verify")
@cli_errors
def verify(config: ConfigOption = None) -> None:
    """Recompute every content hash and compare with the lock file; exit 1 on any drift."""
    catalog = _catalog(config)
    drifts = catalog.verify()
    if drifts:
        for drift in drifts:
            console_err(f"drift: {drift.message}")
        console_err(f"catalog verify failed: {len(drifts)} drift(s) against {LOCK_FILE}.")
        raise typer.Exit(1)
    typer.echo(f"catalog OK ({len(catalog)} playbooks)")


@app.command("lock")
@cli_errors
def lock(
    force: Annotated[
        bool,
        typer.Option("--force", help="Re-pin content that changed without a version bump (reviewed edits only)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write playbooks/catalog.lock.json from the catalog on disk."""
    catalog = _catalog(config)
    changes = catalog.lock(force=force)
    for line in changes:
        typer.echo(line)
    typer.echo(f"locked {len(catalog)} playbooks in {catalog.lock_path}" + ("" if changes else " (no changes)"))
