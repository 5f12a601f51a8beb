"""A container log's bytes → ``(stream, line)`` pairs: demultiplexing and line joining.

Why it exists: ``GET /containers/{id}/logs`` of a container without a TTY
answers with the engine's multiplexed stream (frames of an 8-byte header
``[stream id, 0, 0, 0, size as 4 big-endian bytes]`` and a payload), sent with
HTTP chunked encoding. The Docker SDK has no reader for it that keeps the
stream of each frame: ``APIClient.logs(stream=True)`` drops the stream id
(docker/docker-py#3253), and its demultiplexer (``docker.utils.socket.frames_iter``
with ``demux_adaptor``) reads a hijacked raw socket, which a chunked logs
response is not (it would read the chunk-size lines as frame headers), with two
reads per frame. So the frames are split here, from 64 KiB chunks of the decoded
body, in one pass; tests/unit/monitor/containers/test_frames.py checks the result
against the SDK's own ``frames_iter`` on recorded engine output.

Partial lines are joined per stream: stdout and stderr reach the engine through
separate pipes, so one stream's line may arrive in pieces around the other's.

What it must never do: hold more than one line per stream (a line longer than
``max_line_bytes`` is cut and marked with "…"), raise on undecodable bytes (they
become U+FFFD), or lose the last line of a log that does not end in a newline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["HEADER_SIZE", "MAX_LINE_BYTES", "STREAM_NAMES", "log_lines"]

HEADER_SIZE = 8  # as docker.api.client.STREAM_HEADER_SIZE_BYTES
MAX_LINE_BYTES = 64 * 1024  # a longer line is cut while reading
# Stream ids of the multiplexed format (docker.utils.socket.STDOUT = 1, STDERR = 2; 0 is stdin).
STREAM_NAMES = {0: "stdin", 1: "stdout", 2: "stderr"}


def log_lines(chunks: Iterable[bytes], *, tty: bool, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[str, str]]:
    """``(stream, line)`` for every line in ``chunks`` (the decoded response body, any split).

    ``stream`` is ``stdout`` / ``stderr`` (``tty`` for a TTY container, whose
    log is one raw stream). Lines keep the engine's timestamp prefix; a trailing
    ``\\r`` is dropped.
    """
    pending: dict[str, bytes] = {}  # per stream: an incomplete line carried over
    frames = bytearray()  # undecoded multiplexed frames (non-TTY)
    streams = STREAM_NAMES
    for chunk in chunks:
        payloads: list[tuple[str, bytes]]
        if tty:
            payloads = [("tty", chunk)]
        else:
            frames += chunk
            payloads = []
            pos = 0
            avail = len(frames)
            while avail - pos >= HEADER_SIZE:
                size = int.from_bytes(frames[pos + 4 : pos + 8], "big")
                if avail - pos - HEADER_SIZE < size:
                    break
                stream = streams.get(frames[pos], "stdout")
                payloads.append((stream, bytes(frames[pos + HEADER_SIZE : pos + HEADER_SIZE + size])))
                pos += HEADER_SIZE + size
            del frames[:pos]
        for stream, payload in payloads:
            carried = pending.pop(stream, b"")
            data = carried + payload if carried else payload
            if b"\n" not in data:
                if len(data) > max_line_bytes:
                    yield stream, data[:max_line_bytes].decode("utf-8", "replace") + "…"
                else:
                    pending[stream] = data
                continue
            *complete, rest = data.split(b"\n")
            if rest:
                pending[stream] = rest
            for raw in complete:
                yield stream, raw[:max_line_bytes].decode("utf-8", "replace").rstrip("\r")
    for stream, rest in pending.items():
        yield stream, rest[:max_line_bytes].decode("utf-8", "replace").rstrip("\r")
