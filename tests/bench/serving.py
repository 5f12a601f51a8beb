"""A real tailops server process for benchmarks, a token for it, and timed calls.

Shared by every bench module so all figures come from the same setup: a
separate process (no GIL shared with the client), real sockets, real tokens,
rate limits raised so the benchmark measures the server, not the limiter.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from mcp import Client

from tailops.auth.tokens import generate_keypair
from tailops.config import Settings, load_config
from tests.netfixtures import free_port
from tests.servers import mint_for

__all__ = ["BenchServer", "interleaved_latencies", "latencies", "server_process"]


@dataclass
class BenchServer:
    settings: Settings
    token: str
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return self.settings.mcp_url


@contextlib.contextmanager
def server_process(
    tmp: Path,
    *,
    bench_tools: bool = True,
    scopes: str = "admin",
    subject: str = "bench",
    config: dict[str, Any] | None = None,
) -> Iterator[BenchServer]:
    """Start a server (``tests.bench.server_proc`` with the bench tools, or the
    plain ``tailops serve`` CLI) on a free loopback port; stop it afterwards."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    data: dict[str, Any] = {
        "server": {"data_dir": str(tmp / "data"), "port": port, "log_level": "WARNING"},
        "auth": {"rate_limit_per_minute": 10_000_000, "rate_limit_burst": 100_000},
    }
    for section, values in (config or {}).items():
        data.setdefault(section, {}).update(values)
    cfg = tmp / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    settings = load_config(cfg)
    generate_keypair(settings.private_key_path, settings.public_key_path)
    token = mint_for(settings, subject, scopes, ttl=timedelta(hours=2))
    if bench_tools:
        cmd = [sys.executable, "-m", "tests.bench.server_proc", "--config", str(cfg), "--port", str(port)]
    else:
        cmd = [str(Path(sys.executable).with_name("tailops")), "serve", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("bench server did not start") from None
                time.sleep(0.05)
        yield BenchServer(settings, token, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def interleaved_latencies(client: Client, calls: list[tuple[str, dict[str, Any]]], n: int) -> list[list[float]]:
    """Seconds per call for ``n`` rounds of ``calls`` (one list per call), the order rotating
    each round, so drift on the machine (load, caches, a growing audit log) hits every call
    alike and their ratio compares like with like."""
    out: list[list[float]] = [[] for _ in calls]
    for i in range(n):
        for k in range(len(calls)):
            j = (i + k) % len(calls)
            tool, args = calls[j]
            t = time.perf_counter()
            r = await client.call_tool(tool, args)
            out[j].append(time.perf_counter() - t)
            if r.is_error:
                raise RuntimeError(f"{tool} failed during the benchmark: {r.content}")
    return out


async def latencies(client: Client, tool: str, args: dict[str, Any], n: int) -> list[float]:
    """Seconds per call for ``n`` sequential calls; a failing call aborts the benchmark."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = await client.call_tool(tool, args)
        out.append(time.perf_counter() - t)
        if r.is_error:
            raise RuntimeError(f"{tool} failed during the benchmark: {r.content}")
    return out
