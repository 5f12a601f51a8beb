"""The listening socket tailops binds itself (so `port: 0` works and the token
audience names the real port) must behave like the one uvicorn would bind."""

from __future__ import annotations

import socket

import pytest

from tailops.errors import ConfigError
from tailops.server.run import bind_socket


def test_accepted_connections_have_nodelay() -> None:
    """Without TCP_NODELAY every response (headers, then body) waits ~40 ms for a delayed ACK."""
    listener = bind_socket("127.0.0.1", 0)
    try:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        try:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            conn.close()
            client.close()
    finally:
        listener.close()


def test_port_in_use_is_a_clear_config_error() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
            bind_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
