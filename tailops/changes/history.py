"""Per-host history: every plan that targeted a host, what it predicted there, who asked,
who decided, and what the runs actually did there — newest first.

Why: "what changed on web-3 this month, who asked and who approved?" is the question an
ops person asks after an incident. AWX keeps history per job; tailops keeps plans,
approvals and runs per host, so the answer is one indexed lookup (``plan_hosts``, written
with each plan) plus the plans' own records.

Read-only: it never changes a record, and shows only what a ``readonly`` holder may see
on a plan (diff summaries, never parameters a plan would not show).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from tailops.changes import plans
from tailops.changes.compare import summarize_diff
from tailops.durations import parse_duration
from tailops.errors import InvalidInput
from tailops.models import ListResult, Model
from tailops.store import Store

__all__ = ["HostChange", "HostHistory", "HostRun", "as_json", "check_host", "host_history", "parse_since"]

MAX_HOST_CHARS = 255


class HostRun(Model):
    run_id: str
    status: str = Field(description="running, succeeded, failed, canceled or interrupted.")
    applied_by: str = Field(description="Who applied the plan.")
    started_at: datetime
    finished_at: datetime | None = None
    host_status: str | None = Field(None, description="This host's status in the run ('missing': not reached).")
    changed: list[str] = Field(default_factory=list, description="Tasks that changed this host in the run.")
    mismatches: list[str] = Field(default_factory=list, description="Where the run differed from the plan here.")


class HostChange(Model):
    """One plan that targeted the host."""

    plan_id: str
    playbook: str
    version: str
    status: str = Field(description="The plan's status (pending, approved, applied, denied, …).")
    planned_at: datetime
    requested_by: str | None = None
    requester_human: str | None = None
    host_status: str = Field(description="This host's status in the plan's check run.")
    predicted: list[str] = Field(
        default_factory=list, description="Tasks predicted to change this host, with a diff summary."
    )
    approved_by: list[str] = Field(default_factory=list, description="Who approved (policy approvals say so).")
    denied_by: list[str] = Field(default_factory=list, description="Who denied, with the reason.")
    runs: list[HostRun] = Field(default_factory=list)


class HostHistory(ListResult):
    host: str
    since: datetime | None = None
    changes: list[HostChange]


def parse_since(text: str | None, *, now: float | None = None) -> float | None:
    """``since`` as a UNIX time: a duration back from now (``7d``, ``12h``) or an ISO 8601 time."""
    if text is None or not text.strip():
        return None
    now = time.time() if now is None else now
    value = text.strip()
    try:
        return now - parse_duration(value).total_seconds()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"since {value[:40]!r} is neither a duration (e.g. 7d, 12h) nor an ISO time (2026-12-01T00:00:00Z)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def check_host(host: str) -> str:
    text = host.strip()
    if not text or len(text) > MAX_HOST_CHARS or any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidInput(f"{host[:80]!r} is not an inventory host name.")
    return text


def host_history(store: Store, host: str, *, since: float | None = None, limit: int = 50) -> HostHistory:
    """The plans that targeted ``host`` (newest first, at most ``limit``, from ``since``), each with
    its prediction for that host, requester, decisions and runs (blocking: a few indexed reads)."""
    name = check_host(host)
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000.")
    lower = since if since is not None else 0.0
    total_row = store.query_one(
        "SELECT COUNT(*) AS n FROM plan_hosts WHERE host = ? AND created_at >= ?", (name, lower)
    )
    total = int(total_row["n"]) if total_row else 0
    rows = store.query(
        "SELECT plan_id FROM plan_hosts WHERE host = ? AND created_at >= ? ORDER BY created_at DESC LIMIT ?",
        (name, lower, limit),
    )
    now = time.time()
    changes: list[HostChange] = []
    for row in rows:
        plan = plans.find_plan(store, row["plan_id"], now=now)
        if plan is None:  # pragma: no cover - plan_hosts rows are written with their plan
            continue
        prediction = next((h for h in plan.hosts if h.host == name), None)
        predicted = []
        if prediction is not None:
            for task in prediction.tasks:
                if task.changed:
                    summary = summarize_diff(task.diff)
                    predicted.append(f"{task.task}: {summary}" if summary else task.task)
        approved: list[str] = []
        denied: list[str] = []
        for decision in plans.approvals_for(store, plan.id):
            who = decision.approver_subject
            human = decision.approver.get("human_login")
            label = f"{who} ({human})" if human else who
            if decision.decision == "approved":
                approved.append(label + (" [policy]" if decision.by_policy else ""))
            else:
                denied.append(f"{label}: {decision.comment}" if decision.comment else label)
        runs = []
        for run in plans.list_runs(store, plan_id=plan.id, limit=20)[0]:
            outcome = next((o for o in run.outcome if o.host == name), None)
            runs.append(
                HostRun(
                    run_id=run.id,
                    status=run.status,
                    applied_by=run.requester_subject,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    host_status=outcome.status if outcome else None,
                    changed=outcome.actual if outcome else [],
                    mismatches=outcome.mismatches if outcome else [],
                )
            )
        changes.append(
            HostChange(
                plan_id=plan.id,
                playbook=plan.playbook,
                version=plan.version,
                status=plan.status,
                planned_at=plan.created_at,
                requested_by=plan.requester.get("subject"),
                requester_human=plan.requester.get("human_login"),
                host_status=prediction.status if prediction else "missing",
                predicted=predicted,
                approved_by=approved,
                denied_by=denied,
                runs=runs,
            )
        )
    more = total - len(changes)
    return HostHistory(
        host=name,
        since=_dt(since),
        changes=changes,
        total=total,
        truncated=more > 0,
        truncation=f"{more} older plan(s) not shown; raise limit or narrow since" if more > 0 else None,
    )


def as_json(history: HostHistory) -> str:
    """Pretty JSON (the CLI's --json)."""
    data: dict[str, Any] = history.model_dump(mode="json")
    return json.dumps(data, indent=2)
