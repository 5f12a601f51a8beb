"""One valid argument set per tool, for the contract tests (every tool is called).

When you add a tool, add it here: test_every_tool_has_sample_arguments fails
otherwise. Targets must be local (loopback, this machine's files). ``{root}``
in a string is replaced by the test's allowed file root, which holds
``app.log`` (a few text lines); ``{container}`` is a running container the test
started.
"""

from __future__ import annotations

from typing import Any

SAMPLE_ARGS: dict[str, dict[str, Any]] = {
    # system / network status
    "get_system_status": {"per_cpu": True},
    "get_top_processes": {"limit": 5, "sort_by": "memory"},
    "health_check": {},
    "get_network_status": {},
    "get_network_io_counters": {},
    "get_active_connections": {"kind": "tcp", "limit": 10},
    # files (allowed root = {root})
    "list_directory": {"path": "{root}", "limit": 5},
    "read_file": {"path": "{root}/app.log", "length": 200},
    "tail_file": {"path": "{root}/app.log", "lines": 2},
    "search_files": {"path": "{root}", "content": "error", "limit": 5},
    "file_operations": {"operation": "tail", "path": "{root}/app.log", "lines": 2},
    # network diagnostics (loopback only)
    "ping_host": {"host": "127.0.0.1", "count": 1, "interval": 0.2},
    "traceroute": {"host": "127.0.0.1", "max_hops": 2},
    "test_port_connectivity": {"host": "127.0.0.1", "port": 9},
    "dns_lookup": {"name": "localhost", "record_types": ["A"], "resolver": "127.0.0.1", "timeout": 1},
    "check_ssl_certificate": {"host": "127.0.0.1", "port": 9, "timeout": 1},
    "http_request_test": {"url": "http://127.0.0.1:9/"},
    # containers ({container} = a running test container)
    "get_container_list": {"all": True, "limit": 5},
    "inspect_container": {"name": "{container}"},
    "reveal_container_env": {"name": "{container}"},
    "get_container_stats": {"name": "{container}"},
    "list_docker_images": {"limit": 5},
    "get_docker_networks": {},
    "get_container_logs": {"name": "{container}", "tail": 5},
    "analyze_container_logs": {"name": "{container}", "tail": 100},
    "manage_container": {"action": "logs", "name": "{container}", "tail": 5},
    # changes: ids that do not exist (not_found) and limits that are not host patterns
    # (invalid_input), so no check run touches this machine
    "list_playbooks": {},
    "list_nodes": {"check": True},
    "plan_change": {"playbook": "no_such_playbook", "params": {}},
    "get_plan": {"plan_id": "0" * 64},
    "list_plans": {"limit": 5},
    "approve_plan": {"plan_id": "0" * 64, "comment": "contract"},
    "deny_plan": {"plan_id": "0" * 64, "reason": "contract"},
    "apply_plan": {"plan_id": "0" * 64},
    "get_run": {"run_id": "0" * 32},
    "cancel_run": {"run_id": "0" * 32},
    "check_system_updates": {"security_only": True, "limit": "@hosts.txt"},
    "update_system_packages": {"packages": ["tbdemo"], "limit": "@hosts.txt"},
    "install_package": {"name": "tbdemo", "limit": "@hosts.txt"},
    "update_docker_container": {"name": "{container}", "image": "NOT A REFERENCE"},
    "pull_docker_image": {"image": "NOT/A/REPOSITORY", "tag": "1"},
}


def expand(args: dict[str, Any], root: str, container: str) -> dict[str, Any]:
    def one(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace("{root}", root).replace("{container}", container)
        if isinstance(v, list):
            return [one(x) for x in v]
        return v

    return {k: one(v) for k, v in args.items()}
