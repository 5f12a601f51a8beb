"""``tailops backup DEST`` and ``tailops restore SRC``: a thin layer over :mod:`tailops.backup`.

Both are recorded in the audit log (transport ``cli``): a backup copies the private
key when there is one, and a restore replaces the whole state. A backup's own record
is written after the copy, so it is in the live log, not in the backup; a restore's
record continues the restored chain. A refused restore into a data dir that has no
audit log yet is reported on stderr only (writing a record would create state there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailops.audit import log_files
from tailops.backup import create_backup, restore_backup
from tailops.cli.common import ConfigOption, audit_cli, audit_cli_failure, cli_errors, console_err, load
from tailops.errors import TailopsError

__all__ = ["backup", "restore"]


@cli_errors
def backup(
    dest: Annotated[Path, typer.Argument(help="New (or empty) directory to write the backup into.")],
    config: ConfigOption = None,
) -> None:
    """Copy the store (SQLite online backup), audit log and keys; safe while the server runs."""
    settings = load(config)
    args = {"dest": str(dest)}
    try:
        result = create_backup(settings, dest)
    except TailopsError as exc:
        audit_cli_failure(settings, "backup", args, exc)
        raise
    audit_cli(
        settings,
        "backup",
        args,
        None,
        schema_version=result.schema_version,
        files=result.files,
        private_key=result.private_key,
    )
    typer.echo(
        f"backup written to {result.path}: {result.files} files, {result.bytes} bytes, store schema "
        f"v{result.schema_version}, {result.audit_entries} audit entries, {result.seconds:.2f} s"
    )
    if not result.audit_ok:
        console_err("warning: the audit log's hash chain did not verify when copied (see tailops audit verify)")
    if result.private_key:
        console_err("note: the backup holds the token private key (0600); store it like one")


@cli_errors
def restore(
    source: Annotated[Path, typer.Argument(help="A directory written by `tailops backup`.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace existing state in the data dir (it is moved to DATA_DIR/replaced-<time>/, not deleted).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Restore a backup into the configured data dir (stop the server first)."""
    settings = load(config)
    args = {"source": str(source), "force": force}
    try:
        result = restore_backup(settings, source, force=force)
    except TailopsError as exc:
        # Into a fresh data dir there is no chain to append to, and starting one would make
        # the dir "hold state", so the next attempt would need --force: stderr only there.
        if log_files(settings.audit_path):
            audit_cli_failure(settings, "restore", args, exc)
        raise
    audit_cli(
        settings,
        "restore",
        args,
        None,
        schema_version_backup=result.schema_version_backup,
        schema_version=result.schema_version_now,
        moved_aside=str(result.moved_aside) if result.moved_aside else None,
    )
    typer.echo(
        f"restored {result.files} files into {result.data_dir}: store schema v{result.schema_version_backup}"
        + (
            f" (migrated to v{result.schema_version_now})"
            if result.schema_version_now != result.schema_version_backup
            else ""
        )
        + f", audit chain verified ({result.audit_entries} entries)"
    )
    if result.moved_aside:
        typer.echo(f"the state that was there is in {result.moved_aside}")
