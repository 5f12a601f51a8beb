"""Audit records: the shape of a chain line and of the head, written and parsed.

Why it exists: the writer, the end-of-log check, verification and ``tailops audit tail``
must agree to the byte on what a record is (a JSON object with an integer ``seq`` from 1
and the hex SHA-256 ``prev`` of the line before) and what the head file holds
(``{"seq", "hash", "gaps"}``); this module is that agreement.

What it must never do: encode a value without passing it through the redactor (anything
JSON cannot encode natively is redacted as text), or accept a line as a record that a
hostile edit could make ambiguous (a bool ``seq``, a short ``prev``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from tailops.redact import redact_text

__all__ = [
    "GAP_KIND",
    "GENESIS",
    "RESERVED",
    "ChainRecord",
    "HeadRecord",
    "HeadState",
    "encode",
    "parse_head",
    "parse_record",
    "timestamp",
]

GENESIS = "0" * 64
GAP_KIND = "audit_gap"
# Keys the chain itself writes: an entry never sets them.
RESERVED = ("seq", "ts", "prev")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _json_default(value: Any) -> str:
    # Anything json cannot encode natively still passes the redactor.
    if isinstance(value, bytes | bytearray):
        return f"[{len(value)} bytes]"
    return redact_text(str(value))


def encode(record: dict[str, Any]) -> bytes:
    """``record`` as one compact JSON line (no newline); values JSON cannot encode are redacted text."""
    return json.dumps(record, separators=(",", ":"), default=_json_default, ensure_ascii=False).encode()


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class ChainRecord:
    """One parsed chain record: what the writer and verify need of a line."""

    seq: int
    prev: str
    hash: str
    data: dict[str, Any]

    @property
    def is_gap(self) -> bool:
        return self.data.get("kind") == GAP_KIND


def parse_record(raw: bytes) -> ChainRecord | None:
    """The record on ``raw``, or None when it is not one (JSON object with int seq and hex prev)."""
    rec = _json_object(raw)
    if rec is None:
        return None
    seq, prev = rec.get("seq"), rec.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        return None
    return ChainRecord(seq, prev, hashlib.sha256(raw).hexdigest(), rec)


@dataclass(frozen=True)
class HeadRecord:
    """``audit.jsonl.head``: the newest line's seq and hash, and the log's gap count."""

    seq: int
    hash: str
    gaps: int


HeadState = HeadRecord | Literal["missing", "unreadable"]


def parse_head(raw: bytes) -> HeadRecord | None:
    """The head in ``raw``, or None when it is not one this module wrote."""
    data = _json_object(raw)
    if data is None:
        return None
    seq, digest, gaps = data.get("seq"), data.get("hash"), data.get("gaps", 0)  # no "gaps": written before gaps existed
    if not isinstance(seq, int) or not isinstance(gaps, int) or isinstance(seq, bool) or isinstance(gaps, bool):
        return None
    if seq < 0 or gaps < 0:
        return None
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        return None
    return HeadRecord(seq, digest, gaps)


def timestamp() -> str:
    """Now in UTC, to the millisecond, as every record's ``ts``."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
