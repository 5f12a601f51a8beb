"""Executors: where a playbook run happens, behind one interface.

The change engine (:mod:`tailops.changes.engine`) decides *what* runs and keeps
the lifecycle's promises (approval, pins, stale checks, run rows, events,
cancellation). An executor only runs a typed :class:`~tailops.changes.models.RunRequest`
— as a check or for real — and streams :class:`~tailops.changes.models.RunEvent`
back. :class:`LocalExecutor` runs ansible-runner on this machine; other executors
(execution nodes over ansible-runner's streaming protocol, AWX job templates) plug
in here without touching the lifecycle.
"""

from tailops.changes.executors.base import EventSink, Executor
from tailops.changes.executors.local import LocalExecutor

__all__ = ["EventSink", "Executor", "LocalExecutor"]
