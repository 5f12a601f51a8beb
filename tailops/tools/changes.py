"""Change tools (group ``changes``): the plan → approve → apply lifecycle over MCP.

``list_playbooks`` reads the catalog; ``plan_change`` dry-runs a catalog
playbook and stores a plan; ``get_plan``/``list_plans`` show plans;
``approve_plan``/``deny_plan`` decide (scope ``changes:approve``, never the
requester); ``apply_plan`` applies an approved plan with progress
notifications; ``get_run``/``cancel_run`` follow and stop runs. The seed tool
names stay as thin doors that create plans of their playbooks (same result as
``plan_change``): ``check_system_updates`` and ``update_system_packages``
(package_update), ``install_package`` (package_install),
``update_docker_container`` (container_update), ``pull_docker_image``
(image_pull); ``manage_container`` start/stop/restart lives in
:mod:`tailops.tools.containers` and plans container_state.

Scopes: the registry checks the static scope (``readonly`` for the generic
tools, the playbook's own scope for a seed door) and then, through
``scope_for``, the scope of the playbook the arguments name (plan_change) or
of the plan/run they name (apply_plan, cancel_run) — both before any work.
Every tool that can lead to a change is ``read_only=False`` (a ``--read-only``
server hides it). Plan and run ids go into the call's audit record.

This module holds no lifecycle logic: it calls :mod:`tailops.changes`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from tailops.changes import approvals, drift, history, plans
from tailops.changes.drift import DriftReport
from tailops.changes.executors.placement import Placement
from tailops.changes.history import HostHistory
from tailops.changes.models import RunEvent
from tailops.changes.plans import HostOutcome, Plan, Run
from tailops.errors import TailopsError
from tailops.models import ListResult, Model
from tailops.tools.registry import ToolCall, tool

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__ = ["PlanView", "RunView", "plan_for_tool"]

_DIFF_CAP = 4000
_MSG_CAP = 600

PlanIdArg = Annotated[
    str,
    Field(description="Plan id (64 hex digits, from plan_change or list_plans).", pattern=r"^[0-9a-f]{64}$"),
]
DriftCheckArg = Annotated[str, Field(description="Name of the drift check (drift.checks).", max_length=64)]
RunIdArg = Annotated[str, Field(description="Run id (32 hex digits, from apply_plan).", pattern=r"^[0-9a-f]{32}$")]
LimitArg = Annotated[
    str | None,
    Field(
        description="Ansible host pattern limiting the hosts (e.g. web1,web2 or 'targets:!db1'); default all.",
        max_length=512,
    ),
]


# --------------------------------------------------------------------------- views
class TaskView(Model):
    task: str = Field(description="Task name.")
    status: str = Field(description="ok, changed, skipped, failed or unreachable.")
    changed: bool = Field(False, description="Would change (plan) / changed (run) the host.")
    diff: str | None = Field(None, description="Unified diff of the change (capped).")
    diff_truncated: bool = Field(False, description="The diff was cut; `tailops plans show` has it whole.")
    msg: str | None = Field(None, description="Module message.")
    not_simulated: bool = Field(False, description="Check mode could not simulate this task.")


class HostView(Model):
    host: str = Field(description="Inventory host.")
    status: str = Field(description="ok, changed, failed or unreachable in the check run.")
    changed_tasks: list[str] = Field(default_factory=list, description="Tasks that would change this host.")
    tasks: list[TaskView] = Field(
        default_factory=list,
        description="Tasks that would change, failed, or could not be simulated (the rest only changes nothing).",
    )
    other_tasks: int = Field(0, description="Tasks left out of `tasks` (ok/skipped, no change).")


class ApprovalView(Model):
    decision: str = Field(description="approved or denied.")
    by: str = Field(description="Who decided (token subject, OS user, or the policy).")
    human: str | None = Field(None, description="Tailscale login of the person, if known.")
    transport: str | None = Field(None, description="http, stdio, cli or policy.")
    by_policy: bool = Field(False, description="Approved by changes.approval policy, not by a person.")
    at: datetime
    expires_at: datetime | None = None
    comment: str | None = None
    used_by_run: str | None = Field(None, description="The run that used this approval (single use).")


class ShardView(Model):
    node: str = Field(description="Execution node name, or 'local' for this machine.")
    hosts_total: int
    hosts: list[str] = Field(description="The hosts it runs (sorted; capped, see hosts_omitted).")
    hosts_omitted: int = Field(0, description="Hosts left out of the list to stay under the output cap.")
    bundle_sha256: str | None = Field(None, description="SHA-256 of the job bundle sent to the node.")


class PlacementView(Model):
    shard_digest: str = Field(description="SHA-256 of the whole shard map (node -> every host), as planned.")
    shards: list[ShardView]


# Host names listed in a plan view's placement, split evenly over its shards: a 10,000-host
# plan must stay under the output cap; the digest still covers every host.
_PLACEMENT_HOSTS = 200


def _placement_view(placement: Placement | None) -> PlacementView | None:
    if placement is None:
        return None
    per_shard = max(1, _PLACEMENT_HOSTS // max(1, len(placement.shards)))
    return PlacementView(
        shard_digest=placement.shard_digest,
        shards=[
            ShardView(
                node=s.node,
                hosts_total=len(s.hosts),
                hosts=s.hosts[:per_shard],
                hosts_omitted=max(0, len(s.hosts) - per_shard),
                bundle_sha256=s.bundle_sha256,
            )
            for s in placement.shards
        ],
    )


class PlanView(Model):
    plan_id: str
    playbook: str
    version: str
    playbook_sha256: str
    params: dict[str, Any]
    limit: str | None = None
    risk: str
    scope: str = Field(description="Scope needed to apply it.")
    status: str = Field(description="pending, approved, denied, blocked, stale, applied or expired.")
    status_reason: str | None = None
    reused: bool = Field(False, description="This exact plan already existed and is still open: returned as is.")
    requested_by: str
    requester_human: str | None = None
    created_at: datetime
    expires_at: datetime
    inventory_sha256: str
    hosts_total: int
    hosts_changing: int = Field(description="Hosts where at least one task would change something.")
    hosts: list[HostView]
    hosts_omitted: int = Field(0, description="Hosts left out to stay under the output cap.")
    approvals: list[ApprovalView] = Field(default_factory=list)
    approvals_required: int = Field(
        1,
        description="Approvals that must count before apply: distinct people (changes.required_approvals, "
        "changes.group_approvals; the strictest over the plan's hosts), or 1 recorded by the policy for an auto plan.",
    )
    approval_rule: str | None = Field(
        None,
        description="Which rule set the requirement, e.g. '2 approvals: group prod (web-1, web-2)' or "
        "'auto: group dev (dev-1); approved by policy, no person approves'.",
    )
    check_mode_side_effects: dict[str, str] = Field(
        default_factory=dict,
        description="Tasks of this playbook that ran for real during the dry run, and what they may change "
        "(e.g. the apt package index): nothing else on the hosts was touched by planning.",
    )
    approvals_given: int = Field(0, description="Approvals that count now (unused, unexpired).")
    runs: list[str] = Field(default_factory=list, description="Ids of runs of this plan.")
    placement: PlacementView | None = Field(
        None,
        description="Execution nodes: which node runs which hosts and the job bundle sent to each "
        "(absent: every host runs on this machine). Apply uses the same, or the plan is stale.",
    )
    next_step: str = Field(description="What to do next.")


class PlanSummary(Model):
    plan_id: str | None = None
    playbook: str | None = None
    version: str | None = None
    status: str | None = None
    risk: str | None = None
    requested_by: str | None = None
    limit: str | None = None
    hosts: int | None = None
    hosts_changing: int | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


class PlanList(ListResult):
    plans: list[PlanSummary]


class EventView(Model):
    seq: int
    kind: str
    host: str | None = None
    task: str | None = None
    status: str | None = None
    changed: bool = False
    msg: str | None = None


class RunView(Model):
    run_id: str
    plan_id: str
    playbook: str | None = None
    status: str = Field(description="running, succeeded, failed, canceled or interrupted.")
    status_reason: str | None = None
    requested_by: str
    started_at: datetime
    finished_at: datetime | None = None
    cancel_requested_by: str | None = None
    hosts: list[HostOutcome] = Field(default_factory=list, description="Planned vs actual changed tasks per host.")
    mismatches: list[str] = Field(default_factory=list, description="Where the run differs from the plan.")
    events: list[EventView] = Field(default_factory=list)
    events_total: int = 0
    events_truncated: bool = False


class PlaybookInfo(Model):
    name: str | None = None
    version: str | None = None
    risk: str | None = None
    scope: str | None = None
    approval: str | None = Field(
        None,
        description="manual, or auto (changes.approval policy for its risk); changes.group_approvals may ask "
        "more for some hosts' groups (get_plan names the rule that applies to a plan).",
    )
    target: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="JSON Schema of params.")
    not_simulated: list[str] | None = None
    check_mode_side_effects: dict[str, str] | None = Field(
        None, description="Tasks that run for real during a plan -> what they may change on a host."
    )


class PlaybookList(ListResult):
    playbooks: list[PlaybookInfo]


# --------------------------------------------------------------------------- view builders
def _cap(text: str | None, cap: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= cap:
        return text, False
    return text[:cap] + f"\n[... {len(text) - cap} more characters]\n", True


def _approval_view(a: plans.Approval) -> ApprovalView:
    return ApprovalView(
        decision=a.decision,
        by=a.approver_subject,
        human=a.approver.get("human_login"),
        transport=a.approver.get("transport"),
        by_policy=a.by_policy,
        at=a.created_at,
        expires_at=a.expires_at,
        comment=a.comment,
        used_by_run=a.used_by_run,
    )


def _next_step(
    plan: Plan, live: plans.Approval | None, given: int = 0, required: int = 1, rule: str | None = None
) -> str:
    short = plan.id[:12]
    needs = f" It needs {rule}." if rule else ""
    if plan.status in ("pending", "approved") and given and given < required:
        return (
            f"{given} of {required} approvals: another person (not {plan.requester.get('subject')} and not who "
            f"approved already) with scope changes:approve approves it: approve_plan(plan_id) or "
            f"`tailops plans approve {short}`; then apply_plan(plan_id).{needs}"
        )
    if plan.status == "pending" or (plan.status == "approved" and given < required):
        return (
            f"Review it, then a person other than {plan.requester.get('subject')} with scope changes:approve "
            f"approves it: approve_plan(plan_id) or `tailops plans approve {short}`; then apply_plan(plan_id).{needs}"
        )
    if plan.status == "approved":
        until = live.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if live and live.expires_at else "?"
        return f"Apply it with apply_plan(plan_id) (or `tailops plans apply {short}`) before {until}."
    if plan.status == "blocked":
        return (
            "It cannot be approved. Fix the cause on the named host(s), or plan again with a limit that "
            "leaves them out (e.g. limit='all:!HOST')."
        )
    if plan.status == "applied":
        return "Applied: follow the run with get_run(run_id)."
    if plan.status in ("expired", "stale"):
        return "Plan the change again (plan_change) and have the new plan approved."
    return "Denied: nothing will run. Plan again if the change is still wanted."


def _side_effects(rt: Runtime, playbook: str) -> dict[str, str]:
    """What the playbook's dry run may change (its manifest), if it is still in the catalog."""
    try:
        return dict(rt.engine.catalog().get(playbook).manifest.check_mode_side_effects)
    except TailopsError:
        return {}


def build_plan_view(rt: Runtime, plan: Plan, *, reused: bool = False) -> PlanView:
    """The tool view of a plan, kept under the server's output cap (blocking: store reads)."""
    decisions = plans.approvals_for(rt.store, plan.id)
    live = plans.live_approval(rt.store, plan.id)
    needed, given = approvals.standing(rt.store, rt.config.changes, plan, rt.engine.inventory_file)
    required = needed.approvals_needed
    runs, _ = plans.list_runs(rt.store, plan_id=plan.id, limit=20)
    budget = rt.config.server.max_output_bytes * 3 // 4
    for diff_cap in (_DIFF_CAP, 800, 0):
        hosts: list[HostView] = []
        used = 0
        omitted = 0
        for h in plan.hosts:
            tasks: list[TaskView] = []
            for t in h.tasks:
                if not (t.changed or t.not_simulated or t.status in ("failed", "unreachable")):
                    continue
                diff, cut = _cap(t.diff, diff_cap) if diff_cap else (None, t.diff is not None)
                msg, _ = _cap(t.msg, _MSG_CAP)
                tasks.append(
                    TaskView(
                        task=t.task,
                        status=t.status,
                        changed=t.changed,
                        diff=diff,
                        diff_truncated=cut,
                        msg=msg,
                        not_simulated=t.not_simulated,
                    )
                )
            view = HostView(
                host=h.host,
                status=h.status,
                changed_tasks=h.changed_tasks,
                tasks=tasks,
                other_tasks=len(h.tasks) - len(tasks),
            )
            size = len(view.model_dump_json())
            if used + size > budget:
                omitted += 1
                continue
            used += size
            hosts.append(view)
        if not omitted:
            break
    return PlanView(
        plan_id=plan.id,
        playbook=plan.playbook,
        version=plan.version,
        playbook_sha256=plan.playbook_sha256,
        params=plan.params,
        limit=plan.limit,
        risk=plan.risk,
        scope=plan.scope,
        status=plan.status,
        status_reason=plan.status_reason,
        reused=reused,
        requested_by=str(plan.requester.get("subject")),
        requester_human=plan.requester.get("human_login"),
        created_at=plan.created_at,
        expires_at=plan.expires_at,
        inventory_sha256=plan.inventory_sha256,
        hosts_total=len(plan.hosts),
        hosts_changing=sum(1 for h in plan.hosts if h.changed_tasks),
        hosts=hosts,
        hosts_omitted=omitted,
        approvals=[_approval_view(a) for a in decisions],
        runs=[r.id for r in runs],
        approvals_required=required,
        approval_rule=needed.summary(),
        approvals_given=given,
        check_mode_side_effects=_side_effects(rt, plan.playbook),
        placement=_placement_view(plan.placement),
        next_step=_next_step(plan, live, given, required, needed.summary()),
    )


def build_run_view(rt: Runtime, run: Run, *, events_limit: int = 100, plan: Plan | None = None) -> RunView:
    if plan is None:
        plan = plans.find_plan(rt.store, run.plan_id)
    events = plans.run_events(rt.store, run.id, limit=events_limit)
    return RunView(
        run_id=run.id,
        plan_id=run.plan_id,
        playbook=plan.playbook if plan else None,
        status=run.status,
        status_reason=run.status_reason,
        requested_by=run.requester_subject,
        started_at=run.started_at,
        finished_at=run.finished_at,
        cancel_requested_by=run.cancel_requested_by,
        hosts=run.outcome,
        mismatches=run.mismatches,
        events=[
            EventView(
                seq=e.seq,
                kind=e.kind,
                host=e.host,
                task=e.task,
                status=e.status,
                changed=e.changed,
                msg=_cap(e.msg, 300)[0],
            )
            for e in events
        ],
        events_total=run.event_count,
        events_truncated=run.event_count > len(events),
    )


async def plan_for_tool(
    call: ToolCall, playbook: str, params: dict[str, Any] | None, limit: str | None = None
) -> PlanView:
    """Plan through the change engine as ``call``'s principal; notes the plan id for the audit record."""
    started = time.time()
    plan = await call.rt.engine.plan(call.principal, playbook, params, limit)
    call.note(plan_id=plan.id, plan_status=plan.status, playbook=playbook)
    live = await call.rt.run_blocking(plans.live_approval, call.rt.store, plan.id)
    if live is not None and live.by_policy:
        call.note(approved_by_policy=True)
    return await call.rt.run_blocking(
        lambda: build_plan_view(call.rt, plan, reused=plan.created_at.timestamp() < started)
    )


# --------------------------------------------------------------------------- dynamic scopes
def _playbook_scope(rt: Runtime, args: dict[str, Any]) -> str:
    """+ the named playbook's scope (from its manifest)"""
    return rt.engine.playbook_scope(str(args.get("playbook", "")))


def _fixed_playbook_scope(name: str) -> Any:
    def scope_for(rt: Runtime, _args: dict[str, Any]) -> str:
        return rt.engine.playbook_scope(name)

    scope_for.__doc__ = f"+ {name}'s scope (from its manifest)"
    return scope_for


# --------------------------------------------------------------------------- tools
@tool(group="changes", list_field="playbooks", title="List playbooks")
def list_playbooks(call: ToolCall) -> PlaybookList:
    """The vetted playbook catalog: name, version, risk, scope needed, approval policy, description and
    the JSON Schema of its params (what plan_change accepts)."""
    catalog = call.rt.engine.catalog()
    items = [
        PlaybookInfo(
            name=e.name,
            version=e.version,
            risk=e.manifest.risk,
            scope=e.manifest.scope,
            approval=approvals.policy_for(call.rt.config.changes, e.manifest.risk),
            target=e.manifest.target,
            description=" ".join(e.manifest.description.split()),
            parameters=e.manifest.parameters,
            not_simulated=list(e.manifest.not_simulated),
            check_mode_side_effects=dict(e.manifest.check_mode_side_effects),
        )
        for e in catalog.entries()
    ]
    return PlaybookList(playbooks=items, total=len(items))


@tool(
    group="changes",
    read_only=False,
    idempotent=True,
    scope_for=_playbook_scope,
    title="Plan a change",
)
async def plan_change(
    call: ToolCall,
    playbook: Annotated[str, Field(description="Catalog playbook name (see list_playbooks).", max_length=64)],
    params: Annotated[
        dict[str, Any] | None, Field(description="Parameters, validated against the playbook's JSON Schema.")
    ] = None,
    limit: LimitArg = None,
) -> PlanView:
    """Dry-run a catalog playbook (check mode + diff) on the inventory and store a plan: per host and task
    what would change. Nothing changes until someone else approves and apply_plan runs it."""
    return await plan_for_tool(call, playbook, params, limit)


@tool(group="changes", title="Get plan")
def get_plan(call: ToolCall, plan_id: PlanIdArg) -> PlanView:
    """One plan: status, params, per host the tasks that would change with their diffs, approvals, runs,
    and the next step."""
    plan = plans.get_plan(call.rt.store, plan_id)
    return build_plan_view(call.rt, plan)


@tool(group="changes", list_field="plans", title="List plans")
def list_plans(
    call: ToolCall,
    status: Annotated[
        str | None,
        Field(description="Only this status: pending, approved, denied, blocked, stale, applied, expired."),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Most plans returned, newest first (1-500).")] = 50,
) -> PlanList:
    """Plans, newest first: id, playbook, status, risk, requester, hosts changing, expiry."""
    found, total = plans.list_plans(call.rt.store, status=status, limit=limit)
    items = [
        PlanSummary(
            plan_id=p.id,
            playbook=p.playbook,
            version=p.version,
            status=p.status,
            risk=p.risk,
            requested_by=p.requester.get("subject"),
            limit=p.limit,
            hosts=len(p.hosts),
            hosts_changing=sum(1 for h in p.hosts if h.changed_tasks),
            created_at=p.created_at,
            expires_at=p.expires_at,
        )
        for p in found
    ]
    return PlanList(
        plans=items,
        total=total,
        truncated=total > len(items),
        truncation=f"{total - len(items)} older plan(s) not shown; raise limit" if total > len(items) else None,
    )


@tool(group="changes", read_only=False, idempotent=False, title="Approve plan")
def approve_plan(
    call: ToolCall,
    plan_id: PlanIdArg,
    comment: Annotated[
        str | None, Field(description="Why it is fine (kept with the approval).", max_length=1000)
    ] = None,
) -> PlanView:
    """Approve someone else's plan (never your own): single use, expires after changes.approval_ttl, bound to
    this plan id only."""
    call.note(plan_id=plan_id)
    approval = call.rt.engine.approve(call.principal, plan_id, comment)
    call.note(approval_id=approval.id)
    return build_plan_view(call.rt, plans.get_plan(call.rt.store, plan_id))


@tool(group="changes", read_only=False, idempotent=False, title="Deny plan")
def deny_plan(
    call: ToolCall,
    plan_id: PlanIdArg,
    reason: Annotated[str, Field(description="Why not (kept with the denial).", min_length=1, max_length=1000)],
) -> PlanView:
    """Deny a plan: it can then never be applied (a new plan is needed)."""
    call.note(plan_id=plan_id)
    denial = call.rt.engine.deny(call.principal, plan_id, reason)
    call.note(approval_id=denial.id)
    return build_plan_view(call.rt, plans.get_plan(call.rt.store, plan_id))


@tool(
    group="changes",
    read_only=False,
    destructive=True,
    idempotent=False,
    title="Apply plan",
)
async def apply_plan(call: ToolCall, plan_id: PlanIdArg) -> RunView:
    """Apply an approved plan exactly as planned: approval, catalog, inventory and a fresh dry run are re-checked
    (stale: refused). Progress names the run; a dropped connection does not stop it (get_run)."""
    call.note(plan_id=plan_id)
    total = 1
    done = 0
    applied: list[Plan] = []

    async def on_event(event: RunEvent) -> None:
        nonlocal done
        if event.kind != "task_result":
            return
        done += 1
        text = f"{event.host}: {event.task}: {event.status}" + (" (changed)" if event.changed else "")
        await call.progress(done, max(total, done), text)
        await call.log("info", text)

    async def started(run: Run, plan: Plan) -> None:
        nonlocal total
        total = max(1, sum(len(h.tasks) for h in plan.hosts))
        applied.append(plan)
        call.note(run_id=run.id)
        # First progress message names the run: an agent whose connection drops still
        # knows what to follow with get_run (the run does not stop with the connection).
        text = f"run {run.id} started"
        await call.progress(0, total, text)
        await call.log("info", text)

    rt = call.rt
    run = await rt.engine.apply(call.principal, plan_id, on_event=on_event, on_start=started)
    call.note(run_id=run.id, run_status=run.status)
    return await rt.run_blocking(build_run_view, rt, run, plan=applied[0] if applied else None)


@tool(group="changes", title="Get run")
def get_run(
    call: ToolCall,
    run_id: RunIdArg,
    events_limit: Annotated[int, Field(ge=0, le=1000, description="Most stored events returned (0-1000).")] = 100,
) -> RunView:
    """One run of a plan: status, planned vs actual changes per host, mismatches, and its stored events."""
    run = plans.get_run(call.rt.store, run_id)
    return build_run_view(call.rt, run, events_limit=events_limit)


@tool(
    group="changes",
    read_only=False,
    idempotent=True,
    title="Cancel run",
)
async def cancel_run(call: ToolCall, run_id: RunIdArg) -> RunView:
    """Stop a running apply: Ansible is killed within about a second and the run ends canceled."""
    rt = call.rt
    run = await rt.engine.cancel(call.principal, run_id, via=call.principal.transport)
    call.note(run_id=run.id, plan_id=run.plan_id)
    return await rt.run_blocking(build_run_view, rt, run, events_limit=0)


@tool(group="changes", list_field="changes", projectable=False, title="Host history")
def get_host_history(
    call: ToolCall,
    host: Annotated[str, Field(description="Inventory host name.", min_length=1, max_length=255)],
    since: Annotated[
        str | None, Field(description="Only plans from then on: a duration back (7d, 12h) or an ISO time.")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Most plans returned, newest first (1-500).")] = 50,
) -> HostHistory:
    """Every plan that targeted a host, newest first: predicted and actual changes there, who asked, who
    decided, and each run's outcome there."""
    return history.host_history(call.rt.store, host, since=history.parse_since(since), limit=limit)


def _drift_check_scope(rt: Runtime, args: dict[str, Any]) -> str:
    """+ the scope of the drift check's playbook"""
    return rt.engine.playbook_scope(rt.drift.check_named(str(args.get("check", ""))).playbook)


@tool(group="changes", list_field="results", projectable=False, title="Get drift")
def get_drift(
    call: ToolCall,
    host: Annotated[str | None, Field(description="Only this inventory host.", max_length=255)] = None,
    check: Annotated[str | None, Field(description="Only this drift check (drift.checks).", max_length=64)] = None,
    group: Annotated[
        str | None, Field(description="Only hosts of this inventory group (children included).", max_length=128)
    ] = None,
) -> DriftReport:
    """Hosts that left the state a catalog playbook describes (latest scheduled check): per check and host
    in line, drifted (with the diff) or unreachable, and the result's age."""
    members = drift.group_hosts(call.rt.engine.inventory_file(), group) if group is not None else None
    report = drift.latest_drift(call.rt.store, host=host, check=check, hosts=members)
    return report.model_copy(update={"side_effects": drift.side_effects_of(call.rt.engine)})


@tool(
    group="changes",
    read_only=False,
    idempotent=True,
    scope_for=_drift_check_scope,
    title="Run drift check",
)
async def run_drift_check(
    call: ToolCall,
    check: DriftCheckArg,
) -> DriftReport:
    """Run one drift check now (check mode only: nothing changes) and return its results per host."""
    run_id = await call.rt.drift.run(call.rt.drift.check_named(check))
    call.note(drift_run_id=run_id, check=check)
    report = await call.rt.run_blocking(drift.latest_drift, call.rt.store, check=check)
    effects = drift.side_effects_of(call.rt.engine)
    return report.model_copy(update={"side_effects": {check: effects.get(check, {})}})


@tool(
    group="changes",
    read_only=False,
    idempotent=True,
    scope_for=_drift_check_scope,
    title="Plan from drift",
)
async def plan_from_drift(
    call: ToolCall,
    check: DriftCheckArg,
    host: Annotated[
        str | None, Field(description="Only this host (default: the check's hosts).", max_length=255)
    ] = None,
) -> PlanView:
    """Turn drift into a plan in one step: the check's playbook and params (limited to a host); it is then
    approved and applied like any plan."""
    found = call.rt.drift.check_named(check)
    call.note(check=check)
    return await plan_for_tool(call, found.playbook, found.params, host or found.limit)


# --------------------------------------------------------------------------- seed doors
@tool(
    group="changes",
    read_only=False,
    scope_for=_fixed_playbook_scope("package_update"),
    title="Check system updates",
)
async def check_system_updates(
    call: ToolCall,
    security_only: Annotated[bool, Field(description="Only updates from a security origin.")] = False,
    limit: LimitArg = None,
) -> PlanView:
    """Which package updates each host has: a plan of package_update (dry run; apply only after someone else
    approves it)."""
    return await plan_for_tool(call, "package_update", {"security_only": security_only}, limit)


@tool(
    group="changes",
    read_only=False,
    scope_for=_fixed_playbook_scope("package_update"),
    title="Update system packages",
)
async def update_system_packages(
    call: ToolCall,
    packages: Annotated[
        list[str] | None, Field(description="Only these installed packages (default: every upgradable one).")
    ] = None,
    security_only: Annotated[bool, Field(description="Only updates from a security origin.")] = False,
    limit: LimitArg = None,
) -> PlanView:
    """Plan package upgrades (package_update): a reviewed plan, applied with apply_plan after approval."""
    return await plan_for_tool(
        call, "package_update", {"packages": packages or [], "security_only": security_only}, limit
    )


@tool(
    group="changes",
    read_only=False,
    scope_for=_fixed_playbook_scope("package_install"),
    title="Install package",
)
async def install_package(
    call: ToolCall,
    name: Annotated[str, Field(description="Package name.", min_length=1, max_length=128)],
    version: Annotated[str | None, Field(description="Exact version to pin (default: newest).", max_length=128)] = None,
    limit: LimitArg = None,
) -> PlanView:
    """Plan installing one package (package_install): a reviewed plan, applied with apply_plan after approval."""
    package: dict[str, str] = {"name": name}
    if version is not None:
        package["version"] = version
    return await plan_for_tool(call, "package_install", {"packages": [package]}, limit)


@tool(
    group="changes",
    read_only=False,
    scope_for=_fixed_playbook_scope("container_update"),
    title="Update Docker container",
)
async def update_docker_container(
    call: ToolCall,
    name: Annotated[str, Field(description="Container to move to a new image.", min_length=1, max_length=128)],
    image: Annotated[str, Field(description="New image with tag or digest, e.g. app:2.", min_length=1, max_length=255)],
) -> PlanView:
    """Plan moving a container to a new image with rollback (container_update): applied after approval."""
    return await plan_for_tool(call, "container_update", {"name": name, "image": image})


@tool(
    group="changes",
    read_only=False,
    scope_for=_fixed_playbook_scope("image_pull"),
    title="Pull Docker image",
)
async def pull_docker_image(
    call: ToolCall,
    image: Annotated[str, Field(description="Repository without tag, e.g. nginx.", min_length=1, max_length=255)],
    tag: Annotated[str, Field(description="Tag to pull.", min_length=1, max_length=128)] = "latest",
) -> PlanView:
    """Plan pulling an image (image_pull): a reviewed plan, applied with apply_plan after approval."""
    return await plan_for_tool(call, "image_pull", {"image": image, "tag": tag})
