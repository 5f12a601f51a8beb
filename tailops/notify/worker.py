"""The delivery worker: one background thread running an event loop that drains the outbox.

Why a thread with its own loop: the server's event loop (and the stdio loop, and a
CLI process) must never wait on a receiver, and the worker must also run where
there is no server loop at all (``tailops notifications test``). Inside, deliveries
are anyio tasks: at most ``concurrency`` at once and ``per_endpoint_concurrency``
per endpoint, each bounded by its endpoint's total timeout, so a hanging receiver
holds a few slots for a few seconds while the others are served.

The loop wakes on :meth:`Notifier.wake` (called by :func:`tailops.notify.emit`), when
the earliest retry is due, or every ``poll_interval`` (rows queued by another
process). Every minute it deletes rows past ``retention`` and queues
``plan.expired`` events. :meth:`Notifier.stop` cancels deliveries in flight and
gives their rows back (due at once); a process killed outright leaves leases that
run out, and the next worker sends those rows again (at-least-once).

It never logs a URL, a secret or an event body — endpoint names and ids only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from tailops.config import Settings
from tailops.errors import ConfigError, TailopsError
from tailops.notify import outbox
from tailops.notify.delivery import Result, make_client, send
from tailops.notify.expiry import sweep_expired_plans
from tailops.notify.formats import render
from tailops.notify.secrets import resolve_secret
from tailops.store import Store

if TYPE_CHECKING:
    import httpx
    from anyio.abc import TaskGroup

    from tailops.metrics import Metrics

__all__ = ["Notifier"]

log = logging.getLogger("tailops.notify")

_HOUSEKEEPING_EVERY = 60.0
# A claim outlives the longest delivery (its endpoint timeout) by this much; a row whose
# worker died is sent again this long after its timeout would have fired.
_LEASE_MARGIN = 5.0
# Shortest pause between two looks at the outbox (bounds the loop if something is off).
_MIN_WAIT = 0.01


class Notifier:
    """Delivers queued notifications in the background. ``start()``/``stop()`` are idempotent."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        only: set[str] | None = None,
        housekeeping: bool = True,
    ) -> None:
        self.store = store
        self.settings = settings
        self.config = settings.notifications
        self.metrics = metrics
        self.instance = uuid.uuid4().hex
        # Restrict this worker to some rows (the CLI's test); None = every due row.
        self._only = only
        self._housekeeping = housekeeping
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: anyio.Event | None = None
        self._inflight: dict[str, str] = {}  # notification id -> endpoint name
        self._next_housekeeping = 0.0
        # Times the loop woke up (diagnostics; a test checks a saturated endpoint does not spin it).
        self.cycles = 0
        longest = max((e.timeout.total_seconds() for e in self.config.endpoints), default=10.0)
        self._lease = longest + _LEASE_MARGIN

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._thread_main, name="tailops-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop delivering; rows in flight are given back (sent again by the next worker)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self.wake()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("notification worker did not stop in time")
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Look for due rows now (thread-safe, never blocks)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- the loop -------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            anyio.run(self._main)
        except Exception:
            log.exception("notification worker crashed")
        finally:
            self._loop = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = anyio.Event()
        client = make_client(self.config.concurrency)
        try:
            async with anyio.create_task_group() as tg:
                while not self._stopping.is_set():
                    try:
                        await self._cycle(tg, client)
                    except TailopsError:
                        log.exception("notification worker cycle failed")
                    await self._sleep()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()
            leftover = list(self._inflight)
            self._inflight.clear()
            if leftover:
                try:
                    outbox.release(self.store, leftover, instance=self.instance)
                except TailopsError:
                    log.exception("could not give back notifications in flight")

    async def _sleep(self) -> None:
        """Wait for a wake-up, the next claimable row's time, or the poll interval.

        Rows of endpoints at their in-flight limit (and every row while all slots are
        busy) do not count: their time has come but nothing can be sent until a delivery
        ends, which wakes the loop. Without this a saturated endpoint makes the loop spin.
        """
        wait = self.config.poll_interval.total_seconds()
        busy = collections.Counter(self._inflight.values())
        if len(self._inflight) < self.config.concurrency and not self._stopping.is_set():
            full = {name for name, n in busy.items() if n >= self.config.per_endpoint_concurrency}
            due = await anyio.to_thread.run_sync(lambda: outbox.next_due(self.store, exclude=full, only=self._only))
            if due is not None:
                wait = max(_MIN_WAIT, min(wait, due - time.time()))
        if self._stopping.is_set():
            return
        with anyio.move_on_after(wait):
            assert self._wake is not None
            await self._wake.wait()
        self._wake = anyio.Event()
        self.cycles += 1

    async def _cycle(self, tg: TaskGroup, client: httpx.AsyncClient) -> None:
        now = time.time()
        if self._housekeeping and now >= self._next_housekeeping:
            self._next_housekeeping = now + _HOUSEKEEPING_EVERY
            await anyio.to_thread.run_sync(self._housekeep, now)
        capacity = self.config.concurrency - len(self._inflight)
        busy = collections.Counter(self._inflight.values())
        claims = await anyio.to_thread.run_sync(
            lambda: outbox.claim_due(
                self.store,
                instance=self.instance,
                lease=self._lease,
                capacity=capacity,
                busy=dict(busy),
                per_endpoint=self.config.per_endpoint_concurrency,
                only=self._only,
            )
        )
        for claim in claims:
            self._inflight[claim.id] = claim.endpoint
            tg.start_soon(self._deliver, claim, client)
        if self.metrics is not None:
            pending = await anyio.to_thread.run_sync(outbox.pending_count, self.store)
            self.metrics.notifications_pending.set(pending)

    def _housekeep(self, now: float) -> None:
        outbox.prune(self.store, older_than=now - self.config.retention.total_seconds())
        sweep_expired_plans(self.store, self.settings, now=now)

    async def _attempt(self, claim: outbox.Claim, client: httpx.AsyncClient) -> tuple[Result, bool]:
        """One attempt's result, and whether retrying is pointless (the endpoint left the config)."""
        endpoint = self.config.endpoint(claim.endpoint)
        if endpoint is None:
            return Result("error", error="endpoint is no longer configured"), True
        try:
            secret = resolve_secret(endpoint)
            request = render(claim.event, endpoint, secret, claim.id, claim.attempt)
        except ConfigError as exc:
            return Result("error", error=exc.message), False
        result = await send(
            client,
            request,
            timeout=endpoint.timeout.total_seconds(),
            connect_timeout=self.config.connect_timeout.total_seconds(),
        )
        return result, False

    async def _deliver(self, claim: outbox.Claim, client: httpx.AsyncClient) -> None:
        started = time.time()
        try:
            result, final = await self._attempt(claim, client)
        except Exception:  # a bug costs this attempt, never the worker (the task group would end)
            log.exception("notification attempt failed unexpectedly", extra={"notification_id": claim.id})
            result, final = Result("error", error="internal error (see the server log)"), False
        try:
            state = await anyio.to_thread.run_sync(
                lambda: outbox.record_attempt(
                    self.store,
                    claim,
                    self.config,
                    instance=self.instance,
                    outcome=result.outcome,
                    status=result.status,
                    error=result.error,
                    started_at=started,
                    retry_after=result.retry_after,
                    final=final,
                )
            )
        except TailopsError:
            # The row stays claimed; its lease runs out and it is sent again (at-least-once).
            log.exception("could not record a notification attempt", extra={"notification_id": claim.id})
            state = "sending"
        self._inflight.pop(claim.id, None)
        self._count(claim.endpoint, result, state)
        log.info(
            "notification attempt",
            extra={
                "notification_id": claim.id,
                "endpoint": claim.endpoint,
                "attempt": claim.attempt,
                "outcome": result.outcome,
                "status": result.status,
                "state": state,
            },
        )
        self._set_wake()  # a slot is free; a retry may be due sooner than the poll

    def _count(self, endpoint: str, result: Result, state: str) -> None:
        if self.metrics is None:
            return
        if result.outcome == "delivered":
            self.metrics.notifications_delivered.labels(endpoint).inc()
        else:
            self.metrics.notifications_failed.labels(endpoint).inc()
        if state == "dead":
            self.metrics.notifications_dead.labels(endpoint).inc()

    # -- for the CLI and tests ----------------------------------------------------------
    def wait_settled(self, ids: list[str], timeout: float) -> list[outbox.NotificationRow]:
        """Block until every row in ``ids`` is delivered or dead, or ``timeout`` passes; return them."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [outbox.get_notification(self.store, nid) for nid in ids]
            if all(r.state in ("delivered", "dead") for r in rows) or time.monotonic() >= deadline:
                return rows
            time.sleep(0.05)
