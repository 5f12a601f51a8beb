"""What ``tailops init`` sets up: a commented config, the token key pair, the data dir.

Why it exists: a first install needs a handful of files with exactly the right owners and
modes (data dir 0700, private key 0600, config not writable by the server), and getting
one wrong is a security hole nobody notices. :func:`plan_init` decides every path,
:func:`check_targets` refuses *before anything is written* when any of them already
exists, and :func:`apply_init` writes them.

Two layouts: the user's (platformdirs, like :mod:`tailops.config`'s defaults) and
``--system`` (``/etc/tailops/config.yaml``, ``/var/lib/tailops``, a ``tailops`` system
user without a login shell owning the data dir; the config stays ``root:tailops 0640``
so the server can read but never rewrite it, and sets ``server.proxy_socket`` to
``/run/tailops/proxy.sock``, the directory the systemd unit's ``RuntimeDirectory`` makes).

What it must never do: overwrite or chmod anything that existed before (a refused init
writes nothing), follow a symlink planted at a target, create users outside
``--system``, or print a private key.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from tailops import __version__
from tailops.auth.tokens import generate_keypair
from tailops.config_template import render_config
from tailops.errors import ConfigError, InvalidInput, PermissionDenied

__all__ = ["SYSTEM_USER", "InitPlan", "InitResult", "apply_init", "check_targets", "plan_init"]

SYSTEM_USER = "tailops"
SYSTEM_CONFIG_DIR = Path("/etc/tailops")
SYSTEM_DATA_DIR = Path("/var/lib/tailops")
# Where `tailscale serve` connects (identity headers are trusted on this socket only).
SYSTEM_PROXY_SOCKET = Path("/run/tailops/proxy.sock")


@dataclass(frozen=True)
class InitPlan:
    """Every path ``init`` will create, decided before anything is touched."""

    system: bool
    config_dir: Path
    data_dir: Path

    @property
    def config_path(self) -> Path:
        return self.config_dir / "config.yaml"

    @property
    def private_key(self) -> Path:
        return self.data_dir / "keys" / "token.key"

    @property
    def public_key(self) -> Path:
        return self.data_dir / "keys" / "token.pub"

    def files(self) -> list[Path]:
        return [self.config_path, self.private_key, self.public_key]


def plan_init(*, system: bool, config_dir: Path | None = None, data_dir: Path | None = None) -> InitPlan:
    """The targets: the options given, else the system or the user layout."""
    if system:
        default_config, default_data = SYSTEM_CONFIG_DIR, SYSTEM_DATA_DIR
    else:
        default_config = Path(platformdirs.user_config_dir("tailops"))
        default_data = Path(platformdirs.user_state_dir("tailops"))
    return InitPlan(
        system=system,
        config_dir=(config_dir or default_config).absolute(),
        data_dir=(data_dir or default_data).absolute(),
    )


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def check_targets(plan: InitPlan) -> None:
    """Refuse (InvalidInput, exit 2) if any target exists; nothing has been written yet."""
    if plan.system and os.geteuid() != 0:
        raise PermissionDenied("`tailops init --system` must run as root (it creates a user and /etc, /var/lib paths).")
    if plan.config_dir == plan.data_dir or plan.data_dir in plan.config_path.parents:
        raise InvalidInput("the config dir and the data dir must be two separate directories.")
    clashes = [str(p) for p in plan.files() if _exists(p)]
    for directory in (plan.data_dir, plan.config_dir):
        if directory.is_symlink():
            clashes.append(f"{directory} (a symlink)")
        elif directory.exists() and not directory.is_dir():
            clashes.append(f"{directory} (not a directory)")
    if plan.data_dir.is_dir() and not plan.data_dir.is_symlink() and any(plan.data_dir.iterdir()):
        clashes.append(f"{plan.data_dir} (not empty)")
    if clashes:
        raise InvalidInput(
            f"refusing to overwrite: {', '.join(dict.fromkeys(clashes))} already exist(s); nothing was changed.",
            hint="Move them away, or point --config-dir/--data-dir at new directories.",
        )
    if plan.system and shutil.which("useradd") is None and not _user_exists(SYSTEM_USER):
        raise ConfigError("`useradd` is not available, so the tailops system user cannot be created.")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _ensure_system_user() -> tuple[int, int, bool]:
    """The tailops user's (uid, gid, created): an existing one is reused as is."""
    created = False
    if not _user_exists(SYSTEM_USER):
        proc = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--home-dir",
                str(SYSTEM_DATA_DIR),
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "tailops MCP server",
                SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ConfigError(f"useradd failed (rc={proc.returncode}): {proc.stderr.strip()[:300]}")
        created = True
    entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid, created


def _make_dir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    os.chmod(path, mode)


def _write_new(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(Path(dirpath) / name, uid, gid, follow_symlinks=False)


@dataclass(frozen=True)
class InitResult:
    plan: InitPlan
    user_created: bool


def apply_init(plan: InitPlan, *, before_chown: Callable[[], None] | None = None) -> InitResult:
    """Create the data dir (0700), the key pair and the config; ``--system`` also the user.

    Call :func:`check_targets` first. ``before_chown`` runs once every file exists (the CLI
    writes its audit record there), so on ``--system`` the audit log is chowned with the rest
    of the data dir to the tailops user.
    """
    uid = gid = -1
    created = False
    if plan.system:
        uid, gid, created = _ensure_system_user()
    try:
        _make_dir(plan.data_dir, 0o700)
        generate_keypair(plan.private_key, plan.public_key)
        server: dict[str, str] = {"data_dir": str(plan.data_dir)}
        if plan.system:
            # systemd's RuntimeDirectory=tailops (deploy/systemd/tailops.service) makes /run/tailops.
            server["proxy_socket"] = str(SYSTEM_PROXY_SOCKET)
        config_text = render_config(
            {"server": server},
            header=f"Written by `tailops init{' --system' if plan.system else ''}` "
            f"(tailops {__version__}, {datetime.now(UTC):%Y-%m-%d}).",
        )
        if plan.system:
            _make_dir(plan.config_dir, 0o750)
            os.chown(plan.config_dir, 0, gid)
            _write_new(plan.config_path, config_text, 0o640)
            os.chown(plan.config_path, 0, gid)
        else:
            _make_dir(plan.config_dir, 0o700)
            _write_new(plan.config_path, config_text, 0o600)
        if before_chown is not None:
            before_chown()
        if plan.system:
            _chown_tree(plan.data_dir, uid, gid)
    except OSError as exc:
        raise ConfigError(f"init could not write {exc.filename}: {exc.strerror}.") from exc
    return InitResult(plan=plan, user_created=created)
