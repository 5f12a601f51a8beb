"""The typed answers of the container tools: what a list, inspect, stats, image, network or log call returns.

Why it exists: the tools' output schemas are generated from these models, and
the parsers (one module per engine endpoint) and the recorded-data tests share
them; keeping them apart from any engine call lets a test build them from JSON
alone. List items have every field optional so they can be projected with
``fields``.

What it must never do: call the engine, or carry a field that can hold a secret
unredacted (environment values are :data:`~tailops.redact.REDACTED` unless
revealed; log lines and commands are redacted by their parsers).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tailops.models import ListResult, Model
from tailops.redact import REDACTED

__all__ = [
    "ContainerConfig",
    "ContainerDetails",
    "ContainerList",
    "ContainerLogs",
    "ContainerStats",
    "ContainerStatsList",
    "ContainerSummary",
    "EnvVar",
    "HealthInfo",
    "ImageList",
    "ImageSummary",
    "LogLine",
    "MountInfo",
    "NetworkAttachment",
    "NetworkList",
    "NetworkSummary",
    "Resources",
    "RestartPolicy",
    "StateInfo",
]


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
