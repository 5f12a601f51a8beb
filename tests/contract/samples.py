"""One valid argument set per tool, for the contract tests (every tool is called).

When you add a tool, add it here: test_every_tool_has_sample_arguments fails
otherwise. Targets must be local (loopback, this machine's files).
"""

from __future__ import annotations

from typing import Any

SAMPLE_ARGS: dict[str, dict[str, Any]] = {
    "get_system_status": {"per_cpu": True},
    "get_top_processes": {"limit": 5, "sort_by": "memory"},
    "health_check": {},
    "get_network_status": {},
    "get_network_io_counters": {},
    "get_active_connections": {"kind": "tcp", "limit": 10},
}
