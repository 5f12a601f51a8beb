"""What goes into a log analysis and what comes out: container state, limits, findings.

Why it exists: the analyzer, the state findings, the ranking and the
``analyze_container_logs`` tool (whose output schema is generated from
:class:`LogAnalysis`) share these types; keeping them apart from the logic lets
each step's module import only what it needs.

What it must never do: hold log text beyond the few evidence lines a
:class:`Finding` carries (and those are redacted before they get here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from tailops.models import ListResult, Model

__all__ = [
    "SEVERITY_WEIGHT",
    "AnalysisLimits",
    "Category",
    "ContainerState",
    "Finding",
    "LogAnalysis",
    "Severity",
    "StateSummary",
    "TemplateStat",
]

Severity = Literal["critical", "error", "warning", "info"]
Category = Literal["state", "signature", "stack_trace", "template"]
SEVERITY_WEIGHT: dict[str, int] = {"critical": 3, "error": 2, "warning": 1, "info": 0}


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ContainerState:
    """What the engine says about the container (from inspect), as far as analysis needs it."""

    name: str
    status: str = "unknown"  # created, running, restarting, paused, exited, dead
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    restart_policy: str | None = None
    error: str | None = None  # State.Error, e.g. "OCI runtime create failed: ..."
    health: str | None = None  # healthy, unhealthy, starting
    health_failing_streak: int = 0
    health_log: tuple[str, ...] = ()  # last probe outputs, newest last
    started_at: str | None = None
    finished_at: str | None = None
    memory_limit: int | None = None  # bytes; None = no limit


@dataclass(frozen=True)
class AnalysisLimits:
    max_lines: int = 50_000
    max_bytes: int = 16 * 1024 * 1024
    max_seconds: float = 20.0
    max_templates: int = 10
    max_findings: int = 20
    evidence_lines: int = 3
    line_chars: int = 400
    trace_lines: int = 200  # lines kept per folded stack trace
    max_clusters: int = 1000  # drain3 clusters kept (least recently used dropped)
    near_end_lines: int = 40  # "just before it stopped": last N lines of the window


# -------------------------------------------------------------------------- outputs
class StateSummary(Model):
    status: str
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    health: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class Finding(Model):
    # Every field optional: findings can be projected with `fields`.
    kind: str | None = Field(None, description="Stable id, e.g. oom_killed, connection_refused, python_exception.")
    category: Category | None = Field(
        None, description="state (from inspect), signature (known pattern), stack_trace, template (mined)."
    )
    severity: Severity | None = None
    title: str | None = None
    count: int | None = Field(None, description="Occurrences in the analyzed lines (1 for state findings).")
    first_seen: str | None = Field(None, description="Timestamp of the first occurrence, when the log has one.")
    last_seen: str | None = Field(None, description="Timestamp of the last occurrence, when the log has one.")
    first_line: int | None = Field(None, description="1-based line number of the first occurrence in the window.")
    last_line: int | None = Field(None, description="1-based line number of the last occurrence in the window.")
    evidence: list[str] | None = Field(None, description="A few log lines or state facts (secrets redacted).")
    recommendation: str | None = None
    likely_cause: bool | None = Field(None, description="True on the finding that most likely explains the state.")


class TemplateStat(Model):
    template: str | None = None
    severity: Literal["error", "warning"] | None = None
    count: int | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    example: str | None = None


class LogAnalysis(ListResult):
    container: str | None = None
    state: StateSummary | None = None
    verdict: Literal["problems_found", "warnings_only", "no_problems"]
    summary: str
    findings: list[Finding]
    templates: list[TemplateStat] = Field(description="Error/warning templates by count (drain3).")
    lines_analyzed: int
    bytes_analyzed: int
    error_lines: int = Field(description="Error events (a folded stack trace counts once).")
    warning_lines: int
    window_start: str | None = Field(None, description="Timestamp of the first analyzed line, when known.")
    window_end: str | None = Field(None, description="Timestamp of the last analyzed line, when known.")
    input_truncated: bool = Field(False, description="Older lines were left out (line/byte cap or read deadline).")
    partial: bool = Field(False, description="The analysis stopped at its deadline before the end of the input.")
    notes: list[str] = Field(default_factory=list)
    elapsed_s: float
