"""Runner event parsing on recorded data (no Ansible run): events in -> models out.

The fixtures in tests/fixtures/runner_events/ are real event streams recorded
by ``record.py`` against container hosts (names normalized). The golden part of
each fixture pins the parse; the explicit assertions below say what matters.
The real runs are in tests/integration/test_runner.py.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tailops.changes.models import RunMode, RunRequest, TaskStatus
from tailops.changes.runner import DEFAULT_INTERPRETER, EventParser, TaskInfo, build_env, diff_text
from tailops.errors import RunnerError
from tailops.redact import REDACTED

FIXTURES = Path(__file__).parent.parent / "fixtures" / "runner_events"
SCENARIOS = sorted(p.stem for p in FIXTURES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def parse(fixture: dict[str, Any], **overrides: Any) -> EventParser:
    parser = EventParser(
        RunMode(overrides.get("mode", fixture["mode"])),
        not_simulated_hint=frozenset(overrides.get("hint", fixture["not_simulated_hint"])),
        taskinfo=TaskInfo(records=overrides.get("taskinfo", fixture["taskinfo"])),
    )
    for event in fixture["events"]:
        parser.feed(event)
    return parser


def test_fixtures_exist() -> None:
    assert {"check_changes", "apply_changes", "check_statuses", "check_items"} <= set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden(name: str) -> None:
    fixture = load(name)
    parser = EventParser(
        RunMode(fixture["mode"]),
        not_simulated_hint=frozenset(fixture["not_simulated_hint"]),
        taskinfo=TaskInfo(records=fixture["taskinfo"]),
    )
    stream = [parser.feed(e) for e in fixture["events"]]
    hosts = {
        n: h.model_dump(mode="json", exclude={"tasks": {"__all__": {"duration_s"}}})
        for n, h in parser.host_results().items()
    }
    assert hosts == fixture["expected"]["hosts"]
    got_stream = [[e.kind, e.host, e.task, e.status.value if e.status else None, e.not_simulated] for e in stream if e]
    assert got_stream == fixture["expected"]["stream"]
    counters = [e.counter for e in stream if e]
    assert counters == sorted(counters)


def test_check_changes_statuses_diffs_and_not_simulated() -> None:
    hosts = parse(load("check_changes")).host_results()
    assert set(hosts) == {"host1", "host2", "unreachable1"}
    for name in ("host1", "host2"):
        host = hosts[name]
        assert host.status == "changed" and host.counts["changed"] == 3
        tasks = {t.task: t for t in host.tasks}
        assert tasks["Write greeting file"].status is TaskStatus.CHANGED
        assert tasks["Write greeting file"].diff is not None
        assert "-greeting = hello\n+greeting = world\n" in tasks["Write greeting file"].diff
        assert "tbdemo (1.0-1 => 1.1-1)" in (tasks["Install tbdemo"].diff or "")
        assert "+port = 9090" in (tasks["Set tbconf port"].diff or "")
        # hint (manifest), check_mode: false, and a command skipped by check mode
        assert {t.task for t in host.tasks if t.not_simulated} == {
            "Set tbconf port",
            "Read os-release",
            "Report uptime",
        }
        assert tasks["Report uptime"].status is TaskStatus.SKIPPED
        assert tasks["Read os-release"].status is TaskStatus.OK
    gone = hosts["unreachable1"]
    assert gone.status == "unreachable" and gone.counts["unreachable"] == 1
    assert gone.tasks[0].status is TaskStatus.UNREACHABLE and "Connection refused" in (gone.tasks[0].msg or "")


def test_without_taskinfo_only_the_skipped_command_is_flagged() -> None:
    hosts = parse(load("check_changes"), taskinfo=[], hint=[]).host_results()
    assert {t.task for t in hosts["host1"].tasks if t.not_simulated} == {"Report uptime"}


def test_apply_never_flags_not_simulated_and_matches_check() -> None:
    apply = parse(load("apply_changes")).host_results()
    check = parse(load("check_changes")).host_results()
    assert not any(t.not_simulated for h in apply.values() for t in h.tasks)
    for name in ("host1", "host2"):
        assert apply[name].changed_tasks == check[name].changed_tasks
        assert all(t.status is not TaskStatus.SKIPPED for t in apply[name].tasks)


def test_statuses_ignored_and_conditional_skips() -> None:
    hosts = parse(load("check_statuses")).host_results()
    first = {t.task: t for t in hosts["host1"].tasks}
    assert hosts["host1"].status == "failed"
    assert first["Fail but ignored"].ignored and first["Fail but ignored"].status is TaskStatus.FAILED
    assert not first["Fail on the first host"].ignored
    assert first["Skipped by condition"].status is TaskStatus.SKIPPED
    assert not first["Skipped by condition"].not_simulated  # `when: false` is not a check-mode gap
    assert hosts["host2"].status == "ok" and hosts["host2"].counts["ignored"] == 1


def test_loop_diffs_joined_and_creates_is_simulated() -> None:
    hosts = parse(load("check_items")).host_results()
    loop = hosts["host1"].tasks[0]
    assert loop.task == "Write two files" and loop.status is TaskStatus.CHANGED
    assert loop.diff is not None and "+name = alpha" in loop.diff and "+name = beta" in loop.diff
    marker = hosts["host1"].tasks[1]
    assert marker.status is TaskStatus.CHANGED and not marker.not_simulated  # creates: check mode can tell
    gone = hosts["unreachable1"].tasks[0]
    assert gone.status is TaskStatus.UNREACHABLE and "Connection refused" in (gone.msg or "")


def test_canceled_run_without_stats_uses_task_results() -> None:
    fixture = load("check_statuses")
    events = [e for e in fixture["events"] if e.get("event") != "playbook_on_stats"]
    parser = parse({**fixture, "events": events})
    assert parser.stats is None
    hosts = parser.host_results()
    assert hosts["host1"].status == "failed" and hosts["host1"].counts["ignored"] == 1
    assert hosts["host2"].status == "ok"


def _event(event: str, **event_data: Any) -> dict[str, Any]:
    return {"event": event, "counter": 1, "uuid": "u", "event_data": event_data}


@pytest.mark.parametrize(
    ("skip_msg", "action", "expected"),
    [
        ("Conditional result was False", "ansible.builtin.shell", False),
        ("Check mode is not supported for this task.", "ansible.builtin.script", True),
        ("Skipped in check mode by the module", "community.general.thing", True),
        (None, "ansible.builtin.raw", True),
        (None, "ansible.builtin.copy", False),
    ],
)
def test_skip_classification(skip_msg: str | None, action: str, expected: bool) -> None:
    records: list[dict[str, Any]] = [{"kind": "task", "uuid": "t1", "action": action, "check_mode": True}]
    if skip_msg is not None:
        records.append({"kind": "skip", "uuid": "t1", "host": "h", "msg": skip_msg})
    parser = EventParser(RunMode.CHECK, taskinfo=TaskInfo(records=records))
    parser.feed(_event("runner_on_skipped", host="h", task="T", task_uuid="t1_2", resolved_action=action))
    assert parser.host_results()["h"].tasks[0].not_simulated is expected


def test_taskinfo_reads_incrementally_and_ignores_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "taskinfo.jsonl"
    path.write_text('{"kind": "task", "uuid": "a", "check_mode": false}\n{"kind": "task", "uu')
    info = TaskInfo(path)
    assert info.task("a") == {"kind": "task", "uuid": "a", "check_mode": False}
    assert info.task("b") is None
    with path.open("a") as fh:
        fh.write('id": "b", "check_mode": true}\n')
    assert info.task("b_1") == {"kind": "task", "uuid": "b", "check_mode": True}


def test_diff_text_shapes() -> None:
    assert diff_text({}) is None
    assert diff_text({"diff": {"before": "same\n", "after": "same\n"}}) is None
    text = diff_text({"diff": {"before": {"state": "absent"}, "after": {"state": "file"}, "before_header": "/x"}})
    assert text is not None and '-    "state": "absent"' in text and '+    "state": "file"' in text
    assert text.startswith("--- /x\n+++ after\n")
    assert diff_text({"diff": [{"prepared": "pkg (1 => 2)"}]}) == "pkg (1 => 2)\n"
    assert "Binary files differ" in (diff_text({"diff": {"dst_binary": 1}}) or "")
    no_eol = diff_text({"diff": {"before": "a", "after": "b"}}) or ""
    assert "\\ No newline at end of file" in no_eol
    secret = diff_text({"diff": {"before": "", "after": "password = hunter2\n"}}) or ""
    assert "hunter2" not in secret and REDACTED in secret
    huge = diff_text({"diff": {"before": "", "after": "x\n" * 150_000}}) or ""
    assert huge.endswith("more characters]\n") and len(huge) < 210_000


def test_error_text_is_the_error_paragraph_without_file_lines() -> None:
    parser = EventParser(RunMode.CHECK)
    for line in [
        "",
        "[ERROR]: couldn't resolve module/action 'x'.",
        "Origin: /p/play.yml:6:7",
        "",
        "6     - name: secret stuff",
        "        ^ column 7",
    ]:
        parser.feed({"event": "verbose", "stdout": line})
    assert parser.error_text() == "[ERROR]: couldn't resolve module/action 'x'. Origin: /p/play.yml:6:7"


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
        taskinfo_path=tmp_path / "t.jsonl",
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
    extra = {k for k in env if not k.startswith(("ANSIBLE_", "DOCKER_", "TAILOPS_TASKINFO"))} - allowed_plain
    assert not extra


def test_build_env_defaults_keep_host_key_checking(tmp_path: Path) -> None:
    env = build_env(_request(tmp_path), ansible_cfg=tmp_path / "a.cfg", taskinfo_path=tmp_path / "t")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "ANSIBLE_ROLES_PATH" not in env


def test_extra_env_only_ansible_keys(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="ANSIBLE_"):
        build_env(
            _request(tmp_path, extra_env={"LD_PRELOAD": "/x.so"}),
            ansible_cfg=tmp_path / "a.cfg",
            taskinfo_path=tmp_path / "t",
        )


def test_request_defaults() -> None:
    req = RunRequest(playbook=Path("/p.yml"), inventory=Path("/i"), mode=RunMode.APPLY, artifacts_root=Path("/a"))
    assert req.timeout == timedelta(minutes=30) and req.forks == 20 and req.limit is None
    assert dict(req.extravars) == {} and req.not_simulated_hint == frozenset()
    assert [s.value for s in TaskStatus] == ["ok", "changed", "skipped", "failed", "unreachable"]
