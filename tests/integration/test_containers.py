"""The container tools against a real Docker engine and real workloads, through the real MCP client.

The fleet (module fixture): a healthy HTTP server (published port, env with a
secret, read-only bind mount, user-defined network), an unhealthy one (its
HEALTHCHECK gets 500), a crash loop (exits 1 after "Connection refused",
restart=always), one that logs a known error pattern (disk full + a Python
traceback) and keeps running, and one killed by its 32 MiB memory limit.
Each tool's output is checked against what we know about them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.types import TextContent

from tailops.config import DockerSettings, load_config
from tailops.monitor import containers as mc
from tailops.monitor.containers import analyze_logs
from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.events import EventSink
from tests.helpers import SESSION_ID, TEST_LABEL, unique_name
from tests.integration.container_workloads import (
    WORKLOAD_REPO,
    remove_quietly,
    run_workload,
    wait_for,
    workload_image,
)
from tests.servers import RunningServer, http_server, mcp_http_client

SECRET = "hunter2-do-not-show-" + uuid.uuid4().hex[:6]


@dataclass
class Fleet:
    label: str
    healthy: Any
    unhealthy: Any
    crash: Any
    errors: Any
    oom: Any
    network: Any
    mount_dir: Path
    image: str

    @property
    def all(self) -> list[Any]:
        return [self.healthy, self.unhealthy, self.crash, self.errors, self.oom]


@pytest.fixture(scope="module")
def workload(docker_client: Any, base_image: str) -> str:
    return workload_image(docker_client)


@pytest.fixture(scope="module")
def fleet(docker_client: Any, workload: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet_id = uuid.uuid4().hex[:8]
    labels = {"tailops.test.fleet": fleet_id}
    mount_dir = tmp_path_factory.mktemp("mount")
    network = docker_client.networks.create(unique_name("net"), labels={TEST_LABEL: SESSION_ID, **labels})
    started: list[Any] = []
    try:
        healthy = run_workload(
            docker_client,
            workload,
            "serve",
            purpose="healthy",
            labels=labels,
            healthcheck=True,
            # Tolerant probe: on a loaded 2-core machine python's start-up alone can take seconds.
            health_overrides={"timeout": 20, "retries": 10},
            ports={"8080/tcp": ("127.0.0.1", None)},
            environment={"SECRET_TOKEN": SECRET, "APP_MODE": "test"},
            volumes={str(mount_dir): {"bind": "/srv/data", "mode": "ro"}},
        )
        started.append(healthy)
        network.connect(healthy)
        unhealthy = run_workload(
            docker_client, workload, "serve-unhealthy", purpose="unhealthy", labels=labels, healthcheck=True
        )
        started.append(unhealthy)
        crash = run_workload(
            docker_client, workload, "crash", purpose="crash", labels=labels, restart_policy={"Name": "always"}
        )
        started.append(crash)
        errors = run_workload(docker_client, workload, "errors", purpose="errors", labels=labels)
        started.append(errors)
        oom = run_workload(
            docker_client, workload, "oom", purpose="oom", labels=labels, mem_limit="32m", memswap_limit="32m"
        )
        started.append(oom)

        def state(c: Any) -> dict[str, Any]:
            data: dict[str, Any] = docker_client.api.inspect_container(c.id)
            return data

        def health(c: Any) -> str | None:
            h = state(c)["State"].get("Health") or {}
            return h.get("Status")

        wait_for(lambda: health(healthy) == "healthy", timeout=60, what="the healthy container to be healthy")
        wait_for(lambda: health(unhealthy) == "unhealthy", timeout=60, what="the unhealthy container")
        wait_for(lambda: state(crash)["RestartCount"] >= 3, timeout=60, what="3 restarts of the crash loop")
        wait_for(lambda: state(oom)["State"]["Status"] == "exited", timeout=60, what="the OOM kill")
        assert state(oom)["State"]["OOMKilled"] is True, "the memory-limited workload was not OOM-killed"
        wait_for(
            lambda: b"WARN cache disabled" in docker_client.api.logs(errors.id),
            timeout=30,
            what="the error workload's log",
        )
        yield Fleet(
            label=f"tailops.test.fleet={fleet_id}",
            healthy=healthy,
            unhealthy=unhealthy,
            crash=crash,
            errors=errors,
            oom=oom,
            network=network,
            mount_dir=mount_dir,
            image=workload,
        )
    finally:
        for c in started:
            remove_quietly(docker_client, c)
        network.remove()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("containers-server")
    empty = tmp / "empty.yaml"
    empty.write_text("{}\n")
    settings = load_config(empty, server={"data_dir": tmp / "data"})
    with http_server(settings) as srv:
        yield srv


async def call(
    srv: RunningServer, tool: str, args: dict[str, Any], scopes: str = "readonly"
) -> tuple[bool, dict[str, Any], str]:
    token = srv.mint("container-tester", scopes)
    async with mcp_http_client(srv.url, token) as client:
        result = await client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return bool(result.is_error), dict(result.structured_content or {}), block.text


async def ok(srv: RunningServer, tool: str, args: dict[str, Any], scopes: str = "readonly") -> dict[str, Any]:
    is_error, data, text = await call(srv, tool, args, scopes)
    assert not is_error, f"{tool} failed: {text}"
    return data


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in items}


# --------------------------------------------------------------------------- list
async def test_list_shows_every_state_correctly(server: RunningServer, fleet: Fleet) -> None:
    data = await ok(server, "get_container_list", {"all": True, "filters": {"label": fleet.label}})
    rows = by_name(data["containers"])
    assert set(rows) == {c.name for c in fleet.all}
    assert data["total"] == 5

    healthy = rows[fleet.healthy.name]
    assert healthy["state"] == "running" and healthy["health"] == "healthy"
    assert healthy["status"].startswith("Up")
    assert healthy["image"] == fleet.image
    assert healthy["image_id"].startswith("sha256:")
    assert healthy["id"] == fleet.healthy.id[:12]
    assert len(healthy["ports"]) == 1 and healthy["ports"][0].startswith("127.0.0.1:")
    assert healthy["ports"][0].endswith("->8080/tcp")
    assert healthy["labels"][TEST_LABEL] == SESSION_ID
    assert healthy["created"].endswith("Z") and healthy["started"].endswith("Z")
    assert healthy["restart_count"] == 0 and healthy["exit_code"] is None

    assert rows[fleet.unhealthy.name]["health"] == "unhealthy"
    assert rows[fleet.errors.name]["health"] is None  # no health check

    crash = rows[fleet.crash.name]
    assert crash["restart_count"] >= 3
    assert crash["state"] in ("running", "restarting")

    oom = rows[fleet.oom.name]
    assert oom["state"] == "exited"
    assert oom["exit_code"] == 137 and oom["oom_killed"] is True


async def test_list_filters_limit_and_projection(server: RunningServer, fleet: Fleet) -> None:
    running = await ok(server, "get_container_list", {"filters": {"label": fleet.label}})
    names = {c["name"] for c in running["containers"]}
    assert fleet.oom.name not in names  # exited: only with all=true
    assert fleet.healthy.name in names

    exited = await ok(
        server, "get_container_list", {"all": True, "filters": {"label": fleet.label, "status": "exited"}}
    )
    assert [c["name"] for c in exited["containers"]] == [fleet.oom.name]

    limited = await ok(server, "get_container_list", {"all": True, "filters": {"label": fleet.label}, "limit": 2})
    assert len(limited["containers"]) == 2 and limited["total"] == 5 and limited["truncated"] is True

    projected = await ok(
        server,
        "get_container_list",
        {"all": True, "filters": {"label": fleet.label}, "fields": ["name", "health"], "format": "json"},
    )
    assert all(set(c) == {"name", "health"} for c in projected["containers"])

    is_error, _, text = await call(server, "get_container_list", {"filters": {"colour": "red"}})
    assert is_error and text.startswith("invalid_input:") and "status" in text


# --------------------------------------------------------------------------- inspect
async def test_inspect_redacts_env_and_shows_the_useful_subset(server: RunningServer, fleet: Fleet) -> None:
    is_error, data, text = await call(server, "inspect_container", {"name": fleet.healthy.name})
    assert not is_error, text
    assert SECRET not in text and SECRET not in json.dumps(data)
    env = {e["name"]: e["value"] for e in data["env"]}
    assert env["SECRET_TOKEN"] == "[REDACTED]" and env["APP_MODE"] == "[REDACTED]"
    assert data["env_redacted"] is True
    assert data["state"]["status"] == "running" and data["state"]["health"]["status"] == "healthy"
    assert data["state"]["health"]["last_exit_codes"][-1] == 0
    assert data["config"]["entrypoint"] == ["python3", "-u", "/opt/workload.py"]
    assert data["config"]["cmd"] == ["serve"]
    assert data["config"]["healthcheck"][0] == "CMD"
    mount = next(m for m in data["mounts"] if m["destination"] == "/srv/data")
    assert mount["rw"] is False and mount["source"] == str(fleet.mount_dir)
    nets = {n["network"]: n for n in data["networks"]}
    assert fleet.network.name in nets and nets[fleet.network.name]["ip_address"]
    assert data["restart_policy"]["name"] == "no"

    oom = await ok(server, "inspect_container", {"name": fleet.oom.name})
    assert oom["state"]["oom_killed"] is True and oom["state"]["exit_code"] == 137
    assert oom["resources"]["memory_limit"] == 32 * 1024 * 1024

    crash = await ok(server, "inspect_container", {"name": fleet.crash.id[:12]})
    assert crash["name"] == fleet.crash.name
    assert crash["restart_policy"]["name"] == "always" and crash["restart_count"] >= 3


async def test_reveal_env_needs_container_admin(server: RunningServer, fleet: Fleet) -> None:
    is_error, _, text = await call(server, "reveal_container_env", {"name": fleet.healthy.name}, "readonly")
    assert is_error and text.startswith("permission_denied:") and "container:admin" in text
    assert SECRET not in text

    data = await ok(server, "reveal_container_env", {"name": fleet.healthy.name}, "readonly container:admin")
    env = {e["name"]: e["value"] for e in data["env"]}
    assert env["SECRET_TOKEN"] == SECRET and data["env_redacted"] is False


async def test_unknown_container_lists_near_names(server: RunningServer, fleet: Fleet) -> None:
    typo = fleet.healthy.name[:-1]
    for tool in ("inspect_container", "get_container_logs", "analyze_container_logs", "get_container_stats"):
        is_error, _, text = await call(server, tool, {"name": typo})
        assert is_error, tool
        assert text.startswith("not_found:"), text
        assert "Close matches:" in text and fleet.healthy.name in text, text

    is_error, _, text = await call(server, "inspect_container", {"name": "bad name; rm -rf /"})
    assert is_error and text.startswith("invalid_input:")


# --------------------------------------------------------------------------- stats
async def test_stats_for_all_running_containers_at_once(server: RunningServer, fleet: Fleet) -> None:
    data = await ok(server, "get_container_stats", {})
    rows = by_name(data["containers"])
    for c in (fleet.healthy, fleet.unhealthy, fleet.errors):
        row = rows[c.name]
        assert row["error"] is None, row
        assert row["memory_usage"] > 1024 * 1024  # a python process
        assert row["memory_limit"] > row["memory_usage"]
        assert row["pids"] >= 1
        assert row["cpu_percent"] is not None and row["cpu_percent"] >= 0
        assert 0 < row["cpu_window_s"] <= 60
        assert row["net_rx_bytes"] is not None
    assert fleet.oom.name not in rows  # not running
    # Concurrent one-shot samples: well inside the time limit, not N x 1-2 s.
    assert data["elapsed_s"] < 5.0

    one = await ok(server, "get_container_stats", {"name": fleet.healthy.name})
    assert [r["name"] for r in one["containers"]] == [fleet.healthy.name]

    oom = await ok(server, "get_container_stats", {"name": fleet.oom.name})
    assert oom["containers"][0]["error"].startswith("not running")
    assert oom["containers"][0]["cpu_percent"] is None


async def test_stats_see_the_memory_limit(server: RunningServer, fleet: Fleet, docker_client: Any) -> None:
    limited = run_workload(docker_client, fleet.image, "idle", purpose="memlimit", mem_limit="64m")
    try:
        data = await ok(server, "get_container_stats", {"name": limited.name})
        row = data["containers"][0]
        assert row["memory_limit"] == 64 * 1024 * 1024
        assert row["memory_percent"] is not None and 0 < row["memory_percent"] < 100
    finally:
        remove_quietly(docker_client, limited)


# --------------------------------------------------------------------------- images, networks
async def test_images_and_networks(server: RunningServer, fleet: Fleet) -> None:
    images = await ok(server, "list_docker_images", {"reference": WORKLOAD_REPO})
    tags = [t for img in images["images"] for t in img["tags"]]
    assert fleet.image in tags
    assert all(img["size"] > 0 and img["dangling"] is False for img in images["images"])

    dangling = await ok(server, "list_docker_images", {"dangling": True})
    assert all(img["tags"] == [] for img in dangling["images"])

    nets = by_name((await ok(server, "get_docker_networks", {}))["networks"])
    mine = nets[fleet.network.name]
    assert mine["driver"] == "bridge" and mine["scope"] == "local"
    assert fleet.healthy.name in mine["containers"]
    assert mine["subnets"], mine
    assert "bridge" in nets and "host" in nets


# --------------------------------------------------------------------------- logs
async def test_logs_tail_grep_and_time_window(server: RunningServer, fleet: Fleet) -> None:
    everything = await ok(server, "get_container_logs", {"name": fleet.errors.name, "tail": 500})
    assert any(ln["line"].endswith("WARN cache disabled until space is freed") for ln in everything["lines"])
    data = await ok(server, "get_container_logs", {"name": fleet.errors.name, "tail": 3})
    # The engine's last three lines, in the engine's order. Not "the WARN line is last":
    # the engine copies stdout and stderr separately, so on a loaded machine a stdout line
    # written before the final stderr line can be stored after it (seen in CI).
    assert len(data["lines"]) == 3 and data["lines"] == everything["lines"][-3:]
    assert all(ln["ts"] and ln["ts"].endswith("Z") for ln in data["lines"])

    grepped = await ok(server, "get_container_logs", {"name": fleet.errors.name, "grep": "no space LEFT"})
    texts = [ln["line"] for ln in grepped["lines"]]
    assert len(texts) == 8  # 6 ERROR lines + the traceback's last line + "raise OSError(...)" source line
    assert all("no space left" in t.lower() for t in texts)
    assert grepped["scanned"] > len(texts)

    future = await ok(server, "get_container_logs", {"name": fleet.errors.name, "since": "2999-01-01T00:00:00Z"})
    assert future["lines"] == []
    past = await ok(server, "get_container_logs", {"name": fleet.errors.name, "until": "2000-01-01T00:00:00Z"})
    assert past["lines"] == []
    recent = await ok(server, "get_container_logs", {"name": fleet.errors.name, "since": "1h", "tail": 500})
    assert len(recent["lines"]) == grepped["scanned"]

    is_error, _, text = await call(server, "get_container_logs", {"name": fleet.errors.name, "since": "yesterday"})
    assert is_error and text.startswith("invalid_input:") and "since" in text


async def test_manage_container_logs_and_changes_only_as_plans(
    server: RunningServer, fleet: Fleet, docker_client: Any
) -> None:
    scopes = "readonly container:write"
    via_manage = await ok(server, "manage_container", {"action": "logs", "name": fleet.errors.name, "tail": 5}, scopes)
    direct = await ok(server, "get_container_logs", {"name": fleet.errors.name, "tail": 5})
    assert via_manage["lines"] == direct["lines"]

    before = docker_client.api.inspect_container(fleet.healthy.id)["State"]["StartedAt"]
    for action, state in (("restart", "restarted"), ("stop", "stopped")):
        result = await ok(server, "manage_container", {"action": action, "name": fleet.healthy.name}, scopes)
        plan = result["plan"]
        assert result["lines"] == []
        assert plan["playbook"] == "container_state"
        assert plan["params"] == {"name": fleet.healthy.name, "state": state}
        assert plan["status"] == "pending", plan["status_reason"]  # waits for someone else's approval
        assert plan["hosts_changing"] == 1  # the check run predicts the change...
    after = docker_client.api.inspect_container(fleet.healthy.id)["State"]
    assert after["StartedAt"] == before and after["Running"] is True  # ...but nothing was done

    # container:write is what the registry checks; readonly alone cannot even read logs through it.
    is_error, _, text = await call(server, "manage_container", {"action": "logs", "name": fleet.errors.name})
    assert is_error and text.startswith("permission_denied:") and "container:write" in text
    # ... and the logs action is a read: container:write alone is not enough either.
    is_error, _, text = await call(
        server, "manage_container", {"action": "logs", "name": fleet.errors.name}, "container:write"
    )
    assert is_error and text.startswith("permission_denied:") and "'readonly'" in text


# --------------------------------------------------------------------------- analysis
async def test_analysis_finds_the_oom_kill(server: RunningServer, fleet: Fleet) -> None:
    data = await ok(server, "analyze_container_logs", {"name": fleet.oom.name})
    top = data["findings"][0]
    assert top["kind"] == "oom_killed" and top["likely_cause"] is True
    assert "32 MiB" in top["title"]
    assert data["state"]["oom_killed"] is True and data["verdict"] == "problems_found"
    assert "OOM" in data["summary"]


async def test_analysis_explains_the_crash_loop(server: RunningServer, fleet: Fleet) -> None:
    data = await ok(server, "analyze_container_logs", {"name": fleet.crash.name})
    top = data["findings"][0]
    assert top["kind"] == "connection_refused" and top["likely_cause"] is True, data["findings"]
    assert "db:5432" in top["title"]
    assert top["count"] >= 3  # once per run
    assert any("Connection refused" in e for e in top["evidence"])
    assert top["recommendation"]
    kinds = [f["kind"] for f in data["findings"]]
    assert "restart_loop" in kinds
    loop = data["findings"][kinds.index("restart_loop")]
    assert loop["severity"] == "critical"
    if data["state"]["status"] == "restarting":  # between runs (while it runs, the engine reports exit 0)
        assert "last exit 1 (application error)" in loop["title"]
    assert "Most likely cause: Connection refused" in data["summary"]


async def test_analysis_finds_the_known_error_pattern(server: RunningServer, fleet: Fleet) -> None:
    data = await ok(server, "analyze_container_logs", {"name": fleet.errors.name})
    top = data["findings"][0]
    assert top["kind"] == "disk_full" and top["category"] == "signature" and top["count"] == 6
    assert "/data/cache/item-" in top["title"]
    traces = [f for f in data["findings"] if f["category"] == "stack_trace"]
    assert len(traces) == 1, data["findings"]
    assert traces[0]["kind"] == "disk_full" and "OSError" in traces[0]["title"] and traces[0]["count"] == 1
    assert any("/opt/workload.py" in e for e in traces[0]["evidence"])
    assert data["error_lines"] == 8  # 6 errors, the "unhandled error" line, the folded trace
    assert data["warning_lines"] == 1
    assert data["templates"][0]["severity"] == "error"


async def test_analysis_of_unhealthy_and_healthy_containers(server: RunningServer, fleet: Fleet) -> None:
    bad = await ok(server, "analyze_container_logs", {"name": fleet.unhealthy.name})
    kinds = [f["kind"] for f in bad["findings"]]
    assert kinds[0] == "unhealthy", bad
    assert any("500" in e for e in bad["findings"][0]["evidence"])
    assert bad["state"]["health"] == "unhealthy"

    good = await ok(server, "analyze_container_logs", {"name": fleet.healthy.name})
    assert good["verdict"] == "no_problems" and good["findings"] == [], good
    assert good["lines_analyzed"] >= 1


# --------------------------------------------------------------------------- bounds on a big log
async def test_big_log_is_bounded_and_keeps_the_newest_lines(
    server: RunningServer, fleet: Fleet, docker_client: Any
) -> None:
    big = run_workload(docker_client, fleet.image, "biglog", args=("0.5",), purpose="biglog")
    try:
        wait_for(
            lambda: b"log burst done" in docker_client.api.logs(big.id, tail=1),
            timeout=60,
            what="the 0.5 MB log burst",
        )
        # Output cap (64 KiB): the newest lines are kept, the oldest dropped, and it says so.
        data = await ok(server, "get_container_logs", {"name": big.name, "tail": 5000})
        assert data["truncated"] is True and "output cap" in data["truncation"]
        assert data["lines"][-1]["line"].endswith("INFO log burst done")
        assert 100 < len(data["lines"]) < 5000

        # Analysis under a 64 KiB byte cap: it re-reads a smaller tail so the newest lines are analyzed.
        engine = DockerEngine(DockerSettings(log_max_bytes=64 * 1024))
        try:
            result = analyze_logs(engine, name=big.name, since=None, until=None, tail=100_000)
        finally:
            engine.close()
        assert result.input_truncated and any("analyzed the newest" in n for n in result.notes)
        assert result.bytes_analyzed <= 64 * 1024
        last = docker_client.api.logs(big.id, tail=1, timestamps=True).decode().split(" ", 1)[0][:19] + "Z"
        assert result.window_end == last  # the newest line is in the window
        assert result.findings[0].kind == "connection_refused"  # redis:6379 refused, every 50th line
        assert "redis:6379" in (result.findings[0].title or "")
    finally:
        remove_quietly(docker_client, big)


# --------------------------------------------------------------------------- list cache
def test_list_reuses_inspects_until_an_engine_event_says_otherwise(fleet: Fleet, docker_client: Any) -> None:
    box = run_workload(docker_client, fleet.image, "idle", purpose="cache", init=True)
    engine = DockerEngine(DockerSettings())
    flt: dict[str, str | list[str]] = {"id": box.id}
    try:
        first = mc.list_containers(engine, all=True, filters=flt, limit=10).containers[0]
        assert engine.inspect_cache.watching
        misses = engine.inspect_cache.misses
        again = mc.list_containers(engine, all=True, filters=flt, limit=10).containers[0]
        assert engine.inspect_cache.misses == misses and engine.inspect_cache.hits >= 1  # served from cache
        assert again.started == first.started

        # The test changes its own container; the next list must not show cached (stale) facts.
        box.kill()
        wait_for(
            lambda: docker_client.api.inspect_container(box.id)["State"]["Status"] == "exited",
            timeout=30,
            what="the kill",
        )
        wait_for(
            lambda: mc.list_containers(engine, all=True, filters=flt, limit=10).containers[0].exit_code == 137,
            timeout=10,
            what="the list to show exit code 137 after the kill",
        )
        killed = mc.list_containers(engine, all=True, filters=flt, limit=10).containers[0]
        assert killed.state == "exited" and killed.exit_code == 137
        box.start()

        def shows_the_new_run() -> bool:
            row = mc.list_containers(engine, all=True, filters=flt, limit=10).containers[0]
            fresh = docker_client.api.inspect_container(box.id)["State"]["StartedAt"][:19] + "Z"
            return row.state == "running" and row.exit_code is None and row.started == fresh

        wait_for(shows_the_new_run, timeout=10, what="the list to show the restarted container")
    finally:
        engine.close()
        remove_quietly(docker_client, box)
    assert not engine.inspect_cache.watching


def test_the_event_feed_is_one_stream_for_the_cache_and_every_other_sink(fleet: Fleet, docker_client: Any) -> None:
    """A second sink joins the stream the list cache opened; one event reaches both; a sink
    that fails does not stop the others; the last sink leaving closes the stream."""
    box = run_workload(docker_client, fleet.image, "idle", purpose="feed", init=True)
    engine = DockerEngine(DockerSettings())
    feed = engine.events
    flt: dict[str, str | list[str]] = {"id": box.id}
    heard: list[str] = []
    died = threading.Event()

    def on_event(event: Any) -> None:
        if (event.get("Actor") or {}).get("ID") == box.id:
            heard.append(str(event.get("Action")))
            if event.get("Action") == "die":
                died.set()

    def broken(event: Any) -> None:
        raise RuntimeError("a sink with a bug")

    sink, bad = EventSink(on_event=on_event), EventSink(on_event=broken)
    try:
        assert mc.list_containers(engine, all=True, filters=flt, limit=10).containers[0].state == "running"
        assert engine.inspect_cache.watching and feed.streams_opened == 1
        feed.subscribe(bad)
        feed.subscribe(sink)
        assert feed.streams_opened == 1  # joined the open stream
        box.kill()
        assert died.wait(20), heard
        assert "kill" in heard
        # The cache heard the same events: the next list is not served from a stale entry.
        wait_for(
            lambda: mc.list_containers(engine, all=True, filters=flt, limit=10).containers[0].exit_code == 137,
            timeout=10,
            what="the list to show the kill",
        )
        feed.unsubscribe(sink)
        feed.unsubscribe(bad)
        assert feed.connected and feed.streams_opened == 1  # the cache still listens
        engine.inspect_cache.close()
        wait_for(lambda: not feed.connected, timeout=10, what="the last sink leaving to close the stream")
    finally:
        engine.close()
        remove_quietly(docker_client, box)
    assert not feed.running


# --------------------------------------------------------------------------- stats: CPU on a first sample
def test_first_stats_call_measures_cpu_on_the_cgroup_and_falls_back_to_the_engine(
    docker_client: Any, base_image: str
) -> None:
    """A container never sampled before gets a real CPU % in one engine tick (cgroup window),
    and the same figures come from the engine's two-tick sample when no cgroup is readable."""
    labels = {TEST_LABEL: SESSION_ID}
    busy = docker_client.containers.run(
        base_image,
        ["sh", "-c", "while :; do :; done"],
        detach=True,
        init=True,
        labels=labels,
        name=unique_name("stats-busy"),
    )
    idle = docker_client.containers.run(
        base_image, ["sleep", "600"], detach=True, init=True, labels=labels, name=unique_name("stats-idle")
    )
    local = DockerEngine(DockerSettings())
    remote_like = DockerEngine(DockerSettings())
    remote_like.cgroup_cpu.root = None  # as for an engine on another machine: no cgroup files here
    try:
        # The counter this host's kernel keeps for the busy container grows.
        first = local.cgroup_cpu.usage_ns(busy.id)
        assert first is not None, "the engine's cgroup layout was not found under /sys/fs/cgroup"
        wait_for(lambda: (local.cgroup_cpu.usage_ns(busy.id) or 0) > first, timeout=5, what="CPU time to grow")

        for engine in (local, remote_like):
            # The kernel's own counter around the call: the figure must agree with it. Not an
            # absolute share: on a loaded machine the loop gets far less than a core.
            used_before, t0 = local.cgroup_cpu.usage_ns(busy.id), time.monotonic()
            hot = next(
                r for r in mc.container_stats(engine, name=busy.name, limit=10).containers if r.name == busy.name
            )
            used_after, t1 = local.cgroup_cpu.usage_ns(busy.id), time.monotonic()
            cold = next(
                r for r in mc.container_stats(engine, name=idle.name, limit=10).containers if r.name == idle.name
            )
            assert hot.error is None and cold.error is None
            assert hot.cpu_percent is not None and hot.cpu_window_s is not None, hot
            assert cold.cpu_percent is not None and cold.cpu_percent < 10, cold
            assert 0.5 <= hot.cpu_window_s <= min(3, t1 - t0), hot
            assert used_before is not None and used_after is not None
            used = (used_after - used_before) / 1e9
            assert used > 0.02, f"the busy loop got {used:.3f} CPU-s in {t1 - t0:.1f} s"
            # The window lies inside the call: the CPU time the figure stands for is at most what
            # the loop used during the call, and at least that minus what one core could have
            # used outside the window (the loop is one thread).
            reported = hot.cpu_percent / 100 * hot.cpu_window_s
            tick = 0.02  # rounding of the reported figures
            assert reported <= used + tick, (hot.cpu_percent, hot.cpu_window_s, used)
            assert reported >= used - (t1 - t0 - hot.cpu_window_s) - tick, (hot.cpu_percent, hot.cpu_window_s, used)
            assert hot.cpu_percent > cold.cpu_percent, (hot, cold)
            assert hot.memory_usage is not None and hot.pids is not None and hot.pids >= 1
            # The sample is remembered: the next call compares against it (one engine tick).
            assert busy.id in engine.cpu_samples
    finally:
        local.close()
        remote_like.close()
        remove_quietly(docker_client, busy)
        remove_quietly(docker_client, idle)
