"""Event parsing on recorded data (no Ansible run): ansible-runner events in -> models out.

The fixtures in tests/fixtures/runner_events/ are real event streams recorded
by ``record.py`` against container hosts (names normalized). The golden part of
each fixture pins the parse; the explicit assertions below say what matters.
The real runs are in tests/integration/test_runner.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tailops.changes.ansible.events import TASKINFO_EVENT, EventParser, TaskInfo
from tailops.changes.models import RunMode, TaskStatus
from tests.helpers import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "runner_events"
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


def _in_stream(fixture: dict[str, Any]) -> list[dict[str, Any]]:
    """The fixture's events with its task-info records put back where the callback emits them:
    a task's record right after its ``playbook_on_task_start``, a skip's right after the skip."""

    def base(value: Any) -> str:
        return str(value or "").split("_", 1)[0]

    pending = list(fixture["taskinfo"])
    out: list[dict[str, Any]] = []
    for event in fixture["events"]:
        out.append(event)
        ed = event.get("event_data") or {}
        for record in list(pending):
            task_start = event["event"] == "playbook_on_task_start" and record["kind"] == "task"
            skip = event["event"] == "runner_on_skipped" and record["kind"] == "skip"
            if (task_start and base(ed.get("task_uuid") or event.get("uuid")) == record["uuid"]) or (
                skip and base(ed.get("task_uuid")) == record["uuid"] and ed.get("host") == record["host"]
            ):
                out.append(
                    {"event": TASKINFO_EVENT, "counter": event.get("counter"), "event_data": {TASKINFO_EVENT: record}}
                )
                pending.remove(record)
    assert pending == [], f"records with no event to follow: {pending}"
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_task_info_events_in_the_stream_give_the_same_results(name: str) -> None:
    """What the callback emits in the stream joins exactly as the recorded task info does."""
    fixture = load(name)
    parser = parse({**fixture, "events": _in_stream(fixture)}, taskinfo=[])
    hosts = {
        n: h.model_dump(mode="json", exclude={"tasks": {"__all__": {"duration_s"}}})
        for n, h in parser.host_results().items()
    }
    assert hosts == fixture["expected"]["hosts"]


def test_a_skip_reason_arriving_after_the_skip_still_decides_it() -> None:
    parser = EventParser(RunMode.CHECK)
    task = {"kind": "task", "uuid": "t1", "action": "ansible.builtin.shell", "check_mode": None}
    parser.feed({"event": TASKINFO_EVENT, "event_data": {TASKINFO_EVENT: task}})
    skipped = _event("runner_on_skipped", host="h", task="T", task_uuid="t1", resolved_action="ansible.builtin.shell")
    assert parser.feed(skipped) is not None
    reason = {"kind": "skip", "uuid": "t1", "host": "h", "msg": "Conditional result was False"}
    assert parser.feed({"event": TASKINFO_EVENT, "event_data": {TASKINFO_EVENT: reason}}) is None
    # a skipped shell task is "not simulated" unless its reason says it was a condition
    assert parser.host_results()["h"].tasks[0].not_simulated is False
