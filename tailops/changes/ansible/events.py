"""ansible-runner events → :class:`~tailops.changes.models.RunEvent` progress and per-host results.

Why: ansible-runner hands over raw event dicts (``runner_on_ok``, loop items,
``playbook_on_stats``…) whose shape differs per event and per module; plans, runs and
the planned-vs-actual comparison need one typed vocabulary, and check mode needs to
know which task it could NOT simulate. ansible-runner's own events do not say that:
the ``tailops_taskinfo`` callback plugin emits what they lack (a task's explicit
``check_mode``, a command's ``creates``/``removes``, a skip's reason) as
``tailops_taskinfo`` events in the same stream, right after the event each describes;
:class:`EventParser` keeps them in a :class:`TaskInfo` and joins them by task uuid.

Pure (no I/O); fed in event
order by a job (local, or an execution node's stream) or by unit tests with recorded
events. It must never return unredacted text (messages, warnings, output, diffs) or
raise on an event it does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from tailops.changes.ansible.diffs import diff_text
from tailops.changes.models import HostResult, HostStatus, RunEvent, RunMode, TaskResult, TaskStatus
from tailops.redact import redact_text

__all__ = ["MAX_MSG_CHARS", "TASKINFO_EVENT", "EventParser", "TaskInfo"]

TASKINFO_EVENT = "tailops_taskinfo"
"""The event name (and ``event_data`` key of the record) of the ``tailops_taskinfo`` callback."""

_CMD_ACTIONS = frozenset({"command", "shell", "raw", "script"})
_RESULT_EVENTS = {
    "runner_on_ok": None,
    "runner_on_failed": TaskStatus.FAILED,
    "runner_on_skipped": TaskStatus.SKIPPED,
    "runner_on_unreachable": TaskStatus.UNREACHABLE,
}
_ITEM_EVENTS = {
    "runner_item_on_ok": None,
    "runner_item_on_failed": TaskStatus.FAILED,
    "runner_item_on_skipped": TaskStatus.SKIPPED,
}
_WARNING_EVENTS = frozenset({"warning", "deprecated", "system_warning", "error"})
MAX_MSG_CHARS = 4_000


def _msg(res: Mapping[str, Any], status: TaskStatus) -> str | None:
    msg = res.get("msg")
    items = res.get("results")
    if status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE) and isinstance(items, list):
        # A loop's own msg is "All items completed"; the reason is in the failing items.
        reasons: list[str] = []
        for item in items:
            bad = isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable"))
            if bad and item.get("msg") and str(item["msg"]) not in reasons:
                reasons.append(str(item["msg"]))
        if reasons:
            msg = reasons
    if not msg and status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE):
        for key in ("stderr", "module_stderr", "stdout", "module_stdout"):
            if res.get(key):
                msg = str(res[key]).strip().splitlines()[-5:]
                break
    if not msg:
        return None
    text = "\n".join(str(m) for m in msg) if isinstance(msg, list) else str(msg)
    text = redact_text(text.strip())
    return text[:MAX_MSG_CHARS] + ("…" if len(text) > MAX_MSG_CHARS else "")


class TaskInfo:
    """What the ``tailops_taskinfo`` callback emitted: per task uuid and per skip.

    Filled from ``tailops_taskinfo`` events by :class:`EventParser` (or built from
    recorded records in unit tests), on this controller and from a node's worker stream alike.
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] = ()) -> None:
        self.tasks: dict[str, Mapping[str, Any]] = {}
        self.skips: dict[tuple[str, str], str] = {}
        self.records: list[Mapping[str, Any]] = []
        for record in records:
            self.add(record)

    def add(self, record: Mapping[str, Any]) -> None:
        """Keep one record (``kind`` ``task`` or ``skip``)."""
        self.records.append(record)
        key = _base_uuid(str(record.get("uuid", "")))
        if record.get("kind") == "task":
            self.tasks[key] = record
        elif record.get("kind") == "skip":
            self.skips[(key, str(record.get("host", "")))] = str(record.get("msg") or "")

    def task(self, task_uuid: str | None) -> Mapping[str, Any] | None:
        if not task_uuid:
            return None
        return self.tasks.get(_base_uuid(task_uuid))

    def skip_msg(self, task_uuid: str | None, host: str) -> str | None:
        if not task_uuid:
            return None
        return self.skips.get((_base_uuid(task_uuid), host))


def _base_uuid(value: str) -> str:
    # awx_display suffixes repeated task uuids with "_N" (free strategy, serial).
    return value.split("_", 1)[0]


class EventParser:
    """Turns ansible-runner event dicts into :class:`RunEvent` and per-host results.

    Fed in event order by a job, or by unit tests with recorded events;
    ``tailops_taskinfo`` events go to ``taskinfo``.
    """

    def __init__(
        self,
        mode: RunMode,
        *,
        not_simulated_hint: frozenset[str] = frozenset(),
        taskinfo: TaskInfo | None = None,
    ) -> None:
        self.mode = mode
        self.hint = not_simulated_hint
        self.taskinfo = taskinfo or TaskInfo()
        self.tasks: dict[str, list[TaskResult]] = {}
        # Skipped results whose not_simulated flag is re-decided at the end, when the
        # task info is complete (the callback emits a skip's reason just after the skip's event).
        self._recheck: list[tuple[str, int, dict[str, Any]]] = []
        self.stats: dict[str, dict[str, int]] | None = None
        self.warnings: list[str] = []
        self.output_tail: list[str] = []
        self.playbook_started = False

    # -- classification ---------------------------------------------------------
    def _not_simulated(self, ed: Mapping[str, Any], task: str, status: TaskStatus) -> bool:
        if self.mode is not RunMode.CHECK:
            return False
        if task in self.hint:
            return True
        task_uuid = ed.get("task_uuid")
        info = self.taskinfo.task(task_uuid)
        if info is not None and info.get("check_mode") is False:
            return True  # ran for real even in check mode
        if status is not TaskStatus.SKIPPED:
            return False
        skip_msg = (self.taskinfo.skip_msg(task_uuid, str(ed.get("host"))) or "").strip()
        if skip_msg.startswith("Conditional result was False"):
            return False
        if "check mode" in skip_msg.lower():
            return True
        action = str(ed.get("resolved_action") or ed.get("task_action") or "")
        short = action.rsplit(".", 1)[-1]
        creates_removes = bool(info and info.get("creates_removes"))
        return short in _CMD_ACTIONS and not creates_removes

    def _task_result(self, event: str, ed: Mapping[str, Any]) -> TaskResult:
        res = ed.get("res") if isinstance(ed.get("res"), Mapping) else {}
        assert isinstance(res, Mapping)
        fixed = _RESULT_EVENTS[event]
        changed = bool(res.get("changed"))
        status = (TaskStatus.CHANGED if changed else TaskStatus.OK) if fixed is None else fixed
        if status in (TaskStatus.SKIPPED, TaskStatus.UNREACHABLE):
            changed = False
        task = str(ed.get("task") or ed.get("task_action") or "?")
        duration = ed.get("duration")
        return TaskResult(
            host=str(ed.get("host")),
            task=task,
            action=str(ed.get("resolved_action") or ed.get("task_action") or "") or None,
            role=(str(ed["role"]) if ed.get("role") else None),
            status=status,
            changed=changed,
            diff=diff_text(res),
            msg=_msg(res, status),
            not_simulated=self._not_simulated(ed, task, status),
            ignored=bool(status is TaskStatus.FAILED and ed.get("ignore_errors")),
            duration_s=float(duration) if isinstance(duration, int | float) else None,
        )

    # -- feeding ------------------------------------------------------------------
    def feed(self, raw: Mapping[str, Any]) -> RunEvent | None:
        """Consume one event; returns the progress event to stream (or None)."""
        event = str(raw.get("event") or "")
        ed = raw.get("event_data") if isinstance(raw.get("event_data"), Mapping) else {}
        assert isinstance(ed, Mapping)
        counter = int(raw.get("counter") or 0)
        created = _parse_time(raw.get("created"))
        common: dict[str, Any] = {"counter": counter, "created": created}
        if event == TASKINFO_EVENT:
            record = ed.get(TASKINFO_EVENT)
            if isinstance(record, Mapping):
                self.taskinfo.add(record)
            return None
        if event == "verbose":
            # Blank lines are kept: they end an error paragraph (see error_text).
            self.output_tail = [*self.output_tail[-59:], redact_text(str(raw.get("stdout") or "").rstrip())]
            return None
        if event in _WARNING_EVENTS:
            text = redact_text(str(raw.get("stdout") or "").strip())
            if text:
                self.warnings.append(text[:MAX_MSG_CHARS])
                self.output_tail = [*self.output_tail[-59:], text]
            return RunEvent(kind="warning", msg=text or None, **common)
        if event == "playbook_on_start":
            self.playbook_started = True
            return RunEvent(kind="playbook_start", **common)
        if event == "playbook_on_play_start":
            return RunEvent(kind="play_start", play=_opt(ed.get("play")), **common)
        if event == "playbook_on_task_start":
            return RunEvent(
                kind="task_start",
                play=_opt(ed.get("play")),
                task=_opt(ed.get("task")),
                action=_opt(ed.get("resolved_action") or ed.get("task_action")),
                **common,
            )
        if event == "runner_on_start":
            return RunEvent(kind="host_task_start", host=_opt(ed.get("host")), task=_opt(ed.get("task")), **common)
        if event in _RESULT_EVENTS:
            result = self._task_result(event, ed)
            host_tasks = self.tasks.setdefault(result.host, [])
            host_tasks.append(result)
            if result.status is TaskStatus.SKIPPED and self.mode is RunMode.CHECK:
                keep = ("host", "task_uuid", "resolved_action", "task_action")
                self._recheck.append((result.host, len(host_tasks) - 1, {k: ed.get(k) for k in keep}))
            return RunEvent(
                kind="task_result",
                host=result.host,
                task=result.task,
                play=_opt(ed.get("play")),
                action=result.action,
                status=result.status,
                changed=result.changed,
                msg=result.msg,
                diff=result.diff,
                not_simulated=result.not_simulated,
                **common,
            )
        if event in _ITEM_EVENTS:
            res = ed.get("res") if isinstance(ed.get("res"), Mapping) else {}
            assert isinstance(res, Mapping)
            fixed = _ITEM_EVENTS[event]
            status = fixed or (TaskStatus.CHANGED if res.get("changed") else TaskStatus.OK)
            return RunEvent(
                kind="item_result",
                host=_opt(ed.get("host")),
                task=_opt(ed.get("task")),
                status=status,
                changed=status is TaskStatus.CHANGED,
                msg=_msg(res, status),
                **common,
            )
        if event == "playbook_on_stats":
            self.stats = {
                key: {str(h): int(n) for h, n in (ed.get(key) or {}).items()}
                for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")
                if isinstance(ed.get(key) or {}, Mapping)
            }
            return RunEvent(kind="stats", **common)
        return None

    # -- results ------------------------------------------------------------------
    def host_results(self) -> dict[str, HostResult]:
        """Per-host results; call once the run is over (skips re-decided on the complete task info)."""
        for host, index, ed in self._recheck:
            task = self.tasks[host][index]
            flag = self._not_simulated(ed, task.task, task.status)
            if flag != task.not_simulated:
                self.tasks[host][index] = task.model_copy(update={"not_simulated": flag})
        self._recheck.clear()
        names = list(self.tasks)
        if self.stats:
            for key in ("processed", "ok", "dark", "failures"):
                names += [h for h in self.stats.get(key, {}) if h not in names]
        out: dict[str, HostResult] = {}
        for name in names:
            tasks = self.tasks.get(name, [])
            counts = self._counts(name, tasks)
            status: HostStatus
            if counts["unreachable"]:
                status = "unreachable"
            elif counts["failed"]:
                status = "failed"
            elif counts["changed"]:
                status = "changed"
            else:
                status = "ok"
            out[name] = HostResult(host=name, status=status, tasks=tasks, counts=counts)
        return out

    def _counts(self, host: str, tasks: list[TaskResult]) -> dict[str, int]:
        if self.stats is not None:
            s = self.stats

            def get(key: str) -> int:
                return s.get(key, {}).get(host, 0)

            return {
                "ok": get("ok"),
                "changed": get("changed"),
                "failed": get("failures"),
                "unreachable": get("dark"),
                "skipped": get("skipped"),
                "rescued": get("rescued"),
                "ignored": get("ignored"),
            }
        counts = dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"), 0)
        for t in tasks:
            if t.status is TaskStatus.FAILED:
                counts["ignored" if t.ignored else "failed"] += 1
            elif t.status is TaskStatus.UNREACHABLE:
                counts["unreachable"] += 1
            elif t.status is TaskStatus.SKIPPED:
                counts["skipped"] += 1
            else:
                counts["ok"] += 1
                counts["changed"] += int(t.changed)
        return counts

    def error_text(self) -> str:
        """Why Ansible stopped: the first ERROR paragraph (no quoted file lines), redacted and short."""
        lines = [ln.rstrip() for chunk in self.output_tail for ln in (chunk.splitlines() or [""])]
        start = next((i for i, ln in enumerate(lines) if "ERROR" in ln), None)
        if start is None:
            picked = [ln for ln in lines if ln.strip()][-3:]
        else:
            picked = []
            for ln in lines[start : start + 6]:
                if not ln.strip():
                    break
                picked.append(ln.strip())
        text = " ".join(picked)
        return text[:1500] if text else "no output"


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
