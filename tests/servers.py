"""Real tailops servers for tests: HTTP (uvicorn in a thread, real socket) and
stdio (a spawned ``tailops serve --transport stdio``), plus real MCP SDK clients.

Usage (async test)::

    with http_server(settings) as srv:
        token = srv.mint("alice", "readonly")
        async with mcp_http_client(srv.url, token) as client:
            result = await client.call_tool("get_system_status", {})
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from tailops.auth.tokens import generate_keypair, mint_token
from tailops.config import Settings
from tailops.runtime import Runtime
from tailops.server.app import build_app
from tailops.server.run import bind_proxy_socket, bind_socket


def ensure_keys(settings: Settings) -> None:
    if not settings.public_key_path.exists():
        generate_keypair(settings.private_key_path, settings.public_key_path)


@dataclass
class RunningServer:
    settings: Settings
    runtime: Runtime
    url: str
    base_url: str

    def mint(self, subject: str, scopes: str, ttl: timedelta = timedelta(hours=1)) -> str:
        return mint_for(self.settings, subject, scopes, ttl=ttl, store=self.runtime.store)


def mint_for(
    settings: Settings, subject: str, scopes: str, *, ttl: timedelta = timedelta(hours=1), store: Any = None
) -> str:
    """A token for the server configured by ``settings`` (its audience and issuer), recorded in
    ``store`` when given (so it can be listed and revoked)."""
    return mint_token(
        private_key_path=settings.private_key_path,
        subject=subject,
        scopes=scopes,
        ttl=ttl,
        max_ttl=settings.auth.max_token_ttl,
        audience=settings.mcp_url,
        issuer=settings.auth.issuer,
        store=store,
    ).token


def with_port(settings: Settings, port: int) -> Settings:
    return settings.model_copy(update={"server": settings.server.model_copy(update={"port": port})})


@contextlib.contextmanager
def http_server(
    settings: Settings, *, extra: Callable[[MCPServer[Any]], None] | None = None
) -> Iterator[RunningServer]:
    """Serve ``settings`` on a free loopback port until the block ends."""
    sock = bind_socket(settings.server.host, 0)
    sockets = [sock]
    try:
        if settings.server.proxy_socket is not None:
            sockets.append(bind_proxy_socket(settings.server.proxy_socket))
        settings = with_port(settings, sock.getsockname()[1])
        if not settings.auth.unsafe_no_auth:
            ensure_keys(settings)
        rt = Runtime(settings)
        app = build_app(rt, extra=extra)
    except BaseException:
        for s in sockets:
            s.close()
        raise
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2, proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test HTTP server did not start")
        time.sleep(0.01)
    try:
        base = settings.mcp_url.rsplit("/mcp", 1)[0]
        yield RunningServer(settings=settings, runtime=rt, url=settings.mcp_url, base_url=base)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for s in sockets:
            s.close()


@contextlib.contextmanager
def serve_process(
    cfg: Path,
    port: int,
    log: Path,
    *,
    exe: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
) -> Iterator[subprocess.Popen[bytes]]:
    """``tailops serve --config cfg --port port`` as a real process, its output appended to ``log``.

    ``exe`` is the ``tailops`` to run (default: the test venv's; the deploy tests pass an
    installed one), ``cwd`` its working directory, ``env`` its environment (default: this
    process'). Ready once ``/health`` answers 200 (within ``timeout`` seconds: generous, a
    start takes 20-40 s on a loaded 2-core machine, and only a failing test waits it out). The server
    sees only its config file: ``TAILOPS_*`` and ``FORWARDED_ALLOW_IPS`` are dropped from its
    environment. Stopped with SIGTERM (then SIGKILL) at the end unless the test already ended it.
    """
    base = os.environ if env is None else env
    clean = {k: v for k, v in base.items() if not k.startswith("TAILOPS_") and k != "FORWARDED_ALLOW_IPS"}
    program = str(exe) if exe is not None else str(Path(sys.executable).with_name("tailops"))
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [program, "serve", "--config", str(cfg), "--port", str(port)], stdout=out, stderr=out, env=clean, cwd=cwd
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tailops serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def mcp_http_client(url: str, token: str | None, **client_kwargs: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(30, read=300)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(url, http_client=http), **client_kwargs) as client,
    ):
        yield client


def stdio_params(config_path: Path, *extra_args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    """Spawn the real CLI (``tailops serve --transport stdio``) with a config file."""
    exe = str(Path(sys.executable).with_name("tailops"))
    return StdioServerParameters(
        command=exe, args=["serve", "--transport", "stdio", "--config", str(config_path), *extra_args], env=env
    )
