"""What every CLI command shares: config loading and the error boundary.

Commands raise :class:`~tailops.errors.TailopsError`; :func:`run_command` prints
one line to stderr and exits 2 for configuration/input problems, 1 for
everything else. No traceback reaches the user (it is logged at DEBUG).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tailops.config import Settings, load_config
from tailops.errors import AuditError, TailopsError, cli_exit_code

__all__ = ["ConfigOption", "audit_cli", "audit_cli_failure", "cli_errors", "console_err", "load"]


log = logging.getLogger("tailops.cli")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (default: $TAILOPS_CONFIG, else /etc/tailops/config.yaml if present).",
        show_default=False,
    ),
]


def console_err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def exit_code_for(exc: TailopsError) -> int:
    """The exit code of a failed command (tailops.errors.CLI_EXIT: 2 usage/config, 1 other)."""
    return cli_exit_code(exc)


def cli_errors[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    """Turn TailopsError into one stderr line and an exit code (2 usage/config, 1 other)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TailopsError as exc:
            log.debug("command failed", exc_info=True)
            console_err(f"error: {exc.public_message()}")
            raise typer.Exit(exit_code_for(exc)) from None

    return wrapper


def audit_cli(settings: Settings, command: str, args: dict[str, Any], exc: TailopsError | None, **facts: Any) -> None:
    """Record a state-changing CLI command (transport ``cli``) with its true outcome."""
    from tailops.audit import record_cli

    record_cli(
        settings.audit_path,
        command,
        args,
        outcome="error" if exc else "ok",
        error=exc.public_message() if exc else None,
        rotate_bytes=settings.audit.rotate_bytes,
        **facts,
    )


def audit_cli_failure(settings: Settings, command: str, args: dict[str, Any], exc: TailopsError, **facts: Any) -> None:
    """Record a refused/failed state change; a broken audit log must not hide the first error."""
    try:
        audit_cli(settings, command, args, exc, **facts)
    except AuditError as audit_exc:
        console_err(f"warning: {audit_exc.public_message()}")


def load(config: Path | None, **overrides: Any) -> Settings:
    clean = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in overrides.items()}
    return load_config(config, **{k: v for k, v in clean.items() if v})
