"""Run a pinned catalog playbook through the runner adapter, the way the planner/executor will.

Why: the playbook tests exercise each catalog entry as the change engine uses it
(parameters validated by the catalog, the pinned playbook, its not-simulated
hints), without going through plans and approvals.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tailops.changes.ansible.job import run_playbook
from tailops.changes.catalog import Catalog
from tailops.changes.models import RunMode, RunRequest, RunResult

__all__ = ["CATALOG", "fixture_catalog", "run_pinned"]

CATALOG = Catalog.load()
EXTRA = Path(__file__).resolve().parent.parent / "fixtures" / "catalog_extra"


def fixture_catalog(dest: Path) -> tuple[Path, Path]:
    """A locked catalog holding only the test-only ``tb_marker`` playbook (writes one marker file):
    (playbooks_dir, roles_dir) for ``changes.playbooks_dir`` / ``changes.roles_dir``."""
    playbooks, roles = dest / "playbooks", dest / "roles"
    shutil.copytree(EXTRA / "playbooks" / "tb_marker", playbooks / "tb_marker")
    shutil.copytree(EXTRA / "roles" / "tb_marker", roles / "tb_marker")
    Catalog.load(playbooks, roles).lock()
    return playbooks, roles


async def run_pinned(
    name: str,
    params: dict[str, Any],
    inventory: Path,
    artifacts: Path,
    mode: RunMode,
    *,
    limit: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    forks: int = 5,
) -> RunResult:
    entry = CATALOG.require_pinned(name)
    valid = CATALOG.validate_params(name, params)
    return await run_playbook(
        RunRequest(
            playbook=entry.playbook,
            inventory=inventory,
            mode=mode,
            artifacts_root=artifacts,
            extravars=entry.extravars(valid),
            roles_path=CATALOG.roles_dir,
            not_simulated_hint=frozenset(entry.manifest.not_simulated),
            limit=limit,
            extra_env=dict(extra_env or {}),
            forks=forks,
        )
    )
