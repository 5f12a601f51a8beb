"""Engine values → what tailops shows: times, short ids, ports, health, names, time windows.

Why it exists: the engine writes times as RFC 3339 with nanoseconds (or epoch
seconds, or the zero time "0001-01-01…"), ids as 64 hex digits, ports in two
different shapes (list vs inspect) and health inside a status text. Every
parser module converts them the same way through these small pure functions,
and a caller's container name or time window is checked here before any
engine call.

What it must never do: call the engine, or accept a container name the engine
would read as something else (a path, a query) — :func:`check_name` is the gate.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from tailops.durations import parse_duration
from tailops.errors import InvalidInput

__all__ = [
    "check_name",
    "engine_time",
    "health_from_status",
    "parse_when",
    "ports_from_inspect",
    "ports_from_list",
    "short_id",
    "ts_seconds",
]

_NAME_RE = re.compile(r"^/?[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def engine_time(value: Any) -> str | None:
    """Engine time (RFC 3339 string with ns, or epoch seconds) → 'YYYY-MM-DDTHH:MM:SSZ'."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        if value <= 0:
            return None
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if text.startswith("0001-01-01"):
        return None
    return text[:19] + "Z" if len(text) >= 19 else text


def short_id(value: str | None) -> str | None:
    if not value:
        return None
    return value.removeprefix("sha256:")[:12]


def check_name(name: str) -> str:
    """A container name or id as the engine accepts it, else InvalidInput."""
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"{name[:80]!r} is not a container name or id (letters, digits, '_', '.', '-'; at most 255).",
        )
    return name.lstrip("/")


def parse_when(value: str, *, what: str) -> datetime:
    """'15m' / '2h' (that long ago), ISO 8601 ('2024-05-01T10:00:00Z') or Unix seconds → aware datetime."""
    text = value.strip()
    if not text:
        raise InvalidInput(f"{what} is empty; use e.g. 15m, 2h or 2024-05-01T10:00:00Z.")
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    try:
        iso = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return iso if iso.tzinfo else iso.replace(tzinfo=UTC)
    try:
        delta = parse_duration(text)
    except InvalidInput:
        raise InvalidInput(
            f"{what} {text[:40]!r} is neither a duration (15m, 2h, 1d) nor a time (2024-05-01T10:00:00Z)."
        ) from None
    return datetime.now(UTC) - delta


def ports_from_list(ports: list[dict[str, Any]] | None) -> list[str]:
    out: list[str] = []
    for p in ports or []:
        private = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"  # noqa: S104 - a display string, not a bind
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"{host}:{p['PublicPort']}->{private}")
        else:
            out.append(private)
    return list(dict.fromkeys(out))


def ports_from_inspect(bindings: dict[str, Any] | None) -> list[str]:
    out: list[str] = []
    for private, binds in (bindings or {}).items():
        if not binds:
            out.append(private)
            continue
        for b in binds:
            ip = b.get("HostIp") or "0.0.0.0"  # noqa: S104 - a display string, not a bind
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"{host}:{b.get('HostPort')}->{private}")
    return list(dict.fromkeys(out))


def health_from_status(status: str | None) -> Literal["healthy", "unhealthy", "starting"] | None:
    m = _HEALTH_IN_STATUS.search(status or "")
    if not m:
        return None
    word = m.group(1)
    if word == "health: starting":
        return "starting"
    return "healthy" if word == "healthy" else "unhealthy"


def ts_seconds(text: Any) -> float | None:
    """Engine RFC 3339 time with nanoseconds → Unix seconds (None for the zero time)."""
    if not isinstance(text, str) or text.startswith("0001-01-01"):
        return None
    m = _RFC3339.match(text)
    if not m:
        return None
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac
