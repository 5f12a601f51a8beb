"""A run's ``limit`` is a host pattern and never an option of ansible-playbook.

issue 13: ``check_limit`` let a value starting with ``-`` through, and the runner
handed the limit to ansible-runner, which puts ``--limit`` and the value on the
argv as two words — so ``-e@/path`` or ``--become`` would have been read as options.
Both layers are checked here: the planner refuses the value, and the runner (the
last door) refuses it too and passes any limit as one ``--limit=VALUE`` word.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tailops.changes.ansible.job import check_request, command_line
from tailops.changes.models import RunMode, RunRequest
from tailops.changes.planner import check_limit
from tailops.errors import InvalidInput, RunnerError

OPTION_LIKE = ["-e@/etc/shadow", "--become", "-all", "--limit=x", "-", "--", "-vvvv"]


@pytest.mark.parametrize("limit", ["web1", "web1,web2", "targets:!db1", "web[0:3]", "~web.*", "all:&prod", "a-b"])
def test_host_patterns_pass(limit: str) -> None:
    assert check_limit(limit) == limit
    assert check_limit(f"  {limit} ") == limit


@pytest.mark.parametrize("limit", [*OPTION_LIKE, "@hosts.txt", "a b", "a'b", 'a"b', "x" * 513])
def test_option_like_and_file_limits_are_refused(limit: str) -> None:
    with pytest.raises(InvalidInput, match="is not a host pattern"):
        check_limit(limit)


def test_empty_limit_means_no_limit() -> None:
    assert check_limit(None) is None
    assert check_limit("   ") is None


def _request(tmp_path: Path, limit: str | None, mode: RunMode = RunMode.CHECK) -> RunRequest:
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: all\n  tasks: []\n")
    inventory = tmp_path / "inv.ini"
    inventory.write_text("localhost\n")
    return RunRequest(
        playbook=playbook.absolute(),
        inventory=inventory.absolute(),
        mode=mode,
        artifacts_root=(tmp_path / "runs").absolute(),
        limit=limit,
    )


def test_runner_passes_the_limit_as_one_word(tmp_path: Path) -> None:
    assert shlex.split(command_line(_request(tmp_path, None))) == ["--check", "--diff"]
    assert shlex.split(command_line(_request(tmp_path, None, RunMode.APPLY))) == ["--diff"]
    words = shlex.split(command_line(_request(tmp_path, "targets:!db1,web[0:3]")))
    assert words == ["--check", "--diff", "--limit=targets:!db1,web[0:3]"]


@pytest.mark.parametrize("limit", [*OPTION_LIKE, "@hosts.txt", "", "a b"])
def test_runner_refuses_an_option_like_limit_even_if_a_caller_skips_check_limit(tmp_path: Path, limit: str) -> None:
    with pytest.raises(RunnerError, match="not a host pattern"):
        check_request(_request(tmp_path, limit))
