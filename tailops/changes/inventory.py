"""The inventory as tailops sees it: hosts, groups, the snapshot a plan pins, reachability.

Why: before anyone plans a change, an operator needs to know which hosts the
configured inventory (``changes.inventory``: an INI or YAML file, a directory with
``group_vars/``/``host_vars/``, or an inventory plugin config such as
``community.docker.docker_containers``) really yields, and which of them answer.
Ansible is the only parser that agrees with Ansible, so :func:`load_inventory` runs
``ansible-inventory --list`` (a subprocess with the runner's environment policy:
the same minimal environment, an empty ``ANSIBLE_CONFIG``, unparsable inventory
fatal), and :func:`check_inventory` runs Ansible's read-only ``ping`` module
through :func:`tailops.changes.ansible.ping.run_adhoc_ping`.

This module must never show a variable's value other than the connection facts in
:data:`SHOWN_VARS` (inventories hold passwords and tokens: ``ansible_password``,
``ansible_become_pass``, vault values), never import ``ansible_runner`` (the
runner adapter does) and never change a host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tailops.changes.ansible.environment import build_env
from tailops.changes.ansible.ping import run_adhoc_ping
from tailops.changes.models import RunMode, RunRequest
from tailops.changes.planner import check_limit, inventory_path, inventory_snapshot
from tailops.config import Settings
from tailops.errors import ConfigError, InvalidInput, OperationTimeout
from tailops.models import Model
from tailops.redact import redact_text

__all__ = [
    "SHOWN_VARS",
    "HostReachability",
    "InventoryCheck",
    "InventoryGroup",
    "InventoryHost",
    "InventoryView",
    "check_inventory",
    "load_inventory",
]

# Connection facts shown with a host; every other variable is counted, never shown.
SHOWN_VARS = (
    "ansible_connection",
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_become",
    "ansible_become_method",
    "ansible_become_user",
    "ansible_ssh_private_key_file",
    "ansible_python_interpreter",
)
_LIST_TIMEOUT_S = 120
_MAX_STDERR = 2000


class InventoryHost(Model):
    name: str = Field(description="Inventory host name.")
    groups: list[str] = Field(description="Groups the host is in (directly or through children), sorted.")
    connection: dict[str, str] = Field(description="Connection facts (ansible_host, ansible_user, become, ...).")
    other_vars: int = Field(description="How many other variables the host has (values never shown).")


class InventoryGroup(Model):
    name: str
    hosts: list[str] = Field(description="Hosts directly in the group.")
    children: list[str] = Field(description="Child groups.")


class InventoryView(Model):
    source: str = Field(description="The inventory file or directory.")
    snapshot_sha256: str = Field(description="What a plan made now would pin (changes when any file changes).")
    hosts: list[InventoryHost]
    groups: list[InventoryGroup]


class HostReachability(Model):
    host: str
    status: Literal["ok", "unreachable", "failed", "no_answer"] = Field(
        description="ok: Ansible connected and ran ping; unreachable: no connection; failed: connected, "
        "but ping failed (e.g. no Python); no_answer: nothing before the timeout."
    )
    reason: str | None = Field(None, description="Why the host is not ok (Ansible's message).")


class InventoryCheck(Model):
    source: str
    snapshot_sha256: str
    pattern: str = Field(description="Host pattern checked (all, or the limit).")
    total: int
    ok: int
    not_ok: list[HostReachability] = Field(description="Every host that did not answer ok, with the reason.")
    results: list[HostReachability] = Field(description="Every host, sorted by name.")
    duration_s: float


def _ansible_env(private: Path) -> dict[str, str]:
    """The runner's environment policy for an ``ansible-inventory`` child."""
    cfg = private / "ansible.cfg"
    cfg.write_text("# tailops: settings come from ANSIBLE_* variables\n[defaults]\n", encoding="utf-8")
    req = RunRequest(playbook=cfg, inventory=cfg, mode=RunMode.CHECK, artifacts_root=private)
    return build_env(req, ansible_cfg=cfg)


def _list_json(inventory: Path, limit: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tailops-inventory-") as tmp:
        private = Path(tmp)
        os.chmod(private, 0o700)
        env = _ansible_env(private)
        exe = shutil.which("ansible-inventory", path=env["PATH"])
        if exe is None:
            raise ConfigError(
                "ansible-inventory is not installed next to tailops.", hint="Install the ansible package."
            )
        argv = [exe, "--list", "-i", str(inventory)]
        if limit:
            argv += ["--limit", limit]
        try:
            proc = subprocess.run(  # no shell; argv only
                argv, env=env, cwd=private, capture_output=True, timeout=_LIST_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise OperationTimeout(f"ansible-inventory took longer than {_LIST_TIMEOUT_S} s on {inventory}.") from exc
        except OSError as exc:
            raise ConfigError(f"cannot run ansible-inventory: {exc.strerror}.") from exc
    if proc.returncode != 0:
        raise ConfigError(f"Ansible cannot parse the inventory {inventory}: {_parse_failure(proc)}")
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise ConfigError(f"ansible-inventory returned no JSON for {inventory}.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"ansible-inventory returned unexpected JSON for {inventory}.")
    return data


_PLUGIN_FAILED = re.compile(r"^\[WARNING\]: Failed to parse inventory with '([^']+)' plugin: (.*)$")


def _parse_failure(proc: subprocess.CompletedProcess[bytes]) -> str:
    """Why Ansible could not read the inventory: what each inventory plugin said (the one
    meant for the source, e.g. ``auto`` for a plugin config, is usually the one that
    matters), else the last lines of stderr."""
    text = redact_text(proc.stderr.decode("utf-8", "replace")).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    tried = [f"{m.group(1)}: {m.group(2)}" for m in map(_PLUGIN_FAILED.match, lines) if m]
    detail = "; ".join(tried) if tried else " ".join(lines[-3:])
    return detail[:_MAX_STDERR] or f"exit code {proc.returncode}"


def _view(inventory: Path, data: dict[str, Any]) -> InventoryView:
    hostvars: dict[str, Any] = (data.get("_meta") or {}).get("hostvars") or {}
    groups: list[InventoryGroup] = []
    direct: dict[str, set[str]] = {}
    children: dict[str, list[str]] = {}
    for name, body in data.items():
        if name == "_meta" or not isinstance(body, dict):
            continue
        members = [h for h in body.get("hosts") or [] if isinstance(h, str)]
        kids = [c for c in body.get("children") or [] if isinstance(c, str)]
        groups.append(InventoryGroup(name=name, hosts=members, children=kids))
        children[name] = kids
        for h in members:
            direct.setdefault(h, set()).add(name)

    def ancestors(group: str) -> set[str]:
        found: set[str] = set()
        for parent, kids in children.items():
            if group in kids and parent not in found:
                found |= {parent} | ancestors(parent)
        return found

    order = sorted(set(direct) | set(hostvars))
    hosts: list[InventoryHost] = []
    for name in order:
        member = set(direct.get(name, set()))
        for group_name in list(member):
            member |= ancestors(group_name)
        variables = hostvars.get(name) or {}
        shown = {k: str(variables[k]) for k in SHOWN_VARS if k in variables and variables[k] is not None}
        hosts.append(
            InventoryHost(
                name=name,
                groups=sorted(member - {"all"}),
                connection=shown,
                other_vars=len([k for k in variables if k not in SHOWN_VARS]),
            )
        )
    return InventoryView(
        source=str(inventory),
        snapshot_sha256=inventory_snapshot(inventory),
        hosts=hosts,
        groups=sorted(groups, key=lambda g: g.name),
    )


def _pattern(limit: str | None) -> str | None:
    """The planner's host-pattern check, and never a leading ``-`` (it would read as an
    option of ``ansible``/``ansible-inventory``)."""
    clean = check_limit(limit)
    if clean is not None and clean.startswith("-"):
        raise InvalidInput(f"limit {clean[:80]!r} is not a host pattern: it must not start with '-'.")
    return clean


def load_inventory(settings: Settings, *, limit: str | None = None) -> InventoryView:
    """The configured inventory as Ansible parses it (blocking: a subprocess)."""
    clean = _pattern(limit)
    inventory = inventory_path(settings)
    return _view(inventory, _list_json(inventory, clean))


def check_inventory(
    settings: Settings,
    *,
    limit: str | None = None,
    timeout: timedelta = timedelta(minutes=5),
    extra_env: dict[str, str] | None = None,
    on_progress: Callable[[int, int, HostReachability], None] | None = None,
) -> InventoryCheck:
    """Ping every host of the inventory (or of ``limit``) with Ansible; read-only.

    ``on_progress(done, total, result)`` is called as each host answers (blocking:
    call from a worker thread)."""
    import time

    started = time.monotonic()
    view = load_inventory(settings, limit=limit)
    if not view.hosts:
        raise InvalidInput(
            "the inventory has no host" + (f" matching {limit!r}" if limit else "") + f" ({view.source}).",
            hint="`tailops inventory show` lists what Ansible reads from it.",
        )
    names = [h.name for h in view.hosts]
    done = [0]

    def on_host(host: str, status: str, msg: str | None) -> None:
        if host not in names:
            return
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], len(names), _result(host, status, msg))

    answers = run_adhoc_ping(
        Path(view.source),
        # Not beside the playbook runs: checks must not prune the artifacts of real runs.
        settings.server.data_dir / "checks",
        pattern=_pattern(limit) or "all",
        forks=settings.changes.forks,
        timeout=timeout,
        extra_env=extra_env,
        keep_artifacts=settings.changes.keep_artifacts,
        on_host=on_host,
    )
    results = [
        _result(name, *answers[name])
        if name in answers
        else HostReachability(
            host=name, status="no_answer", reason=f"no answer within {int(timeout.total_seconds())} s"
        )
        for name in names
    ]
    bad = [r for r in results if r.status != "ok"]
    return InventoryCheck(
        source=view.source,
        snapshot_sha256=view.snapshot_sha256,
        pattern=_pattern(limit) or "all",
        total=len(results),
        ok=len(results) - len(bad),
        not_ok=bad,
        results=results,
        duration_s=round(time.monotonic() - started, 2),
    )


def _result(host: str, status: str, msg: str | None) -> HostReachability:
    kind: Literal["ok", "unreachable", "failed"] = (
        "ok" if status == "ok" else "unreachable" if status == "unreachable" else "failed"
    )
    return HostReachability(host=host, status=kind, reason=None if kind == "ok" else (msg or "no message").strip())
