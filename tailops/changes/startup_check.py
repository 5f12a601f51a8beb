"""The catalog check ``tailops serve`` runs before it answers anything.

Why it exists: an installed tailops ships its catalog (``tailops/_catalog``) and
lock; a hand-edited file, a collection upgraded under it, or a configured
``changes.playbooks_dir`` that drifted from its lock must be visible at start, not
only when someone's plan is refused. The decision (docs/operations.md, "Install and
deploy"): the server **starts** and reports each drift as an ERROR log line; plans of a
drifted playbook stay refused by :meth:`Catalog.require_pinned` (the same check every
plan and apply makes), so a drifted playbook can never run, while monitoring and the
undrifted playbooks keep working.

What it must never do: raise (a broken catalog must not take the read path down),
run or template anything from the catalog, or repair the lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tailops.changes.catalog import Catalog, catalog_dirs
from tailops.config import Settings
from tailops.errors import TailopsError

__all__ = ["CatalogStatus", "check_catalog_at_start"]

log = logging.getLogger("tailops.catalog")


@dataclass(frozen=True)
class CatalogStatus:
    """What the start-up check found: ``ok`` only with a loadable catalog and no drift."""

    ok: bool
    playbooks: int
    problems: tuple[str, ...]


def check_catalog_at_start(settings: Settings) -> CatalogStatus:
    """Load and verify the configured catalog against its lock; log the outcome."""
    playbooks_dir, roles_dir = catalog_dirs(settings)
    try:
        catalog = Catalog.load(playbooks_dir, roles_dir)
        drifts = catalog.verify()
    except TailopsError as exc:
        log.error(
            "catalog cannot be loaded; every plan is refused until it is fixed: %s",
            exc.public_message(),
            extra={"playbooks_dir": str(playbooks_dir), "roles_dir": str(roles_dir)},
        )
        return CatalogStatus(ok=False, playbooks=0, problems=(exc.public_message(),))
    if not drifts:
        log.info(
            "catalog verified against its lock",
            extra={"playbooks": len(catalog), "playbooks_dir": str(playbooks_dir)},
        )
        return CatalogStatus(ok=True, playbooks=len(catalog), problems=())
    names = sorted({d.name for d in drifts})
    log.error(
        "catalog drift: %d playbook(s) differ from %s; plans of them are refused: %s",
        len(names),
        catalog.lock_path,
        ", ".join(names),
        extra={"playbooks_dir": str(playbooks_dir)},
    )
    for drift in drifts:
        log.error("catalog drift: %s", drift.message, extra={"playbook": drift.name, "kind": str(drift.kind)})
    return CatalogStatus(ok=False, playbooks=len(catalog), problems=tuple(d.message for d in drifts))
