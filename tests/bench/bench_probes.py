"""Network-probe and file-tool benchmarks (issue: safe file access and network diagnostics).

From a real ``tailops`` server process on loopback, driven by the real MCP
client over streamable HTTP:

- health_check p50 while 20 clients keep pings and port scans of 127.0.0.1 in
  flight, vs idle p50 on the same server (target ratio <= 1.5): slow probes
  must not delay other requests;
- tail of the last 100 lines of a 1 GiB file (sparse, log lines at the end,
  under /tmp, deleted afterwards): p50 of the file operation itself (target
  <= 50 ms) and of the whole MCP call.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from tailops.config import Settings
from tailops.files.ops import tail_file
from tailops.files.policy import FilePolicy
from tests.bench.common import Row
from tests.bench.serving import latencies, server_process
from tests.servers import mcp_http_client

GROUP = "probes"
GIB = 1024**3


async def _health_under_probes(url: str, token: str) -> list[Row]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        open_port = listener.getsockname()[1]
        async with mcp_http_client(url, token) as probe:
            await latencies(probe, "health_check", {}, 30)
            idle = await latencies(probe, "health_check", {}, 300)
            stop = anyio.Event()
            probes_done = 0

            async def load(i: int) -> None:
                nonlocal probes_done
                async with mcp_http_client(url, token) as c:
                    while not stop.is_set():
                        if i % 2:
                            args: dict[str, Any] = {"host": "127.0.0.1", "count": 5, "interval": 0.2, "timeout": 1}
                            r = await c.call_tool("ping_host", args)
                        else:
                            ports = [open_port, *range(41000, 41049)]
                            r = await c.call_tool("test_port_connectivity", {"host": "127.0.0.1", "ports": ports})
                        if r.is_error:
                            raise RuntimeError(f"probe failed during the benchmark: {r.content}")
                        probes_done += 1

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(load, i)
                await anyio.sleep(1.5)
                busy = await latencies(probe, "health_check", {}, 300)
                stop.set()
    i50, b50 = statistics.median(idle) * 1000, statistics.median(busy) * 1000
    return [
        Row(
            GROUP,
            "health_check p50 with 20 pings/port scans in flight",
            b50,
            "ms",
            baseline=i50,
            target="ratio <= 1.5 vs idle",
            ok=b50 / i50 <= 1.5,
            note=f"10 ping loops (5 x 0.2 s) + 10 scans of 50 ports; {probes_done} probes done",
        ),
        Row(GROUP, "health_check p50 idle (same server)", i50, "ms"),
    ]


def _make_gib_file(path: Path) -> int:
    """1 GiB, sparse except for ~1 MiB of log lines at the end; returns the size."""
    lines = b"".join(
        b"2026-01-01T00:00:%02d host app[%d]: request %07d served in 12 ms\n" % (i % 60, i, i) for i in range(16_000)
    )
    with open(path, "wb") as fh:
        fh.truncate(GIB - len(lines))
        fh.seek(GIB - len(lines))
        fh.write(lines)
    return path.stat().st_size


async def _tail_rows(url: str, token: str, root: Path, settings: Settings) -> list[Row]:
    big = root / "huge.log"
    size = _make_gib_file(big)
    try:
        policy = FilePolicy.from_settings(settings)
        os.posix_fadvise(os.open(big, os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)
        t = time.perf_counter()
        first = tail_file(policy, str(big), lines=100, max_bytes=settings.files.max_read_bytes, output_budget=60_000)
        cold = (time.perf_counter() - t) * 1000
        assert len(first.lines) == 100 and first.lines[-1].endswith("served in 12 ms")
        op: list[float] = []
        for _ in range(50):
            t = time.perf_counter()
            tail_file(policy, str(big), lines=100, max_bytes=settings.files.max_read_bytes, output_budget=60_000)
            op.append(time.perf_counter() - t)
        async with mcp_http_client(url, token) as c:
            await latencies(c, "tail_file", {"path": str(big), "lines": 100}, 5)
            noop = await latencies(c, "bench_noop", {}, 50)
            via_mcp = await latencies(c, "tail_file", {"path": str(big), "lines": 100}, 50)
    finally:
        big.unlink()
    p50 = statistics.median(op) * 1000
    m50, n50 = statistics.median(via_mcp) * 1000, statistics.median(noop) * 1000
    return [
        Row(
            GROUP,
            "tail 100 lines of a 1 GiB file, p50 (file operation)",
            p50,
            "ms",
            target="<= 50 ms",
            ok=p50 <= 50,
            note=f"{size / GIB:.2f} GiB; first (cache dropped) {cold:.2f} ms",
        ),
        Row(
            GROUP,
            "tail 100 lines of a 1 GiB file, p50 (MCP call)",
            m50,
            "ms",
            baseline=n50,
            target="<= no-op + 50 ms",
            ok=m50 - n50 <= 50,
            note="baseline: bench_noop p50, same server",
        ),
    ]


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tailops-bench-probes-") as tmp:
        base = Path(tmp)
        files_root = base / "files"
        files_root.mkdir()
        config = {"files": {"allowed_roots": [str(files_root)]}, "network": {"max_concurrent_probes": 64}}
        with server_process(base, config=config) as srv:

            async def main() -> None:
                rows.extend(await _health_under_probes(srv.url, srv.token))
                rows.extend(await _tail_rows(srv.url, srv.token, files_root, srv.settings))

            anyio.run(main)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
