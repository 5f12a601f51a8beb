"""``GET /networks`` rows + inspect → NetworkSummary, on recorded engine answers."""

from __future__ import annotations

from tailops.monitor.containers.networks import network_summary
from tests.unit.monitor.containers.recorded import recorded


def test_a_network_with_its_members() -> None:
    data = recorded("networks")
    got = network_summary(data["row"], data["inspect"])
    assert got.name == data["row"]["Name"] and got.driver == "bridge" and got.scope == "local"
    assert got.subnets and got.gateways and got.subnets[0].endswith("/16")
    assert got.containers == [m["Name"] for m in data["inspect"]["Containers"].values()]
    assert got.containers and got.containers[0].startswith("tailops-test-fixture-running-")


def test_a_failed_inspect_leaves_members_unknown() -> None:
    data = recorded("networks")
    assert network_summary(data["row"], None).containers is None
