"""``pipx install`` of the built wheel gives a working ``tailops`` (issue 14, "Install").

pipx runs with PIPX_HOME, PIPX_BIN_DIR and PIPX_MAN_DIR in a temp dir, offline:
``--pip-args="--no-index --find-links DIR"`` and ``PIP_NO_INDEX``, the shared libraries not
upgraded from the index. Dependencies come from the test venv through a dependency view
(tests/deploy/installs.py), so pip still resolves every dependency the wheel declares. The
app pipx exposes is run from another directory: ``--version`` names the catalog inside pipx's
venv, and ``tailops serve`` answers ``/health`` with the same catalog lock hash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx2
import yaml

from tests.deploy.installs import clean_env, pipx_env, pipx_install
from tests.netfixtures import free_port
from tests.servers import serve_process


def test_pipx_install_of_the_wheel_gives_a_working_tailops(tailops_wheel: Path, tmp_path: Path) -> None:
    root = tmp_path / "pipx"
    installed = pipx_install(tailops_wheel, root)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-3000:]

    # pipx's own record: one venv, tailops, exposing the `tailops` app (from the wheel's entry point).
    listed = subprocess.run(
        [sys.executable, "-m", "pipx", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=pipx_env(root),
    )
    venvs = json.loads(listed.stdout)["venvs"]
    assert list(venvs) == ["tailops"]
    assert venvs["tailops"]["metadata"]["main_package"]["apps"] == ["tailops"]
    app = root / "bin" / "tailops"
    venv = root / "home" / "venvs" / "tailops"
    assert app.resolve() == (venv / "bin" / "tailops").resolve()

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = clean_env(bin_dir=root / "bin")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(app), *args], cwd=outside, capture_output=True, text=True, env=env, timeout=120)

    version = cli("--version")
    assert version.returncode == 0, version.stderr
    first, catalog_line = version.stdout.splitlines()[:2]
    assert first == "tailops 0.1.0"
    # The packaged catalog inside pipx's venv, not the checkout's.
    assert f"({venv}/lib/python" in catalog_line and catalog_line.endswith("/site-packages/tailops/_catalog/playbooks)")
    lock_sha = catalog_line.split("lock sha256 ")[1].split()[0]

    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"server": {"data_dir": str(tmp_path / "data"), "port": port}}))
    keygen = cli("token", "keygen", "--config", str(cfg))
    assert keygen.returncode == 0, keygen.stderr
    log = tmp_path / "serve.log"
    with serve_process(cfg, port, log, exe=app, cwd=outside, env=env):
        health = httpx2.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        unauthenticated = httpx2.post(f"http://127.0.0.1:{port}/mcp", json={}, timeout=5)
    assert health["checks"]["store"]["status"] == "ok"
    assert health["version"] == "0.1.0" and health["catalog"]["lock_sha256"] == lock_sha
    assert health["catalog"]["playbooks"] >= 7
    assert unauthenticated.status_code == 401  # secure by default, installed the pipx way too
    assert "catalog verified against its lock" in log.read_text()
