"""``tailops plans``: review, approve, deny, apply and cancel changes from a shell.

A thin layer over :mod:`tailops.changes` (no lifecycle logic of its own):
``list``, ``show PLAN`` (per host, per task, with the diffs), ``approve PLAN``,
``deny PLAN --reason``, ``apply PLAN`` (streams progress; Ctrl-C cancels the
run), ``runs``, ``run RUN`` and ``cancel RUN`` (works on a run a server is
applying: the server polls for the request). PLAN and RUN are ids or unique
prefixes of at least 8 hex digits.

The principal is the invoking OS user (transport ``cli``) with admin-equivalent
rights — whoever can run this can read the data dir anyway — but approval
rules still apply: the CLI user is never the approver of a plan they (as the
same OS user, e.g. over stdio) requested. ``approve``, ``deny``, ``apply`` and
``cancel`` are recorded in the audit log with the plan/run ids, refusals too.
Bad input prints one line and exits 2.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from tailops.auth import local_user
from tailops.changes import approvals, plans
from tailops.changes.models import RunEvent
from tailops.changes.planner import inventory_path
from tailops.changes.plans import Plan, Run
from tailops.cli.common import ConfigOption, audit_cli, audit_cli_failure, cli_errors, console_err, load
from tailops.config import Settings
from tailops.errors import ChangeError, TailopsError
from tailops.principal import Principal
from tailops.store import Store

if TYPE_CHECKING:
    from tailops.changes.engine import ChangeEngine

__all__ = ["app", "cli_principal"]

app = typer.Typer(
    help="Plans and runs of the change engine: list, show, approve, deny, apply, cancel.", no_args_is_help=True
)

PlanArg = Annotated[str, typer.Argument(help="Plan id or a unique prefix (at least 8 hex digits).")]
RunArg = Annotated[str, typer.Argument(help="Run id or a unique prefix (at least 8 hex digits).")]


def cli_principal() -> Principal:
    """The invoking OS user: admin-equivalent locally, never the requester of what it approves."""
    return Principal(subject=f"local:{local_user()}", scopes=frozenset({"admin"}), transport="cli")


def _console() -> Console:
    return Console(width=160, highlight=False, soft_wrap=False)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


# --------------------------------------------------------------------------- reading
@app.command("list")
@cli_errors
def list_command(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only: pending, approved, denied, blocked, stale, applied, expired."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most plans shown.")] = 50,
    config: ConfigOption = None,
) -> None:
    """List plans, newest first."""
    settings = load(config)
    store = Store(settings.db_path)
    try:
        found, total = plans.list_plans(store, status=status, limit=limit)
    finally:
        store.close()
    if not found:
        console_err("no plans" + (f" with status {status}" if status else "") + ".")
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("PLAN", "PLAYBOOK", "STATUS", "RISK", "REQUESTER", "HOSTS", "CREATED", "EXPIRES"):
        table.add_column(column, no_wrap=True)
    for p in found:
        changing = sum(1 for h in p.hosts if h.changed_tasks)
        table.add_row(
            p.id[:12],
            f"{p.playbook} {p.version}",
            p.status,
            p.risk,
            str(p.requester.get("subject")),
            f"{changing}/{len(p.hosts)} changing",
            _when(p.created_at),
            _when(p.expires_at),
        )
    _console().print(table)
    if total > len(found):
        console_err(f"{total - len(found)} older plan(s) not shown (--limit).")


def _print_plan(console: Console, plan: Plan, store: Store, settings: Settings) -> None:
    console.print(f"plan        {plan.id}")
    console.print(f"playbook    {plan.playbook} {plan.version} (sha256 {plan.playbook_sha256[:16]})")
    console.print(f"status      {plan.status}" + (f" — {plan.status_reason}" if plan.status_reason else ""))
    console.print(f"risk        {plan.risk} (apply needs scope {plan.scope})")
    requester = plan.requester
    human = f" [{requester.get('human_login')}]" if requester.get("human_login") else ""
    console.print(f"requested   by {requester.get('subject')}{human} via {requester.get('transport')}")
    console.print(f"created     {_when(plan.created_at)}, expires {_when(plan.expires_at)}")
    console.print(f"params      {plans.canonical_json(plan.params)}")
    console.print(f"limit       {plan.limit or '(all hosts)'}")
    console.print(f"inventory   sha256 {plan.inventory_sha256[:16]}")
    needed, given = approvals.standing(store, settings.changes, plan, lambda: inventory_path(settings))
    console.print(f"approvals   {given} of {needed.approvals_needed} — {needed.summary()}")
    for decision in plans.approvals_for(store, plan.id):
        used = f", used by run {decision.used_by_run}" if decision.used_by_run else ""
        until = f", valid until {_when(decision.expires_at)}" if decision.expires_at else ""
        console.print(
            f"{decision.decision:<11} by {decision.approver_subject} at {_when(decision.created_at)}{until}{used}"
            + (f": {decision.comment}" if decision.comment else "")
        )
    runs, _ = plans.list_runs(store, plan_id=plan.id, limit=10)
    for run in runs:
        console.print(f"run         {run.id} {run.status}" + (f" — {run.status_reason}" if run.status_reason else ""))
    for host in plan.hosts:
        console.print()
        changing = ", ".join(host.changed_tasks) or "nothing"
        console.print(f"[bold]host {host.host}[/bold] — {host.status}; would change: {changing}")
        table = Table(box=None, show_edge=False, pad_edge=False)
        for column in ("TASK", "STATUS", "CHANGED", "NOTE"):
            table.add_column(column, no_wrap=column != "NOTE", overflow="fold")
        for task in host.tasks:
            note = "not simulated in check mode" if task.not_simulated else ""
            if task.status in ("failed", "unreachable") and task.msg:
                note = task.msg[:300]
            table.add_row(task.task, task.status, "yes" if task.changed else "", note)
        console.print(table)
        for task in host.tasks:
            if task.diff:
                console.print(f"--- diff: {host.host} / {task.task}")
                console.print(Syntax(task.diff, "diff", theme="ansi_dark", background_color="default"))


@app.command("show")
@cli_errors
def show(plan: PlanArg, config: ConfigOption = None) -> None:
    """Show one plan: per host, per task, with the diffs; approvals and runs."""
    settings = load(config)
    store = Store(settings.db_path)
    try:
        found = plans.get_plan(store, plans.resolve_plan_id(store, plan))
        _print_plan(_console(), found, store, settings)
    finally:
        store.close()


@app.command("runs")
@cli_errors
def runs_command(
    status: Annotated[
        str | None, typer.Option("--status", help="Only: running, succeeded, failed, canceled, interrupted.")
    ] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Only runs of this plan (id or prefix).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most runs shown.")] = 50,
    config: ConfigOption = None,
) -> None:
    """List runs, newest first."""
    settings = load(config)
    store = Store(settings.db_path)
    try:
        plan_id = plans.resolve_plan_id(store, plan) if plan else None
        found, _total = plans.list_runs(store, status=status, plan_id=plan_id, limit=limit)
    finally:
        store.close()
    if not found:
        console_err("no runs.")
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("RUN", "PLAN", "STATUS", "BY", "STARTED", "FINISHED", "REASON"):
        table.add_column(column, no_wrap=column != "REASON", overflow="fold")
    for r in found:
        table.add_row(
            r.id[:12],
            r.plan_id[:12],
            r.status,
            r.requester_subject,
            _when(r.started_at),
            _when(r.finished_at),
            r.status_reason or "",
        )
    _console().print(table)


_FOLLOWED_KINDS = ["task_result", "warning", "run_end"]
_FOLLOW_POLL_S = 0.5


def _event_line(e: plans.StoredEvent) -> str:
    changed = " (changed)" if e.changed else ""
    return f"  [{e.seq:>4}] {e.kind:<11} {e.host or '':<24} {e.task or '':<40} {e.status or ''}{changed}".rstrip()


def _follow(console: Console, store: Store, run: Run) -> Run:
    """Print a running run's events as they are stored until it ends; the final row.

    Following only reads: Ctrl-C stops following, never the run (``tailops plans cancel``
    does that). A run whose server process is gone stays ``running`` in the store until
    that server starts again and marks it ``interrupted``; following it would wait
    forever, so that ends with an error instead."""
    seen = -1  # sequence numbers start at 0
    while True:
        for e in plans.run_events(store, run.id, limit=1000, kinds=_FOLLOWED_KINDS, after=seen):
            console.print(_event_line(e))
            seen = e.seq
        if run.status != "running":
            return run
        if not plans.process_alive(run.pid, run.pid_started):
            raise ChangeError(
                f"run {run.id} is still marked running, but the server process applying it (pid {run.pid}) is gone.",
                hint="It is marked interrupted when that server starts again; see its log.",
            )
        time.sleep(_FOLLOW_POLL_S)
        run = plans.get_run(store, run.id)


def _print_run(console: Console, run: Run, store: Store, events: int) -> None:
    console.print(f"run         {run.id}")
    console.print(f"plan        {run.plan_id}")
    console.print(f"status      {run.status}" + (f" — {run.status_reason}" if run.status_reason else ""))
    console.print(f"by          {run.requester_subject} via {run.requester.get('transport')}")
    console.print(f"started     {_when(run.started_at)}, finished {_when(run.finished_at)}")
    if run.cancel_requested_by:
        console.print(f"cancel      requested by {run.cancel_requested_by} at {_when(run.cancel_requested_at)}")
    for host in run.outcome:
        console.print(
            f"host {host.host}: {host.status}; planned: {', '.join(host.planned) or 'nothing'}; "
            f"actual: {', '.join(host.actual) or 'nothing'}"
        )
    for mismatch in run.mismatches:
        console.print(f"mismatch    {mismatch}")
    if events:
        for e in plans.run_events(store, run.id, limit=events, kinds=_FOLLOWED_KINDS):
            console.print(_event_line(e))
        console.print(f"({run.event_count} events stored)")


@app.command("run")
@cli_errors
def run_command(
    run: RunArg,
    events: Annotated[int, typer.Option("--events", min=0, max=10000, help="Stored events shown.")] = 200,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print events as they come until the run ends (Ctrl-C: stop).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show one run: status, planned vs actual per host, mismatches, events."""
    settings = load(config)
    store = Store(settings.db_path)
    console = _console()
    try:
        found = plans.get_run(store, plans.resolve_run_id(store, run))
        if follow and found.status == "running":
            console.print(f"following run {found.id} (Ctrl-C stops following, not the run)")
            try:
                found = _follow(console, store, found)
            except KeyboardInterrupt:
                console_err("stopped following; the run goes on.")
                raise typer.Exit(130) from None
            _print_run(console, found, store, 0)
        else:
            _print_run(console, found, store, events)
    finally:
        store.close()


# --------------------------------------------------------------------------- deciding
@contextlib.contextmanager
def _engine(settings: Settings) -> Iterator[ChangeEngine]:
    """The change engine on the data dir, without a server runtime (no Docker engine, no
    sampler): the CLI only needs the store, the audit log and an executor."""
    from tailops.audit import AuditLog
    from tailops.changes.engine import ChangeEngine

    store = Store(settings.db_path)
    audit = AuditLog(settings.audit_path, rotate_bytes=settings.audit.rotate_bytes)
    try:
        yield ChangeEngine(settings, store, audit, instance_id=f"cli-{uuid.uuid4().hex}")
    finally:
        audit.close()
        store.close()


@app.command("approve")
@cli_errors
def approve(
    plan: PlanArg,
    comment: Annotated[str | None, typer.Option("--comment", help="Why it is fine (kept with the approval).")] = None,
    config: ConfigOption = None,
) -> None:
    """Approve a plan requested by someone else (single use; expires after changes.approval_ttl)."""
    settings = load(config)
    args: dict[str, Any] = {"plan": plan, "comment": comment}
    plan_id: str | None = None
    with _engine(settings) as engine:
        try:
            plan_id = plans.resolve_plan_id(engine.store, plan)
            approval = engine.approve(cli_principal(), plan_id, comment)
        except TailopsError as exc:
            audit_cli_failure(settings, "plans approve", args, exc, plan_id=plan_id)
            raise
    audit_cli(settings, "plans approve", args, None, plan_id=plan_id, approval_id=approval.id)
    typer.echo(f"approved plan {plan_id} until {_when(approval.expires_at)} (approval {approval.id}).")


@app.command("deny")
@cli_errors
def deny(
    plan: PlanArg,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why not (required; kept with the denial).", show_default=False)
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Deny a plan: it can then never be applied."""
    settings = load(config)
    args: dict[str, Any] = {"plan": plan, "reason": reason}
    plan_id: str | None = None
    with _engine(settings) as engine:
        try:
            plan_id = plans.resolve_plan_id(engine.store, plan)
            denial = engine.deny(cli_principal(), plan_id, reason or "")
        except TailopsError as exc:
            audit_cli_failure(settings, "plans deny", args, exc, plan_id=plan_id)
            raise
    audit_cli(settings, "plans deny", args, None, plan_id=plan_id, approval_id=denial.id)
    typer.echo(f"denied plan {plan_id}.")


# --------------------------------------------------------------------------- running
@app.command("apply")
@cli_errors
def apply(plan: PlanArg, config: ConfigOption = None) -> None:
    """Apply an approved plan here and stream its progress (Ctrl-C cancels the run)."""
    settings = load(config)
    args: dict[str, Any] = {"plan": plan}
    principal = cli_principal()
    plan_id: str | None = None
    with _engine(settings) as engine:
        try:
            plan_id = plans.resolve_plan_id(engine.store, plan)
            # No start record, no run: the audit log must know before anything can change.
            audit_cli(settings, "plans apply", args, None, plan_id=plan_id, phase="start")
        except TailopsError as exc:
            audit_cli_failure(settings, "plans apply", args, exc, plan_id=plan_id)
            raise
        total = 1
        done = 0
        run_ids: list[str] = []

        def on_start(run: Run, applied: Plan) -> None:
            nonlocal total
            total = max(1, sum(len(h.tasks) for h in applied.hosts))
            run_ids.append(run.id)

        def on_event(event: RunEvent) -> None:
            nonlocal done
            if event.kind != "task_result":
                return
            done += 1
            changed = " (changed)" if event.changed else ""
            typer.echo(f"[{done:>3}/{max(total, done)}] {event.host}  {event.task}  {event.status}{changed}")

        async def main() -> Run:
            cancel = anyio.Event()
            finished: list[Run] = []
            failed: list[TailopsError] = []
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            console_err("canceling the run ...")
                            cancel.set()

                if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
                    tg.start_soon(watch_signals)
                try:
                    finished.append(
                        await engine.apply(
                            principal, plan_id or "", on_event=on_event, cancel=cancel, on_start=on_start
                        )
                    )
                except TailopsError as exc:  # raised outside the task group, unwrapped
                    failed.append(exc)
                finally:
                    tg.cancel_scope.cancel()
            if failed:
                raise failed[0]
            return finished[0]

        started = time.monotonic()
        try:
            run = anyio.run(main)
        except TailopsError as exc:
            audit_cli_failure(
                settings, "plans apply", args, exc, plan_id=plan_id, run_id=run_ids[0] if run_ids else None
            )
            raise
        audit_cli(settings, "plans apply", args, None, plan_id=plan_id, run_id=run.id, run_status=run.status)
        console = _console()
        console.print(f"run {run.id}: {run.status} in {time.monotonic() - started:.1f} s")
        _print_run(console, run, engine.store, 0)
    if run.status != "succeeded":
        raise typer.Exit(1)


@app.command("cancel")
@cli_errors
def cancel(run: RunArg, config: ConfigOption = None) -> None:
    """Ask a running run to stop (the process applying it stops Ansible within about a second)."""
    settings = load(config)
    args: dict[str, Any] = {"run": run}
    run_id: str | None = None
    with _engine(settings) as engine:
        try:
            run_id = plans.resolve_run_id(engine.store, run)
            found = anyio.run(functools.partial(engine.cancel, cli_principal(), run_id, via="cli"))
        except TailopsError as exc:
            audit_cli_failure(settings, "plans cancel", args, exc, run_id=run_id)
            raise
    audit_cli(settings, "plans cancel", args, None, run_id=run_id, plan_id=found.plan_id)
    typer.echo(f"cancel requested for run {run_id} (plan {found.plan_id[:12]}).")
