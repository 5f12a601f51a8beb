"""Find out why a container misbehaves from its log lines and its state, without an LLM.

Why it exists: ``analyze_container_logs`` has to turn megabytes of log text into a
handful of findings an agent (or a person) can act on: which errors, how often,
since when, what they most likely mean, and what to do. The steps, in one pass,
one module each:

1. **Fold** multi-line stack traces (Python tracebacks, Java exceptions with their
   ``at``/``Caused by`` frames, Go panics with their goroutine dump) into one event,
   so a 40-line trace is one finding, not 40 errors (:mod:`.traces`).
2. **Classify** each line (or folded event) as error / warning / other from level
   markers (``ERROR``, ``[error]``, ``level=error``, ``FATAL:``, ``E0102``…) (:mod:`.lines`).
3. **Mine templates** of error and warning lines with drain3, so "connect to
   10.0.0.7:5432 failed after 31 ms" and "... after 12 ms" count as one template,
   ranked by count with first/last seen (:mod:`.templates`).
4. **Match known failure signatures** (connection refused, DNS failure, permission
   denied, disk full, port in use, migration errors, out of memory, …) (:mod:`.signatures`).
5. **Tie to the container's state** (OOM kill, restart loop and exit code, crash
   exit codes, failing health check, engine error) (:mod:`.state`), **rank** the
   findings so the most likely *cause* comes first (symptoms such as a restart
   loop after it) (:mod:`.ranking`), and give each one evidence lines
   (:mod:`.evidence`) and a concrete recommendation.

:mod:`.analyzer` is the loop over the lines; :mod:`.models` the types in and out.
It is pure: lines of text and a :class:`ContainerState` in, a :class:`LogAnalysis`
out. Reading logs from Docker lives in :mod:`tailops.monitor.containers.logs`.

What it must never do: hold its whole input (it keeps counters, a bounded number of
templates and a few evidence lines), run without bounds (max lines, max bytes and a
deadline are checked as it goes; the result says when it stopped early), or return
an evidence line without passing it through secret redaction.
"""

from __future__ import annotations

from tailops.monitor.log_analysis.analyzer import LogAnalyzer, analyze_lines
from tailops.monitor.log_analysis.models import (
    AnalysisLimits,
    ContainerState,
    Finding,
    LogAnalysis,
    StateSummary,
    TemplateStat,
)
from tailops.monitor.log_analysis.signatures import match_signature

__all__ = [
    "AnalysisLimits",
    "ContainerState",
    "Finding",
    "LogAnalysis",
    "LogAnalyzer",
    "StateSummary",
    "TemplateStat",
    "analyze_lines",
    "match_signature",
]
