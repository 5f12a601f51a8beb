"""System status from the real machine (psutil) and the CPU sampler behind it, no mocks."""

from __future__ import annotations

import socket
import time

import psutil

from tailops.monitor.sampler import Sampler
from tailops.monitor.system import PSEUDO_FS, collect_disks, system_status


def test_system_status_reports_real_facts() -> None:
    sampler = Sampler(cpu_interval=0.05, slow_probe=collect_disks)
    sampler.start()
    try:
        time.sleep(0.15)
        st = system_status(sampler, per_cpu=True)
    finally:
        sampler.stop()
    assert st.hostname == socket.gethostname()
    assert st.memory.total == psutil.virtual_memory().total
    assert 0.0 <= st.cpu.percent <= 100.0
    assert st.cpu.per_cpu is not None and len(st.cpu.per_cpu) == psutil.cpu_count()
    assert st.cpu.sample_age_s < 1.0
    assert st.load is not None and st.load.one == st.load.one  # not NaN
    assert st.uptime_s > 0
    assert st.disks, "at least the root filesystem"
    assert all(d.fstype not in PSEUDO_FS or d.mountpoint == "/" for d in st.disks)
    assert len({d.device for d in st.disks}) == len(st.disks)


def test_cpu_percent_comes_from_the_sampler_not_the_request() -> None:
    sampler = Sampler(cpu_interval=10.0)
    sampler.start()
    try:
        t = time.perf_counter()
        for _ in range(50):
            system_status(sampler)
        per_call = (time.perf_counter() - t) / 50
    finally:
        sampler.stop()
    assert per_call < 0.05, "a request must never wait for a CPU sampling window"
