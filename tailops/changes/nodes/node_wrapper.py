"""The SSH forced command of an execution node: ``run <id>``, ``cancel <id>``, ``info``.

Why: an execution node gives the tailops controller exactly three things over
SSH and nothing else — run one job with ``ansible-runner worker``, cancel it,
and report versions. The node's ``authorized_keys`` entry pins this file as the
forced command (``restrict,command="VENV/bin/python .../node_wrapper.py"``), so
the key cannot open a shell, forward ports or run anything else; sshd puts what
the client asked for in ``SSH_ORIGINAL_COMMAND`` and this wrapper decides.

It is deliberately stdlib-only and runnable as a plain script (a node needs the
same Python, ansible-core and ansible-runner as the controller, not tailops'
other dependencies), and it must never:

* write anything but the protocol to stdout — refusals and diagnostics go to
  stderr, stdout stays empty (the controller reads stdout as ansible-runner's
  JSON-lines stream);
* trust the login environment: a non-interactive SSH login lacks the venv on
  PATH and may carry anything; the worker gets a small environment built here
  (PATH = this interpreter's venv bin first, HOME, C.UTF-8 locale, the venv's
  collections path) and nothing else;
* keep job data after a job: the run dir (inventory, playbook, extravars,
  artifacts) is removed when the worker ends;
* signal a process it did not start for that run id: ``cancel`` checks that
  the pid file's process is this run's worker (its command line names the run
  dir) before sending SIGTERM.

Cancel semantics (see docs/nodes.md): SIGTERM makes ``ansible-runner worker``
stop ``ansible-playbook`` (status ``canceled``, rc 254) and the wrapper then
kills the playbook's remaining worker processes (ansible-core puts each in its
own process group, which ansible-runner does not reach). Whatever a module had
already started on a target host keeps running there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path

PROTOCOL = 1
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_USAGE = "allowed commands: 'run <id>', 'cancel <id>', 'info'"


class Refused(Exception):
    """A request this wrapper will not serve (message goes to stderr, exit 2)."""


def _venv_bin() -> Path:
    return Path(sys.prefix) / "bin"


def _state_dir() -> Path:
    configured = os.environ.get("TAILOPS_NODE_STATE_DIR")
    base = Path(configured) if configured else Path.home() / ".tailops-node"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    return base


def worker_env() -> dict[str, str]:
    """The complete environment of ``ansible-runner worker`` (nothing inherited but HOME/USER)."""
    env = {
        "PATH": f"{_venv_bin()}:{_FALLBACK_PATH}",
        "HOME": os.environ.get("HOME") or str(Path.home()),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_COLLECTIONS_PATH": sysconfig.get_paths()["purelib"],
        # The worker writes a keepalive line after this many quiet seconds: a long silent task
        # still writes to the channel, so a vanished controller is noticed (see cmd_run).
        "ANSIBLE_RUNNER_KEEPALIVE_SECONDS": "5",
    }
    for key in ("USER", "LOGNAME", "TMPDIR"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cmd_info() -> int:
    """One JSON line: versions this node runs jobs with, and the worker's own report."""
    runner = _venv_bin() / "ansible-runner"
    worker_info: str | None = None
    errors: list[str] = []
    try:
        proc = subprocess.run(
            [str(runner), "worker", "--worker-info"],
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode == 0:
            worker_info = proc.stdout.strip()
        else:
            errors.append(f"ansible-runner worker --worker-info failed (rc={proc.returncode}): {proc.stderr[-300:]}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        errors.append(f"ansible-runner worker --worker-info could not run: {exc}")
    report = {
        "protocol": PROTOCOL,
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "ansible_core": _version("ansible-core"),
        "ansible_runner": _version("ansible-runner"),
        "worker_info": worker_info,
        "cpu_count": os.cpu_count(),
        "errors": errors,
    }
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


def _run_dir(job_id: str) -> Path:
    return _state_dir() / job_id


def _pid_file(job_id: str) -> Path:
    return _state_dir() / f"{job_id}.pid"


def _kill_playbook_tree(run_dir: Path) -> int:
    """Kill every process of this run's ansible-playbook (matched by AWX_ISOLATED_DATA_DIR)."""
    marker = f"AWX_ISOLATED_DATA_DIR={run_dir}/".encode()
    victims: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes()
            if any(item.startswith(marker) for item in environ.split(b"\0")):
                victims.append(int(entry.name))
    for pid in victims:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGSTOP)
    for pid in victims:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(victims)


def cmd_run(job_id: str) -> int:
    """Run one job: stdin = transmit stream, stdout = worker stream; the run dir is removed after."""
    run_dir = _run_dir(job_id)
    pid_file = _pid_file(job_id)
    try:
        fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise Refused(f"job {job_id} is already running or was not cleaned up on this node") from None
    argv = [str(_venv_bin() / "ansible-runner"), "worker", "--private-data-dir", str(run_dir), "--delete"]
    proc: subprocess.Popen[bytes] | None = None
    try:
        # The worker inherits our stdin/stdout (the SSH channel) directly.
        # The hello line comes first: the controller sends the job only after reading it, so
        # anything a login shell printed before us is caught before a job could start.
        sys.stdout.write(json.dumps({"tailops_node": PROTOCOL, "job": job_id}) + "\n")
        sys.stdout.flush()
        # stdin (the job bundle) goes straight to the worker; its stdout is relayed, so a
        # controller that went away (the write fails) stops the job instead of leaving it running.
        proc = subprocess.Popen(argv, env=worker_env(), cwd=str(_state_dir()), close_fds=True, stdout=subprocess.PIPE)
        os.write(fd, f"{proc.pid}\n".encode())
        os.close(fd)
        fd = -1

        def forward(signum: int, _frame: object) -> None:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGHUP, forward)
        assert proc.stdout is not None
        source = proc.stdout
        out = sys.stdout.buffer
        try:
            while chunk := os.read(source.fileno(), 65536):
                out.write(chunk)
                out.flush()
        except OSError:  # BrokenPipeError: the SSH channel is gone
            _stop(proc, run_dir)
        return proc.wait()
    finally:
        if fd >= 0:
            os.close(fd)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_playbook_tree(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()


def _stop(proc: subprocess.Popen[bytes], run_dir: Path) -> None:
    """Cancel a running worker: SIGTERM (ansible-runner ends the job canceled), then the playbook tree."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)
    _kill_playbook_tree(run_dir)


def _is_worker_of(pid: int, run_dir: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"worker" in argv and str(run_dir).encode() in argv


def cmd_cancel(job_id: str) -> int:
    """SIGTERM the job's worker (only if it is that job's worker), then stop its playbook tree."""
    run_dir = _run_dir(job_id)
    try:
        pid = int(_pid_file(job_id).read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        pid = 0
    state = "not-running"
    if pid and _is_worker_of(pid, run_dir):
        os.kill(pid, signal.SIGTERM)
        state = "signalled"
        # Give ansible-runner a moment to stop ansible-playbook itself (status canceled), then
        # kill the playbook's forked workers, which sit in their own process groups.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _is_worker_of(pid, run_dir):
            time.sleep(0.1)
        _kill_playbook_tree(run_dir)
    sys.stdout.write(json.dumps({"job": job_id, "cancel": state}) + "\n")
    sys.stdout.flush()
    return 0


def dispatch(command: str) -> int:
    parts = command.split()
    if parts == ["info"]:
        return cmd_info()
    if len(parts) == 2 and parts[0] in ("run", "cancel"):
        job_id = parts[1]
        if not _ID_RE.match(job_id):
            raise Refused(f"job id {job_id[:120]!r} is not allowed (letters, digits, '.', '_', '-')")
        return cmd_run(job_id) if parts[0] == "run" else cmd_cancel(job_id)
    shown = command if len(command) <= 120 else command[:120] + "..."
    raise Refused(f"command {shown!r} refused; {_USAGE}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    if command is None:
        command = " ".join(args)
    try:
        return dispatch(command.strip())
    except Refused as exc:
        sys.stderr.write(f"tailops-node: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
