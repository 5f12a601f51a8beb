"""The engine's images: ``GET /images/json`` → :class:`ImageList`, newest first.

Why it exists: agents check which image (and digest) a container runs and what
is lying around; :func:`image_summary` is the pure parser of one row, for
recorded-data tests.

What it must never do: pull, tag, prune or remove an image (catalog playbooks
do that), or show the "<none>" placeholders the engine uses for untagged images.
"""

from __future__ import annotations

from typing import Any

from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.models import ImageList, ImageSummary
from tailops.monitor.containers.values import engine_time, short_id

__all__ = ["image_summary", "list_images"]


def image_summary(row: dict[str, Any]) -> ImageSummary:
    tags = [t for t in row.get("RepoTags") or [] if t != "<none>:<none>"]
    return ImageSummary(
        id=short_id(row.get("Id")),
        tags=tags,
        digests=[d for d in row.get("RepoDigests") or [] if not d.startswith("<none>")],
        size=row.get("Size"),
        created=engine_time(row.get("Created")),
        dangling=not tags,
    )


def list_images(engine: DockerEngine, *, dangling: bool | None, reference: str | None, limit: int) -> ImageList:
    flt: dict[str, Any] = {}
    if dangling is not None:
        flt["dangling"] = dangling
    if reference:
        flt["reference"] = reference
    api = engine.api()
    rows: list[dict[str, Any]] = engine.call("list images", api.images, filters=flt or None)
    rows.sort(key=lambda r: r.get("Created") or 0, reverse=True)
    out = [image_summary(row) for row in rows[:limit]]
    truncated = len(rows) > len(out)
    return ImageList(
        images=out,
        total=len(rows),
        truncated=truncated,
        truncation=f"limit {limit} reached; raise limit or filter by reference" if truncated else None,
    )
