"""Build the wheel and install it where the repository is not: helpers for tests/deploy.

Why: "the wheel works outside the repo" is only shown by building it the way a user does
(``pip wheel`` of a copy of the source, so nothing in the checkout is touched) and running
the installed ``tailops`` from a venv in a temporary directory with its own ``cwd``.

The venv (what we chose, see docs/operations.md): tailops itself is installed from the
wheel, while its dependencies are *reused* from the shared test venv through a ``.pth``
line naming a *dependency view* (installing ansible & co. from the index would add about a
minute per run, and no index is reachable offline). The view is a directory of symlinks to
everything in the test venv's site-packages except tailops itself and pip, so pip in the new
venv sees every declared dependency as installed (and fails if one is missing) but does not
see the checkout's editable tailops. The console scripts a full install would have put into
the venv's ``bin`` (``ansible-playbook`` and friends) are written there from the
dependencies' own entry points. Python is the same minor version as the test venv (pyenv's 3.12).

pipx (``pipx_install``) gets the same view through ``--preinstall`` of a tiny local wheel
that holds only the ``.pth`` line, so ``pipx install --pip-args="--no-index --find-links
DIR"`` of the built wheel resolves tailops' dependencies offline and exposes its app.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.helpers import REPO_ROOT, testbed_cache

__all__ = [
    "SOURCE_PARTS",
    "build_wheel",
    "clean_env",
    "copy_source",
    "dependency_view",
    "install_wheel_venv",
    "pipx_install",
    "pyenv_python",
    "source_key",
]

# What a build needs: the package, its metadata, the catalog it ships.
SOURCE_PARTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "tailops", "playbooks", "roles")
_SKIP = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}


def _ignore(_directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP or n.endswith((".pyc", ".egg-info"))}


def _files(parts: tuple[str, ...] = SOURCE_PARTS) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        path = REPO_ROOT / part
        if path.is_file():
            out.append(path)
            continue
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(REPO_ROOT)
            if f.is_file() and not any(p in _SKIP or p.endswith(".egg-info") for p in rel.parts) and f.suffix != ".pyc":
                out.append(f)
    return out


def source_key(*extra: Path) -> str:
    """A content key over the build inputs (plus ``extra`` files): the image cache tag."""
    digest = hashlib.sha256()
    for f in [*_files(), *extra]:
        digest.update(str(f.relative_to(REPO_ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def copy_source(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in SOURCE_PARTS:
        src = REPO_ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=_ignore)
        else:
            shutil.copy2(src, dest / part)
    return dest


def clean_env(*, bin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This process' environment without the test venv on PATH, PYTHONPATH or TAILOPS_*."""
    test_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TAILOPS_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    path = [p for p in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) if p and p != test_bin]
    if bin_dir is not None:
        path.insert(0, str(bin_dir))
    env["PATH"] = os.pathsep.join(path)
    env.update(extra)
    return env


def build_wheel(workdir: Path) -> Path:
    """``pip wheel`` of a copy of the source: the wheel a user would build."""
    src = copy_source(workdir / "src")
    dist = workdir / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    [wheel] = dist.glob("tailops-*.whl")
    return wheel


def pyenv_python(version: str) -> str:
    """An interpreter of ``version`` (pyenv's, else pythonX.Y on PATH)."""
    proc = subprocess.run(
        ["pyenv", "which", "python3"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYENV_VERSION": version},
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    found = shutil.which(f"python{version}")
    assert found, f"no Python {version} (pyenv or python{version} on PATH)"
    return found


def _write_console_scripts(venv: Path, dists: tuple[str, ...]) -> None:
    python = venv / "bin" / "python"
    for dist in dists:
        for ep in importlib.metadata.distribution(dist).entry_points.select(group="console_scripts"):
            module, _, attr = ep.value.partition(":")
            head, _, rest = attr.partition(".")
            call = f"_entry.{rest}()" if rest else "_entry()"
            script = venv / "bin" / ep.name
            script.write_text(
                f"#!{python}\nimport sys\nfrom {module} import {head} as _entry\nsys.exit({call})\n",
                encoding="utf-8",
            )
            script.chmod(0o755)


def dependency_view(dest: Path) -> Path:
    """A directory of symlinks to the test venv's site-packages minus tailops and pip (see module doc)."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.endswith(".pth") or name.startswith(("tailops", "__editable__", "_tailops", "pip-", "pipx")):
            continue
        if name in ("pip", "__pycache__"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


def install_wheel_venv(wheel: Path, venv: Path) -> Path:
    """A fresh venv at ``venv`` with tailops from ``wheel``; dependencies reused (see module doc)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([pyenv_python(version), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{version}" / "site-packages"
    view = dependency_view(venv.parent / "dependencies")
    (site / "_tailops_test_dependencies.pth").write_text(f"{view}\n")
    # With dependencies: pip must find each one the wheel declares in the view (offline).
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    proc = subprocess.run(
        [*pip, "-q", "--no-index", str(wheel)], capture_output=True, text=True, check=False, env=clean_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _write_console_scripts(venv, ("ansible-core",))
    return venv


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def dependency_view_wheel(view: Path, dest_dir: Path) -> Path:
    """A wheel ``tailops-test-deps`` whose only content is a ``.pth`` line naming ``view``."""
    name, version = "tailops_test_deps", "1.0"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.pth": f"{view}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: tailops-test-deps\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel = dest_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return wheel


def pipx_env(root: Path) -> dict[str, str]:
    """pipx's home, bin and man dirs under ``root``; no index; shared libs not upgraded (offline).

    pipx's shared libraries (its own venv holding pip, made with ensurepip: ~10 s of CPU)
    live in the machine's test-bed cache, as they would in a user's PIPX_HOME after the
    first install; pipx locks and repairs them itself.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    return clean_env(
        PIPX_SHARED_LIBS=str(testbed_cache() / f"pipx-shared-{version}"),
        PIPX_HOME=str(root / "home"),
        PIPX_BIN_DIR=str(root / "bin"),
        PIPX_MAN_DIR=str(root / "man"),
        PIP_NO_INDEX="1",
        PIPX_DISABLE_SHARED_LIBS_AUTO_UPGRADE="1",
    )


def pipx_install(wheel: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """``pipx install`` of ``wheel`` with PIPX_HOME/PIPX_BIN_DIR under ``root``, offline.

    The find-links directory holds the tailops wheel and the dependency-view wheel (preinstalled,
    see module doc); ``--no-index`` keeps pip off the network.
    """
    links = root / "wheels"
    links.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, links / wheel.name)
    dependency_view_wheel(dependency_view(root / "dependencies"), links)
    pip_args = f"--no-index --find-links {links}"
    command = [sys.executable, "-m", "pipx", "install", "--pip-args", pip_args, "--preinstall", "tailops-test-deps"]
    return subprocess.run(
        [*command, str(links / wheel.name)],
        capture_output=True,
        text=True,
        check=False,
        env=pipx_env(root),
        cwd=root,
        timeout=600,
    )
