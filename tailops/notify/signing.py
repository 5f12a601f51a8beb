"""HMAC-SHA256 signatures of json webhook bodies, and the check a receiver runs.

Why: a receiver must be able to tell a notification from tailops from one anybody
on the network could POST, and an old captured one from a fresh one. The header is

    X-Tailops-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

(the scheme Stripe and others use: the timestamp is signed with the body, so it
cannot be swapped, and the receiver refuses stale ones). Several ``v1=`` values may
appear (key rotation); one valid match suffices. Receivers also de-duplicate by the
body's ``id`` because delivery is at-least-once.

:func:`verify_signature` raises and never returns False (STYLE.md); it compares in
constant time. This module never logs and never puts a secret in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from tailops.errors import AuthError

__all__ = ["SIGNATURE_HEADER", "sign", "signature_header", "verify_signature"]

SIGNATURE_HEADER = "X-Tailops-Signature"
DEFAULT_TOLERANCE = 300.0


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body``."""
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: bytes, *, now: float | None = None) -> str:
    """The ``X-Tailops-Signature`` value for ``body`` signed now."""
    ts = int(time.time() if now is None else now)
    return f"t={ts},v1={sign(secret, ts, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> int:
    """Check an ``X-Tailops-Signature`` header against the raw body; return its timestamp.

    Raises :class:`~tailops.errors.AuthError` when the header is missing or malformed,
    the timestamp is further than ``tolerance`` seconds from now (either way), or no
    ``v1`` signature matches. Verify the exact bytes received, before parsing JSON.
    """
    if not header:
        raise AuthError(f"missing {SIGNATURE_HEADER} header.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise AuthError(f"malformed {SIGNATURE_HEADER} header.")
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                raise AuthError(f"malformed {SIGNATURE_HEADER} timestamp.")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise AuthError(f"{SIGNATURE_HEADER} needs t= and v1=.")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise AuthError(f"{SIGNATURE_HEADER} timestamp is outside the {tolerance:g}s tolerance (replay or clock skew).")
    expected = sign(secret, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates):
        raise AuthError(f"{SIGNATURE_HEADER} does not match the body.")
    return timestamp
