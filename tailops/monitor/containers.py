"""Container facts from the local Docker engine: list, inspect, stats, images, networks, logs.

Why it exists: the ``containers`` tools need compact, typed answers from the
engine, fast (one list call plus concurrent inspects, never N sequential
calls), bounded (limits, byte caps, deadlines) and safe to show (environment
values redacted unless explicitly revealed, log lines passed through secret
redaction). Every engine call goes through :class:`DockerEngine` so errors are
translated in one place; unknown containers become ``NotFound`` with close
matches.

What it must never do: change a container, image, network or volume. Start,
stop, restart, update and pull are catalog playbooks run by the change engine.
"""

from __future__ import annotations

import collections
import contextlib
import re
import threading
import time
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from tailops.durations import parse_duration
from tailops.errors import InvalidInput, NotFound, OperationTimeout, TailopsError
from tailops.models import ListResult, Model
from tailops.monitor.docker_engine import DockerEngine, engine_exceptions, translate
from tailops.monitor.log_analysis import AnalysisLimits, ContainerState, LogAnalysis, LogAnalyzer
from tailops.redact import REDACTED, redact_text

__all__ = [
    "CONTAINER_FILTERS",
    "ContainerDetails",
    "ContainerList",
    "ContainerLogs",
    "ContainerStats",
    "ContainerStatsList",
    "ContainerSummary",
    "ImageList",
    "NetworkList",
    "analyze_logs",
    "container_state",
    "container_stats",
    "inspect_container",
    "list_containers",
    "list_images",
    "list_networks",
    "parse_when",
    "read_logs",
]

# Filters the engine understands for GET /containers/json (API 1.41).
CONTAINER_FILTERS = frozenset(
    {
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    }
)
_NAME_RE = re.compile(r"^/?[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
LINE_CHARS = 2000  # one returned log line is cut here
_MAX_LINE_BYTES = 64 * 1024  # a longer line is cut while reading


# ------------------------------------------------------------------ models
class ContainerSummary(Model):
    # All optional: list items can be projected with `fields`.
    name: str | None = None
    id: str | None = Field(None, description="Short id (12 hex digits).")
    image: str | None = Field(None, description="Image reference the container was created from.")
    image_id: str | None = Field(None, description="Content id of the image (sha256:…).")
    image_digest: str | None = Field(None, description="Registry digest (repo@sha256:…), if the image has one.")
    state: str | None = Field(None, description="created, running, paused, restarting, exited, dead.")
    health: Literal["healthy", "unhealthy", "starting"] | None = Field(None, description="None: no health check.")
    status: str | None = Field(None, description="The engine's status text, e.g. 'Up 3 hours (healthy)'.")
    exit_code: int | None = Field(None, description="Last exit code (when not running).")
    oom_killed: bool | None = None
    restart_count: int | None = None
    ports: list[str] | None = Field(None, description="Published ports, e.g. 0.0.0.0:8080->80/tcp.")
    created: str | None = None
    started: str | None = None
    labels: dict[str, str] | None = None


class ContainerList(ListResult):
    containers: list[ContainerSummary]


class HealthInfo(Model):
    status: str
    failing_streak: int = 0
    last_output: list[str] = Field(default_factory=list, description="Output of the last probes (newest last).")
    last_exit_codes: list[int] = Field(default_factory=list)


class StateInfo(Model):
    status: str
    running: bool
    paused: bool
    restarting: bool
    oom_killed: bool
    dead: bool
    pid: int | None
    exit_code: int | None
    error: str | None
    started_at: str | None
    finished_at: str | None
    health: HealthInfo | None = None


class MountInfo(Model):
    type: str | None
    source: str | None
    destination: str | None
    mode: str | None
    rw: bool | None
    name: str | None = Field(None, description="Volume name, for volumes.")


class NetworkAttachment(Model):
    network: str
    ip_address: str | None
    gateway: str | None
    mac_address: str | None
    aliases: list[str] = Field(default_factory=list)


class EnvVar(Model):
    name: str
    value: str | None = Field(description=f"{REDACTED} unless revealed.")


class ContainerConfig(Model):
    cmd: list[str] | None
    entrypoint: list[str] | None
    working_dir: str | None
    user: str | None
    hostname: str | None
    tty: bool
    exposed_ports: list[str]
    healthcheck: list[str] | None = Field(None, description="The HEALTHCHECK test command.")
    stop_signal: str | None = None


class RestartPolicy(Model):
    name: str
    maximum_retry_count: int


class Resources(Model):
    memory_limit: int | None = Field(description="Bytes; None = unlimited.")
    memory_swap: int | None
    nano_cpus: int | None = Field(description="CPU limit in 1e-9 CPUs; None = unlimited.")
    cpu_shares: int | None
    pids_limit: int | None


class ContainerDetails(Model):
    name: str
    id: str
    image: str
    image_id: str
    created: str | None
    state: StateInfo
    restart_count: int
    restart_policy: RestartPolicy
    config: ContainerConfig
    env: list[EnvVar]
    env_redacted: bool = Field(description="True when values are hidden (reveal_container_env shows them).")
    labels: dict[str, str]
    mounts: list[MountInfo]
    networks: list[NetworkAttachment]
    network_mode: str | None
    ports: list[str]
    resources: Resources
    privileged: bool
    cap_add: list[str]
    read_only_rootfs: bool
    log_driver: str | None


class ContainerStats(Model):
    name: str | None = None
    id: str | None = None
    state: str | None = None
    cpu_percent: float | None = Field(None, description="% of one CPU over cpu_window_s (200 = 2 CPUs).")
    cpu_window_s: float | None = Field(
        None, description="Seconds cpu_percent covers (since the previous sample, at most 60 s)."
    )
    memory_usage: int | None = Field(None, description="Bytes, page cache excluded (as `docker stats`).")
    memory_limit: int | None = Field(None, description="Bytes (the host's memory when unlimited).")
    memory_percent: float | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    block_read_bytes: int | None = None
    block_write_bytes: int | None = None
    pids: int | None = None
    error: str | None = Field(None, description="Why this container has no figures (not running, timeout…).")


class ContainerStatsList(ListResult):
    containers: list[ContainerStats]
    elapsed_s: float


class ImageSummary(Model):
    id: str | None = None
    tags: list[str] | None = None
    digests: list[str] | None = None
    size: int | None = Field(None, description="Bytes.")
    created: str | None = None
    dangling: bool | None = Field(None, description="No tag points at it.")


class ImageList(ListResult):
    images: list[ImageSummary]


class NetworkSummary(Model):
    name: str | None = None
    id: str | None = None
    driver: str | None = None
    scope: str | None = None
    internal: bool | None = None
    attachable: bool | None = None
    subnets: list[str] | None = None
    gateways: list[str] | None = None
    containers: list[str] | None = Field(None, description="Names of attached containers.")
    created: str | None = None


class NetworkList(ListResult):
    networks: list[NetworkSummary]


class LogLine(Model):
    ts: str | None = Field(None, description="Engine timestamp of the line (UTC, seconds).")
    line: str | None = None


class ContainerLogs(ListResult):
    container: str
    lines: list[LogLine]
    scanned: int = Field(description="Lines read from the engine (grep filters these).")
    grep: str | None = None
    since: str | None = None
    until: str | None = None


# ------------------------------------------------------------------ helpers
def _iso(value: Any) -> str | None:
    """Engine time (RFC 3339 string with ns, or epoch seconds) → 'YYYY-MM-DDTHH:MM:SSZ'."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        if value <= 0:
            return None
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if text.startswith("0001-01-01"):
        return None
    return text[:19] + "Z" if len(text) >= 19 else text


def _short_id(value: str | None) -> str | None:
    if not value:
        return None
    return value.removeprefix("sha256:")[:12]


def check_name(name: str) -> str:
    """A container name or id as the engine accepts it, else InvalidInput."""
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"{name[:80]!r} is not a container name or id (letters, digits, '_', '.', '-'; at most 255).",
        )
    return name.lstrip("/")


def parse_when(value: str, *, what: str) -> datetime:
    """'15m' / '2h' (that long ago), ISO 8601 ('2024-05-01T10:00:00Z') or Unix seconds → aware datetime."""
    text = value.strip()
    if not text:
        raise InvalidInput(f"{what} is empty; use e.g. 15m, 2h or 2024-05-01T10:00:00Z.")
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    try:
        iso = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        return iso if iso.tzinfo else iso.replace(tzinfo=UTC)
    try:
        delta = parse_duration(text)
    except InvalidInput:
        raise InvalidInput(
            f"{what} {text[:40]!r} is neither a duration (15m, 2h, 1d) nor a time (2024-05-01T10:00:00Z)."
        ) from None
    return datetime.now(UTC) - delta


def _ports_from_list(ports: list[dict[str, Any]] | None) -> list[str]:
    out: list[str] = []
    for p in ports or []:
        private = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"  # noqa: S104 - a display string, not a bind
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"{host}:{p['PublicPort']}->{private}")
        else:
            out.append(private)
    return list(dict.fromkeys(out))


def _ports_from_inspect(bindings: dict[str, Any] | None) -> list[str]:
    out: list[str] = []
    for private, binds in (bindings or {}).items():
        if not binds:
            out.append(private)
            continue
        for b in binds:
            ip = b.get("HostIp") or "0.0.0.0"  # noqa: S104 - a display string, not a bind
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"{host}:{b.get('HostPort')}->{private}")
    return list(dict.fromkeys(out))


def _health_from_status(status: str | None) -> Literal["healthy", "unhealthy", "starting"] | None:
    m = _HEALTH_IN_STATUS.search(status or "")
    if not m:
        return None
    word = m.group(1)
    if word == "health: starting":
        return "starting"
    return "healthy" if word == "healthy" else "unhealthy"


def _inspect_raw(engine: DockerEngine, name: str) -> dict[str, Any]:
    name = check_name(name)
    api = engine.api()
    try:
        data: dict[str, Any] = engine.call(f"inspect container {name!r}", api.inspect_container, name)
    except NotFound:
        raise engine.unknown_container(name) from None
    return data


# ------------------------------------------------------------------ list
def list_containers(
    engine: DockerEngine, *, all: bool, filters: dict[str, str | list[str]] | None, limit: int
) -> ContainerList:
    """One list call, then the per-container facts the list lacks via concurrent inspects."""
    flt: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if key not in CONTAINER_FILTERS:
            raise InvalidInput(f"unknown container filter {key!r}; use one of: {', '.join(sorted(CONTAINER_FILTERS))}.")
        flt[key] = value
    api = engine.api()
    rows: list[dict[str, Any]] = engine.call("list containers", api.containers, all=all, filters=flt or None)
    total = len(rows)
    rows = rows[:limit]
    ids = [r["Id"] for r in rows]
    timeout = engine.settings.timeout.total_seconds()
    cache = engine.inspect_cache
    cache.ensure_watching()

    def inspect(cid: str) -> dict[str, Any]:
        cached = cache.get(cid)
        if cached is not None:
            return cached
        ticket = cache.ticket(cid)
        data: dict[str, Any] = api.inspect_container(cid)
        cache.store(cid, data, ticket)
        return data

    details = engine.fan_out("inspect container", inspect, ids, timeout=timeout)
    digests: dict[str, str] = {}
    if rows:
        images: list[dict[str, Any]] = engine.call("list images", api.images)
        for img in images:
            repo_digests = [d for d in img.get("RepoDigests") or [] if not d.startswith("<none>")]
            if repo_digests:
                digests[img["Id"]] = repo_digests[0]
    out: list[ContainerSummary] = []
    for row, info in zip(rows, details, strict=True):
        names = [n.lstrip("/") for n in row.get("Names") or []]
        inspected: dict[str, Any] = info if isinstance(info, dict) else {}
        st = inspected.get("State") or {}
        state = row.get("State")
        ended = state in ("exited", "dead")
        out.append(
            ContainerSummary(
                name=names[0] if names else None,
                id=_short_id(row.get("Id")),
                image=row.get("Image"),
                image_id=row.get("ImageID"),
                image_digest=digests.get(row.get("ImageID") or ""),
                state=state,
                health=_health_from_status(row.get("Status")),
                status=row.get("Status"),
                exit_code=st.get("ExitCode") if ended and st else None,
                oom_killed=st.get("OOMKilled") if st else None,
                restart_count=inspected.get("RestartCount"),
                ports=_ports_from_list(row.get("Ports")),
                created=_iso(row.get("Created")),
                started=_iso(st.get("StartedAt")),
                labels=row.get("Labels") or {},
            )
        )
    truncated = total > len(out)
    return ContainerList(
        containers=out,
        total=total,
        truncated=truncated,
        truncation=f"limit {limit} reached; raise limit or add filters" if truncated else None,
    )


# ------------------------------------------------------------------ inspect
def _env(raw: list[str] | None, reveal: bool) -> list[EnvVar]:
    out: list[EnvVar] = []
    for item in raw or []:
        name, _, value = item.partition("=")
        out.append(EnvVar(name=name, value=value if reveal else REDACTED))
    return out


def _cmd(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    return [redact_text(str(v)) for v in items]


def inspect_container(engine: DockerEngine, name: str, *, reveal_env: bool = False) -> ContainerDetails:
    raw = _inspect_raw(engine, name)
    cfg = raw.get("Config") or {}
    host = raw.get("HostConfig") or {}
    st = raw.get("State") or {}
    health = st.get("Health")
    health_info = None
    if health:
        probes = (health.get("Log") or [])[-3:]
        health_info = HealthInfo(
            status=health.get("Status") or "unknown",
            failing_streak=health.get("FailingStreak") or 0,
            last_output=[redact_text((p.get("Output") or "").strip())[:500] for p in probes],
            last_exit_codes=[int(p.get("ExitCode", -1)) for p in probes],
        )
    networks = []
    for net_name, net in ((raw.get("NetworkSettings") or {}).get("Networks") or {}).items():
        networks.append(
            NetworkAttachment(
                network=net_name,
                ip_address=net.get("IPAddress") or None,
                gateway=net.get("Gateway") or None,
                mac_address=net.get("MacAddress") or None,
                aliases=list(net.get("Aliases") or []),
            )
        )
    policy = host.get("RestartPolicy") or {}
    hc = cfg.get("Healthcheck") or {}
    return ContainerDetails(
        name=(raw.get("Name") or "").lstrip("/"),
        id=raw.get("Id", ""),
        image=cfg.get("Image") or "",
        image_id=raw.get("Image") or "",
        created=_iso(raw.get("Created")),
        state=StateInfo(
            status=st.get("Status") or "unknown",
            running=bool(st.get("Running")),
            paused=bool(st.get("Paused")),
            restarting=bool(st.get("Restarting")),
            oom_killed=bool(st.get("OOMKilled")),
            dead=bool(st.get("Dead")),
            pid=st.get("Pid") or None,
            exit_code=st.get("ExitCode"),
            error=redact_text(st["Error"]) if st.get("Error") else None,
            started_at=_iso(st.get("StartedAt")),
            finished_at=_iso(st.get("FinishedAt")),
            health=health_info,
        ),
        restart_count=raw.get("RestartCount") or 0,
        restart_policy=RestartPolicy(
            name=policy.get("Name") or "no", maximum_retry_count=policy.get("MaximumRetryCount") or 0
        ),
        config=ContainerConfig(
            cmd=_cmd(cfg.get("Cmd")),
            entrypoint=_cmd(cfg.get("Entrypoint")),
            working_dir=cfg.get("WorkingDir") or None,
            user=cfg.get("User") or None,
            hostname=cfg.get("Hostname") or None,
            tty=bool(cfg.get("Tty")),
            exposed_ports=sorted((cfg.get("ExposedPorts") or {}).keys()),
            healthcheck=_cmd(hc.get("Test")) if hc else None,
            stop_signal=cfg.get("StopSignal"),
        ),
        env=_env(cfg.get("Env"), reveal_env),
        env_redacted=not reveal_env,
        labels=cfg.get("Labels") or {},
        mounts=[
            MountInfo(
                type=m.get("Type"),
                source=m.get("Source"),
                destination=m.get("Destination"),
                mode=m.get("Mode") or None,
                rw=m.get("RW"),
                name=m.get("Name"),
            )
            for m in raw.get("Mounts") or []
        ],
        networks=networks,
        network_mode=host.get("NetworkMode"),
        ports=_ports_from_inspect((raw.get("NetworkSettings") or {}).get("Ports")),
        resources=Resources(
            memory_limit=host.get("Memory") or None,
            memory_swap=host.get("MemorySwap") or None,
            nano_cpus=host.get("NanoCpus") or None,
            cpu_shares=host.get("CpuShares") or None,
            pids_limit=host.get("PidsLimit") or None,
        ),
        privileged=bool(host.get("Privileged")),
        cap_add=list(host.get("CapAdd") or []),
        read_only_rootfs=bool(host.get("ReadonlyRootfs")),
        log_driver=(host.get("LogConfig") or {}).get("Type"),
    )


def container_state(raw: dict[str, Any]) -> ContainerState:
    """The analysis view of an inspect result."""
    st = raw.get("State") or {}
    health = st.get("Health") or {}
    host = raw.get("HostConfig") or {}
    return ContainerState(
        name=(raw.get("Name") or "").lstrip("/") or raw.get("Id", "")[:12],
        status=st.get("Status") or "unknown",
        exit_code=st.get("ExitCode"),
        oom_killed=bool(st.get("OOMKilled")),
        restart_count=raw.get("RestartCount") or 0,
        restart_policy=(host.get("RestartPolicy") or {}).get("Name") or None,
        error=st.get("Error") or None,
        health=health.get("Status") or None,
        health_failing_streak=health.get("FailingStreak") or 0,
        health_log=tuple((p.get("Output") or "") for p in (health.get("Log") or [])[-3:]),
        started_at=_iso(st.get("StartedAt")),
        finished_at=_iso(st.get("FinishedAt")),
        memory_limit=host.get("Memory") or None,
    )


# ------------------------------------------------------------------ stats
CPU_REUSE_MAX_AGE = 60.0  # seconds a previous sample may be old and still serve as the CPU baseline
CGROUP_CPU_WINDOW = 1.0  # seconds between the two cgroup reads of a first sample (as one engine tick)
_CPU_SAMPLES_KEPT = 4096


def _ts_seconds(text: Any) -> float | None:
    """Engine RFC 3339 time with nanoseconds → Unix seconds (None for the zero time)."""
    if not isinstance(text, str) or text.startswith("0001-01-01"):
        return None
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$", text)
    if not m:
        return None
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def _cpu_point(cpu_stats: dict[str, Any] | None, read: Any) -> tuple[float, int, int] | None:
    """(time, container cpu ns, system cpu ns) of one sample, or None when incomplete."""
    c = cpu_stats or {}
    total = (c.get("cpu_usage") or {}).get("total_usage")
    system = c.get("system_cpu_usage")
    when = _ts_seconds(read)
    if total is None or system is None or when is None:
        return None
    return when, int(total), int(system)


def _cpu_percent(prev: tuple[float, int, int], cur: tuple[float, int, int], online: int) -> float | None:
    sys_delta = cur[2] - prev[2]
    cpu_delta = cur[1] - prev[1]
    if sys_delta <= 0:
        return None
    return round(max(0, cpu_delta) / sys_delta * online * 100.0, 2)


def _online_cpus(sample: dict[str, Any]) -> int:
    c = sample.get("cpu_stats") or {}
    return int(c.get("online_cpus") or len((c.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)


def _figures(sample: dict[str, Any]) -> dict[str, Any]:
    mem = sample.get("memory_stats") or {}
    usage = mem.get("usage")
    details = mem.get("stats") or {}
    cache = details.get("total_inactive_file", details.get("inactive_file", 0)) or 0
    if usage is not None and cache <= usage:
        usage -= cache
    limit = mem.get("limit")
    rx = tx = 0
    for net in (sample.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    read = write = 0
    for entry in (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    return {
        "memory_usage": usage,
        "memory_limit": limit,
        "memory_percent": round(usage / limit * 100, 2) if usage is not None and limit else None,
        "net_rx_bytes": rx if sample.get("networks") is not None else None,
        "net_tx_bytes": tx if sample.get("networks") is not None else None,
        "block_read_bytes": read,
        "block_write_bytes": write,
        "pids": (sample.get("pids_stats") or {}).get("current"),
    }


def container_stats(engine: DockerEngine, *, name: str | None, limit: int) -> ContainerStatsList:
    """CPU/memory/net/block figures for one container or all running ones, sampled concurrently.

    The engine collects stats once per second for all subscribers, so every
    container is asked at once (``docker.stats_concurrency`` wide) and the batch is
    answered on the engine's next collection tick(s). CPU % needs two samples: for a
    container this engine sampled at most ``CPU_REUSE_MAX_AGE`` seconds ago, a
    ``one_shot`` sample (API >= 1.41; next tick) is compared with that one (the
    window is reported per container). Any other container's CPU time is read from
    its cgroup at the start and end of a ``CGROUP_CPU_WINDOW`` window while a
    one-shot sample brings the rest (see :mod:`tailops.monitor.cgroup_cpu`; a local
    engine only). Failing that, a plain ``stream=False`` sample, for which the
    engine pairs two consecutive ticks (``precpu_stats``, ~1 s window). One round
    either way, bounded by ``docker.stats_timeout``.
    """
    started = time.monotonic()
    settings = engine.settings
    deadline = started + settings.stats_timeout.total_seconds()
    api = engine.api()
    entries: dict[str, ContainerStats] = {}
    targets: list[tuple[str, str]] = []  # (id, name)
    total: int
    if name is not None:
        raw = _inspect_raw(engine, name)
        cname = (raw.get("Name") or "").lstrip("/")
        state = (raw.get("State") or {}).get("Status")
        total = 1
        if state not in ("running", "paused", "restarting"):
            entries[raw["Id"]] = ContainerStats(
                name=cname, id=_short_id(raw.get("Id")), state=state, error=f"not running (state {state})"
            )
        targets.append((raw["Id"], cname))
    else:
        rows: list[dict[str, Any]] = engine.call("list containers", api.containers)
        total = len(rows)
        for row in rows[:limit]:
            names = row.get("Names") or ["/" + row["Id"][:12]]
            targets.append((row["Id"], names[0].lstrip("/")))
    import docker.utils

    one_shot_ok = not docker.utils.version_lt(api.api_version, "1.41")
    to_sample = [cid for cid, _ in targets if cid not in entries]
    # A container with a recent sample of ours needs one more (one-shot: the engine's next tick);
    # any other gets a plain stream=False sample, for which the engine pairs two ticks (precpu).
    now = time.time()
    with engine.cpu_samples_lock:
        cached = {
            cid: point
            for cid in to_sample
            if (point := engine.cpu_samples.get(cid)) is not None and now - point[0] <= CPU_REUSE_MAX_AGE
        }

    cgroup = engine.cgroup_cpu

    def sample(cid: str) -> tuple[dict[str, Any], tuple[float, int] | None]:
        """The engine's sample, plus (window s, CPU ns) measured on the cgroup when that path is taken."""
        if one_shot_ok and cid in cached:
            return api.stats(cid, stream=False, one_shot=True), None
        if one_shot_ok:
            t0, c0 = time.monotonic(), cgroup.usage_ns(cid)
            if c0 is not None:
                result: dict[str, Any] = api.stats(cid, stream=False, one_shot=True)
                time.sleep(max(0.0, t0 + CGROUP_CPU_WINDOW - time.monotonic()))
                t1, c1 = time.monotonic(), cgroup.usage_ns(cid)
                # A restarted container starts a new counter: no CPU % rather than a wrong one.
                return result, ((t1 - t0, c1 - c0) if c1 is not None and c1 >= c0 else None)
        return api.stats(cid, stream=False), None

    got_all = engine.fan_out(
        "read container stats",
        sample,
        to_sample,
        timeout=deadline - time.monotonic(),
        width=settings.stats_concurrency,
    )
    samples: dict[str, dict[str, Any] | TailopsError] = {}
    measured: dict[str, tuple[float, int] | None] = {}
    for cid, res in zip(to_sample, got_all, strict=True):
        if isinstance(res, TailopsError):
            samples[cid] = res
        else:
            samples[cid], measured[cid] = res
    baselines: dict[str, tuple[float, int, int]] = {}
    with engine.cpu_samples_lock:
        for cid, got in samples.items():
            if isinstance(got, TailopsError):
                continue
            base = cached.get(cid) if (one_shot_ok and cid in cached) else None
            if base is None:
                base = _cpu_point(got.get("precpu_stats"), got.get("preread"))
            if base is not None:
                baselines[cid] = base
            point = _cpu_point(got.get("cpu_stats"), got.get("read"))
            if point is not None:
                engine.cpu_samples[cid] = point
                engine.cpu_samples.move_to_end(cid)
        while len(engine.cpu_samples) > _CPU_SAMPLES_KEPT:
            engine.cpu_samples.popitem(last=False)
    out: list[ContainerStats] = []
    for cid, cname in targets:
        if cid in entries:
            out.append(entries[cid])
            continue
        got = samples[cid]
        if isinstance(got, TailopsError):
            out.append(ContainerStats(name=cname, id=_short_id(cid), error=got.message))
            continue
        cur = _cpu_point(got.get("cpu_stats"), got.get("read"))
        base = baselines.get(cid)
        cpu = window = None
        if (on_cgroup := measured.get(cid)) is not None:
            seconds, cpu_ns = on_cgroup
            cpu, window = round(cpu_ns / (seconds * 1e9) * 100.0, 2), round(seconds, 2)
        elif cur is not None and base is not None and cur[2] > base[2]:
            cpu = _cpu_percent(base, cur, _online_cpus(got))
            window = round(cur[0] - base[0], 2)
        out.append(
            ContainerStats(
                name=cname,
                id=_short_id(cid),
                state="running",
                cpu_percent=cpu,
                cpu_window_s=window,
                **_figures(got),
            )
        )
    truncated = total > len(out)
    return ContainerStatsList(
        containers=out,
        total=total,
        truncated=truncated,
        truncation=f"limit {limit} reached; raise limit or name one container" if truncated else None,
        elapsed_s=round(time.monotonic() - started, 3),
    )


# ------------------------------------------------------------------ images, networks
def list_images(engine: DockerEngine, *, dangling: bool | None, reference: str | None, limit: int) -> ImageList:
    flt: dict[str, Any] = {}
    if dangling is not None:
        flt["dangling"] = dangling
    if reference:
        flt["reference"] = reference
    api = engine.api()
    rows: list[dict[str, Any]] = engine.call("list images", api.images, filters=flt or None)
    rows.sort(key=lambda r: r.get("Created") or 0, reverse=True)
    out = []
    for row in rows[:limit]:
        tags = [t for t in row.get("RepoTags") or [] if t != "<none>:<none>"]
        out.append(
            ImageSummary(
                id=_short_id(row.get("Id")),
                tags=tags,
                digests=[d for d in row.get("RepoDigests") or [] if not d.startswith("<none>")],
                size=row.get("Size"),
                created=_iso(row.get("Created")),
                dangling=not tags,
            )
        )
    truncated = len(rows) > len(out)
    return ImageList(
        images=out,
        total=len(rows),
        truncated=truncated,
        truncation=f"limit {limit} reached; raise limit or filter by reference" if truncated else None,
    )


def list_networks(engine: DockerEngine, *, limit: int) -> NetworkList:
    api = engine.api()
    rows: list[dict[str, Any]] = engine.call("list networks", api.networks)
    rows.sort(key=lambda r: r.get("Name") or "")
    shown = rows[:limit]
    details = engine.fan_out(
        "inspect network",
        api.inspect_network,
        [r["Id"] for r in shown],
        timeout=engine.settings.timeout.total_seconds(),
    )
    out = []
    for row, info in zip(shown, details, strict=True):
        full: dict[str, Any] = info if isinstance(info, dict) else row
        configs = (full.get("IPAM") or {}).get("Config") or []
        members = full.get("Containers") if isinstance(info, dict) else None
        out.append(
            NetworkSummary(
                name=row.get("Name"),
                id=_short_id(row.get("Id")),
                driver=row.get("Driver"),
                scope=row.get("Scope"),
                internal=row.get("Internal"),
                attachable=row.get("Attachable"),
                subnets=[c["Subnet"] for c in configs if c.get("Subnet")],
                gateways=[c["Gateway"] for c in configs if c.get("Gateway")],
                containers=sorted(m.get("Name", "") for m in members.values()) if members is not None else None,
                created=_iso(row.get("Created")),
            )
        )
    truncated = len(rows) > len(out)
    return NetworkList(
        networks=out,
        total=len(rows),
        truncated=truncated,
        truncation=f"limit {limit} reached; raise limit" if truncated else None,
    )


# ------------------------------------------------------------------ logs
def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a log stream can raise: the engine's errors, plus what a response closed
    by the watchdog raises while being read."""
    return (*engine_exceptions(), AttributeError, ValueError)


class _LogReader:
    """Stream a container's log lines (oldest first, engine timestamp prefix kept), bounded.

    A plain streamed ``GET /containers/{id}/logs`` whose multiplexed frames are parsed
    here from 64 KiB chunks (the SDK's stream reads each 8-byte header and each frame
    with separate calls: several times slower on a multi-MB log). The socket keeps
    the ``docker.timeout`` read timeout, and a watchdog closes the response at the
    deadline, so neither a stalled nor a trickling engine holds a worker.
    """

    def __init__(self, engine: DockerEngine, cid: str, what: str, *, tty: bool) -> None:
        self.engine = engine
        self.cid = cid
        self.what = what
        self.tty = tty
        self.timed_out = False

    def _open(self, tail: int, since: datetime | None, until: datetime | None) -> Any:
        api = self.engine.api()
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 0, "tail": tail}
        if since is not None:
            params["since"] = f"{since.timestamp():.9f}"
        if until is not None:
            params["until"] = f"{until.timestamp():.9f}"
        url = f"{api.base_url}/v{api.api_version}/containers/{self.cid}/logs"

        import docker.errors
        import requests.exceptions

        def get() -> Any:
            res = api.get(url, params=params, stream=True, timeout=api.timeout)
            if res.status_code >= 400:
                try:
                    res.raise_for_status()
                except requests.exceptions.HTTPError as exc:
                    res.close()
                    docker.errors.create_api_error_from_http_exception(exc)  # raises the matching APIError
            return res

        return self.engine.call(self.what, get)

    def lines(
        self, *, tail: int, since: datetime | None, until: datetime | None, deadline: float
    ) -> Generator[tuple[str, str], None, None]:
        """``(stream, line)`` pairs, stream ``stdout``/``stderr`` (``tty`` for TTY containers).

        Partial lines are joined per stream: stdout and stderr reach the engine
        through separate pipes, so their lines interleave and one stream's line
        may arrive in pieces around the other's."""
        res = self._open(tail, since, until)

        def expire() -> None:
            self.timed_out = True
            with contextlib.suppress(Exception):  # the response may already be closed or half-dead
                res.close()

        timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        pending: dict[str, bytes] = {}  # per stream: an incomplete line carried over
        frames = bytearray()  # undecoded multiplexed frames (non-TTY)
        try:
            while chunk := res.raw.read(65536):
                payloads: list[tuple[str, bytes]]
                if self.tty:
                    payloads = [("tty", chunk)]
                else:
                    frames += chunk
                    payloads = []
                    pos = 0
                    avail = len(frames)
                    while avail - pos >= 8:
                        size = int.from_bytes(frames[pos + 4 : pos + 8], "big")
                        if avail - pos - 8 < size:
                            break
                        stream = _STREAMS.get(frames[pos], "stdout")
                        payloads.append((stream, bytes(frames[pos + 8 : pos + 8 + size])))
                        pos += 8 + size
                    del frames[:pos]
                for stream, payload in payloads:
                    carried = pending.pop(stream, b"")
                    data = carried + payload if carried else payload
                    if b"\n" not in data:
                        if len(data) > _MAX_LINE_BYTES:
                            yield stream, data[:_MAX_LINE_BYTES].decode("utf-8", "replace") + "…"
                        else:
                            pending[stream] = data
                        continue
                    *complete, rest = data.split(b"\n")
                    if rest:
                        pending[stream] = rest
                    for raw in complete:
                        yield stream, raw[:_MAX_LINE_BYTES].decode("utf-8", "replace").rstrip("\r")
            for stream, rest in pending.items():
                yield stream, rest[:_MAX_LINE_BYTES].decode("utf-8", "replace").rstrip("\r")
        except _read_errors() as exc:
            # AttributeError/ValueError: reading a response the watchdog closed under us.
            if not self.timed_out:
                if isinstance(exc, AttributeError | ValueError):
                    raise
                raise translate(exc, what=self.what, where=self.engine.where) from exc
        finally:
            timer.cancel()
            with contextlib.suppress(Exception):  # already closed by the watchdog or the engine
                res.close()


_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}


def _split_ts(line: str) -> tuple[str | None, str]:
    # "2024-05-01T10:00:00.123456789Z text" (docker logs --timestamps)
    head, sep, rest = line.partition(" ")
    if sep and len(head) >= 20 and head[4] == "-" and head[10] == "T":
        return head[:19] + "Z", rest
    return None, line


def read_logs(
    engine: DockerEngine,
    *,
    name: str,
    tail: int,
    since: str | None,
    until: str | None,
    grep: str | None,
    max_output_bytes: int,
) -> ContainerLogs:
    """The last ``tail`` lines (or, with ``grep``, the last ``tail`` matching lines among the newest
    ``docker.log_max_lines``), secrets redacted, newest kept when the output cap bites."""
    settings = engine.settings
    raw = _inspect_raw(engine, name)
    cname = (raw.get("Name") or "").lstrip("/")
    t_since = parse_when(since, what="since") if since else None
    t_until = parse_when(until, what="until") if until else None
    if t_since and t_until and t_since >= t_until:
        raise InvalidInput("since must be earlier than until.")
    needle = grep.lower() if grep else None
    scan = settings.log_max_lines if needle else tail
    deadline = time.monotonic() + settings.timeout.total_seconds()
    tty = bool((raw.get("Config") or {}).get("Tty"))
    reader = _LogReader(engine, raw["Id"], f"read logs of {cname!r}", tty=tty)
    kept: collections.deque[str] = collections.deque(maxlen=tail)
    scanned = 0
    held = 0
    for _stream, line in reader.lines(tail=scan, since=t_since, until=t_until, deadline=deadline):
        scanned += 1
        if needle is not None and needle not in line.lower():
            continue
        if len(kept) == kept.maxlen:
            held -= len(kept[0])
        kept.append(line)
        held += len(line)
        while held > settings.log_max_bytes and kept:
            held -= len(kept.popleft())
    if reader.timed_out and scanned == 0:
        raise OperationTimeout(
            f"reading the logs of {cname!r} took longer than {settings.timeout.total_seconds():g} s."
        )
    lines: list[LogLine] = []
    for line in kept:
        ts, text = _split_ts(line)
        text = redact_text(text)
        if len(text) > LINE_CHARS:
            text = text[: LINE_CHARS - 1] + "…"
        lines.append(LogLine(ts=ts, line=text))
    # Keep the newest lines inside the output cap (the boundary would drop the newest).
    budget = max_output_bytes - 1024
    size = 0
    cut = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        size += len(lines[i].line or "") + 40
        if size > budget:
            cut = len(lines) - i - 1
            break
    dropped = len(lines) - cut
    lines = lines[dropped:]
    notes: list[str] = []
    if dropped:
        notes.append(f"{dropped} older line(s) left out to fit the {max_output_bytes}-byte output cap")
    if reader.timed_out:
        notes.append("reading stopped at the time limit; older lines may be missing")
    return ContainerLogs(
        container=cname,
        lines=lines,
        scanned=scanned,
        total=len(kept),
        truncated=bool(notes),
        truncation="; ".join(notes) if notes else None,
        grep=grep,
        since=t_since.strftime("%Y-%m-%dT%H:%M:%SZ") if t_since else None,
        until=t_until.strftime("%Y-%m-%dT%H:%M:%SZ") if t_until else None,
    )


def analyze_logs(engine: DockerEngine, *, name: str, since: str | None, until: str | None, tail: int) -> LogAnalysis:
    """Stream the newest ``tail`` lines straight into the analyzer (nothing is buffered), bounded by
    ``docker.log_max_lines``, ``docker.log_max_bytes`` and ``docker.analysis_timeout``.

    If the newest ``tail`` lines exceed the byte cap, the analysis restarts once with a
    smaller tail sized from the average line length seen, so the newest lines are the
    ones analyzed (at most one extra read, never the whole log in memory).
    """
    settings = engine.settings
    started = time.monotonic()
    budget = settings.analysis_timeout.total_seconds()
    raw = _inspect_raw(engine, name)
    state = container_state(raw)
    t_since = parse_when(since, what="since") if since else None
    t_until = parse_when(until, what="until") if until else None
    want = min(tail, settings.log_max_lines)
    limits = AnalysisLimits(max_lines=want, max_bytes=settings.log_max_bytes, max_seconds=budget)
    capped = tail > want
    notes: list[str] = []
    for attempt in range(2):
        analyzer = LogAnalyzer(state, limits, started=started)
        tty = bool((raw.get("Config") or {}).get("Tty"))
        reader = _LogReader(engine, raw["Id"], f"read logs of {state.name!r}", tty=tty)
        lines = reader.lines(tail=want, since=t_since, until=t_until, deadline=started + budget)
        try:
            for stream, line in lines:
                if not analyzer.feed(line, stream):
                    break
        finally:
            lines.close()  # closes the engine stream when we stop early
        if attempt == 0 and analyzer.stop_reason == "bytes" and analyzer.lines:
            avg = analyzer.bytes / analyzer.lines
            smaller = max(1, int(settings.log_max_bytes * 0.9 / avg))
            notes.append(
                f"the newest {want} lines exceed the byte cap of {settings.log_max_bytes}; "
                f"analyzed the newest {smaller} instead"
            )
            want = smaller
            continue
        break
    if capped and analyzer.lines >= want:
        notes.append(f"tail {tail} is capped at docker.log_max_lines = {want}; older lines were not analyzed")
    if reader.timed_out:
        notes.append("reading the log stopped at the time limit; the newest lines of the window were not analyzed")
    return analyzer.result(input_truncated=reader.timed_out or len(notes) > 0, notes=notes)
