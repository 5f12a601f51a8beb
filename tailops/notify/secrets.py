"""Read an endpoint's secret when a notification is sent, never earlier, never stored.

Why at send time: the outbox row names the endpoint only, so a secret never lands
in SQLite, and a rotated key file takes effect on the next attempt without a
restart. The secret is an HMAC key (json), the webhook URL itself (slack) or an
access token (ntfy). Errors name the file or variable, never the value; this
module never logs.
"""

from __future__ import annotations

import os

from tailops.config import NotificationEndpoint
from tailops.errors import ConfigError

__all__ = ["resolve_secret"]

_MAX_SECRET_BYTES = 16 * 1024


def resolve_secret(endpoint: NotificationEndpoint) -> str | None:
    """The endpoint's secret, stripped of surrounding whitespace; None when it has none.

    Raises ConfigError when the variable is unset/empty or the file is missing,
    unreadable, too large or empty.
    """
    if endpoint.secret_env is not None:
        value = os.environ.get(endpoint.secret_env, "").strip()
        if not value:
            raise ConfigError(f"endpoint {endpoint.name}: environment variable {endpoint.secret_env} is not set.")
        return value
    if endpoint.secret_file is not None:
        path = endpoint.secret_file
        try:
            with path.open("rb") as fh:
                raw = fh.read(_MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise ConfigError(
                f"endpoint {endpoint.name}: secret file {path} cannot be read ({exc.__class__.__name__})."
            ) from None
        if len(raw) > _MAX_SECRET_BYTES:
            raise ConfigError(f"endpoint {endpoint.name}: secret file {path} is larger than 16 KiB.")
        try:
            value = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"endpoint {endpoint.name}: secret file {path} is not UTF-8 text.") from None
        if not value:
            raise ConfigError(f"endpoint {endpoint.name}: secret file {path} is empty.")
        return value
    return None
