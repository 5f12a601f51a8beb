"""Callback plugin: record what check mode needs to know about each task.

ansible-runner's events do not say whether a task has ``check_mode: false``,
whether a command task has ``creates``/``removes``, or why a task was skipped.
This aggregate callback (enabled only by tailops' runner adapter) appends one
JSON line per task start and per skipped host result to the file named by
``TAILOPS_TASKINFO_PATH``. It writes names, action names, booleans and skip
messages only — never task arguments or results, so nothing secret.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase  # type: ignore[import-untyped]

DOCUMENTATION = """
name: tailops_taskinfo
type: aggregate
short_description: records per-task check-mode facts for tailops
description:
  - Appends task uuid, action, explicit check_mode and creates/removes presence to TAILOPS_TASKINFO_PATH.
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tailops_taskinfo"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        path = os.environ.get("TAILOPS_TASKINFO_PATH")
        if not path and os.environ.get("AWX_ISOLATED_DATA_DIR"):
            # On an execution node: the job's artifact dir, which the worker streams back.
            path = os.path.join(os.environ["AWX_ISOLATED_DATA_DIR"], "taskinfo.jsonl")
        self._fh = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 (kept open for the run)

    def _write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def _task(self, task: Any) -> None:
        args = task.args if isinstance(task.args, dict) else {}
        check_mode = task.check_mode
        self._write(
            {
                "kind": "task",
                "uuid": str(task._uuid),
                "action": task.action,
                "check_mode": check_mode if isinstance(check_mode, bool) else None,
                "creates_removes": bool(args.get("creates") or args.get("removes")),
            }
        )

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task(task)

    def v2_runner_on_skipped(self, result: Any) -> None:
        res = result._result if isinstance(result._result, dict) else {}
        msg = "" if res.get("_ansible_no_log") else (res.get("msg") or res.get("skip_reason") or "")
        self._write(
            {
                "kind": "skip",
                "uuid": str(result._task._uuid),
                "host": result._host.get_name(),
                "msg": str(msg)[:300],
            }
        )
