"""The ``tailops`` command. Sub-command groups live in sibling modules and are
registered here; each is a thin layer over the library (no logic of its own)."""

from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tailops import __version__
from tailops.cli.common import ConfigOption, cli_errors, load
from tailops.config import Settings, default_config_path

__all__ = ["build_app", "main"]  # and `app` (module __getattr__)

# Command groups provided by other modules: (module, attribute, name).
_GROUPS = [
    ("tailops.cli.token", "app", "token"),
    ("tailops.cli.audit", "app", "audit"),
    ("tailops.cli.playbooks", "app", "playbooks"),
    ("tailops.cli.plans", "app", "plans"),
    ("tailops.cli.nodes", "app", "nodes"),
    ("tailops.cli.hosts", "app", "hosts"),
    ("tailops.cli.drift", "app", "drift"),
    ("tailops.cli.notifications", "app", "notifications"),
    ("tailops.cli.inventory", "app", "inventory"),
]
# Single commands provided by other modules: (module, function, name).
_COMMANDS = [
    ("tailops.cli.backup", "backup", "backup"),
    ("tailops.cli.backup", "restore", "restore"),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tailops {__version__}")
        typer.echo(version_details())
        raise typer.Exit()


def version_details() -> str:
    """Catalog and schema lines of ``--version``: what an upgrade changes. Config problems
    do not stop ``--version`` (it uses $TAILOPS_CONFIG or /etc/tailops/config.yaml, like serve)."""
    from tailops.config import load_config
    from tailops.errors import ConfigError
    from tailops.health import catalog_facts, lock_path
    from tailops.store import load_migrations

    schema = f"store schema: v{load_migrations()[-1].version} (migrations run on start)"
    try:
        settings = load_config(None)
    except ConfigError as exc:
        return f"catalog: unknown ({exc.message})\n{schema}"
    facts = catalog_facts(settings)
    if facts.lock_sha256 is None:
        catalog = f"catalog: {lock_path(settings).parent} ({facts.problem})"
    else:
        catalog = (
            f"catalog: {facts.playbooks} playbooks, lock sha256 {facts.lock_sha256} ({lock_path(settings).parent})"
        )
    return f"{catalog}\n{schema}"


def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """tailops command line."""


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
    run_serve(settings, config_path=config or default_config_path(), preflight=_check_catalog)


def _check_catalog(settings: Settings) -> None:
    """Before serving: the catalog against its lock (reported, not fatal: drifted playbooks
    stay refused per plan, see :mod:`tailops.changes.startup_check`)."""
    if "changes" in settings.tools.groups and not settings.server.read_only:
        from tailops.changes.startup_check import check_catalog_at_start

        check_catalog_at_start(settings)


@cli_errors
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration; exit 2 with the offending key if it is wrong."""
    settings = load(config)
    typer.echo(f"config OK (data dir {settings.server.data_dir})")


@cli_errors
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (file + environment + defaults) as JSON."""
    settings = load(config)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


def config_reference() -> None:
    """Print the config reference table (Markdown) that the README embeds."""
    from tailops.config import config_reference_markdown

    typer.echo(config_reference_markdown(), nl=False)


def build_app(*, full: bool = True) -> typer.Typer:
    """The ``tailops`` command. ``full=False`` leaves out the command groups (token, audit,
    playbooks, plans, notifications): ``tailops serve`` needs none of them, and their imports (PyJWT and
    cryptography, jsonschema, rich tables) would only delay the server's first answer."""
    app = typer.Typer(
        name="tailops",
        help="MCP server that monitors Linux hosts and containers and changes them only through reviewed playbooks.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    app.command()(serve)
    config_app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)
    config_app.command("check")(config_check)
    config_app.command("show")(config_show)
    config_app.command("reference")(config_reference)
    app.add_typer(config_app, name="config")
    if full:
        from tailops.cli.init import init

        app.command("init")(init)
        for module, attr, name in _GROUPS:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                continue
            app.add_typer(getattr(mod, attr), name=name)
        for module, attr, name in _COMMANDS:
            app.command(name)(getattr(importlib.import_module(module), attr))
    return app


@functools.cache
def _full_app() -> typer.Typer:
    return build_app(full=True)


def __getattr__(name: str) -> Any:
    # ``tailops.cli.main.app``: the whole command (tests, docs), built on first use.
    if name == "app":
        return _full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    build_app(full=sys.argv[1:2] != ["serve"])()
