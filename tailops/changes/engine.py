"""The change engine: the plan → approve → apply lifecycle as one service.

Why: every surface that changes hosts — the MCP tools, ``tailops plans``, the review
page — must keep the same promises (DESIGN.md, "The change lifecycle"): the
playbook's scope before any work, a dry run stored as a plan, a different person's
single-use approval, apply exactly what was reviewed or nothing, a run row before
Ansible starts, events stored as they come, cancellation from anywhere. Written once
here, each surface is a thin adapter (arguments in, views out), and where a playbook
runs is an :class:`~tailops.changes.executors.Executor` the engine is given (the local
ansible-runner today; execution nodes and AWX plug in without touching this module).

The engine owns:

- **scope checks for playbooks** (planning, applying and cancelling need the
  playbook's manifest scope; :meth:`playbook_scope`, :meth:`plan_scope`,
  :meth:`run_scope` let a boundary check it before it does anything else);
- **the catalog**, loaded once and reloaded when its files change (pins are still
  re-hashed at plan and at apply: a cached hash never vouches for content);
- **the one place a run request is built** (:meth:`request`), for checks, re-checks and
  real runs alike;
- **lifecycle audit records** (``kind: change``: plan stored, approved, denied, run
  started and finished, cancel requested) — the surfaces record who called what, the
  engine records what happened;
- **progress events and cancellation** (:meth:`apply` streams events to the caller and
  stores them; :meth:`cancel` reaches a run applied by this process at once and any
  other process through the store);
- **notifications** of the lifecycle (plan awaiting approval, approved, denied; run
  started and finished; interrupted), queued in the durable outbox of
  :mod:`tailops.notify` after each state change (queuing never fails the change).

What it must never do: run anything but a check before a plan is approved, start a
real run without a consumed approval and a ``running`` row, apply a plan whose
re-check differs, or let a failure to deliver progress stop (or hide) a run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import anyio.to_thread

from tailops import notify
from tailops.auth.scopes import require_scope
from tailops.changes import approval_policy, approvals, plans
from tailops.changes.approval_policy import ApprovalRequirement
from tailops.changes.catalog import Catalog, CatalogEntry
from tailops.changes.compare import compare_predictions, outcome_of
from tailops.changes.executors import (
    EventSink,
    Executor,
    Placement,
    check_at,
    default_executor,
    place,
    placement_changes,
    run_at,
)
from tailops.changes.models import RunEvent, RunMode, RunRequest, RunResult
from tailops.changes.planner import (
    blocked_reason,
    check_limit,
    inventory_path,
    inventory_snapshot,
    refuse_secret_params,
)
from tailops.changes.plans import Approval, HostOutcome, HostPrediction, Plan, Run, RunState
from tailops.errors import ApprovalError, CatalogError, ChangeError, StalePlan, StoreError, TailopsError
from tailops.notify import Event, EventKind, Notifier, plan_event, run_event
from tailops.principal import Principal

if TYPE_CHECKING:
    from tailops.audit import AuditLog
    from tailops.config import Settings
    from tailops.store import Store

__all__ = ["ChangeEngine"]

log = logging.getLogger("tailops.changes.engine")
T = TypeVar("T")

_FLUSH_EVERY_S = 0.25
_FLUSH_AT = 50
_CANCEL_POLL_S = 0.5
_CATALOG_RECHECK_S = 1.0


def _fmt(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _tree_signature(*roots: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime_ns) of every file under ``roots``: cheap to compute, changes when a file does."""
    out: list[tuple[str, int, int]] = []
    for root in roots:
        for current, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(current, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                out.append((full, st.st_size, st.st_mtime_ns))
    return tuple(out)


class _CatalogCache:
    """The catalog, reloaded only when a file under its directories changed (checked at most once a
    second). Used to name scopes and validate parameters; pins are hashed afresh where they matter."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._checked = 0.0

    def get(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                return self._load()
            if time.monotonic() - self._checked < _CATALOG_RECHECK_S:
                return self._catalog
            if _tree_signature(self._catalog.playbooks_dir, self._catalog.roles_dir) != self._signature:
                return self._load()
            self._checked = time.monotonic()
            return self._catalog

    def fresh(self) -> Catalog:
        """Read from disk now (plan and apply: what is on disk is what runs)."""
        with self._lock:
            return self._load()

    def _load(self) -> Catalog:
        catalog = Catalog.from_settings(self._settings)
        self._catalog = catalog
        self._signature = _tree_signature(catalog.playbooks_dir, catalog.roles_dir)
        self._checked = time.monotonic()
        return catalog


class _EventWriter:
    """Buffers a run's events in memory (event loop) and stores them in batches (worker thread)."""

    def __init__(self, engine: ChangeEngine, run_id: str) -> None:
        self.engine = engine
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
        await self.engine.blocking(plans.append_events, self.engine.store, self.run_id, first, batch)

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


class ChangeEngine:
    """The lifecycle service (see the module docstring). Thread- and task-safe; one per process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        audit: AuditLog,
        *,
        executor: Executor | None = None,
        instance_id: str,
        run_blocking: Callable[..., Awaitable[Any]] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit
        # Where playbooks run: the given executor, else what the config asks for (execution nodes or this machine).
        self.executor: Executor = executor or default_executor(settings)
        self.instance_id = instance_id
        # The server's bounded worker pool; a CLI process gets a small one of its own.
        self._run_blocking = run_blocking
        self._limiter: anyio.CapacityLimiter | None = None
        self._catalog = _CatalogCache(settings)
        self.notifier = notifier
        # Cancel events of the runs this process is applying now (cancel reaches them at once).
        self.active_runs: dict[str, anyio.Event] = {}

    # -- plumbing --------------------------------------------------------------------------------
    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call (store, catalog hashing) in the bounded worker pool."""
        if self._run_blocking is not None:
            result: T = await self._run_blocking(fn, *args, **kwargs)
            return result
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.server.workers)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._limiter)

    def record(self, event: str, principal: Principal | None, **facts: Any) -> None:
        """One lifecycle audit record (fsynced): what happened, to which plan/run, by whom."""
        entry: dict[str, Any] = {
            "kind": "change",
            "event": event,
            "principal": principal.audit_view() if principal is not None else None,
            "decision": "allowed",
            "outcome": "ok",
            **facts,
        }
        self.audit.record(entry, sync=True)

    def notify(self, make_event: Callable[[], Event | None]) -> None:
        """Queue a lifecycle notification for every endpoint that wants it (never raises). The event is
        built only when endpoints are configured (building it may read the store)."""
        if not self.settings.notifications.endpoints:
            return
        event = make_event()
        if event is None:
            return
        ids = notify.emit(self.store, event, settings=self.settings)
        if ids and self.notifier is not None:
            self.notifier.wake()

    def catalog(self) -> Catalog:
        return self._catalog.get()

    def request(
        self,
        catalog: Catalog,
        entry: CatalogEntry,
        params: Mapping[str, Any],
        limit: str | None,
        inventory: Path,
        *,
        mode: RunMode,
        ident: str,
    ) -> RunRequest:
        """The one place a run request is built: checks, re-checks and real runs run alike."""
        cfg = self.settings.changes
        return RunRequest(
            playbook=entry.playbook.absolute(),
            inventory=inventory,
            mode=mode,
            artifacts_root=self.settings.artifacts_dir.absolute(),
            extravars=entry.extravars(params),
            limit=limit,
            forks=cfg.forks,
            timeout=cfg.run_timeout,
            roles_path=catalog.roles_dir.absolute(),
            not_simulated_hint=frozenset(entry.manifest.not_simulated),
            ident=ident,
            keep_artifacts=cfg.keep_artifacts,
        )

    # -- scopes --------------------------------------------------------------------------------------
    def playbook_scope(self, name: str) -> str:
        """The scope planning and applying ``name`` needs (its manifest's); NotFound if unknown."""
        return self.catalog().get(name).manifest.scope

    def plan_scope(self, plan_id: str) -> str:
        return plans.get_plan(self.store, plan_id).scope

    def run_scope(self, run_id: str) -> str:
        return plans.get_plan(self.store, plans.get_run(self.store, run_id).plan_id).scope

    # -- plan ----------------------------------------------------------------------------------------
    async def plan(
        self, principal: Principal, playbook: str, params: Mapping[str, Any] | None, limit: str | None = None
    ) -> Plan:
        """Dry-run ``playbook`` with ``params`` on the inventory (optionally ``limit``-ed) and store the
        plan (see :mod:`tailops.changes.planner` for the checks and statuses)."""
        started = time.time()
        entry = (await self.blocking(self.catalog)).get(playbook)
        require_scope(principal, entry.manifest.scope, f"playbook {playbook}")
        catalog = await self.blocking(self._catalog.fresh)
        entry = await self.blocking(_pinned, catalog, playbook)
        valid = catalog.validate_params(playbook, params)
        refuse_secret_params(valid)
        clean_limit = check_limit(limit)
        inventory = await self.blocking(inventory_path, self.settings)
        inventory_sha = await self.blocking(inventory_snapshot, inventory)
        request = self.request(
            catalog, entry, valid, clean_limit, inventory, mode=RunMode.CHECK, ident=f"check-{plans.new_id()[:16]}"
        )
        # Where each host runs (execution nodes) is part of the plan: None when every host runs here.
        placement = await place(self.executor, request)
        # The inventory's groups (for changes.group_approvals) are read while the check runs.
        groups: list[dict[str, set[str]] | None] = []
        failed: list[TailopsError] = []

        async def read_groups() -> None:
            try:
                groups.append(await self.blocking(approval_policy.read_groups, self.settings.changes, inventory))
            except TailopsError as exc:
                failed.append(exc)

        checked: list[RunResult] = []
        async with anyio.create_task_group() as tg:  # nothing may raise inside: a group would wrap it
            tg.start_soon(read_groups)
            try:
                checked.append(await check_at(self.executor, request, placement))
            except TailopsError as exc:
                failed.insert(0, exc)
        if failed:
            raise failed[0]
        result = checked[0]
        hosts = plans.prediction_from(result.hosts)
        reason = blocked_reason(result)
        if not hosts and reason is None:
            reason = "the check run matched no host (check the inventory and the limit)"
        # Decided now, on the hosts of the check run and the inventory this plan pins; never lowered later.
        needed = approval_policy.requirement_from(
            self.settings.changes, entry.manifest.risk, [h.host for h in hosts], groups[0]
        )
        plan = await self.blocking(
            self._store_plan,
            principal,
            entry,
            valid,
            clean_limit,
            inventory_sha,
            hosts,
            reason,
            result,
            placement,
            needed,
        )
        reused = plan.created_at.timestamp() < started
        if not reused:
            if plan.status in ("pending", "approved"):
                kind = EventKind.PLAN_AWAITING_APPROVAL if plan.status == "pending" else EventKind.PLAN_APPROVED
                self.notify(lambda: plan_event(kind, plan))
            await self.blocking(
                self.record,
                "plan:stored",
                principal,
                plan_id=plan.id,
                playbook=plan.playbook,
                status=plan.status,
                hosts=len(plan.hosts),
                hosts_changing=sum(1 for h in plan.hosts if h.changed_tasks),
            )
        log.info(
            "plan stored",
            extra={
                "plan_id": plan.id,
                "playbook": playbook,
                "status": plan.status,
                "reused": reused,
                "check_s": round(result.duration_s, 2),
            },
        )
        return plan

    def _store_plan(
        self,
        principal: Principal,
        entry: CatalogEntry,
        params: dict[str, Any],
        limit: str | None,
        inventory_sha: str,
        hosts: list[HostPrediction],
        reason: str | None,
        result: RunResult,
        placement: Placement | None,
        needed: ApprovalRequirement,
    ) -> Plan:
        now = time.time()
        previous: str | None = None
        for _ in range(10_000):
            plan_id = plans.plan_id_for(
                playbook=entry.name,
                version=entry.version,
                playbook_sha256=entry.sha256,
                params=params,
                limit=limit,
                inventory_sha256=inventory_sha,
                hosts=hosts,
                previous_id=previous,
                placement=placement,
                approval=needed.canonical(),
            )
            existing = plans.find_plan(self.store, plan_id, now=now)
            if existing is None:
                break
            if existing.status in ("pending", "approved", "blocked"):
                return existing
            previous = plan_id
        else:  # pragma: no cover - 10 000 closed plans of identical content
            raise ChangeError("too many earlier plans with this exact content; change something and plan again.")
        status = "blocked" if reason else "pending"
        plan = Plan(
            id=plan_id,
            previous_id=previous,
            playbook=entry.name,
            version=entry.version,
            playbook_sha256=entry.sha256,
            params=params,
            limit=limit,
            inventory_sha256=inventory_sha,
            risk=entry.manifest.risk,
            scope=entry.manifest.scope,
            status=status,
            stored_status=status,
            status_reason=reason,
            hosts=hosts,
            requester=principal.describe(),
            requester_ids=sorted(principal.identities()),
            check_ident=result.ident,
            check_duration_s=round(result.duration_s, 3),
            created_at=datetime.fromtimestamp(now, UTC),
            expires_at=datetime.fromtimestamp(now + self.settings.changes.plan_ttl.total_seconds(), UTC),
            updated_at=datetime.fromtimestamp(now, UTC),
            placement=placement,
            approval_policy=needed,
        )
        try:
            plans.insert_plan(self.store, plan)
        except StoreError:
            # The same plan was stored concurrently: return that one if it is open.
            again = plans.find_plan(self.store, plan_id)
            if again is not None and again.status in ("pending", "approved", "blocked"):
                return again
            raise
        by_policy = approvals.approve_by_policy(self.store, self.settings.changes, plan, now=now)
        if by_policy is not None:
            self.record(
                "plan:approved",
                None,
                plan_id=plan.id,
                approval_id=by_policy.id,
                by_policy=True,
                human_approved=False,
                rule=needed.summary(),
                approver=by_policy.approver_subject,
            )
        return plans.get_plan(self.store, plan_id)

    # -- decide --------------------------------------------------------------------------------------
    def approve(self, principal: Principal, plan_id: str, comment: str | None = None) -> Approval:
        """Approve someone else's plan (blocking; every rule of :mod:`tailops.changes.approvals`)."""
        approval = approvals.approve(
            self.store, self.settings.changes, plan_id, principal, comment, inventory=self.inventory_file
        )
        self.record("plan:approved", principal, plan_id=plan_id, approval_id=approval.id)

        def approved() -> Event | None:
            plan = plans.get_plan(self.store, plan_id)
            # A team plan still waiting for more approvals ("1 of 2") is not approved yet.
            return (
                plan_event(EventKind.PLAN_APPROVED, plan, approver=principal.label)
                if plan.status == "approved"
                else None
            )

        self.notify(approved)
        return approval

    def deny(self, principal: Principal, plan_id: str, reason: str) -> Approval:
        """Deny a plan (blocking): it can never be applied."""
        denial = approvals.deny(self.store, plan_id, principal, reason)
        self.record("plan:denied", principal, plan_id=plan_id, approval_id=denial.id)
        self.notify(
            lambda: plan_event(
                EventKind.PLAN_DENIED,
                plans.get_plan(self.store, plan_id),
                approver=principal.label,
                reason=denial.comment,
            )
        )
        return denial

    # -- apply ---------------------------------------------------------------------------------------
    async def apply(
        self,
        principal: Principal,
        plan_id: str,
        *,
        on_event: EventSink | None = None,
        cancel: anyio.Event | None = None,
        on_start: Callable[[Run, Plan], Awaitable[None] | None] | None = None,
    ) -> Run:
        """Apply approved plan ``plan_id`` exactly as reviewed; the finished run.

        Before anything runs, each of these refuses with a precise message: the plan
        exists and the caller holds its playbook's scope; it is unexpired; it is approved
        by a live approval (unused, unexpired, not given with a since-revoked token, for a
        requester whose token is not revoked); the catalog entry has the planned version
        and SHA-256; the inventory snapshot is unchanged; the executor would place the
        hosts where the plan placed them, with the same job per node (execution nodes);
        and a FRESH check run predicts exactly the planned changes (otherwise the plan is
        marked ``stale``). Then one
        transaction consumes the approval and writes the run row (``running``) before the
        executor starts, so a crash leaves an ``interrupted`` run, never a silent gap.

        ``on_event`` gets every progress event and ``on_start`` the run row (and the plan it
        applies, loaded once here) once written;
        their failures are logged, never fatal. ``cancel`` (or cancelling the awaiting
        task, or :meth:`cancel` from anywhere) stops the run.
        """
        plan, used = await self.blocking(self._precheck, principal, plan_id)
        approval = used[0]
        catalog, entry, inventory = await self.blocking(self._check_catalog_and_inventory, plan)
        recheck = self.request(
            catalog,
            entry,
            plan.params,
            plan.limit,
            inventory,
            mode=RunMode.CHECK,
            ident=f"recheck-{plans.new_id()[:16]}",
        )
        # Apply runs where the plan ran, with the jobs the plan sent (execution nodes).
        placement = await place(self.executor, recheck)
        moved = placement_changes(plan.placement, placement, plan.host_names)
        if moved:
            await self._stale(plan, "where the hosts run changed since planning", moved)
        fresh = await check_at(self.executor, recheck, placement)
        differences = compare_predictions(plan.hosts, plans.prediction_from(fresh.hosts))
        if differences:
            await self._stale(plan, "the hosts changed since planning", differences)

        run_id = plans.new_id()
        ident = f"apply-{run_id[:16]}"
        run = await self.blocking(self._start_run, principal, plan, used, run_id, ident)
        await self.blocking(
            self.record, "run:started", principal, plan_id=plan.id, run_id=run.id, approval_id=approval.id
        )
        log.info("run started", extra={"run_id": run.id, "plan_id": plan.id, "by": principal.label})
        await self.blocking(self.notify, lambda: run_event(run, plan))
        if on_start is not None:
            try:
                started = on_start(run, plan)
                if started is not None:
                    await started
            except Exception:  # as for progress: a client that cannot take it must not stop the run
                log.debug("run-start delivery failed", exc_info=True)
        request = self.request(catalog, entry, plan.params, plan.limit, inventory, mode=RunMode.APPLY, ident=ident)
        return await self._execute(plan, run, request, placement, on_event=on_event, cancel=cancel)

    async def _stale(self, plan: Plan, what: str, differences: list[str]) -> NoReturn:
        """Mark ``plan`` stale and refuse (nothing was applied)."""
        shown = "; ".join(differences[:10]) + (f"; and {len(differences) - 10} more" if len(differences) > 10 else "")
        await self.blocking(
            plans.set_plan_status, self.store, plan.id, "stale", shown[:2000], expect=("approved", "pending")
        )
        raise StalePlan(
            f"plan {plan.id} is stale: {what}, nothing was applied. {shown}",
            hint="Plan the change again and have the new plan approved.",
        )

    def _start_run(self, principal: Principal, plan: Plan, used: list[Approval], run_id: str, ident: str) -> Run:
        import psutil

        return plans.consume_and_start_run(
            self.store,
            run_id=run_id,
            plan_id=plan.id,
            approval_id=used[0].id,
            more_approvals=[a.id for a in used[1:]],
            requester=principal.describe(),
            instance_id=self.instance_id,
            pid=os.getpid(),
            pid_started=psutil.Process(os.getpid()).create_time(),
            runner_ident=ident,
            now=time.time(),
        )

    def _precheck(self, principal: Principal, plan_id: str) -> tuple[Plan, list[Approval]]:
        """Who may apply, and is there a live approval (blocking: store reads)."""
        now = time.time()
        plan = plans.get_plan(self.store, plan_id, now=now)
        require_scope(principal, plan.scope, f"applying plan {plan.id} (playbook {plan.playbook})")
        approval = plans.live_approval(self.store, plan.id)
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
            partial = plan.status_reason if plan.stored_status == "pending" and plan.status_reason else None
            needs = ""
            if plan.stored_status == "pending":
                needs = (
                    f" (it needs {approvals.requirement(self.settings.changes, plan, self.inventory_file).summary()})"
                )
            why = {
                "pending": f"it has {partial or 'not been approved'}{needs}",
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
                f"the approval of plan {plan.id} was already used by run {approval.used_by_run}; "
                "approvals are single use."
            )
        # Revoking a token voids what it authorised that has not happened yet.
        approvals.refuse_revoked_requester(self.store, plan)
        needed = approvals.requirement(self.settings.changes, plan, self.inventory_file)
        required = needed.approvals_needed
        unexpired = plans.live_approvals(self.store, plan.id, now=now)
        live = approvals.counting(needed, unexpired)  # by policy only while the requirement is still auto
        valid = [a for a in live if not approvals.revoked_token(self.store, a.approver)]
        if len(valid) < required:
            for revoked in (a for a in live if a not in valid):
                approvals.refuse_revoked_approval(self.store, plan, revoked)
            if not unexpired:
                assert approval.expires_at is not None
                raise ApprovalError(
                    f"the approval of plan {plan.id} by {approval.approver_subject} expired at "
                    f"{_fmt(approval.expires_at.timestamp())}.",
                    hint="Ask for a new approval (changes.approval_ttl).",
                )
            names = ", ".join(a.approver_subject for a in valid) or "none yet"
            raise ApprovalError(
                f"plan {plan.id} has {len(valid)} of {required} approvals ({names}); it needs {needed.summary()}.",
                hint="Another person with changes:approve approves it too.",
            )
        return plan, valid[:required]

    def inventory_file(self) -> Path:
        """The inventory file plans are made with (changes.inventory or the generated localhost one)."""
        return inventory_path(self.settings)

    def _check_catalog_and_inventory(self, plan: Plan) -> tuple[Catalog, CatalogEntry, Path]:
        """The catalog pin and the inventory snapshot are what was planned (blocking: re-hashes both)."""
        catalog = self._catalog.fresh()
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
                f"(sha256 {plan.playbook_sha256[:12]}), the catalog now has {entry.version} "
                f"(sha256 {entry.sha256[:12]}).",
                hint="Plan the change again with the current playbook.",
            )
        inventory = inventory_path(self.settings)
        snapshot = inventory_snapshot(inventory)
        if snapshot != plan.inventory_sha256:
            raise StalePlan(
                f"plan {plan.id} refused: the inventory changed since planning (snapshot "
                f"{plan.inventory_sha256[:12]}, now {snapshot[:12]}).",
                hint="Plan the change again against the current inventory.",
            )
        return catalog, entry, inventory

    async def _execute(
        self,
        plan: Plan,
        run: Run,
        request: RunRequest,
        placement: Placement | None,
        *,
        on_event: EventSink | None,
        cancel: anyio.Event | None,
    ) -> Run:
        stop = anyio.Event()
        self.active_runs[run.id] = stop
        writer = _EventWriter(self, run.id)

        async def handle(event: RunEvent) -> None:
            writer.add(event)
            if on_event is None:
                return
            try:
                delivered = on_event(event)
                if delivered is not None:
                    await delivered
            except Exception:  # a client that cannot take progress must not stop (or hide) the run
                log.debug("progress delivery failed", exc_info=True)

        async def watch_cancel() -> None:
            try:
                while not stop.is_set():
                    if cancel is not None and cancel.is_set():
                        stop.set()
                        return
                    if await self.blocking(plans.cancel_requested, self.store, run.id):
                        stop.set()
                        return
                    with anyio.move_on_after(_CANCEL_POLL_S):
                        await stop.wait()
            except TailopsError:
                log.exception("cancel requests cannot be read", extra={"run_id": run.id})

        result: RunResult | None = None
        failure: TailopsError | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.loop, stop)
                tg.start_soon(watch_cancel)
                try:
                    result = await run_at(self.executor, request, placement, on_event=handle, cancel=stop)
                except TailopsError as exc:
                    failure = exc
                finally:
                    tg.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._finish(plan, run, None, writer, "canceled", "the request applying it was canceled")
            raise
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._finish(plan, run, None, writer, "failed", f"internal error: {exc.__class__.__name__}")
            raise
        finally:
            self.active_runs.pop(run.id, None)
        if failure is not None:
            with anyio.CancelScope(shield=True):
                await self._finish(plan, run, None, writer, "failed", failure.public_message())
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
            status, reason = "failed", f"timed out after changes.run_timeout ({self.settings.changes.run_timeout})"
        else:
            failed = sorted(h for h, r in result.hosts.items() if r.status in ("failed", "unreachable"))
            status, reason = "failed", "failed on " + (", ".join(failed) if failed else f"ansible rc={result.rc}")
        with anyio.CancelScope(shield=True):
            final = await self._finish(plan, run, result, writer, status, reason)
        return final

    async def _finish(
        self,
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
        if result is not None:
            outcome, found = outcome_of(plan, result)
            if status != "canceled":
                mismatches = found
        if mismatches and status == "succeeded":
            reason = f"succeeded, but {len(mismatches)} task result(s) differ from the plan"

        def write() -> Run:
            plans.finish_run(
                self.store,
                run.id,
                status=status,
                reason=reason,
                runner_status=result.status if result else None,
                rc=result.rc if result else None,
                outcome=outcome,
                mismatches=mismatches,
            )
            final = plans.get_run(self.store, run.id)
            try:
                self.record(
                    "run:finished",
                    None,
                    plan_id=plan.id,
                    run_id=run.id,
                    status=final.status,
                    reason=final.status_reason,
                    mismatches=len(mismatches),
                )
            except TailopsError:
                log.exception("audit write failed for a finished run", extra={"run_id": run.id})
            self.notify(lambda: run_event(final, plan))
            return final

        final = await self.blocking(write)
        log.info("run finished", extra={"run_id": run.id, "plan_id": plan.id, "status": final.status})
        return final

    # -- cancel, runs, recovery ----------------------------------------------------------------------
    async def cancel(self, principal: Principal, run_id: str, *, via: str) -> Run:
        """Ask a running run to stop; needs what applying it needed (its playbook's scope).

        Recorded in the store (a server in another process polls for it) and, for a run
        this process applies, signalled at once."""

        def request() -> Run:
            plan = plans.get_plan(self.store, plans.get_run(self.store, run_id).plan_id)
            require_scope(principal, plan.scope, f"cancelling a run of {plan.playbook}")
            run = plans.request_cancel(self.store, run_id, f"{principal.label} ({via})")
            self.record("run:cancel_requested", principal, plan_id=run.plan_id, run_id=run.id, via=via)
            return run

        run = await self.blocking(request)
        stop = self.active_runs.get(run.id)
        if stop is not None:
            stop.set()
        return run

    def recover(self) -> list[str]:
        """At start: runs left ``running`` by a process that is gone become ``interrupted``, and what
        that process left running for them is stopped (never a silent gap). Blocking."""
        try:
            marked = plans.mark_interrupted(self.store, self.instance_id)
        except TailopsError:
            log.exception("could not mark interrupted runs")
            return []
        for run_id in marked:
            row = self.store.query_one("SELECT runner_ident FROM runs WHERE id = ?", (run_id,))
            killed = self.executor.recover(row["runner_ident"]) if row and row["runner_ident"] else 0
            log.warning(
                "run interrupted by a previous server stop",
                extra={"run_id": run_id, "leftover_processes_killed": killed},
            )
            try:
                self.record("run:interrupted", None, run_id=run_id, leftover_processes_killed=killed)
            except TailopsError:
                log.exception("audit write failed for an interrupted run", extra={"run_id": run_id})
            with contextlib.suppress(TailopsError):
                run = plans.get_run(self.store, run_id)
                self.notify(lambda r=run: run_event(r, plans.find_plan(self.store, r.plan_id)))  # type: ignore[misc]
        return marked


def _pinned(catalog: Catalog, name: str) -> CatalogEntry:
    entry = catalog.require_pinned(name)
    _ = entry.sha256  # hash now, in the worker thread
    return entry
