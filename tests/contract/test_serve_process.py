"""The real `tailops serve` process: tool groups and read-only mode shape what a
client sees, and SIGTERM/SIGINT shut the server down cleanly on both transports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from mcp import Client

from tailops.config import Settings, load_config
from tailops.server.mcp_server import exposed_specs
from tailops.tools.registry import declared_specs
from tests.netfixtures import free_port
from tests.servers import ensure_keys, http_server, mcp_http_client, serve_process, stdio_params

EXE = str(Path(sys.executable).with_name("tailops"))


def _config(tmp_path: Path, **sections: Any) -> Path:
    data: dict[str, Any] = {"server": {"data_dir": str(tmp_path / "data"), **sections.pop("server", {})}}
    data.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_http_server_shuts_down_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    settings = load_config(_config(tmp_path))
    ensure_keys(settings)
    port = free_port()
    log = tmp_path / "serve.log"
    with serve_process(_config(tmp_path), port, log) as proc:
        started = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=20)
        took = time.monotonic() - started
    err = log.read_text()
    # uvicorn re-raises the signal after a clean shutdown, so the exit status says which
    # signal ended it (what systemd and docker expect); a crash would differ.
    assert proc.returncode in (0, -sig.value, 128 + sig.value), err[-2000:]
    assert took < 10
    assert "Traceback" not in err
    assert "Application shutdown complete" in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stdio_server_shuts_down_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    cfg = _config(tmp_path)
    params = stdio_params(cfg)
    proc = subprocess.Popen(
        [params.command, *params.args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Wait until it is ready (its runtime opened the store), then signal it.
        deadline = time.monotonic() + 30
        while not (tmp_path / "data" / "tailops.db").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
            await anyio.sleep(0.05)
        await anyio.sleep(0.5)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, -sig.value, 128 + sig.value), err.decode()[-2000:]
    assert b"Traceback" not in err


async def test_stdio_end_of_input_exits_zero(tmp_path: Path) -> None:
    params = stdio_params(_config(tmp_path))
    proc = subprocess.run(
        [params.command, *params.args], input=b"", capture_output=True, timeout=60, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("overrides", "expect_groups", "expect_mutating"),
    [
        ({"tools": {"groups": ["system"]}}, {"system"}, False),
        ({"tools": {"groups": ["system", "network", "changes"]}}, {"system", "network", "changes"}, True),
        ({"server": {"read_only": True}}, {"system", "containers", "files", "network", "changes"}, False),
    ],
)
async def test_groups_and_read_only_shape_the_tool_list(
    make_settings: Callable[..., Settings],
    overrides: dict[str, Any],
    expect_groups: set[str],
    expect_mutating: bool,
) -> None:
    settings = make_settings(**overrides)
    by_name = {s.name: s for s in declared_specs()}
    with http_server(settings) as srv:
        token = srv.mint("lister", "admin")
        async with mcp_http_client(srv.url, token) as client:
            tools = (await client.list_tools()).tools
            listed = {t.name for t in tools}
            groups = {by_name[n].group for n in listed}
            assert groups == expect_groups
            mutating = [t.name for t in tools if t.annotations and t.annotations.read_only_hint is False]
            assert bool(mutating) is expect_mutating, mutating
            # What is not listed cannot be called either.
            hidden = sorted(set(by_name) - listed)
            if hidden:
                result = await client.call_tool(hidden[0], {})
                assert result.is_error
            assert listed == {s.name for s in exposed_specs(srv.runtime)}


def test_cli_read_only_flag_hides_change_tools(tmp_path: Path) -> None:
    cfg = _config(tmp_path)

    async def names(*extra: str) -> set[str]:
        async with Client(stdio_params(cfg, *extra)) as client:
            return {t.name for t in (await client.list_tools()).tools}

    full = anyio.run(names)
    read_only = anyio.run(names, "--read-only")
    assert "plan_change" in full and "apply_plan" in full
    assert "plan_change" not in read_only and "apply_plan" not in read_only and "manage_container" not in read_only
    assert "get_system_status" in read_only


async def test_a_restart_reuses_the_tool_schemas_and_serves_the_same_tools(tmp_path: Path) -> None:
    """The second start reads the schemas the first one wrote (the file is not rewritten)
    and offers exactly the same tools; arguments are still checked."""
    cfg = _config(tmp_path)
    cache = tmp_path / "data" / "cache" / "tool-schemas.json"
    listings = []
    for start in ("first", "second"):
        async with Client(stdio_params(cfg)) as client:
            listings.append([t.model_dump() for t in (await client.list_tools()).tools])
            bad = await client.call_tool("get_top_processes", {"limit": 0})
            assert bad.is_error and "limit" in str(bad.content[0]), start
            good = await client.call_tool("get_top_processes", {"limit": 2})
            assert not good.is_error and len((good.structured_content or {})["processes"]) == 2, start
        if start == "first":
            written = cache.stat().st_mtime_ns
    assert cache.stat().st_mtime_ns == written
    assert listings[0] == listings[1] and len(listings[0]) > 30
