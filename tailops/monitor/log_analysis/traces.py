"""Stack-trace folding: a Python traceback, a Java exception with its frames, a Go panic → one event.

Why it exists: a 40-line trace is one failure, not 40 errors. A trace starts on
a recognised first line (``Traceback (most recent call last):``, a Java
exception line confirmed by an ``at`` frame, ``panic:`` / ``fatal error:``),
takes the lines that continue it (:func:`continue_trace`), and is then described
by its exception type, message, location and chained causes
(:func:`describe_trace`).

What it must never do: keep more than ``trace_lines`` lines of one trace (the
rest are only counted), or swallow a line that does not belong to the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GO_START",
    "JAVA_CONT",
    "JAVA_EXC",
    "PY_START",
    "Trace",
    "continue_trace",
    "describe_trace",
]

PY_START = re.compile(r"Traceback \(most recent call last\):")
PY_CHAIN = re.compile(r"^(?:During handling of the above exception|The above exception was the direct cause)")
PY_EXC = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
PY_FRAME = re.compile(r'^\s+File "([^"]+)", line (\d+), in (\S+)')

JAVA_EXC = re.compile(
    r"^(?:Exception in thread \"[^\"]*\" )?"
    r"((?:[a-zA-Z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable))"
    r"(?::\s?(.*))?$"
)
JAVA_CONT = re.compile(r"^\s+at |^\s*\.\.\. \d+ (?:more|common frames omitted)|^Caused by: |^\s+Suppressed: ")
JAVA_CAUSE = re.compile(r"^Caused by: ([\w$.]+)(?::\s?(.*))?$")

GO_START = re.compile(r"^(panic: |fatal error: )(.*)$")
GO_CONT = re.compile(r"^$|^\s|^goroutine \d+ \[|^\[signal |^created by |^exit status \d+|^\S+\(.*\)$|^\[recovered\]")
GO_FRAME_FILE = re.compile(r"^\t(/\S+\.go:\d+)")


@dataclass
class Trace:
    lang: Literal["python", "java", "go"]
    lines: list[str]
    line_no: int
    ts: str | None
    dropped: int = 0
    state: str = "body"  # python: body | after_exc

    def add(self, text: str, limit: int) -> None:
        if len(self.lines) < limit:
            self.lines.append(text)
        else:
            self.dropped += 1


def continue_trace(tr: Trace, text: str, limit: int) -> bool:
    """Add ``text`` to ``tr`` if it continues the trace (True), else False: the trace has ended."""
    if tr.lang == "python":
        if tr.state == "after_exc":
            if not text.strip():
                return True
            if PY_CHAIN.match(text) or PY_START.match(text):
                tr.state = "body"
                tr.add(text, limit)
                return True
            return False
        if not text.strip() or text[0].isspace() or PY_CHAIN.match(text) or PY_START.match(text):
            tr.add(text, limit)
            return True
        if PY_EXC.match(text):
            tr.add(text, limit)
            tr.state = "after_exc"
            return True
        return False
    if tr.lang == "java":
        if JAVA_CONT.match(text):
            tr.add(text, limit)
            return True
        return False
    if GO_CONT.match(text):
        tr.add(text, limit)
        return True
    return False


def describe_trace(tr: Trace) -> tuple[str, str, str | None, list[str]]:
    """(exception type, message, location, exception lines oldest→newest) of a folded trace."""
    if tr.lang == "python":
        exc_lines = [ln for ln in tr.lines[1:] if ln and not ln[0].isspace() and PY_EXC.match(ln)]
        exc_lines = [ln for ln in exc_lines if not PY_START.match(ln)]
        frames = [m for m in (PY_FRAME.match(ln) for ln in tr.lines) if m]
        location = f"{frames[-1].group(1)}:{frames[-1].group(2)} in {frames[-1].group(3)}" if frames else None
        if not exc_lines:
            return "Traceback", "", location, [tr.lines[0]]
        last = PY_EXC.match(exc_lines[-1])
        assert last is not None
        return last.group(1), (last.group(2) or "").strip(), location, [exc_lines[-1], *exc_lines[:-1]]
    if tr.lang == "java":
        head = JAVA_EXC.match(tr.lines[0])
        exc_type = head.group(1) if head else tr.lines[0][:80]
        message = (head.group(2) or "").strip() if head else ""
        causes = [ln.removeprefix("Caused by: ") for ln in tr.lines if ln.startswith("Caused by: ")]
        frame = next((ln.strip().removeprefix("at ") for ln in tr.lines[1:] if ln.lstrip().startswith("at ")), None)
        return exc_type, message, frame, [tr.lines[0], *causes]
    m = GO_START.match(tr.lines[0])
    kind = "panic" if m is None or m.group(1) == "panic: " else "fatal error"
    message = m.group(2).strip() if m else tr.lines[0]
    location = None
    for ln in tr.lines:
        fm = GO_FRAME_FILE.match(ln)
        if fm and "/runtime/" not in fm.group(1):
            location = fm.group(1)
            break
    # Only the panic message: the "[signal SIGSEGV" line of a nil dereference is not a native crash.
    return kind, message, location, [tr.lines[0]]
