"""A tailops HTTP server process for benchmarks, with two bench-only tools bound
through the same registry boundary as product tools (auth, audit, metrics):

- ``bench_noop``: returns at once (the baseline for per-call overhead);
- ``bench_wait``: awaits I/O for ``seconds`` (keeps calls in flight without CPU).

Run: python -m tests.bench.server_proc --config FILE --port N
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from pydantic import Field

from tailops.config import load_config
from tailops.logsetup import configure_logging
from tailops.models import Model
from tailops.runtime import Runtime
from tailops.server.app import build_app
from tailops.server.run import bind_socket
from tailops.tools.registry import ToolCall, ToolSpec, annotations_for, bind


class Done(Model):
    ok: bool


def bench_noop(call: ToolCall) -> Done:
    """Do nothing (benchmark baseline)."""
    return Done(ok=True)


async def bench_wait(
    call: ToolCall, seconds: Annotated[float, Field(ge=0, le=30, description="Seconds to wait.")] = 0.5
) -> Done:
    """Wait on I/O without using CPU (benchmark load)."""
    await anyio.sleep(seconds)
    return Done(ok=True)


def add_bench_tools(rt: Runtime) -> Any:
    def extra(server: MCPServer[Any]) -> None:
        for fn in (bench_noop, bench_wait):
            spec = ToolSpec(name=fn.__name__, group="system", scope="readonly", fn=fn, description=fn.__doc__ or "")
            server.add_tool(
                bind(spec, rt), name=spec.name, description=spec.description, annotations=annotations_for(spec)
            )

    return extra


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    settings = load_config(args.config, server={"port": args.port})
    configure_logging("WARNING", "json")
    sock = bind_socket(settings.server.host, settings.server.port)
    rt = Runtime(settings, config_path=args.config)
    app = build_app(rt, extra=add_bench_tools(rt))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
