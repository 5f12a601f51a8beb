"""SSH to an execution node: the argv, ``info``, ``cancel`` and the version check.

Why: every conversation with a node is one ``ssh`` process whose remote
command the node's forced-command wrapper (:mod:`.node_wrapper`) reads from
``SSH_ORIGINAL_COMMAND``. One function builds that argv so every call has the
same safety: the configured key only (``IdentitiesOnly``, no agent, no
forwarding, no tty), host key checking always on against the configured
known_hosts file, batch mode (never a password prompt that would hang),
bounded connect time and keepalives so a dropped node is noticed.

A node is usable only if it runs the controller's own ansible-core and
ansible-runner versions (the worker stream and the job events are versioned
with them): :func:`require_same_versions` refuses a mismatch with both
versions named.

It must never print or store what a node sends beyond the parsed, bounded
``info`` fields, and never wait without a bound.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata

from tailops.config import NodeSettings
from tailops.errors import ConfigError, RunnerError, Unavailable
from tailops.redact import redact_text

__all__ = [
    "NodeInfo",
    "local_versions",
    "node_info",
    "protocol_error",
    "request_cancel",
    "require_same_versions",
    "ssh_argv",
    "verify_node",
]

_INFO_TIMEOUT_S = 90.0
_SHOWN = 200


@dataclass(frozen=True)
class NodeInfo:
    """What a node's ``info`` reported."""

    node: str
    ansible_core: str | None
    ansible_runner: str | None
    python: str | None
    cpu_count: int | None
    errors: list[str] = field(default_factory=list)


def ssh_argv(node: NodeSettings, command: str) -> list[str]:
    """``ssh`` argv that asks ``node``'s forced command for ``command``."""
    connect = max(1, int(node.connect_timeout.total_seconds()))
    alive = max(1, int(node.keepalive.total_seconds()))
    return [
        "ssh",
        "-T",
        "-F",
        "/dev/null",
        "-i",
        str(node.key),
        "-p",
        str(node.port),
        "-l",
        node.user,
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={node.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={connect}",
        "-o",
        f"ServerAliveInterval={alive}",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "ClearAllForwardings=yes",
        "-o",
        "LogLevel=ERROR",
        "--",
        node.host,
        command,
    ]


def protocol_error(node: str, line: bytes) -> RunnerError:
    """The error for a stdout line that is not the node protocol (shell noise, banners)."""
    shown = redact_text(line[:_SHOWN].decode("utf-8", "replace").strip())
    return RunnerError(
        f"node {node} printed non-protocol output: {shown!r}",
        hint="Something on the node (a shell rc file, a banner, a wrapper) writes to stdout; "
        "the forced command's stdout must carry only the worker stream.",
    )


def _ssh_failure(node: str, rc: int, stderr: bytes) -> Unavailable:
    text = redact_text(" ".join(stderr.decode("utf-8", "replace").split()))[:300]
    return Unavailable(
        f"node {node} could not be reached over SSH (exit {rc}): {text or 'no message'}",
        hint="Check nodes[].host/port/user/key/known_hosts and the node's authorized_keys entry.",
    )


def node_info(node: NodeSettings, *, timeout_s: float = _INFO_TIMEOUT_S) -> NodeInfo:
    """Ask ``node`` for ``info`` (blocking; bounded by ``timeout_s``)."""
    try:
        proc = subprocess.run(
            ssh_argv(node, "info"), capture_output=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"node {node.name} did not answer 'info' within {timeout_s:.0f} s.") from exc
    except OSError as exc:
        raise Unavailable(f"ssh could not start for node {node.name}: {exc}") from exc
    if proc.returncode != 0:
        raise _ssh_failure(node.name, proc.returncode, proc.stderr)
    lines = proc.stdout.splitlines()
    if len(lines) != 1:
        raise protocol_error(node.name, lines[0] if lines else b"(nothing)")
    try:
        data = json.loads(lines[0])
    except ValueError:
        raise protocol_error(node.name, lines[0]) from None
    if not isinstance(data, dict) or data.get("protocol") != 1:
        raise protocol_error(node.name, lines[0])

    def text(key: str) -> str | None:
        value = data.get(key)
        return str(value)[:64] if value is not None else None

    cpu = data.get("cpu_count")
    errors = data.get("errors") if isinstance(data.get("errors"), list) else []
    return NodeInfo(
        node=node.name,
        ansible_core=text("ansible_core"),
        ansible_runner=text("ansible_runner"),
        python=text("python"),
        cpu_count=cpu if isinstance(cpu, int) else None,
        errors=[redact_text(str(e))[:_SHOWN] for e in (errors or [])][:5],
    )


def local_versions() -> dict[str, str | None]:
    """The controller's own ansible-core and ansible-runner versions."""
    out: dict[str, str | None] = {}
    for dist in ("ansible-core", "ansible-runner"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def require_same_versions(info: NodeInfo, local: dict[str, str | None] | None = None) -> None:
    """Refuse a node whose ansible-core or ansible-runner differs from the controller's."""
    mine = local or local_versions()
    theirs = {"ansible-core": info.ansible_core, "ansible-runner": info.ansible_runner}
    wrong = [f"{dist} {theirs[dist]} (controller {mine[dist]})" for dist in mine if theirs[dist] != mine[dist]]
    if wrong:
        raise ConfigError(
            f"node {info.node} runs {', '.join(wrong)}; execution nodes must run the controller's versions.",
            hint="Install the same ansible-core and ansible-runner on the node (or the controller).",
        )
    if info.errors:
        raise ConfigError(f"node {info.node} reported errors: {'; '.join(info.errors)}")


_VERIFIED: dict[tuple[str, str, int], float] = {}
_VERIFIED_TTL_S = 60.0


def verify_node(node: NodeSettings, *, max_age_s: float = _VERIFIED_TTL_S) -> None:
    """:func:`node_info` + :func:`require_same_versions`, remembered for ``max_age_s`` when it passed."""
    key = (node.name, node.host, node.port)
    seen = _VERIFIED.get(key)
    if seen is not None and time.monotonic() - seen < max_age_s:
        return
    require_same_versions(node_info(node))
    _VERIFIED[key] = time.monotonic()


def request_cancel(node: NodeSettings, ident: str, *, timeout_s: float = 60.0) -> str:
    """Ask ``node`` to cancel job ``ident``; returns the node's answer (``signalled`` / ``not-running``)."""
    try:
        proc = subprocess.run(
            ssh_argv(node, f"cancel {ident}"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"node {node.name} did not answer 'cancel' within {timeout_s:.0f} s.") from exc
    except OSError as exc:
        raise Unavailable(f"ssh could not start for node {node.name}: {exc}") from exc
    if proc.returncode != 0:
        raise _ssh_failure(node.name, proc.returncode, proc.stderr)
    line = proc.stdout.strip().splitlines()[-1:] or [b""]
    try:
        return str(json.loads(line[0]).get("cancel"))
    except (ValueError, AttributeError):
        raise protocol_error(node.name, line[0]) from None
