"""``tailops init [--system]``: first-time setup (config, key pair, data dir).

A thin layer over :mod:`tailops.bootstrap`: every target is checked before anything is
written (an existing file means exit 2 and nothing written), the outcome is recorded in
the new data dir's audit log (transport ``cli``), and the next steps are printed. A
refused init is audited only where an audit log already exists (an existing install);
otherwise a refusal leaves no trace on disk, as promised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tailops.bootstrap import SYSTEM_USER, InitPlan, apply_init, check_targets, plan_init
from tailops.cli.common import audit_cli, audit_cli_failure, cli_errors
from tailops.config import Settings, load_config
from tailops.errors import TailopsError

__all__ = ["init"]


def _settings_for(plan: InitPlan) -> Settings:
    # The settings the new install will have (its audit log path), not the caller's.
    config = plan.config_path
    existing = config.is_file() and not config.is_symlink()
    if existing:
        return load_config(config, server={"data_dir": plan.data_dir})
    # No file yet: the defaults plus the new data dir (never the machine's /etc/tailops file).
    return Settings(server={"data_dir": plan.data_dir})


def _next_steps(plan: InitPlan) -> str:
    cfg = f"--config {plan.config_path}"
    as_user = f"sudo -u {SYSTEM_USER} " if plan.system else ""
    serve = (
        "systemctl enable --now tailops   (deploy/systemd/tailops.service)" if plan.system else f"tailops serve {cfg}"
    )
    return "\n".join(
        [
            "Next steps:",
            f"  1. Review the config:   $EDITOR {plan.config_path}   then   tailops config check {cfg}",
            f"  2. Mint a token:        {as_user}tailops token mint {cfg} --subject NAME --scopes readonly --ttl 24h",
            f"  3. Serve:               {serve}",
            "  4. Connect a client:    URL http://127.0.0.1:8787/mcp, header 'Authorization: Bearer <token>'",
            "                          (see the README, 'Connect a client').",
        ]
    )


@cli_errors
def init(
    system: Annotated[
        bool,
        typer.Option(
            "--system",
            help=f"System layout: /etc/tailops/config.yaml, /var/lib/tailops, a '{SYSTEM_USER}' system user "
            "(root only).",
        ),
    ] = False,
    config_dir: Annotated[
        Path | None, typer.Option(help="Where config.yaml goes. Default: the user's config dir, or /etc/tailops.")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The data dir (created 0700). Default: the user's state dir, or /var/lib/tailops."),
    ] = None,
) -> None:
    """Write a commented config, an Ed25519 key pair and the data dir; never overwrites anything."""
    plan = plan_init(system=system, config_dir=config_dir, data_dir=data_dir)
    args: dict[str, Any] = {
        "system": system,
        "config_path": str(plan.config_path),
        "data_dir": str(plan.data_dir),
    }
    try:
        check_targets(plan)
    except TailopsError as exc:
        try:
            existing = _settings_for(plan)
        except TailopsError:  # an unreadable existing config: refuse without an audit record
            raise exc from None
        if existing.audit_path.is_file():
            audit_cli_failure(existing, "init", args, exc)
        raise
    settings = _settings_for(plan)

    def record() -> None:
        audit_cli(settings, "init", args, None, public_key=str(plan.public_key))

    result = apply_init(plan, before_chown=record)
    typer.echo(f"config:      {plan.config_path} ({'root:' + SYSTEM_USER + ' 0640' if system else '0600'})")
    typer.echo(f"data dir:    {plan.data_dir} (0700{', owner ' + SYSTEM_USER if system else ''})")
    typer.echo(f"private key: {plan.private_key} (0600; only `tailops token mint` reads it)")
    typer.echo(f"public key:  {plan.public_key} (the server verifies tokens with it)")
    if system:
        typer.echo(f"user:        {SYSTEM_USER} ({'created' if result.user_created else 'existed already'})")
    typer.echo("")
    typer.echo(_next_steps(plan))
