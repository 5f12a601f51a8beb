"""Real local webhook receivers for the notification tests (loopback only).

:func:`receiver` runs a ``ThreadingHTTPServer`` on 127.0.0.1:<free port> in a
daemon thread and records every POST (time, path, headers, raw body). Its
behaviour is a list of answers served in turn (the last one repeats):

- an ``int``: answer with that status;
- ``"hang"``: read the request, then never answer until the test ends;
- ``"redirect:<url>"``: answer 302 with that ``Location``;
- ``"verify"``: check ``X-Tailops-Signature`` with the receiver's secret using
  :func:`tailops.notify.verify_signature` (the helper a real receiver would use)
  and answer 200, or 401 when it does not verify.

The server stops (hanging handlers released first) when its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tailops.errors import AuthError
from tailops.notify import verify_signature

__all__ = ["Hit", "Receiver", "receiver"]

Answer = int | str


@dataclass(frozen=True)
class Hit:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None = None


@dataclass
class Receiver:
    answers: list[Answer]
    secret: str | None = None
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def next_answer(self) -> Answer:
        with self.lock:
            index = min(len(self.hits), len(self.answers) - 1)
            return self.answers[index]

    def record(self, hit: Hit) -> None:
        with self.arrived:
            self.hits.append(hit)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[Hit]:
        """Block until ``count`` requests arrived (or ``timeout``); return what arrived."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.hits) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.arrived.wait(left)
            return list(self.hits)


def _handler(rx: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k: v for k, v in self.headers.items()}
            answer = rx.next_answer()
            verified: bool | None = None
            if answer == "verify":
                assert rx.secret is not None
                try:
                    verify_signature(rx.secret, self.headers.get("X-Tailops-Signature"), body, 300)
                    verified, answer = True, 200
                except AuthError:
                    verified, answer = False, 401
            rx.record(Hit(time.monotonic(), self.path, headers, body, verified))
            if answer == "hang":
                rx.release.wait(60)
                return
            if isinstance(answer, str) and answer.startswith("redirect:"):
                self.send_response(302)
                self.send_header("Location", answer.removeprefix("redirect:"))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextlib.contextmanager
def receiver(*answers: Answer, secret: str | None = None) -> Iterator[Receiver]:
    rx = Receiver(list(answers) or [200], secret=secret)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx))
    server.daemon_threads = True
    rx.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rx
    finally:
        rx.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
