"""Unified diffs from Ansible's diff shapes (before/after, prepared, binary, loops), redacted and bounded."""

from __future__ import annotations

from tailops.changes.ansible.diffs import diff_text
from tailops.redact import REDACTED


def test_diff_text_shapes() -> None:
    assert diff_text({}) is None
    assert diff_text({"diff": {"before": "same\n", "after": "same\n"}}) is None
    text = diff_text({"diff": {"before": {"state": "absent"}, "after": {"state": "file"}, "before_header": "/x"}})
    assert text is not None and '-    "state": "absent"' in text and '+    "state": "file"' in text
    assert text.startswith("--- /x\n+++ after\n")
    assert diff_text({"diff": [{"prepared": "pkg (1 => 2)"}]}) == "pkg (1 => 2)\n"
    assert "Binary files differ" in (diff_text({"diff": {"dst_binary": 1}}) or "")
    no_eol = diff_text({"diff": {"before": "a", "after": "b"}}) or ""
    assert "\\ No newline at end of file" in no_eol
    secret = diff_text({"diff": {"before": "", "after": "password = hunter2\n"}}) or ""
    assert "hunter2" not in secret and REDACTED in secret
    huge = diff_text({"diff": {"before": "", "after": "x\n" * 150_000}}) or ""
    assert huge.endswith("more characters]\n") and len(huge) < 210_000
