"""Callback plugin: put what check mode needs to know about each task into the event stream.

ansible-runner's events do not say whether a task has ``check_mode: false``,
whether a command task has ``creates``/``removes``, or why a task was skipped —
what a check run needs to tell which tasks it could not simulate. This aggregate
callback (enabled only by tailops' Ansible adapter) emits, in check runs only (an
apply needs none of it), one ``tailops_taskinfo`` event per task that runs for real
or has ``creates``/``removes`` and one per skipped host result, through
ansible-runner's own event channel (the ``awx_display`` stdout callback's event
context), so the record travels with the run's other events — locally and in an
execution node's worker stream alike — right after the event it describes
(``event_data.tailops_taskinfo``: ``kind`` ``task`` or ``skip``, the task uuid, …).
It emits names, action names, booleans and skip messages only — never task
arguments or results, so nothing secret. (Each event costs about as much as any other
runner event, so it emits only what the parse uses: a task record with neither fact
would say nothing.)

If ``awx_display`` is not loaded (not run by ansible-runner) it emits nothing and
says so once as a warning: the run then flags fewer not-simulated tasks, visibly.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from ansible import context  # type: ignore[import-untyped]
from ansible.plugins.callback import CallbackBase  # type: ignore[import-untyped]

DOCUMENTATION = """
name: tailops_taskinfo
type: aggregate
short_description: emits per-task check-mode facts for tailops as ansible-runner events
description:
  - Emits tailops_taskinfo events (task uuid, action, explicit check_mode, creates/removes presence, skip reasons).
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED; ansible-runner's awx_display as the stdout callback
"""

EVENT = "tailops_taskinfo"


def _event_context() -> Any:
    """The event context of ansible-runner's ``awx_display`` callback, as Ansible loaded it."""
    for module in list(sys.modules.values()):
        callback = getattr(module, "CallbackModule", None)
        if getattr(callback, "CALLBACK_NAME", None) == "awx_display" and hasattr(module, "event_context"):
            return module.event_context
    return None


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tailops_taskinfo"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context: Any = None
        self._warned = False
        self._check = bool(context.CLIARGS.get("check", False))

    def _emit(self, record: dict[str, Any]) -> None:
        if self._context is None:
            self._context = _event_context()
        context = self._context
        if context is None:
            if not self._warned:
                self._warned = True
                self._display.warning("tailops_taskinfo: ansible-runner's awx_display is not loaded; no task info")
            return
        with context.display_lock:
            context.add_local(event=EVENT, uuid=str(uuid.uuid4()), tailops_taskinfo=record)
            try:
                context.dump_begin(sys.stdout)
                context.dump_end(sys.stdout)
            finally:
                context.remove_local(event=None, uuid=None, tailops_taskinfo=None)

    def _task(self, task: Any) -> None:
        if not self._check:
            return
        args = task.args if isinstance(task.args, dict) else {}
        check_mode = task.check_mode if isinstance(task.check_mode, bool) else None
        creates_removes = bool(args.get("creates") or args.get("removes"))
        if check_mode is not False and not creates_removes:
            return  # nothing the parse would use
        self._emit(
            {
                "kind": "task",
                "uuid": str(task._uuid),
                "action": task.action,
                "check_mode": check_mode,
                "creates_removes": creates_removes,
            }
        )

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task(task)

    def v2_runner_on_skipped(self, result: Any) -> None:
        if not self._check:
            return
        res = result._result if isinstance(result._result, dict) else {}
        msg = "" if res.get("_ansible_no_log") else (res.get("msg") or res.get("skip_reason") or "")
        self._emit(
            {
                "kind": "skip",
                "uuid": str(result._task._uuid),
                "host": result._host.get_name(),
                "msg": str(msg)[:300],
            }
        )
