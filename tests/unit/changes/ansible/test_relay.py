"""EventRelay: a job in a real worker thread, its events on the loop, in order; stop, cancel, errors.

The relay is the one bridge both the local ansible-runner job and a node's stream use,
so these are its promises, checked with real threads (no Ansible): every event reaches
``on_event`` on the loop thread, in order, before ``run`` returns; a failing ``on_event``
stops the job (fail closed) and is re-raised; ``cancel`` and cancelling the awaiting
task reach the job; a job's own exception comes out as itself, not wrapped in a group.
The real runs are in tests/integration/test_runner.py and test_nodes.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import pytest

from tailops.changes.ansible.relay import EventRelay
from tailops.changes.models import RunEvent


class _Job:
    """Emits ``count`` events, then (if ``wait``) blocks until asked to stop."""

    def __init__(self, count: int, *, wait: bool = False, fail: Exception | None = None) -> None:
        self.count = count
        self.wait = wait
        self.fail = fail
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.emit: Callable[[RunEvent], None] = lambda event: None
        self.stopped_after: int | None = None

    def run(self) -> str:
        try:
            for n in range(self.count):
                if self.stop.is_set():
                    self.stopped_after = n
                    return "canceled"
                self.emit(RunEvent(kind="task_start", counter=n))
            if self.wait and not self.stop.wait(10):
                return "never stopped"
            if self.fail is not None:
                raise self.fail
            return "canceled" if self.stop.is_set() else "successful"
        finally:
            self.finished.set()


async def _run(job: _Job, relay: EventRelay[str], cancel: anyio.Event | None = None) -> str:
    job.emit = relay.emit
    return await relay.run(job.run, stop=job.stop, finished=job.finished, cancel=cancel, finish_timeout_s=10)


async def test_every_event_arrives_in_order_on_the_loop_thread_before_run_returns() -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[int | None, int]] = []

    async def on_event(event: RunEvent) -> None:
        await anyio.sleep(0)  # an async sink is awaited
        seen.append((event.counter, threading.get_ident()))

    job = _Job(200)
    assert await _run(job, EventRelay[str](on_event)) == "successful"
    assert [c for c, _ in seen] == list(range(200))
    assert {t for _, t in seen} == {loop_thread}


async def test_a_failing_sink_stops_the_job_and_is_raised() -> None:
    got: list[int | None] = []

    def on_event(event: RunEvent) -> None:
        got.append(event.counter)
        if event.counter == 2:
            raise RuntimeError("the store is gone")

    job = _Job(5, wait=True)
    with pytest.raises(RuntimeError, match="the store is gone"):
        await _run(job, EventRelay[str](on_event))
    assert job.stop.is_set() and job.finished.is_set()
    assert got == [0, 1, 2]  # nothing is delivered after the failure


async def test_the_cancel_event_stops_the_job() -> None:
    cancel = anyio.Event()

    def on_event(event: RunEvent) -> None:
        if event.counter == 0:
            cancel.set()

    job = _Job(1, wait=True)
    assert await _run(job, EventRelay[str](on_event), cancel) == "canceled"
    assert job.stop.is_set()


async def test_cancelling_the_awaiting_task_stops_the_job_and_waits_for_it() -> None:
    job = _Job(1, wait=True)
    relay = EventRelay[str](None)
    with anyio.move_on_after(0.5):
        await _run(job, relay)
    assert job.stop.is_set()
    assert job.finished.is_set()  # the job ended before the cancellation went through


async def test_a_job_error_comes_out_as_itself_and_wins_over_a_sink_error() -> None:
    def on_event(event: RunEvent) -> None:
        raise RuntimeError("sink")

    job = _Job(1, fail=ValueError("job"))
    with pytest.raises(ValueError, match="job"):
        await _run(job, EventRelay[str](on_event))


async def test_without_a_sink_events_are_dropped_and_the_result_returned() -> None:
    assert await _run(_Job(3), EventRelay[str](None)) == "successful"
