"""What a plan checks and pins before the change engine dry-runs it.

Why: DESIGN.md "The change lifecycle", step 2. A plan is what a person approves,
so everything that decides what a run does must be checked or pinned before the
check run, and judged after it. The engine (:mod:`tailops.changes.engine`) calls
these in order: the limit is a host pattern (:func:`check_limit`); parameters never
carry secrets (:func:`refuse_secret_params`); the inventory is found
(:func:`inventory_path`) and snapshotted (:func:`inventory_snapshot`: the inventory
and the ``group_vars/``/``host_vars/`` beside it); after the check run, a failed or
unreachable host makes the plan ``blocked`` (:func:`blocked_reason`).

Inventory: ``changes.inventory`` (file or directory). Unset, tailops writes
``DATA_DIR/inventory/local.ini``: ``localhost ansible_connection=local`` in the
group ``targets`` with ``ansible_python_interpreter`` = the server's own Python
(the venv), because the container playbooks (``hosts: localhost``) drive the
Docker engine through community.docker, which needs that venv's ``requests``;
the package playbooks work with it too (ansible's apt module and the roles'
``tailops_apt_query`` re-spawn under the system Python that has ``python3-apt``;
tests/integration/test_first_change_default_inventory.py plans and applies one).

Pure checks and file reads: nothing here runs a playbook or writes a plan.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tailops.changes.models import RunResult
from tailops.config import Settings
from tailops.errors import ConfigError, InvalidInput
from tailops.redact import redact

__all__ = [
    "blocked_reason",
    "check_limit",
    "default_inventory",
    "inventory_path",
    "inventory_snapshot",
    "refuse_secret_params",
]


# Host patterns Ansible accepts (names, groups, wildcards, ranges, !, &, :, ","),
# but never "@file" (read the limit from a file), no whitespace or quotes, and never
# a leading "-": a value that looks like an option ("--become", "-e@file") must not
# reach ansible-playbook's argv, whichever way the runner passes it.
_LIMIT_RE = re.compile(r"^[A-Za-z0-9_.*?!&:,\[\]~][A-Za-z0-9_.*?!&:,\[\]~-]{0,511}$")
INVENTORY_FORMAT = "tailops-inventory-sha256 v2"


def check_limit(limit: str | None) -> str | None:
    """The limit, or InvalidInput: a host pattern only (no ``@file``, spaces, quotes or a leading ``-``)."""
    if limit is None:
        return None
    text = limit.strip()
    if not text:
        return None
    if not _LIMIT_RE.fullmatch(text):
        raise InvalidInput(
            f"limit {limit[:80]!r} is not a host pattern: use host and group names, wildcards (*), "
            "ranges ([0:3]), ',' or ':' between patterns, '!' to exclude and '&' to intersect "
            "(it may not start with '-' or '@').",
        )
    return text


def refuse_secret_params(params: Mapping[str, Any]) -> None:
    """InvalidInput when a parameter looks like a secret (a token, a key, ``PASSWORD=…``).

    Plan parameters are shown to every ``readonly`` holder (get_plan, the review page) and
    recorded in the audit log; catalog playbooks take no secrets as parameters, so a value
    the redactor would hide is refused rather than stored where everyone can read it."""
    for key, value in params.items():
        if redact({key: value}) != {key: value}:
            raise InvalidInput(
                f"parameter {key!r} looks like a secret (a token, key or password); plan parameters are "
                "visible to every reader of the plan, so secrets are refused.",
                hint="Catalog playbooks take no secrets as parameters; remove it and plan again.",
            )


def default_inventory(settings: Settings) -> Path:
    """``DATA_DIR/inventory/local.ini`` (written when missing or different): localhost, local
    connection, this server's Python, in the group ``targets`` the package playbooks target."""
    directory = settings.server.data_dir / "inventory"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = (directory / "local.ini").absolute()
    text = (
        "# Written by tailops (changes.inventory is unset): the host tailops runs on.\n"
        "[targets]\n"
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write the default inventory {path}: {exc.strerror}.") from exc
    return path


def inventory_path(settings: Settings) -> Path:
    """``changes.inventory`` (absolute, must exist) or the generated default."""
    configured = settings.changes.inventory
    if configured is None:
        return default_inventory(settings)
    path = configured.absolute()
    if not path.exists():
        raise ConfigError(
            f"changes.inventory {path} does not exist.",
            hint="Point changes.inventory at an Ansible inventory file or directory (or unset it for localhost).",
        )
    return path


def _inventory_files(path: Path) -> list[tuple[str, Path]]:
    """Every file that shapes what a run does with this inventory, (relative name, path), sorted.

    Ansible reads, beside the inventory file, ``group_vars/`` and ``host_vars/`` (a new
    ``host_vars/web1.yml`` can change ``ansible_host``, the user or become settings); for an
    inventory directory, every file under it. Symlinks are followed, as Ansible follows them
    (a link swapped to another target changes the snapshot); a cycle is cut.
    """
    if path.is_file():
        roots = [(path.name, path)]
        base = path.parent
        roots += [(name, base / name) for name in ("group_vars", "host_vars") if (base / name).exists()]
    elif path.is_dir():
        roots = [("", path)]
    else:
        raise ConfigError(f"inventory {path} is neither a file nor a directory.")
    files: list[tuple[str, Path]] = []
    for rel, root in roots:
        if root.is_file():
            files.append((rel, root))
            continue
        seen: set[tuple[int, int]] = set()
        for current, dirs, names in os.walk(root, followlinks=True):
            st = os.stat(current)
            if (st.st_dev, st.st_ino) in seen:
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirs.sort()
            for name in sorted(names):
                full = Path(current) / name
                if full.is_file():
                    files.append(((Path(rel) / full.relative_to(root)).as_posix(), full))
    return sorted(files)


def inventory_snapshot(path: Path) -> str:
    """SHA-256 over everything the inventory contributes to a run: the file and the
    ``group_vars/``/``host_vars/`` beside it, or every file under an inventory directory
    (relative path + content hash, sorted; symlinks followed). Any edit changes it, so a
    plan approved before the edit is refused as stale.

    A dynamic inventory script or plugin config is hashed as a file; what it returns is not.
    Variables beside the *playbook* are part of the playbook's folder, which the catalog
    pin covers (an edit there is catalog drift, refused the same way).
    """
    digest = hashlib.sha256(INVENTORY_FORMAT.encode() + b"\n")
    try:
        for rel, file in _inventory_files(path):
            digest.update(f"{rel}\0{hashlib.sha256(file.read_bytes()).hexdigest()}\n".encode())
    except OSError as exc:
        raise ConfigError(f"inventory {path} cannot be read: {exc.strerror}.") from exc
    return digest.hexdigest()


def blocked_reason(result: RunResult) -> str | None:
    """Why a check run makes its plan unapprovable (a failed or unreachable host, a timeout),
    naming each host and its message; None when every host ran."""
    problems: list[str] = []
    for name in sorted(result.hosts):
        host = result.hosts[name]
        if host.status not in ("failed", "unreachable"):
            continue
        bad = next(
            (t for t in host.tasks if t.status in ("failed", "unreachable") and not t.ignored),
            None,
        )
        if bad is None:
            problems.append(f"host {name} {host.status}")
        else:
            msg = (bad.msg or "no message").strip().replace("\n", " ")
            if len(msg) > 300:
                msg = msg[:297] + "..."
            problems.append(f"host {name} {host.status} at task '{bad.task}': {msg}")
    if result.status == "timeout":
        problems.append("the check run timed out (changes.run_timeout)")
    elif result.status == "failed" and not problems:
        problems.append("the check run failed")
    elif result.status == "canceled":
        problems.append("the check run was canceled")
    return "; ".join(problems) if problems else None
