"""Authentication and authorization: who is calling and what they may do.

Checks raise (:class:`~tailops.errors.AuthError`,
:class:`~tailops.errors.PermissionDenied`, :class:`~tailops.errors.RateLimited`)
and never return False; a missing declaration means deny. This package root
stays import-light (the CLI and the audit writer use it).
"""

from __future__ import annotations

import getpass

__all__ = ["local_user"]


def local_user() -> str:
    """The OS user running this process (the principal of stdio and CLI calls)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
