"""Counters and evidence of one finding or template: how often, where, when, and a few sample lines.

Why it exists: the analyzer keeps one :class:`Group` per signature, exception
kind and template instead of the lines themselves, so its memory does not grow
with the log. Evidence is clipped and passed through secret redaction once, on
output (:meth:`Group.evidence`), not for every hit.

What it must never do: keep more than ``keep`` sample lines per group, or hand
out a sample that did not pass through :func:`~tailops.redact.redact_text`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tailops.redact import redact_text

__all__ = ["Group", "clip", "title_with_targets"]


@dataclass
class Group:
    """Counters for one finding or template; never holds more than a few lines."""

    count: int = 0
    first_line: int = 0
    last_line: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    samples: list[str] = field(default_factory=list)
    targets: Counter[str] = field(default_factory=Counter)
    title: str | None = None
    extra: list[str] = field(default_factory=list)

    def hit(self, line_no: int, ts: str | None, sample: str, keep: int) -> None:
        """Count one occurrence. ``sample`` is the raw line: redact with :meth:`evidence` on output."""
        if self.count == 0:
            self.first_line, self.first_ts = line_no, ts
        self.count += 1
        self.last_line = line_no
        if ts is not None:
            self.last_ts = ts
            if self.first_ts is None:
                self.first_ts = ts
        if len(self.samples) < keep:
            if sample not in self.samples:
                self.samples.append(sample)
        elif sample not in self.samples:
            # Keep the first occurrences and the most recent one.
            self.samples[-1] = sample

    def evidence(self, line_chars: int) -> list[str]:
        """The kept sample lines, clipped and with secrets redacted (done here, once, not per hit)."""
        return [clip(redact_text(s), line_chars) for s in self.samples]


def clip(text: str, limit: int) -> str:
    text = text.rstrip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def title_with_targets(base: str, group: Group) -> str:
    title = base
    if group.targets:
        top = [t for t, _ in group.targets.most_common(3)]
        title += f": {', '.join(top)}"
    if group.count > 1:
        title += f" ({group.count}×)"
    return clip(title, 300)
