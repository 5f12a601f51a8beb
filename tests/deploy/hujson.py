"""A strict reader for HuJSON (JSON with comments and trailing commas), as Tailscale uses.

Why here: the policy and Services files in deploy/tailscale/ are HuJSON and the tailnet
that would parse them is not reachable from the tests; no HuJSON package is in the test
dependencies. The standard is small: ``//`` and ``/* */`` comments and a trailing comma
before ``]`` or ``}``. Everything else goes to :func:`json.loads`, so anything that is
not HuJSON still fails.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads", "standardize"]


def standardize(text: str) -> str:
    """HuJSON -> JSON: comments become spaces, trailing commas are dropped (strings untouched)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ValueError("unterminated string")
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ValueError("unterminated /* comment")
            out.append(" ")
            i = j + 2
        elif c in "]}":
            # Drop a comma that only whitespace separates from this closing bracket.
            k = len(out) - 1
            while k >= 0 and out[k].isspace():
                k -= 1
            if k >= 0 and out[k] == ",":
                out[k] = " "
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def loads(text: str) -> Any:
    return json.loads(standardize(text))
