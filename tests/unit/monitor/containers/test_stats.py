"""``GET /containers/{id}/stats`` samples → figures and CPU %, on recorded engine answers."""

from __future__ import annotations

from typing import Any

from tailops.monitor.containers.models import ContainerStats
from tailops.monitor.containers.stats import cpu_percent, cpu_point, figures, online_cpus
from tests.unit.monitor.containers.recorded import recorded

STATS: dict[str, Any] = recorded("stats")


def test_memory_excludes_the_page_cache_and_net_io_is_summed() -> None:
    sample = STATS["one_shot"]
    got = ContainerStats(name="x", **figures(sample))
    mem = sample["memory_stats"]
    cache = mem["stats"].get("total_inactive_file", mem["stats"].get("inactive_file", 0))
    assert got.memory_usage == mem["usage"] - cache
    assert got.memory_limit == 256 * 1024 * 1024
    assert got.memory_usage is not None
    assert got.memory_percent == round(got.memory_usage / (256 * 1024 * 1024) * 100, 2)
    assert got.net_rx_bytes == sum(n["rx_bytes"] for n in sample["networks"].values())
    assert got.pids == sample["pids_stats"]["current"]


def test_a_plain_sample_pairs_two_engine_ticks_for_cpu() -> None:
    sample = STATS["stream_false"]
    base = cpu_point(sample["precpu_stats"], sample["preread"])
    cur = cpu_point(sample["cpu_stats"], sample["read"])
    assert base is not None and cur is not None
    assert 0.5 < cur[0] - base[0] < 2.0  # about one engine tick apart
    pct = cpu_percent(base, cur, online_cpus(sample))
    assert pct is not None and 0.0 <= pct <= 100.0 * online_cpus(sample)


def test_a_one_shot_sample_has_no_previous_tick() -> None:
    """Why container_stats needs its own baseline (or the cgroup) with one-shot samples."""
    sample = STATS["one_shot"]
    assert cpu_point(sample["precpu_stats"], sample["preread"]) is None
    assert cpu_point(sample["cpu_stats"], sample["read"]) is not None


def test_no_cpu_percent_without_system_time_passing() -> None:
    assert cpu_percent((1.0, 100, 500), (2.0, 200, 500), 2) is None
