"""Inventory tool (group ``changes``): which hosts answer before anyone plans a change.

``check_inventory`` runs Ansible's read-only ``ping`` module over the configured
inventory (or a limit) and names every host that did not answer, with Ansible's
reason; progress notifications follow the hosts as they answer. It changes
nothing on any host, so it is ``readonly`` and stays on a ``--read-only`` server.
One check runs at a time per server: a second caller waits for the first to end
(each check starts Ansible against every host; readonly callers must not be able
to multiply that).

This module holds no logic: it calls :mod:`tailops.changes.inventory`.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread

from tailops.changes.inventory import HostReachability, InventoryCheck, check_inventory
from tailops.tools.changes import LimitArg
from tailops.tools.registry import ToolCall, tool

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__: list[str] = []

_ONE_AT_A_TIME: weakref.WeakKeyDictionary[Runtime, anyio.Lock] = weakref.WeakKeyDictionary()


@tool(
    group="changes",
    open_world=True,
    list_field="results",
    projectable=False,
    name="check_inventory",
    title="Check inventory",
)
async def check_inventory_tool(call: ToolCall, limit: LimitArg = None) -> InventoryCheck:
    """Read-only reachability: Ansible's ping on every inventory host (or the limit); not_ok names each host
    that did not answer and why. Also the inventory snapshot a plan would pin."""
    call.note(limit=limit)

    def progress(done: int, total: int, result: HostReachability) -> None:
        text = f"{result.host}: {result.status}" + (f" ({result.reason[:200]})" if result.reason else "")
        with contextlib.suppress(Exception):  # the client went away: the check still finishes
            anyio.from_thread.run(call.progress, done, total, text)

    rt = call.rt
    lock = _ONE_AT_A_TIME.setdefault(rt, anyio.Lock())
    async with lock:
        report = await rt.run_blocking(
            check_inventory, rt.config, limit=limit, timeout=rt.config.changes.run_timeout, on_progress=progress
        )
    call.note(hosts=report.total, not_ok=len(report.not_ok))
    return report
