"""Build hook: ship the vetted catalog inside the wheel.

Why it exists: an installed ``tailops`` (``pip install tailops-*.whl``, ``pipx
install``, the container image) has no git checkout next to it, yet plans need the
exact playbooks and roles the lock pins. ``build_py`` copies ``playbooks/``
(manifests, playbooks, ``catalog.lock.json``) and ``roles/`` (tasks, defaults,
meta, ``library/``, ``filter_plugins/``, ...) into ``tailops/_catalog/`` of the
build; :func:`tailops.changes.catalog.scanning.default_catalog_dirs` prefers that copy.

What it must never do: ship test scaffolding (``molecule/`` scenarios, the
``roles/_molecule`` helpers, caches), or write into the source tree: an editable
install (``pip install -e .``) keeps reading the repository's own folders, so the
copy is skipped there. Everything else is configured in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Same exclusions as the catalog hash (tailops/changes/catalog/pinning.py _SKIP_DIRS), so the
# shipped copy hashes exactly like the checkout the lock was made from.
SKIP_DIRS = {"molecule", "__pycache__", ".ansible", ".cache", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".retry")


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = {n for n in names if n in SKIP_DIRS or n.endswith(SKIP_SUFFIXES)}
    if Path(directory).name == "roles":
        skipped |= {n for n in names if n.startswith(("_", "."))}  # roles/_molecule: test helpers only
    return skipped


class BuildPyWithCatalog(build_py):
    """``build_py`` plus the catalog copy into ``<build_lib>/tailops/_catalog``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "tailops" / "_catalog"
        if dest.exists():
            shutil.rmtree(dest)
        for name in ("playbooks", "roles"):
            source = ROOT / name
            if not (source / ".").is_dir():
                raise SystemExit(f"setup.py: {source} is missing; the wheel would ship without its catalog")
            shutil.copytree(source, dest / name, ignore=_ignore)


setup(cmdclass={"build_py": BuildPyWithCatalog})
