"""``tailops://playbooks/{name}``: a catalog playbook's manifest and text, as JSON.

Why it exists: an agent that is about to plan a change can read exactly what the playbook
does and which parameters it takes, without a tool call. It must never show a file outside
the catalog, nor more than :data:`MAX_PLAYBOOK_BYTES` of playbook text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from tailops.changes.catalog import Catalog
from tailops.errors import CatalogError
from tailops.tools.resources.registry import resource

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__ = ["MAX_PLAYBOOK_BYTES", "PLAYBOOK_TEMPLATE"]

PLAYBOOK_TEMPLATE: Final = "tailops://playbooks/{name}"
MAX_PLAYBOOK_BYTES: Final = 256 * 1024  # playbook text shown in a resource


def _names(rt: Runtime) -> list[str]:
    return Catalog.from_settings(rt.config).names()


@resource(
    PLAYBOOK_TEMPLATE,
    name="playbook",
    title="Catalog playbook",
    description="A vetted catalog playbook: its manifest (parameters, risk, scope, target) "
    "and the playbook text, as JSON.",
    names=_names,
)
def read_playbook(rt: Runtime, name: str) -> dict[str, Any]:
    entry = Catalog.from_settings(rt.config).get(name)
    try:
        raw = entry.playbook.read_bytes()
    except OSError as exc:
        raise CatalogError(f"playbook {name}: playbook.yml cannot be read ({exc.strerror or exc}).") from exc
    text = raw[:MAX_PLAYBOOK_BYTES].decode("utf-8", errors="replace")
    return {
        "name": entry.name,
        "version": entry.version,
        "pinned_sha256": entry.pinned_sha256,
        "manifest": entry.manifest.model_dump(mode="json"),
        "playbook_file": entry.playbook.name,
        "playbook": text,
        "playbook_truncated": len(raw) > MAX_PLAYBOOK_BYTES,
    }
