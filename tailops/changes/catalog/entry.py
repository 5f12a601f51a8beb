"""A loaded playbook: its manifest, its files, the roles it uses and its pin.

Why it exists: the change engine plans and applies a :class:`CatalogEntry`, never a path
or a name: the entry knows the content hash a plan records and the extra vars a run gets
(validated parameters plus the play keywords the manifest defaults).

What it must never do: be built from a manifest that was not checked against its playbook
(only :func:`~tailops.changes.catalog.scanning.load_entry` builds one), or hash content
more than once per load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailops.changes.catalog.manifest import Manifest
from tailops.changes.catalog.pinning import LockEntry, compute_hash

__all__ = ["CatalogEntry"]


@dataclass(frozen=True)
class CatalogEntry:
    """A loaded playbook: its manifest, files, the roles it uses and its pin (if locked)."""

    manifest: Manifest
    directory: Path
    playbook: Path
    role_dirs: tuple[Path, ...]
    collections_root: Path | None = None
    locked: LockEntry | None = None
    _hash_cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def pinned_sha256(self) -> str | None:
        return self.locked.sha256 if self.locked is not None else None

    @property
    def sha256(self) -> str:
        """The current content hash (computed once per loaded entry)."""
        if "current" not in self._hash_cache:
            self._hash_cache["current"] = compute_hash(self)
        return self._hash_cache["current"]

    def extravars(
        self,
        params: Mapping[str, Any],
        *,
        serial: int | str | None = None,
        max_fail_percentage: int | None = None,
    ) -> dict[str, Any]:
        """Validated params plus the play keywords (manifest defaults unless overridden)."""
        out = dict(params)
        out["tailops_serial"] = serial if serial is not None else self.manifest.serial
        out["tailops_max_fail_percentage"] = (
            max_fail_percentage if max_fail_percentage is not None else self.manifest.max_fail_percentage
        )
        return out
