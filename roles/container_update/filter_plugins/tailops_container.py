# Part of the tailops catalog (roles/container_update). Pure functions: no I/O.
"""Turn a container's inspect data into community.docker.docker_container options.

``tailops_container_spec(container, old_image, new_image)`` returns the options that
recreate ``container`` from ``new_image`` with its own configuration: ports, mounts
and volumes (anonymous volumes are re-attached by name, so their data stays), env,
networks (with aliases and static addresses), labels, restart policy, and command,
entrypoint, user, working dir and health check when the container set them itself
(values equal to the old image's defaults are left to the new image). Options this
role cannot carry over are listed in ``unsupported`` so the role refuses instead of
silently dropping them.
"""

from __future__ import annotations

import typing as t

_NANOS_PER_MS = 1_000_000


def _env_map(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _duration(nanos: int | None) -> str | None:
    if not nanos:
        return None
    return f"{nanos // _NANOS_PER_MS}ms"


def _ports(bindings: dict[str, t.Any] | None) -> list[str]:
    out: list[str] = []
    for container_port, hosts in sorted((bindings or {}).items()):
        for binding in hosts or [{}]:
            host_ip = (binding or {}).get("HostIp") or ""
            host_port = (binding or {}).get("HostPort") or ""
            if host_ip and host_port:
                out.append(f"{host_ip}:{host_port}:{container_port}")
            elif host_ip:
                out.append(f"{host_ip}::{container_port}")
            elif host_port:
                out.append(f"{host_port}:{container_port}")
            else:
                out.append(container_port)
    return out


def _volumes(container: dict[str, t.Any]) -> list[str]:
    host_config = container.get("HostConfig") or {}
    binds = list(host_config.get("Binds") or [])
    explicit_mounts = {m.get("Target") for m in host_config.get("Mounts") or []}
    covered = {b.split(":")[1] for b in binds if ":" in b}
    for mount in container.get("Mounts") or []:
        dest = mount.get("Destination")
        if mount.get("Type") != "volume" or dest in covered or dest in explicit_mounts:
            continue
        # An anonymous (or image-declared) volume: re-attach it by name so its data stays.
        mode = "rw" if mount.get("RW", True) else "ro"
        binds.append(f"{mount['Name']}:{dest}:{mode}")
    return binds


def _mounts(host_config: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    out: list[dict[str, t.Any]] = []
    for mount in host_config.get("Mounts") or []:
        item: dict[str, t.Any] = {
            "type": (mount.get("Type") or "volume").lower(),
            "target": mount.get("Target"),
            "read_only": bool(mount.get("ReadOnly")),
        }
        if mount.get("Source"):
            item["source"] = mount["Source"]
        out.append(item)
    return out


def _networks(container: dict[str, t.Any]) -> tuple[str, list[dict[str, t.Any]]]:
    mode = (container.get("HostConfig") or {}).get("NetworkMode") or "default"
    if mode in ("host", "none") or mode.startswith("container:"):
        return mode, []
    short_id = (container.get("Id") or "")[:12]
    name = (container.get("Name") or "").lstrip("/")
    networks: list[dict[str, t.Any]] = []
    settings = (container.get("NetworkSettings") or {}).get("Networks") or {}
    for net_name, net in sorted(settings.items()):
        entry: dict[str, t.Any] = {"name": net_name}
        aliases = [a for a in (net or {}).get("Aliases") or [] if a not in (short_id, name)]
        if aliases and net_name != "bridge":
            entry["aliases"] = aliases
        ipam = (net or {}).get("IPAMConfig") or {}
        if ipam.get("IPv4Address"):
            entry["ipv4_address"] = ipam["IPv4Address"]
        if ipam.get("IPv6Address"):
            entry["ipv6_address"] = ipam["IPv6Address"]
        networks.append(entry)
    return mode, networks


def _unsupported(host_config: dict[str, t.Any]) -> list[str]:
    checks = {
        "Devices": bool(host_config.get("Devices")),
        "Sysctls": bool(host_config.get("Sysctls")),
        "Ulimits": bool(host_config.get("Ulimits")),
        "SecurityOpt": bool(host_config.get("SecurityOpt")),
        "Tmpfs": bool(host_config.get("Tmpfs")),
        "VolumesFrom": bool(host_config.get("VolumesFrom")),
        "Links": bool(host_config.get("Links")),
        "Memory": bool(host_config.get("Memory")),
        "NanoCpus": bool(host_config.get("NanoCpus")),
        "CpuShares": bool(host_config.get("CpuShares")),
        "PidMode": bool(host_config.get("PidMode")),
        "IpcMode": (host_config.get("IpcMode") or "private") not in ("private", "shareable"),
    }
    return sorted(name for name, present in checks.items() if present)


def container_spec(
    container: dict[str, t.Any], old_image: dict[str, t.Any] | None, new_image: str
) -> dict[str, t.Any]:
    config = container.get("Config") or {}
    host_config = container.get("HostConfig") or {}
    image_config = (old_image or {}).get("Config") or {}
    image_env = _env_map(image_config.get("Env"))
    env = {k: v for k, v in _env_map(config.get("Env")).items() if image_env.get(k) != v}
    image_labels = image_config.get("Labels") or {}
    labels = {k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v}
    restart = host_config.get("RestartPolicy") or {}
    network_mode, networks = _networks(container)
    spec: dict[str, t.Any] = {
        "image": new_image,
        "env": env,
        "labels": labels,
        "published_ports": _ports(host_config.get("PortBindings")),
        "volumes": _volumes(container),
        "mounts": _mounts(host_config),
        "network_mode": network_mode,
        "networks": networks,
        "restart_policy": restart.get("Name") or "no",
        "restart_retries": restart.get("MaximumRetryCount") or None,
        "command": config.get("Cmd") if config.get("Cmd") != image_config.get("Cmd") else None,
        "entrypoint": (
            config.get("Entrypoint") if config.get("Entrypoint") != image_config.get("Entrypoint") else None
        ),
        "user": config.get("User") if config.get("User") != image_config.get("User", "") else None,
        "working_dir": (
            config.get("WorkingDir") if config.get("WorkingDir") != image_config.get("WorkingDir", "") else None
        ),
        "init": bool(host_config.get("Init")) or None,
        "tty": bool(config.get("Tty")) or None,
        "interactive": bool(config.get("OpenStdin")) or None,
        "privileged": bool(host_config.get("Privileged")) or None,
        "cap_add": host_config.get("CapAdd") or None,
        "cap_drop": host_config.get("CapDrop") or None,
        "extra_hosts": dict(h.split(":", 1) for h in host_config.get("ExtraHosts") or []) or None,
        "healthcheck": None,
        "unsupported": _unsupported(host_config),
    }
    health = config.get("Healthcheck")
    if health and health != image_config.get("Healthcheck"):
        spec["healthcheck"] = {
            key: value
            for key, value in {
                "test": health.get("Test"),
                "interval": _duration(health.get("Interval")),
                "timeout": _duration(health.get("Timeout")),
                "retries": health.get("Retries") or None,
                "start_period": _duration(health.get("StartPeriod")),
            }.items()
            if value is not None
        }
    return spec


def health_of(container: dict[str, t.Any] | None) -> str:
    """'healthy', 'unhealthy', 'starting', 'running' (no health check), or 'exited'/'missing'."""
    if not container:
        return "missing"
    state = container.get("State") or {}
    if not state.get("Running") or state.get("Restarting"):
        return "exited"
    health = state.get("Health")
    if not health:
        return "running"
    return str(health.get("Status") or "starting")


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"tailops_container_spec": container_spec, "tailops_container_health": health_of}
