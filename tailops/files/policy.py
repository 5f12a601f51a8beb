"""Which paths the file tools may touch, and the only way they open them.

Why this module exists: an agent names a path; the server must read it only if
it lies, *after* every symlink and ``..`` is resolved, under one of
``files.allowed_roots``, is not one of the server's own secrets, matches no
deny pattern, and is a plain regular file. Checking a string is not enough (a
component can be swapped for a symlink between the check and the open, a FIFO
blocks ``open()`` forever, a hard link gives a secret a second innocent name),
so the check and the open are one operation here:

1. ``os.path.realpath`` resolves the request; the result must be inside a root
   (rule ``outside_allowed_roots``), outside the server's data dir, keys,
   audit log and config (rule ``server_private``), and no component may match
   ``files.deny_patterns`` (rule ``deny_pattern``).
2. The resolved path is then opened *component by component* from the root's
   directory descriptor with ``O_NOFOLLOW`` (and ``O_DIRECTORY`` for every
   directory), so a symlink that appears after step 1 fails the open (rule
   ``symlink_race``) instead of being followed. Every directory passed through
   is compared by ``(st_dev, st_ino)`` with the server's private directories,
   which also catches bind mounts.
3. The last component is ``lstat``-ed first; anything but a regular file (FIFO,
   socket, device, directory) is refused (rule ``not_regular_file``) before it
   is ever opened. It is then opened ``O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
   O_NOCTTY`` and ``fstat`` must show the same regular file.
4. Identity: the opened file's ``(st_dev, st_ino)`` must not be one of the
   server's private files. A file with ``st_nlink > 1`` is compared against
   every file under the private directories (bounded scan), and is refused
   anyway (rule ``hard_link``) unless ``files.allow_hard_links`` is on: another
   name of the same inode would make the name-based deny patterns meaningless.

What this module must never do: open a path any other way, follow a symlink
while opening, block on a special file, or put file content into an error
message. Errors name the rule that refused and what to do instead.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tailops.config import SYSTEM_CONFIG_PATH
from tailops.errors import InvalidInput, NotFound, PathRefused

if TYPE_CHECKING:
    from tailops.config import Settings
    from tailops.runtime import Runtime

__all__ = [
    "MAX_PATH_CHARS",
    "RULES",
    "FilePolicy",
    "OpenedDir",
    "OpenedFile",
    "file_kind",
]

MAX_PATH_CHARS = 4096
# How many entries the hard-link scan of the private directories may look at.
_PRIVATE_SCAN_LIMIT = 20000

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

# Every rule a refusal can name (docs/files-network.md lists them).
RULES: dict[str, str] = {
    "outside_allowed_roots": "the path (after resolving symlinks and ..) is not under files.allowed_roots",
    "server_private": "the server's own data dir, keys, audit log and config are never readable",
    "deny_pattern": "a path component matches files.deny_patterns",
    "not_regular_file": "only regular files are read (no FIFOs, sockets, devices)",
    "hard_link": "a file with several hard links is refused unless files.allow_hard_links is on",
    "symlink_race": "a path component became a symlink or changed while it was being opened",
    "os_permission": "the operating system denied access",
}


def file_kind(mode: int) -> str:
    """A short name for the file type in ``mode``."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char_device"
    if stat.S_ISBLK(mode):
        return "block_device"
    return "other"


def _refuse(rule: str, detail: str, hint: str | None = None) -> PathRefused:
    return PathRefused(f"file access refused (rule {rule}): {detail}", hint=hint)


def _inode(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _is_tailops_config_dir(directory: Path) -> bool:
    return directory.name in ("tailops", ".tailops") or directory == SYSTEM_CONFIG_PATH.parent


def _is_symlink_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


@dataclass
class OpenedFile:
    """A regular file opened by :meth:`FilePolicy.open_file` (fd closed on exit)."""

    fd: int
    path: Path  # resolved path
    st: os.stat_result


@dataclass
class OpenedDir:
    """A directory opened by :meth:`FilePolicy.open_dir` (fd closed on exit)."""

    fd: int
    path: Path  # resolved path
    st: os.stat_result
    root: Path


@dataclass
class _Resolved:
    requested: str
    real: Path
    root: Path
    parts: tuple[str, ...]


@dataclass
class FilePolicy:
    """The rules for one server instance (build with :meth:`from_runtime`)."""

    roots: tuple[Path, ...]
    configured_roots: tuple[Path, ...]
    deny_patterns: tuple[str, ...]
    private_dirs: tuple[Path, ...]
    private_files: tuple[Path, ...]
    private_prefixes: tuple[Path, ...] = ()
    allow_hard_links: bool = False
    _private_scan: tuple[frozenset[tuple[int, int]], bool] | None = field(default=None, repr=False)

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_runtime(cls, rt: Runtime) -> FilePolicy:
        return cls.from_settings(rt.config, rt.config_path)

    @classmethod
    def from_settings(cls, config: Settings, config_path: Path | None = None) -> FilePolicy:
        cfg = config.files
        roots: list[Path] = []
        for r in cfg.allowed_roots:
            if not r.is_absolute():
                continue
            real = _real(r)
            if real.is_dir() and real not in roots:
                roots.append(real)
        private_dirs = [config.server.data_dir, config.keys_dir, config.previous_keys_dir]
        private_files = [
            config.public_key_path,
            config.private_key_path,
            config.audit_path,
            config.db_path,
            config.db_path.with_name(config.db_path.name + "-wal"),
            config.db_path.with_name(config.db_path.name + "-shm"),
        ]
        # Rotated audit logs live next to the live one and share its name as prefix.
        prefixes = [config.audit_path]
        if config_path is not None:
            private_files.append(config_path)
            if _is_tailops_config_dir(config_path.parent):
                private_dirs.append(config_path.parent)
        if config.audit_path.parent.name == "audit":
            private_dirs.append(config.audit_path.parent)

        # Both the configured and the resolved spelling: the check runs on resolved paths,
        # and a private path that is itself a symlink protects its target too.
        def both(paths: list[Path]) -> tuple[Path, ...]:
            out: list[Path] = []
            for p in paths:
                for q in (Path(os.path.abspath(p)), _real(p)):
                    if q not in out:
                        out.append(q)
            return tuple(out)

        return cls(
            roots=tuple(roots),
            configured_roots=tuple(cfg.allowed_roots),
            deny_patterns=tuple(p.lower() for p in cfg.deny_patterns),
            private_dirs=both(private_dirs),
            private_files=both(private_files),
            private_prefixes=both(prefixes),
            allow_hard_links=cfg.allow_hard_links,
        )

    # -- pure checks ------------------------------------------------------------------
    def roots_text(self) -> str:
        shown = self.roots or self.configured_roots
        return ", ".join(str(r) for r in shown) or "(none configured)"

    def is_private(self, path: Path) -> bool:
        """True if ``path`` (absolute, resolved) is or lies inside one of the server's own files/dirs."""
        for d in self.private_dirs:
            if path == d or path.is_relative_to(d):
                return True
        if path in self.private_files:
            return True
        return any(path.parent == p.parent and path.name.startswith(p.name) for p in self.private_prefixes)

    def contains_private(self, path: Path) -> bool:
        """True if a private dir or file lies inside directory ``path``."""
        return any(p.is_relative_to(path) for p in (*self.private_dirs, *self.private_files))

    def denied_by(self, name: str) -> str | None:
        """The deny pattern ``name`` matches (case-insensitive), if any."""
        low = name.lower()
        for pattern in self.deny_patterns:
            if fnmatch.fnmatchcase(low, pattern):
                return pattern
        return None

    def resolve(self, path: str) -> _Resolved:
        """Validate and resolve a requested path; raise unless every rule passes."""
        if not isinstance(path, str) or not path:
            raise InvalidInput("path is empty; give an absolute path under an allowed root.")
        if len(path) > MAX_PATH_CHARS:
            raise InvalidInput(f"path is longer than {MAX_PATH_CHARS} characters.")
        if "\x00" in path:
            raise InvalidInput("path contains a NUL character.")
        if not path.startswith("/"):
            raise InvalidInput(f"path must be absolute (start with /); allowed roots: {self.roots_text()}.")
        if not self.roots:
            raise _refuse(
                "outside_allowed_roots",
                f"no allowed root exists on this host (configured: {self.roots_text()}).",
                hint="Set files.allowed_roots to existing directories.",
            )
        try:
            real = _real(Path(path))
        except (OSError, ValueError) as exc:
            raise InvalidInput("path cannot be resolved; check its spelling.") from exc
        lexical = Path(os.path.normpath(path))
        root = next((r for r in self.roots if real == r or real.is_relative_to(r)), None)
        if root is None:
            via = ""
            if real != Path(path):
                via = " (it resolves through a symlink or '..' to a place outside them)"
            raise _refuse(
                "outside_allowed_roots",
                f"{path} is not under the allowed roots {self.roots_text()}{via}.",
                hint="Ask for a path under an allowed root, or have an admin extend files.allowed_roots.",
            )
        if self.is_private(real) or self.is_private(lexical):
            raise _refuse(
                "server_private",
                f"{path} belongs to the tailops server's own data, keys, audit log or config.",
                hint="These are never readable through tools; use the tailops CLI on the host.",
            )
        parts = real.relative_to(root).parts
        names = [*parts]
        if lexical.name:
            names.append(lexical.name)
        for name in names:
            pattern = self.denied_by(name)
            if pattern is not None:
                raise _refuse(
                    "deny_pattern",
                    f"{path} matches the deny pattern {pattern!r} (files.deny_patterns).",
                    hint="Secrets such as keys and password files are never read.",
                )
        return _Resolved(requested=path, real=real, root=root, parts=parts)

    # -- identity checks ------------------------------------------------------------------
    def _private_dir_inodes(self) -> set[tuple[int, int]]:
        out: set[tuple[int, int]] = set()
        for d in self.private_dirs:
            with contextlib.suppress(OSError):
                out.add(_inode(os.stat(d)))
        return out

    def _private_file_inodes(self) -> set[tuple[int, int]]:
        out: set[tuple[int, int]] = set()
        for f in self.private_files:
            with contextlib.suppress(OSError):
                out.add(_inode(os.stat(f)))
        for p in self.private_prefixes:
            with contextlib.suppress(OSError), os.scandir(p.parent) as it:
                for entry in it:
                    if entry.name.startswith(p.name):
                        with contextlib.suppress(OSError):
                            out.add(_inode(entry.stat(follow_symlinks=False)))
        return out

    def _scan_private(self) -> tuple[frozenset[tuple[int, int]], bool]:
        """Inodes of every file under the private dirs; bool = the scan was complete."""
        if self._private_scan is not None:
            return self._private_scan
        seen: set[tuple[int, int]] = set()
        budget = _PRIVATE_SCAN_LIMIT
        complete = True
        stack = [d for d in self.private_dirs if d.is_dir()]
        while stack and complete:
            d = stack.pop()
            try:
                with os.scandir(d) as it:
                    for entry in it:
                        budget -= 1
                        if budget < 0:
                            complete = False
                            break
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        seen.add(_inode(st))
                        if stat.S_ISDIR(st.st_mode):
                            stack.append(Path(entry.path))
            except OSError:
                continue
        self._private_scan = (frozenset(seen), complete)
        return self._private_scan

    def check_dir_identity(self, st: os.stat_result, shown: str) -> None:
        """Refuse a directory that *is* one of the private dirs (bind mounts included)."""
        if _inode(st) in self._private_dir_inodes():
            raise _refuse(
                "server_private",
                f"{shown} is (or is mounted from) the tailops server's own directory.",
                hint="These are never readable through tools.",
            )

    def check_file_identity(self, st: os.stat_result, shown: str) -> None:
        """Refuse the server's private files by inode, and hard links unless allowed."""
        ident = _inode(st)
        if ident in self._private_file_inodes():
            raise _refuse(
                "server_private",
                f"{shown} is another name (hard link) of a tailops server file.",
                hint="These are never readable through tools.",
            )
        if st.st_nlink > 1:
            inodes, complete = self._scan_private()
            if ident in inodes:
                raise _refuse(
                    "server_private",
                    f"{shown} is another name (hard link) of a file in the tailops server's data.",
                    hint="These are never readable through tools.",
                )
            if not self.allow_hard_links or not complete:
                raise _refuse(
                    "hard_link",
                    f"{shown} has {st.st_nlink} hard links; another name of the same file could be a secret "
                    "the deny patterns would refuse.",
                    hint="Read it by a path with a single link, or have an admin set files.allow_hard_links.",
                )

    # -- opening ------------------------------------------------------------------------------
    def _walk_error(self, exc: OSError, shown: str) -> Exception:
        if exc.errno == errno.ENOENT:
            return NotFound(f"{shown} does not exist.")
        if exc.errno == errno.ELOOP:
            return _refuse(
                "symlink_race",
                f"a component of {shown} is a symlink at open time (it changed after the check).",
                hint="Retry; if it persists, the directory is being modified under you.",
            )
        if exc.errno == errno.ENOTDIR:
            return InvalidInput(f"a component of {shown} is not a directory.")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return _refuse("os_permission", f"the operating system denied access to {shown}.")
        code = errno.errorcode.get(exc.errno or 0, "error")
        return _refuse("os_permission", f"{shown} cannot be opened ({code}).")

    def _open_dirs(self, res: _Resolved, names: tuple[str, ...]) -> int:
        """Open ``res.root`` then each of ``names`` below it without following symlinks."""
        try:
            fd = os.open(res.root, _DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise self._walk_error(exc, res.requested) from exc
        try:
            self.check_dir_identity(os.fstat(fd), res.requested)
            for name in names:
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno == errno.ENOTDIR and _is_symlink_at(fd, name):
                        # O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR on Linux, ELOOP elsewhere.
                        exc = OSError(errno.ELOOP, "symlink")
                    raise self._walk_error(exc, res.requested) from exc
                os.close(fd)
                fd = nfd
                self.check_dir_identity(os.fstat(fd), res.requested)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def open_dir(self, path: str) -> Iterator[OpenedDir]:
        """Open an allowed directory (every component without following symlinks)."""
        res = self.resolve(path)
        fd = self._open_dirs(res, res.parts)
        try:
            yield OpenedDir(fd=fd, path=res.real, st=os.fstat(fd), root=res.root)
        finally:
            os.close(fd)

    def lstat(self, path: str) -> tuple[Path, os.stat_result]:
        """``lstat`` of an allowed path without opening it (any file type)."""
        res = self.resolve(path)
        if not res.parts:
            fd = self._open_dirs(res, ())
            try:
                return res.real, os.fstat(fd)
            finally:
                os.close(fd)
        fd = self._open_dirs(res, res.parts[:-1])
        try:
            try:
                st = os.stat(res.parts[-1], dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                raise self._walk_error(exc, path) from exc
            if stat.S_ISDIR(st.st_mode):
                self.check_dir_identity(st, path)
            elif stat.S_ISREG(st.st_mode):
                self.check_file_identity(st, path)
            return res.real, st
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[OpenedFile]:
        """Open an allowed regular file for reading (see the module docstring)."""
        res = self.resolve(path)
        if not res.parts:
            raise _refuse("not_regular_file", f"{path} is a directory; list or search it instead.")
        dfd = self._open_dirs(res, res.parts[:-1])
        try:
            fd = self.open_at(dfd, res.parts[-1], path)
        finally:
            os.close(dfd)
        try:
            yield OpenedFile(fd=fd, path=res.real, st=os.fstat(fd))
        finally:
            os.close(fd)

    def open_at(self, dir_fd: int, name: str, shown: str) -> int:
        """Open regular file ``name`` in directory ``dir_fd``; the caller closes the fd."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            raise self._walk_error(exc, shown) from exc
        if stat.S_ISLNK(st.st_mode):
            raise _refuse("symlink_race", f"{shown} is a symlink at open time (it changed after the check).")
        if not stat.S_ISREG(st.st_mode):
            kind = file_kind(st.st_mode)
            hint = (
                "List or search a directory instead."
                if kind == "directory"
                else "FIFOs, sockets and devices are never opened: reading them can block or act."
            )
            raise _refuse("not_regular_file", f"{shown} is a {kind.replace('_', ' ')}, not a regular file.", hint=hint)
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise self._walk_error(exc, shown) from exc
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or _inode(fst) != _inode(st):
                raise _refuse("symlink_race", f"{shown} was replaced while it was being opened.")
            self.check_file_identity(fst, shown)
        except BaseException:
            os.close(fd)
            raise
        return fd
