"""The first change a newcomer plans works: install_package on `make run`'s default inventory.

issue 13: with ``changes.inventory`` unset, tailops plans on ``localhost``
(``ansible_connection=local``, ``ansible_python_interpreter`` = the server's own
virtualenv Python, tailops/changes/planner.py ``default_inventory``). That Python
has no python3-apt, so every package plan ended ``blocked`` at "Look the packages up:
python3-apt is not installed". Now the roles' lookups respawn under the system Python
(as ansible.builtin.apt does) and the plan works end to end.

Without touching this machine's packages: a container from ``tailops-target:base``
plays "this machine". The shared virtualenv, the pyenv Python it links to and this
repository are bind-mounted read-only at the same paths, its only apt source is the
offline test repository, and ``tailops serve`` (HTTP, default config apart from the
data dir and port: ``changes.inventory`` unset) runs inside it on the host network
namespace's loopback. The real MCP SDK client then calls install_package as a
requester with system:admin, approve_plan as a different approver with
changes:approve, and apply_plan; ``dpkg`` in the container shows the package.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.types import TextContent

from tests.helpers import BASE_IMAGE, REPO_ROOT, unique_name
from tests.servers import mcp_http_client
from tests.testbed.aptrepo import AptRepo

pytestmark = pytest.mark.docker

DATA_DIR = "/var/lib/tailops-e2e"
CONFIG = "/etc/tailops-e2e.yaml"


def _mounts() -> dict[str, dict[str, str]]:
    """The virtualenv (real path: its scripts' shebangs name it), the Python it links to and
    this checkout, read-only at the same paths."""
    venv = Path(sys.prefix).resolve()
    python_home = Path(sys.executable).resolve().parent.parent  # e.g. ~/.pyenv/versions/3.12.1
    if python_home == Path("/usr"):
        pytest.fail("this test mounts the venv's Python home; a Python from /usr would hide the container's /usr")
    paths = {venv, python_home, REPO_ROOT}
    return {str(p): {"bind": str(p), "mode": "ro"} for p in paths}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Machine:
    """A container standing in for "this machine"."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.python = str(Path(sys.prefix).resolve() / "bin" / "python")

    def sh(self, cmd: str, *, env: dict[str, str] | None = None) -> str:
        rc, out = self.container.exec_run(["sh", "-c", cmd], environment=env or {})
        text = (out or b"").decode("utf-8", "replace")
        assert rc == 0, f"{cmd!r} failed (rc={rc}):\n{text[-3000:]}"
        return text

    def tailops(self, *args: str) -> str:
        """The CLI inside the container, this checkout first on the path (the venv's
        editable install points at another tree)."""
        rc, out = self.container.exec_run(
            [self.python, "-c", "from tailops.cli.main import main; main()", *args],
            environment={"PYTHONPATH": str(REPO_ROOT)},
            demux=True,
        )
        stdout, stderr = ((b or b"").decode("utf-8", "replace") for b in out)
        assert rc == 0, f"tailops {' '.join(args)} failed (rc={rc}):\n{stderr[-3000:]}"
        return stdout

    def package(self, name: str) -> str:
        _rc, out = self.container.exec_run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Version}", name])
        text = (out or b"").decode()
        return text[3:].strip() if text.startswith("ii ") else ""


@pytest.fixture
def machine(docker_client: Any, base_image: str, test_labels: dict[str, str], apt_repo: AptRepo) -> Iterator[Machine]:
    volumes = _mounts()
    volumes[str(apt_repo.root)] = {"bind": apt_repo.mount_point, "mode": "ro"}
    container = docker_client.containers.run(
        BASE_IMAGE,
        ["sleep", "infinity"],
        name=unique_name("thismachine"),
        detach=True,
        init=True,
        labels=test_labels,
        network_mode="host",  # the server listens on loopback; nothing else is reachable offline
        volumes=volumes,
    )
    try:
        box = Machine(container)
        sources = apt_repo.sources_list().replace("\n", "\\n")
        box.sh(
            "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* && "
            f"printf '{sources}' > /etc/apt/sources.list.d/tailops-test.list && apt-get update -qq"
        )
        yield box
    finally:
        container.remove(force=True, v=True)


@contextlib.contextmanager
def serving(box: Machine, port: int) -> Iterator[str]:
    """``tailops serve`` (HTTP) inside the container until the block ends; yields the MCP URL."""
    box.container.exec_run(
        [
            "sh",
            "-c",
            f"exec {box.python} -c 'from tailops.cli.main import main; main()' serve --config {CONFIG} "
            f">{DATA_DIR}/serve.log 2>&1",
        ],
        environment={"PYTHONPATH": str(REPO_ROOT)},
        detach=True,
    )
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        if time.monotonic() > deadline:
            pytest.fail("tailops serve did not start in the container:\n" + box.sh(f"tail -40 {DATA_DIR}/serve.log"))
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/mcp"


def _text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return str(block.text)


async def test_install_package_plans_approves_and_applies_on_the_default_inventory(machine: Machine) -> None:
    port = _free_port()
    machine.sh(f"mkdir -p {DATA_DIR} && printf 'server:\\n  data_dir: {DATA_DIR}\\n  port: {port}\\n' > {CONFIG}")
    assert machine.package("tbdemo") == ""
    # The virtualenv Python cannot import apt; the system Python can (python3-apt).
    assert machine.container.exec_run([machine.python, "-c", "import apt"])[0] != 0
    machine.tailops("token", "keygen", "--config", CONFIG)
    alice = machine.tailops(
        "token", "mint", "--subject", "alice", "--scopes", "readonly system:admin", "--ttl", "1h", "--config", CONFIG
    ).strip()
    bob = machine.tailops(
        "token", "mint", "--subject", "bob", "--scopes", "readonly changes:approve", "--ttl", "1h", "--config", CONFIG
    ).strip()

    with serving(machine, port) as url:
        async with mcp_http_client(url, alice) as client:
            with anyio.fail_after(600):
                planned = await client.call_tool("install_package", {"name": "tbdemo"})
            assert not planned.is_error, _text(planned)
            plan = planned.structured_content or {}
            assert plan["status"] == "pending", plan.get("status_reason")
            [host] = plan["hosts"]
            assert host["host"] == "localhost"
            changed = [t["task"] for t in host["tasks"] if t["changed"]]
            assert changed == ["Install packages (apt)"], host
        # The default inventory was written with the server's own (virtualenv) Python.
        inventory = machine.sh(f"cat {DATA_DIR}/inventory/local.ini")
        assert f"ansible_connection=local ansible_python_interpreter={machine.python}" in inventory
        assert machine.package("tbdemo") == ""  # planning installed nothing

        async with mcp_http_client(url, bob) as client:
            approved = await client.call_tool("approve_plan", {"plan_id": plan["plan_id"], "comment": "first change"})
            assert not approved.is_error, _text(approved)
        async with mcp_http_client(url, alice) as client:
            with anyio.fail_after(600):
                applied = await client.call_tool("apply_plan", {"plan_id": plan["plan_id"]})
            assert not applied.is_error, _text(applied)
            run = applied.structured_content or {}
            assert run["status"] == "succeeded", run

    assert machine.package("tbdemo") == "2.0-1"  # the newest version the offline repo offers
