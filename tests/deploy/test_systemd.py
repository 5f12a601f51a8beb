"""``tailops init --system`` and deploy/systemd/tailops.service, for real under systemd.

One container from ``tailops-target:systemd`` (systemd as PID 1, no network) gets the
built wheel installed into ``/opt/tailops`` (the path the unit names). The test bed's
Python 3.12 is pyenv's build, mounted read-only at /opt/python3.12; its libpython is made
findable with ldconfig because its RPATH points under /root, which the unit's
``ProtectHome=yes`` hides (a distribution Python needs none of this). The dependencies are
the shared test venv's site-packages, mounted read-only at /opt/deps-site-packages (see
tests/deploy/installs.py). Then, inside the container: ``tailops init --system`` (user,
/etc/tailops, /var/lib/tailops), ``systemd-analyze verify``, ``systemctl start tailops``,
``/health``. Nothing of this touches the test machine's users or /etc.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import listener_probe
from tests.deploy.listener_probe import assert_identity_only_on_socket
from tests.deploy.unit_security import UNIT, exposure
from tests.helpers import REPO_ROOT, unique_name

pytestmark = pytest.mark.docker

PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
PROBE = Path(listener_probe.__file__).read_text()


@pytest.fixture(scope="module")
def systemd_image(docker_client: Any, base_image: str) -> str:
    proc = subprocess.run(
        [str(REPO_ROOT / "roles" / "_molecule" / "build-images.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return "tailops-target:systemd"


def sh(container: Any, cmd: str) -> tuple[int, str]:
    rc, out = container.exec_run(["sh", "-c", cmd], demux=False)
    return int(rc), (out or b"").decode("utf-8", "replace")


def ok(container: Any, cmd: str) -> str:
    rc, out = sh(container, cmd)
    assert rc == 0, f"{cmd!r} failed (rc={rc}):\n{out[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(
    docker_client: Any, systemd_image: str, test_labels: dict[str, str], tailops_wheel: Path
) -> Iterator[tuple[Any, str]]:
    """A booted systemd container with tailops in /opt/tailops and ``init --system`` done."""
    python_home = Path(sys.base_prefix)
    libpython = python_home / "lib" / f"lib{PY}.so.1.0"
    volumes = {
        str(python_home): {"bind": f"/opt/{PY}", "mode": "ro"},
        str(Path(sysconfig.get_paths()["purelib"]).resolve()): {"bind": "/opt/deps-site-packages", "mode": "ro"},
        str(tailops_wheel.parent): {"bind": "/mnt/wheel", "mode": "ro"},
        str(UNIT.parent): {"bind": "/mnt/systemd", "mode": "ro"},
        "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"},
    }
    if libpython.exists():
        volumes[str(libpython)] = {"bind": f"/usr/local/lib/{libpython.name}", "mode": "ro"}
    container = docker_client.containers.run(
        systemd_image,
        name=unique_name("systemd-unit"),
        detach=True,
        labels=test_labels,
        tmpfs={"/run": "", "/run/lock": ""},
        volumes=volumes,
        network_mode="none",
    )
    try:
        for _ in range(200):
            _rc, out = sh(container, "systemctl is-system-running")
            if out.strip() in ("running", "degraded"):
                break
            time.sleep(0.1)
        else:
            pytest.fail("systemd did not boot in the container")
        ok(container, "ldconfig")
        ok(
            container,
            f"/opt/{PY}/bin/{PY} -m venv --without-pip /opt/tailops"
            f" && echo /opt/deps-site-packages > /opt/tailops/lib/{PY}/site-packages/_deps.pth"
            " && /opt/tailops/bin/python -m pip install -q --no-deps --ignore-installed --no-index"
            f" /mnt/wheel/{tailops_wheel.name}",
        )
        init_output = ok(container, "/opt/tailops/bin/tailops init --system")
        yield container, init_output
    finally:
        container.remove(force=True, v=True)


def stat(container: Any, path: str) -> str:
    return ok(container, f"stat -c '%U:%G %a' {shlex.quote(path)}").strip()


def test_init_system_creates_the_user_and_the_layout(installed: tuple[Any, str]) -> None:
    container, output = installed
    assert "user:        tailops (created)" in output and "sudo -u tailops" in output
    assert "proxy_socket: /run/tailops/proxy.sock" in ok(container, "cat /etc/tailops/config.yaml")
    passwd = ok(container, "getent passwd tailops").strip().split(":")
    assert int(passwd[2]) < 1000, passwd  # a system user
    assert passwd[5] == "/var/lib/tailops" and passwd[6] == "/usr/sbin/nologin"
    assert stat(container, "/etc/tailops") == "root:tailops 750"
    assert stat(container, "/etc/tailops/config.yaml") == "root:tailops 640"
    assert stat(container, "/var/lib/tailops") == "tailops:tailops 700"
    assert stat(container, "/var/lib/tailops/keys/token.key") == "tailops:tailops 600"
    assert stat(container, "/var/lib/tailops/keys/token.pub") == "tailops:tailops 644"
    assert stat(container, "/var/lib/tailops/audit/audit.jsonl") == "tailops:tailops 600"
    # The service user cannot rewrite its own config.
    as_tailops = "setpriv --reuid tailops --regid tailops --clear-groups env HOME=/var/lib/tailops"
    rc, _ = sh(container, f"{as_tailops} sh -c 'echo x >> /etc/tailops/config.yaml'")
    assert rc != 0
    # The service user can use the result: config loads, audit verifies.
    assert "config OK (data dir /var/lib/tailops)" in ok(
        container, f"{as_tailops} /opt/tailops/bin/tailops config check --config /etc/tailops/config.yaml"
    )
    assert "chain intact" in ok(
        container, f"{as_tailops} /opt/tailops/bin/tailops audit verify --config /etc/tailops/config.yaml"
    )
    # Again: refused, exit 2, nothing changed.
    before = ok(container, "ls -laR /etc/tailops /var/lib/tailops/keys && md5sum /etc/tailops/config.yaml")
    rc, out = sh(container, "/opt/tailops/bin/tailops init --system")
    assert rc == 2 and out.startswith("error: refusing to overwrite: /etc/tailops/config.yaml")
    assert ok(container, "ls -laR /etc/tailops /var/lib/tailops/keys && md5sum /etc/tailops/config.yaml") == before


def test_the_unit_verifies_and_serves_under_systemd(installed: tuple[Any, str]) -> None:
    container, _ = installed
    ok(container, "install -m 0644 /mnt/systemd/tailops.service /etc/systemd/system/ && systemctl daemon-reload")
    verify = ok(container, "systemd-analyze verify /etc/systemd/system/tailops.service 2>&1")
    assert "tailops.service" not in verify, verify  # no complaint names the unit
    ok(container, "systemctl start tailops")
    health = ""
    for _ in range(300):
        rc, health = sh(
            container,
            "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8787/health', "
            'timeout=2).read().decode())"',
        )
        if rc == 0:
            break
        time.sleep(0.2)
    else:
        _rc, journal = sh(container, "journalctl -u tailops --no-pager | tail -40")
        pytest.fail(f"tailops.service never answered /health:\n{journal}")
    assert '"store":{"status":"ok"' in health.replace(" ", "")
    # It runs as the tailops user with no privileges left.
    pid = ok(container, "systemctl show -p MainPID --value tailops").strip()
    status = ok(container, f"cat /proc/{pid}/status")
    uid = ok(container, "id -u tailops").strip()
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status
    assert "NoNewPrivs:\t1" in status and "CapBnd:\t0000000000000000" in status
    assert "Seccomp:\t2" in status  # SystemCallFilter is in force
    # RuntimeDirectory made /run/tailops; tailops serves the Tailscale proxy socket there
    # (init --system configured it), 0600, and trusts identity headers only on it.
    assert stat(container, "/run/tailops") == "tailops:tailops 750"
    assert stat(container, "/run/tailops/proxy.sock") == "tailops:tailops 600"
    probe = ok(container, f"python3 -c {shlex.quote(PROBE)} 8787 /run/tailops/proxy.sock")
    audit = ok(container, "cat /var/lib/tailops/audit/audit.jsonl")
    assert_identity_only_on_socket(json.loads(probe.strip().splitlines()[-1]), audit)
    assert ok(container, "systemctl is-active tailops").strip() == "active"
    ok(container, "systemctl stop tailops")
    assert ok(container, "systemctl show -p Result --value tailops").strip() == "success"


def test_the_unit_exposure_is_ok() -> None:
    value, rating = exposure()
    assert value <= 2.0 and rating == "OK", (value, rating)
