"""Health facts shared by ``GET /health`` and the ``health_check`` tool."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tailops import __version__
from tailops.errors import TailopsError
from tailops.models import Model

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__ = ["Check", "HealthReport", "health_report"]


class Check(Model):
    status: Literal["ok", "unavailable", "disabled", "failed"] = Field(
        description="failed: the part works but found damage (audit: entries were lost)."
    )
    detail: str | None = None


class HealthReport(Model):
    status: Literal["ok", "degraded"] = Field(description="ok when every enabled check passes.")
    version: str
    uptime_s: float
    read_only: bool
    checks: dict[str, Check]


def health_report(rt: Runtime) -> HealthReport:
    """Blocking (store query, cached docker ping): call from a worker thread."""
    checks: dict[str, Check] = {}
    try:
        rt.store.check()
        checks["store"] = Check(status="ok", detail=f"schema v{rt.store.schema_version()}")
    except TailopsError as exc:
        checks["store"] = Check(status="unavailable", detail=exc.message)
    if "containers" in rt.config.tools.groups:
        problem = rt.docker.cached_status()
        checks["docker"] = Check(status="ok") if problem is None else Check(status="unavailable", detail=problem)
    else:
        checks["docker"] = Check(status="disabled", detail="tool group 'containers' is disabled")
    checks["audit"] = _audit_check(rt)
    degraded = any(c.status in ("unavailable", "failed") for c in checks.values())
    return HealthReport(
        status="degraded" if degraded else "ok",
        version=__version__,
        uptime_s=round(time.monotonic() - rt.started_at, 1),
        read_only=rt.config.server.read_only,
        checks=checks,
    )


def _audit_check(rt: Runtime) -> Check:
    """Gap records counted in the audit head (a 128-byte read: no chain walk per request).

    ``audit verify`` remains the full check; this is the alarm that entries were lost.
    """
    try:
        status = rt.audit.status()
    except TailopsError as exc:
        return Check(status="unavailable", detail=exc.message)
    return Check(status="ok" if status.ok else "failed", detail=status.describe())
