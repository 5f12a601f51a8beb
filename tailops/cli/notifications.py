"""``tailops notifications``: see the webhook outbox, retry dead notifications, send a test.

A thin layer over :mod:`tailops.notify` (no delivery logic of its own):

- ``list``: outbox rows, newest first (``--state pending|sending|delivered|dead``);
- ``show ID``: one row and every attempt (outcome, HTTP status, error);
- ``retry ID… | --all``: make dead rows due again (a running server sends them
  within its poll interval);
- ``test [--endpoint NAME]``: queue a ``test`` event for the endpoint(s) and send it
  from this process now, printing what each receiver answered (exit 1 if one did not
  accept it).

IDs are notification ids or unique prefixes of at least 8 hex digits. ``retry`` and
``test`` are recorded in the audit log. Nothing printed here contains a URL or a
secret: endpoints are shown by name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tailops.cli.common import ConfigOption, audit_cli, audit_cli_failure, cli_errors, console_err, load
from tailops.config import Settings
from tailops.errors import ConfigError, InvalidInput, NotFound, TailopsError
from tailops.notify import outbox
from tailops.notify.events import Event, EventKind
from tailops.notify.worker import Notifier
from tailops.store import Store

__all__ = ["app"]

app = typer.Typer(help="Webhook notifications: list the outbox, retry dead ones, send a test.", no_args_is_help=True)


def _console() -> Console:
    return Console(width=160, highlight=False, soft_wrap=False)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "-"


def _resolve(store: Store, value: str) -> str:
    text = value.strip().lower()
    if len(text) < 8 or any(c not in "0123456789abcdef" for c in text) or len(text) > 32:
        raise InvalidInput(f"{value!r} is not a notification id (8 to 32 hex digits).")
    rows = store.query("SELECT id FROM notifications WHERE id >= ? AND id < ? LIMIT 2", (text, text + "g"))
    if not rows:
        raise NotFound(f"no notification {text}.")
    if len(rows) > 1:
        raise InvalidInput(f"notification id prefix {text} is ambiguous; give more digits.")
    return str(rows[0]["id"])


@app.command("list")
@cli_errors
def list_command(
    state: Annotated[
        str | None, typer.Option("--state", help="Only: pending, sending, delivered, dead.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most rows shown.")] = 50,
    config: ConfigOption = None,
) -> None:
    """List outbox rows, newest first, with the count per state."""
    settings = load(config)
    store = Store(settings.db_path)
    try:
        rows = outbox.list_notifications(store, state=state, limit=limit)
        per_state = outbox.counts(store)
    finally:
        store.close()
    typer.echo(", ".join(f"{n} {s}" for s, n in per_state.items()))
    if not rows:
        console_err("no notifications" + (f" {state}" if state else "") + ".")
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("ID", "ENDPOINT", "EVENT", "STATE", "TRIES", "LAST", "CREATED", "NEXT"):
        table.add_column(column, no_wrap=True)
    for r in rows:
        last = r.last_error or (str(r.last_status) if r.last_status else "-")
        table.add_row(
            r.id[:12],
            r.endpoint,
            r.kind,
            r.state,
            str(r.attempts),
            last[:60],
            _when(r.created_at),
            _when(r.next_attempt_at) if r.state == "pending" else "-",
        )
    _console().print(table)


@app.command("show")
@cli_errors
def show(
    notification: Annotated[str, typer.Argument(help="Notification id or a unique prefix (8+ hex digits).")],
    config: ConfigOption = None,
) -> None:
    """One notification and each of its delivery attempts."""
    settings = load(config)
    store = Store(settings.db_path)
    try:
        row = outbox.get_notification(store, _resolve(store, notification))
        attempts = outbox.list_attempts(store, row.id)
    finally:
        store.close()
    console = _console()
    console.print(f"notification {row.id}  ({row.kind} → {row.endpoint})")
    console.print(f"state        {row.state} after {row.attempts} attempt(s)")
    console.print(f"event        {row.event_id}" + (f", plan {row.plan_id}" if row.plan_id else ""))
    console.print(f"created      {_when(row.created_at)}, delivered {_when(row.delivered_at)}")
    for a in attempts:
        status = f"HTTP {a.status}" if a.status else ""
        console.print(
            f"attempt {a.attempt:<3} {_when(a.started_at)} {a.outcome:<9} "
            f"{(a.finished_at - a.started_at) * 1000:7.0f} ms {status} {a.error or ''}".rstrip()
        )


@app.command("retry")
@cli_errors
def retry(
    notifications: Annotated[
        list[str] | None, typer.Argument(help="Dead notification ids (or prefixes).", show_default=False)
    ] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Retry every dead notification.")] = False,
    config: ConfigOption = None,
) -> None:
    """Make dead notifications due again (fresh attempts); a running server sends them."""
    settings = load(config)
    args: dict[str, Any] = {"notifications": notifications or [], "all": all_dead}
    if bool(notifications) == all_dead:
        raise InvalidInput("give notification ids or --all (not both, not neither).")
    store = Store(settings.db_path)
    try:
        ids = None if all_dead else [_resolve(store, n) for n in notifications or []]
        changed = outbox.retry_dead(store, ids)
    except TailopsError as exc:
        audit_cli_failure(settings, "notifications retry", args, exc)
        raise
    finally:
        store.close()
    audit_cli(settings, "notifications retry", args, None, retried=changed)
    typer.echo(f"{changed} notification(s) due again.")


def _endpoints(settings: Settings, names: list[str] | None) -> list[str]:
    configured = [e.name for e in settings.notifications.endpoints]
    if not configured:
        raise ConfigError("no notification endpoints are configured (notifications.endpoints).")
    if not names:
        return configured
    unknown = sorted(set(names) - set(configured))
    if unknown:
        raise NotFound(f"no endpoint named {', '.join(unknown)}; configured: {', '.join(configured)}.")
    return list(dict.fromkeys(names))


@app.command("test")
@cli_errors
def test(
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint", "-e", help="Endpoint name (repeatable). Default: every endpoint.", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Send a test notification now and print what each endpoint answered (exit 1 unless all accepted)."""
    settings = load(config)
    args: dict[str, Any] = {"endpoint": endpoint or []}
    store = Store(settings.db_path)
    try:
        names = _endpoints(settings, endpoint)
        event = Event(kind=EventKind.TEST, reason="test notification sent by `tailops notifications test`")
        ids = outbox.enqueue(store, settings, event, endpoints=names)
        # One attempt each: a test reports what the receiver answered now, it does not retry.
        once = settings.model_copy(
            update={"notifications": settings.notifications.model_copy(update={"max_attempts": 1})}
        )
        worker = Notifier(store, once, only=set(ids), housekeeping=False)
        worker.start()
        try:
            longest = max(e.timeout.total_seconds() for e in settings.notifications.endpoints if e.name in names)
            rows = worker.wait_settled(ids, timeout=longest + 2)
        finally:
            worker.stop()
        outbox.abandon(store, ids)  # a test is one attempt: no server retries it later
        rows = [outbox.get_notification(store, nid) for nid in ids]
    except TailopsError as exc:
        audit_cli_failure(settings, "notifications test", args, exc)
        raise
    finally:
        store.close()
    failed = [r for r in rows if r.state != "delivered"]
    for r in rows:
        detail = f"HTTP {r.last_status}" if r.last_status else ""
        if r.state != "delivered":
            detail = r.last_error or detail
        typer.echo(f"{r.endpoint}: {'delivered' if r.state == 'delivered' else 'NOT delivered'} {detail}".rstrip())
    audit_cli(
        settings,
        "notifications test",
        args,
        None,
        delivered=len(rows) - len(failed),
        failed=[r.endpoint for r in failed],
    )
    if failed:
        raise typer.Exit(1)
