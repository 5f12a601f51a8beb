"""The tamper-evident audit log: append-only JSON lines, each linked to the one before.

Why it exists: every tool call and every state-changing CLI command is recorded (who,
what, redacted arguments, decision, outcome), and any edit, deletion, reordering or
truncation of the record is found. The rooms, each with one job:

- :mod:`.records`: the shape of a chain line and of the head file;
- :mod:`.files`: where the log's files lie, reading them, the readers' shared lock;
- :mod:`.gaps`: a writer holding the log's end against its head (gap records);
- :mod:`.writer`: :class:`AuditLog`, the one appender (and :func:`record_cli`);
- :mod:`.status`: the cheap alarm view for /health and /metrics;
- :mod:`.verification`: ``tailops audit verify``, the full walk of the chain.

This package exports only the names used outside it; everything else is imported from
the module that defines it. Nothing here may write an unredacted entry or rewrite a line.
"""

from tailops.audit.files import log_files, tail
from tailops.audit.records import GAP_KIND
from tailops.audit.status import AuditStatus
from tailops.audit.verification import verify
from tailops.audit.writer import AuditLog, record_cli

__all__ = ["GAP_KIND", "AuditLog", "AuditStatus", "log_files", "record_cli", "tail", "verify"]
