"""The catalog's container playbooks against the real local Docker engine.

container_state, image_pull and container_update run on ``localhost`` (local
connection, this venv's python) and drive the engine next to tailops. Images
come from the real loopback registry fixture (tests/testbed/registry.py:
``tailops/webapp`` 1, 2 and bad), never from a remote registry. For every
playbook: the check run predicts exactly which tasks the real run changes, the
diffs name the container fields that change, a repeat changes nothing; and
container_update rolls an unhealthy image back, keeping the volume data.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tailops.changes.ansible.envmask import ENV_MASK
from tailops.changes.ansible.job import run_playbook
from tailops.changes.models import RunEvent, RunMode, RunRequest, RunResult, TaskStatus
from tests.helpers import BASE_IMAGE, unique_name
from tests.testbed.catalog_runs import CATALOG, run_pinned
from tests.testbed.registry import REPOSITORY, LocalRegistry

pytestmark = pytest.mark.docker

SET_STATE = "Set the container state"
PULL = "Pull the image"
REPLACE = [
    "Stop the current container",
    "Rename the current container out of the way",
    "Create and start the new container",
    "Remove the previous container (volumes kept)",
]


run = run_pinned  # every run goes through the catalog as the planner/executor's would


def changed(result: RunResult) -> list[str]:
    return result.hosts["localhost"].changed_tasks


def failures(result: RunResult) -> list[tuple[str, str | None]]:
    return [(t.task, t.msg) for h in result.hosts.values() for t in h.tasks if t.status is TaskStatus.FAILED]


def drop_local_copies(client: Any, registry: LocalRegistry) -> None:
    """Untag every local reference to the registry's repository (pulls must really pull)."""
    repo = f"{registry.host_port}/{REPOSITORY}"
    for image in client.images.list(name=repo):
        for ref in [*image.tags, *(d for d in image.attrs.get("RepoDigests") or [] if d.startswith(repo))]:
            with contextlib.suppress(Exception):
                client.images.remove(ref, force=True, noprune=True)


@pytest.fixture
def containers(docker_client: Any, test_labels: dict[str, str]) -> Iterator[Callable[..., Any]]:
    """Start containers (test labels, unique names); all removed with their volumes afterwards."""
    made: list[str] = []
    volumes: list[str] = []

    def start(image: str, purpose: str, **kwargs: Any) -> Any:
        name = unique_name(purpose)
        made.extend([name, f"{name}-tailops-prev"])
        volumes.extend(v for v in kwargs.pop("named_volumes", []))
        return docker_client.containers.run(image, name=name, detach=True, labels=dict(test_labels), **kwargs)

    yield start
    for name in made:
        with contextlib.suppress(Exception):
            docker_client.containers.get(name).remove(force=True, v=True)
    for volume in volumes:
        with contextlib.suppress(Exception):
            docker_client.volumes.get(volume).remove(force=True)


# --------------------------------------------------------------------------- container_state


async def test_container_state_check_predicts_apply_and_restart_always_changes(
    docker_client: Any,
    base_image: str,
    containers: Callable[..., Any],
    localhost_inventory_path: Path,
    runner_artifacts: Path,
) -> None:
    box = containers(BASE_IMAGE, "state", command=["sleep", "infinity"], init=True)
    inv, art = localhost_inventory_path, runner_artifacts

    def running() -> bool:
        return bool(docker_client.containers.get(box.name).attrs["State"]["Running"])

    stop = {"name": box.name, "state": "stopped"}
    check = await run("container_state", stop, inv, art, RunMode.CHECK)
    assert changed(check) == [SET_STATE]
    assert '"running": false' in (check.task("localhost", SET_STATE).diff or "")
    assert running()  # the check changed nothing
    apply = await run("container_state", stop, inv, art, RunMode.APPLY)
    assert changed(apply) == changed(check)
    assert not running()
    assert changed(await run("container_state", stop, inv, art, RunMode.APPLY)) == []
    assert changed(await run("container_state", stop, inv, art, RunMode.CHECK)) == []

    start = {"name": box.name, "state": "started"}
    assert changed(await run("container_state", start, inv, art, RunMode.CHECK)) == [SET_STATE]
    assert changed(await run("container_state", start, inv, art, RunMode.APPLY)) == [SET_STATE]
    assert running()

    started_at = docker_client.containers.get(box.name).attrs["State"]["StartedAt"]
    restart = {"name": box.name, "state": "restarted"}
    check_restart = await run("container_state", restart, inv, art, RunMode.CHECK)
    assert changed(check_restart) == [SET_STATE]
    assert docker_client.containers.get(box.name).attrs["State"]["StartedAt"] == started_at
    apply_restart = await run("container_state", restart, inv, art, RunMode.APPLY)
    assert changed(apply_restart) == changed(check_restart)
    assert docker_client.containers.get(box.name).attrs["State"]["StartedAt"] != started_at


async def test_container_state_refuses_a_missing_container(
    localhost_inventory_path: Path, runner_artifacts: Path
) -> None:
    name = unique_name("missing")
    result = await run(
        "container_state", {"name": name, "state": "started"}, localhost_inventory_path, runner_artifacts, RunMode.CHECK
    )
    assert result.status == "failed"
    failed = result.task("localhost", "Refuse a container that does not exist")
    assert failed.status is TaskStatus.FAILED
    assert f"container {name} does not exist on localhost" in (failed.msg or "")


# --------------------------------------------------------------------------- image_pull


async def test_image_pull_by_tag_and_digest(
    docker_client: Any, local_registry: LocalRegistry, localhost_inventory_path: Path, runner_artifacts: Path
) -> None:
    inv, art = localhost_inventory_path, runner_artifacts
    drop_local_copies(docker_client, local_registry)
    repo = f"{local_registry.host_port}/{REPOSITORY}"
    by_tag = {"image": repo, "tag": "1"}

    check = await run("image_pull", by_tag, inv, art, RunMode.CHECK)
    assert changed(check) == [PULL]
    assert docker_client.images.list(name=repo) == []  # nothing pulled by the check
    apply = await run("image_pull", by_tag, inv, art, RunMode.APPLY)
    assert changed(apply) == changed(check)
    assert f"{repo}:1" in docker_client.images.get(f"{repo}:1").tags
    assert changed(await run("image_pull", by_tag, inv, art, RunMode.APPLY)) == []
    assert changed(await run("image_pull", by_tag, inv, art, RunMode.CHECK)) == []

    digest_two = local_registry.pushed["2"]
    assert digest_two.startswith("sha256:")
    by_digest = {"image": repo, "digest": digest_two}
    check_digest = await run("image_pull", by_digest, inv, art, RunMode.CHECK)
    apply_digest = await run("image_pull", by_digest, inv, art, RunMode.APPLY)
    assert changed(check_digest) == changed(apply_digest) == [PULL]
    assert f"{repo}@{digest_two}" in docker_client.images.get(f"{repo}@{digest_two}").attrs["RepoDigests"]
    assert changed(await run("image_pull", by_digest, inv, art, RunMode.CHECK)) == []


# --------------------------------------------------------------------------- container_update


def read_file(client: Any, name: str, path: str) -> str:
    rc, out = client.containers.get(name).exec_run(["cat", path])
    assert rc == 0, out
    return str(out.decode())


async def test_container_update_replaces_then_rolls_back_an_unhealthy_image(
    docker_client: Any,
    local_registry: LocalRegistry,
    containers: Callable[..., Any],
    localhost_inventory_path: Path,
    runner_artifacts: Path,
) -> None:
    inv, art = localhost_inventory_path, runner_artifacts
    one, two, bad = (local_registry.image(t) for t in ("1", "2", "bad"))
    docker_client.images.pull(one)
    volume = unique_name("vol")
    box = containers(
        one,
        "update",
        named_volumes=[volume],
        volumes={volume: {"bind": "/data", "mode": "rw"}},
        ports={"8000/tcp": ("127.0.0.1", None)},
        environment={"FOO": "bar"},
        restart_policy={"Name": "unless-stopped"},
    )
    name = box.name
    assert docker_client.containers.get(name).exec_run(["sh", "-c", "echo precious > /data/keep"])[0] == 0
    original = docker_client.containers.get(name).attrs

    # Check: the plan replaces the container, the diff names the image change, nothing moves.
    params = {"name": name, "image": two, "health_timeout": 120}
    check = await run("container_update", params, inv, art, RunMode.CHECK)
    assert check.status == "successful", failures(check)
    assert changed(check) == ["Pull the new image", *REPLACE]
    diff = check.task("localhost", "Create and start the new container").diff or ""
    assert f'-    "image_name": "{one}"' in diff and f'+    "image_name": "{two}"' in diff
    not_simulated = {t.task for t in check.not_simulated}
    assert {"Wait until the new container is healthy", "Refuse an unhealthy new container"} <= not_simulated
    now = docker_client.containers.get(name).attrs
    assert (now["Id"], now["Config"]["Image"], now["State"]["Running"]) == (original["Id"], one, True)

    # Apply: exactly the predicted tasks change; configuration and volume data carried over.
    apply = await run("container_update", params, inv, art, RunMode.APPLY)
    assert apply.status == "successful", failures(apply)
    assert changed(apply) == changed(check)
    new = docker_client.containers.get(name).attrs
    assert new["Id"] != original["Id"]
    assert new["Config"]["Image"] == two
    assert new["State"]["Health"]["Status"] == "healthy"
    assert "FOO=bar" in new["Config"]["Env"]
    assert new["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert new["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert read_file(docker_client, name, "/data/keep") == "precious\n"
    assert docker_client.containers.list(all=True, filters={"name": f"{name}-tailops-prev"}) == []

    # Repeat: nothing changes, in either mode.
    assert changed(await run("container_update", params, inv, art, RunMode.APPLY)) == []
    assert changed(await run("container_update", params, inv, art, RunMode.CHECK)) == []

    # An image whose health check fails: the new container goes, the old one comes back.
    docker_client.containers.get(name).exec_run(["sh", "-c", "echo second > /data/more"])
    rollback = await run(
        "container_update", {"name": name, "image": bad, "health_timeout": 60}, inv, art, RunMode.APPLY
    )
    assert rollback.status == "failed"
    host = rollback.hosts["localhost"]
    assert host.status == "failed"
    for task in (
        "Remove the failed new container (volumes kept)",
        "Rename the previous container back",
        "Restore the previous container's state",
    ):
        assert rollback.task("localhost", task).changed, task
    report = rollback.task("localhost", "Report the rollback")
    assert report.status is TaskStatus.FAILED
    assert f"container_update of {name} to {bad} failed and was rolled back" in (report.msg or "")
    back = docker_client.containers.get(name).attrs
    assert back["Id"] == new["Id"] and back["Config"]["Image"] == two and back["State"]["Running"]
    assert read_file(docker_client, name, "/data/keep") == "precious\n"
    assert read_file(docker_client, name, "/data/more") == "second\n"
    assert docker_client.containers.list(all=True, filters={"name": f"{name}-tailops-prev"}) == []


async def test_container_update_refuses_missing_container(
    localhost_inventory_path: Path, runner_artifacts: Path
) -> None:
    name = unique_name("missing")
    result = await run(
        "container_update",
        {"name": name, "image": "127.0.0.1:1/x/y:1"},
        localhost_inventory_path,
        runner_artifacts,
        RunMode.CHECK,
    )
    assert result.status == "failed"
    assert f"container {name} does not exist on localhost" in (
        result.task("localhost", "Refuse a container that does not exist").msg or ""
    )
    assert changed(result) == []


# --------------------------------------------------------------------------- env values stay hidden


async def _run_recording(
    name: str, params: dict[str, Any], inv: Path, art: Path, mode: RunMode
) -> tuple[RunResult, list[RunEvent]]:
    """A pinned catalog run that also keeps every progress event (what run_events store)."""
    entry = CATALOG.require_pinned(name)
    events: list[RunEvent] = []
    result = await run_playbook(
        RunRequest(
            playbook=entry.playbook,
            inventory=inv,
            mode=mode,
            artifacts_root=art,
            extravars=entry.extravars(CATALOG.validate_params(name, params)),
            roles_path=CATALOG.roles_dir,
            not_simulated_hint=frozenset(entry.manifest.not_simulated),
        ),
        on_event=events.append,
    )
    return result, events


def _files_containing(root: Path, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


async def test_container_env_values_never_reach_plans_events_or_artifacts(
    docker_client: Any,
    local_registry: LocalRegistry,
    containers: Callable[..., Any],
    localhost_inventory_path: Path,
    runner_artifacts: Path,
) -> None:
    """issue 13: community.docker's results carry env values (diff before/after, the inspect
    data, the module arguments, the callback's stdout). A readonly holder reads plans and
    runs, while reveal_container_env keeps values behind container:admin: they are masked
    at the source, names kept, a changed value marked as changed."""
    inv, art = localhost_inventory_path, runner_artifacts
    one, two = local_registry.image("1"), local_registry.image("2")
    docker_client.images.pull(one)
    secret = f"opensesame-{uuid.uuid4().hex}"  # no secret-looking key or shape: redact() alone misses it
    box = containers(one, "envsecret", environment={"UPSTREAM_HINT": secret, "MODE": "blue"})
    runs = [
        await _run_recording("container_update", {"name": box.name, "image": two}, inv, art, RunMode.CHECK),
        await _run_recording("container_state", {"name": box.name, "state": "stopped"}, inv, art, RunMode.CHECK),
    ]
    for result, events in runs:
        assert result.status == "successful", failures(result)
        stored = json.dumps([h.model_dump(mode="json") for h in result.hosts.values()])
        assert secret not in stored and "MODE=blue" not in stored and '"MODE": "blue"' not in stored
        assert not [e for e in events if secret in e.model_dump_json()], "a progress event carries the value"
    assert _files_containing(art, secret) == []  # job events, stdout, everything kept
    assert _files_containing(art, "MODE=blue") == []

    # Masked, not merely absent: the stored job events keep the names with the marker
    # (the inspect data and module arguments of "Read the container" & co carry them).
    assert _files_containing(art, f"UPSTREAM_HINT={ENV_MASK}") != []
    update, _events = runs[0]
    diff = update.task("localhost", "Create and start the new container").diff or ""
    assert f'"image_name": "{two}"' in diff  # the diff itself is intact
    assert docker_client.containers.get(box.name).attrs["State"]["Running"]  # check runs changed nothing
