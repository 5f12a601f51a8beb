"""Static audit of the catalog's roles for what a plan may do to a host (issue 13).

Every apt/dnf task turns ``auto_install_module_deps`` off (the modules would otherwise
install python3-apt / python3-libdnf5 themselves: during a plan wherever the task
runs with ``check_mode: false``, and during every real run). The behaviour is shown on
real hosts in tests/integration/test_dry_run_never_changes_a_host.py; this test stops
a new task from bringing the default back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO_ROOT

PACKAGE_MODULES = {f"{p}{m}" for p in ("", "ansible.builtin.", "ansible.legacy.") for m in ("apt", "dnf", "dnf5")}


def _tasks(data: Any) -> Iterator[dict[str, Any]]:
    for task in data if isinstance(data, list) else []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _tasks(task.get(key))


def _role_task_files() -> list[Path]:
    return sorted(p for p in (REPO_ROOT / "roles").glob("*/tasks/**/*.yml") if "molecule" not in p.parts)


def test_no_package_task_may_install_module_dependencies() -> None:
    seen = 0
    for path in _role_task_files():
        for task in _tasks(yaml.safe_load(path.read_text())):
            for module in PACKAGE_MODULES & set(task):
                seen += 1
                value = task[module].get("auto_install_module_deps")
                where = f"{path.relative_to(REPO_ROOT)}: {task.get('name')!r}"
                if module.endswith("apt"):
                    assert value is False, where
                else:  # dnf4 has no such option; the dnf action passes it to dnf5 only where it exists
                    assert value == "{{ false if ansible_facts.pkg_mgr == 'dnf5' else omit }}", where
    assert seen >= 10  # the package roles' apt and dnf tasks were all looked at
