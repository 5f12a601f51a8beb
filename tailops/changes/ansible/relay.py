"""A blocking job in a worker thread, its progress delivered on the event loop, in order.

Why: a run (ansible-runner on this machine, or an execution node's stream) blocks, so
it runs in a worker thread; its progress must reach the caller's ``on_event`` on the
event loop, in order, all of it before the run returns; cancelling (an ``anyio.Event``
or the awaiting task) must stop the job; and if progress cannot be recorded the run
must stop (fail closed: nothing changes hosts unrecorded). :class:`EventRelay` is that
bridge, written once for every job that runs this way.

A job is a callable plus two ``threading.Event``s it honours: ``stop`` (asked to stop:
the job ends as soon as it can, with status ``canceled``) and ``finished`` (set by the
job when it has returned, whatever happened).

It must never call ``on_event`` from the worker thread, drop or reorder an event while
``on_event`` keeps working, return before every event was delivered, or leave a job
running when the awaiting task is cancelled (it waits, bounded, for the job to end).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
from collections.abc import Awaitable, Callable

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from tailops.changes.models import RunEvent

__all__ = ["EventRelay"]


class EventRelay[T]:
    """Relays one job's :class:`RunEvent`\\ s from its worker thread to ``on_event``.

    Give :meth:`emit` to the job (it is called from the worker thread), then await
    :meth:`run`. If ``on_event`` raises, ``stop`` is set, later events are dropped and
    :meth:`run` re-raises that exception once the job has ended (after an exception of
    the job's own, which wins).
    """

    def __init__(self, on_event: Callable[[RunEvent], Awaitable[None] | None] | None) -> None:
        self._on_event = on_event
        self._send: MemoryObjectSendStream[RunEvent] | None = None

    def emit(self, event: RunEvent) -> None:
        """Queue ``event`` for ``on_event`` (worker-thread side; never blocks on the consumer)."""
        send = self._send
        if self._on_event is None or send is None:
            return
        with contextlib.suppress(Exception):  # loop gone / stream closed: nobody is listening
            anyio.from_thread.run_sync(send.send_nowait, event)

    async def run(
        self,
        job: Callable[[], T],
        *,
        stop: threading.Event,
        finished: threading.Event,
        cancel: anyio.Event | None = None,
        finish_timeout_s: float = 60.0,
    ) -> T:
        """Run ``job`` in a worker thread, deliver its events, return what it returned.

        ``cancel`` set (or this task cancelled) sets ``stop``; when this task is
        cancelled it waits up to ``finish_timeout_s`` for ``finished`` before it lets the
        cancellation through.
        """
        send, receive = anyio.create_memory_object_stream[RunEvent](math.inf)
        self._send = send
        on_event = self._on_event
        callback_error: list[Exception] = []

        async def pump() -> None:
            async with receive:
                async for event in receive:
                    if callback_error or on_event is None:
                        continue
                    try:
                        outcome = on_event(event)
                        if inspect.isawaitable(outcome):
                            await outcome
                    except Exception as exc:
                        callback_error.append(exc)
                        stop.set()

        outcome: list[T] = []
        failure: list[Exception] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            watcher = anyio.CancelScope()
            if cancel is not None:
                cancel_event = cancel

                async def watch() -> None:
                    with watcher:
                        await cancel_event.wait()
                        stop.set()

                tg.start_soon(watch)
            try:
                outcome.append(await anyio.to_thread.run_sync(job, abandon_on_cancel=True))
            except anyio.get_cancelled_exc_class():
                stop.set()
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(finished.wait, finish_timeout_s)
                raise
            except Exception as exc:  # raised outside the task group so it is not wrapped in a group
                failure.append(exc)
            finally:
                watcher.cancel()
                send.close()
        if failure:
            raise failure[0]
        if callback_error:
            raise callback_error[0]
        return outcome[0]
