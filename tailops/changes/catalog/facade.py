"""The Catalog facade: the vetted playbooks as loaded, looked up, checked, verified and locked.

Why it exists: nothing changes a host except a catalog playbook (DESIGN.md, "The change
lifecycle", step 1). :class:`Catalog` is the one object the change engine, the CLI and the
server hold: it loads every ``playbooks/<name>/manifest.yml`` beside its ``playbook.yml``
(:mod:`~tailops.changes.catalog.scanning`), hands out an entry only while its content
matches its pin (:mod:`~tailops.changes.catalog.pinning`) and checks a caller's
parameters (:mod:`~tailops.changes.catalog.parameters`) before anything runs.

What it must never do: import ``ansible_runner`` or ansible itself (only
:mod:`tailops.changes.runner` runs anything), execute or template anything from the
catalog, or hand out an entry for a plan whose content drifted from its pin.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tailops.changes.catalog.entry import CatalogEntry
from tailops.changes.catalog.parameters import check_parameters
from tailops.changes.catalog.pinning import LOCK_FILE, Drift, LockEntry, drift_of, read_lock, relock, verify, write_lock
from tailops.changes.catalog.scanning import catalog_dirs, default_catalog_dirs, load_entries
from tailops.config import Settings
from tailops.errors import CatalogError, NotFound

__all__ = ["Catalog"]


def _close(name: str, names: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


class Catalog:
    """The loaded catalog. Build with :meth:`Catalog.load`."""

    def __init__(
        self,
        playbooks_dir: Path,
        roles_dir: Path,
        entries: dict[str, CatalogEntry],
        lock: dict[str, LockEntry],
        collections_root: Path | None,
    ) -> None:
        self.playbooks_dir = playbooks_dir
        self.roles_dir = roles_dir
        self._entries = entries
        self._lock = lock
        self._collections_root = collections_root

    # ---- loading

    @classmethod
    def load(
        cls,
        playbooks_dir: Path | None = None,
        roles_dir: Path | None = None,
        *,
        collections_root: Path | None = None,
    ) -> Catalog:
        """Load every ``<playbooks_dir>/<name>/manifest.yml`` and the lock file.

        Any problem with a manifest or playbook raises CatalogError naming the
        file and the rule; drift against the lock is not an error here (see
        :meth:`verify`).
        """
        default_playbooks, default_roles = default_catalog_dirs()
        pdir = (playbooks_dir or default_playbooks).absolute()
        rdir = (roles_dir or default_roles).absolute()
        if not pdir.is_dir():
            raise CatalogError(f"playbooks directory {pdir} does not exist.", hint="Set changes.playbooks_dir.")
        lock = read_lock(pdir / LOCK_FILE)
        return cls(pdir, rdir, load_entries(pdir, rdir, collections_root, lock), lock, collections_root)

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        playbooks_dir, roles_dir = catalog_dirs(settings)
        return cls.load(playbooks_dir, roles_dir)

    # ---- lookups

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[CatalogEntry]:
        return [self._entries[name] for name in self.names()]

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> CatalogEntry:
        """The entry called ``name``; NotFound (with close names) otherwise."""
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(
                f"no playbook named {name!r} in the catalog.{_close(name, self._entries)}",
                hint="List them with `tailops playbooks list`.",
            )
        return entry

    def require_pinned(self, name: str) -> CatalogEntry:
        """The entry, only if its current content matches its lock pin (CatalogError otherwise)."""
        entry = self.get(name)
        drift = drift_of(entry, self._lock.get(name))
        if drift is not None:
            raise CatalogError(drift.message, hint="Plans of this playbook cannot be made or applied until then.")
        return entry

    # ---- parameters

    def validate_params(self, name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check ``params`` against the playbook's schema and semantic rules.

        Returns a deep copy with top-level defaults filled in. Raises InvalidInput
        naming the parameter and the rule; nothing has run at that point.
        """
        return check_parameters(name, self.get(name).manifest.parameters, params)

    # ---- lock and verify

    @property
    def lock_path(self) -> Path:
        return self.playbooks_dir / LOCK_FILE

    def locked(self) -> dict[str, LockEntry]:
        return dict(self._lock)

    def verify(self) -> list[Drift]:
        """Every difference between the catalog on disk and the lock file (empty = OK)."""
        return verify(self.entries(), self._lock)

    def lock(self, *, force: bool = False) -> list[str]:
        """Write the lock file from the catalog on disk; returns one line per change.

        Refuses (CatalogError) to re-pin a playbook whose content changed while its
        version did not, or whose version went down, unless ``force``.
        """
        new, changes = relock(self.entries(), self._lock, force=force)
        write_lock(self.lock_path, new)
        self._lock = dict(new)
        self._entries = {
            name: CatalogEntry(
                manifest=e.manifest,
                directory=e.directory,
                playbook=e.playbook,
                role_dirs=e.role_dirs,
                collections_root=e.collections_root,
                locked=new.get(name),
            )
            for name, e in self._entries.items()
        }
        return changes
