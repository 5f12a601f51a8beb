"""Compare two predictions of a run — planned vs re-checked, planned vs actual — in words a reviewer reads.

Why: apply refuses a plan whose fresh check run differs from what was approved
("host h1, task X: planned 'tbdemo (1.0-1 => 1.1-1)', now: no change"), and a
finished run records where it differed from its plan. Both need the same
comparison (changed + diff, per host, per task in run order, repeated task names
told apart) and the same one-line summaries of diffs.

Pure functions on plan records: no I/O, no policy.
"""

from __future__ import annotations

from collections.abc import Sequence

from tailops.changes import plans
from tailops.changes.models import RunResult
from tailops.changes.plans import HostOutcome, HostPrediction, Plan, TaskPrediction

__all__ = ["compare_predictions", "describe_task", "outcome_of", "summarize_diff"]

_SUMMARY_CHARS = 160


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
