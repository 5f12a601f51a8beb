"""The one adapter between tailops and ansible-runner.

Why: the planner and the executor must run playbooks the same way every time —
absolute paths, a controlled environment, a private 0700 artifact dir, results
per host and per task with unified diffs, progress as it happens, cancellation,
and errors from our own hierarchy. ansible-runner gives kwargs, status strings,
raw event dicts, a polled ``cancel_callback`` and an artifact dir that can hold
the whole environment; this module hides all of that behind
:func:`run_playbook` (a typed :class:`~tailops.changes.models.RunRequest` in, a
:class:`~tailops.changes.models.RunResult` out, :class:`RunEvent` progress).

It is the ONLY module in tailops that imports ``ansible_runner``. It must never:
pass the server's own environment to Ansible (only an allow-listed minimal one:
a secret in the server's env cannot reach a playbook or the artifacts), put
extravars on the command line, leave ``command``/``env`` files or unredacted
events in the artifacts dir, treat an unreachable host as an exception, or let
an ansible-runner exception escape (they become
:class:`~tailops.errors.RunnerError`).

Environment policy (what ``ansible-playbook`` sees):

* ``PATH``: this interpreter's bin dir (the venv: ``ansible-playbook``) first,
  then the server's PATH (the ``docker`` CLI for the docker connection);
  ``HOME``, ``LANG``/``LC_ALL=C.UTF-8``, and a short allow-list of non-secret
  locations (``TMPDIR``, ``SSH_AUTH_SOCK``, ``DOCKER_HOST``…).
* ``ANSIBLE_CONFIG`` points at an empty file in the run's private dir, so no
  ambient ``ansible.cfg`` (cwd, ``~``, ``/etc/ansible``) changes behaviour;
  settings come from ``ANSIBLE_*`` variables: pipelining on, host key checking
  on, no colour, no retry files, args never echoed, unparsable inventory fatal,
  collections only from the installed ``ansible`` package (what the catalog
  lock pins), roles only from ``RunRequest.roles_path``.
* Interpreter: ``ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3`` is the default
  for every host (no discovery, no warning); an inventory's
  ``ansible_python_interpreter`` host/group var overrides it (e.g. localhost with
  the venv python). It is deliberately not an extravar, which would override
  the inventory too.
* ``RunRequest.extra_env`` may add ``ANSIBLE_*`` keys only (tests use it for
  ``ANSIBLE_HOST_KEY_CHECKING=False``).

Cancel and timeout: both go through ansible-runner's ``cancel_callback``
(polled every ``_POLL_S``) and kill the whole ``ansible-playbook`` tree,
workers included (see :func:`_kill_workers`). What a module had already started
on a target keeps going there: SSH sessions end with the connection, but a
process inside a container reached with ``docker exec`` runs to its own end.
Container env values (which ``reveal_container_env`` keeps behind ``container:admin``)
are hidden in every event before it is parsed or stored, and in ``stdout``
(:mod:`tailops.changes.envmask`): plans and runs are readable with ``readonly``.
Artifacts: ``<artifacts_root>/<ident>/`` (0700) keeps redacted job events,
``stdout`` (redacted), ``status``, ``rc`` and the task-info records; the newest
``keep_artifacts`` run dirs are kept.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import psutil

from tailops.changes import ansible_plugins
from tailops.changes.envmask import EnvMasker
from tailops.changes.models import (
    HostResult,
    HostStatus,
    RunEvent,
    RunMode,
    RunRequest,
    RunResult,
    RunStatus,
    TaskResult,
    TaskStatus,
)
from tailops.errors import RunnerError
from tailops.redact import redact, redact_text

__all__ = [
    "DEFAULT_INTERPRETER",
    "EventParser",
    "TaskInfo",
    "build_env",
    "diff_text",
    "kill_leftover_processes",
    "run_playbook",
]

log = logging.getLogger("tailops.changes.runner")

DEFAULT_INTERPRETER = "/usr/bin/python3"
_PASS_THROUGH = (
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CONTEXT",
    "USER",
    "LOGNAME",
    "TZ",
)
_FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Keys ansible-runner itself adds to the child env in prepare(); everything else
# it merged in from os.environ is dropped again.
_RUNNER_KEYS = frozenset(
    {
        "ANSIBLE_CALLBACK_PLUGINS",
        "ANSIBLE_STDOUT_CALLBACK",
        "ANSIBLE_RETRY_FILES_ENABLED",
        "ANSIBLE_HOST_KEY_CHECKING",
        "AWX_ISOLATED_DATA_DIR",
        "ANSIBLE_ROLES_PATH",
        "RUNNER_OMIT_EVENTS",
        "RUNNER_ONLY_FAILED_EVENTS",
    }
)
_IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
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
_MAX_DIFF_CHARS = 200_000
_MAX_MSG_CHARS = 4_000
_POLL_S = 0.2  # how often ansible-runner checks cancel/timeout while Ansible is quiet


# --------------------------------------------------------------------------- diffs
def _side_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, indent=4, sort_keys=True, default=str) + "\n"


def _one_diff(entry: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if entry.get("dst_binary") or entry.get("src_binary"):
        parts.append("Binary files differ\n")
    if entry.get("dst_larger"):
        parts.append(f"diff skipped: destination file is larger than {entry['dst_larger']} bytes\n")
    if entry.get("src_larger"):
        parts.append(f"diff skipped: source file is larger than {entry['src_larger']} bytes\n")
    if "before" in entry or "after" in entry:
        before, after = _side_text(entry.get("before")), _side_text(entry.get("after"))
        if before != after:
            lines = difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=str(entry.get("before_header") or "before"),
                tofile=str(entry.get("after_header") or "after"),
            )
            text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
            parts.append(text)
    prepared = entry.get("prepared")
    if prepared:
        text = str(prepared)
        parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)


def diff_text(res: Mapping[str, Any]) -> str | None:
    """Unified diff text from a task result's ``diff`` (and its loop items' diffs).

    ``before``/``after`` become a ``difflib`` unified diff (dicts are rendered as
    sorted JSON first, as Ansible's own callback does); ``prepared`` is kept as
    the module wrote it. None when the result carries no difference.
    """
    entries: list[Mapping[str, Any]] = []

    def collect(diff: Any) -> None:
        if isinstance(diff, Mapping):
            entries.append(diff)
        elif isinstance(diff, list):
            entries.extend(d for d in diff if isinstance(d, Mapping))

    collect(res.get("diff"))
    results = res.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, Mapping):
                collect(item.get("diff"))
    text = "".join(_one_diff(e) for e in entries)
    if not text:
        return None
    text = redact_text(text)
    if len(text) > _MAX_DIFF_CHARS:
        text = text[:_MAX_DIFF_CHARS] + f"\n[diff truncated: {len(text) - _MAX_DIFF_CHARS} more characters]\n"
    return text


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
    return text[:_MAX_MSG_CHARS] + ("…" if len(text) > _MAX_MSG_CHARS else "")


# --------------------------------------------------------------------------- task info
class TaskInfo:
    """What the ``tailops_taskinfo`` callback recorded: per task uuid and per skip.

    Read incrementally from the JSON-lines file while the run goes on, or built
    from recorded records (unit tests).
    """

    def __init__(self, path: Path | None = None, records: Iterable[Mapping[str, Any]] = ()) -> None:
        self.path = path
        self._offset = 0
        self.tasks: dict[str, Mapping[str, Any]] = {}
        self.skips: dict[tuple[str, str], str] = {}
        self.records: list[Mapping[str, Any]] = []
        for record in records:
            self._add(record)

    def _add(self, record: Mapping[str, Any]) -> None:
        self.records.append(record)
        key = _base_uuid(str(record.get("uuid", "")))
        if record.get("kind") == "task":
            self.tasks[key] = record
        elif record.get("kind") == "skip":
            self.skips[(key, str(record.get("host", "")))] = str(record.get("msg") or "")

    def refresh(self) -> None:
        if self.path is None:
            return
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self._offset += end + 1
        for line in data[: end + 1].splitlines():
            with contextlib.suppress(ValueError):
                self._add(json.loads(line))

    def task(self, task_uuid: str | None) -> Mapping[str, Any] | None:
        if not task_uuid:
            return None
        key = _base_uuid(task_uuid)
        if key not in self.tasks:
            self.refresh()
        return self.tasks.get(key)

    def skip_msg(self, task_uuid: str | None, host: str) -> str | None:
        if not task_uuid:
            return None
        key = (_base_uuid(task_uuid), host)
        if key not in self.skips:
            self.refresh()
        return self.skips.get(key)


def _base_uuid(value: str) -> str:
    # awx_display suffixes repeated task uuids with "_N" (free strategy, serial).
    return value.split("_", 1)[0]


# --------------------------------------------------------------------------- events -> models
class EventParser:
    """Turns ansible-runner event dicts into :class:`RunEvent` and per-host results.

    Pure: no I/O except through ``taskinfo``. Fed in event order by the adapter,
    or by unit tests with recorded events.
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
        # taskinfo file is complete (the callback writes skip reasons just after the event).
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
        if event == "verbose":
            # Blank lines are kept: they end an error paragraph (see error_text).
            self.output_tail = [*self.output_tail[-59:], redact_text(str(raw.get("stdout") or "").rstrip())]
            return None
        if event in _WARNING_EVENTS:
            text = redact_text(str(raw.get("stdout") or "").strip())
            if text:
                self.warnings.append(text[:_MAX_MSG_CHARS])
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
        """Per-host results; call once the run is over (re-reads the complete taskinfo)."""
        self.taskinfo.refresh()
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


# --------------------------------------------------------------------------- environment
def _venv_bin() -> str:
    candidate = Path(sys.prefix) / "bin"
    if (candidate / "ansible-playbook").exists():
        return str(candidate)
    return str(Path(sys.executable).parent)


def build_env(req: RunRequest, *, ansible_cfg: Path, taskinfo_path: Path) -> dict[str, str]:
    """The complete, minimal environment of the ``ansible-playbook`` child."""
    bad = sorted(k for k in req.extra_env if not k.startswith("ANSIBLE_"))
    if bad:
        raise RunnerError(
            f"extra_env may only set ANSIBLE_* settings, not {', '.join(bad)}.",
            hint="Pass values a playbook needs as validated parameters (extravars).",
        )
    path_parts = [_venv_bin()]
    for part in (os.environ.get("PATH") or _FALLBACK_PATH).split(os.pathsep) + _FALLBACK_PATH.split(os.pathsep):
        if part and part not in path_parts:
            path_parts.append(part)
    env = {
        "PATH": os.pathsep.join(path_parts),
        "HOME": os.environ.get("HOME") or str(Path.home()),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update({k: os.environ[k] for k in _PASS_THROUGH if os.environ.get(k)})
    env.update(
        {
            "ANSIBLE_CONFIG": str(ansible_cfg),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PYTHON_INTERPRETER": DEFAULT_INTERPRETER,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_DISPLAY_ARGS_TO_STDOUT": "False",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
            "ANSIBLE_COLLECTIONS_PATH": sysconfig.get_paths()["purelib"],
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_CALLBACK_PLUGINS": str(Path(ansible_plugins.__file__).parent),
            "ANSIBLE_CALLBACKS_ENABLED": "tailops_taskinfo",
            "TAILOPS_TASKINFO_PATH": str(taskinfo_path),
        }
    )
    if req.roles_path is not None:
        env["ANSIBLE_ROLES_PATH"] = str(req.roles_path)
    env.update({k: str(v) for k, v in req.extra_env.items()})
    return env


# --------------------------------------------------------------------------- artifacts
def _secure_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _scrub(private: Path, artifact_dir: Path, masker: EnvMasker | None = None) -> None:
    """Remove what may hold secrets (command/env/extravars/partials); redact stdout and hide
    the container env values the run's events carried (``masker``) in it."""
    for victim in (artifact_dir / "command", private / "ansible.cfg"):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()
    shutil.rmtree(private / "env", ignore_errors=True)
    events = artifact_dir / "job_events"
    if events.is_dir():
        for partial in events.glob("*-partial.json*"):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    for name in ("stdout", "stderr"):
        f = artifact_dir / name
        if f.is_file():
            text = f.read_text(encoding="utf-8", errors="replace")
            cleaned = redact_text(text)
            if masker is not None:
                cleaned = masker.mask_text(cleaned)
            if cleaned != text:
                _write_private(f, cleaned)


def _prune(root: Path, keep: int) -> None:
    try:
        dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except FileNotFoundError:
        return
    dirs.sort(key=lambda p: p.stat().st_mtime)
    for old in dirs[: max(0, len(dirs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _check_request(req: RunRequest) -> str:
    for label, path in (
        ("playbook", req.playbook),
        ("inventory", req.inventory),
        ("artifacts_root", req.artifacts_root),
    ):
        if not path.is_absolute():
            raise RunnerError(f"The {label} path {path} is relative.", hint="Pass an absolute path.")
    if not req.playbook.is_file():
        raise RunnerError(
            f"Playbook {req.playbook} does not exist or is not a file.",
            hint="Run `tailops playbooks verify` and check the catalog directory.",
        )
    if not req.inventory.exists():
        raise RunnerError(
            f"Inventory {req.inventory} does not exist.",
            hint="Set changes.inventory to an existing inventory file or directory.",
        )
    if req.roles_path is not None and not req.roles_path.is_absolute():
        raise RunnerError(f"The roles path {req.roles_path} is relative.", hint="Pass an absolute path.")
    if req.forks < 1:
        raise RunnerError(f"forks must be at least 1, not {req.forks}.")
    if req.limit is not None and (not req.limit or req.limit[0] in "-@" or any(c.isspace() for c in req.limit)):
        raise RunnerError(
            f"limit {req.limit[:80]!r} is not a host pattern (empty, starts with '-' or '@', or has whitespace).",
            hint="Pass host and group names, e.g. web1,web2 or 'targets:!db1'.",
        )
    ident = req.ident or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    if not _IDENT_RE.match(ident):
        raise RunnerError(
            f"Run ident {ident!r} is not allowed.", hint="Use letters, digits, '.', '_' and '-' (at most 80)."
        )
    return ident


def _cmdline(req: RunRequest) -> str:
    """``--check --diff`` (or ``--diff``) plus the limit as ONE ``--limit=VALUE`` word.

    Never ansible-runner's ``limit=`` (it appends ``--limit`` and the value as two
    words, so a value like ``-e@file`` would be read as an option of its own).
    """
    words = ["--check", "--diff"] if req.mode is RunMode.CHECK else ["--diff"]
    if req.limit is not None:
        words.append(f"--limit={req.limit}")
    return " ".join(shlex.quote(w) for w in words)


# --------------------------------------------------------------------------- the run
def _kill_workers(artifact_dir: Path | None) -> None:
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


class _Job:
    """One run inside the worker thread: prepare, run, scrub, build the result."""

    def __init__(self, req: RunRequest, ident: str, emit: Callable[[RunEvent], None]) -> None:
        self.req = req
        self.ident = ident
        self.emit = emit
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.deadline: float | None = None
        self.timed_out = False
        self.killed = False
        self.artifact_dir: Path | None = None
        self.private = req.artifacts_root / ident
        self.parser: EventParser | None = None
        self.events_dir: Path | None = None
        self.masker = EnvMasker()

    def _on_event(self, raw: dict[str, Any]) -> bool:
        assert self.parser is not None and self.events_dir is not None
        try:
            raw = self.masker.mask_event(raw)  # container env values never get past this point
            progress = self.parser.feed(raw)
            name = f"{int(raw.get('counter') or 0)}-{raw.get('uuid', 'x')}.json"
            _write_private(self.events_dir / name, json.dumps(redact(raw), default=str))
        except Exception:  # a parsing bug must not kill the run; it is logged and the event kept out
            log.exception("runner event %s could not be processed", raw.get("event"))
            return False
        if progress is not None:
            self.emit(progress)
        return False  # we wrote the (redacted) event ourselves

    def _should_stop(self) -> bool:
        """ansible-runner's cancel_callback (polled every ``_POLL_S``): cancel or timeout."""
        if not self.stop.is_set():
            if self.deadline is None or time.monotonic() < self.deadline:
                return False
            self.timed_out = True
        if not self.killed:
            self.killed = True
            _kill_workers(self.artifact_dir)
        return True

    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            self.finished.set()

    def _run(self) -> RunResult:
        req = self.req
        _secure_dir(req.artifacts_root)
        try:
            self.private.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise RunnerError(f"A run with ident {self.ident!r} already exists.", hint="Use a new ident.") from exc
        os.chmod(self.private, 0o700)
        artifact_dir = self.private / "artifacts" / self.ident
        taskinfo_path = artifact_dir / "taskinfo.jsonl"
        ansible_cfg = self.private / "ansible.cfg"
        _write_private(ansible_cfg, "# tailops: settings come from ANSIBLE_* variables\n[defaults]\n")
        _secure_dir(artifact_dir)
        _write_private(taskinfo_path, "")
        env = build_env(req, ansible_cfg=ansible_cfg, taskinfo_path=taskinfo_path)
        _secure_dir(self.private / "env")
        # ansible-runner reads its settings only from this file (a settings= kwarg is dropped without it).
        _write_private(
            self.private / "env" / "settings",
            json.dumps({"pexpect_timeout": _POLL_S, "suppress_ansible_output": True}),
        )
        if req.extravars:
            _write_private(self.private / "env" / "extravars", json.dumps(dict(req.extravars), default=str))
        self.parser = EventParser(req.mode, not_simulated_hint=req.not_simulated_hint, taskinfo=TaskInfo(taskinfo_path))
        cmdline = _cmdline(req)
        # Imported here, not at module level: a server that never runs a playbook
        # starts without loading ansible-runner (and pexpect) at all.
        from ansible_runner.config.runner import RunnerConfig
        from ansible_runner.exceptions import AnsibleRunnerException
        from ansible_runner.runner import Runner

        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            config = RunnerConfig(
                private_data_dir=str(self.private),
                playbook=str(req.playbook),
                inventory=str(req.inventory),
                forks=req.forks,
                cmdline=cmdline,
                ident=self.ident,
                envvars=env,
                quiet=True,
                suppress_env_files=True,
                fact_cache_type="memory",
            )
            config.prepare()
            # Drop everything ansible-runner merged in from os.environ.
            config.env = {k: v for k, v in config.env.items() if k in env or k in _RUNNER_KEYS}
            self.events_dir = Path(config.artifact_dir) / "job_events"
            self.events_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.artifact_dir = Path(config.artifact_dir)
            self.deadline = time.monotonic() + req.timeout.total_seconds()
            runner = Runner(config, event_handler=self._on_event, cancel_callback=self._should_stop)
            status, rc = runner.run()
        except (AnsibleRunnerException, OSError) as exc:
            raise RunnerError(
                f"ansible-runner could not run {req.playbook.name}: {redact_text(str(exc))[:500]}",
                hint="Check that ansible is installed in the server's environment.",
            ) from exc
        finally:
            _scrub(self.private, artifact_dir, self.masker)
            _prune(req.artifacts_root, req.keep_artifacts)
        finished_at = datetime.now(UTC)
        run_status: RunStatus
        if status == "canceled" and self.timed_out:
            run_status = "timeout"
        elif status in ("successful", "failed", "canceled", "timeout"):
            run_status = status
        else:
            run_status = "failed"
        parser = self.parser
        if run_status in ("successful", "failed") and parser.stats is None:
            raise RunnerError(
                f"ansible-playbook did not run {req.playbook.name} (rc={rc}): {parser.error_text()}",
                hint="Fix the playbook or inventory (or the limit) and plan again.",
            )
        result = RunResult(
            ident=self.ident,
            mode=req.mode,
            status=run_status,
            rc=rc if isinstance(rc, int) else None,
            hosts=parser.host_results(),
            started_at=started_at,
            finished_at=finished_at,
            duration_s=time.perf_counter() - t0,
            warnings=parser.warnings,
            artifact_dir=str(artifact_dir) if artifact_dir.exists() else None,
        )
        self.emit(RunEvent(kind="run_end", run_status=run_status, created=finished_at))
        return result


async def run_playbook(
    req: RunRequest,
    *,
    on_event: Callable[[RunEvent], Awaitable[None] | None] | None = None,
    cancel: anyio.Event | None = None,
) -> RunResult:
    """Run ``req`` with ansible-runner in a worker thread and return per-host results.

    ``on_event`` receives every progress event in order while the run goes on
    (from the event loop, never from the runner thread); all events are
    delivered before this returns. If ``on_event`` raises, the run is canceled
    (fail closed: nothing changes hosts while progress cannot be recorded) and
    the exception is re-raised. Setting ``cancel`` — or cancelling the awaiting
    task — stops Ansible (the process group is killed within about
    ``_POLL_S`` seconds); the result then has status ``canceled``. A run past
    ``req.timeout`` ends with status ``timeout``. Unreachable hosts are results.
    Refusals and failures to start raise :class:`~tailops.errors.RunnerError`.
    """
    ident = _check_request(req)
    send, receive = anyio.create_memory_object_stream[RunEvent](math.inf)
    callback_error: list[BaseException] = []

    def emit(event: RunEvent) -> None:
        if on_event is None:
            return
        with contextlib.suppress(Exception):  # loop gone / stream closed: nobody is listening
            anyio.from_thread.run_sync(send.send_nowait, event)

    job = _Job(req, ident, emit)

    async def pump() -> None:
        async with receive:
            async for event in receive:
                if callback_error:
                    continue
                try:
                    outcome = on_event(event) if on_event else None
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception as exc:
                    callback_error.append(exc)
                    job.stop.set()

    async def watch(event: anyio.Event) -> None:
        await event.wait()
        job.stop.set()

    outcome: list[RunResult] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        watcher = anyio.CancelScope()
        if cancel is not None:

            async def watch_scoped() -> None:
                with watcher:
                    await watch(cancel)

            tg.start_soon(watch_scoped)
        try:
            outcome.append(await anyio.to_thread.run_sync(job.run, abandon_on_cancel=True))
        except anyio.get_cancelled_exc_class():
            job.stop.set()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(job.finished.wait, 60)
            raise
        except Exception as exc:  # raised outside the task group so it is not wrapped in a group
            failure.append(exc)
        finally:
            watcher.cancel()
            send.close()
    if failure:
        raise failure[0]
    if callback_error:
        raise callback_error[0]
    return outcome[0]
