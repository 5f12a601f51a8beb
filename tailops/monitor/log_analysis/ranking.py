"""Ranking: which finding most likely explains the container's trouble, the verdict, and the one-line summary.

Why it exists: an agent reads the first finding first. Findings are ordered by
(rank, severity, seen just before the container stopped, count), where the rank
says what kind of evidence it is (state cause 6 > known signature or stack trace
5 > mined error template 4 > symptom 3 > warning 2). The top finding is marked
``likely_cause`` only when it is more than a symptom.

What it must never do: drop a finding without saying so (``total`` and the
truncation note count what was left out), or call a symptom the cause.
"""

from __future__ import annotations

from typing import Literal

from tailops.monitor.log_analysis.models import ContainerState, Finding

__all__ = ["CAUSE_RANK", "Scored", "rank", "summary_text", "verdict"]

Scored = tuple[tuple[float, ...], Finding]  # (sort key, finding)
CAUSE_RANK = 4.0  # the top finding is the likely cause only from this rank up (a symptom ranks 3)


def rank(findings: list[Scored], limit: int) -> tuple[list[Finding], int]:
    """The best ``limit`` findings, most likely cause first (marked), and how many there were."""
    findings = sorted(findings, key=lambda kv: kv[0], reverse=True)
    ranked = [f for _, f in findings[:limit]]
    if findings and findings[0][0][0] >= CAUSE_RANK:
        ranked[0] = ranked[0].model_copy(update={"likely_cause": True})
    return ranked, len(findings)


def verdict(ranked: list[Finding], warning_events: int) -> Literal["problems_found", "warnings_only", "no_problems"]:
    if any((f.severity in ("critical", "error")) for f in ranked):
        return "problems_found"
    return "warnings_only" if ranked or warning_events else "no_problems"


def summary_text(state: ContainerState | None, findings: list[Finding], lines: int, errors: int, warnings: int) -> str:
    parts: list[str] = []
    if state is not None:
        desc = f"{state.name} is {state.status}"
        if state.status in ("exited", "restarting", "dead") and state.exit_code is not None:
            desc += f" (exit code {state.exit_code})"
        if state.restart_count:
            desc += f", restarted {state.restart_count} times"
        if state.health:
            desc += f", health {state.health}"
        if state.oom_killed:
            desc += ", OOM-killed"
        parts.append(desc + ".")
    parts.append(f"{lines} lines analyzed: {errors} errors, {warnings} warnings.")
    cause = next((f for f in findings if f.likely_cause), None)
    if cause is not None:
        when = f", last at {cause.last_seen}" if cause.last_seen else ""
        parts.append(f"Most likely cause: {cause.title}{when}.")
        others = [f.title for f in findings if f is not cause and f.severity in ("critical", "error")][:2]
        if others:
            parts.append("Also: " + "; ".join(t or "" for t in others) + ".")
    elif findings:
        parts.append(f"Top finding: {findings[0].title}.")
    else:
        parts.append("No known failure signature found.")
    return " ".join(parts)
