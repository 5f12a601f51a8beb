"""Unified diff text from an Ansible task result's ``diff`` data.

Why: Ansible modules report differences in several shapes (``before``/``after``
strings or dicts, ``prepared`` text, binary or too-large markers, one per loop item);
a plan shows a reviewer one unified diff per task, the same for every module, and it
is what the planned-vs-actual comparison holds a real run to.

It must never return unredacted text or an unbounded string (a diff is cut at
:data:`MAX_DIFF_CHARS` and says so).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from tailops.redact import redact_text

__all__ = ["MAX_DIFF_CHARS", "diff_text"]

MAX_DIFF_CHARS = 200_000


def _side_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, indent=4, sort_keys=True, default=str) + "\n"


def _one_diff(entry: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if entry.get("dst_binary") or entry.get("src_binary"):
        parts.append("Binary files differ\n")
    if entry.get("dst_larger"):
        parts.append(f"diff skipped: destination file is larger than {entry['dst_larger']} bytes\n")
    if entry.get("src_larger"):
        parts.append(f"diff skipped: source file is larger than {entry['src_larger']} bytes\n")
    if "before" in entry or "after" in entry:
        before, after = _side_text(entry.get("before")), _side_text(entry.get("after"))
        if before != after:
            lines = difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=str(entry.get("before_header") or "before"),
                tofile=str(entry.get("after_header") or "after"),
            )
            text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
            parts.append(text)
    prepared = entry.get("prepared")
    if prepared:
        text = str(prepared)
        parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)


def diff_text(res: Mapping[str, Any]) -> str | None:
    """Unified diff text from a task result's ``diff`` (and its loop items' diffs).

    ``before``/``after`` become a ``difflib`` unified diff (dicts are rendered as
    sorted JSON first, as Ansible's own callback does); ``prepared`` is kept as
    the module wrote it. None when the result carries no difference.
    """
    entries: list[Mapping[str, Any]] = []

    def collect(diff: Any) -> None:
        if isinstance(diff, Mapping):
            entries.append(diff)
        elif isinstance(diff, list):
            entries.extend(d for d in diff if isinstance(d, Mapping))

    collect(res.get("diff"))
    results = res.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, Mapping):
                collect(item.get("diff"))
    text = "".join(_one_diff(e) for e in entries)
    if not text:
        return None
    text = redact_text(text)
    if len(text) > MAX_DIFF_CHARS:
        text = text[:MAX_DIFF_CHARS] + f"\n[diff truncated: {len(text) - MAX_DIFF_CHARS} more characters]\n"
    return text
