"""Stop a run's Ansible processes: the whole tree, workers included, matched by the run.

Why: ansible-runner only kills the process group of ``ansible-playbook``, but
ansible-core (2.19+) puts every worker in its own process group, so workers (and their
``docker exec``/``ssh`` children) would survive a cancel and go on changing hosts; and
when a server dies mid-apply its ``ansible-playbook`` is orphaned and would go on with
nobody recording it. What a module had already started on a target keeps going there:
SSH sessions end with the connection, but a process inside a container reached with
``docker exec`` runs to its own end.

It must never match processes by name (only by the run's artifact dir in their
environment, ``AWX_ISOLATED_DATA_DIR``) or signal this server's own process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import psutil

__all__ = ["kill_leftover_processes", "kill_workers"]


def kill_workers(artifact_dir: Path | None) -> None:
    """Kill this run's ansible-playbook process tree, workers included.

    ansible-runner only kills the process group of ``ansible-playbook``, but
    ansible-core (2.19+) puts every worker in its own process group, so workers
    (and their ``docker exec``/``ssh`` children) would survive a cancel and go on
    changing hosts. We stop the whole tree first (no new forks), then kill each
    process group; ansible-runner then kills the main group as usual. Processes
    are matched by the run's artifact dir in their environment, never by name.
    """
    if artifact_dir is None:
        return
    procs: list[psutil.Process] = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("AWX_ISOLATED_DATA_DIR") == str(artifact_dir):
                procs.append(proc)
    _kill_all(procs)


def kill_leftover_processes(artifacts_root: Path, ident: str) -> int:
    """Kill the Ansible processes of a run whose server died; return how many.

    When a server is killed mid-apply, its ``ansible-playbook`` and workers are
    orphaned (no longer our children) and would go on changing hosts with nobody
    recording it. At the next start, runs found ``running`` become
    ``interrupted`` and their leftover processes are stopped here, matched by the
    run's artifact dir in their environment, never by name.
    """
    artifact_dir = str(artifacts_root / ident / "artifacts" / ident)
    procs: list[psutil.Process] = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("AWX_ISOLATED_DATA_DIR") == artifact_dir:
                procs.append(proc)
    _kill_all(procs)
    return len(procs)


def _kill_all(procs: list[psutil.Process]) -> None:
    """Freeze every process (no new forks), then kill each one's process group."""
    own_group = os.getpgrp()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.suspend()
    groups: set[int] = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            groups.add(os.getpgid(proc.pid))
    for group in groups - {own_group}:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
