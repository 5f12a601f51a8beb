"""Container resource figures: ``GET /containers/{id}/stats`` → :class:`ContainerStatsList`, CPU % included.

Why it exists: ``get_container_stats`` must give a CPU % for every container in
one round of at most ``docker.stats_timeout`` (the engine needs two samples
for a CPU %, one second apart). The strategy (reuse this process' previous
sample, else a cgroup window beside a one-shot sample, else the engine's own
``precpu`` pairing) is explained on :func:`container_stats`; the figures of
one sample come from the pure :func:`figures` / :func:`cpu_point`, for
recorded-data tests.

What it must never do: ask the engine container by container in sequence, keep
unbounded per-container state (at most ``_CPU_SAMPLES_KEPT`` baselines), or
report a CPU % computed across a container restart.
"""

from __future__ import annotations

import time
from typing import Any

from tailops.errors import TailopsError
from tailops.monitor.containers.details import inspect_raw
from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.models import ContainerStats, ContainerStatsList
from tailops.monitor.containers.values import short_id, ts_seconds

__all__ = [
    "CGROUP_CPU_WINDOW",
    "CPU_REUSE_MAX_AGE",
    "container_stats",
    "cpu_percent",
    "cpu_point",
    "figures",
    "online_cpus",
]

CPU_REUSE_MAX_AGE = 60.0  # seconds a previous sample may be old and still serve as the CPU baseline
CGROUP_CPU_WINDOW = 1.0  # seconds between the two cgroup reads of a first sample (as one engine tick)
_CPU_SAMPLES_KEPT = 4096


def cpu_point(cpu_stats: dict[str, Any] | None, read: Any) -> tuple[float, int, int] | None:
    """(time, container cpu ns, system cpu ns) of one sample, or None when incomplete."""
    c = cpu_stats or {}
    total = (c.get("cpu_usage") or {}).get("total_usage")
    system = c.get("system_cpu_usage")
    when = ts_seconds(read)
    if total is None or system is None or when is None:
        return None
    return when, int(total), int(system)


def cpu_percent(prev: tuple[float, int, int], cur: tuple[float, int, int], online: int) -> float | None:
    sys_delta = cur[2] - prev[2]
    cpu_delta = cur[1] - prev[1]
    if sys_delta <= 0:
        return None
    return round(max(0, cpu_delta) / sys_delta * online * 100.0, 2)


def online_cpus(sample: dict[str, Any]) -> int:
    c = sample.get("cpu_stats") or {}
    return int(c.get("online_cpus") or len((c.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)


def figures(sample: dict[str, Any]) -> dict[str, Any]:
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
        raw = inspect_raw(engine, name)
        cname = (raw.get("Name") or "").lstrip("/")
        state = (raw.get("State") or {}).get("Status")
        total = 1
        if state not in ("running", "paused", "restarting"):
            entries[raw["Id"]] = ContainerStats(
                name=cname, id=short_id(raw.get("Id")), state=state, error=f"not running (state {state})"
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
                base = cpu_point(got.get("precpu_stats"), got.get("preread"))
            if base is not None:
                baselines[cid] = base
            point = cpu_point(got.get("cpu_stats"), got.get("read"))
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
            out.append(ContainerStats(name=cname, id=short_id(cid), error=got.message))
            continue
        cur = cpu_point(got.get("cpu_stats"), got.get("read"))
        base = baselines.get(cid)
        cpu = window = None
        if (on_cgroup := measured.get(cid)) is not None:
            seconds, cpu_ns = on_cgroup
            cpu, window = round(cpu_ns / (seconds * 1e9) * 100.0, 2), round(seconds, 2)
        elif cur is not None and base is not None and cur[2] > base[2]:
            cpu = cpu_percent(base, cur, online_cpus(got))
            window = round(cur[0] - base[0], 2)
        out.append(
            ContainerStats(
                name=cname,
                id=short_id(cid),
                state="running",
                cpu_percent=cpu,
                cpu_window_s=window,
                **figures(got),
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
