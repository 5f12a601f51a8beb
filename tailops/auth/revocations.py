"""Is a token revoked? The one query, kept apart from token signing and verification.

Why its own module: the change engine asks it too (an approval given with a token
that has since been revoked no longer counts, and a revoked requester's plan is not
applied), and it must not pull PyJWT and cryptography in to ask one SQL question.

It must never look at a token itself: it gets a ``jti`` (an id, not a secret).
"""

from __future__ import annotations

from tailops.store import Store

__all__ = ["is_revoked"]


def is_revoked(store: Store, jti: str) -> bool:
    """True when ``jti`` was revoked (issued by this store or revoked as a foreign id)."""
    row = store.query_one(
        "SELECT 1 FROM tokens WHERE jti = ? AND revoked_at IS NOT NULL "
        "UNION ALL SELECT 1 FROM revocations WHERE jti = ? LIMIT 1",
        (jti, jti),
    )
    return row is not None
