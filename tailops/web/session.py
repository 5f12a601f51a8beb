"""Browser sessions of the review page: the verified token in a locked-down cookie, and CSRF.

Why a cookie holding the token itself: the page must use exactly the same
credentials as every other HTTP client (signed, scoped, expiring, revocable
tokens), so each request re-verifies it — an expired or revoked token ends the
session on the next click, and nothing new (a session table, a second secret)
has to be kept safe. The cookie is ``HttpOnly`` (no script can read it),
``SameSite=Strict`` (no other site's page can send it), scoped to ``/review``
(it is never sent to ``/mcp``), ``Secure`` when the server is reached over
HTTPS, and lives no longer than the token (at most ``SESSION_MAX_S``).

Every POST also needs (a) an ``Origin`` header on the server's allow-list and
(b) the CSRF field: an HMAC of the token, which only a page that was served
with the cookie can know. Either check alone would stop a cross-site form;
together they also hold in browsers that ignore ``SameSite``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "ACCESS_TOKEN_KEY",
    "AUTH_VIA_KEY",
    "COOKIE",
    "LOGIN_PATH",
    "PREFIX",
    "SESSION_MAX_S",
    "STYLESHEET_PATH",
    "clear_cookie",
    "cookie_secure",
    "csrf_ok",
    "csrf_token",
    "is_review_path",
    "open_review_path",
    "session_cookie",
]

# Where the HTTP layer leaves, in the ASGI scope, the verified access token of a request and
# which credential authenticated it ("header" or "cookie"): the review page reads both.
ACCESS_TOKEN_KEY = "tailops.access_token"  # noqa: S105 (a dict key, not a secret)
AUTH_VIA_KEY = "tailops.auth_via"
COOKIE = "tailops_review"
PREFIX = "/review"
LOGIN_PATH = f"{PREFIX}/login"
STYLESHEET_PATH = f"{PREFIX}/static/review.css"
PATH = PREFIX
SESSION_MAX_S = 12 * 3600
_CSRF_KEY = b"tailops-review-csrf-v1"


def is_review_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def open_review_path(path: str) -> bool:
    """Review paths served without a session: the login form and its stylesheet."""
    return path in (LOGIN_PATH, STYLESHEET_PATH)


def cookie_secure(scheme: str, public_url: str | None) -> bool:
    """Mark cookies ``Secure`` when this request, or the server's public URL, is HTTPS."""
    return scheme == "https" or (public_url or "").startswith("https:")


def csrf_token(token: str) -> str:
    """The CSRF value for pages served to the holder of ``token``."""
    return hmac.new(_CSRF_KEY, token.encode(), hashlib.sha256).hexdigest()[:40]


def csrf_ok(token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(token), str(sent))


def session_cookie(token: str, expires_at: int | None, *, secure: bool, now: float | None = None) -> str:
    """The ``Set-Cookie`` value that starts a session for ``token`` (never longer than the token)."""
    now = time.time() if now is None else now
    max_age = SESSION_MAX_S if expires_at is None else max(0, min(SESSION_MAX_S, int(expires_at - now)))
    parts = [f"{COOKIE}={token}", f"Path={PATH}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie(*, secure: bool) -> str:
    parts = [f"{COOKIE}=", f"Path={PATH}", "Max-Age=0", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
