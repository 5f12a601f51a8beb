"""Human durations ("90s", "15m", "24h", "7d") used by config, CLI and tools.

One parser so that `--ttl 24h`, `auth.max_token_ttl: 30d` and a tool's `since`
argument all mean the same thing.
"""

from __future__ import annotations

import re
from datetime import timedelta

from tailops.errors import InvalidInput

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse ``"1h30m"``, ``"45s"``, ``"7d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise InvalidInput(f"{value!r} is not a duration; use e.g. 30s, 15m, 24h, 7d.")
    if isinstance(value, int | float):
        if value < 0:
            raise InvalidInput(f"duration {value} is negative; use a positive number of seconds.")
        return timedelta(seconds=value)
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise InvalidInput("empty duration; use e.g. 30s, 15m, 24h, 7d.")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or len(text) > 32:
        shown = value if len(value) <= 32 else value[:32] + "…"
        raise InvalidInput(f"{shown!r} is not a duration; use e.g. 30s, 15m, 24h, 7d or 1h30m.")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration` for whole seconds, e.g. ``1d2h``."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
