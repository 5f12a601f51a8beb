"""Plan a change: validate, dry-run (check mode + diff), store what would happen.

Why: DESIGN.md "The change lifecycle", step 2. A plan is what a person
approves, so it must say exactly what would change, where, from which pinned
playbook content and which inventory. :func:`plan_change`:

1. requires the playbook's manifest scope (:func:`require_scope`);
2. refuses a playbook whose content drifted from the lock
   (``Catalog.require_pinned``) and parameters its schema does not allow
   (``validate_params``) — nothing runs then;
3. snapshots the inventory (:func:`inventory_snapshot`: SHA-256 over the
   inventory file, or every file of an inventory directory);
4. runs the playbook in CHECK mode through the runner adapter (artifacts under
   ``DATA_DIR/runs``, ``changes.forks``, the manifest's not-simulated tasks,
   its serial / max_fail_percentage through the extravars the playbooks read);
5. stores the plan — per host, per task: status, changed, unified diff,
   message, not simulated — under the id :func:`tailops.changes.plans.plan_id_for`.
   Planning the same content again while that plan is open (pending,
   approved, blocked, unexpired) returns it; a check run with a failed or
   unreachable host gives a ``blocked`` plan whose reason names the host;
6. applies the approval policy (``changes.approval``: ``low: auto``).

Inventory: ``changes.inventory`` (file or directory). Unset, tailops writes
``DATA_DIR/inventory/local.ini``: ``localhost ansible_connection=local`` in the
group ``targets`` with ``ansible_python_interpreter`` = the server's own Python
(the venv), because the container playbooks (``hosts: localhost``) drive the
Docker engine through community.docker, which needs that venv's ``requests``;
the package playbooks work with it too (ansible's apt module re-spawns itself
under the system Python that has ``python3-apt``).

What it must never do: run anything but a CHECK run, or store a plan for a
playbook, parameters or a limit that did not pass the checks above.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailops.auth.scopes import require_scope
from tailops.changes import approvals, plans
from tailops.changes.catalog import Catalog, CatalogEntry
from tailops.changes.models import RunMode, RunRequest, RunResult
from tailops.changes.plans import HostPrediction, Plan
from tailops.changes.runner import run_playbook
from tailops.config import Settings
from tailops.errors import ChangeError, ConfigError, InvalidInput, StoreError
from tailops.principal import Principal
from tailops.redact import redact

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__ = [
    "blocked_reason",
    "check_limit",
    "check_run",
    "default_inventory",
    "inventory_path",
    "inventory_snapshot",
    "load_catalog",
    "plan_change",
    "refuse_secret_params",
]

log = logging.getLogger("tailops.changes.planner")

# Host patterns Ansible accepts (names, groups, wildcards, ranges, !, &, :, ","),
# but never "@file" (read the limit from a file) and no whitespace or quotes.
_LIMIT_RE = re.compile(r"^[A-Za-z0-9_.*?!&:,\[\]~-]{1,512}$")
INVENTORY_FORMAT = "tailops-inventory-sha256 v2"


def load_catalog(settings: Settings) -> Catalog:
    """A fresh catalog from disk (blocking: reads and hashes files; call in a worker)."""
    return Catalog.from_settings(settings)


def check_limit(limit: str | None) -> str | None:
    """The limit, or InvalidInput: a host pattern only (no ``@file``, spaces or quotes)."""
    if limit is None:
        return None
    text = limit.strip()
    if not text:
        return None
    if not _LIMIT_RE.fullmatch(text):
        raise InvalidInput(
            f"limit {limit[:80]!r} is not a host pattern: use host and group names, wildcards (*), "
            "ranges ([0:3]), ',' or ':' between patterns, '!' to exclude and '&' to intersect.",
        )
    return text


def refuse_secret_params(params: Mapping[str, Any]) -> None:
    """InvalidInput when a parameter looks like a secret (a token, a key, ``PASSWORD=…``).

    Plan parameters are shown to every ``readonly`` holder (get_plan, the review page) and
    recorded in the audit log; catalog playbooks take no secrets as parameters, so a value
    the redactor would hide is refused rather than stored where everyone can read it."""
    for key, value in params.items():
        if redact({key: value}) != {key: value}:
            raise InvalidInput(
                f"parameter {key!r} looks like a secret (a token, key or password); plan parameters are "
                "visible to every reader of the plan, so secrets are refused.",
                hint="Catalog playbooks take no secrets as parameters; remove it and plan again.",
            )


def default_inventory(settings: Settings) -> Path:
    """``DATA_DIR/inventory/local.ini`` (written when missing or different): localhost, local
    connection, this server's Python, in the group ``targets`` the package playbooks target."""
    directory = settings.server.data_dir / "inventory"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = (directory / "local.ini").absolute()
    text = (
        "# Written by tailops (changes.inventory is unset): the host tailops runs on.\n"
        "[targets]\n"
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write the default inventory {path}: {exc.strerror}.") from exc
    return path


def inventory_path(settings: Settings) -> Path:
    """``changes.inventory`` (absolute, must exist) or the generated default."""
    configured = settings.changes.inventory
    if configured is None:
        return default_inventory(settings)
    path = configured.absolute()
    if not path.exists():
        raise ConfigError(
            f"changes.inventory {path} does not exist.",
            hint="Point changes.inventory at an Ansible inventory file or directory (or unset it for localhost).",
        )
    return path


def _inventory_files(path: Path) -> list[tuple[str, Path]]:
    """Every file that shapes what a run does with this inventory, (relative name, path), sorted.

    Ansible reads, beside the inventory file, ``group_vars/`` and ``host_vars/`` (a new
    ``host_vars/web1.yml`` can change ``ansible_host``, the user or become settings); for an
    inventory directory, every file under it. Symlinks are followed, as Ansible follows them
    (a link swapped to another target changes the snapshot); a cycle is cut.
    """
    if path.is_file():
        roots = [(path.name, path)]
        base = path.parent
        roots += [(name, base / name) for name in ("group_vars", "host_vars") if (base / name).exists()]
    elif path.is_dir():
        roots = [("", path)]
    else:
        raise ConfigError(f"inventory {path} is neither a file nor a directory.")
    files: list[tuple[str, Path]] = []
    for rel, root in roots:
        if root.is_file():
            files.append((rel, root))
            continue
        seen: set[tuple[int, int]] = set()
        for current, dirs, names in os.walk(root, followlinks=True):
            st = os.stat(current)
            if (st.st_dev, st.st_ino) in seen:
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirs.sort()
            for name in sorted(names):
                full = Path(current) / name
                if full.is_file():
                    files.append(((Path(rel) / full.relative_to(root)).as_posix(), full))
    return sorted(files)


def inventory_snapshot(path: Path) -> str:
    """SHA-256 over everything the inventory contributes to a run: the file and the
    ``group_vars/``/``host_vars/`` beside it, or every file under an inventory directory
    (relative path + content hash, sorted; symlinks followed). Any edit changes it, so a
    plan approved before the edit is refused as stale.

    A dynamic inventory script or plugin config is hashed as a file; what it returns is not.
    Variables beside the *playbook* are part of the playbook's folder, which the catalog
    pin covers (an edit there is catalog drift, refused the same way).
    """
    digest = hashlib.sha256(INVENTORY_FORMAT.encode() + b"\n")
    try:
        for rel, file in _inventory_files(path):
            digest.update(f"{rel}\0{hashlib.sha256(file.read_bytes()).hexdigest()}\n".encode())
    except OSError as exc:
        raise ConfigError(f"inventory {path} cannot be read: {exc.strerror}.") from exc
    return digest.hexdigest()


def blocked_reason(result: RunResult) -> str | None:
    """Why a check run makes its plan unapprovable (a failed or unreachable host, a timeout),
    naming each host and its message; None when every host ran."""
    problems: list[str] = []
    for name in sorted(result.hosts):
        host = result.hosts[name]
        if host.status not in ("failed", "unreachable"):
            continue
        bad = next(
            (t for t in host.tasks if t.status in ("failed", "unreachable") and not t.ignored),
            None,
        )
        if bad is None:
            problems.append(f"host {name} {host.status}")
        else:
            msg = (bad.msg or "no message").strip().replace("\n", " ")
            if len(msg) > 300:
                msg = msg[:297] + "..."
            problems.append(f"host {name} {host.status} at task '{bad.task}': {msg}")
    if result.status == "timeout":
        problems.append("the check run timed out (changes.run_timeout)")
    elif result.status == "failed" and not problems:
        problems.append("the check run failed")
    elif result.status == "canceled":
        problems.append("the check run was canceled")
    return "; ".join(problems) if problems else None


async def check_run(
    rt: Runtime,
    catalog: Catalog,
    entry: CatalogEntry,
    params: Mapping[str, Any],
    limit: str | None,
    inventory: Path,
    *,
    label: str = "check",
) -> RunResult:
    """One CHECK run of ``entry`` exactly as planning and the pre-apply re-check do it."""
    cfg = rt.config.changes
    request = RunRequest(
        playbook=entry.playbook.absolute(),
        inventory=inventory,
        mode=RunMode.CHECK,
        artifacts_root=rt.config.artifacts_dir.absolute(),
        extravars=entry.extravars(params),
        limit=limit,
        forks=cfg.forks,
        timeout=cfg.run_timeout,
        roles_path=catalog.roles_dir.absolute(),
        not_simulated_hint=frozenset(entry.manifest.not_simulated),
        ident=f"{label}-{plans.new_id()[:16]}",
        keep_artifacts=cfg.keep_artifacts,
    )
    return await run_playbook(request)


def _pinned(catalog: Catalog, name: str) -> CatalogEntry:
    entry = catalog.require_pinned(name)
    _ = entry.sha256  # hash now, in the worker thread
    return entry


async def plan_change(
    rt: Runtime,
    principal: Principal,
    playbook: str,
    params: Mapping[str, Any] | None,
    limit: str | None = None,
) -> Plan:
    """Plan ``playbook`` with ``params`` on the inventory (optionally ``limit``-ed); see the module doc."""
    started = time.time()
    catalog = await rt.run_blocking(load_catalog, rt.config)
    entry = catalog.get(playbook)
    require_scope(principal, entry.manifest.scope, f"playbook {playbook}")
    entry = await rt.run_blocking(_pinned, catalog, playbook)
    valid = catalog.validate_params(playbook, params)
    refuse_secret_params(valid)
    clean_limit = check_limit(limit)
    inventory = await rt.run_blocking(inventory_path, rt.config)
    inventory_sha = await rt.run_blocking(inventory_snapshot, inventory)

    result = await check_run(rt, catalog, entry, valid, clean_limit, inventory)
    hosts: list[HostPrediction] = plans.prediction_from(result.hosts)
    reason = blocked_reason(result)
    if not hosts and reason is None:
        reason = "the check run matched no host (check the inventory and the limit)"

    def store_plan() -> Plan:
        now = time.time()
        previous: str | None = None
        for _ in range(10_000):
            plan_id = plans.plan_id_for(
                playbook=entry.name,
                version=entry.version,
                playbook_sha256=entry.sha256,
                params=valid,
                limit=clean_limit,
                inventory_sha256=inventory_sha,
                hosts=hosts,
                previous_id=previous,
            )
            existing = plans.find_plan(rt.store, plan_id, now=now)
            if existing is None:
                break
            if existing.status in ("pending", "approved", "blocked"):
                return existing
            previous = plan_id
        else:  # pragma: no cover - 10 000 closed plans of identical content
            raise ChangeError("too many earlier plans with this exact content; change something and plan again.")
        plan = Plan(
            id=plan_id,
            previous_id=previous,
            playbook=entry.name,
            version=entry.version,
            playbook_sha256=entry.sha256,
            params=valid,
            limit=clean_limit,
            inventory_sha256=inventory_sha,
            risk=entry.manifest.risk,
            scope=entry.manifest.scope,
            status="blocked" if reason else "pending",
            stored_status="blocked" if reason else "pending",
            status_reason=reason,
            hosts=hosts,
            requester=principal.describe(),
            requester_ids=sorted(principal.identities()),
            check_ident=result.ident,
            check_duration_s=round(result.duration_s, 3),
            created_at=datetime.fromtimestamp(now, UTC),
            expires_at=datetime.fromtimestamp(now + rt.config.changes.plan_ttl.total_seconds(), UTC),
            updated_at=datetime.fromtimestamp(now, UTC),
        )
        try:
            plans.insert_plan(rt.store, plan)
        except StoreError:
            # The same plan was stored concurrently: return that one if it is open.
            again = plans.find_plan(rt.store, plan_id)
            if again is not None and again.status in ("pending", "approved", "blocked"):
                return again
            raise
        approvals.approve_by_policy(rt.store, rt.config.changes, plan, now=now)
        return plans.get_plan(rt.store, plan_id)

    plan = await rt.run_blocking(store_plan)
    log.info(
        "plan stored",
        extra={
            "plan_id": plan.id,
            "playbook": playbook,
            "status": plan.status,
            "reused": plan.created_at.timestamp() < started,
            "check_s": round(result.duration_s, 2),
        },
    )
    return plan
