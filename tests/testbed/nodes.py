"""Execution nodes as containers: two sites, each a node plus targets the controller cannot reach.

Why: the remote executor must be tested against the real thing — sshd with a
forced-command ``authorized_keys`` entry, the real ``ansible-runner worker``
and targets reached from the node over SSH. Each site is its own user-defined
Docker network holding one node and its targets:

* the node (``tailops-target:ssh``) gets the controller's Python and venv
  bind-mounted read-only at the same paths (computed from ``sys.prefix`` /
  ``sys.base_prefix``, so CI's different checkout path works) and the
  repository (for ``node_wrapper.py``); the controller's key may only run the
  wrapper (``restrict,command=...``);
* targets (``tailops-target:ssh``) accept only the *site's* target key, which
  lives on the node (mounted at ``/etc/tailops-node/target_key``), and are
  named in the inventory by container name, which only Docker's DNS on that
  site network resolves. So the controller can reach the node but neither
  resolve nor log into the targets: hosts of a site run only through its node.

One more target (``tailops-target:base``, docker connection) is the host the
controller runs itself. Everything carries the session's test labels;
:meth:`NodeBed.cleanup` removes containers and networks it created.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tailops
from tailops.config import NodeSettings
from tests.helpers import BASE_IMAGE, SSH_IMAGE, unique_name
from tests.testbed.hosts import SshKey

__all__ = ["NodeBed", "Site", "make_node_bed", "node_mounts"]

_TARGET_KEY = "/etc/tailops-node/target_key"


def node_mounts() -> dict[str, dict[str, str]]:
    """Read-only bind mounts that give a node the controller's Python, venv and repository."""
    venv = Path(sys.prefix).resolve()
    base = Path(sys.base_prefix).resolve()
    repo = Path(tailops.__file__).resolve().parent.parent
    mounts = {str(p): {"bind": str(p), "mode": "ro"} for p in (venv, base, repo)}
    return mounts


def wrapper_command(python: Path | None = None) -> str:
    """The forced command: the venv's python running the packaged wrapper by path."""
    interpreter = python or (Path(sys.prefix).resolve() / "bin" / "python")
    wrapper = Path(tailops.__file__).resolve().parent / "changes" / "nodes" / "node_wrapper.py"
    return f"{interpreter} {wrapper}"


@dataclass
class Site:
    name: str
    network: str
    node_container: str
    node_address: str
    targets: dict[str, str]  # inventory name -> container name


@dataclass
class NodeBed:
    client: Any
    workdir: Path
    controller_key: SshKey
    known_hosts: Path
    sites: dict[str, Site] = field(default_factory=dict)
    local_hosts: dict[str, str] = field(default_factory=dict)
    inventory: Path | None = None
    networks: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    def node_settings(self, site: str, **overrides: Any) -> NodeSettings:
        s = self.sites[site]
        values: dict[str, Any] = {
            "name": f"node-{site}",
            "host": s.node_address,
            "port": 22,
            "user": "root",
            "key": self.controller_key.private,
            "known_hosts": self.known_hosts,
            "claims": [f"site_{site}"],
            "forks": 5,
            "connect_timeout": "30s",  # a loaded CI machine answers slowly
            "keepalive": "1s",
            "cancel_grace": "120s",
        }
        values.update(overrides)
        return NodeSettings.model_validate(values)

    def exec(self, container: str, cmd: str) -> tuple[int, str]:
        rc, out = self.client.containers.get(container).exec_run(["sh", "-c", cmd])
        return int(rc), (out or b"").decode("utf-8", "replace")

    def wait_node_clean(self, site: str, timeout_s: float = 120) -> None:
        """The node ends with no job dir, no pid file and no ansible-runner/ansible-playbook process."""
        deadline = time.monotonic() + timeout_s
        while True:
            # The regex does not match its own sh -c command line (it contains "ansible-(runner").
            _, out = self.exec(
                self.sites[site].node_container, "ls -A /root/.tailops-node; pgrep -af 'ansible-(runner|playbook)'"
            )
            if not out.strip():
                return
            assert time.monotonic() < deadline, f"the job kept running on the node: {out}"
            time.sleep(2)

    def target_container(self, host: str) -> str:
        for site in self.sites.values():
            if host in site.targets:
                return site.targets[host]
        return self.local_hosts[host]

    def set_authorized(self, site: str, command: str) -> None:
        """Replace the node's forced command (e.g. another interpreter for the version test)."""
        line = f'restrict,command="{command}" {self.controller_key.public_text}'
        rc, out = self.exec(self.sites[site].node_container, f"printf '%s\\n' '{line}' > /root/.ssh/authorized_keys")
        if rc != 0:
            raise RuntimeError(out)

    def cleanup(self) -> None:
        for cid in self.containers:
            with contextlib.suppress(Exception):
                self.client.containers.get(cid).remove(force=True, v=True)
        for net in self.networks:
            with contextlib.suppress(Exception):
                self.client.networks.get(net).remove()


def _sshd(key_text: str, extra: str = "") -> list[str]:
    return [
        "sh",
        "-c",
        "mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh"
        ' && printf "%s\\n" "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys'
        f" && chmod 600 /root/.ssh/authorized_keys {extra}&& exec /usr/sbin/sshd -D -e",
    ]


def _keyscan(address: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["ssh-keyscan", "-T", "2", "-t", "ed25519", address], capture_output=True, text=True, check=False
        )
        if proc.stdout.strip():
            return proc.stdout if proc.stdout.endswith("\n") else proc.stdout + "\n"
        time.sleep(0.2)
    raise RuntimeError(f"sshd on {address} did not answer within 20 s")


def make_node_bed(
    client: Any,
    labels: dict[str, str],
    workdir: Path,
    *,
    sites: int = 2,
    targets: int = 2,
    controller_reach: bool = False,
) -> NodeBed:
    """Start the bed. ``controller_reach`` (benchmarks): the inventory names targets by IP and
    the site key is mounted at its controller path, so the same inventory also runs locally."""
    workdir.mkdir(parents=True, exist_ok=True)
    bed = NodeBed(
        client=client,
        workdir=workdir,
        controller_key=SshKey.generate(workdir / "controller-ssh"),
        known_hosts=workdir / "known_hosts",
    )
    try:
        return _build(bed, labels, sites, targets, controller_reach)
    except BaseException:
        bed.cleanup()
        raise


def _build(bed: NodeBed, labels: dict[str, str], sites: int, targets: int, controller_reach: bool) -> NodeBed:
    client = bed.client
    known: list[str] = []
    addresses: dict[str, str] = {}
    key_paths: dict[str, str] = {}
    for index in range(sites):
        site = "ab"[index] if index < 2 else f"s{index}"
        net = client.networks.create(unique_name(f"site-{site}"), driver="bridge", labels=labels)
        bed.networks.append(net.id)
        target_key = SshKey.generate(bed.workdir / f"site-{site}-ssh")
        names: dict[str, str] = {}
        for t in range(targets):
            cname = unique_name(f"tgt-{site}{t + 1}")
            c = client.containers.run(
                SSH_IMAGE,
                _sshd(target_key.public_text),
                name=cname,
                detach=True,
                init=True,
                labels=labels,
                environment={"AUTHORIZED_KEY": target_key.public_text},
                network=net.name,
            )
            bed.containers.append(c.id)
            names[f"{site}{t + 1}"] = cname
            if controller_reach:
                c.reload()
                addresses[cname] = c.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        volumes = node_mounts()
        key_in_node = str(target_key.private) if controller_reach else _TARGET_KEY
        key_paths[site] = key_in_node
        volumes[str(target_key.private)] = {"bind": key_in_node, "mode": "ro"}
        forced = f'restrict,command="{wrapper_command()}" {bed.controller_key.public_text}'
        node = client.containers.run(
            SSH_IMAGE,
            _sshd(forced),
            name=unique_name(f"node-{site}"),
            detach=True,
            init=True,
            labels=labels,
            environment={"AUTHORIZED_KEY": forced},
            network=net.name,
            volumes=volumes,
        )
        bed.containers.append(node.id)
        node.reload()
        address = node.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        known.append(_keyscan(address))
        bed.sites[site] = Site(site, net.name, node.id, address, names)
    local = client.containers.run(
        BASE_IMAGE, ["sleep", "infinity"], name=unique_name("local"), detach=True, init=True, labels=labels
    )
    bed.containers.append(local.id)
    bed.local_hosts["l1"] = local.name
    bed.known_hosts.write_text("".join(known))
    lines: list[str] = []
    for entry in bed.sites.values():
        lines.append(f"[site_{entry.name}]")
        for host, cname in entry.targets.items():
            lines.append(
                f"{host} ansible_host={addresses.get(cname, cname)} ansible_user=root ansible_connection=ssh "
                f"ansible_ssh_private_key_file={key_paths[entry.name]}"
            )
        lines.append("")
    lines.append("[local_hosts]")
    lines += [f"{h} ansible_connection=community.docker.docker ansible_host={c}" for h, c in bed.local_hosts.items()]
    lines += ["", "[all:vars]", "ansible_python_interpreter=/usr/bin/python3", ""]
    bed.inventory = (bed.workdir / "inventory.ini").absolute()
    bed.inventory.write_text("\n".join(lines))
    # Targets' sshd must be up before a run (the node reaches them; we wait through the node).
    for entry in bed.sites.values():
        for cname in entry.targets.values():
            deadline = time.monotonic() + 20
            while True:
                rc, _ = bed.exec(cname, "test -e /run/sshd.pid")
                if rc == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    return bed
