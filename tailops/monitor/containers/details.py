"""One container in detail: ``GET /containers/{id}/json`` → :class:`ContainerDetails` / :class:`ContainerState`.

Why it exists: ``inspect_container``, the container resource, log reading and
log analysis all start from one inspect. :func:`inspect_raw` is that call (a
checked name, ``NotFound`` with close matches); :func:`details_from_inspect` and
:func:`container_state` are pure parsers of its JSON, so recorded engine answers
can be tested without an engine.

What it must never do: return an environment value unless the caller asked to
reveal it, or pass a command, health probe output or engine error through
without secret redaction.
"""

from __future__ import annotations

from typing import Any

from tailops.errors import NotFound
from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.models import (
    ContainerConfig,
    ContainerDetails,
    EnvVar,
    HealthInfo,
    MountInfo,
    NetworkAttachment,
    Resources,
    RestartPolicy,
    StateInfo,
)
from tailops.monitor.containers.values import check_name, engine_time, ports_from_inspect
from tailops.monitor.log_analysis import ContainerState
from tailops.redact import REDACTED, redact_text

__all__ = ["container_state", "details_from_inspect", "inspect_container", "inspect_raw"]


def inspect_raw(engine: DockerEngine, name: str) -> dict[str, Any]:
    """The engine's inspect JSON of ``name`` (a checked name or id); NotFound lists close matches."""
    name = check_name(name)
    api = engine.api()
    try:
        data: dict[str, Any] = engine.call(f"inspect container {name!r}", api.inspect_container, name)
    except NotFound:
        raise engine.unknown_container(name) from None
    return data


def inspect_container(engine: DockerEngine, name: str, *, reveal_env: bool = False) -> ContainerDetails:
    return details_from_inspect(inspect_raw(engine, name), reveal_env=reveal_env)


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


def details_from_inspect(raw: dict[str, Any], *, reveal_env: bool = False) -> ContainerDetails:
    """The tool's view of an inspect result (environment values redacted unless ``reveal_env``)."""
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
        created=engine_time(raw.get("Created")),
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
            started_at=engine_time(st.get("StartedAt")),
            finished_at=engine_time(st.get("FinishedAt")),
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
        ports=ports_from_inspect((raw.get("NetworkSettings") or {}).get("Ports")),
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
        started_at=engine_time(st.get("StartedAt")),
        finished_at=engine_time(st.get("FinishedAt")),
        memory_limit=host.get("Memory") or None,
    )
