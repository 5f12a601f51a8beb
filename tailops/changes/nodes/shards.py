"""Which hosts run where: the shard map of one run.

Why: a run's hosts are split between execution nodes (each claims inventory
groups or host patterns, ``nodes[].claims``) and this machine (every host no
node claims). A plan records this map, and apply must use the same one: a
changed map (a node added, a claim edited, a host moved between groups) means
the hosts would run from somewhere the plan never checked, so the plan is
stale. :meth:`ShardMap.digest` is the fingerprint to compare.

The inventory is read with ``ansible-inventory --list --limit`` (the same
parser and limit semantics ``ansible-playbook`` uses), in a minimal
environment with an empty ansible.cfg. Only group structure is read; host
variables are never looked at or kept.

It must never put one host in two shards or drop a host: every host the limit
selects is in exactly one shard.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailops.config import NodeSettings
from tailops.errors import InvalidInput, RunnerError

__all__ = ["LOCAL", "Shard", "ShardMap", "inventory_groups", "shard_map"]

LOCAL = "local"
"""Shard name of the hosts this machine runs itself."""

_TIMEOUT_S = 60


@dataclass(frozen=True)
class Shard:
    """Hosts one place runs: ``node`` is a configured node's name or :data:`LOCAL`."""

    node: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ShardMap:
    shards: tuple[Shard, ...]

    def digest(self) -> str:
        """SHA-256 of the map (node -> sorted hosts); equal maps, equal digests."""
        canon = json.dumps({s.node: sorted(s.hosts) for s in self.shards}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(b"tailops-shard-map v1\n" + canon.encode()).hexdigest()

    def as_dict(self) -> dict[str, list[str]]:
        return {s.node: list(s.hosts) for s in self.shards}

    @property
    def hosts(self) -> list[str]:
        return [h for s in self.shards for h in s.hosts]


def _venv_bin() -> Path:
    import sys

    return Path(sys.prefix) / "bin"


def inventory_groups(inventory: Path, limit: str | None = None) -> dict[str, set[str]]:
    """Group -> every host in it (children included), as ansible-inventory sees it under ``limit``."""
    with tempfile.TemporaryDirectory(prefix="tailops-inv-") as tmp:
        cfg = Path(tmp) / "ansible.cfg"
        cfg.write_text("[defaults]\n")
        env = {
            "PATH": f"{_venv_bin()}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", tmp),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
            "ANSIBLE_NOCOLOR": "1",
        }
        argv = [str(_venv_bin() / "ansible-inventory"), "-i", str(inventory), "--list"]
        if limit:
            argv += ["--limit", limit]
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False, cwd=tmp
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RunnerError(f"ansible-inventory could not read {inventory}: {exc}") from exc
    if proc.returncode != 0:
        text = " ".join(proc.stderr.split())[:500]
        raise RunnerError(f"ansible-inventory could not read {inventory}: {text}")
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise RunnerError(f"ansible-inventory printed no JSON for {inventory}.") from exc
    return _flatten(data)


def _flatten(data: Mapping[str, Any]) -> dict[str, set[str]]:
    direct: dict[str, set[str]] = {}
    children: dict[str, list[str]] = {}
    for group, body in data.items():
        if group == "_meta" or not isinstance(body, Mapping):
            continue
        direct[group] = {str(h) for h in body.get("hosts") or []}
        children[group] = [str(c) for c in body.get("children") or []]

    def members(group: str, seen: frozenset[str]) -> set[str]:
        out = set(direct.get(group, set()))
        for child in children.get(group, []):
            if child not in seen:
                out |= members(child, seen | {child})
        return out

    return {group: members(group, frozenset({group})) for group in direct}


def shard_map(groups: Mapping[str, set[str]], nodes: Sequence[NodeSettings]) -> ShardMap:
    """Split every host of ``groups`` (the ``all`` group) between ``nodes`` (first claim wins) and local."""
    all_hosts = sorted(set().union(*groups.values()) if groups else set())
    taken: dict[str, str] = {}
    for node in nodes:
        for claim in node.claims:
            matched = groups.get(claim) or {h for h in all_hosts if fnmatch.fnmatchcase(h, claim)}
            for host in matched:
                taken.setdefault(host, node.name)
    shards: list[Shard] = []
    for node in nodes:
        hosts = tuple(h for h in all_hosts if taken.get(h) == node.name)
        if hosts:
            shards.append(Shard(node=node.name, hosts=hosts))
    local = tuple(h for h in all_hosts if h not in taken)
    if local:
        shards.append(Shard(node=LOCAL, hosts=local))
    if not shards:
        raise InvalidInput("The inventory and limit select no host.", hint="Check the limit against the inventory.")
    return ShardMap(shards=tuple(shards))
