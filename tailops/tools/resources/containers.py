"""``tailops://containers/{name}``: a container's state in short, and updates when it changes.

Why it exists: an agent waiting for a restart subscribes (or listens) to the container's
resource and is told when the Docker engine reports a state change, instead of polling.
The watcher reads no event stream of its own: it is a sink of the engine's one event feed
(:class:`~tailops.monitor.containers.events.ContainerEvents`, shared with the inspect cache).

What it must never do: show a container's environment (that is ``reveal_container_env``,
behind ``container:admin``), or block the event loop (the feed has its own thread; events are
handed to the loop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio.from_thread
import anyio.lowlevel

from tailops.monitor.containers import EventSink, check_name, inspect_container
from tailops.tools.resources.registry import Notify, resource

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__ = ["CONTAINER_TEMPLATE", "ContainerWatcher"]

log = logging.getLogger("tailops.tools.resources")

CONTAINER_TEMPLATE: Final = "tailops://containers/{name}"
_PREFIX: Final = CONTAINER_TEMPLATE.removesuffix("{name}")

# Engine events that can change what tailops://containers/{name} shows.
_STATE_ACTIONS: Final = frozenset(
    {
        "create",
        "start",
        "restart",
        "stop",
        "die",
        "kill",
        "oom",
        "pause",
        "unpause",
        "destroy",
        "rename",
        "update",
        "health_status",
    }
)


class ContainerWatcher:
    """Docker container events → ``notify(uri)`` for the watched container URIs.

    While at least one container resource is watched it is a sink of the engine's event
    feed, hands each matching event to the event loop (``notify`` runs there), and leaves
    the feed when the last subscription goes or the loop it reports to is gone.
    """

    def __init__(self, rt: Runtime, notify: Notify) -> None:
        self._rt = rt
        self._notify = notify
        self._lock = threading.Lock()
        self._watched: frozenset[str] = frozenset()
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._sink = EventSink(on_event=self._on_event)

    def watch(self, uris: Iterable[str]) -> None:
        """Watch exactly the container URIs in ``uris``; call on the event loop."""
        watched = frozenset(u for u in uris if u.startswith(_PREFIX))
        feed = self._rt.docker.events
        with self._lock:
            self._watched = watched
            if watched:
                self._token = anyio.lowlevel.current_token()
        if watched:
            feed.subscribe(self._sink)  # also restarts a stream that ended (engine restart)
        else:
            feed.unsubscribe(self._sink)

    def _matches(self, event: Mapping[str, Any]) -> list[str]:
        action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0].strip()
        if action not in _STATE_ACTIONS:
            return []
        actor = event.get("Actor") or {}
        names = {str((actor.get("Attributes") or {}).get("name") or "")}
        cid = str(actor.get("ID") or event.get("id") or "")
        out = []
        for uri in self._watched:
            wanted = uri.removeprefix(_PREFIX)
            if wanted in names or (len(wanted) >= 12 and cid.startswith(wanted)):
                out.append(uri)
        return out

    def _on_event(self, event: Mapping[str, Any]) -> None:
        """On the feed's thread: tell the event loop about each watched container the event touches."""
        with self._lock:
            uris = self._matches(event)
            token = self._token
        if token is None:
            return
        for uri in uris:
            try:
                anyio.from_thread.run(self._notify, uri, token=token)
            except RuntimeError:
                # The event loop we report to has shut down: nobody is left to tell.
                log.debug("container watcher stopped: event loop gone")
                self._rt.docker.events.unsubscribe(self._sink)
                return


def _names(rt: Runtime) -> list[str]:
    return rt.docker.container_names()


@resource(
    CONTAINER_TEMPLATE,
    name="container",
    title="Container state",
    description="A container's state in short: image, state, health, exit code, restarts, ports. "
    "Subscribe to be told when it changes.",
    names=_names,
    watcher=ContainerWatcher,
)
def read_container(rt: Runtime, name: str) -> dict[str, Any]:
    details = inspect_container(rt.docker, check_name(name))
    st = details.state
    return {
        "name": details.name,
        "id": details.id[:12],
        "image": details.image,
        "state": st.status,
        "running": st.running,
        "health": st.health.status if st.health else None,
        "exit_code": None if st.running else st.exit_code,
        "oom_killed": st.oom_killed,
        "error": st.error,
        "restart_count": details.restart_count,
        "restart_policy": details.restart_policy.name,
        "created": details.created,
        "started_at": st.started_at,
        "finished_at": None if st.running else st.finished_at,
        "ports": details.ports,
    }
