"""Log bytes → (stream, line), checked against the engine's own per-stream output and the SDK's
demultiplexer, on a recorded ``GET /containers/{id}/logs`` body (tests/fixtures/docker/)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from docker.api.client import STREAM_HEADER_SIZE_BYTES
from docker.utils.socket import STDERR, STDOUT, frames_iter

from tailops.monitor.containers.frames import HEADER_SIZE, MAX_LINE_BYTES, STREAM_NAMES, log_lines
from tests.unit.monitor.containers.recorded import recorded_bytes

BODY = recorded_bytes("logs_multiplexed", "body_b64")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def engine_lines(data: bytes) -> list[str]:
    """What the engine wrote for one stream, as lines (a last line without newline included)."""
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "replace").rstrip("\r") for p in parts]


def per_stream(pairs: list[tuple[str, str]], stream: str) -> list[str]:
    return [line for s, line in pairs if s == stream]


@pytest.mark.parametrize("size", [1, 7, 8, 9, 100, 16 * 1024 + 3, 65536, len(BODY)])
def test_lines_per_stream_are_what_the_engine_gives_for_that_stream_alone(size: int) -> None:
    """However the body is cut into chunks, each stream's lines equal the engine's answer for
    ``stdout=1&stderr=0`` (and the reverse): nothing lost, joined or misattributed."""
    pairs = list(log_lines(chunks(BODY, size), tty=False))
    assert per_stream(pairs, "stdout") == engine_lines(recorded_bytes("logs_multiplexed", "engine_stdout_b64"))
    assert per_stream(pairs, "stderr") == engine_lines(recorded_bytes("logs_multiplexed", "engine_stderr_b64"))
    assert {s for s, _ in pairs} == {"stdout", "stderr"}


def test_the_recording_covers_what_the_demultiplexer_must_handle() -> None:
    pairs = list(log_lines([BODY], tty=False))
    stdout, stderr = per_stream(pairs, "stdout"), per_stream(pairs, "stderr")
    # A 20000-character line reaches us in two engine frames (16 KiB log messages, the second with
    # its own timestamp prefix): joined into one line, as the engine's stdout-only answer has it.
    [long] = [line for line in stdout if "LLLL" in line]
    assert long.count("L") == 20000 and long.count("Z LLLL") == 2
    assert any("bytes \ufffd\ufffd not utf-8" in line for line in stdout)  # invalid UTF-8 shown replaced
    assert any(line.endswith("windows line") for line in stdout)  # CR of CRLF dropped
    assert stdout[-1].endswith("last line without newline")  # the unterminated last line is kept
    # The traceback stays whole on stderr although stdout lines were written in between.
    trace = [line.split(" ", 1)[1] for line in stderr[1:5]]
    assert trace[0] == "Traceback (most recent call last):" and trace[-1].startswith("ConnectionRefusedError")


def test_the_sdk_demultiplexer_agrees_on_the_same_bytes() -> None:
    """docker-py's own ``frames_iter`` (made for hijacked sockets) reads the de-chunked body
    through a socket pair; per stream it yields the same bytes the engine gives alone, so the
    frame format read by ``log_lines`` is the SDK's."""
    ours, theirs = socket.socketpair()

    def feed() -> None:
        with ours:
            ours.sendall(BODY)

    writer = threading.Thread(target=feed)
    writer.start()
    got: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
    with theirs:
        for stream, data in frames_iter(theirs, tty=False):
            got[stream] += data
    writer.join()
    assert got[STDOUT] == recorded_bytes("logs_multiplexed", "engine_stdout_b64")
    assert got[STDERR] == recorded_bytes("logs_multiplexed", "engine_stderr_b64")
    pairs = list(log_lines([BODY], tty=False))
    assert per_stream(pairs, "stdout") == engine_lines(got[STDOUT])


def test_the_frame_format_is_the_sdks() -> None:
    """frames.py cannot import the SDK (the server starts without it), so its constants are pinned here."""
    assert HEADER_SIZE == STREAM_HEADER_SIZE_BYTES
    assert STREAM_NAMES[STDOUT] == "stdout" and STREAM_NAMES[STDERR] == "stderr"


@pytest.mark.parametrize("size", [1, 5, 4096])
def test_a_tty_log_is_one_raw_stream(size: int) -> None:
    body = recorded_bytes("logs_tty", "body_b64")
    pairs = list(log_lines(chunks(body, size), tty=True))
    assert {s for s, _ in pairs} == {"tty"}
    texts = [line.split(" ", 1)[1] for _, line in pairs]
    assert texts == ["tty line one", "tty error", "tty last"]
    assert [line for _, line in pairs] == engine_lines(recorded_bytes("logs_tty", "engine_stdout_b64"))


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_a_line_longer_than_the_cap_is_cut_and_marked() -> None:
    body = b"".join(frame(STDOUT, b"x" * 16384) for _ in range(6)) + frame(STDOUT, b"tail\n")
    pairs = list(log_lines(chunks(body, 4096), tty=False))
    first = pairs[0][1]
    assert first == "x" * MAX_LINE_BYTES + "…"
    assert len(pairs) == 2 and pairs[1][1].endswith("tail")


def test_a_frame_cut_mid_header_waits_for_the_rest() -> None:
    body = frame(STDERR, b"one\n") + frame(STDOUT, b"two\n")
    assert list(log_lines([body[:3], body[3:13], body[13:]], tty=False)) == [("stderr", "one"), ("stdout", "two")]
