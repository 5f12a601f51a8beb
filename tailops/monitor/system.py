"""Host facts: CPU, load, memory, swap, disks, uptime, identity.

Everything here is a cheap read of /proc or a cached value, so
``get_system_status`` answers in well under 10 ms: CPU percentages come from the
background :class:`~tailops.monitor.sampler.Sampler`, disk usage from its slow
sampler, static identity (hostname, OS, kernel, boot time) is read once.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import time
from datetime import UTC, datetime

import psutil
from pydantic import Field

from tailops.models import Model
from tailops.monitor.sampler import Sampler

__all__ = ["DiskUsage", "SystemStatus", "collect_disks", "system_status"]

# Filesystems that hold no user data; listing them is noise.
PSEUDO_FS = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "tmpfs",
        "cgroup",
        "cgroup2",
        "securityfs",
        "pstore",
        "bpf",
        "tracefs",
        "debugfs",
        "mqueue",
        "hugetlbfs",
        "fusectl",
        "configfs",
        "autofs",
        "binfmt_misc",
        "nsfs",
        "ramfs",
        "rpc_pipefs",
        "efivarfs",
        "squashfs",
        "overlay",
        "aufs",
        "shm",
        "fuse.lxcfs",
        "fuse.portal",
        "nfsd",
        "selinuxfs",
    }
)


class CpuInfo(Model):
    percent: float = Field(description="Busy % over the last sampling interval, all CPUs.")
    per_cpu: list[float] | None = Field(None, description="Busy % per logical CPU (when requested).")
    count_logical: int
    count_physical: int | None
    sample_age_s: float = Field(description="Age of the CPU, memory and swap sample in seconds.")


class LoadAverage(Model):
    one: float
    five: float
    fifteen: float
    per_cpu_one: float = Field(description="1-minute load divided by logical CPUs.")


class MemoryInfo(Model):
    total: int
    available: int
    used: int
    percent: float


class SwapInfo(Model):
    total: int
    used: int
    free: int
    percent: float


class DiskUsage(Model):
    mountpoint: str
    device: str
    fstype: str
    total: int
    used: int
    free: int
    percent: float


class SystemStatus(Model):
    hostname: str
    os: str
    kernel: str
    arch: str
    boot_time: datetime
    uptime_s: int
    cpu: CpuInfo
    load: LoadAverage | None = Field(description="None where the OS has no load average.")
    memory: MemoryInfo
    swap: SwapInfo
    disks: list[DiskUsage]
    disks_age_s: float | None = Field(description="Age of the disk sample in seconds.")


@functools.cache
def _identity() -> tuple[str, str, str, float, int, int | None]:
    try:
        release = platform.freedesktop_os_release()
        os_name = release.get("PRETTY_NAME") or release.get("NAME", platform.system())
    except OSError:
        os_name = f"{platform.system()} {platform.version()}"
    return (
        os_name,
        platform.release(),
        platform.machine(),
        psutil.boot_time(),
        psutil.cpu_count() or 1,
        psutil.cpu_count(logical=False),
    )


def _load(cpus: int) -> LoadAverage | None:
    if not hasattr(os, "getloadavg"):
        return None
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return None
    return LoadAverage(one=one, five=five, fifteen=fifteen, per_cpu_one=round(one / cpus, 2))


def collect_disks() -> list[DiskUsage]:
    """Usage of each real mounted filesystem, one entry per device (bind mounts folded)."""
    seen: set[str] = set()
    disks: list[DiskUsage] = []
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO_FS and part.mountpoint != "/":
            continue
        if not os.path.isdir(part.mountpoint):  # file bind mounts (/etc/hosts in containers)
            continue
        key = part.device if part.device not in ("", "none") else part.mountpoint
        if key in seen:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        seen.add(key)
        disks.append(
            DiskUsage(
                mountpoint=part.mountpoint,
                device=part.device,
                fstype=part.fstype,
                total=usage.total,
                used=usage.used,
                free=usage.free,
                percent=usage.percent,
            )
        )
    return disks


def system_status(sampler: Sampler, *, per_cpu: bool = False) -> SystemStatus:
    os_name, kernel, arch, boot, logical, physical = _identity()
    cpu = sampler.cpu()
    vm, sw = cpu.memory, cpu.swap
    disks, disks_age = sampler.slow()
    return SystemStatus(
        hostname=socket.gethostname(),
        os=os_name,
        kernel=kernel,
        arch=arch,
        boot_time=datetime.fromtimestamp(boot, UTC),
        uptime_s=int(time.time() - boot),
        cpu=CpuInfo(
            percent=cpu.total,
            per_cpu=list(cpu.per_cpu) if per_cpu else None,
            count_logical=logical,
            count_physical=physical,
            sample_age_s=round(time.monotonic() - cpu.taken_at, 2),
        ),
        load=_load(logical),
        memory=MemoryInfo(total=vm.total, available=vm.available, used=vm.used, percent=vm.percent),
        swap=SwapInfo(total=sw.total, used=sw.used, free=sw.free, percent=sw.percent),
        disks=list(disks or []),
        disks_age_s=round(disks_age, 2) if disks_age is not None else None,
    )
