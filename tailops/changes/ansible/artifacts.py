"""A run's private directory: created 0700, given its own ``ansible.cfg``, scrubbed, pruned.

Why: ansible-runner's private data dir holds, during a run, what may carry secrets —
the ``command`` file (the child's whole environment and command line), ``env/``
(settings, extravars), partial event files — and afterwards the run's evidence (redacted
job events, ``stdout``, ``status``, ``rc``, the task-info records). Layout:
``<artifacts_root>/<ident>/`` (0700) with ``artifacts/<ident>/`` inside; the newest
``keep_artifacts`` run dirs are kept.

It must never create a file another local user can read, follow a symlink planted in
the run dir, or leave ``command``/``env``/``ansible.cfg``/partial events or unredacted
``stdout`` behind once a run is over.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tailops.changes.ansible.environment import ANSIBLE_CFG
from tailops.changes.ansible.envmask import EnvMasker
from tailops.errors import RunnerError
from tailops.redact import redact_text

__all__ = ["RunDirs", "make_run_dirs", "prune", "scrub", "secure_dir", "write_private"]


@dataclass(frozen=True)
class RunDirs:
    """Where one run keeps its files (see the module docstring for the layout)."""

    private: Path
    artifact_dir: Path
    ansible_cfg: Path


def secure_dir(path: Path) -> None:
    """``path`` (and its parents) exists and is 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a 0600 file, never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def make_run_dirs(artifacts_root: Path, ident: str) -> RunDirs:
    """A new private dir for run ``ident`` with the run's ``ansible.cfg``.

    Raises :class:`~tailops.errors.RunnerError` if a run with ``ident`` already exists:
    one run never writes into another's evidence.
    """
    secure_dir(artifacts_root)
    private = artifacts_root / ident
    try:
        private.mkdir(mode=0o700)
    except FileExistsError as exc:
        raise RunnerError(f"A run with ident {ident!r} already exists.", hint="Use a new ident.") from exc
    os.chmod(private, 0o700)
    dirs = RunDirs(
        private=private,
        artifact_dir=private / "artifacts" / ident,
        ansible_cfg=private / "ansible.cfg",
    )
    write_private(dirs.ansible_cfg, ANSIBLE_CFG)
    secure_dir(dirs.artifact_dir)
    return dirs


def scrub(private: Path, artifact_dir: Path, masker: EnvMasker | None = None) -> None:
    """Remove what may hold secrets (command/env/extravars/partials); redact stdout and hide
    the container env values the run's events carried (``masker``) in it."""
    for victim in (artifact_dir / "command", private / "ansible.cfg"):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()
    shutil.rmtree(private / "env", ignore_errors=True)
    events = artifact_dir / "job_events"
    if events.is_dir():
        for partial in events.glob("*-partial.json*"):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    for name in ("stdout", "stderr"):
        f = artifact_dir / name
        if f.is_file():
            text = f.read_text(encoding="utf-8", errors="replace")
            cleaned = redact_text(text)
            if masker is not None:
                cleaned = masker.mask_text(cleaned)
            if cleaned != text:
                write_private(f, cleaned)


def prune(root: Path, keep: int) -> None:
    try:
        dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except FileNotFoundError:
        return
    dirs.sort(key=lambda p: p.stat().st_mtime)
    for old in dirs[: max(0, len(dirs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
