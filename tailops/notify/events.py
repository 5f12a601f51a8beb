"""The typed events a webhook can carry, and their builders from plans and runs.

Why a model of its own: a notification leaves the machine, to a chat room or a
third-party receiver, so what it may say is decided here, once, by the fields that
exist. An event carries ids, counts, names and subjects — never a plan's params,
a diff, a task message or a token. Free text (``reason``) and subjects go through
:func:`tailops.redact.redact_text` and are capped. Adding a field means deciding
that it is safe to send to every receiver.

This module must never import the change engine at run time (the engine imports
it to emit); the builders take plans and runs by duck type.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

from pydantic import Field, field_validator

from tailops.config import NOTIFICATION_EVENTS, Settings
from tailops.models import Model
from tailops.redact import redact_text


class Plan(Protocol):
    """What an event takes from a plan (tailops.changes.plans.Plan; duck-typed so that the
    outbox, which the change engine writes to, never imports the engine's records)."""

    @property
    def id(self) -> str: ...
    @property
    def playbook(self) -> str: ...
    @property
    def risk(self) -> str: ...
    @property
    def hosts(self) -> Sequence[object]: ...
    @property
    def requester(self) -> dict[str, str | None]: ...


class Run(Protocol):
    """What an event takes from a run (tailops.changes.plans.Run)."""

    @property
    def id(self) -> str: ...
    @property
    def plan_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str | None: ...
    @property
    def requester(self) -> dict[str, str | None]: ...


__all__ = ["Event", "EventKind", "plan_event", "review_url", "run_event", "run_kind", "who"]

_MAX_REASON = 500
_MAX_NAME = 200


class EventKind(StrEnum):
    """What happened. The value is what receivers see (``kind``) and what config lists."""

    PLAN_AWAITING_APPROVAL = "plan.awaiting_approval"
    PLAN_APPROVED = "plan.approved"
    PLAN_DENIED = "plan.denied"
    PLAN_EXPIRED = "plan.expired"
    RUN_STARTED = "run.started"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELED = "run.canceled"
    RUN_INTERRUPTED = "run.interrupted"
    DRIFT_FOUND = "drift.found"
    # Sent only by `tailops notifications test`, to the endpoints named there.
    TEST = "test"


assert tuple(k.value for k in EventKind if k is not EventKind.TEST) == NOTIFICATION_EVENTS, "config/EventKind"

# Human titles, shared by every format.
TITLES: dict[EventKind, str] = {
    EventKind.PLAN_AWAITING_APPROVAL: "Plan awaiting approval",
    EventKind.PLAN_APPROVED: "Plan approved",
    EventKind.PLAN_DENIED: "Plan denied",
    EventKind.PLAN_EXPIRED: "Plan expired",
    EventKind.RUN_STARTED: "Run started",
    EventKind.RUN_SUCCEEDED: "Run succeeded",
    EventKind.RUN_FAILED: "Run failed",
    EventKind.RUN_CANCELED: "Run canceled",
    EventKind.RUN_INTERRUPTED: "Run interrupted",
    EventKind.DRIFT_FOUND: "Drift found",
    EventKind.TEST: "Test notification",
}


def _clean(value: str | None, cap: int) -> str | None:
    if value is None:
        return None
    text = redact_text(value.replace("\r", " ").replace("\n", " ").strip())
    return text if len(text) <= cap else text[: cap - 1] + "…"


class Event(Model):
    """One lifecycle event. Only these fields are ever sent (see the module docstring)."""

    id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="Event id. Give a deterministic one (e.g. 'plan.expired:<plan id>') to make emitting "
        "the same event twice a no-op.",
    )
    kind: EventKind
    occurred_at: float = Field(default_factory=time.time, description="UNIX time the event happened.")
    plan_id: str | None = Field(None, pattern=r"^[0-9a-f]{8,64}$")
    run_id: str | None = Field(None, pattern=r"^[0-9A-Za-z_-]{1,64}$")
    playbook: str | None = Field(None, max_length=_MAX_NAME)
    risk: str | None = Field(None, max_length=32)
    hosts: int | None = Field(None, ge=0, description="How many hosts the plan/run/check concerns.")
    requester: str | None = Field(None, description="Who asked for the plan (login or token subject).")
    approver: str | None = Field(None, description="Who approved or denied it.")
    reason: str | None = Field(None, description="Why (denial reason, failure summary); redacted, capped.")
    check: str | None = Field(None, max_length=_MAX_NAME, description="Drift check name (drift.found).")
    review_url: str | None = Field(None, description="Review page of the plan; set by enqueue from config.")

    @field_validator("requester", "approver", mode="before")
    @classmethod
    def _subject(cls, value: Any) -> Any:
        return _clean(value, _MAX_NAME) if isinstance(value, str) else value

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: Any) -> Any:
        return _clean(value, _MAX_REASON) if isinstance(value, str) else value

    @property
    def title(self) -> str:
        return TITLES[self.kind]


def review_url(settings: Settings, plan_id: str | None) -> str:
    """``<public base>/review/plans/<id>`` (the plan's review page), else the review index."""
    base = settings.public_base_url
    return f"{base}/review/plans/{plan_id}" if plan_id else f"{base}/review"


def who(principal: dict[str, str | None] | None) -> str | None:
    """A person's login when known (Tailscale), else the principal's subject; never a token id."""
    if not principal:
        return None
    return principal.get("human_login") or principal.get("subject")


def plan_event(
    kind: EventKind,
    plan: Plan,
    *,
    approver: str | None = None,
    reason: str | None = None,
    event_id: str | None = None,
) -> Event:
    """An event about ``plan``: its id, playbook, risk, host count and requester — no params, no diffs."""
    fields: dict[str, Any] = {
        "kind": kind,
        "plan_id": plan.id,
        "playbook": plan.playbook,
        "risk": plan.risk,
        "hosts": len(plan.hosts),
        "requester": who(plan.requester),
        "approver": approver,
        "reason": reason,
    }
    if event_id is not None:
        fields["id"] = event_id
    return Event(**fields)


def run_kind(status: str) -> EventKind:
    """The event of a run status (``running`` → run.started, ``canceled`` → run.canceled, …)."""
    kinds = {
        "running": EventKind.RUN_STARTED,
        "succeeded": EventKind.RUN_SUCCEEDED,
        "failed": EventKind.RUN_FAILED,
        "canceled": EventKind.RUN_CANCELED,
        "interrupted": EventKind.RUN_INTERRUPTED,
    }
    try:
        return kinds[status]
    except KeyError:
        raise ValueError(f"no event for run status {status!r}") from None


def run_event(run: Run, plan: Plan | None = None, *, reason: str | None = None) -> Event:
    """An event for ``run`` in its current status; ``plan`` adds playbook, risk and host count.

    The id is ``<kind>:<run id>``: a run reaches each status once, so emitting it twice is harmless.
    """
    kind = run_kind(run.status)
    return Event(
        id=f"{kind.value}:{run.id}",
        kind=kind,
        plan_id=run.plan_id,
        run_id=run.id,
        playbook=plan.playbook if plan else None,
        risk=plan.risk if plan else None,
        hosts=len(plan.hosts) if plan else None,
        requester=who(run.requester),
        reason=reason if reason is not None else (run.status_reason if kind is not EventKind.RUN_STARTED else None),
    )
