"""Docker engine missing or going away: clear errors, the server keeps serving, /health says so.

The real dockerd is never stopped (other tests use it). "Engine gone" is simulated
with (a) a unix socket path that we create and then remove, and (b) a socket
proxy in front of the real engine that we start, stop mid-session and start again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.types import TextContent

from tailops.config import Settings, load_config
from tests.servers import RunningServer, http_server, mcp_http_client

CONTAINER_TOOL_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_container_list", {"all": True}),
    ("inspect_container", {"name": "web"}),
    ("get_container_stats", {}),
    ("list_docker_images", {}),
    ("get_docker_networks", {}),
    ("get_container_logs", {"name": "web"}),
    ("analyze_container_logs", {"name": "web"}),
]


def engine_socket_path() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return "/var/run/docker.sock"


class UnixSocketProxy:
    """A byte pipe from ``path`` to the real engine socket that can be stopped and restarted."""

    def __init__(self, path: Path, upstream: str) -> None:
        self.path = path
        self.upstream = upstream
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(self.path))
        srv.listen(64)
        srv.settimeout(0.1)
        self._server = srv
        self._thread = threading.Thread(target=self._accept_loop, args=(srv,), daemon=True)
        self._thread.start()

    def _accept_loop(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream)
            with self._lock:
                self._conns += [conn, up]
            threading.Thread(target=self._pump, args=(conn, up), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        """The engine is gone: no listener, no socket file, every open connection cut."""
        self._stop.set()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()


def settings_for(tmp: Path, base_url: str) -> Settings:
    empty = tmp / "empty.yaml"
    empty.write_text("{}\n")
    return load_config(empty, server={"data_dir": tmp / "data"}, docker={"base_url": base_url, "timeout": "5s"})


async def call(srv: RunningServer, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    token = srv.mint("engine-down", "readonly")
    async with mcp_http_client(srv.url, token) as client:
        result = await client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return bool(result.is_error), block.text


async def health(srv: RunningServer) -> tuple[int, dict[str, Any]]:
    async with httpx2.AsyncClient(timeout=10) as http:
        res = await http.get(f"{srv.base_url}/health")
    body: dict[str, Any] = res.json()
    return res.status_code, body


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # Unix socket paths must stay under ~100 bytes: pytest's tmp_path can be longer.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tlo-") as d:
        yield Path(d)


async def test_missing_socket_gives_clear_errors_and_the_server_keeps_serving(short_tmp: Path) -> None:
    gone = short_tmp / "gone.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(gone))
    s.close()
    gone.unlink()
    with http_server(settings_for(short_tmp, f"unix://{gone}")) as srv:
        for tool, args in CONTAINER_TOOL_CALLS:
            is_error, text = await call(srv, tool, args)
            assert is_error, tool
            assert text.startswith("unavailable:"), (tool, text)
            assert "Docker engine" in text and str(gone) in text, text
            assert "other tools keep working" in text
        is_error, text = await call(srv, "get_system_status", {})
        assert not is_error, text
        status, body = await health(srv)
        assert status == 200  # degraded, still serving
        assert body["status"] == "degraded"
        assert body["checks"]["docker"]["status"] == "unavailable"
        assert str(gone) in body["checks"]["docker"]["detail"]
        assert body["checks"]["store"]["status"] == "ok"


async def test_engine_going_away_mid_session_and_coming_back(short_tmp: Path, docker_client: Any) -> None:
    proxy_path = short_tmp / "engine.sock"
    proxy = UnixSocketProxy(proxy_path, engine_socket_path())
    proxy.start()
    try:
        with http_server(settings_for(short_tmp, f"unix://{proxy_path}")) as srv:
            is_error, text = await call(srv, "get_container_list", {"all": True})
            assert not is_error, text
            status, body = await health(srv)
            assert body["checks"]["docker"]["status"] == "ok"

            proxy.stop()  # the engine is gone
            for tool, args in CONTAINER_TOOL_CALLS:
                is_error, text = await call(srv, tool, args)
                assert is_error and text.startswith("unavailable:"), (tool, text)
                assert "internal_error" not in text
            status, body = await health(srv)
            assert status == 200 and body["checks"]["docker"]["status"] == "unavailable"
            is_error, text = await call(srv, "get_system_status", {})
            assert not is_error, text

            proxy.start()  # the engine is back: the next call reconnects by itself
            is_error, text = await call(srv, "get_container_list", {"all": True})
            assert not is_error, text

            # /health caches the engine check for 5 s: wait (bounded) until it sees the engine again.
            with anyio.fail_after(15):
                while (await health(srv))[1]["checks"]["docker"]["status"] != "ok":
                    await anyio.sleep(0.2)
    finally:
        proxy.stop()
