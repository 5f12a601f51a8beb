"""The two log tools' work: the newest lines of a container (``read_logs``) and their analysis (``analyze_logs``).

Why it exists: both read through :class:`~tailops.monitor.containers.reader.LogReader`
and must keep the same guarantees: a checked container and time window, the
``tail`` newest lines (or, with ``grep``, the newest matching lines among the
last ``docker.log_max_lines``), the ``docker.log_max_bytes`` cap, the output
byte cap (newest lines kept), engine timestamps split off, secrets redacted,
and a note whenever something was left out. Analysis streams the lines with
their stdout/stderr marking straight into the pure analyzer
(:mod:`tailops.monitor.log_analysis`), holding none of them.

What it must never do: hold the whole log in memory, return a log line without
secret redaction, or say nothing when lines were dropped (cap, deadline).
"""

from __future__ import annotations

import collections
import time

from tailops.errors import InvalidInput, OperationTimeout
from tailops.monitor.containers.details import container_state, inspect_raw
from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.models import ContainerLogs, LogLine
from tailops.monitor.containers.reader import LogReader
from tailops.monitor.containers.values import parse_when
from tailops.monitor.log_analysis import AnalysisLimits, LogAnalysis, LogAnalyzer
from tailops.redact import redact_text

__all__ = ["LINE_CHARS", "analyze_logs", "read_logs", "split_timestamp"]

LINE_CHARS = 2000  # one returned log line is cut here


def split_timestamp(line: str) -> tuple[str | None, str]:
    """``(engine time to the second, text)`` of a line read with timestamps; ``(None, line)`` without one."""
    # "2024-05-01T10:00:00.123456789Z text" (docker logs --timestamps)
    head, sep, rest = line.partition(" ")
    if sep and len(head) >= 20 and head[4] == "-" and head[10] == "T":
        return head[:19] + "Z", rest
    return None, line


def read_logs(
    engine: DockerEngine,
    *,
    name: str,
    tail: int,
    since: str | None,
    until: str | None,
    grep: str | None,
    max_output_bytes: int,
) -> ContainerLogs:
    """The last ``tail`` lines (or, with ``grep``, the last ``tail`` matching lines among the newest
    ``docker.log_max_lines``), secrets redacted, newest kept when the output cap bites."""
    settings = engine.settings
    raw = inspect_raw(engine, name)
    cname = (raw.get("Name") or "").lstrip("/")
    t_since = parse_when(since, what="since") if since else None
    t_until = parse_when(until, what="until") if until else None
    if t_since and t_until and t_since >= t_until:
        raise InvalidInput("since must be earlier than until.")
    needle = grep.lower() if grep else None
    scan = settings.log_max_lines if needle else tail
    deadline = time.monotonic() + settings.timeout.total_seconds()
    tty = bool((raw.get("Config") or {}).get("Tty"))
    reader = LogReader(engine, raw["Id"], f"read logs of {cname!r}", tty=tty)
    kept: collections.deque[str] = collections.deque(maxlen=tail)
    scanned = 0
    held = 0
    for _stream, line in reader.lines(tail=scan, since=t_since, until=t_until, deadline=deadline):
        scanned += 1
        if needle is not None and needle not in line.lower():
            continue
        if len(kept) == kept.maxlen:
            held -= len(kept[0])
        kept.append(line)
        held += len(line)
        while held > settings.log_max_bytes and kept:
            held -= len(kept.popleft())
    if reader.timed_out and scanned == 0:
        raise OperationTimeout(
            f"reading the logs of {cname!r} took longer than {settings.timeout.total_seconds():g} s."
        )
    lines: list[LogLine] = []
    for line in kept:
        ts, text = split_timestamp(line)
        text = redact_text(text)
        if len(text) > LINE_CHARS:
            text = text[: LINE_CHARS - 1] + "…"
        lines.append(LogLine(ts=ts, line=text))
    # Keep the newest lines inside the output cap (the boundary would drop the newest).
    budget = max_output_bytes - 1024
    size = 0
    cut = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        size += len(lines[i].line or "") + 40
        if size > budget:
            cut = len(lines) - i - 1
            break
    dropped = len(lines) - cut
    lines = lines[dropped:]
    notes: list[str] = []
    if dropped:
        notes.append(f"{dropped} older line(s) left out to fit the {max_output_bytes}-byte output cap")
    if reader.timed_out:
        notes.append("reading stopped at the time limit; older lines may be missing")
    return ContainerLogs(
        container=cname,
        lines=lines,
        scanned=scanned,
        total=len(kept),
        truncated=bool(notes),
        truncation="; ".join(notes) if notes else None,
        grep=grep,
        since=t_since.strftime("%Y-%m-%dT%H:%M:%SZ") if t_since else None,
        until=t_until.strftime("%Y-%m-%dT%H:%M:%SZ") if t_until else None,
    )


def analyze_logs(engine: DockerEngine, *, name: str, since: str | None, until: str | None, tail: int) -> LogAnalysis:
    """Stream the newest ``tail`` lines straight into the analyzer (nothing is buffered), bounded by
    ``docker.log_max_lines``, ``docker.log_max_bytes`` and ``docker.analysis_timeout``.

    If the newest ``tail`` lines exceed the byte cap, the analysis restarts once with a
    smaller tail sized from the average line length seen, so the newest lines are the
    ones analyzed (at most one extra read, never the whole log in memory).
    """
    settings = engine.settings
    started = time.monotonic()
    budget = settings.analysis_timeout.total_seconds()
    raw = inspect_raw(engine, name)
    state = container_state(raw)
    t_since = parse_when(since, what="since") if since else None
    t_until = parse_when(until, what="until") if until else None
    want = min(tail, settings.log_max_lines)
    limits = AnalysisLimits(max_lines=want, max_bytes=settings.log_max_bytes, max_seconds=budget)
    capped = tail > want
    notes: list[str] = []
    for attempt in range(2):
        analyzer = LogAnalyzer(state, limits, started=started)
        tty = bool((raw.get("Config") or {}).get("Tty"))
        reader = LogReader(engine, raw["Id"], f"read logs of {state.name!r}", tty=tty)
        lines = reader.lines(tail=want, since=t_since, until=t_until, deadline=started + budget)
        try:
            for stream, line in lines:
                if not analyzer.feed(line, stream):
                    break
        finally:
            lines.close()  # closes the engine stream when we stop early
        if attempt == 0 and analyzer.stop_reason == "bytes" and analyzer.lines:
            avg = analyzer.bytes / analyzer.lines
            smaller = max(1, int(settings.log_max_bytes * 0.9 / avg))
            notes.append(
                f"the newest {want} lines exceed the byte cap of {settings.log_max_bytes}; "
                f"analyzed the newest {smaller} instead"
            )
            want = smaller
            continue
        break
    if capped and analyzer.lines >= want:
        notes.append(f"tail {tail} is capped at docker.log_max_lines = {want}; older lines were not analyzed")
    if reader.timed_out:
        notes.append("reading the log stopped at the time limit; the newest lines of the window were not analyzed")
    return analyzer.result(input_truncated=reader.timed_out or len(notes) > 0, notes=notes)
