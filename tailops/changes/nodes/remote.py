"""Run one shard of a run on an execution node, with the local runner's results.

Why: a node runs the job with ``ansible-runner worker`` and streams back
ansible-runner's own events; the controller must turn them into exactly what
a local run gives — :class:`~tailops.changes.models.RunResult` per host and
task with diffs, :class:`RunEvent` progress — so plans, runs and their
planned-vs-actual comparison do not care where a host ran. The events go
through the local :class:`~tailops.changes.ansible.events.EventParser`.

The stream is read here (not with ansible-runner's ``process``) because the
controller must decide what a node may make it do: it reads only JSON lines
and one artifact zip whose allow-listed members (``rc``,
``status``, ``stdout``) are read in memory and never extracted (a node cannot
plant a symlink or a file in the controller's data dir); status lines are
reduced to their status (the worker's ``starting`` line carries its whole
environment and command line); events are redacted before they are stored.

Failure modes and what the result says:

* a node that drops mid-run (SSH keepalives unanswered, connection cut, the
  stream ends without ``eof``): its hosts end ``unreachable`` with a task
  ``(execution node)`` whose message starts ``interrupted:`` and names the
  node — never silently missing;
* output that is not the protocol: a clear :class:`RunnerError` ("node X
  printed non-protocol output: ..."); before the node's hello line nothing is
  sent, so no job starts;
* cancel (or the run timeout): ``cancel <id>`` over a second SSH connection
  (closing the pipe would not stop the worker), then the stream is read to
  its end for up to ``cancel_grace``; if it does not end, the link is cut and
  the hosts are ``interrupted``.

It must never write what a node sent outside ``<artifacts_root>/<ident>/``, keep
the worker's environment, or wait on a node without a bound.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import logging
import math
import os
import re
import subprocess
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread

from tailops.changes.ansible.events import EventParser
from tailops.changes.ansible.relay import EventRelay
from tailops.changes.models import HostResult, RunEvent, RunRequest, RunResult, RunStatus, TaskResult, TaskStatus
from tailops.changes.nodes.bundle import Bundle, build_bundle
from tailops.changes.nodes.transport import protocol_error, request_cancel, ssh_argv, verify_node
from tailops.config import NodeSettings
from tailops.errors import RunnerError, StalePlan, TailopsError
from tailops.redact import redact, redact_text

__all__ = ["NODE_TASK", "NodeRun", "interrupted_hosts", "run_on_node"]

log = logging.getLogger("tailops.changes.nodes.remote")

NODE_TASK = "(execution node)"
"""Task name of the result that marks a host whose node dropped or was cut off."""

_IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_MAX_LINE = 64 * 1024 * 1024
_MAX_ZIP = 256 * 1024 * 1024
_KEPT = {"rc": 64, "status": 64, "stdout": 32 * 1024 * 1024}
_HELLO_GRACE_S = 30.0
_FINAL = frozenset({"successful", "failed", "canceled", "timeout", "error"})


@dataclass(frozen=True)
class NodeRun:
    """One shard's outcome: where it ran, what was sent, and the per-host result.

    ``node`` is the node's name; ``bundle_sha256``/``stream_sha256`` identify
    what was sent (:class:`~tailops.changes.nodes.bundle.Bundle`); ``error``
    says why hosts were marked interrupted (None when the stream ended normally).
    """

    node: str
    hosts: tuple[str, ...]
    ident: str
    bundle_sha256: str
    stream_sha256: str
    result: RunResult
    error: str | None = None


def interrupted_hosts(hosts: Sequence[str], partial: dict[str, HostResult], why: str) -> dict[str, HostResult]:
    """Every host of a shard whose run did not finish: ``unreachable`` + an ``interrupted:`` task."""
    out: dict[str, HostResult] = {}
    for host in hosts:
        tasks = list(partial[host].tasks) if host in partial else []
        tasks.append(TaskResult(host=host, task=NODE_TASK, status=TaskStatus.UNREACHABLE, msg=f"interrupted: {why}"))
        counts = dict(partial[host].counts) if host in partial else {}
        counts["unreachable"] = counts.get("unreachable", 0) + 1
        out[host] = HostResult(host=host, status="unreachable", tasks=tasks, counts=counts)
    return out


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class _StreamEnded(Exception):
    """The worker stream ended before ``eof`` (node dropped or link cut)."""


class _RemoteJob:
    """One shard on one node, inside a worker thread."""

    def __init__(
        self,
        req: RunRequest,
        node: NodeSettings,
        hosts: tuple[str, ...],
        bundle: Bundle,
        emit: Callable[[RunEvent], None],
    ) -> None:
        self.req = req
        self.node = node
        self.hosts = hosts
        self.bundle = bundle
        self.ident = bundle.ident
        self.emit = emit
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.timed_out = False
        self.cut = threading.Event()  # we killed ssh on purpose
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_tail = b""
        self.private = req.artifacts_root / self.ident
        self.artifact_dir = self.private / "artifacts" / self.ident
        self.raw_events: list[dict[str, Any]] = []
        self.worker_status: str | None = None
        self.explanation: str | None = None
        self.files: dict[str, bytes] = {}
        self.hello_seen = False
        self.protocol_failure: str | None = None
        self.stderr_thread: threading.Thread | None = None

    # -- plumbing ----------------------------------------------------------------
    def _kill_ssh(self) -> None:
        self.cut.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        for chunk in iter(lambda: stream.read(4096), b""):
            self.stderr_tail = (self.stderr_tail + chunk)[-4096:]

    def _why_dropped(self) -> str:
        if self.protocol_failure:
            return self.protocol_failure
        rc = self.proc.poll() if self.proc else None
        text = redact_text(" ".join(self.stderr_tail.decode("utf-8", "replace").split()))[-300:]
        detail = f" (ssh exit {rc}: {text})" if text else f" (ssh exit {rc})"
        if self.timed_out:
            return f"node {self.node.name} did not finish within the run timeout{detail}"
        if self.stop.is_set():
            return f"node {self.node.name} did not end the canceled job within {self.node.cancel_grace}{detail}"
        if not self.hello_seen:
            return f"node {self.node.name} could not start the job{detail}"
        return f"node {self.node.name} dropped mid-run{detail}"

    def _watch(self, started: float) -> None:
        """Cancel / timeout: ask the node to cancel, then cut the link after the grace period."""
        deadline = started + self.req.timeout.total_seconds()
        while not self.finished.is_set():
            if self.stop.wait(0.2) or time.monotonic() > deadline:
                break
        if self.finished.is_set():
            return
        if not self.stop.is_set():
            self.timed_out = True
            self.stop.set()
        grace_end = time.monotonic() + self.node.cancel_grace.total_seconds()
        while not self.finished.is_set() and time.monotonic() < grace_end:
            try:
                answer = request_cancel(self.node, self.ident, timeout_s=max(1.0, grace_end - time.monotonic()))
                log.info("node %s: cancel %s -> %s", self.node.name, self.ident, answer)
                break
            except TailopsError as exc:  # retried: a busy node may miss one connection
                log.warning("node %s: cancel of %s failed: %s", self.node.name, self.ident, exc)
                self.finished.wait(2.0)
        if not self.finished.wait(max(0.0, grace_end - time.monotonic())):
            # Cutting the link also stops the job: the node's wrapper cannot write and cancels it.
            self._kill_ssh()

    # -- reading -------------------------------------------------------------------
    def _readline(self, out: IO[bytes]) -> bytes:
        line = out.readline(_MAX_LINE)
        if not line:
            raise _StreamEnded
        if not line.endswith(b"\n"):
            raise protocol_error(self.node.name, line)
        return line

    def _read_zip(self, out: IO[bytes], size: int) -> None:
        if not 0 <= size <= _MAX_ZIP:
            raise RunnerError(f"node {self.node.name} sent an artifact zip of {size} bytes (limit {_MAX_ZIP}).")
        encoded_len = 4 * math.ceil(size / 3)
        data = out.read(encoded_len)
        if len(data) < encoded_len:
            raise _StreamEnded
        try:
            archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(data, validate=True)))
        except (binascii.Error, zipfile.BadZipFile) as exc:
            raise RunnerError(f"node {self.node.name} sent a broken artifact zip: {exc}") from exc
        with archive:
            for info in archive.infolist():
                limit = _KEPT.get(info.filename)
                if limit is None or info.is_dir() or info.file_size > limit:
                    continue  # command (the worker's environment), job_events, anything else: never kept
                self.files[info.filename] = archive.read(info)

    def _on_event(self, raw: dict[str, Any], parser: EventParser, events_dir: Path) -> None:
        self.raw_events.append(raw)
        try:
            progress = parser.feed(raw)
            name = f"{int(raw.get('counter') or 0)}-{str(raw.get('uuid', 'x'))[:64]}.json"
            if "/" not in name and not name.startswith("."):
                _write_private(events_dir / name, json.dumps(redact(raw), default=str).encode())
        except Exception:  # a parsing bug must not kill the run; it is logged
            log.exception("node %s: event %s could not be processed", self.node.name, raw.get("event"))
            return
        if progress is not None:
            self.emit(progress)

    def _converse(self, parser: EventParser, events_dir: Path) -> bool:
        """Send the bundle after the hello, read the stream; True when it ended with eof."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        out = self.proc.stdout
        hello_timer = threading.Timer(self.node.connect_timeout.total_seconds() + _HELLO_GRACE_S, self._kill_ssh)
        hello_timer.start()
        try:
            line = self._readline(out)
        finally:
            hello_timer.cancel()
        try:
            hello = json.loads(line)
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or hello.get("tailops_node") != 1 or hello.get("job") != self.ident:
            raise protocol_error(self.node.name, line)
        self.hello_seen = True
        try:
            self.proc.stdin.write(self.bundle.stream)
            self.proc.stdin.close()
        except OSError:
            raise _StreamEnded from None
        while True:
            line = self._readline(out)
            try:
                data = json.loads(line)
            except ValueError:
                raise protocol_error(self.node.name, line) from None
            if not isinstance(data, dict):
                raise protocol_error(self.node.name, line)
            if "status" in data:
                # Only the status word is kept: 'starting' also carries env, command and cwd.
                self.worker_status = str(data["status"])[:32]
                if data.get("job_explanation"):
                    self.explanation = redact_text(str(data["job_explanation"]))[:500]
            elif "zipfile" in data:
                self._read_zip(out, int(data["zipfile"]))
            elif data.get("eof") is True:
                return True
            elif data.get("event") == "keepalive":
                continue
            elif "event" in data:
                self._on_event(data, parser, events_dir)
            else:
                raise protocol_error(self.node.name, line)

    # -- the run ---------------------------------------------------------------------
    def run(self) -> NodeRun:
        try:
            return self._run()
        finally:
            self.finished.set()

    def _run(self) -> NodeRun:
        req = self.req
        req.artifacts_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.private.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise RunnerError(f"A run with ident {self.ident!r} already exists.", hint="Use a new ident.") from exc
        events_dir = self.artifact_dir / "job_events"
        events_dir.mkdir(mode=0o700, parents=True)
        parser = EventParser(req.mode, not_simulated_hint=req.not_simulated_hint)
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                ssh_argv(self.node, f"run {self.ident}"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise RunnerError(f"ssh could not start for node {self.node.name}: {exc}") from exc
        assert self.proc.stderr is not None
        self.stderr_thread = threading.Thread(target=self._drain_stderr, args=(self.proc.stderr,), daemon=True)
        self.stderr_thread.start()
        threading.Thread(target=self._watch, args=(time.monotonic(),), daemon=True).start()
        complete = False
        try:
            complete = self._converse(parser, events_dir)
        except _StreamEnded:
            complete = False
        except RunnerError as exc:
            self.protocol_failure = exc.message
            self._kill_ssh()
            if self.hello_seen:
                # The job was sent: the worker may be running it; closing the pipe would not stop it.
                with contextlib.suppress(TailopsError):
                    request_cancel(self.node, self.ident)
            if not self.raw_events:
                self._reap()
                raise
            complete = False
        finally:
            self._reap()
        return self._result(complete, started_at, t0)

    def _reap(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill_ssh()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.stderr_thread is not None:
            self.stderr_thread.join(timeout=5)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _result(self, complete: bool, started_at: datetime, t0: float) -> NodeRun:
        req = self.req
        for name, data in self.files.items():
            _write_private(self.artifact_dir / name, redact_text(data.decode("utf-8", "replace")).encode())
        # Re-parse the whole stream at the end (tailops_taskinfo records included) for the final result.
        final = EventParser(req.mode, not_simulated_hint=req.not_simulated_hint)
        for raw in self.raw_events:
            with contextlib.suppress(Exception):
                final.feed(raw)
        hosts = final.host_results()
        error: str | None = None
        status: RunStatus
        ws = self.worker_status
        if complete and ws in _FINAL and ws != "error" and (final.stats is not None or ws == "canceled"):
            status = "timeout" if (ws == "canceled" and self.timed_out) else ws  # type: ignore[assignment]
            if status in ("canceled", "timeout"):
                unfinished = [h for h in self.hosts if h not in (final.stats or {}).get("processed", {})]
                if unfinished:
                    hosts.update(interrupted_hosts(unfinished, hosts, f"canceled on node {self.node.name}"))
        elif complete and ws == "error" and not self.raw_events:
            raise RunnerError(
                f"node {self.node.name} could not run {req.playbook.name}: {self.explanation or 'worker error'}",
                hint="Check the node with `tailops nodes check`.",
            )
        elif complete and final.stats is None and ws in ("successful", "failed"):
            raise RunnerError(
                f"ansible-playbook did not run {req.playbook.name} on node {self.node.name}: {final.error_text()}",
                hint="Fix the playbook or inventory (or the limit) and plan again.",
            )
        else:
            error = self.explanation if (complete and self.explanation) else self._why_dropped()
            hosts.update(interrupted_hosts(self.hosts, hosts, error))
            status = "timeout" if self.timed_out else ("canceled" if self.stop.is_set() else "failed")
        rc_text = self.files.get("rc", b"").decode("ascii", "replace").strip()
        finished_at = datetime.now(UTC)
        result = RunResult(
            ident=self.ident,
            mode=req.mode,
            status=status,
            rc=int(rc_text) if rc_text.lstrip("-").isdigit() else None,
            hosts=hosts,
            started_at=started_at,
            finished_at=finished_at,
            duration_s=time.perf_counter() - t0,
            warnings=final.warnings,
            artifact_dir=str(self.artifact_dir),
        )
        self.emit(RunEvent(kind="run_end", run_status=status, created=finished_at))
        return NodeRun(
            node=self.node.name,
            hosts=self.hosts,
            ident=self.ident,
            bundle_sha256=self.bundle.bundle_sha256,
            stream_sha256=self.bundle.stream_sha256,
            result=result,
            error=error,
        )


async def run_on_node(
    req: RunRequest,
    node: NodeSettings,
    hosts: Sequence[str],
    *,
    ident: str,
    expect_bundle_sha256: str | None = None,
    verify: bool = True,
    on_event: Callable[[RunEvent], Awaitable[None] | None] | None = None,
    cancel: anyio.Event | None = None,
) -> NodeRun:
    """Run ``req`` on ``hosts`` on ``node`` as job ``ident``; per-host results like a local run.

    ``verify``: first check the node runs the controller's ansible-core and
    ansible-runner (:func:`~tailops.changes.nodes.transport.verify_node`; a
    mismatch raises :class:`~tailops.errors.ConfigError` naming both).
    ``expect_bundle_sha256``: apply passes the plan's recorded bundle hash; a
    bundle that differs (playbook, roles, inventory, extravars, env policy,
    forks or hosts changed) raises :class:`~tailops.errors.StalePlan` before
    anything is sent. ``on_event``/``cancel``: as
    :func:`tailops.changes.ansible.job.run_playbook` (``cancel`` goes to the node as
    ``cancel <ident>``). Unreachable target hosts and a dropped node are
    results, not exceptions; a node that cannot be reached at all or speaks
    no protocol raises :class:`~tailops.errors.RunnerError`.
    """
    if not _IDENT_RE.match(ident):
        raise RunnerError(f"Run ident {ident!r} is not allowed.", hint="Use letters, digits, '.', '_' and '-'.")
    paths = (("playbook", req.playbook), ("inventory", req.inventory), ("artifacts_root", req.artifacts_root))
    for label, path in paths:
        if not path.is_absolute():
            raise RunnerError(f"The {label} path {path} is relative.", hint="Pass an absolute path.")
    if verify:
        await anyio.to_thread.run_sync(verify_node, node)
    bundle = await anyio.to_thread.run_sync(lambda: build_bundle(req, ident=ident, hosts=list(hosts)))
    if expect_bundle_sha256 is not None and bundle.bundle_sha256 != expect_bundle_sha256:
        raise StalePlan(
            f"The job for node {node.name} is not the one planned (bundle {bundle.bundle_sha256[:12]}, "
            f"plan {expect_bundle_sha256[:12]}): playbook, roles, inventory, parameters or hosts changed.",
            hint="Plan again.",
        )
    relay = EventRelay[NodeRun](on_event)
    job = _RemoteJob(req, node, tuple(sorted(hosts)), bundle, relay.emit)
    grace_s = node.cancel_grace.total_seconds() + 30
    return await relay.run(job.run, stop=job.stop, finished=job.finished, cancel=cancel, finish_timeout_s=grace_s)
