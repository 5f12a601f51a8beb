"""The analyzer: log lines (with their stream) in, one :class:`LogAnalysis` out, in one bounded pass.

Why it exists: it is the loop that ties the steps together, line by line:
take the timestamp (:mod:`.lines`), continue or start a stack trace
(:mod:`.traces`), else classify the line by level and known signature
(:mod:`.lines`, :mod:`.signatures`) and mine its template (:mod:`.templates`),
counting into :class:`~.evidence.Group` counters; at the end it adds the state
findings (:mod:`.state`) and ranks everything (:mod:`.ranking`). The
classification of a line is cached by its "shape" (digits folded), so a log of
a million similar lines costs a dictionary lookup per line.

What it must never do: hold its input (counters, a bounded number of templates
and a few evidence lines only), run without bounds (max lines, max bytes and a
deadline are checked as it goes; the result says when it stopped early), or
cut a stack trace on one stream with lines of the other (per-stream trace state).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from typing import Literal

from tailops.monitor.log_analysis.evidence import Group, clip, title_with_targets
from tailops.monitor.log_analysis.lines import APP_TS, DOCKER_TS, JSON_TS, level_of, strip_prefix
from tailops.monitor.log_analysis.models import (
    SEVERITY_WEIGHT,
    AnalysisLimits,
    Category,
    ContainerState,
    Finding,
    LogAnalysis,
    Severity,
)
from tailops.monitor.log_analysis.ranking import Scored, rank, summary_text, verdict
from tailops.monitor.log_analysis.signatures import SIGNATURE_BY_KIND, match_signature, target_of
from tailops.monitor.log_analysis.state import state_findings, state_summary
from tailops.monitor.log_analysis.templates import Templates
from tailops.monitor.log_analysis.traces import (
    GO_START,
    JAVA_CONT,
    JAVA_EXC,
    PY_START,
    Trace,
    continue_trace,
    describe_trace,
)
from tailops.redact import redact_text

__all__ = ["LogAnalyzer", "analyze_lines"]

# (bytes.translate with a 256-byte table: ~20x faster than str.translate with a mapping.)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SHAPE_CACHE_MAX = 20_000
_SHAPE_MAX_CHARS = 1000


class LogAnalyzer:
    """Feed lines one at a time (:meth:`feed`), then call :meth:`result` once."""

    def __init__(
        self,
        state: ContainerState | None = None,
        limits: AnalysisLimits | None = None,
        *,
        started: float | None = None,
    ) -> None:
        self.state = state
        self.limits = limits or AnalysisLimits()
        self._started = time.monotonic() if started is None else started
        self._deadline = self._started + self.limits.max_seconds
        self._templates = Templates(self.limits.max_clusters)
        self._shapes: dict[bytes, tuple[Literal["error", "warning"] | None, str | None, int | None]] = {}
        self._signatures: dict[str, Group] = {}
        self._traces: dict[tuple[str, str, str], Group] = {}
        self._trace: Trace | None = None
        self._java_candidate: tuple[str, int, str | None] | None = None
        # Trace state of the other streams: a stack trace on stderr must not be cut by
        # stdout lines that the engine interleaved with it.
        self._stream = "stdout"
        self._parked: dict[str, tuple[Trace | None, tuple[str, int, str | None] | None]] = {}
        self._last_plain: tuple[int, int] | None = None  # (line number, template id) of the last error/warning
        self.lines = 0
        self.bytes = 0
        self.error_events = 0
        self.warning_events = 0
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.stopped: str | None = None  # why feeding stopped early (limit or deadline)
        self.stop_reason: Literal["lines", "bytes", "deadline"] | None = None
        self.partial = False
        self.notes: list[str] = []

    # -- feeding -------------------------------------------------------------------
    def feed(self, raw: str, stream: str = "stdout") -> bool:
        """Take one line of ``stream``; False once a limit is reached (further lines are ignored)."""
        if self.stopped is not None:
            return False
        if stream != self._stream:
            self._parked[self._stream] = (self._trace, self._java_candidate)
            self._trace, self._java_candidate = self._parked.pop(stream, (None, None))
            self._stream = stream
        lim = self.limits
        if self.lines >= lim.max_lines:
            self.stopped = f"line cap of {lim.max_lines} reached"
            self.stop_reason = "lines"
            return False
        size = len(raw) + 1
        if self.bytes + size > lim.max_bytes:
            self.stopped = f"byte cap of {lim.max_bytes} reached"
            self.stop_reason = "bytes"
            return False
        if self.lines % 512 == 0 and time.monotonic() > self._deadline:
            self.stopped = f"deadline of {lim.max_seconds:g} s reached"
            self.stop_reason = "deadline"
            self.partial = True
            return False
        self.lines += 1
        self.bytes += size
        line = raw.rstrip("\r\n")
        ts: str | None = None
        m = DOCKER_TS.match(line)
        if m:
            ts = m.group(1) + "Z"
            line = line[m.end() :]
        body = line
        a = APP_TS.match(line)
        if a is not None and a.end() > 0:
            body = line[a.end() :]
            if ts is None:
                ts = a.group("ts").replace("/", "-").replace(" ", "T") if a.group("ts") else a.group("sys")
        elif ts is None and line.startswith("{"):
            j = JSON_TS.search(line)
            if j:
                ts = j.group(1) + "Z"
        if ts is not None:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        self._step(line, body, self.lines, ts)
        return True

    def _step(self, text: str, body: str, no: int, ts: str | None) -> None:
        # 1. a Java exception line waits for its first "at" frame to be confirmed.
        if self._java_candidate is not None:
            cand_text, cand_no, cand_ts = self._java_candidate
            self._java_candidate = None
            if JAVA_CONT.match(text):
                self._trace = Trace("java", [cand_text, text], cand_no, cand_ts)
                return
            self._plain(cand_text, cand_no, cand_ts)
        # 2. inside a stack trace?
        tr = self._trace
        if tr is not None:
            if continue_trace(tr, text, self.limits.trace_lines):
                return
            self._close_trace()
        # 3. does a stack trace start here? (Trace lines rarely carry a timestamp: use the last one seen.)
        if PY_START.search(text):
            self._trace = Trace("python", [body], no, ts or self.last_ts)
            return
        if GO_START.match(body):
            self._trace = Trace("go", [body], no, ts or self.last_ts)
            return
        if JAVA_EXC.match(body):
            self._java_candidate = (body, no, ts or self.last_ts)
            return
        self._plain(text, no, ts, body)

    def _close_trace(self) -> None:
        tr, self._trace = self._trace, None
        if tr is None:
            return
        self.error_events += 1
        # The log record just before the trace ("ERROR ... Exception on /x") belongs to it.
        if self._last_plain is not None and self._last_plain[0] == tr.line_no - 1:
            self._templates.covered.add(self._last_plain[1])
        exc_type, message, location, related = describe_trace(tr)
        headline = f"{exc_type}: {message}" if message else exc_type
        sig_kind = None
        for candidate in related:
            found = match_signature(candidate)
            if found is not None:
                sig_kind = found[0]
                break
        key = (tr.lang, exc_type, sig_kind or "")
        group = self._traces.get(key)
        if group is None:
            if len(self._traces) >= 200:
                return  # bounded: beyond 200 distinct exception kinds, later ones are only counted above
            group = self._traces[key] = Group()
            group.title = clip(redact_text(headline), 140)
            if location:
                group.extra.append(f"at {location}")
            if len(related) > 1 and related[-1] != related[0]:
                root = clip(redact_text(related[-1]), 200)
                group.extra.append(f"caused by: {root}")
                group.title += f"; root cause: {clip(root, 100)}"
        group.hit(tr.line_no, tr.ts, headline, self.limits.evidence_lines)
        if sig_kind:
            sig = SIGNATURE_BY_KIND[sig_kind]
            if sig.target is not None:
                for candidate in related:
                    tgt = target_of(sig.target, candidate)
                    if tgt:
                        group.targets[tgt] += 1
                        break
        # The folded trace also feeds the template miner (as one line).
        self._templates.covered.add(self._mine(headline, "error", tr.line_no, tr.ts))

    def _classify(self, body: str) -> tuple[Literal["error", "warning"] | None, str | None, int | None]:
        """(severity, signature kind, template id) of one line: the expensive part, cached by shape."""
        low = body.lower()
        severity = level_of(body, low)
        m = match_signature(body, low)
        kind = m[0] if m is not None else None
        if kind is not None and severity is None:
            severity = "error" if SIGNATURE_BY_KIND[kind].severity in ("error", "critical") else "warning"
        cid = self._templates.mine(body) if severity is not None else None
        if cid is not None and kind is not None:
            self._templates.covered.add(cid)
        return severity, kind, cid

    def _plain(self, text: str, no: int, ts: str | None, body: str | None = None) -> None:
        if body is None:
            body = strip_prefix(text)
        if len(body) <= _SHAPE_MAX_CHARS:
            shape = body.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO)
            known = self._shapes.get(shape)
            if known is None:
                if len(self._shapes) >= _SHAPE_CACHE_MAX:
                    self._shapes.clear()
                known = self._shapes[shape] = self._classify(body)
        else:
            known = self._classify(body)
        severity, kind, cid = known
        if kind is not None:
            sig = SIGNATURE_BY_KIND[kind]
            group = self._signatures.get(kind)
            if group is None:
                group = self._signatures[kind] = Group()
            group.hit(no, ts, text, self.limits.evidence_lines)
            # Targets are sampled: every line of the first 200, then every 50th.
            if sig.target is not None and len(group.targets) < 50 and (group.count <= 200 or group.count % 50 == 0):
                tgt = target_of(sig.target, body)
                if tgt:
                    group.targets[tgt] += 1
        if severity == "error":
            self.error_events += 1
        elif severity == "warning":
            self.warning_events += 1
        if severity is not None and cid is not None:
            self._count_template(cid, severity, no, ts, body)
            self._last_plain = (no, cid)

    def _mine(self, body: str, severity: Literal["error", "warning"], no: int, ts: str | None) -> int:
        cid = self._templates.mine(body)
        self._count_template(cid, severity, no, ts, body)
        return cid

    def _count_template(
        self, cid: int, severity: Literal["error", "warning"], no: int, ts: str | None, body: str
    ) -> None:
        if self._templates.count(cid, severity, no, ts, body):
            self._shapes.clear()  # it may name pruned templates

    # -- result ----------------------------------------------------------------------
    def finish(self) -> None:
        self._parked[self._stream] = (self._trace, self._java_candidate)
        for stream in list(self._parked):
            self._trace, self._java_candidate = self._parked.pop(stream)
            if self._java_candidate is not None:
                cand_text, cand_no, cand_ts = self._java_candidate
                self._java_candidate = None
                self._plain(cand_text, cand_no, cand_ts)
            self._close_trace()

    def result(self, *, input_truncated: bool = False, notes: Iterable[str] = ()) -> LogAnalysis:
        self.finish()
        lim = self.limits
        findings: list[Scored] = []
        stopped_near_end = self.state is not None and self.state.status in ("exited", "restarting", "dead")
        end_from = max(1, self.lines - lim.near_end_lines + 1)

        for finding, weight in state_findings(self.state):
            findings.append(((weight, SEVERITY_WEIGHT[finding.severity or "info"], 0, 1), finding))

        for kind, group in self._signatures.items():
            sig = SIGNATURE_BY_KIND[kind]
            near_end = stopped_near_end and group.last_line >= end_from
            weight = 5.0 if sig.severity in ("error", "critical") else 2.0
            title = title_with_targets(sig.title, group)
            findings.append(
                (
                    (weight, SEVERITY_WEIGHT[sig.severity], 1 if near_end else 0, group.count),
                    self._finding(
                        kind=kind,
                        category="signature",
                        severity=sig.severity,
                        title=title,
                        group=group,
                        recommendation=sig.recommendation,
                        near_end=near_end,
                    ),
                )
            )

        for (lang, exc_type, sig_kind), group in self._traces.items():
            trace_sig = SIGNATURE_BY_KIND.get(sig_kind) if sig_kind else None
            near_end = stopped_near_end and group.last_line >= end_from
            kind = trace_sig.kind if trace_sig else f"{lang}_{'panic' if lang == 'go' else 'exception'}"
            label = {"python": "Python exception", "java": "Java exception", "go": "Go panic"}[lang]
            what = group.title or exc_type
            title = f"{label} {what}" if lang != "go" else f"{label}: {what}"
            if trace_sig is not None and group.targets:
                title += f" (target {group.targets.most_common(1)[0][0]})"
            title += f" ({group.count}×)" if group.count > 1 else ""
            rec = (
                f"{trace_sig.recommendation} The stack trace shows where the app gave up."
                if trace_sig
                else "An unhandled exception reached the top of the program. Read the location and "
                "message in the evidence, fix the cause (or handle it), and check whether it started with a "
                "new image or configuration."
            )
            finding = self._finding(
                kind=kind,
                category="stack_trace",
                severity="error",
                title=clip(title, 300),
                group=group,
                recommendation=rec,
                near_end=near_end,
            )
            findings.append(((5.0, SEVERITY_WEIGHT["error"], 1 if near_end else 0, group.count), finding))

        for _cid, group, text in itertools.islice(self._templates.unexplained_errors(), 3):
            near_end = stopped_near_end and group.last_line >= end_from
            finding = self._finding(
                kind="error_template",
                category="template",
                severity="error",
                title=clip(f"Recurring error ({group.count}×): {text}" if group.count > 1 else f"Error: {text}", 300),
                group=group,
                recommendation="No known signature matched this recurring error. Read the example lines and "
                "the lines just before the first occurrence (get_container_logs with since/until around "
                "first_seen).",
                near_end=near_end,
            )
            findings.append(((4.0, SEVERITY_WEIGHT["error"], 1 if near_end else 0, group.count), finding))

        ranked, total = rank(findings, lim.max_findings)
        templates = self._templates.stats(lim.max_templates, lim.line_chars)
        verdict_ = verdict(ranked, self.warning_events)
        all_notes = list(notes) + self.notes
        if self.stopped:
            all_notes.append(f"analysis stopped early: {self.stopped}; newer lines were not analyzed.")
        if self.lines == 0:
            all_notes.append("no log lines in the requested window.")
        return LogAnalysis(
            container=self.state.name if self.state else None,
            state=state_summary(self.state),
            verdict=verdict_,
            summary=summary_text(self.state, ranked, self.lines, self.error_events, self.warning_events),
            findings=ranked,
            total=total,
            truncated=total > len(ranked),
            truncation=(
                f"{total - len(ranked)} lower-ranked finding(s) left out (limit {lim.max_findings})"
                if total > len(ranked)
                else None
            ),
            templates=templates,
            lines_analyzed=self.lines,
            bytes_analyzed=self.bytes,
            error_lines=self.error_events,
            warning_lines=self.warning_events,
            window_start=self.first_ts,
            window_end=self.last_ts,
            input_truncated=input_truncated or self.stopped is not None,
            partial=self.partial,
            notes=all_notes,
            elapsed_s=round(time.monotonic() - self._started, 3),
        )

    def _finding(
        self,
        *,
        kind: str,
        category: Category,
        severity: Severity,
        title: str,
        group: Group,
        recommendation: str,
        near_end: bool,
    ) -> Finding:
        evidence = group.evidence(self.limits.line_chars) + group.extra
        if near_end:
            evidence.append(f"last seen in the final {self.limits.near_end_lines} lines before the container stopped")
        return Finding(
            kind=kind,
            category=category,
            severity=severity,
            title=title,
            count=group.count,
            first_seen=group.first_ts,
            last_seen=group.last_ts,
            first_line=group.first_line,
            last_line=group.last_line,
            evidence=evidence,
            recommendation=recommendation,
            likely_cause=False,
        )


def analyze_lines(
    lines: Iterable[str],
    state: ContainerState | None = None,
    limits: AnalysisLimits | None = None,
    *,
    input_truncated: bool = False,
    notes: Iterable[str] = (),
) -> LogAnalysis:
    """Analyze ``lines`` (oldest first) for a container in ``state``."""
    analyzer = LogAnalyzer(state, limits)
    for line in lines:
        if not analyzer.feed(line):
            break
    return analyzer.result(input_truncated=input_truncated, notes=notes)
