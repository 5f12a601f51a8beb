"""The environment an Ansible child gets: allow-listed, minimal, no secret of the server's env."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tailops.changes.ansible.environment import DEFAULT_INTERPRETER, build_env
from tailops.changes.models import RunMode, RunRequest
from tailops.errors import RunnerError


def _request(tmp_path: Path, **kw: Any) -> RunRequest:
    return RunRequest(
        playbook=tmp_path / "p.yml", inventory=tmp_path / "i.ini", mode=RunMode.CHECK, artifacts_root=tmp_path, **kw
    )


def test_build_env_is_minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOPS_CANARY_TOKEN", "canary-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "json")  # ambient Ansible settings are ignored too
    env = build_env(
        _request(tmp_path, roles_path=tmp_path / "roles", extra_env={"ANSIBLE_HOST_KEY_CHECKING": "False"}),
        ansible_cfg=tmp_path / "ansible.cfg",
    )
    assert "canary-secret" not in json.dumps(env) and "aws-secret" not in json.dumps(env)
    assert "ANSIBLE_STDOUT_CALLBACK" not in env
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.prefix) / "bin")
    assert env["ANSIBLE_PYTHON_INTERPRETER"] == DEFAULT_INTERPRETER == "/usr/bin/python3"
    assert env["ANSIBLE_PIPELINING"] == "True" and env["ANSIBLE_NOCOLOR"] == "1"
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "False"  # the test-only override
    assert env["ANSIBLE_ROLES_PATH"] == str(tmp_path / "roles")
    assert env["ANSIBLE_CONFIG"] == str(tmp_path / "ansible.cfg")
    assert env["LANG"] == "C.UTF-8"
    allowed_plain = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSH_AUTH_SOCK", "USER", "LOGNAME", "TZ"}
    extra = {k for k in env if not k.startswith(("ANSIBLE_", "DOCKER_"))} - allowed_plain
    assert not extra


def test_build_env_defaults_keep_host_key_checking(tmp_path: Path) -> None:
    env = build_env(_request(tmp_path), ansible_cfg=tmp_path / "a.cfg")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "ANSIBLE_ROLES_PATH" not in env


def test_extra_env_only_ansible_keys(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="ANSIBLE_"):
        build_env(
            _request(tmp_path, extra_env={"LD_PRELOAD": "/x.so"}),
            ansible_cfg=tmp_path / "a.cfg",
        )
