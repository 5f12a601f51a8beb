"""The ``tailops`` command. Sub-command groups live in sibling modules and are
registered here; each is a thin layer over the library (no logic of its own)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer

from tailops import __version__
from tailops.cli.common import ConfigOption, cli_errors, load
from tailops.config import default_config_path

__all__ = ["app", "main"]

app = typer.Typer(
    name="tailops",
    help="MCP server that monitors Linux hosts and containers and changes them only through reviewed playbooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

# Command groups provided by other modules: (module, attribute, name).
_GROUPS = [
    ("tailops.cli.token", "app", "token"),
    ("tailops.cli.audit", "app", "audit"),
    ("tailops.cli.playbooks", "app", "playbooks"),
    ("tailops.cli.plans", "app", "plans"),
]
for _module, _attr, _name in _GROUPS:
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as _exc:
        if _exc.name != _module:
            raise
        continue
    app.add_typer(getattr(_mod, _attr), name=_name)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tailops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """tailops command line."""


@app.command()
@cli_errors
def serve(
    config: ConfigOption = None,
    transport: Annotated[
        str | None, typer.Option(help="http (streamable HTTP) or stdio. Default: server.transport.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="HTTP listen address. Default: server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (0 = any free port). Default: server.port.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory. Default: server.data_dir.")] = None,
    read_only: Annotated[
        bool | None, typer.Option("--read-only/--no-read-only", help="Expose no tool that can lead to a change.")
    ] = None,
) -> None:
    """Run the MCP server (streamable HTTP with /health and /metrics, or stdio)."""
    from tailops.server.run import serve as run_serve

    settings = load(
        config,
        server={"transport": transport, "host": host, "port": port, "data_dir": data_dir, "read_only": read_only},
    )
    run_serve(settings, config_path=config or default_config_path())


@config_app.command("check")
@cli_errors
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration; exit 2 with the offending key if it is wrong."""
    settings = load(config)
    typer.echo(f"config OK (data dir {settings.server.data_dir})")


@config_app.command("show")
@cli_errors
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (file + environment + defaults) as JSON."""
    settings = load(config)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


@config_app.command("reference")
def config_reference() -> None:
    """Print the config reference table (Markdown) that the README embeds."""
    from tailops.config import config_reference_markdown

    typer.echo(config_reference_markdown(), nl=False)


def main() -> None:
    app()
