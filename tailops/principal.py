"""Who is calling: the identity every authorization and audit record is about.

A principal is resolved once per request at the transport boundary (a verified
token on HTTP, the local OS user on stdio, the invoking user on the CLI) and
handed to the tool layer; tools never look at headers or tokens themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Principal", "Transport"]

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

    @property
    def label(self) -> str:
        """A short id for logs and audit: ``sub`` plus the human if known."""
        if self.human_login:
            return f"{self.subject} ({self.human_login})"
        return self.subject
