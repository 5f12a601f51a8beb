"""psutil answers recorded once (tests/fixtures/psutil/, written by its record.py) → the models.

The fast, data-only half beside the live tests in test_processes.py and
test_network.py: it pins what the parsers make of real psutil output,
including a process that vanished mid-scan (every field None).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from tailops.monitor.network import interfaces_from
from tailops.monitor.processes import CMDLINE_MAX, process_info
from tests.helpers import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "psutil"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def as_psutil(info: dict[str, Any]) -> dict[str, Any]:
    """The recorded dict with its named tuple (memory_info) back as an object with attributes."""
    mem = info.get("memory_info")
    return {**info, "memory_info": SimpleNamespace(**mem) if mem is not None else None}


def test_a_process_row() -> None:
    raw = recorded("processes")["recorder"]
    got = process_info(as_psutil(raw))
    assert got.pid == raw["pid"] and got.name == raw["name"] and got.user == raw["username"]
    assert got.rss == raw["memory_info"]["rss"] and got.threads == raw["num_threads"]
    assert got.memory_percent == round(raw["memory_percent"], 2)
    assert got.cmdline == " ".join(raw["cmdline"]) and got.started == raw["create_time"]


def test_a_long_command_line_is_cut() -> None:
    raw = recorded("processes")["long_cmdline"]
    assert len(" ".join(raw["cmdline"])) > CMDLINE_MAX
    got = process_info(as_psutil(raw))
    assert got.cmdline is not None and len(got.cmdline) == CMDLINE_MAX and got.cmdline.endswith("…")


def test_a_vanished_process_is_a_row_of_unknowns_not_an_error() -> None:
    raw = recorded("processes")["vanished"]
    got = process_info(as_psutil(raw))
    assert got.pid == raw["pid"]
    assert (got.name, got.rss, got.cpu_percent, got.cmdline, got.memory_percent) == (None, None, None, None, None)


def net() -> tuple[dict[str, list[SimpleNamespace]], dict[str, SimpleNamespace], dict[str, SimpleNamespace]]:
    data = recorded("net_if")
    addrs = {name: [SimpleNamespace(**a) for a in rows] for name, rows in data["addrs"].items()}
    stats = {name: SimpleNamespace(**s) for name, s in data["stats"].items()}
    io = {name: SimpleNamespace(**c) for name, c in data["io"].items()}
    return addrs, stats, io


def test_interfaces_with_addresses_mac_and_counters() -> None:
    data = recorded("net_if")
    got = {i.name or "": i for i in interfaces_from(*net())}
    assert sorted(got) == sorted(data["stats"])
    lo = got["lo"]
    assert lo.is_up and lo.mtu == 65536 and lo.duplex == "unknown"
    assert [(a.family, a.address) for a in lo.addresses or []] == [("ipv4", "127.0.0.1"), ("ipv6", "::1")]
    eth = got["eth0"]
    link = [a["address"] for a in data["addrs"]["eth0"] if a["family"] == 17]
    assert eth.mac == link[0]  # AF_PACKET is the MAC, not an address
    assert all(a.family in ("ipv4", "ipv6") for a in eth.addresses or [])
    assert eth.bytes_recv == data["io"]["eth0"]["bytes_recv"] and eth.dropin == data["io"]["eth0"]["dropin"]


def test_down_interfaces_can_be_left_out() -> None:
    addrs, stats, io = net()
    stats["docker0"] = SimpleNamespace(**{**vars(stats["docker0"]), "isup": False})
    names = [i.name for i in interfaces_from(addrs, stats, io, include_down=False)]
    assert "docker0" not in names and "lo" in names
    assert "docker0" in [i.name for i in interfaces_from(addrs, stats, io)]
