"""The test bed itself: offline apt repo, SSH path, local registry, host bring-up.

These pin what the runner and catalog tests rely on, so a broken test bed
fails here with a clear message instead of as a confusing playbook failure.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TEST_LABEL, unique_name
from tests.testbed import sessions
from tests.testbed.aptrepo import AptRepo, build_apt_repo
from tests.testbed.hosts import HostFactory, HostSet, MakeHosts
from tests.testbed.registry import LocalRegistry

pytestmark = pytest.mark.docker


def test_apt_repo_is_cached_by_content_key(apt_repo: AptRepo) -> None:
    again = build_apt_repo(apt_repo.root)
    assert again == apt_repo
    assert (apt_repo.main / "Packages").is_file() and (apt_repo.security / "Release").is_file()
    release = (apt_repo.security / "Release").read_text()
    assert "Label: Debian-Security" in release and "Suite: bookworm-security" in release
    assert apt_repo.versions("tbdemo") == ["1.0-1", "1.1-1", "2.0-1", "1.0-2"]


def test_apt_repo_is_the_only_source_and_shows_versions(container_hosts: MakeHosts, apt_repo: AptRepo) -> None:
    hosts = container_hosts(1, apt_repo=apt_repo, preinstall={"tbdemo": "1.0-1", "tbsec": "1.0-1"})
    host = hosts.names[0]
    rc, sources = hosts.exec(host, "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null")
    lines = [ln for ln in sources.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines == ["deb [trusted=yes] file:/repo/main ./", "deb [trusted=yes] file:/repo/security ./"]
    rc, policy = hosts.exec(host, "apt-cache policy")
    assert rc == 0
    assert "http" not in policy and "file:/repo/main" in policy and "file:/repo/security" in policy
    assert "l=Debian-Security" in policy
    rc, tbdemo = hosts.exec(host, "apt-cache policy tbdemo")
    assert "Installed: 1.0-1" in tbdemo and "Candidate: 2.0-1" in tbdemo
    for version in ("1.0-1", "1.1-1", "2.0-1", "1.0-2"):
        assert f" {version} " in tbdemo
    rc, simulated = hosts.exec(host, "apt-get -s install tbdemo=1.1-1")
    assert rc == 0 and "tbdemo (1.0-1 => 1.1-1)" in simulated  # Show-Versions baked into the image
    rc, upgrades = hosts.exec(host, "apt-get -s upgrade")
    assert "Inst tbsec [1.0-1] (1.0-2 Debian-Security:bookworm-security" in upgrades
    rc, _out = hosts.exec(host, "test -w /repo/main/Packages || touch /repo/x")
    assert rc != 0, "the repo must be mounted read-only"


def test_ssh_host_is_reached_over_real_ssh_with_host_key_checking(container_hosts: MakeHosts) -> None:
    hosts: HostSet = container_hosts(0, ssh=1)
    [host] = hosts.ssh_names
    entry = hosts.hosts[host]
    assert hosts.ssh_key is not None and entry.address
    base = ["ssh", "-i", str(hosts.ssh_key.private), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    ok = subprocess.run(
        [
            *base,
            "-o",
            f"UserKnownHostsFile={hosts.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"root@{entry.address}",
            "cat /etc/hostname",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    _rc, hostname = hosts.exec(host, "cat /etc/hostname")
    assert ok.stdout == hostname
    empty = hosts.known_hosts.with_name("empty_known_hosts")
    empty.write_text("")
    refused = subprocess.run(
        [
            *base,
            "-o",
            f"UserKnownHostsFile={empty}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"root@{entry.address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0 and "Host key verification failed" in refused.stderr
    inventory = hosts.inventory.read_text()
    assert f"ansible_host={entry.address}" in inventory and "StrictHostKeyChecking=yes" in inventory


def test_hosts_are_labelled_and_removed(docker_client: Any, test_labels: dict[str, str], tmp_path: Path) -> None:
    factory = HostFactory(docker_client, test_labels, tmp_path)
    started = time.monotonic()
    hosts = factory.make(3)
    assert factory.last_bringup_s is not None and factory.last_bringup_s < 60
    ids = [hosts.hosts[n].container for n in hosts.names]
    for cid in ids:
        container = docker_client.containers.get(cid)
        assert container.labels.items() >= test_labels.items()
        assert container.name.startswith("tailops-test-host-")
        assert container.attrs["HostConfig"]["Init"] is True
    factory.cleanup()
    assert time.monotonic() - started < 90
    label = ",".join(f"{k}={v}" for k, v in test_labels.items())
    remaining = {c.id for c in docker_client.containers.list(all=True, filters={"label": label})}
    assert not remaining & set(ids)


def test_local_registry_serves_both_versions(
    local_registry: LocalRegistry, docker_client: Any, test_labels: dict[str, str]
) -> None:
    assert local_registry.host_port.startswith("127.0.0.1:")
    assert set(local_registry.tags()) >= {"1", "2", "bad"}
    digests = {tag: local_registry.digest(tag) for tag in ("1", "2", "bad")}
    assert all(d and d.startswith("sha256:") for d in digests.values()) and len(set(digests.values())) == 3
    containers = {}
    try:
        for tag in ("1", "2", "bad"):
            ref = local_registry.image(tag)
            with_tag = docker_client.images.pull(ref)  # a real pull from the registry
            assert with_tag.labels["org.tailops.test.webapp.version"] == tag
            containers[tag] = docker_client.containers.run(
                ref, name=unique_name(f"webapp{tag}"), detach=True, init=True, labels=test_labels
            )
        deadline = time.monotonic() + 60
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            for tag, container in containers.items():
                container.reload()
                health[tag] = container.attrs["State"].get("Health", {}).get("Status", "none")
            if health == {"1": "healthy", "2": "healthy", "bad": "unhealthy"}:
                break
            time.sleep(0.5)
        assert health == {"1": "healthy", "2": "healthy", "bad": "unhealthy"}
        rc, page = containers["2"].exec_run(
            [
                "python3",
                "-c",
                "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/').read().decode())",
            ]
        )
        assert rc == 0 and b"webapp version 2" in page
    finally:
        for container in containers.values():
            container.remove(force=True)
        for tag in ("1", "2", "bad"):
            with contextlib.suppress(Exception):
                docker_client.images.remove(local_registry.image(tag), noprune=True)


def test_a_killed_sessions_leftovers_are_swept_and_a_live_sessions_are_kept(
    docker_client: Any, base_image: str
) -> None:
    """What a killed session left (its pid gone, or no registration at all: sessions from before
    the registry) is removed at the next session's start; a running session's things stay."""
    import uuid

    dead_proc = subprocess.Popen(["true"])
    dead_proc.wait()  # a pid that no longer runs
    live_proc = subprocess.Popen(["sleep", "120"])
    ids = {kind: f"sweep{kind}{uuid.uuid4().hex[:6]}" for kind in ("dead", "live", "unregistered")}
    registry = sessions.registry_dir()
    registry.mkdir(parents=True, exist_ok=True)
    (registry / ids["dead"]).write_text(f"{dead_proc.pid}\n")
    (registry / ids["live"]).write_text(f"{live_proc.pid}\n")
    made = {
        kind: docker_client.containers.create(
            base_image, ["true"], name=unique_name(f"sweep-{kind}"), labels={TEST_LABEL: sid}
        )
        for kind, sid in ids.items()
    }
    network = docker_client.networks.create(unique_name("sweep-net"), labels={TEST_LABEL: ids["dead"]})
    try:
        removed = sessions.sweep_dead_sessions(docker_client)
        assert made["dead"].name in removed and made["unregistered"].name in removed and network.name in removed
        assert made["live"].name not in removed
        left = {c.name for c in docker_client.containers.list(all=True, filters={"label": TEST_LABEL})}
        assert made["live"].name in left
        assert not {made["dead"].name, made["unregistered"].name} & left
        assert not (registry / ids["dead"]).exists(), "a dead session's registration is removed too"
        assert ids["live"] in sessions.live_sessions()
    finally:
        live_proc.kill()
        live_proc.wait()
        for path in (registry / ids["dead"], registry / ids["live"]):
            path.unlink(missing_ok=True)
        for container in made.values():
            with contextlib.suppress(Exception):
                container.remove(force=True)
        with contextlib.suppress(Exception):
            network.remove()
