"""``GET /containers/json`` rows + inspect → ContainerSummary, on recorded engine answers."""

from __future__ import annotations

from typing import Any

from tailops.monitor.containers.listing import image_digests, summary_from
from tests.unit.monitor.containers.recorded import recorded

ROWS: list[dict[str, Any]] = recorded("containers_list")


def row(state: str) -> dict[str, Any]:
    return next(r for r in ROWS if r["State"] == state)


def test_a_running_container_row_with_its_inspect() -> None:
    inspected = recorded("inspect_running")
    got = summary_from(row("running"), inspected, {})
    assert got.name == inspected["Name"].lstrip("/") and got.id == inspected["Id"][:12]
    assert got.state == "running" and got.health == "healthy"  # from "Up 4 seconds (healthy)"
    assert got.exit_code is None  # a running container has no last exit code to show
    assert got.oom_killed is False and got.restart_count == 0
    assert got.started == inspected["State"]["StartedAt"][:19] + "Z"
    [port] = got.ports or []
    assert port.startswith("127.0.0.1:") and port.endswith("->8080/tcp")
    assert (got.labels or {})["tailops.fixture"] == "docker"
    assert got.image == "tailops-target:base" and got.image_id == inspected["Image"]


def test_an_exited_container_shows_its_exit_code() -> None:
    got = summary_from(row("exited"), recorded("inspect_exited"), {})
    assert got.state == "exited" and got.exit_code == 3 and got.health is None and got.ports == []


def test_a_failed_inspect_leaves_only_the_list_facts() -> None:
    got = summary_from(row("exited"), {}, {})
    assert got.state == "exited" and got.exit_code is None and got.restart_count is None and got.started is None


def test_digests_come_only_from_registry_images() -> None:
    images = recorded("images")
    assert image_digests(images) == {}  # built locally: no RepoDigests
    pulled = {**images[0], "RepoDigests": ["<none>@<none>", "repo@sha256:" + "a" * 64]}
    assert image_digests([pulled]) == {pulled["Id"]: "repo@sha256:" + "a" * 64}
    got = summary_from(row("running"), {}, image_digests([pulled]))
    assert got.image_digest == "repo@sha256:" + "a" * 64
