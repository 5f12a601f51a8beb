"""Build the tailops container image from deploy/container/Dockerfile, cached by content key.

No registry and no package index are reachable from a ``docker build`` here, so:

- the base is ``tailops-base:trixie`` (scripts/testbed/build-trixie-base.sh: debootstrap +
  ``docker import``, Python 3.13);
- the dependencies come as an offline wheelhouse of CPython 3.13 wheels, made on this
  machine by pyenv's 3.13 ``pip wheel`` (which can reach the index) and cached in
  ``~/.cache/tailops-testbed/wheelhouse-<key of pyproject.toml>``;
- the build context is assembled in a temp dir (the source parts the Dockerfile copies,
  plus the wheelhouse in ``deploy/container/wheels``), so nothing is written into the repo.

The image tag carries a key over the context, the base image id and the wheelhouse, so an
unchanged tree reuses the image (the build takes minutes; a cache hit, milliseconds).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.deploy.installs import clean_env, copy_source, pyenv_python, source_key
from tests.helpers import REPO_ROOT, testbed_cache

__all__ = ["BASE_TAG", "IMAGE_REPO", "build_image", "ensure_trixie_base", "prune_old_images", "wheelhouse"]

BASE_TAG = "tailops-base:trixie"
IMAGE_REPO = "tailops-deploy"
CONTAINER_DIR = REPO_ROOT / "deploy" / "container"


def ensure_trixie_base() -> str:
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "testbed" / "build-trixie-base.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return BASE_TAG


def wheelhouse(wheel: Path) -> Path:
    """cp313 wheels of every dependency (no tailops wheel), cached by the pyproject key.

    ``wheel`` (the session's built tailops wheel) names the dependencies to fetch."""
    key = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    dest = testbed_cache() / f"wheelhouse-{key}"
    if (dest / ".complete").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wheelhouse-", dir=dest.parent))
    try:
        proc = subprocess.run(
            [pyenv_python("3.13"), "-m", "pip", "wheel", "-q", "-w", str(tmp / "wheels"), str(wheel)],
            capture_output=True,
            text=True,
            check=False,
            env=clean_env(),
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        for own in (tmp / "wheels").glob("tailops-*.whl"):
            own.unlink()
        (tmp / "wheels" / ".complete").write_text(key + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        (tmp / "wheels").rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _image_id(tag: str) -> str:
    proc = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def build_image(workdir: Path, wheel: Path) -> str:
    """The image tag (``tailops-deploy:<key>``), built only when no image has that key.

    The Dockerfile builds its own wheel from the source (its first stage); ``wheel`` is only
    used to make the dependency wheelhouse when that cache is cold."""
    base = ensure_trixie_base()
    wheels = wheelhouse(wheel)
    container_files = sorted(p for p in CONTAINER_DIR.rglob("*") if p.is_file() and p.suffix != ".whl")
    key = hashlib.sha256(
        (source_key(*container_files) + _image_id(base) + (wheels / ".complete").read_text()).encode()
    ).hexdigest()[:12]
    tag = f"{IMAGE_REPO}:{key}"
    if _image_id(tag):
        return tag
    context = copy_source(workdir / "context")
    shutil.copytree(CONTAINER_DIR, context / "deploy" / "container", ignore=shutil.ignore_patterns("*.whl"))
    for wheel in wheels.glob("*.whl"):
        shutil.copy2(wheel, context / "deploy" / "container" / "wheels" / wheel.name)
    proc = subprocess.run(
        ["docker", "build", "-q", "-f", "deploy/container/Dockerfile", "--build-arg", f"BASE={base}", "-t", tag, "."],
        cwd=context,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"docker build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    shutil.rmtree(context, ignore_errors=True)
    prune_old_images(keep=tag)
    return tag


def prune_old_images(keep: str, newest: int = 3) -> list[str]:
    """Remove what earlier builds left: the untagged build stages and every ``tailops-deploy``
    tag but the ``newest`` few (each source change makes a new ~730 MB image; a developer's
    engine would otherwise fill up). Never forced: an image a container still uses stays.
    Returns the tags it removed."""
    subprocess.run(
        ["docker", "image", "prune", "-f", "--filter", "label=org.tailops.stage=build"],
        capture_output=True,
        check=False,
    )
    listed = subprocess.run(
        ["docker", "image", "ls", IMAGE_REPO, "--format", "{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    tags = [line.split("\t", 1)[1] for line in sorted(listed.stdout.splitlines(), reverse=True) if "\t" in line]
    removed = []
    for tag in [t for t in tags if t != keep][max(0, newest - 1) :]:
        if subprocess.run(["docker", "rmi", tag], capture_output=True, check=False).returncode == 0:
            removed.append(tag)
    return removed
