"""The job bundle sent to an execution node: a clean private data dir, streamed.

Why: ``ansible-runner worker`` receives a job as ansible-runner's transmit
stream — one JSON line of run kwargs, a ``{"zipfile": N}`` line, the private
data dir as a base64 zip, ``{"eof": true}``. ``ansible-runner transmit`` zips
whatever the private data dir holds (old artifacts, ``env/`` files, ssh keys),
and its zip carries file mtimes and walk order, so the same content would not
give the same bytes twice. A plan must record *what* was sent, and apply must
re-send exactly that, so this module builds the stream itself from a fresh
directory with only what the job needs, deterministically (sorted entries,
fixed timestamps and modes): equal content means equal bytes, and the
``bundle_sha256`` is a fingerprint of the job, not of the moment.

What the bundle holds (and nothing else): ``project/`` = the playbook's own
folder, the run's own ``ansible.cfg`` (the same as a local run: no ambient config on the node applies)
and ``callback_plugins/tailops_taskinfo.py``; ``roles/`` = the roles dir;
``inventory/`` = the inventory file or dir; ``env/settings`` and
``env/extravars`` (0600; passed as ``-e @file``, never on the node's command
line). Limit, forks and the ``ANSIBLE_*`` policy environment travel in the
kwargs line. ``bundle_sha256`` covers everything except the run ident and the check
flags (``cmdline``), so a plan's check run and its apply have the same one.

It must never put the controller's own environment, keys, artifacts or
``env/`` secret files (envvars, ssh_key, passwords) in the bundle, and never
import ``ansible_runner`` (the wire format is plain JSON lines + base64 zip,
checked against the real worker in tests/integration/test_nodes.py).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailops.changes.ansible import callback_plugins
from tailops.changes.ansible.environment import ANSIBLE_CFG, build_env
from tailops.changes.models import RunMode, RunRequest
from tailops.errors import RunnerError

__all__ = ["Bundle", "build_bundle", "node_envvars"]

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_NAMES = frozenset({"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_MAX_BUNDLE_BYTES = 64 * 1024 * 1024
# Keys of the local policy env that name controller paths or come from its environment;
# the node provides its own (node_wrapper.worker_env) and the bundle provides the rest.
_LOCAL_ONLY = frozenset(
    {
        "PATH",
        "HOME",
        "ANSIBLE_CONFIG",
        "ANSIBLE_COLLECTIONS_PATH",
        "ANSIBLE_CALLBACK_PLUGINS",
        "ANSIBLE_ROLES_PATH",
    }
)
_SETTINGS = {"pexpect_timeout": 0.2, "suppress_ansible_output": True}


@dataclass(frozen=True)
class Bundle:
    """One job's transmit stream, ready to write to ``ssh NODE run <ident>``.

    ``bundle_sha256``: SHA-256 of the job without its ident and check flags
    (same for a plan's check run and its apply). ``stream_sha256``: SHA-256 of
    the exact bytes sent. ``files``: the bundle's file list (relative paths).
    """

    ident: str
    stream: bytes
    bundle_sha256: str
    stream_sha256: str
    files: tuple[str, ...]


def node_envvars(req: RunRequest) -> dict[str, str]:
    """The local ``ANSIBLE_*`` policy environment minus what names controller paths."""
    env = build_env(req, ansible_cfg=Path("ansible.cfg"))
    kept = {k: v for k, v in env.items() if k not in _LOCAL_ONLY}
    return {k: v for k, v in kept.items() if k.startswith(("ANSIBLE_", "LC_")) or k == "LANG"}


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under ``root``, sorted; symlinks and special files are refused."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_NAMES)
        base = Path(dirpath)
        for name in sorted(dirnames):
            if (base / name).is_symlink():
                raise RunnerError(
                    f"{base / name} is a symlink; a node bundle takes regular files only.",
                    hint="Replace the link with the files it points to.",
                )
        for name in sorted(filenames):
            if name.endswith((".pyc", ".retry")):
                continue
            path = base / name
            if path.is_symlink() or not path.is_file():
                raise RunnerError(
                    f"{path} is not a regular file; a node bundle takes regular files only.",
                    hint="Replace links and special files in the playbook, roles or inventory dir.",
                )
            yield path


def _entries(req: RunRequest) -> list[tuple[str, bytes, int]]:
    """(archive name, content, mode) for every file of the clean private data dir."""
    out: list[tuple[str, bytes, int]] = []

    def add_tree(src: Path, prefix: str) -> None:
        for path in _walk(src):
            mode = 0o700 if os.access(path, os.X_OK) else 0o600
            out.append((f"{prefix}/{path.relative_to(src).as_posix()}", path.read_bytes(), mode))

    add_tree(req.playbook.parent, "project")
    out.append(("project/ansible.cfg", ANSIBLE_CFG.encode(), 0o600))  # the same settings as a local run
    plugin = Path(callback_plugins.__file__).parent / "tailops_taskinfo.py"
    out.append(("project/callback_plugins/tailops_taskinfo.py", plugin.read_bytes(), 0o600))
    if req.roles_path is not None and req.roles_path.is_dir():
        add_tree(req.roles_path, "roles")
    if req.inventory.is_dir():
        add_tree(req.inventory, "inventory")
    else:
        out.append((f"inventory/{req.inventory.name}", req.inventory.read_bytes(), 0o600))
    out.append(("env/settings", json.dumps(_SETTINGS, sort_keys=True).encode(), 0o600))
    if req.extravars:
        # A 0600 file ansible-runner passes as -e @file, as locally: never on the node's command line (ps).
        extravars = json.dumps(dict(req.extravars), sort_keys=True, default=str).encode()
        out.append(("env/extravars", extravars, 0o600))
    names = [name for name, _, _ in out]
    if len(set(names)) != len(names):
        raise RunnerError("The playbook folder clashes with files tailops adds (ansible.cfg, callback_plugins).")
    return sorted(out)


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.create_system = 3
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buf.getvalue()


def _kwargs(req: RunRequest, *, limit: str) -> dict[str, Any]:
    return {
        "playbook": req.playbook.name,
        "inventory": "inventory",
        "limit": limit,
        "forks": req.forks,
        "envvars": {**node_envvars(req), "ANSIBLE_ROLES_PATH": "."},
        "suppress_env_files": True,
        "fact_cache_type": "memory",
    }


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def build_bundle(req: RunRequest, *, ident: str, hosts: list[str]) -> Bundle:
    """The transmit stream that runs ``req`` on ``hosts`` (as the limit) under ``ident``."""
    if not hosts:
        raise RunnerError("A node bundle needs at least one host.")
    limit = ",".join(sorted(hosts))  # the shard's hosts, already narrowed by req.limit
    entries = _entries(req)
    archive = _zip(entries)
    if len(archive) > _MAX_BUNDLE_BYTES:
        raise RunnerError(
            f"The node bundle is {len(archive)} bytes (limit {_MAX_BUNDLE_BYTES}).",
            hint="Keep large files out of the playbook, roles and inventory dirs.",
        )
    kwargs = _kwargs(req, limit=limit)
    digest = hashlib.sha256(b"tailops-node-bundle v1\n" + _canonical(kwargs) + b"\n" + archive).hexdigest()
    cmdline = "--check --diff" if req.mode is RunMode.CHECK else "--diff"
    line = _canonical({"kwargs": {**kwargs, "ident": ident, "cmdline": cmdline}})
    stream = b"".join(
        [
            line,
            b"\n",
            _canonical({"zipfile": len(archive)}),
            b"\n",
            base64.b64encode(archive),
            _canonical({"eof": True}),
            b"\n",
        ]
    )
    return Bundle(
        ident=ident,
        stream=stream,
        bundle_sha256=digest,
        stream_sha256=hashlib.sha256(stream).hexdigest(),
        files=tuple(name for name, _, _ in entries),
    )
