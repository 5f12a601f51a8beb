"""Engine values → shown values, and the name/time checks made before any engine call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tailops.errors import InvalidInput
from tailops.monitor.containers.values import (
    check_name,
    engine_time,
    health_from_status,
    parse_when,
    ports_from_inspect,
    short_id,
    ts_seconds,
)
from tests.unit.monitor.containers.recorded import recorded


def test_engine_times() -> None:
    raw = recorded("inspect_exited")
    assert engine_time(raw["State"]["StartedAt"]) == raw["State"]["StartedAt"][:19] + "Z"
    assert engine_time("0001-01-01T00:00:00Z") is None  # the engine's "never"
    assert engine_time(0) is None and engine_time("") is None
    assert engine_time(1714557600) == "2024-05-01T10:00:00Z"
    seconds = ts_seconds("2024-05-01T10:00:00.250000000Z")
    assert seconds == pytest.approx(1714557600.25)
    assert ts_seconds("0001-01-01T00:00:00Z") is None and ts_seconds("garbage") is None


def test_ids_ports_and_health() -> None:
    assert short_id("sha256:" + "ab" * 32) == "ab" * 6 and short_id(None) is None
    ports = ports_from_inspect(recorded("inspect_running")["NetworkSettings"]["Ports"])
    assert len(ports) == 1 and ports[0].startswith("127.0.0.1:")
    assert ports_from_inspect({"80/tcp": None, "53/udp": [{"HostIp": "::", "HostPort": "53"}]}) == [
        "80/tcp",
        "[::]:53->53/udp",
    ]
    assert health_from_status("Up 3 hours (health: starting)") == "starting"
    assert health_from_status("Up 3 hours (unhealthy)") == "unhealthy"
    assert health_from_status("Exited (0) 2 minutes ago") is None


@pytest.mark.parametrize("bad", ["", "../etc", "a b", "-rf", "x" * 256, "name?all=1"])
def test_names_that_are_not_container_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(bad)


def test_time_windows() -> None:
    assert parse_when("2024-05-01T10:00:00Z", what="since") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_when("1714557600", what="since") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    ago = datetime.now(UTC) - parse_when("15m", what="since")
    assert timedelta(minutes=14) < ago < timedelta(minutes=16)
    with pytest.raises(InvalidInput, match="neither a duration"):
        parse_when("yesterday", what="since")
