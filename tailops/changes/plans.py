"""Records of the change lifecycle — plans, approvals, runs, run events — and the only SQL for them.

Why: the planner, the approval rules, the executor, the tools and the CLI all
speak about the same four kinds of record; keeping their pydantic models and
every statement that reads or writes them here means one place decides what a
state transition is (each one is a single guarded ``UPDATE … WHERE status=…``
or one transaction), and the rest of the engine never writes SQL.

Also here, because the plan id depends on them: the canonical JSON and the
plan id (SHA-256 of the canonical content, see :func:`plan_id_for`).

What it must never do: run anything, decide policy (that is
:mod:`tailops.changes.approvals` and :mod:`tailops.changes.executor`), or log
row contents (they hold diffs and identities).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import psutil
from pydantic import Field

from tailops.changes.approval_policy import ApprovalRequirement
from tailops.changes.executors.placement import Placement
from tailops.changes.models import HostResult, RunEvent
from tailops.errors import ApprovalError, ChangeError, InvalidInput, NotFound, PermissionDenied
from tailops.models import Model
from tailops.store import Store

__all__ = [
    "PLAN_ID_RE",
    "Approval",
    "HostOutcome",
    "HostPrediction",
    "Plan",
    "PlanStatus",
    "Run",
    "RunState",
    "StoredEvent",
    "TaskPrediction",
    "append_events",
    "approvals_for",
    "cancel_requested",
    "canonical_json",
    "consume_and_start_run",
    "find_plan",
    "finish_run",
    "get_plan",
    "get_run",
    "insert_approval",
    "insert_plan",
    "list_plans",
    "list_runs",
    "live_approval",
    "live_approvals",
    "mark_interrupted",
    "new_id",
    "normalized_prediction",
    "plan_id_for",
    "prediction_from",
    "process_alive",
    "request_cancel",
    "resolve_plan_id",
    "resolve_run_id",
    "run_events",
    "set_plan_status",
    "void_approval",
]

PlanStatus = Literal["pending", "approved", "denied", "blocked", "stale", "applied", "expired"]
StoredPlanStatus = Literal["pending", "approved", "denied", "blocked", "stale", "applied"]
RunState = Literal["running", "succeeded", "failed", "canceled", "interrupted"]
PLAN_STATUSES: tuple[str, ...] = ("pending", "approved", "denied", "blocked", "stale", "applied", "expired")
RUN_STATES: tuple[str, ...] = ("running", "succeeded", "failed", "canceled", "interrupted")
# Stored statuses that turn into "expired" once expires_at has passed.
_EXPIRING = ("pending", "approved", "blocked")

PLAN_ID_RE = re.compile(r"^[0-9a-f]{64}$")
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_PREFIX_RE = re.compile(r"^[0-9a-f]{8,64}$")
# Version of the canonical plan content; a change of the format changes every id.
PLAN_FORMAT = "tailops-plan v1"


# --------------------------------------------------------------------------- helpers
def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: equal content gives equal text (and hash)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def new_id() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- models
class TaskPrediction(Model):
    """What one task would do (check run) on one host."""

    task: str = Field(description="Task name.")
    action: str | None = Field(None, description="Module, e.g. ansible.builtin.apt.")
    status: str = Field(description="ok, changed, skipped, failed or unreachable.")
    changed: bool = Field(False, description="The task would change the host.")
    diff: str | None = Field(None, description="Unified diff of the predicted change.")
    msg: str | None = Field(None, description="Module message (redacted).")
    not_simulated: bool = Field(False, description="Check mode could not simulate this task.")


class HostPrediction(Model):
    host: str = Field(description="Inventory host name.")
    status: str = Field(description="ok, changed, failed or unreachable (in the check run).")
    tasks: list[TaskPrediction] = Field(default_factory=list)

    @property
    def changed_tasks(self) -> list[str]:
        return [t.task for t in self.tasks if t.changed]


class Plan(Model):
    """A stored plan. ``status`` is effective: ``expired`` once ``expires_at`` has passed."""

    id: str
    previous_id: str | None = None
    playbook: str
    version: str
    playbook_sha256: str
    params: dict[str, Any]
    limit: str | None = None
    inventory_sha256: str
    risk: str
    scope: str
    status: PlanStatus
    stored_status: StoredPlanStatus
    status_reason: str | None = None
    hosts: list[HostPrediction]
    requester: dict[str, str | None]
    requester_ids: list[str]
    check_ident: str | None = None
    check_duration_s: float | None = None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    placement: Placement | None = Field(
        None, description="Execution nodes: which node runs which hosts and the bundle sent (None: all here)."
    )
    approval_policy: ApprovalRequirement | None = Field(
        None, description="Approvals it needs, decided at plan time (None: stored before this was recorded)."
    )

    @property
    def host_names(self) -> list[str]:
        return [h.host for h in self.hosts]

    def host(self, name: str) -> HostPrediction:
        for h in self.hosts:
            if h.host == name:
                return h
        raise KeyError(name)


class Approval(Model):
    id: str
    plan_id: str
    decision: Literal["approved", "denied"]
    by_policy: bool
    approver_subject: str
    approver: dict[str, str | None]
    approver_ids: list[str]
    comment: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    used_at: datetime | None = None
    used_by_run: str | None = None


class HostOutcome(Model):
    """Planned vs actual on one host after a run."""

    host: str
    status: str = Field(description="The host's status in the real run (or 'missing').")
    planned: list[str] = Field(default_factory=list, description="Tasks the plan predicted would change.")
    actual: list[str] = Field(default_factory=list, description="Tasks that changed in the real run.")
    mismatches: list[str] = Field(default_factory=list, description="Where actual differs from planned.")


class Run(Model):
    id: str
    plan_id: str
    approval_id: str
    status: RunState
    status_reason: str | None = None
    requester_subject: str
    requester: dict[str, str | None]
    instance_id: str
    pid: int
    pid_started: float = Field(0.0, description="Start time of the server process applying it (pid reuse check).")
    runner_ident: str | None = None
    runner_status: str | None = None
    rc: int | None = None
    outcome: list[HostOutcome] = Field(default_factory=list)
    mismatches: list[str] = Field(default_factory=list)
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    event_count: int = 0


class StoredEvent(Model):
    seq: int
    kind: str
    host: str | None = None
    task: str | None = None
    status: str | None = None
    changed: bool = False
    not_simulated: bool = False
    msg: str | None = None
    diff: str | None = None
    created_at: datetime


# --------------------------------------------------------------------------- plan ids
def prediction_from(hosts: Mapping[str, HostResult]) -> list[HostPrediction]:
    """The stored form of a check run's per-host results, hosts sorted by name."""
    out: list[HostPrediction] = []
    for name in sorted(hosts):
        result = hosts[name]
        out.append(
            HostPrediction(
                host=name,
                status=result.status,
                tasks=[
                    TaskPrediction(
                        task=t.task,
                        action=t.action,
                        status=str(t.status),
                        changed=t.changed,
                        diff=t.diff,
                        msg=t.msg,
                        not_simulated=t.not_simulated,
                    )
                    for t in result.tasks
                ],
            )
        )
    return out


def normalized_prediction(hosts: Sequence[HostPrediction]) -> dict[str, list[list[Any]]]:
    """What a plan id covers of a prediction: per host (sorted), per task in run order:
    name, status, changed, diff, not_simulated. Messages and timings are left out (they
    vary between identical runs and do not describe the change)."""
    return {
        h.host: [[t.task, t.status, t.changed, t.diff, t.not_simulated] for t in h.tasks]
        for h in sorted(hosts, key=lambda h: h.host)
    }


def plan_id_for(
    *,
    playbook: str,
    version: str,
    playbook_sha256: str,
    params: Mapping[str, Any],
    limit: str | None,
    inventory_sha256: str,
    hosts: Sequence[HostPrediction],
    previous_id: str | None = None,
    placement: Placement | None = None,
    approval: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 of the canonical JSON of everything a plan stands for.

    ``previous_id`` is None for the first plan of some content. When the same
    content is planned again after that plan was closed (applied, denied, stale,
    expired), the new plan names the closed one, so its id differs while staying
    a pure function of content and history.

    ``placement`` (execution nodes: shard map digest, hosts and bundle hash per
    node) is covered when there is one; a plan without one has exactly the
    content (and id) it had before placements existed.
    ``approval`` (:meth:`ApprovalRequirement.canonical`: the approvals required and the rules
    that set them) is part of the content when given: what was decided at plan time is what
    the id vouches for (a plan without it keeps the id it always had).
    """
    content = {
        "format": PLAN_FORMAT,
        "playbook": playbook,
        "version": version,
        "playbook_sha256": playbook_sha256,
        "params": dict(params),
        "limit": limit,
        "inventory_sha256": inventory_sha256,
        "prediction": normalized_prediction(hosts),
        "previous": previous_id,
    }
    if placement is not None:
        content["placement"] = placement.canonical()
    if approval is not None:
        content["approval"] = dict(approval)
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- rows
# A row maps onto its model by column name (``renames`` for the few that differ); the
# JSON-encoded columns are decoded, and NULL in one of them leaves the model's default.
# Timestamps are stored as Unix seconds, which pydantic reads as UTC datetimes. A column
# the model does not know (e.g. ``requester_subject``, an index key) is not part of it.
_PLAN_JSON = frozenset({"params", "prediction", "requester", "requester_ids", "placement", "approval_policy"})
_APPROVAL_JSON = frozenset({"approver", "approver_ids"})
_RUN_JSON = frozenset({"requester", "outcome", "mismatches"})


def from_row[M: Model](
    model: type[M], row: Any, json_columns: frozenset[str], renames: Mapping[str, str] | None = None, **derived: Any
) -> M:
    """``model`` validated from a ``sqlite3.Row`` (plus ``derived`` fields computed by the caller)."""
    fields = model.model_fields
    data: dict[str, Any] = {}
    for column in row.keys():  # noqa: SIM118 (sqlite3.Row: `in` tests values, keys() the names)
        name = renames.get(column, column) if renames else column
        if name not in fields:
            continue
        value = row[column]
        if column in json_columns:
            if not value:
                continue
            value = json.loads(value)
        data[name] = value
    data.update(derived)
    return model.model_validate(data)


# --------------------------------------------------------------------------- plans
_PLAN_STATUS_SQL = (
    "CASE WHEN status IN ('pending','approved','blocked') AND expires_at <= :now THEN 'expired' ELSE status END"
)


def _plan(row: Any, now: float) -> Plan:
    stored = row["status"]
    status = "expired" if stored in _EXPIRING and row["expires_at"] <= now else stored
    return from_row(
        Plan, row, _PLAN_JSON, {"limit_pattern": "limit", "prediction": "hosts"}, status=status, stored_status=stored
    )


def insert_plan(store: Store, plan: Plan) -> None:
    """Store a new plan (its id must not exist yet)."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO plans (id, previous_id, playbook, version, playbook_sha256, params, limit_pattern,"
            " inventory_sha256, risk, scope, status, status_reason, prediction, requester_subject, requester,"
            " requester_ids, check_ident, check_duration_s, created_at, expires_at, updated_at, approval_policy,"
            " placement) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                plan.id,
                plan.previous_id,
                plan.playbook,
                plan.version,
                plan.playbook_sha256,
                canonical_json(plan.params),
                plan.limit,
                plan.inventory_sha256,
                plan.risk,
                plan.scope,
                plan.stored_status,
                plan.status_reason,
                canonical_json([h.model_dump(mode="json") for h in plan.hosts]),
                plan.requester["subject"] or "",
                canonical_json(plan.requester),
                canonical_json(sorted(plan.requester_ids)),
                plan.check_ident,
                plan.check_duration_s,
                plan.created_at.timestamp(),
                plan.expires_at.timestamp(),
                plan.updated_at.timestamp(),
                canonical_json(plan.approval_policy.model_dump(mode="json")) if plan.approval_policy else None,
                canonical_json(plan.placement.model_dump(mode="json")) if plan.placement else None,
            ),
        )
        conn.executemany(
            "INSERT INTO plan_hosts (host, plan_id, created_at, status, changing) VALUES (?,?,?,?,?)",
            [(h.host, plan.id, plan.created_at.timestamp(), h.status, int(bool(h.changed_tasks))) for h in plan.hosts],
        )


def find_plan(store: Store, plan_id: str, *, now: float | None = None) -> Plan | None:
    row = store.query_one("SELECT * FROM plans WHERE id = ?", (plan_id,))
    return _plan(row, time.time() if now is None else now) if row is not None else None


def get_plan(store: Store, plan_id: str, *, now: float | None = None) -> Plan:
    """The plan ``plan_id`` (a full 64-hex id); NotFound otherwise."""
    if not PLAN_ID_RE.fullmatch(plan_id):
        raise InvalidInput(
            f"{plan_id[:80]!r} is not a plan id (64 lowercase hex digits).",
            hint="Copy the id from plan_change or list_plans.",
        )
    plan = find_plan(store, plan_id, now=now)
    if plan is None:
        raise NotFound(f"no plan {plan_id}.", hint="list_plans (or `tailops plans list`) shows the plans.")
    return plan


def resolve_plan_id(store: Store, text: str) -> str:
    """A full plan id from a unique prefix of at least 8 hex digits (for people typing ids)."""
    prefix = text.strip().lower()
    if not _PREFIX_RE.fullmatch(prefix):
        raise InvalidInput(
            f"{text[:80]!r} is not a plan id: give the id or a prefix of at least 8 hex digits.",
        )
    rows = store.query("SELECT id FROM plans WHERE id >= ? AND id < ? ORDER BY id LIMIT 2", (prefix, prefix + "g"))
    if not rows:
        raise NotFound(f"no plan starts with {prefix}.", hint="`tailops plans list` shows the plans.")
    if len(rows) > 1:
        raise InvalidInput(f"{prefix} matches more than one plan; give more digits.")
    return str(rows[0]["id"])


def resolve_run_id(store: Store, text: str) -> str:
    """A full run id from a unique prefix of at least 8 hex digits."""
    prefix = text.strip().lower()
    if not _PREFIX_RE.fullmatch(prefix) or len(prefix) > 32:
        raise InvalidInput(f"{text[:80]!r} is not a run id: give the id or a prefix of at least 8 hex digits.")
    rows = store.query("SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2", (prefix, prefix + "g"))
    if not rows:
        raise NotFound(f"no run starts with {prefix}.", hint="`tailops plans runs` shows the runs.")
    if len(rows) > 1:
        raise InvalidInput(f"{prefix} matches more than one run; give more digits.")
    return str(rows[0]["id"])


def list_plans(
    store: Store, *, status: str | None = None, limit: int = 50, now: float | None = None
) -> tuple[list[Plan], int]:
    """Newest first, optionally only one effective status; returns (plans, total matching)."""
    now = time.time() if now is None else now
    where = ""
    params: dict[str, Any] = {"now": now, "limit": limit}
    if status is not None:
        if status not in PLAN_STATUSES:
            raise InvalidInput(f"unknown plan status {status!r} (one of: {', '.join(PLAN_STATUSES)}).")
        where = f"WHERE {_PLAN_STATUS_SQL} = :status"
        params["status"] = status
    # Only constant SQL fragments are formatted in; values are bound parameters.
    total_row = store.query_one(f"SELECT COUNT(*) AS n FROM plans {where}", params)  # noqa: S608
    rows = store.query(f"SELECT * FROM plans {where} ORDER BY created_at DESC, id LIMIT :limit", params)  # noqa: S608
    return [_plan(r, now) for r in rows], int(total_row["n"]) if total_row else 0


def set_plan_status(
    store: Store, plan_id: str, status: StoredPlanStatus, reason: str | None, *, expect: Iterable[str]
) -> bool:
    """Move a plan to ``status`` only if its stored status is one of ``expect``; True if it moved."""
    allowed = list(expect)
    marks = ",".join("?" * len(allowed))
    with store.transaction() as conn:
        cur = conn.execute(  # placeholders only are formatted in
            f"UPDATE plans SET status = ?, status_reason = ?, updated_at = ? WHERE id = ? AND status IN ({marks})",  # noqa: S608
            (status, reason, time.time(), plan_id, *allowed),
        )
        return cur.rowcount == 1


# --------------------------------------------------------------------------- approvals
def _approval(row: Any) -> Approval:
    return from_row(Approval, row, _APPROVAL_JSON)


def insert_approval(
    store: Store,
    approval: Approval,
    *,
    plan_from: Iterable[str],
    now: float,
    required: int = 1,
    excluded: Iterable[str] = (),
) -> int:
    """Record a decision and move the plan in one transaction; the number of live approvals after it.

    A denial closes the plan ('denied'). An approval counts toward ``required`` distinct people:
    the plan becomes 'approved' when the live (unused, unexpired) approvals reach it, and stays
    'pending' before. Refused with ApprovalError, nothing written, when the plan is not in one of
    ``plan_from`` or has expired, when it already has ``required`` live approvals, or when the
    approver shares an identity with someone who already approved it (distinct people). Live
    approvals whose ids are in ``excluded`` (given with a since-revoked token) do not count."""
    allowed = list(plan_from)
    marks = ",".join("?" * len(allowed))
    dropped = set(excluded)
    with store.transaction() as conn:
        count = 0
        if approval.decision == "approved":
            live = [
                row
                for row in conn.execute(
                    "SELECT id, approver_subject, approver_ids FROM approvals WHERE plan_id = ?"
                    " AND decision = 'approved' AND used_at IS NULL AND expires_at > ?",
                    (approval.plan_id, now),
                ).fetchall()
                if row["id"] not in dropped
            ]
            if len(live) >= required:
                raise ApprovalError(f"plan {approval.plan_id} already has a valid approval ({live[0]['id']}).")
            mine = {k.strip().lower() for k in approval.approver_ids}
            for row in live:
                theirs = {k.strip().lower() for k in json.loads(row["approver_ids"])}
                if mine & theirs:
                    raise PermissionDenied(
                        f"approval refused: {approval.approver_subject} already approved plan {approval.plan_id}; "
                        f"it needs {required} approvals from distinct people.",
                        hint="Ask another person with the changes:approve scope.",
                    )
            count = len(live) + 1
            complete = approval.by_policy or count >= required
            target = "approved" if complete else "pending"
            reason = None if complete else f"{count} of {required} approvals"
        else:
            target, reason = "denied", approval.comment
        base = "UPDATE plans SET status = ?, status_reason = ?, updated_at = ? WHERE id = ? AND expires_at > ?"
        sql = f"{base} AND status IN ({marks})"  # only placeholders are formatted in
        cur = conn.execute(sql, (target, reason, now, approval.plan_id, now, *allowed))
        if cur.rowcount != 1:
            raise ApprovalError(
                f"plan {approval.plan_id} changed meanwhile (expired, decided or applied); nothing was recorded.",
                hint="Look at it again with get_plan.",
            )
        conn.execute(
            "INSERT INTO approvals (id, plan_id, decision, by_policy, approver_subject, approver, approver_ids,"
            " comment, created_at, expires_at, used_at, used_by_run) VALUES (?,?,?,?,?,?,?,?,?,?,NULL,NULL)",
            (
                approval.id,
                approval.plan_id,
                approval.decision,
                int(approval.by_policy),
                approval.approver_subject,
                canonical_json(approval.approver),
                canonical_json(sorted(approval.approver_ids)),
                approval.comment,
                approval.created_at.timestamp(),
                approval.expires_at.timestamp() if approval.expires_at else None,
            ),
        )
    return count


def live_approvals(store: Store, plan_id: str, *, now: float | None = None) -> list[Approval]:
    """The plan's approvals that still count: approved, unused and unexpired, oldest first."""
    now = time.time() if now is None else now
    rows = store.query(
        "SELECT * FROM approvals WHERE plan_id = ? AND decision = 'approved' AND used_at IS NULL AND expires_at > ?"
        " ORDER BY created_at, id",
        (plan_id, now),
    )
    return [_approval(r) for r in rows]


def approvals_for(store: Store, plan_id: str) -> list[Approval]:
    """Every decision about a plan, oldest first."""
    rows = store.query("SELECT * FROM approvals WHERE plan_id = ? ORDER BY created_at, id", (plan_id,))
    return [_approval(r) for r in rows]


def live_approval(store: Store, plan_id: str) -> Approval | None:
    """The newest 'approved' decision of the plan (used or not, expired or not), if any."""
    row = store.query_one(
        "SELECT * FROM approvals WHERE plan_id = ? AND decision = 'approved' ORDER BY created_at DESC, id LIMIT 1",
        (plan_id,),
    )
    return _approval(row) if row is not None else None


def void_approval(store: Store, approval_id: str, now: float) -> bool:
    """End an unused approval now (its token was revoked); True if it was still open."""
    with store.transaction() as conn:
        cur = conn.execute(
            "UPDATE approvals SET expires_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?",
            (now, approval_id, now),
        )
        return cur.rowcount == 1


# --------------------------------------------------------------------------- runs
def _run(row: Any) -> Run:
    return from_row(Run, row, _RUN_JSON)


def consume_and_start_run(
    store: Store,
    *,
    run_id: str,
    plan_id: str,
    approval_id: str,
    more_approvals: Sequence[str] = (),
    requester: Mapping[str, str | None],
    instance_id: str,
    pid: int,
    pid_started: float,
    runner_ident: str,
    now: float,
) -> Run:
    """In ONE transaction: use the approval (single use), mark the plan applied and write
    the run row as 'running'. Raises ApprovalError (nothing written) if the approval was
    used or expired, or the plan left 'approved' or expired, in the meantime."""
    with store.transaction() as conn:
        used = conn.execute(
            "UPDATE approvals SET used_at = ?, used_by_run = ? WHERE id = ? AND plan_id = ? AND decision = 'approved'"
            " AND used_at IS NULL AND expires_at > ?",
            (now, run_id, approval_id, plan_id, now),
        )
        if used.rowcount != 1:
            raise ApprovalError(
                f"the approval of plan {plan_id} was used or expired meanwhile; nothing was run.",
                hint="Ask for a new approval (or look at the plan's runs).",
            )
        for other in more_approvals:  # the other approvals a multi-approval plan needed: used together
            more = conn.execute(
                "UPDATE approvals SET used_at = ?, used_by_run = ? WHERE id = ? AND plan_id = ?"
                " AND decision = 'approved' AND used_at IS NULL AND expires_at > ?",
                (now, run_id, other, plan_id, now),
            )
            if more.rowcount != 1:
                raise ApprovalError(f"an approval of plan {plan_id} was used or expired meanwhile; nothing was run.")
        moved = conn.execute(
            "UPDATE plans SET status = 'applied', status_reason = ?, updated_at = ? WHERE id = ?"
            " AND status = 'approved' AND expires_at > ?",
            (f"run {run_id}", now, plan_id, now),
        )
        if moved.rowcount != 1:
            raise ApprovalError(f"plan {plan_id} is no longer approved or has expired; nothing was run.")
        conn.execute(
            "INSERT INTO runs (id, plan_id, approval_id, status, requester_subject, requester, instance_id, pid,"
            " pid_started, runner_ident, started_at) VALUES (?,?,?,'running',?,?,?,?,?,?,?)",
            (
                run_id,
                plan_id,
                approval_id,
                requester.get("subject") or "",
                canonical_json(dict(requester)),
                instance_id,
                pid,
                pid_started,
                runner_ident,
                now,
            ),
        )
    return get_run(store, run_id)


def finish_run(
    store: Store,
    run_id: str,
    *,
    status: RunState,
    reason: str | None,
    runner_status: str | None = None,
    rc: int | None = None,
    outcome: Sequence[HostOutcome] = (),
    mismatches: Sequence[str] = (),
) -> None:
    """Record the final state of a running run (no-op if it is no longer 'running')."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE runs SET status = ?, status_reason = ?, runner_status = ?, rc = ?, outcome = ?, mismatches = ?,"
            " finished_at = ? WHERE id = ? AND status = 'running'",
            (
                status,
                reason,
                runner_status,
                rc,
                canonical_json([o.model_dump(mode="json") for o in outcome]),
                canonical_json(list(mismatches)),
                time.time(),
                run_id,
            ),
        )


def get_run(store: Store, run_id: str) -> Run:
    if not RUN_ID_RE.fullmatch(run_id):
        raise InvalidInput(f"{run_id[:80]!r} is not a run id (32 lowercase hex digits).")
    row = store.query_one("SELECT * FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise NotFound(f"no run {run_id}.", hint="list_plans / `tailops plans runs` show runs by plan.")
    return _run(row)


def list_runs(
    store: Store, *, status: str | None = None, plan_id: str | None = None, limit: int = 50
) -> tuple[list[Run], int]:
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        if status not in RUN_STATES:
            raise InvalidInput(f"unknown run status {status!r} (one of: {', '.join(RUN_STATES)}).")
        clauses.append("status = ?")
        params.append(status)
    if plan_id is not None:
        clauses.append("plan_id = ?")
        params.append(plan_id)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    # Only constant SQL fragments are formatted in; values are bound parameters.
    total = store.query_one(f"SELECT COUNT(*) AS n FROM runs {where}", params)  # noqa: S608
    rows = store.query(f"SELECT * FROM runs {where} ORDER BY started_at DESC, id LIMIT ?", [*params, limit])  # noqa: S608
    return [_run(r) for r in rows], int(total["n"]) if total else 0


def append_events(store: Store, run_id: str, first_seq: int, events: Sequence[RunEvent]) -> None:
    """Store a batch of events (seq numbers from ``first_seq``) and bump the run's count."""
    if not events:
        return
    now = time.time()
    rows = [
        (
            run_id,
            first_seq + i,
            e.kind,
            e.host,
            e.task,
            str(e.status) if e.status is not None else (e.run_status or None),
            int(e.changed),
            int(e.not_simulated),
            e.msg,
            e.diff,
            e.created.timestamp() if e.created else now,
        )
        for i, e in enumerate(events)
    ]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO run_events (run_id, seq, kind, host, task, status, changed, not_simulated, msg, diff,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute("UPDATE runs SET event_count = event_count + ? WHERE id = ?", (len(rows), run_id))


def run_events(
    store: Store,
    run_id: str,
    *,
    limit: int = 200,
    kinds: Sequence[str] | None = None,
    latest: bool = False,
    after: int = -1,
) -> list[StoredEvent]:
    """The first ``limit`` events of a run after sequence number ``after`` (``latest``: the
    last ``limit``; optionally only some kinds), in order."""
    where = "run_id = ? AND seq > ?"
    params: list[Any] = [run_id, after]
    if kinds:
        where += f" AND kind IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    order = "DESC" if latest else "ASC"
    # Only constant SQL fragments are formatted in; values are bound parameters.
    rows = store.query(f"SELECT * FROM run_events WHERE {where} ORDER BY seq {order} LIMIT ?", [*params, limit])  # noqa: S608
    if latest:
        rows = list(reversed(rows))
    return [from_row(StoredEvent, r, frozenset()) for r in rows]


def request_cancel(store: Store, run_id: str, by: str) -> Run:
    """Ask a running run to stop (the executor polls for it); ChangeError if it is not running."""
    run = get_run(store, run_id)
    if run.status != "running":
        raise ChangeError(f"run {run_id} is {run.status}, not running; there is nothing to cancel.")
    with store.transaction() as conn:
        conn.execute(
            "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, ?),"
            " cancel_requested_by = COALESCE(cancel_requested_by, ?) WHERE id = ? AND status = 'running'",
            (time.time(), by, run_id),
        )
    return get_run(store, run_id)


def cancel_requested(store: Store, run_id: str) -> bool:
    row = store.query_one("SELECT cancel_requested_at FROM runs WHERE id = ?", (run_id,))
    return row is not None and row["cancel_requested_at"] is not None


def process_alive(pid: int, started: float) -> bool:
    """True if ``pid`` is still the process that started at ``started`` (not a reused pid)."""
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except (psutil.Error, OSError):
        return False


def mark_interrupted(
    store: Store, instance_id: str, *, alive: Callable[[int, float], bool] = process_alive
) -> list[str]:
    """Runs left 'running' by a server instance that is gone become 'interrupted'.

    A run whose process is still alive (``alive(pid, pid_started)``: another server
    or a CLI on the same data dir running it now) is left alone. Returns the ids marked.
    """
    rows = store.query("SELECT id, instance_id, pid, pid_started FROM runs WHERE status = 'running'")
    marked: list[str] = []
    for row in rows:
        if row["instance_id"] == instance_id:
            continue
        if alive(int(row["pid"]), float(row["pid_started"])):
            continue
        with store.transaction() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'interrupted', status_reason = ?, finished_at = ?"
                " WHERE id = ? AND status = 'running'",
                (
                    "the server running it stopped before the run finished (crash or kill): what was applied is "
                    "unknown; look at the hosts and plan again",
                    time.time(),
                    row["id"],
                ),
            )
            if cur.rowcount == 1:
                marked.append(str(row["id"]))
    return marked
