"""An offline apt repository for container hosts: real ``.deb`` files, real indexes.

Why: package install/upgrade/downgrade/remove and "updates available" must be
real apt operations in the tests, and no Debian mirror is reachable from a
container. This module builds synthetic packages with ``dpkg-deb`` and indexes
them with ``dpkg-scanpackages`` into two flat repositories:

``main``      tbdemo 1.0-1, 1.1-1, 2.0-1; tbtool 1.0-1, 1.1-1; tbconf 1.0-1 (ships
              the conffile /etc/tbconf.conf); tbsec 1.0-1
``security``  tbdemo 1.0-2 and tbsec 1.0-2, with a Release file that says
              Origin "Debian", Label "Debian-Security", Suite/Codename
              "bookworm-security" (so "security-only" updates are testable)

The containers mount the parent directory read-only at ``/repo`` and use
``deb [trusted=yes] file:/repo/main ./`` and ``file:/repo/security ./`` as their
only sources (see :mod:`tests.testbed.hosts`).

The result is cached by a content key (this recipe) in a directory named by that
key (``aptrepo-<key>``), so checkouts with different recipes (worktrees, branches)
never replace each other's repository under running containers; a directory that
already carries the key is reused; a new build goes to a temporary sibling and is
renamed into place, so concurrent test sessions never see half a repository.
This module must never touch the host's own apt configuration.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PACKAGES", "SECURITY_PACKAGES", "AptRepo", "build_apt_repo", "default_repo_dir"]

# (name, version, files: path -> content, conffiles)
_Pkg = tuple[str, str, dict[str, str], tuple[str, ...]]


def _demo(name: str, version: str) -> _Pkg:
    return (name, version, {f"/usr/share/{name}/VERSION": f"{name} {version}\n"}, ())


_TBCONF = "# tbconf test configuration\nlisten = 127.0.0.1\nport = 8080\nlog_level = info\n"

PACKAGES: tuple[_Pkg, ...] = (
    _demo("tbdemo", "1.0-1"),
    _demo("tbdemo", "1.1-1"),
    _demo("tbdemo", "2.0-1"),
    _demo("tbtool", "1.0-1"),
    _demo("tbtool", "1.1-1"),
    _demo("tbsec", "1.0-1"),
    (
        "tbconf",
        "1.0-1",
        {"/etc/tbconf.conf": _TBCONF},
        ("/etc/tbconf.conf",),
    ),
)
SECURITY_PACKAGES: tuple[_Pkg, ...] = (
    _demo("tbdemo", "1.0-2"),
    _demo("tbsec", "1.0-2"),
)

_RELEASE_FIELDS = {
    "main": {
        "Origin": "tailops-test",
        "Label": "tailops-test",
        "Suite": "bookworm",
        "Codename": "bookworm",
    },
    "security": {
        "Origin": "Debian",
        "Label": "Debian-Security",
        "Suite": "bookworm-security",
        "Codename": "bookworm-security",
    },
}


@dataclass(frozen=True)
class AptRepo:
    """A built repository tree: ``root/main`` and ``root/security`` flat repos."""

    root: Path
    key: str
    mount_point: str = "/repo"

    @property
    def main(self) -> Path:
        return self.root / "main"

    @property
    def security(self) -> Path:
        return self.root / "security"

    def sources_list(self) -> str:
        """The one-line sources a container uses when ``root`` is mounted at /repo."""
        return "".join(f"deb [trusted=yes] file:{self.mount_point}/{part} ./\n" for part in ("main", "security"))

    def versions(self, package: str) -> list[str]:
        """All versions of ``package`` across both repos (sorted as built)."""
        return [v for (n, v, _f, _c) in (*PACKAGES, *SECURITY_PACKAGES) if n == package]


def _recipe_key() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    return digest.hexdigest()[:12]


def default_repo_dir() -> Path:
    """Machine-wide cache location of this recipe (outside the repo, survives test sessions)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tailops-testbed" / f"aptrepo-{_recipe_key()}"


def _build_deb(pkg: _Pkg, work: Path, out_dir: Path) -> None:
    name, version, files, conffiles = pkg
    root = work / f"{name}_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\n"
        f"Version: {version}\n"
        "Architecture: all\n"
        "Maintainer: tailops tests <tests@tailops.invalid>\n"
        "Section: misc\n"
        "Priority: optional\n"
        f"Description: tailops test package {name}\n"
        f" Synthetic package built by tests/testbed/aptrepo.py (version {version}).\n"
    )
    if conffiles:
        (root / "DEBIAN" / "conffiles").write_text("".join(f"{c}\n" for c in conffiles))
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    subprocess.run(
        [
            "dpkg-deb",
            "--build",
            "--root-owner-group",
            "-Zgzip",
            str(root),
            str(out_dir / f"{name}_{version}_all.deb"),
        ],
        check=True,
        capture_output=True,
    )


def _index(repo: Path, fields: dict[str, str]) -> None:
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=repo, check=True, capture_output=True, text=True
    ).stdout
    (repo / "Packages").write_text(packages)
    data = packages.encode()
    release = "".join(f"{k}: {v}\n" for k, v in fields.items())
    release += "Date: Sat, 01 Jun 2024 00:00:00 UTC\nArchitectures: all amd64 arm64\nComponents: ./\n"
    release += "Description: tailops offline test repository\n"
    release += f"SHA256:\n {hashlib.sha256(data).hexdigest()} {len(data)} Packages\n"
    (repo / "Release").write_text(release)


def build_apt_repo(dest: Path | None = None) -> AptRepo:
    """Build (or reuse) the two flat repos under ``dest`` (default: the machine cache)."""
    dest = (dest or default_repo_dir()).absolute()
    key = _recipe_key()
    if (dest / ".key").is_file() and (dest / ".key").read_text().strip() == key:
        return AptRepo(root=dest, key=key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".aptrepo-", dir=dest.parent))
    try:
        work = tmp / ".work"
        for part, pkgs in (("main", PACKAGES), ("security", SECURITY_PACKAGES)):
            out = tmp / part
            out.mkdir()
            for pkg in pkgs:
                _build_deb(pkg, work, out)
            _index(out, _RELEASE_FIELDS[part])
        shutil.rmtree(work)
        (tmp / ".key").write_text(key + "\n")
        tmp.chmod(0o755)
        if dest.exists():
            # Another recipe version (or a concurrent session): replace atomically enough.
            old = Path(tempfile.mkdtemp(prefix=".aptrepo-old-", dir=dest.parent))
            with contextlib.suppress(OSError):
                dest.rename(old / "repo")
            shutil.rmtree(old, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:
            # A concurrent session won the race; use its (identical) tree.
            if (dest / ".key").is_file() and (dest / ".key").read_text().strip() == key:
                return AptRepo(root=dest, key=key)
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return AptRepo(root=dest, key=key)
