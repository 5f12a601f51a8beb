"""A loaded playbook: the extra vars a run gets."""

from __future__ import annotations

from tailops.changes.catalog import Catalog


def test_extravars_carry_manifest_play_keywords() -> None:
    entry = Catalog.load().get("service_state")
    assert entry.extravars({"name": "x", "state": "started"}) == {
        "name": "x",
        "state": "started",
        "tailops_serial": 1,
        "tailops_max_fail_percentage": 0,
    }
    assert entry.extravars({}, serial="50%", max_fail_percentage=20)["tailops_serial"] == "50%"
