"""A run's Ansible processes are found by the run (its artifact dir in their env), never by name.

Real processes: python ``sleep`` children carrying a run's ``AWX_ISOLATED_DATA_DIR`` (as
ansible-runner sets it), each in its own process group like ansible-core's workers.
(``Popen`` returns once the child has exec'd, so its environment is already the new one.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tailops.changes.ansible.processes import kill_leftover_processes, kill_workers

Spawn = Callable[[Path], subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(artifact_dir: Path) -> subprocess.Popen[bytes]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWX_ISOLATED_DATA_DIR": str(artifact_dir)}
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def _ended(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_leftovers_of_a_crashed_run_are_killed_and_only_those(tmp_path: Path, spawn: Spawn) -> None:
    ident = "20260101T000000-abcd1234"
    mine = [spawn(tmp_path / ident / "artifacts" / ident) for _ in range(2)]
    other = spawn(tmp_path / "other" / "artifacts" / "other")
    assert kill_leftover_processes(tmp_path, ident) == 2
    assert all(_ended(p) for p in mine)
    assert other.poll() is None  # another run's process is untouched
    assert kill_leftover_processes(tmp_path, ident) == 0


def test_cancel_kills_the_runs_own_workers_and_only_those(tmp_path: Path, spawn: Spawn) -> None:
    artifact_dir = tmp_path / "run" / "artifacts" / "run"
    worker = spawn(artifact_dir)
    bystander = spawn(tmp_path / "elsewhere")
    kill_workers(artifact_dir)
    assert _ended(worker)
    assert bystander.poll() is None
    kill_workers(None)  # before ansible-runner prepared the run: nothing to do, no error
    assert bystander.poll() is None
