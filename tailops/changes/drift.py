"""Drift: which hosts are no longer in the state a catalog playbook describes, and since when.

Why: "which hosts have drifted from what we approved?" is answered by running the vetted
playbooks in check mode on a schedule (``drift.checks``): a host where the check predicts
a change is *drifted* (the diff says how), one where it predicts none is *in line*, one the
check cannot reach is *unreachable*. A check never changes a host, so it needs no approval;
turning a drifted result into a change is an ordinary plan (the ``plan_from_drift`` tool),
approved and applied as usual. When a host that a successful tailops run brought in line
with the same playbook and parameters drifts again, the result names that run
(``after_apply``): the drift was introduced outside tailops.

It runs checks through the change engine's executor and request builder (the same check
run a plan makes), stores results in ``drift_runs``/``drift_results``, and never runs
anything but a check.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from pydantic import Field

from tailops.changes import plans
from tailops.changes.models import RunMode
from tailops.changes.planner import check_limit, inventory_path, refuse_secret_params
from tailops.config import DriftCheck
from tailops.errors import InvalidInput, NotFound, TailopsError
from tailops.models import ListResult, Model

if TYPE_CHECKING:
    from tailops.changes.engine import ChangeEngine
    from tailops.metrics import Metrics
    from tailops.store import Store

__all__ = [
    "DriftChecker",
    "DriftReport",
    "DriftResult",
    "DriftScheduler",
    "group_hosts",
    "latest_drift",
    "side_effects_of",
]

log = logging.getLogger("tailops.changes.drift")

_STATES = ("in_line", "drifted", "unreachable", "failed")
_GROUP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TICK_S = 15.0


class DriftResult(Model):
    check: str = Field(description="Name of the drift check (drift.checks).")
    playbook: str
    host: str
    state: str = Field(description="in_line, drifted (would change), unreachable or failed.")
    changes: list[str] = Field(default_factory=list, description="Tasks the check predicts would change the host.")
    diff: str | None = Field(None, description="The predicted diff (capped).")
    after_apply: str | None = Field(
        None, description="Run id of the tailops run that brought this host in line before it drifted again."
    )
    checked_at: datetime
    age_s: float = Field(description="Seconds since the check ran.")


class DriftReport(ListResult):
    results: list[DriftResult]
    drifted: int = Field(0, description="Hosts drifted, over the results shown.")
    side_effects: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per check: the tasks of its playbook that run for real even in check mode, and what they "
        "change (e.g. the apt package index): the only thing a drift check touches on a host.",
    )


def side_effects_of(engine: ChangeEngine) -> dict[str, dict[str, str]]:
    """What each configured check's playbook changes while it checks (its manifest's check_mode_side_effects)."""
    out: dict[str, dict[str, str]] = {}
    for check in engine.settings.drift.checks:
        try:
            out[check.name] = dict(engine.catalog().get(check.playbook).manifest.check_mode_side_effects)
        except TailopsError:
            out[check.name] = {}
    return out


def _row_result(row: Any, now: float) -> DriftResult:
    return DriftResult(
        check=row["check_name"],
        playbook=row["playbook"],
        host=row["host"],
        state=row["state"],
        changes=json.loads(row["changes"]),
        diff=row["diff"],
        after_apply=row["after_apply"],
        checked_at=datetime.fromtimestamp(row["checked_at"], UTC),
        age_s=round(max(0.0, now - row["checked_at"]), 1),
    )


def group_hosts(inventory: Path, group: str) -> list[str]:
    """The hosts of inventory group ``group`` (children included, as ansible-inventory resolves it);
    InvalidInput for a malformed name, NotFound (naming the groups there are) for a missing one."""
    from tailops.changes.nodes.shards import inventory_groups

    if not _GROUP_RE.fullmatch(group):
        raise InvalidInput(
            f"{group[:80]!r} is not an inventory group name (letters, digits and '_', not starting with a digit)."
        )
    groups = inventory_groups(inventory)
    if group not in groups:
        known = ", ".join(sorted(groups)[:30]) or "none"
        raise NotFound(f"the inventory has no group {group!r} (groups: {known}).", hint="`tailops inventory show`.")
    return sorted(groups[group])


def latest_drift(
    store: Store,
    *,
    host: str | None = None,
    check: str | None = None,
    hosts: Sequence[str] | None = None,
    limit: int = 500,
) -> DriftReport:
    """The latest result per (check, host), optionally for one host, one check or only ``hosts``
    (an inventory group's, :func:`group_hosts`), drifted first."""
    where: list[str] = []
    params: list[Any] = []
    if host:
        where.append("r.host = ?")
        params.append(host)
    if hosts is not None:
        where.append("r.host IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(hosts)))
    if check:
        where.append("r.check_name = ?")
        params.append(check)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    # Only constant SQL fragments are formatted in; values are bound parameters.
    rows = store.query(
        "SELECT r.*, d.playbook FROM drift_results r JOIN drift_runs d ON d.id = r.run_id "  # noqa: S608
        f"JOIN (SELECT check_name, host, MAX(checked_at) AS latest FROM drift_results r {clause} "
        "GROUP BY check_name, host) l ON l.check_name = r.check_name AND l.host = r.host AND l.latest = r.checked_at "
        "ORDER BY (r.state = 'drifted') DESC, r.check_name, r.host",
        params,
    )
    now = time.time()
    results = [_row_result(r, now) for r in rows]
    shown = results[:limit]
    return DriftReport(
        results=shown,
        total=len(results),
        truncated=len(results) > len(shown),
        truncation=(
            f"{len(results) - len(shown)} result(s) not shown; filter by host, group or check"
            if len(results) > len(shown)
            else None
        ),
        drifted=sum(1 for r in shown if r.state == "drifted"),
    )


class DriftChecker:
    """Runs drift checks through the change engine (check mode only) and keeps their results."""

    def __init__(self, engine: ChangeEngine, metrics: Metrics | None = None) -> None:
        self.engine = engine
        self.metrics = metrics

    @property
    def checks(self) -> list[DriftCheck]:
        return list(self.engine.settings.drift.checks)

    def check_named(self, name: str) -> DriftCheck:
        for check in self.checks:
            if check.name == name:
                return check
        known = ", ".join(c.name for c in self.checks) or "none configured"
        raise NotFound(f"no drift check named {name[:64]!r} (drift.checks: {known}).")

    async def run(self, check: DriftCheck) -> str:
        """Run ``check`` once now; the drift run id. Results are stored per host."""
        engine = self.engine
        catalog = await engine.blocking(engine._catalog.fresh)
        entry = await engine.blocking(catalog.require_pinned, check.playbook)
        valid = catalog.validate_params(check.playbook, check.params)
        refuse_secret_params(valid)
        limit = check_limit(check.limit)
        inventory = await engine.blocking(inventory_path, engine.settings)
        run_id = uuid.uuid4().hex
        started = time.time()
        await engine.blocking(self._start, run_id, check, valid, limit, started)
        request = engine.request(
            catalog, entry, valid, limit, inventory, mode=RunMode.CHECK, ident=f"drift-{run_id[:16]}"
        )
        try:
            result = await engine.executor.check(request)
        except TailopsError as exc:
            await engine.blocking(self._finish, run_id, "failed", exc.public_message())
            raise
        rows: list[tuple[Any, ...]] = []
        now = time.time()
        for name in sorted(result.hosts):
            host = result.hosts[name]
            changed = [t for t in host.tasks if t.changed]
            if host.status == "unreachable":
                state = "unreachable"
            elif host.status == "failed":
                state = "failed"
            elif changed:
                state = "drifted"
            else:
                state = "in_line"
            diff = "".join(t.diff or "" for t in changed)[:20_000] or None
            after = await engine.blocking(self._brought_in_line, check, valid, name) if state == "drifted" else None
            rows.append((run_id, check.name, name, state, json.dumps([t.task for t in changed]), diff, after, now))
        await engine.blocking(self._store_results, run_id, rows)
        drifted = [r[2] for r in rows if r[3] == "drifted"]
        if self.metrics is not None:
            counts = {state: sum(1 for r in rows if r[3] == state) for state in _STATES}
            for state, n in counts.items():
                self.metrics.drift_hosts.labels(check.name, state).set(n)
        if drifted:
            from tailops.notify import Event, EventKind

            engine.notify(
                lambda: Event(
                    id=f"drift.found:{run_id}",
                    kind=EventKind.DRIFT_FOUND,
                    playbook=check.playbook,
                    hosts=len(drifted),
                    reason=f"drift check {check.name}: {', '.join(drifted[:20])}",
                )
            )
        log.info("drift check done", extra={"check": check.name, "hosts": len(rows), "drifted": len(drifted)})
        return run_id

    # -- store --------------------------------------------------------------------------------
    def _start(self, run_id: str, check: DriftCheck, params: dict[str, Any], limit: str | None, now: float) -> None:
        with self.engine.store.transaction() as conn:
            conn.execute(
                "INSERT INTO drift_runs (id, check_name, playbook, params, limit_pattern, started_at, status)"
                " VALUES (?,?,?,?,?,?, 'running')",
                (run_id, check.name, check.playbook, plans.canonical_json(params), limit, now),
            )

    def _finish(self, run_id: str, status: str, reason: str | None) -> None:
        with self.engine.store.transaction() as conn:
            conn.execute(
                "UPDATE drift_runs SET status = ?, reason = ?, finished_at = ? WHERE id = ?",
                (status, reason, time.time(), run_id),
            )

    def _store_results(self, run_id: str, rows: list[tuple[Any, ...]]) -> None:
        keep = self.engine.settings.drift.keep_results
        with self.engine.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO drift_results (run_id, check_name, host, state, changes, diff, after_apply, checked_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            conn.execute("UPDATE drift_runs SET status = 'done', finished_at = ? WHERE id = ?", (time.time(), run_id))
            # Prune the oldest results, never the latest of a (check, host).
            conn.execute(
                "DELETE FROM drift_results WHERE rowid IN (SELECT r.rowid FROM drift_results r WHERE r.checked_at <"
                " (SELECT MAX(checked_at) FROM drift_results x WHERE x.check_name = r.check_name AND x.host = r.host)"
                " ORDER BY r.checked_at DESC LIMIT -1 OFFSET ?)",
                (keep,),
            )

    def _brought_in_line(self, check: DriftCheck, params: dict[str, Any], host: str) -> str | None:
        """The latest successful tailops run of this playbook and params that covered ``host`` after
        the host was last seen drifted by this check: tailops brought it in line, so drifting again
        means a change from outside tailops."""
        store = self.engine.store
        row = store.query_one(
            "SELECT r.id, r.finished_at FROM runs r JOIN plans p ON p.id = r.plan_id"
            " JOIN plan_hosts h ON h.plan_id = p.id AND h.host = ?"
            " WHERE p.playbook = ? AND p.params = ? AND r.status = 'succeeded'"
            " ORDER BY r.finished_at DESC LIMIT 1",
            (host, check.playbook, plans.canonical_json(params)),
        )
        if row is None:
            return None
        seen = store.query_one(
            "SELECT 1 FROM drift_results WHERE check_name = ? AND host = ? AND state = 'drifted' AND checked_at > ?"
            " LIMIT 1",
            (check.name, host, row["finished_at"]),
        )
        return None if seen is not None else str(row["id"])


class DriftScheduler:
    """Runs due drift checks in a thread of its own (its own event loop), one at a time.

    A check is due when its last run started ``every`` ago or longer (or never ran). A failed
    check is logged and retried at its next due time; the scheduler never stops the server."""

    def __init__(self, checker: DriftChecker) -> None:
        self.checker = checker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None or not self.checker.checks:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="tailops-drift", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def due(self, now: float | None = None) -> list[DriftCheck]:
        now = time.time() if now is None else now
        out = []
        for check in self.checker.checks:
            row = self.checker.engine.store.query_one(
                "SELECT MAX(started_at) AS last FROM drift_runs WHERE check_name = ?", (check.name,)
            )
            last = row["last"] if row is not None else None
            if last is None or now - float(last) >= check.every.total_seconds():
                out.append(check)
        return out

    def _main(self) -> None:
        async def loop() -> None:
            while not self._stop.is_set():
                try:
                    for check in self.due():
                        if self._stop.is_set():
                            return
                        try:
                            await self.checker.run(check)
                        except TailopsError as exc:
                            log.warning("drift check failed", extra={"check": check.name, "error": exc.message})
                except TailopsError:
                    log.exception("drift scheduler could not read its state")
                await anyio.to_thread.run_sync(self._stop.wait, _TICK_S)

        anyio.run(loop)
