"""The approval requirement of a plan: risk rule and inventory-group rules, strictest wins.

Data in (config, risk, host -> groups), requirement out; plus the real ansible-inventory
read of :func:`requirement_for_hosts` on an INI inventory with nested groups, and the
"never lowered, tightened applies" rule of :func:`effective`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailops.changes import approval_policy
from tailops.changes.approval_policy import decide, effective, requirement_for_hosts
from tailops.config import ChangesSettings, load_config
from tailops.errors import ConfigError

PROD_DEV = [{"group": "prod", "low": 2, "high": 2, "critical": 3}, {"group": "dev", "low": "auto", "high": 1}]


def changes(rules: list[dict[str, Any]] = PROD_DEV, **more: Any) -> ChangesSettings:
    return load_config(None, changes={"group_approvals": rules, **more}).changes


def test_a_prod_host_needs_two_even_for_low_risk() -> None:
    need = decide(changes(), "low", {"web-1": ["all", "prod"], "web-2": ["all", "prod"]})
    assert need.required == 2 and not need.auto
    assert need.summary() == "2 approvals: group prod (web-1, web-2)"


def test_a_dev_only_low_risk_plan_is_auto() -> None:
    need = decide(changes(), "low", {"dev-1": ["all", "dev"], "dev-2": ["dev"]})
    assert need.auto and need.approvals_needed == 1
    assert need.summary() == "auto: group dev (dev-1, dev-2); approved by policy, no person approves"


def test_mixed_dev_and_prod_takes_prods_count() -> None:
    need = decide(changes(), "low", {"dev-1": ["dev"], "web-1": ["prod"]})
    assert need.required == 2 and need.summary() == "2 approvals: group prod (web-1)"


def test_a_host_in_both_dev_and_prod_is_not_auto() -> None:
    assert decide(changes(), "low", {"both": ["dev", "prod"]}).required == 2


def test_one_host_outside_every_auto_group_means_people_approve() -> None:
    need = decide(changes(), "low", {"dev-1": ["dev"], "lab-1": ["lab"]})
    assert need.required == 1 and not need.auto
    assert need.summary() == "1 approval: changes.required_approvals.low (not auto: lab-1 in no auto group)"


def test_no_hosts_is_never_auto() -> None:
    assert decide(changes(), "low", {}).required == 1


def test_the_risk_rule_is_a_floor_a_group_never_lowers_it() -> None:
    # critical needs 2 by default; a group saying 1 for high does not lower high's own rule (1) either.
    need = decide(changes([{"group": "lab", "critical": 1}]), "critical", {"lab-1": ["lab"]})
    assert need.required == 2 and need.summary() == "2 approvals: changes.required_approvals.critical"
    need = decide(changes(required_approvals={"low": 3}), "low", {"web-1": ["prod"]})
    assert need.required == 3


def test_group_auto_does_not_apply_to_other_risks() -> None:
    # dev says auto for low only; a high-risk plan on dev takes dev's high count.
    need = decide(changes(), "high", {"dev-1": ["dev"]})
    assert need.required == 1 and need.summary() == "1 approval: group dev (dev-1)"
    assert decide(changes(), "critical", {"dev-1": ["dev"]}).required == 2


def test_risk_level_auto_is_overruled_by_a_group_count() -> None:
    # changes.approval.low=auto used to approve every low-risk plan; a prod host now needs its two people.
    cfg = changes(approval={"low": "auto"})
    assert decide(cfg, "low", {"lab-1": []}).auto
    need = decide(cfg, "low", {"lab-1": [], "web-1": ["prod"]})
    assert need.required == 2 and not need.auto


def test_many_hosts_are_summarised() -> None:
    hosts = {f"web-{i:02d}": ["prod"] for i in range(12)}
    assert decide(changes(), "low", hosts).summary() == (
        "2 approvals: group prod (web-00, web-01, web-02, web-03, web-04 and 7 more)"
    )


def test_a_rule_for_a_group_the_inventory_lacks_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        decide(changes(), "low", {"web-1": ["prod"]}, inventory_groups={"all", "prod", "ungrouped"})
    assert "dev" in info.value.message and "inventory groups: all, prod, ungrouped" in info.value.message


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"group": "dev", "critical": "auto"}, "critical: auto is refused"),
        ({"group": "dev", "high": "auto"}, "high: auto is refused"),
        ({"group": "dev", "low": -1}, "1-5, not -1"),
        ({"group": "dev", "low": 0}, "1-5, not 0"),
        ({"group": "dev", "low": 6}, "1-5, not 6"),
        ({"group": "dev", "low": "two"}, "1-5) or auto, not 'two'"),
        ({"group": "dev"}, "sets no risk"),
        ({"group": "dev prod", "low": 1}, "group_approvals.0.group"),
        ({"group": "dev", "low": 1, "medium": 2}, "unknown key"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_config_error(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        changes([rule])
    assert message in info.value.message and "changes.group_approvals" in info.value.message


def test_two_rules_for_one_group_are_refused() -> None:
    with pytest.raises(ConfigError, match="one rule per group; repeated: prod"):
        changes([{"group": "prod", "low": 2}, {"group": "prod", "high": 3}])


def test_effective_keeps_the_recorded_count_when_config_is_loosened() -> None:
    recorded = decide(changes(), "low", {"web-1": ["all", "prod"]}, inventory_groups={"all", "prod", "dev"})
    loosened = changes([{"group": "prod", "low": 1}])
    now = effective(loosened, recorded, "low", ["web-1"], _no_read)
    assert now.required == 2 and not now.tightened


def test_effective_applies_a_tightened_config() -> None:
    recorded = decide(changes(), "low", {"dev-1": ["all", "dev"]}, inventory_groups={"all", "prod", "dev"})
    assert recorded.auto
    tightened = changes([{"group": "dev", "low": 2}])
    now = effective(tightened, recorded, "low", ["dev-1"], _no_read)
    assert now.required == 2 and now.tightened
    assert now.summary() == "2 approvals: group dev (dev-1) (config tightened since planning)"


def test_effective_reads_the_inventory_when_a_rule_was_added_after_planning(tmp_path: Path) -> None:
    # Planned with no group rule (no groups recorded); a prod rule added since must still apply.
    recorded = decide(ChangesSettings(), "low", {"web-1": []})
    inventory = write_inventory(tmp_path)
    now = effective(changes([{"group": "prod", "low": 2}]), recorded, "low", ["web-1"], lambda: inventory)
    assert now.required == 2 and now.tightened


def _no_read() -> Path:
    raise AssertionError("the recorded host groups suffice; the inventory must not be read")


def write_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.ini"
    path.write_text(
        "[web]\nweb-1\nweb-2\n\n[db]\ndb-1\n\n[dev]\ndev-1\n\n[prod:children]\nweb\ndb\n\n[targets:children]\nprod\ndev\n"
    )
    return path


def test_requirement_for_hosts_reads_nested_groups_with_ansible_inventory(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    need = requirement_for_hosts(changes(), "low", ["db-1", "web-1"], inventory)
    # db-1 is in prod only through prod:children -> db.
    assert need.required == 2 and need.summary() == "2 approvals: group prod (db-1, web-1)"
    assert need.host_groups["db-1"] == ["all", "db", "prod", "targets"]
    assert need.inventory_groups is not None and "dev" in need.inventory_groups
    assert requirement_for_hosts(changes(), "low", ["dev-1"], inventory).auto
    with pytest.raises(ConfigError, match="staging"):
        requirement_for_hosts(changes([{"group": "staging", "low": 2}]), "low", ["web-1"], inventory)


def test_without_group_rules_the_inventory_is_not_read(tmp_path: Path) -> None:
    need = requirement_for_hosts(ChangesSettings(), "critical", ["a"], tmp_path / "does-not-exist")
    assert need.required == 2 and need.inventory_groups is None


def test_canonical_content_names_the_count_and_the_rule() -> None:
    need = decide(changes(), "low", {"web-2": ["prod"], "web-1": ["prod"]})
    assert need.canonical() == {"required": 2, "rules": [["group prod", 2, ["web-1", "web-2"]]]}
    assert approval_policy.RuleHit(rule="x", count=1).describe() == "x"


def test_the_requirement_is_part_of_the_plan_id() -> None:
    from tailops.changes import plans

    base: dict[str, Any] = {
        "playbook": "tb_marker",
        "version": "1.0.0",
        "playbook_sha256": "a" * 64,
        "params": {"message": "x"},
        "limit": None,
        "inventory_sha256": "b" * 64,
        "hosts": [],
    }
    two = decide(changes(), "low", {"web-1": ["prod"]}).canonical()
    one = decide(changes([{"group": "prod", "low": 1}]), "low", {"web-1": ["prod"]}).canonical()
    ids = {plans.plan_id_for(**base), plans.plan_id_for(**base, approval=two), plans.plan_id_for(**base, approval=one)}
    assert len(ids) == 3  # a looser requirement is another plan, never the same one
