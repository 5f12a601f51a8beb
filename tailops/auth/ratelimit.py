"""Token-bucket rate limits: per principal, and for failed authentications per
client address. In memory: limits protect this process, they are not quotas."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from tailops.errors import RateLimited

if TYPE_CHECKING:
    from tailops.principal import Principal

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, up to ``capacity``. Thread-safe. Keys expire when full."""

    def __init__(self, rate: float, capacity: float, *, max_keys: int = 10000) -> None:
        self.rate = rate
        self.capacity = capacity
        self._max_keys = max_keys
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0.0, or the seconds to wait when empty."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._state.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= cost:
                self._state[key] = (tokens - cost, now)
                return 0.0
            self._state[key] = (tokens, now)
            if len(self._state) > self._max_keys:
                self._evict(now)
            return (cost - tokens) / self.rate

    def _evict(self, now: float) -> None:
        full = [k for k, (t, at) in self._state.items() if t + (now - at) * self.rate >= self.capacity]
        for k in full:
            del self._state[k]


class RateLimiter:
    def __init__(self, per_minute: int, burst: int) -> None:
        self.bucket = TokenBucket(rate=per_minute / 60.0, capacity=float(per_minute / 60.0 + burst))
        self.per_minute = per_minute

    def check(self, principal: Principal) -> None:
        wait = self.bucket.take(f"{principal.transport}:{principal.subject}")
        if wait > 0:
            raise RateLimited(
                f"rate limit of {self.per_minute} requests/min reached for {principal.subject}.",
                retry_after=wait,
                hint=f"Retry after {wait:.1f} s.",
            )
