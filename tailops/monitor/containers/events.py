"""The one follower of the engine's container events, shared by everyone who needs them.

Why it exists: two readers must know the moment a container changes: the inspect
cache (an entry is current only until an event says otherwise) and resource
subscriptions (a client is told its ``tailops://containers/{name}`` changed).
Each used to open its own ``GET /events``. This feed opens one stream while at
least one :class:`EventSink` is subscribed, hands every container event to each
sink on its one thread (``tailops-container-events``), tells the sinks when the
stream ends (engine gone, error), and closes the stream when the last sink
leaves. A stream is opened with ``since`` = the moment it was asked for, so
events that happen while it connects are replayed, not lost.

What it must never do: hold its lock while calling a sink, let one sink's
exception end the feed for the others, keep a stream open with no sink, or
block the caller of :meth:`ContainerEvents.unsubscribe` (it is called on the
server's event loop; the thread winds down by itself).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tailops.errors import TailopsError
from tailops.monitor.containers.errors import engine_exceptions

__all__ = ["THREAD_NAME", "ContainerEvents", "EventSink"]

log = logging.getLogger("tailops.docker")
T = TypeVar("T")


class _Engine(Protocol):
    """What the feed needs of the engine (tailops.monitor.containers.engine.DockerEngine, which
    owns this feed: typed structurally so the two modules do not import each other)."""

    def api(self) -> Any: ...
    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


THREAD_NAME = "tailops-container-events"


def _nothing() -> None:
    return None


@dataclass(eq=False)
class EventSink:
    """One user of the feed: ``on_event`` for each container event, ``on_end`` when the stream ended.

    Both run on the feed's thread and must be quick (hand work elsewhere); an
    exception is logged and the feed goes on. After ``on_end`` events may have
    been missed: a sink that keeps state must drop it.
    """

    on_event: Callable[[Mapping[str, Any]], None]
    on_end: Callable[[], None] = field(default=_nothing)


class ContainerEvents:
    """``GET /events?filters={"type":["container"]}``, followed once for all sinks."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._sinks: tuple[EventSink, ...] = ()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stream: Any = None
        self._attempted = threading.Event()  # set once the current start connected or failed
        self.generation = 0  # changes whenever the stream connects or ends
        self.streams_opened = 0  # engine event streams opened so far (one per (re)start)

    # -- state -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a stream is open, i.e. no event can be missed right now."""
        return self._stream is not None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def subscribed(self, sink: EventSink) -> bool:
        return sink in self._sinks

    # -- sinks -------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> None:
        """Add ``sink`` (idempotent) and start following events if nobody did."""
        with self._lock:
            if sink not in self._sinks:
                self._sinks = (*self._sinks, sink)
            self._start_locked()

    def ensure_running(self) -> None:
        """Start the stream again after it ended, if some sink still wants events."""
        with self._lock:
            if self._sinks:
                self._start_locked()

    def unsubscribe(self, sink: EventSink) -> None:
        """Remove ``sink``; the last one leaving closes the stream (without waiting for the thread)."""
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)
            if self._sinks or self._thread is None:
                return
            self._stop.set()
            stream, self._stream = self._stream, None
            self._thread = None
            self.generation += 1
        _close_quietly(stream)

    def wait_connected(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the current start connected or failed; True if connected."""
        self._attempted.wait(timeout)
        return self.connected

    def close(self) -> None:
        """Drop every sink, close the stream and wait briefly for the thread (engine shutdown)."""
        with self._lock:
            self._sinks = ()
            self._stop.set()
            stream, self._stream = self._stream, None
            thread, self._thread = self._thread, None
            self.generation += 1
        _close_quietly(stream)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -- the thread --------------------------------------------------------------
    def _start_locked(self) -> None:
        if self.running:
            return
        self._stop = threading.Event()
        self._attempted = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(self._stop, self._attempted, time.time()),
            name=THREAD_NAME,
            daemon=True,
        )
        self._thread.start()

    def _run(self, stop: threading.Event, attempted: threading.Event, since: float) -> None:
        engine = self._engine
        try:
            stream = engine.call(
                "follow container events",
                lambda: engine.api().events(since=f"{since:.6f}", decode=True, filters={"type": "container"}),
            )
        except TailopsError as exc:
            log.warning("container events are not followed: %s", exc.message)
            attempted.set()
            self._ended(stop, None)
            return
        with self._lock:
            if stop.is_set():
                attempted.set()
                _close_quietly(stream)
                return
            self._stream = stream
            self.generation += 1
            self.streams_opened += 1
        attempted.set()
        try:
            for event in stream:
                if stop.is_set():
                    break
                if not isinstance(event, Mapping):
                    continue
                for sink in self._sinks:
                    try:
                        sink.on_event(event)
                    except Exception:  # one sink's bug must not end the others' events
                        log.exception("a container event sink failed")
        except _stream_errors() as exc:
            # AttributeError/ValueError: the response was closed under us (unsubscribe, close).
            if not stop.is_set():
                log.warning("the docker event stream ended: %s", exc.__class__.__name__)
        finally:
            self._ended(stop, stream)

    def _ended(self, stop: threading.Event, stream: Any) -> None:
        with self._lock:
            if stream is not None and self._stream is stream:
                self._stream = None
                self.generation += 1
            sinks = () if stop.is_set() else self._sinks
            stop.set()
        _close_quietly(stream)
        for sink in sinks:
            try:
                sink.on_end()
            except Exception:
                log.exception("a container event sink failed at the end of the stream")


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What following the stream can raise: the engine's errors, plus what a response closed
    under the reader (unsubscribe, close) raises."""
    return (*engine_exceptions(), AttributeError, ValueError)


def _close_quietly(stream: Any) -> None:
    """Close an event stream from any thread; a half-closed one may raise, which is fine."""
    if stream is None:
        return
    with contextlib.suppress(Exception):
        stream.close()
