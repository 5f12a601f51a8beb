"""Apply an approved plan — exactly the reviewed change, or nothing.

Why: DESIGN.md "The change lifecycle", step 4. Between approval and apply the
catalog, the inventory or the hosts can change; the executor re-checks all of
it and refuses with a precise message before anything runs:

1. the plan exists, and the caller holds the playbook's scope;
2. it is unexpired (an approval never outlives its plan, so this is checked
   first: the useful answer is "plan again");
3. it is approved — by a live approval: unused and unexpired;
4. the catalog entry has the same version and SHA-256 as when planned;
5. the inventory snapshot is unchanged;
6. a FRESH check run predicts exactly the planned changes (per host, per
   task: changed + diff); any difference marks the plan ``stale`` and raises
   :class:`~tailops.errors.StalePlan` showing it
   ("host h1, task X: planned 'tbdemo (1.0-1 => 1.1-1)', now: no change").

Then one transaction consumes the approval and writes the run row
(``running``, this server instance and pid) BEFORE Ansible starts, so a crash
leaves an ``interrupted`` run (:func:`tailops.changes.plans.mark_interrupted`
at the next start), never a silent gap. The real run's events are stored in
batches by a writer task (worker thread, never the event loop) and forwarded
to the caller; a cancel — the caller's ``cancel`` event, the awaiting task
being cancelled, ``cancel_run`` in this process (``Runtime.active_runs``) or a
cancel request in the store (polled, so the CLI can cancel a server's run) —
stops Ansible and the run ends ``canceled``. Finally actual vs planned is
recorded per host, with every mismatch listed.

What it must never do: start Ansible without a consumed approval and a
``running`` row, apply a plan whose re-check differs from the plan, or let a
failure to deliver progress to a client stop (or hide) a run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import psutil

from tailops.auth.scopes import require_scope
from tailops.changes import approvals, plans
from tailops.changes.catalog import Catalog, CatalogEntry
from tailops.changes.models import RunEvent, RunMode, RunRequest, RunResult
from tailops.changes.planner import check_run, inventory_path, inventory_snapshot, load_catalog
from tailops.changes.plans import HostOutcome, HostPrediction, Plan, Run, RunState, TaskPrediction
from tailops.changes.runner import run_playbook
from tailops.errors import ApprovalError, CatalogError, ChangeError, StalePlan, TailopsError
from tailops.principal import Principal

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__ = [
    "EventSink",
    "apply_plan",
    "compare_predictions",
    "describe_task",
    "outcome_of",
    "summarize_diff",
]

log = logging.getLogger("tailops.changes.executor")

EventSink = Callable[[RunEvent], Awaitable[None] | None]
_FLUSH_EVERY_S = 0.25
_FLUSH_AT = 50
_CANCEL_POLL_S = 0.5
_SUMMARY_CHARS = 160


# --------------------------------------------------------------------------- comparing predictions
def summarize_diff(diff: str | None) -> str:
    """A one-line summary of a diff: the +/- lines of a unified diff, the indented lines of a
    module's prepared text (apt: ``tbdemo (1.0-1 => 1.1-1)``), else its first line."""
    if not diff:
        return ""
    lines = [ln.rstrip() for ln in diff.splitlines() if ln.strip()]
    picked = [ln for ln in lines if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    if not picked:
        picked = [ln.strip() for ln in lines if ln[:1].isspace()]
    if not picked:
        picked = lines[:1]
    text = "; ".join(p.strip() for p in picked)
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 3] + "..."


def describe_task(task: TaskPrediction | None) -> str:
    """How a task's effect reads in a stale-plan or mismatch message."""
    if task is None:
        return "not run"
    if task.status in ("failed", "unreachable"):
        msg = (task.msg or "").strip().replace("\n", " ")
        return f"{task.status}" + (f" ({msg[:120]})" if msg else "")
    if not task.changed:
        return "no change"
    summary = summarize_diff(task.diff)
    return f"'{summary}'" if summary else "a change (no diff)"


def _keyed(tasks: Sequence[TaskPrediction]) -> dict[tuple[str, int], TaskPrediction]:
    seen: dict[str, int] = {}
    out: dict[tuple[str, int], TaskPrediction] = {}
    for task in tasks:
        n = seen.get(task.task, 0)
        seen[task.task] = n + 1
        out[(task.task, n)] = task
    return out


def _label(key: tuple[str, int]) -> str:
    return key[0] if key[1] == 0 else f"{key[0]} (#{key[1] + 1})"


def compare_predictions(
    planned: Sequence[HostPrediction], now: Sequence[HostPrediction], *, now_word: str = "now"
) -> list[str]:
    """Every difference in changed + diff, per host and task; [] when they match.

    A host that is missing, new, or failed/unreachable now is a difference too.
    """
    out: list[str] = []
    before = {h.host: h for h in planned}
    after = {h.host: h for h in now}
    for name in sorted(set(before) | set(after)):
        p, n = before.get(name), after.get(name)
        if n is None:
            out.append(f"host {name}: planned, {now_word}: not in the run (inventory or limit changed)")
            continue
        if p is None:
            out.append(f"host {name}: not in the plan, {now_word}: {n.status}")
            continue
        if n.status in ("failed", "unreachable") and p.status not in ("failed", "unreachable"):
            bad = next((t for t in n.tasks if t.status in ("failed", "unreachable")), None)
            where = f" at task '{bad.task}'" if bad else ""
            msg = f": {(bad.msg or '').strip()[:200]}" if bad and bad.msg else ""
            out.append(f"host {name}: planned {p.status}, {now_word}: {n.status}{where}{msg}")
        pk, nk = _keyed(p.tasks), _keyed(n.tasks)
        for key in list(pk) + [k for k in nk if k not in pk]:
            pt, nt = pk.get(key), nk.get(key)
            p_changed = bool(pt and pt.changed)
            n_changed = bool(nt and nt.changed)
            if not p_changed and not n_changed:
                continue
            if p_changed == n_changed and (pt.diff if pt else None) == (nt.diff if nt else None):
                continue
            out.append(f"host {name}, task {_label(key)}: planned {_effect(pt)}, {now_word}: {_effect(nt)}")
    return out


def _effect(task: TaskPrediction | None) -> str:
    if task is not None and not task.changed and task.status not in ("failed", "unreachable"):
        return "no change"
    return describe_task(task)


def outcome_of(plan: Plan, result: RunResult) -> tuple[list[HostOutcome], list[str]]:
    """Actual vs planned per host (changed tasks) and every mismatch (changed + diff)."""
    actual = plans.prediction_from(result.hosts)
    mismatches = compare_predictions(plan.hosts, actual, now_word="actual")
    by_host = {h.host: h for h in actual}
    outcome: list[HostOutcome] = []
    for planned in plan.hosts:
        real: HostPrediction | None = by_host.get(planned.host)
        outcome.append(
            HostOutcome(
                host=planned.host,
                status=real.status if real else "missing",
                planned=planned.changed_tasks,
                actual=real.changed_tasks if real else [],
                mismatches=[m for m in mismatches if m.startswith((f"host {planned.host},", f"host {planned.host}:"))],
            )
        )
    for extra in sorted(set(by_host) - {h.host for h in plan.hosts}):
        real = by_host[extra]
        outcome.append(
            HostOutcome(
                host=extra,
                status=real.status,
                planned=[],
                actual=real.changed_tasks,
                mismatches=[m for m in mismatches if m.startswith((f"host {extra},", f"host {extra}:"))],
            )
        )
    return outcome, mismatches


# --------------------------------------------------------------------------- checks
def _fmt(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _precheck(rt: Runtime, principal: Principal, plan_id: str) -> tuple[Plan, plans.Approval]:
    """Checks 1-3 (blocking: store reads)."""
    now = time.time()
    plan = plans.get_plan(rt.store, plan_id, now=now)
    require_scope(principal, plan.scope, f"applying plan {plan.id} (playbook {plan.playbook})")
    approval = plans.live_approval(rt.store, plan.id)
    if plan.stored_status == "applied":
        raise ApprovalError(
            f"plan {plan.id} was already applied ({plan.status_reason}); an approval is used once.",
            hint="Plan the change again if it is needed again.",
        )
    if plan.expires_at.timestamp() <= now and plan.stored_status in ("pending", "approved", "blocked"):
        raise ChangeError(
            f"plan {plan.id} expired at {_fmt(plan.expires_at.timestamp())}; it cannot be applied.",
            hint="Plan the change again (changes.plan_ttl).",
        )
    if plan.stored_status != "approved" or approval is None:
        why = {
            "pending": "it has not been approved",
            "denied": f"it was denied ({plan.status_reason or 'no reason given'})",
            "blocked": f"it is blocked ({plan.status_reason})",
            "stale": f"it is stale ({plan.status_reason})",
        }.get(plan.stored_status, f"it is {plan.stored_status}")
        raise ApprovalError(
            f"plan {plan.id} cannot be applied: {why}.",
            hint="A person other than the requester approves it first (approve_plan or `tailops plans approve`)."
            if plan.stored_status == "pending"
            else None,
        )
    if approval.used_at is not None:
        raise ApprovalError(
            f"the approval of plan {plan.id} was already used by run {approval.used_by_run}; approvals are single use."
        )
    # Revoking a token voids what it authorised that has not happened yet.
    approvals.refuse_revoked_requester(rt.store, plan)
    approvals.refuse_revoked_approval(rt.store, plan, approval)
    assert approval.expires_at is not None
    if approval.expires_at.timestamp() <= now:
        raise ApprovalError(
            f"the approval of plan {plan.id} by {approval.approver_subject} expired at "
            f"{_fmt(approval.expires_at.timestamp())}.",
            hint="Ask for a new approval (changes.approval_ttl).",
        )
    return plan, approval


def _check_catalog_and_inventory(rt: Runtime, plan: Plan) -> tuple[Catalog, CatalogEntry, Path]:
    """Checks 4-5 (blocking: reads and hashes the catalog and the inventory)."""
    catalog = load_catalog(rt.config)
    try:
        entry = catalog.require_pinned(plan.playbook)
    except CatalogError as exc:
        raise CatalogError(
            f"plan {plan.id} refused: the catalog entry {plan.playbook} no longer matches its lock ({exc.message})",
            hint="Plan the change again once `tailops playbooks verify` passes.",
        ) from exc
    if entry.version != plan.version or entry.sha256 != plan.playbook_sha256:
        raise CatalogError(
            f"plan {plan.id} refused: it was planned with {plan.playbook} {plan.version} "
            f"(sha256 {plan.playbook_sha256[:12]}), the catalog now has {entry.version} (sha256 {entry.sha256[:12]}).",
            hint="Plan the change again with the current playbook.",
        )
    inventory = inventory_path(rt.config)
    snapshot = inventory_snapshot(inventory)
    if snapshot != plan.inventory_sha256:
        raise StalePlan(
            f"plan {plan.id} refused: the inventory changed since planning (snapshot {plan.inventory_sha256[:12]}, "
            f"now {snapshot[:12]}).",
            hint="Plan the change again against the current inventory.",
        )
    return catalog, entry, inventory


# --------------------------------------------------------------------------- event storage
class _EventWriter:
    """Buffers events in memory (event loop) and stores them in batches (worker thread)."""

    def __init__(self, rt: Runtime, run_id: str) -> None:
        self.rt = rt
        self.run_id = run_id
        self.buffer: list[RunEvent] = []
        self.next_seq = 0
        self.wake = anyio.Event()
        self.error: TailopsError | None = None

    def add(self, event: RunEvent) -> None:
        self.buffer.append(event)
        if len(self.buffer) >= _FLUSH_AT:
            self.wake.set()

    async def flush(self) -> None:
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        first = self.next_seq
        self.next_seq += len(batch)
        await self.rt.run_blocking(plans.append_events, self.rt.store, self.run_id, first, batch)

    async def loop(self, stop: anyio.Event) -> None:
        """Flush every ``_FLUSH_EVERY_S`` (or at ``_FLUSH_AT`` events). If the store fails, the
        run is stopped (fail closed: nothing changes hosts while its progress cannot be kept)."""
        try:
            while True:
                with anyio.move_on_after(_FLUSH_EVERY_S):
                    await self.wake.wait()
                self.wake = anyio.Event()
                await self.flush()
        except TailopsError as exc:
            log.exception("run events could not be stored; stopping the run", extra={"run_id": self.run_id})
            self.error = exc
            stop.set()


# --------------------------------------------------------------------------- apply
async def request_cancel(rt: Runtime, run_id: str, who: str) -> Run:
    """Ask a running run to stop: recorded in the store (a server in another process polls
    for it) and, for a run this process applies, signalled at once."""
    run = await rt.run_blocking(plans.request_cancel, rt.store, run_id, who)
    stop = rt.active_runs.get(run.id)
    if stop is not None:
        stop.set()
    return run


async def apply_plan(
    rt: Runtime,
    principal: Principal,
    plan_id: str,
    *,
    on_event: EventSink | None = None,
    cancel: anyio.Event | None = None,
    on_start: Callable[[Run], Awaitable[None] | None] | None = None,
) -> Run:
    """Apply approved plan ``plan_id`` (see the module docstring); the finished run.

    ``on_event`` gets every progress event (its failures are logged, never fatal);
    ``on_start`` gets the run row as soon as it is written (before Ansible starts).

    Refusals raise before anything runs: PermissionDenied, NotFound,
    ApprovalError, ChangeError (expired), CatalogError (drift), StalePlan
    (inventory or fresh check differs; the plan is then marked stale).
    """
    plan, approval = await rt.run_blocking(_precheck, rt, principal, plan_id)
    catalog, entry, inventory = await rt.run_blocking(_check_catalog_and_inventory, rt, plan)

    fresh = await check_run(rt, catalog, entry, plan.params, plan.limit, inventory, label="recheck")
    differences = compare_predictions(plan.hosts, plans.prediction_from(fresh.hosts))
    if differences:
        shown = "; ".join(differences[:10]) + (f"; and {len(differences) - 10} more" if len(differences) > 10 else "")
        await rt.run_blocking(
            plans.set_plan_status, rt.store, plan.id, "stale", shown[:2000], expect=("approved", "pending")
        )
        raise StalePlan(
            f"plan {plan.id} is stale: the hosts changed since planning, nothing was applied. {shown}",
            hint="Plan the change again and have the new plan approved.",
        )

    run_id = plans.new_id()
    ident = f"apply-{run_id[:16]}"
    me = psutil.Process(os.getpid())
    run = await rt.run_blocking(
        lambda: plans.consume_and_start_run(
            rt.store,
            run_id=run_id,
            plan_id=plan.id,
            approval_id=approval.id,
            requester=principal.describe(),
            instance_id=rt.instance_id,
            pid=os.getpid(),
            pid_started=me.create_time(),
            runner_ident=ident,
            now=time.time(),
        )
    )
    log.info("run started", extra={"run_id": run.id, "plan_id": plan.id, "by": principal.label})
    if on_start is not None:
        try:
            outcome = on_start(run)
            if outcome is not None:
                await outcome
        except Exception:  # as for progress: a client that cannot take it must not stop the run
            log.debug("run-start delivery failed", exc_info=True)
    return await _execute(rt, plan, run, catalog, entry, inventory, on_event=on_event, cancel=cancel)


async def _execute(
    rt: Runtime,
    plan: Plan,
    run: Run,
    catalog: Catalog,
    entry: CatalogEntry,
    inventory: Path,
    *,
    on_event: EventSink | None,
    cancel: anyio.Event | None,
) -> Run:
    cfg = rt.config.changes
    stop = anyio.Event()
    rt.active_runs[run.id] = stop
    writer = _EventWriter(rt, run.id)

    async def handle(event: RunEvent) -> None:
        writer.add(event)
        if on_event is None:
            return
        try:
            outcome = on_event(event)
            if outcome is not None:
                await outcome
        except Exception:  # a client that cannot take progress must not stop (or hide) the run
            log.debug("progress delivery failed", exc_info=True)

    async def watch_cancel() -> None:
        try:
            while not stop.is_set():
                if cancel is not None and cancel.is_set():
                    stop.set()
                    return
                if await rt.run_blocking(plans.cancel_requested, rt.store, run.id):
                    stop.set()
                    return
                with anyio.move_on_after(_CANCEL_POLL_S):
                    await stop.wait()
        except TailopsError:
            log.exception("cancel requests cannot be read", extra={"run_id": run.id})

    request = RunRequest(
        playbook=entry.playbook.absolute(),
        inventory=inventory,
        mode=RunMode.APPLY,
        artifacts_root=rt.config.artifacts_dir.absolute(),
        extravars=entry.extravars(plan.params),
        limit=plan.limit,
        forks=cfg.forks,
        timeout=cfg.run_timeout,
        roles_path=catalog.roles_dir.absolute(),
        not_simulated_hint=frozenset(entry.manifest.not_simulated),
        ident=run.runner_ident,
        keep_artifacts=cfg.keep_artifacts,
    )
    result: RunResult | None = None
    failure: TailopsError | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.loop, stop)
            tg.start_soon(watch_cancel)
            try:
                result = await run_playbook(request, on_event=handle, cancel=stop)
            except TailopsError as exc:
                failure = exc
            finally:
                tg.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await _finish(rt, plan, run, None, writer, "canceled", "the request applying it was canceled")
        raise
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await _finish(rt, plan, run, None, writer, "failed", f"internal error: {exc.__class__.__name__}")
        raise
    finally:
        rt.active_runs.pop(run.id, None)
    if failure is not None:
        with anyio.CancelScope(shield=True):
            await _finish(rt, plan, run, None, writer, "failed", failure.public_message())
        raise failure
    assert result is not None
    status: RunState
    if writer.error is not None:
        status, reason = "failed", f"stopped: run events could not be stored ({writer.error.message})"
    elif result.status == "successful":
        status, reason = "succeeded", None
    elif result.status == "canceled":
        status, reason = "canceled", "canceled on request"
    elif result.status == "timeout":
        status, reason = "failed", f"timed out after changes.run_timeout ({cfg.run_timeout})"
    else:
        failed = sorted(h for h, r in result.hosts.items() if r.status in ("failed", "unreachable"))
        status, reason = "failed", "failed on " + (", ".join(failed) if failed else f"ansible rc={result.rc}")
    with anyio.CancelScope(shield=True):
        final = await _finish(rt, plan, run, result, writer, status, reason)
    return final


async def _finish(
    rt: Runtime,
    plan: Plan,
    run: Run,
    result: RunResult | None,
    writer: _EventWriter,
    status: RunState,
    reason: str | None,
) -> Run:
    try:
        await writer.flush()
    except TailopsError:
        log.exception("run events could not be stored", extra={"run_id": run.id})
    outcome: list[HostOutcome] = []
    mismatches: list[str] = []
    if result is not None and status != "canceled":
        outcome, mismatches = outcome_of(plan, result)
    elif result is not None:
        outcome, _ = outcome_of(plan, result)
    if mismatches and status == "succeeded":
        reason = f"succeeded, but {len(mismatches)} task result(s) differ from the plan"

    def write() -> Run:
        plans.finish_run(
            rt.store,
            run.id,
            status=status,
            reason=reason,
            runner_status=result.status if result else None,
            rc=result.rc if result else None,
            outcome=outcome,
            mismatches=mismatches,
        )
        return plans.get_run(rt.store, run.id)

    final = await rt.run_blocking(write)
    log.info("run finished", extra={"run_id": run.id, "plan_id": plan.id, "status": final.status})
    return final
