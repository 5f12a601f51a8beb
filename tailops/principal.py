"""Who is calling: the identity every authorization and audit record is about.

A principal is resolved once per request at the transport boundary (a verified
token on HTTP, the local OS user on stdio, the invoking user on the CLI) and
handed to the tool layer; tools never look at headers or tokens themselves.

:meth:`Principal.identities` is what "the same person" means for the change
engine (an approver must not be the requester): every key a principal can be
recognised by. It must be computed in the process the principal belongs to
(the local OS user of a stdio/CLI principal is this process's user).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Principal", "Transport", "normalize_identity", "shared_identities"]

Transport = Literal["http", "stdio", "cli"]


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    transport: Transport
    token_id: str | None = None
    client_addr: str | None = None
    # The human behind a token, from Tailscale identity headers sent by a
    # trusted local proxy only (auth.trusted_proxies).
    human_login: str | None = None
    human_name: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def has_scope(self, scope: str) -> bool:
        """``admin`` implies every scope."""
        return "admin" in self.scopes or scope in self.scopes

    def identities(self) -> frozenset[str]:
        """Every key this principal can be recognised by (two principals sharing one are one person).

        ``sub:<subject>`` always (so a stdio ``local:root`` and a CLI ``local:root``
        match, and so do two tokens minted for the same subject); ``jti:<id>`` for
        a token; ``tailscale:<login>`` (case-insensitive) when a trusted proxy
        named the human; for local transports (stdio, cli) ``os-user:<name>`` of
        the account this process runs as (by uid, so ``USER=someone-else`` does
        not hide it) and of ``SUDO_USER``. Extra keys only ever add refusals.

        Keys are compared case-insensitively (see :func:`shared_identities`): ``Alice`` and
        ``alice`` are one person, whichever of them minted the token.
        """
        ids = {f"sub:{self.subject}"}
        if self.token_id:
            ids.add(f"jti:{self.token_id}")
        if self.human_login:
            ids.add(f"tailscale:{self.human_login.strip().lower()}")
        if self.transport in ("stdio", "cli"):
            if self.subject.startswith("local:"):
                ids.add(f"os-user:{self.subject.removeprefix('local:')}")
            try:
                ids.add(f"os-user:{pwd.getpwuid(os.getuid()).pw_name}")
            except KeyError:
                ids.add(f"os-uid:{os.getuid()}")
            sudo_user = os.environ.get("SUDO_USER")
            if sudo_user:
                ids.add(f"os-user:{sudo_user}")
        return frozenset(ids)

    def describe(self) -> dict[str, str | None]:
        """Who this is, for plan/approval/run records (no secrets: a jti is an id, not a token)."""
        return {
            "subject": self.subject,
            "token_id": self.token_id,
            "transport": self.transport,
            "human_login": self.human_login,
            "human_name": self.human_name,
            "client_addr": self.client_addr,
        }

    def audit_view(self, **more: str) -> dict[str, str | None]:
        """The ``principal`` of an audit record: every place that audits (tool calls,
        protocol requests, the review page) writes the same keys, so one query finds a
        person's actions wherever they happened. ``more`` adds context (e.g. the page)."""
        return {
            "sub": self.subject,
            "jti": self.token_id,
            "transport": self.transport,
            "addr": self.client_addr,
            "human": self.human_login,
            "human_name": self.human_name,
            **self.extra,
            **more,
        }

    def same_person_as(self, ids: Iterable[str]) -> list[str]:
        """The identity keys this principal shares with ``ids`` (e.g. a plan's requester)."""
        return shared_identities(self.identities(), ids)

    @property
    def label(self) -> str:
        """A short id for logs and audit: ``sub`` plus the human if known."""
        if self.human_login:
            return f"{self.subject} ({self.human_login})"
        return self.subject


def normalize_identity(key: str) -> str:
    """The comparable form of an identity key: subjects, logins and user names are
    case-insensitive (token subjects are ASCII by construction, so ``lower`` is enough)."""
    return key.strip().lower()


def shared_identities(a: Iterable[str], b: Iterable[str]) -> list[str]:
    """The identity keys two principals share, compared case-insensitively (sorted)."""
    return sorted({normalize_identity(k) for k in a} & {normalize_identity(k) for k in b})
