"""The controller's side of the worker stream, on a recorded stream of the real worker.

tests/fixtures/node_stream/check_one_host.stream is what ``ansible-runner
worker`` 2.4.3 printed for a check run of tests/integration/playbooks/nodes.yml
on one host (job ``job1``), after the wrapper's hello line; its task-info records,
recorded when the callback still wrote them to a file in the artifact zip, sit in the
stream as the ``tailops_taskinfo`` events the callback now emits (counters renumbered,
the zip without that file). Here the "node" is
``sh -c 'cat STREAM'`` in place of ssh (the transport is the only part
replaced; SSH itself is exercised in tests/integration/test_nodes.py). The
hostile variants are what a compromised or broken node could send.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import zipfile
from pathlib import Path

import anyio
import pytest

from tailops.changes.models import RunMode, RunRequest
from tailops.changes.nodes import remote
from tailops.changes.nodes.remote import NODE_TASK, run_on_node
from tailops.config import NodeSettings
from tailops.errors import RunnerError

FIXTURE = Path(__file__).parents[3] / "fixtures" / "node_stream" / "check_one_host.stream"
PLAYBOOK = Path(__file__).parents[3] / "integration" / "playbooks" / "nodes.yml"
SECRET = "hunter2-node-secret-value"


def _lines() -> list[bytes]:
    return FIXTURE.read_bytes().splitlines(keepends=True)


def _with_secret_env(lines: list[bytes]) -> list[bytes]:
    out = []
    for line in lines:
        if line.startswith(b'{"status": "starting"'):
            data = json.loads(line)
            data["env"]["NODE_API_TOKEN"] = SECRET
            out.append(json.dumps(data).encode() + b"\n")
        else:
            out.append(line)
    return out


def _run(tmp: Path, monkeypatch: pytest.MonkeyPatch, stream: bytes) -> remote.NodeRun:
    path = tmp / "stream"
    path.write_bytes(stream)
    # The node: print the stream, swallow the bundle.
    monkeypatch.setattr(
        remote, "ssh_argv", lambda node, command: ["sh", "-c", f"cat {shlex.quote(str(path))}; cat >/dev/null"]
    )
    monkeypatch.setattr(remote, "request_cancel", lambda node, ident: "not-running")
    inv = tmp / "inv.ini"
    inv.write_text("[targets]\nloc\n")
    req = RunRequest(playbook=PLAYBOOK, inventory=inv, mode=RunMode.CHECK, artifacts_root=tmp / "runs")
    node = NodeSettings(name="n1", host="n", key=Path("/k"), known_hosts=Path("/kh"), claims=["targets"])
    return anyio.run(lambda: run_on_node(req, node, ["loc"], ident="job1", verify=False))


def _artifact_text(tmp: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (tmp / "runs").rglob("*") if p.is_file())


def test_recorded_stream_gives_the_local_result_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path, monkeypatch, b"".join(_with_secret_env(_lines())))
    result = run.result
    assert result.status == "successful" and result.rc == 0 and run.error is None
    greet = result.task("loc", "Write greeting file")
    assert greet.changed and greet.diff and "+greeting = hello" in greet.diff
    # Only the tailops_taskinfo event the node streamed says check mode ran this for real.
    assert result.task("loc", "Read hostname").not_simulated
    assert result.hosts["loc"].counts["changed"] == 2
    art = tmp_path / "runs" / "job1" / "artifacts" / "job1"
    assert sorted(p.name for p in art.iterdir()) == ["job_events", "rc", "status", "stdout"]
    # The worker's environment (starting line, artifacts' command file) is never stored.
    stored = _artifact_text(tmp_path)
    assert SECRET not in stored and "LC_CTYPE" not in stored


def test_a_stream_cut_mid_run_ends_the_hosts_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _lines()
    cut = next(i for i, ln in enumerate(lines) if b'"event": "playbook_on_stats"' in ln)
    run = _run(tmp_path, monkeypatch, b"".join(lines[:cut]))
    assert run.result.status == "failed"
    host = run.result.hosts["loc"]
    assert host.status == "unreachable" and host.tasks[-1].task == NODE_TASK
    assert host.tasks[-1].msg and host.tasks[-1].msg.startswith("interrupted: node n1 dropped mid-run")
    # What ran before the cut is still reported.
    assert run.result.task("loc", "Write greeting file").changed


def test_noise_before_the_hello_is_refused_and_nothing_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RunnerError, match=r"node n1 printed non-protocol output: 'Welcome to n1'"):
        _run(tmp_path, monkeypatch, b"Welcome to n1\n" + FIXTURE.read_bytes())


def test_noise_mid_stream_interrupts_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _lines()
    lines.insert(8, b"motd: maintenance tonight\n")
    run = _run(tmp_path, monkeypatch, b"".join(lines))
    msg = run.result.hosts["loc"].tasks[-1].msg or ""
    assert msg.startswith("interrupted: node n1 printed non-protocol output: 'motd: maintenance tonight'")


def test_a_hostile_artifact_zip_plants_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        link = zipfile.ZipInfo("stdout")
        link.external_attr = (0o120777) << 16  # a symlink named like a kept file
        z.writestr(link, "/etc/passwd")
        z.writestr("../../../escape", "x")
        z.writestr("command", json.dumps({"env": {"T": SECRET}}))
        z.writestr("rc", "0")
    data = buf.getvalue()
    lines = _lines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(b'{"zipfile"'))
    hostile = [
        *lines[:start],
        json.dumps({"zipfile": len(data)}).encode() + b"\n",
        base64.b64encode(data) + b'{"eof": true}\n',
    ]
    run = _run(tmp_path, monkeypatch, b"".join(hostile))
    assert run.result.status == "successful"
    assert not (tmp_path / "escape").exists() and not (tmp_path / "runs" / "escape").exists()
    art = tmp_path / "runs" / "job1" / "artifacts" / "job1"
    assert not any(p.is_symlink() for p in art.rglob("*"))
    assert (art / "stdout").read_text() == "/etc/passwd"  # a plain file with the link's text, not a link
    assert SECRET not in _artifact_text(tmp_path)
