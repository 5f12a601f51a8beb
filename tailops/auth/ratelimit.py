"""Token-bucket rate limits: per principal, and for failed authentications per
client address. In memory: limits protect this process, they are not quotas.

Where each limit is enforced (one budget per principal, charged once):

- HTTP: every request is charged at the transport (``tailops.server.middleware``)
  against the verified token's ``sub`` (or the client address when auth is
  disabled), and answered 429 + ``Retry-After`` when empty. Failed
  authentications have their own, smaller budget per client address; once it
  is spent, requests from that address get 429 before any token is verified.
- stdio: there is no HTTP layer, so the tool boundary charges each tool call
  (:meth:`RateLimiter.check_call`); HTTP principals are never charged twice.

This module must never block: a refused request is answered at once.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from tailops.errors import RateLimited

if TYPE_CHECKING:
    from tailops.principal import Principal

__all__ = ["AuthFailureLimiter", "RateLimiter", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, up to ``capacity``. Thread-safe. Keys expire when full."""

    def __init__(self, rate: float, capacity: float, *, max_keys: int = 10000) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._max_keys = max_keys
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._state.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0.0, or the seconds to wait when empty (nothing taken)."""
        now = time.monotonic()
        with self._lock:
            tokens = self._level(key, now)
            if tokens >= cost:
                self._state[key] = (tokens - cost, now)
                wait = 0.0
            else:
                self._state[key] = (tokens, now)
                wait = (cost - tokens) / self.rate
            if len(self._state) > self._max_keys:
                self._evict(now)
            return wait

    def wait_time(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available (0.0 now); takes nothing."""
        now = time.monotonic()
        with self._lock:
            tokens = self._level(key, now)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate

    def _evict(self, now: float) -> None:
        full = [k for k, (t, at) in self._state.items() if t + (now - at) * self.rate >= self.capacity]
        for k in full:
            del self._state[k]
        if len(self._state) > self._max_keys:
            # Still too many live keys (a flood of distinct keys): drop the fullest half.
            ordered = sorted(self._state, key=lambda k: self._level(k, now), reverse=True)
            for k in ordered[: len(ordered) // 2]:
                del self._state[k]


class RateLimiter:
    """Requests per principal: ``per_minute`` steady, up to ``burst`` at once."""

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.per_minute = per_minute
        self.burst = burst if burst is not None else per_minute
        self.bucket = TokenBucket(rate=per_minute / 60.0, capacity=float(self.burst))

    def check_key(self, key: str, who: str) -> None:
        """Charge one request to ``key``; raise RateLimited when its budget is spent."""
        wait = self.bucket.take(key)
        if wait > 0:
            raise RateLimited(
                f"rate limit of {self.per_minute} requests/min reached for {who}.",
                retry_after=wait,
                hint=f"Retry after {max(1, round(wait + 0.5))} s.",
            )

    def check(self, principal: Principal) -> None:
        """Charge one request to ``principal``."""
        # Subjects are identities: "Alice" and "alice" share one budget.
        self.check_key(f"{principal.transport}:{principal.subject.lower()}", principal.subject)

    def check_call(self, principal: Principal) -> None:
        """The tool boundary's charge: HTTP principals were charged per request at the transport."""
        if principal.transport == "http":
            return
        self.check(principal)


class AuthFailureLimiter:
    """Failed authentications per client address: ``per_minute``, all of them at once at most."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.bucket = TokenBucket(rate=per_minute / 60.0, capacity=float(per_minute))

    def retry_after(self, addr: str) -> float:
        """0.0 when ``addr`` may still try; else seconds until it may try again."""
        return self.bucket.wait_time(addr)

    def record_failure(self, addr: str) -> None:
        self.bucket.take(addr)
