"""One valid argument set per tool, for the contract tests (every tool is called).

When you add a tool, add it here: test_every_tool_has_sample_arguments fails
otherwise. Targets must be local (loopback, this machine's files). ``{root}``
in a string is replaced by the test's allowed file root, which holds
``app.log`` (a few text lines); ``{container}`` is a running container the test
started (also the one host of the change tools' inventory). ``{plan}``,
``{plan_deny}`` and ``{plan_apply}`` are plans the test stored before the calls
(the last one approved, by someone else, from a real check run on that container),
``{run}`` a running run of a stored plan.
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
    # changes: the catalog holds only tb_marker (writes a marker file), the inventory only
    # {container}; every generic change tool makes a real, valid call
    "list_playbooks": {},
    "list_nodes": {"check": True},
    "plan_change": {"playbook": "tb_marker", "params": {"message": "contract"}},
    "get_plan": {"plan_id": "{plan}"},
    "list_plans": {"limit": 5},
    "approve_plan": {"plan_id": "{plan}", "comment": "contract"},
    "deny_plan": {"plan_id": "{plan_deny}", "reason": "contract"},
    "apply_plan": {"plan_id": "{plan_apply}"},
    "get_run": {"run_id": "{run}"},
    "cancel_run": {"run_id": "{run}"},
    "get_host_history": {"host": "web1", "since": "30d", "limit": 5},
    "get_drift": {},
    "run_drift_check": {"check": "contract-marker"},
    "plan_from_drift": {"check": "contract-marker", "host": "{container}"},
    "check_inventory": {"limit": "{container}"},
    # The seed doors plan playbooks this catalog does not hold: a coded refusal (not_found) before
    # any work; their real plans are covered by tests/integration/test_change_lifecycle.py and
    # the playbook suites.
    "check_system_updates": {"security_only": True},
    "update_system_packages": {"packages": ["tbdemo"]},
    "install_package": {"name": "tbdemo"},
    "update_docker_container": {"name": "{container}", "image": "app:2"},
    "pull_docker_image": {"image": "nginx", "tag": "1"},
}
# Tools whose only valid call in the contract setup is a coded refusal (see above).
REFUSED_BY_SETUP = {
    "check_system_updates",
    "update_system_packages",
    "install_package",
    "update_docker_container",
    "pull_docker_image",
}


def expand(args: dict[str, Any], root: str, container: str, ids: dict[str, str] | None = None) -> dict[str, Any]:
    def one(v: Any) -> Any:
        if isinstance(v, str):
            v = v.replace("{root}", root).replace("{container}", container)
            for key, value in (ids or {}).items():
                v = v.replace("{" + key + "}", value)
            return v
        if isinstance(v, list):
            return [one(x) for x in v]
        return v

    return {k: one(v) for k, v in args.items()}
