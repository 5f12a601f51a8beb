"""Container inspect results, kept only while the engine's event feed says they are current.

Why it exists: ``get_container_list`` needs a few facts only inspect has (restart
count, start time, exit code, OOM kill), and inspecting every container on every
list is most of its cost. Those facts change only through container events
(start, die, oom, restart, ...), so this cache subscribes to the shared
:class:`~tailops.monitor.containers.events.ContainerEvents` feed and drops an
entry on any event for it. Entries are used only while the feed is connected;
when its stream ends everything is dropped, and the next list starts it again.
A per-container generation number (and the feed's own generation) stops a result
fetched before an event from being stored after it.

What it must never do: serve an entry while the feed is not connected (an event
could have been missed), open an event stream of its own, or grow without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from tailops.monitor.containers.events import ContainerEvents, EventSink

__all__ = ["InspectCache"]

MAX_ENTRIES = 10_000
CONNECT_WAIT = 5.0  # seconds the first list waits for the event stream (else it just does not cache)


class InspectCache:
    """``ticket`` → inspect → ``store``; ``get`` answers only while the feed is connected."""

    def __init__(self, events: ContainerEvents) -> None:
        self._events = events
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._gen: dict[str, int] = {}
        self._sink = EventSink(on_event=self._on_event, on_end=self._on_end)
        self.hits = 0
        self.misses = 0

    @property
    def watching(self) -> bool:
        return self._events.subscribed(self._sink) and self._events.connected

    def ensure_watching(self, wait: float = CONNECT_WAIT) -> None:
        """Follow engine events if not already (a failure just means: no caching)."""
        if self.watching:
            return
        with self._lock:
            self._entries.clear()  # kept from a stream that has ended: an event may have been missed
        self._events.subscribe(self._sink)
        self._events.wait_connected(wait)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        cid = event.get("id") or (event.get("Actor") or {}).get("ID")
        if not cid:
            return
        with self._lock:
            self._entries.pop(cid, None)
            self._gen[cid] = self._gen.get(cid, 0) + 1

    def _on_end(self) -> None:
        with self._lock:
            self._entries.clear()

    def _stamp(self, cid: str) -> tuple[int, int]:
        return self._events.generation, self._gen.get(cid, 0)

    def ticket(self, cid: str) -> tuple[int, int]:
        """Take before inspecting; pass to :meth:`store`."""
        with self._lock:
            return self._stamp(cid)

    def get(self, cid: str) -> dict[str, Any] | None:
        with self._lock:
            if not self._events.connected:
                return None
            found = self._entries.get(cid)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def store(self, cid: str, data: dict[str, Any], ticket: tuple[int, int]) -> None:
        with self._lock:
            if not self._events.connected or self._stamp(cid) != ticket:
                return  # an event arrived (or the stream changed) since the inspect started
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[cid] = data

    def close(self) -> None:
        self._events.unsubscribe(self._sink)
        with self._lock:
            self._entries.clear()
