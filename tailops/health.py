"""Health facts shared by ``GET /health``, the ``health_check`` tool and
``tailops --version``: what is running (tailops version, store schema, which
vetted catalog) and whether its dependencies answer.

The catalog is identified by the SHA-256 of its lock file (``catalog.lock.json``
pins every playbook's content and version, so its hash is the catalog's version)
and the number of playbooks it pins. These facts are read from the lock file on
each call (one small file), never from the playbooks: a health probe must stay
cheap. They must never include a file path or content (``/health`` is open).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tailops import __version__
from tailops.errors import TailopsError
from tailops.models import Model

if TYPE_CHECKING:
    from tailops.config import Settings
    from tailops.runtime import Runtime

__all__ = ["CatalogFacts", "Check", "HealthReport", "catalog_facts", "health_report"]


class CatalogFacts(Model):
    lock_sha256: str | None = Field(
        description="SHA-256 of the catalog lock file: the catalog's version (None when unreadable)."
    )
    playbooks: int = Field(description="Playbooks the lock pins.")
    problem: str | None = Field(None, description="Why the lock could not be read, if it could not.")


def lock_path(settings: Settings) -> Path:
    from tailops.changes.catalog import LOCK_FILE, catalog_dirs

    return catalog_dirs(settings)[0] / LOCK_FILE


def catalog_facts(settings: Settings) -> CatalogFacts:
    """The running catalog's identity, from its lock file (see the module doc)."""
    path = lock_path(settings)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return CatalogFacts(lock_sha256=None, playbooks=0, problem="the catalog has no lock file")
    except OSError as exc:
        return CatalogFacts(lock_sha256=None, playbooks=0, problem=f"the lock file cannot be read ({exc.strerror})")
    try:
        data = json.loads(raw)
        count = len(data) if isinstance(data, dict) else 0
    except ValueError:
        count = 0
    return CatalogFacts(lock_sha256=hashlib.sha256(raw).hexdigest(), playbooks=count)


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
    schema_version: int | None = Field(description="Store schema version in force (None if the store is down).")
    catalog: CatalogFacts
    checks: dict[str, Check]


def health_report(rt: Runtime) -> HealthReport:
    """Blocking (store query, cached docker ping): call from a worker thread."""
    checks: dict[str, Check] = {}
    schema: int | None = None
    try:
        rt.store.check()
        schema = rt.store.schema_version()
        checks["store"] = Check(status="ok", detail=f"schema v{schema}")
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
        schema_version=schema,
        catalog=catalog_facts(rt.config),
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
