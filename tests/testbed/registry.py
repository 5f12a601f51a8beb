"""A real image registry on loopback, with locally built images in several versions.

Why: image pulls and container updates must be tested as real registry
operations, and no public registry is reachable. Debian's ``docker-registry``
package (distribution 2.8, installed by scripts/testbed/setup-host.sh) runs as a
plain process with a generated config on ``127.0.0.1:<free port>`` (the Docker
engine treats 127.0.0.0/8 as an insecure registry, so plain HTTP works).

Images (built from ``tailops-target:base``, never pulled):

``tailops/webapp:1`` and ``:2``  a tiny ``python3 -m http.server`` on port 8000 serving
                                 ``webapp version N``, with a HEALTHCHECK that fetches it
``tailops/webapp:bad``           the same server with a HEALTHCHECK that always fails

Builds are cached by content key (recipe + base image id); the registry's
storage is seeded from a machine-wide cache so a session's push only uploads
manifests. After pushing, the registry-prefixed local tags are removed so a
pull in a test really goes to the registry. This module must never contact
anything but the local engine and its own registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import BASE_IMAGE, testbed_cache

__all__ = ["REPOSITORY", "TAGS", "LocalRegistry", "build_webapp_images", "start_local_registry"]

REPOSITORY = "tailops/webapp"
TAGS = ("1", "2", "bad")
_LOCAL_REPO = "tailops-testbed/webapp"

_HEALTH_OK = (
    'HEALTHCHECK --interval=1s --timeout=2s --start-period=10s --retries=3 CMD ["python3", "-c", '
    "\"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=1)\"]"
)
_HEALTH_BAD = 'HEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=2 CMD ["false"]'


def _dockerfile(tag: str) -> str:
    version = "1" if tag == "bad" else tag
    health = _HEALTH_BAD if tag == "bad" else _HEALTH_OK
    return (
        f"FROM {BASE_IMAGE}\n"
        "COPY index.html /srv/www/index.html\n"
        f'LABEL org.tailops.test.webapp.version="{tag}"\n'
        f"ENV WEBAPP_VERSION={version}\n"
        "EXPOSE 8000\n"
        f"{health}\n"
        'CMD ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", "/srv/www"]\n'
    )


def _index_html(tag: str) -> str:
    return f"webapp version {tag}\n"


def _context(tag: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in (("Dockerfile", _dockerfile(tag)), ("index.html", _index_html(tag))):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_webapp_images(client: Any) -> tuple[str, dict[str, str]]:
    """Build (or reuse) the webapp images locally; returns (content key, tag -> local image ref)."""
    base_id = client.images.get(BASE_IMAGE).id
    key = hashlib.sha256((base_id + "".join(_dockerfile(t) + _index_html(t) for t in TAGS)).encode()).hexdigest()[:12]
    refs: dict[str, str] = {}
    for tag in TAGS:
        ref = f"{_LOCAL_REPO}:{tag}-{key}"
        try:
            client.images.get(ref)
        except Exception:
            client.images.build(fileobj=io.BytesIO(_context(tag)), custom_context=True, tag=ref, rm=True, pull=False)
        refs[tag] = ref
    return key, refs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback only
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class LocalRegistry:
    """A running registry process; ``image(tag)`` is the reference to pull."""

    host_port: str
    storage: Path
    process: subprocess.Popen[bytes]
    config_path: Path
    pushed: dict[str, str]

    def image(self, tag: str) -> str:
        return f"{self.host_port}/{REPOSITORY}:{tag}"

    def url(self, path: str) -> str:
        return f"http://{self.host_port}{path}"

    def tags(self) -> list[str]:
        status, body = _get(self.url(f"/v2/{REPOSITORY}/tags/list"))
        if status != 200:
            return []
        return sorted(json.loads(body).get("tags") or [])

    def digest(self, tag: str) -> str | None:
        request = urllib.request.Request(
            self.url(f"/v2/{REPOSITORY}/manifests/{tag}"),
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                digest = resp.headers.get("Docker-Content-Digest")
                return str(digest) if digest else None
        except urllib.error.HTTPError:
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _start_process(storage: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    last_error = ""
    for _attempt in range(5):
        port = _free_port()
        host_port = f"127.0.0.1:{port}"
        config = workdir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {host_port}\n"
        )
        log = (workdir / "registry.log").open("ab")
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if _get(f"http://{host_port}/v2/", timeout=1)[0] == 200:
                    return proc, host_port, config
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        last_error = (workdir / "registry.log").read_text(errors="replace")[-1000:]
    raise RuntimeError(f"docker-registry did not start: {last_error}")


def _push(client: Any, local_ref: str, target: str, tag: str) -> None:
    image = client.images.get(local_ref)
    image.tag(target, tag=tag)
    try:
        for line in client.images.push(target, tag=tag, stream=True, decode=True):
            if isinstance(line, dict) and line.get("error"):
                raise RuntimeError(f"push of {target}:{tag} failed: {line['error']}")
    finally:
        with contextlib.suppress(Exception):
            client.images.remove(f"{target}:{tag}", noprune=True)


@contextlib.contextmanager
def start_local_registry(client: Any, workdir: Path) -> Iterator[LocalRegistry]:
    """Run a registry for one session and push webapp:1, :2 and :bad to it."""
    key, refs = build_webapp_images(client)
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    cache = testbed_cache() / f"registry-{key}"
    if cache.is_dir():
        shutil.copytree(cache, storage)
    else:
        storage.mkdir()
    proc, host_port, config = _start_process(storage, workdir)
    registry = LocalRegistry(host_port=host_port, storage=storage, process=proc, config_path=config, pushed={})
    try:
        for tag in TAGS:
            _push(client, refs[tag], f"{host_port}/{REPOSITORY}", tag)
            registry.pushed[tag] = registry.digest(tag) or ""
        if not cache.is_dir():
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".registry-", dir=cache.parent))
            try:
                shutil.copytree(storage, tmp / "s")
                with contextlib.suppress(OSError):  # a concurrent session may have won
                    (tmp / "s").rename(cache)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        yield registry
    finally:
        registry.stop()
