"""Test-bed images built on top of ``tailops-target:base`` for the dry-run guarantees.

``tailops-testbed/noapt``: the base image with python3-apt PURGED, so no Python on it
can import ``apt``. Its .deb stays in the image as a one-package flat repository at
``/opt/tailops-pyapt`` (with an index and a Release file): a host that adds
:data:`PYAPT_SOURCE` to its apt sources COULD install python3-apt offline — which is
exactly what ``ansible.builtin.apt``'s ``auto_install_module_deps`` would do during a
plan if a task let it. The tests use it to show that planning (and a real run) never
installs anything on such a host.

Built once per recipe and base image (the tag carries a content key); the build reads
the python3-apt .deb from the Debian mirror the base image names (as
roles/_molecule/Dockerfile.systemd does). Never pulls an image.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from typing import Any

from tests.helpers import BASE_IMAGE

__all__ = ["NOAPT_REPO", "PYAPT_SOURCE", "noapt_image"]

NOAPT_REPO = "tailops-testbed/noapt"
PYAPT_DIR = "/opt/tailops-pyapt"
PYAPT_SOURCE = f"deb [trusted=yes] file:{PYAPT_DIR} ./\n"

_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN set -e; mkdir -p {PYAPT_DIR}; cd {PYAPT_DIR}; \\
    apt-get update -qq; apt-get download python3-apt 2>/dev/null; \\
    deb=$(ls python3-apt_*.deb); \\
    apt-cache show --no-all-versions python3-apt | sed "s|^Filename: .*|Filename: ./$deb|" > Packages; \\
    {{ echo "Origin: tailops-pyapt"; echo "Label: tailops-pyapt"; echo "Suite: bookworm"; \\
       echo "Codename: bookworm"; echo "Date: $(date -Ru)"; echo "SHA256:"; \\
       echo " $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages"; }} > Release; \\
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q python3-apt >/dev/null; \\
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; \\
    if python3 -c 'import apt' 2>/dev/null; then echo 'python3-apt still importable' >&2; exit 1; fi
"""


def _context() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = _DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def noapt_image(client: Any) -> str:
    """Build (or reuse) the base image without python3-apt; returns its tag."""
    base_id = client.images.get(BASE_IMAGE).id
    key = hashlib.sha256((base_id + _DOCKERFILE).encode()).hexdigest()[:12]
    ref = f"{NOAPT_REPO}:{key}"
    try:
        client.images.get(ref)
    except Exception:
        client.images.build(fileobj=io.BytesIO(_context()), custom_context=True, tag=ref, rm=True, pull=False)
    return ref
