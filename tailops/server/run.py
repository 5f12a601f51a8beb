"""Run the server on a transport until SIGTERM/SIGINT, then shut down cleanly.

HTTP: uvicorn on a socket we bind ourselves, so ``port: 0`` works and the
token audience / resource metadata name the real port. uvicorn handles
SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish within
``server.shutdown_timeout``, then runs our lifespan exit (samplers, store).
stdio: the SDK's stdio loop; SIGTERM cancels it the same way as end of input.

Transport only: what must be checked before serving (the catalog against its lock) is
handed in by the caller as ``preflight``; this module imports neither ``changes/`` nor
``monitor/``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import anyio

from tailops.config import Settings
from tailops.logsetup import configure_logging
from tailops.runtime import Runtime

__all__ = ["bind_proxy_socket", "bind_socket", "serve"]

log = logging.getLogger("tailops.server")


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit TCP_NODELAY from the listener. Without it, a response
    # written as headers + body waits for the client's delayed ACK: +40 ms per request
    # (uvicorn sets it only on sockets it binds itself).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from tailops.errors import ConfigError

        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}.", hint="Choose another --port or stop the other process."
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def bind_proxy_socket(path: Path) -> socket.socket:
    """The unix socket ``tailscale serve`` proxies to (``server.proxy_socket``), created 0600.

    Only the tailops user and root (tailscaled) can connect, so identity headers that arrive
    on it were set by the proxy (see :mod:`tailops.auth.principals`). A stale socket file
    left by a crashed server is replaced; one another server still listens on is refused.
    """
    from tailops.errors import ConfigError

    path = path.absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_socket():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # nobody listens: a leftover of a server that is gone
            else:
                raise ConfigError(f"another server already listens on server.proxy_socket {path}.")
            finally:
                probe.close()
        elif path.exists() or path.is_symlink():
            raise ConfigError(f"server.proxy_socket {path} exists and is not a socket; refusing to replace it.")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: no window in which others could connect
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot listen on server.proxy_socket {path}: {exc.strerror}.") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings,
    *,
    config_path: Path | None = None,
    preflight: Callable[[Settings], object] | None = None,
) -> None:
    """Serve until a signal. ``preflight(settings)`` runs once logging is set up, before
    anything is served (``tailops serve`` passes the catalog start-up check)."""
    configure_logging(settings.server.log_level, settings.server.log_format)
    if preflight is not None:
        preflight(settings)
    if settings.server.transport == "stdio":
        _serve_stdio(settings, config_path)
    else:
        _serve_http(settings, config_path)


def _serve_http(settings: Settings, config_path: Path | None) -> None:
    import uvicorn  # only the HTTP transport needs it (stdio starts faster without)

    from tailops.server.app import build_app

    sock = bind_socket(settings.server.host, settings.server.port)
    sockets = [sock]
    if settings.server.proxy_socket is not None:
        sockets.append(bind_proxy_socket(settings.server.proxy_socket))
    real_port = sock.getsockname()[1]
    if real_port != settings.server.port:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update={"port": real_port})})
    rt = Runtime(settings, config_path=config_path)
    app = build_app(rt)
    sys.stderr.write(
        f"tailops serving MCP at {settings.mcp_url} (health: {settings.mcp_url[:-4]}/health)\n"
        + (
            "Clients need a bearer token: tailops token mint --subject NAME --scopes readonly --ttl 24h\n"
            if not settings.auth.unsafe_no_auth
            else ""
        )
        + (
            f"Proxy socket for tailscale serve (identity headers trusted there only): {settings.server.proxy_socket}\n"
            if settings.server.proxy_socket is not None
            else ""
        )
    )
    sys.stderr.flush()
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        # Never let a client pick its own address via X-Forwarded-For: the peer
        # address decides Tailscale trust and the failed-login budget.
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.server.shutdown_timeout.total_seconds()),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run(sockets=sockets)


def _serve_stdio(settings: Settings, config_path: Path | None) -> None:
    from tailops.server.mcp_server import build_mcp

    rt = Runtime(settings, config_path=config_path)
    mcp = build_mcp(rt)

    async def main() -> None:
        rt.start()
        try:
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        async for signum in signals:
                            log.info("shutting down", extra={"signal": signal.Signals(signum).name})
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_signals)
                await mcp.run_stdio_async()
                tg.cancel_scope.cancel()
        finally:
            rt.stop()

    anyio.run(main)
