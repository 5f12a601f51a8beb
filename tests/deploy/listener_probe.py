"""Probe a deployed tailops' two listeners from *inside* its container (stdlib only).

Run with ``python3 -c SOURCE PORT SOCKET`` in the container (bookworm's 3.11 or the image's
3.13). It sends the same forged Tailscale identity headers, with a bogus token, once to
the TCP port and once through the proxy unix socket, and GETs ``/health`` through the
socket; it prints one JSON object with the statuses. The caller then reads the audit log:
only the socket request may carry the identity (docs/security.md, server.proxy_socket).
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
from typing import Any

HEADERS = {
    "Tailscale-User-Login": "alice@example.com",
    "Tailscale-User-Name": "Alice Example",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "Authorization": "Bearer not-a-token",
}


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


def request(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str]) -> int:
    conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def main() -> None:
    port, sock_path = int(sys.argv[1]), sys.argv[2]
    out = {
        "tcp_mcp": request(http.client.HTTPConnection("127.0.0.1", port, timeout=10), "POST", "/mcp", HEADERS),
        "socket_mcp": request(UnixConnection(sock_path), "POST", "/mcp", HEADERS),
        "socket_health": request(UnixConnection(sock_path), "GET", "/health", {}),
    }
    print(json.dumps(out))


def assert_identity_only_on_socket(statuses: dict[str, int], audit_text: str) -> None:
    """The caller's half: statuses as expected, identity recorded for the socket request only."""
    assert statuses == {"tcp_mcp": 401, "socket_mcp": 401, "socket_health": 200}, statuses
    records: list[dict[str, Any]] = [json.loads(x) for x in audit_text.splitlines() if x.strip()]
    tcp, via_socket = [r for r in records if r.get("event") == "authentication"][-2:]
    assert tcp["principal"]["human"] is None, "a local TCP client posed as the Tailscale proxy"
    assert via_socket["principal"]["human"] == "alice@example.com", via_socket


if __name__ == "__main__":
    main()
