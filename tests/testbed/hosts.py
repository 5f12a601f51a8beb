"""Container hosts as a real multi-host Ansible inventory.

Why: plans and runs are per host, so the change engine must be tested against
several real hosts at once. Each host is a container from the local
``tailops-target:*`` images; most are reached with the
``community.docker.docker`` connection, some over real SSH (openssh-server in
the image, an ed25519 key generated for the session, host keys pinned in a
known_hosts file made with ``ssh-keyscan`` — so SSH host key checking stays on).
When an :class:`~tests.testbed.aptrepo.AptRepo` is given it is mounted
read-only at ``/repo`` and becomes the hosts' only apt source.

Containers run with ``--init`` (``docker stop``/``rm -f`` are immediate), carry
the session's test labels, get names from :func:`tests.helpers.unique_name`, and
are removed by :meth:`HostFactory.cleanup` (the ``container_hosts`` fixture calls
it in teardown). Nothing here touches containers it did not create.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.helpers import BASE_IMAGE, SSH_IMAGE, unique_name
from tests.testbed.aptrepo import AptRepo

__all__ = ["Host", "HostFactory", "HostSet", "MakeHosts", "SshKey", "localhost_inventory"]

HostKind = Literal["docker", "ssh", "unreachable"]
_PARALLEL = 8
_PYTHON = "/usr/bin/python3"
_SOURCES_FILE = "/etc/apt/sources.list.d/tailops-test.list"


@dataclass(frozen=True)
class Host:
    """One inventory entry; ``container`` is None for an unreachable entry."""

    name: str
    kind: HostKind
    container: str | None
    address: str | None = None


@dataclass(frozen=True)
class SshKey:
    private: Path
    public_text: str

    @classmethod
    def generate(cls, directory: Path) -> SshKey:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = directory / "id_ed25519"
        if not private.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tailops-test", "-f", str(private)],
                check=True,
                capture_output=True,
            )
        return cls(private=private, public_text=(directory / "id_ed25519.pub").read_text().strip())


def _parallel[T, R](fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    todo = list(items)
    if len(todo) <= 1:
        return [fn(i) for i in todo]
    with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(todo))) as pool:
        return list(pool.map(fn, todo))


@dataclass
class HostSet:
    """A set of running container hosts and the INI inventory that names them."""

    inventory: Path
    hosts: dict[str, Host]
    ssh_key: SshKey | None
    known_hosts: Path
    _client: Any = field(repr=False)

    @property
    def names(self) -> list[str]:
        """Reachable hosts (docker first, then SSH), in inventory order."""
        return [h.name for h in self.hosts.values() if h.kind != "unreachable"]

    @property
    def docker_names(self) -> list[str]:
        return [h.name for h in self.hosts.values() if h.kind == "docker"]

    @property
    def ssh_names(self) -> list[str]:
        return [h.name for h in self.hosts.values() if h.kind == "ssh"]

    @property
    def unreachable(self) -> list[str]:
        return [h.name for h in self.hosts.values() if h.kind == "unreachable"]

    def exec(self, host: str, cmd: str | Sequence[str]) -> tuple[int, str]:
        """Run ``cmd`` in the host's container (docker exec, not Ansible): (rc, stdout+stderr)."""
        entry = self.hosts[host]
        if entry.container is None:
            raise KeyError(f"{host} is an unreachable entry with no container")
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        rc, out = self._client.containers.get(entry.container).exec_run(argv, demux=False)
        return int(rc), (out or b"").decode("utf-8", "replace")

    def add_unreachable(self, kind: Literal["docker", "ssh"] = "ssh") -> str:
        """Add an inventory entry that cannot be reached; returns its name.

        ``docker``: a container name that does not exist. ``ssh``: 127.0.0.1 on a
        port nothing listens on (connection refused at once).
        """
        name = f"unreachable-{uuid.uuid4().hex[:6]}"
        if kind == "ssh":
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            address = f"127.0.0.1:{port}"
        else:
            address = unique_name("gone")
        self.hosts[name] = Host(name=name, kind="unreachable", container=None, address=f"{kind}:{address}")
        self.write_inventory()
        return name

    def host_line(self, host: Host) -> str:
        if host.kind == "docker":
            return f"{host.name} ansible_connection=community.docker.docker"
        if host.kind == "ssh":
            assert self.ssh_key is not None
            args = f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o ConnectTimeout=5"
            return (
                f"{host.name} ansible_connection=ssh ansible_host={host.address} ansible_user=root "
                f"ansible_ssh_private_key_file={self.ssh_key.private} ansible_ssh_common_args='{args}'"
            )
        assert host.address is not None
        kind, _, target = host.address.partition(":")
        if kind == "ssh":
            ip, _, port = target.partition(":")
            return (
                f"{host.name} ansible_connection=ssh ansible_host={ip} ansible_port={port} ansible_user=root "
                "ansible_ssh_common_args='-o ConnectTimeout=3 -o UserKnownHostsFile=/dev/null'"
            )
        return f"{host.name} ansible_connection=community.docker.docker ansible_host={target}"

    def write_inventory(self) -> None:
        groups: dict[str, list[str]] = {"docker_hosts": [], "ssh_hosts": [], "unreachable_hosts": []}
        for host in self.hosts.values():
            groups[f"{host.kind}_hosts"].append(self.host_line(host))
        text = ""
        for group, lines in groups.items():
            text += f"[{group}]\n" + "".join(f"{line}\n" for line in lines) + "\n"
        text += "[targets:children]\n" + "".join(f"{g}\n" for g in groups) + "\n"
        text += f"[all:vars]\nansible_python_interpreter={_PYTHON}\n"
        tmp = self.inventory.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.inventory)


class HostFactory:
    """Creates container hosts and removes every one of them in :meth:`cleanup`."""

    def __init__(self, client: Any, labels: dict[str, str], workdir: Path) -> None:
        self._client = client
        self._labels = dict(labels)
        self._workdir = workdir
        self._containers: list[str] = []
        self._lock = threading.Lock()
        self._ssh_key: SshKey | None = None
        self.last_bringup_s: float | None = None

    def _key(self) -> SshKey:
        if self._ssh_key is None:
            self._ssh_key = SshKey.generate(self._workdir / "ssh")
        return self._ssh_key

    def make(
        self,
        n: int,
        *,
        ssh: int = 0,
        apt_repo: AptRepo | None = None,
        preinstall: dict[str, str] | None = None,
        image: str = BASE_IMAGE,
        extra_sources: str = "",
    ) -> HostSet:
        """Start ``n`` docker-connection hosts plus ``ssh`` SSH hosts and write their inventory.

        ``image`` replaces the docker hosts' image (e.g. tests/testbed/images.py's);
        ``extra_sources`` is appended to the apt sources the setup writes.
        """
        started = time.perf_counter()
        docker_kind: HostKind = "docker"
        ssh_kind: HostKind = "ssh"
        specs = [docker_kind] * n + [ssh_kind] * ssh
        key = self._key() if ssh else None
        hosts = _parallel(lambda kind: self._start(kind, apt_repo, key, image), specs)
        setup = _setup_script(apt_repo, preinstall, extra_sources)
        set_dir = self._workdir / f"hosts-{uuid.uuid4().hex[:8]}"
        set_dir.mkdir(parents=True)
        host_set = HostSet(
            inventory=(set_dir / "inventory.ini").absolute(),
            hosts={h.name: h for h in hosts},
            ssh_key=key,
            known_hosts=(set_dir / "known_hosts").absolute(),
            _client=self._client,
        )
        if setup:

            def run_setup(name: str) -> None:
                rc, out = host_set.exec(name, setup)
                if rc != 0:
                    raise RuntimeError(f"host setup failed on {name} (rc={rc}):\n{out[-2000:]}")

            _parallel(run_setup, host_set.names)
        if ssh:
            lines = _parallel(_keyscan, [h.address or "" for h in hosts if h.kind == "ssh"])
            host_set.known_hosts.write_text("".join(lines))
        host_set.write_inventory()
        self.last_bringup_s = time.perf_counter() - started
        return host_set

    def _start(self, kind: HostKind, apt_repo: AptRepo | None, key: SshKey | None, image: str = BASE_IMAGE) -> Host:
        name = unique_name("host")
        volumes = {str(apt_repo.root): {"bind": apt_repo.mount_point, "mode": "ro"}} if apt_repo else {}
        if kind == "ssh":
            assert key is not None
            command: list[str] = [
                "sh",
                "-c",
                "mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh"
                ' && printf "%s\\n" "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys'
                " && chmod 600 /root/.ssh/authorized_keys && exec /usr/sbin/sshd -D -e",
            ]
            image, env = SSH_IMAGE, {"AUTHORIZED_KEY": key.public_text}
        else:
            command, env = ["sleep", "infinity"], {}
        container = self._client.containers.run(
            image,
            command,
            name=name,
            detach=True,
            init=True,
            labels=self._labels,
            environment=env,
            volumes=volumes,
        )
        with self._lock:
            self._containers.append(container.id)
        address = None
        if kind == "ssh":
            container.reload()
            address = container.attrs["NetworkSettings"]["IPAddress"]
        return Host(name=name, kind=kind, container=container.id, address=address)

    def cleanup(self) -> None:
        with self._lock:
            ids, self._containers = self._containers, []

        def remove(cid: str) -> None:
            try:
                self._client.containers.get(cid).remove(force=True, v=True)
            except Exception as exc:  # already gone is fine; anything else is reported
                if "No such container" not in str(exc) and "404" not in str(exc):
                    print(f"testbed: could not remove {cid[:12]}: {exc}", file=sys.stderr)

        _parallel(remove, ids)


def _setup_script(apt_repo: AptRepo | None, preinstall: dict[str, str] | None, extra_sources: str = "") -> str:
    steps: list[str] = ["set -e"]
    if apt_repo is not None:
        sources = apt_repo.sources_list() + extra_sources
        steps += [
            "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*",
            f"printf %s {shlex.quote(sources)} > {_SOURCES_FILE}",
            "apt-get update -qq >/dev/null 2>&1 || apt-get update",
        ]
    if preinstall:
        if apt_repo is None:
            raise ValueError("preinstall needs apt_repo (the only apt source the hosts have)")
        pins = " ".join(shlex.quote(f"{name}={version}") for name, version in sorted(preinstall.items()))
        steps.append(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades --no-install-recommends "
            f"{pins} >/tmp/preinstall.log 2>&1 || {{ cat /tmp/preinstall.log; exit 1; }}"
        )
    return "\n".join(steps) if len(steps) > 1 else ""


def _keyscan(address: str) -> str:
    """known_hosts lines for ``address`` once sshd answers (bounded wait)."""
    deadline = time.monotonic() + 20
    last = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["ssh-keyscan", "-T", "2", "-t", "ed25519", address], capture_output=True, text=True, check=False
        )
        if proc.stdout.strip():
            return proc.stdout if proc.stdout.endswith("\n") else proc.stdout + "\n"
        last = proc.stderr
        time.sleep(0.1)
    raise RuntimeError(f"sshd on {address} did not answer within 20 s: {last.strip()}")


MakeHosts = Callable[..., HostSet]
"""Type of the ``container_hosts`` fixture: ``make_hosts(n, *, ssh=0, apt_repo=None, preinstall=None)``."""


def localhost_inventory(dest_dir: Path, *, python: str | None = None) -> Path:
    """An inventory with only ``localhost`` (local connection, this venv's python).

    For playbooks that act on the local Docker engine (container_* and image_pull).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = (dest_dir / "localhost.ini").absolute()
    interpreter = python or sys.executable
    path.write_text(f"[targets]\nlocalhost ansible_connection=local ansible_python_interpreter={interpreter}\n")
    return path
