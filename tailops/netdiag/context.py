"""Per-server state of the network probes: policy, resolver, and the probe limiter.

Why this module exists: every probe of one server instance must share one
:class:`~tailops.netdiag.policy.TargetPolicy`, one resolver and one bound on
concurrent probes (``network.max_concurrent_probes``), without module globals
(tests run several servers in one process). :func:`for_runtime` keeps one
:class:`NetDiag` per :class:`~tailops.runtime.Runtime` (weakly keyed).

What it must never do: let a probe run without a slot, or wait for a slot
without a bound.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

import anyio

from tailops.errors import Unavailable
from tailops.netdiag.policy import CheckedTarget, Purpose, Resolver, TargetPolicy

if TYPE_CHECKING:
    from tailops.config import Settings
    from tailops.runtime import Runtime

__all__ = ["NetDiag", "for_runtime"]

_BY_RUNTIME: weakref.WeakKeyDictionary[Runtime, NetDiag] = weakref.WeakKeyDictionary()


class NetDiag:
    """Policy + resolver + limiter for one server instance."""

    def __init__(self, config: Settings) -> None:
        net = config.network
        self.config = config
        self.timeout = net.timeout.total_seconds()
        self.policy = TargetPolicy.from_lists(
            net.allow_cidrs,
            net.deny_cidrs,
            http_allow_loopback=net.http_allow_loopback,
            own_ports=[config.server.port],
            own_hosts=[config.server.host],
        )
        self.resolver = Resolver(net.resolver, timeout_s=self.timeout)
        self.max_concurrent = net.max_concurrent_probes
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrent)
        return self._limiter

    @contextlib.asynccontextmanager
    async def slot(self, wait: float | None = None) -> AsyncIterator[None]:
        """Hold one of ``network.max_concurrent_probes`` slots; wait at most ``wait`` seconds for it."""
        bound = self.timeout if wait is None else wait
        try:
            with anyio.fail_after(bound):
                await self.limiter.acquire()
        except TimeoutError:
            raise Unavailable(
                f"all {self.max_concurrent} probe slots stayed busy for {bound:g} s.",
                hint="Retry shortly, or ask an admin to raise network.max_concurrent_probes.",
            ) from None
        try:
            yield
        finally:
            self.limiter.release()

    async def check(self, target: object, purpose: Purpose, *, port: int | None = None) -> CheckedTarget:
        return await self.policy.check(target, purpose, self.resolver, port=port)

    def icmp_privileged(self) -> bool:
        mode: Literal["auto", "privileged", "unprivileged"] = self.config.network.icmp_mode
        if mode == "auto":
            return os.geteuid() == 0
        return mode == "privileged"


def for_runtime(rt: Runtime) -> NetDiag:
    """The :class:`NetDiag` of ``rt`` (created on first use)."""
    nd = _BY_RUNTIME.get(rt)
    if nd is None:
        nd = NetDiag(rt.config)
        _BY_RUNTIME[rt] = nd
    return nd
