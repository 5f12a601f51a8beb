"""Test sessions on this machine, so one session can remove what a killed one left behind.

Every container and network a test creates carries ``tailops.test=<SESSION_ID>``, and a
session removes its own at the end. A session that is killed (a cut CI job, Ctrl-C twice, an
OOM) never gets there, and its containers stayed forever. So a session registers itself as a
file ``sessions/<SESSION_ID>`` holding its pid; at start, a session removes the containers and
networks of every session whose file is missing or whose pid is gone. A live session (another
checkout, another xdist worker) keeps its file and its pid, so it is never touched.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from tests.helpers import SESSION_ID, TEST_LABEL, testbed_cache

__all__ = ["hold", "live_sessions", "register", "registry_dir", "sweep_dead_sessions", "unregister"]


def registry_dir() -> Path:
    """Where live sessions register (one file per session id, holding its pid)."""
    return testbed_cache() / "sessions"


def register() -> None:
    """Record this session as alive (its pid)."""
    registry_dir().mkdir(parents=True, exist_ok=True)
    (registry_dir() / SESSION_ID).write_text(f"{os.getpid()}\n")


def hold() -> None:
    """Register this process for its lifetime (scripts that start labelled containers: the
    benchmarks, the fixture recorder), so a test session starting meanwhile leaves them alone."""
    import atexit

    register()
    atexit.register(unregister)


def unregister() -> None:
    with contextlib.suppress(FileNotFoundError):
        (registry_dir() / SESSION_ID).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_sessions() -> set[str]:
    """Session ids whose process still runs (stale files are removed on the way)."""
    live: set[str] = set()
    for entry in registry_dir().glob("*") if registry_dir().is_dir() else []:
        try:
            pid = int(entry.read_text().strip())
        except (OSError, ValueError):
            continue
        if _alive(pid):
            live.add(entry.name)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
    return live


def sweep_dead_sessions(client: Any) -> list[str]:
    """Remove the containers and networks of test sessions that are no longer running.

    Returns the names removed. Containers first (a network in use cannot go)."""
    import docker.errors

    live = live_sessions() | {SESSION_ID}
    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": TEST_LABEL}):
        if container.labels.get(TEST_LABEL) not in live:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True, v=True)
                removed.append(container.name)
    for network in client.networks.list(filters={"label": TEST_LABEL}):
        if (network.attrs.get("Labels") or {}).get(TEST_LABEL) not in live:
            with contextlib.suppress(docker.errors.DockerException):
                network.remove()
                removed.append(network.name)
    return removed
