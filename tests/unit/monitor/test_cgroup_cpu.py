"""CgroupCpu reads the engine's cgroup layouts (files laid out as the kernel shows them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailops.monitor.cgroup_cpu import CgroupCpu

CID = "a" * 64
OTHER = "b" * 64

V2_CPU_STAT = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 0\n"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        (f"system.slice/docker-{CID}.scope/cpu.stat", V2_CPU_STAT, 1_234_567_000),
        (f"docker/{CID}/cpu.stat", V2_CPU_STAT, 1_234_567_000),
        (f"cpuacct/docker/{CID}/cpuacct.usage", "987654321\n", 987_654_321),
        (f"cpu,cpuacct/docker/{CID}/cpuacct.usage", "42\n", 42),
        (f"cpuacct/system.slice/docker-{CID}.scope/cpuacct.usage", "7\n", 7),
    ],
)
def test_each_engine_layout_is_read_in_nanoseconds(tmp_path: Path, rel: str, text: str, expected: int) -> None:
    _write(tmp_path, rel, text)
    cpu = CgroupCpu(tmp_path)
    assert cpu.usage_ns(CID) == expected
    assert cpu.usage_ns(OTHER) is None  # another container's counter is never used


def test_the_matching_layout_is_tried_first_next_time(tmp_path: Path) -> None:
    _write(tmp_path, f"cpuacct/docker/{CID}/cpuacct.usage", "100\n")
    _write(tmp_path, f"docker/{OTHER}/cpu.stat", V2_CPU_STAT)
    cpu = CgroupCpu(tmp_path)
    assert cpu.usage_ns(CID) == 100
    assert cpu.usage_ns(OTHER) == 1_234_567_000  # found even though another layout matched first
    assert cpu.usage_ns(CID) == 100


@pytest.mark.parametrize("bad", ["", "abc", "../" + "a" * 61, "A" * 64, CID[:12], CID + "0"])
def test_only_full_lowercase_ids_are_looked_up(tmp_path: Path, bad: str) -> None:
    if bad and "/" not in bad:  # a file exists under that name: it must still not be read
        _write(tmp_path, f"docker/{bad}/cpu.stat", V2_CPU_STAT)
    assert CgroupCpu(tmp_path).usage_ns(bad) is None


def test_garbage_files_and_no_root_give_none(tmp_path: Path) -> None:
    _write(tmp_path, f"docker/{CID}/cpu.stat", "user_usec 5\n")  # no usage_usec line
    _write(tmp_path, f"cpuacct/docker/{CID}/cpuacct.usage", "not a number\n")
    assert CgroupCpu(tmp_path).usage_ns(CID) is None
    assert CgroupCpu(None).usage_ns(CID) is None
