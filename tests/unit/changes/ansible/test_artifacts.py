"""A run's private dir: 0700/0600, one dir per ident, nothing secret left after the run, old runs pruned."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tailops.changes.ansible.artifacts import make_run_dirs, prune, scrub, write_private
from tailops.changes.ansible.environment import ANSIBLE_CFG
from tailops.errors import RunnerError
from tailops.redact import REDACTED


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_run_dir_is_private_and_has_its_own_ansible_cfg(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    dirs = make_run_dirs(root, "r1")
    assert dirs.private == root / "r1" and dirs.artifact_dir == root / "r1" / "artifacts" / "r1"
    for d in (root, dirs.private, dirs.artifact_dir):
        assert _mode(d) == 0o700, d
    assert dirs.ansible_cfg.read_text() == ANSIBLE_CFG and _mode(dirs.ansible_cfg) == 0o600
    assert "internal_poll_interval = 0.01" in ANSIBLE_CFG
    assert sorted(p.name for p in dirs.private.iterdir()) == ["ansible.cfg", "artifacts"]


def test_an_existing_ident_is_refused(tmp_path: Path) -> None:
    make_run_dirs(tmp_path, "r1")
    with pytest.raises(RunnerError, match="already exists"):
        make_run_dirs(tmp_path, "r1")


def test_write_private_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError):
        write_private(tmp_path / "link", "overwritten")
    assert target.read_text() == "keep"


def test_scrub_leaves_no_environment_settings_or_partials_and_redacts_stdout(tmp_path: Path) -> None:
    dirs = make_run_dirs(tmp_path, "r1")
    (dirs.private / "env").mkdir()
    write_private(dirs.private / "env" / "extravars", '{"password": "hunter2"}')
    write_private(dirs.artifact_dir / "command", '{"env": {"SECRET": "x"}}')
    events = dirs.artifact_dir / "job_events"
    events.mkdir()
    write_private(events / "1-u-partial.json", "{}")
    write_private(events / "1-u.json", "{}")
    write_private(dirs.artifact_dir / "stdout", "ok\npassword = hunter2\n")
    scrub(dirs.private, dirs.artifact_dir)
    assert not (dirs.private / "env").exists()
    assert not (dirs.artifact_dir / "command").exists() and not dirs.ansible_cfg.exists()
    assert sorted(p.name for p in events.iterdir()) == ["1-u.json"]
    stdout = (dirs.artifact_dir / "stdout").read_text()
    assert "hunter2" not in stdout and REDACTED in stdout


def test_prune_keeps_the_newest_run_dirs(tmp_path: Path) -> None:
    now = time.time()
    for n in range(5):
        d = tmp_path / f"run{n}"
        d.mkdir()
        os.utime(d, (now - 100 + n, now - 100 + n))
    (tmp_path / ".lock").mkdir()  # not a run dir
    prune(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "run3", "run4"]
    prune(tmp_path / "missing", 2)  # nothing to prune is no error
