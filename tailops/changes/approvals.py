"""Who may approve or deny a plan, and how a decision is recorded.

Why: an approval is the one human check between "an agent wants this change"
and "Ansible changes the hosts" (DESIGN.md "The change lifecycle", step 3).
The rules live here, in one place, and raise — they never return False:

* deny by default: a plan without a live approval cannot be applied;
* the approver holds ``changes:approve`` and is NOT the requester — compared
  by identities (:meth:`tailops.principal.Principal.identities`: token
  subject, token id, Tailscale login, local OS user), not by token subject
  alone;
* an approval is bound to one plan id, carries who/when/comment, expires
  after ``changes.approval_ttl`` but never after the plan, and is used once
  (the executor consumes it in the transaction that writes the run row);
* policy per risk (``changes.approval``): ``low: auto`` approves a low-risk
  plan at plan time, recorded as an approval *by policy*; high and critical
  are always manual;
* team policy (``changes.required_approvals`` per risk, ``changes.group_approvals``
  per inventory group, the strictest over the plan's hosts wins — decided by
  :mod:`tailops.changes.approval_policy` at plan time and never lowered after): a plan
  needs that many approvals from *distinct* people (compared by identity, as for the
  requester); it stays ``pending`` ("1 of 2 approvals") until the last one, and apply
  uses them all at once. A group rule's ``auto`` approves the plan by policy only when
  every host is in an auto group; if the config is tightened after such a plan, its
  approval by policy is voided and people approve it.

MCP elicitation is deliberately not an approval path: the elicitation answer
comes from the requester's own client, so it would be self-approval.

What it must never do: approve a plan for its own requester, approve a
blocked, stale, denied, applied or expired plan, or write anything when a
rule refuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from tailops.auth.revocations import is_revoked
from tailops.changes import approval_policy, plans
from tailops.changes.approval_policy import ApprovalRequirement
from tailops.changes.plans import Approval, Plan
from tailops.config import ChangesSettings
from tailops.errors import ApprovalError, ConfigError, InvalidInput, PermissionDenied, TailopsError
from tailops.principal import Principal
from tailops.redact import redact_text
from tailops.store import Store

__all__ = [
    "APPROVE_SCOPE",
    "POLICY_SUBJECT",
    "approve",
    "approve_by_policy",
    "check_not_requester",
    "clean_text",
    "counting",
    "deny",
    "policy_for",
    "refuse_revoked_approval",
    "refuse_revoked_requester",
    "refuse_unapprovable",
    "required_approvals",
    "requirement",
    "revoked_token",
    "standing",
]

log = logging.getLogger("tailops.changes.approvals")

APPROVE_SCOPE = "changes:approve"
POLICY_SUBJECT = "policy:changes.approval"
_MAX_TEXT = 1000

_KEY_NAMES = {
    "sub": "token subject / user",
    "jti": "token",
    "tailscale": "Tailscale login",
    "os-user": "local OS user",
    "os-uid": "local OS user",
}


def clean_text(value: str | None, what: str, *, required: bool = False) -> str | None:
    """A comment or reason fit for the record: printable, trimmed, at most 1000 characters,
    and redacted like every audit field. People paste things: a token pasted into a comment
    must not become readable by every ``readonly`` holder through get_plan or the page."""
    if value is None:
        if required:
            raise InvalidInput(f"{what} is required.")
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    text = redact_text(text)
    if len(text) > _MAX_TEXT:
        raise InvalidInput(f"{what} is longer than {_MAX_TEXT} characters.")
    if required and not text:
        raise InvalidInput(f"{what} is required (say why).")
    return text or None


def policy_for(settings: ChangesSettings, risk: str) -> Literal["manual", "auto"]:
    """The approval policy for a risk class (unknown risk: manual)."""
    if risk == "low":
        return settings.approval.low
    return "manual"


def check_not_requester(plan: Plan, approver: Principal) -> None:
    """PermissionDenied if ``approver`` shares any identity with the plan's requester."""
    shared = approver.same_person_as(plan.requester_ids)
    if shared:
        kinds = sorted({_KEY_NAMES.get(key.split(":", 1)[0], key.split(":", 1)[0]) for key in shared})
        raise PermissionDenied(
            f"approval refused: {approver.label} is the requester of plan {plan.id} (same {', '.join(kinds)}). "
            "A plan must be approved by someone else.",
            hint="Ask another person with the changes:approve scope (approve_plan tool, or `tailops plans approve` "
            "run by another OS user).",
        )


def _configured_inventory(settings: ChangesSettings) -> Callable[[], Path]:
    def read() -> Path:
        if settings.inventory is None:
            raise ConfigError(
                "changes.group_approvals needs changes.inventory (the groups are read from it).",
                hint="Point changes.inventory at the Ansible inventory the rules' groups are in.",
            )
        return settings.inventory.absolute()

    return read


def requirement(
    settings: ChangesSettings, plan: Plan, inventory: Callable[[], Path] | None = None
) -> ApprovalRequirement:
    """What ``plan`` needs now: its recorded requirement, or the current config's if stricter
    (:func:`tailops.changes.approval_policy.effective`). ``inventory`` names the inventory file,
    read only when the plan recorded no host groups and a group rule is configured now."""
    return approval_policy.effective(
        settings, plan.approval_policy, plan.risk, plan.host_names, inventory or _configured_inventory(settings)
    )


def required_approvals(settings: ChangesSettings, plan: Plan, inventory: Callable[[], Path] | None = None) -> int:
    """How many live approvals applying ``plan`` needs: the distinct people of its requirement, or the
    one approval recorded by the policy for an ``auto`` plan."""
    return requirement(settings, plan, inventory).approvals_needed


def standing(
    store: Store, settings: ChangesSettings, plan: Plan, inventory: Callable[[], Path] | None = None
) -> tuple[ApprovalRequirement, int]:
    """For the views (get_plan, the review page, ``plans show``): the requirement and how many live
    approvals count toward it now (for an applied plan: how many its run used). If the inventory
    cannot be read for it, the plan's recorded requirement is shown (apply still decides with the
    current config, and refuses if it cannot)."""
    try:
        needed = requirement(settings, plan, inventory)
    except TailopsError as exc:
        log.warning("approval requirement shown as recorded", extra={"plan_id": plan.id, "error": exc.message})
        needed = plan.approval_policy or approval_policy.decide(settings, plan.risk, {})
    if plan.status == "applied":  # the approvals its run used (single use: no longer live)
        used = [a for a in plans.approvals_for(store, plan.id) if a.decision == "approved" and a.used_at]
        return needed, len(used)
    return needed, len(counting(needed, plans.live_approvals(store, plan.id)))


def counting(requirement: ApprovalRequirement, approvals: list[Approval]) -> list[Approval]:
    """The approvals that count toward ``requirement``: an approval by policy only while the
    requirement is still ``auto`` (a config tightened since planning wants people)."""
    return [a for a in approvals if requirement.auto or not a.by_policy]


def refuse_unapprovable(store: Store, plan: Plan, *, now: float, action: str = "approved", required: int = 1) -> None:
    """ApprovalError naming why ``plan`` cannot be approved (or denied) now; returns if it can."""
    status = plan.status
    if status == "pending":
        return
    when = plan.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if status == "expired":
        raise ApprovalError(
            f"plan {plan.id} expired at {when}; it cannot be {action}.",
            hint="Plan the change again (plan_change) and have the new plan approved.",
        )
    if status == "blocked":
        raise ApprovalError(
            f"plan {plan.id} is blocked and cannot be {action}: {plan.status_reason}",
            hint="Fix the cause or plan again with a limit that leaves the failing host(s) out.",
        )
    if status == "denied":
        raise ApprovalError(f"plan {plan.id} was denied ({plan.status_reason or 'no reason given'}).")
    if status == "stale":
        raise ApprovalError(
            f"plan {plan.id} is stale ({plan.status_reason}); it cannot be {action}.",
            hint="Plan the change again.",
        )
    if status == "applied":
        raise ApprovalError(f"plan {plan.id} was already applied ({plan.status_reason}).")
    # approved: another approval is allowed only when the live ones (unused, unexpired) no
    # longer reach the number required (one expired, or was given with a since-revoked token).
    if action != "approved":
        return
    live = plans.live_approvals(store, plan.id, now=now)
    if len(live) < required:
        return
    first = live[0]
    until = first.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if first.expires_at else "?"
    raise ApprovalError(
        f"plan {plan.id} is already approved by {', '.join(a.approver_subject for a in live)} until {until}.",
        hint="Apply it with apply_plan.",
    )


def revoked_token(store: Store, who: Mapping[str, str | None]) -> str | None:
    """The token id of ``who`` (a plan's requester or an approver, as recorded) if that token
    has been revoked since; None for a live token or a principal without one (stdio, CLI)."""
    jti = who.get("token_id")
    if jti and is_revoked(store, jti):
        return jti
    return None


def refuse_revoked_requester(store: Store, plan: Plan) -> None:
    """ApprovalError when the token that requested ``plan`` has been revoked.

    Revoking a token voids what it set in motion that has not happened yet: its plans are
    neither approved nor applied (the requester may have been an attacker, or gone)."""
    jti = revoked_token(store, plan.requester)
    if jti is not None:
        raise ApprovalError(
            f"plan {plan.id} was requested with token {jti} ({plan.requester.get('subject')}), which has been "
            "revoked since; plans of a revoked token are neither approved nor applied.",
            hint="Plan the change again with a valid token if it is still wanted.",
        )


def refuse_revoked_approval(store: Store, plan: Plan, approval: Approval) -> None:
    """ApprovalError when ``approval`` was given with a token that has been revoked since."""
    jti = revoked_token(store, approval.approver)
    if jti is not None:
        raise ApprovalError(
            f"the approval of plan {plan.id} was given with token {jti} ({approval.approver_subject}), which has "
            "been revoked since; it no longer counts.",
            hint="Ask someone with a valid changes:approve token to approve the plan again.",
        )


def approve(
    store: Store,
    settings: ChangesSettings,
    plan_id: str,
    approver: Principal,
    comment: str | None = None,
    *,
    now: float | None = None,
    inventory: Callable[[], Path] | None = None,
) -> Approval:
    """Approve ``plan_id`` as ``approver`` (every rule in the module docstring); the approval."""
    now = time.time() if now is None else now
    if not approver.has_scope(APPROVE_SCOPE):
        held = " ".join(sorted(approver.scopes)) or "none"
        raise PermissionDenied(
            f"approving plans needs scope '{APPROVE_SCOPE}'; {approver.subject} has: {held}.",
            hint="Ask someone who holds changes:approve to review and approve the plan.",
        )
    text = clean_text(comment, "comment")
    plan = plans.get_plan(store, plan_id, now=now)
    check_not_requester(plan, approver)
    refuse_revoked_requester(store, plan)
    for current in plans.live_approvals(store, plan.id, now=now):
        if revoked_token(store, current.approver):
            # An approval given with a now-revoked token no longer counts: end it so a valid one can replace it.
            plans.void_approval(store, current.id, now)
            log.warning("approval voided: its token was revoked", extra={"plan_id": plan.id, "approval_id": current.id})
    needed = requirement(settings, plan, inventory)
    if not needed.auto:
        for current in plans.live_approvals(store, plan.id, now=now):
            if current.by_policy:
                # Approved by an auto rule the config no longer has: people approve it now.
                plans.void_approval(store, current.id, now)
                log.warning(
                    "approval by policy voided: the config now requires people",
                    extra={"plan_id": plan.id, "approval_id": current.id},
                )
    required = needed.approvals_needed
    refuse_unapprovable(store, plan, now=now, required=required)
    expires = min(now + settings.approval_ttl.total_seconds(), plan.expires_at.timestamp())
    approval = Approval(
        id=plans.new_id(),
        plan_id=plan.id,
        decision="approved",
        by_policy=False,
        approver_subject=approver.subject,
        approver=approver.describe(),
        approver_ids=sorted(approver.identities()),
        comment=text,
        created_at=datetime.fromtimestamp(now, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    count = plans.insert_approval(store, approval, plan_from=("pending", "approved"), now=now, required=required)
    log.info(
        "plan approved", extra={"plan_id": plan.id, "approver": approver.label, "approvals": f"{count}/{required}"}
    )
    return approval


def deny(
    store: Store,
    plan_id: str,
    principal: Principal,
    reason: str,
    *,
    now: float | None = None,
) -> Approval:
    """Deny ``plan_id`` (closes it; a live approval stops counting).

    Needs ``changes:approve``; the requester may deny (withdraw) their own plan,
    since a denial can only ever stop a change.
    """
    now = time.time() if now is None else now
    plan = plans.get_plan(store, plan_id, now=now)
    if not principal.has_scope(APPROVE_SCOPE) and not principal.same_person_as(plan.requester_ids):
        held = " ".join(sorted(principal.scopes)) or "none"
        raise PermissionDenied(
            f"denying plans needs scope '{APPROVE_SCOPE}' (or being the requester); {principal.subject} has: {held}."
        )
    text = clean_text(reason, "reason", required=True)
    if plan.status not in ("pending", "approved"):
        refuse_unapprovable(store, plan, now=now, action="denied")
        raise ApprovalError(f"plan {plan.id} is {plan.status}; only pending or approved plans can be denied.")
    denial = Approval(
        id=plans.new_id(),
        plan_id=plan.id,
        decision="denied",
        by_policy=False,
        approver_subject=principal.subject,
        approver=principal.describe(),
        approver_ids=sorted(principal.identities()),
        comment=text,
        created_at=datetime.fromtimestamp(now, UTC),
    )
    plans.insert_approval(store, denial, plan_from=("pending", "approved"), now=now)
    log.info("plan denied", extra={"plan_id": plan.id, "by": principal.label})
    return denial


def approve_by_policy(
    store: Store, settings: ChangesSettings, plan: Plan, *, now: float | None = None
) -> Approval | None:
    """At plan time: approve a pending plan whose requirement (recorded with it) is ``auto``; None if not.

    Recorded like any approval, with ``by_policy`` set and the rule as approver (the
    risk policy ``changes.approval.low`` or the auto group(s) of ``changes.group_approvals``),
    so the audit trail says the plan was never seen by a person and which rule let it through.
    """
    needed = plan.approval_policy or approval_policy.decide(settings, plan.risk, {})
    if plan.status != "pending" or not needed.auto or plan.risk != "low":
        return None
    now = time.time() if now is None else now
    expires = min(now + settings.approval_ttl.total_seconds(), plan.expires_at.timestamp())
    keys = [_policy_key(hit.rule, plan.risk) for hit in needed.decided_by]
    subject = "policy:" + "+".join(keys)
    approval = Approval(
        id=plans.new_id(),
        plan_id=plan.id,
        decision="approved",
        by_policy=True,
        approver_subject=subject,
        approver={"subject": subject, "transport": "policy"},
        approver_ids=[f"policy:{key}" for key in keys],
        comment=f"approved by policy: {needed.summary()} (no person reviewed this plan)",
        created_at=datetime.fromtimestamp(now, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    plans.insert_approval(store, approval, plan_from=("pending",), now=now)
    log.warning("plan approved by policy", extra={"plan_id": plan.id, "policy": subject})
    return approval


def _policy_key(rule: str, risk: str) -> str:
    """The config key of an auto rule: ``changes.approval.low=auto`` or ``changes.group_approvals[dev].low=auto``."""
    if rule.startswith("group "):
        return f"changes.group_approvals[{rule.removeprefix('group ')}].{risk}=auto"
    return f"{rule}=auto"
