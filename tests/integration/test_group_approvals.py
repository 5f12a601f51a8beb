"""Team approval policy per inventory group, end to end with real tokens on real hosts.

Three container hosts: two in ``prod``, one in ``dev``. The policy: a prod host needs two
distinct people even for a low-risk plan; dev low-risk plans are approved by policy
(``auto``). Everything is real: the HTTP server, the MCP client with a token per person
(requester alice, approvers bob and carol), ansible-inventory resolving the groups,
ansible-runner check and real runs (the test-only, low-risk ``tb_marker``), SQLite and the
audit log. A config edit between plan and apply is a server restart on the same data dir
with the new config: a tightened rule applies at once, a loosened one never lowers the
count the plan was given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.types import TextContent
from typer.testing import CliRunner

from tailops.cli.main import app as cli_app
from tailops.config import Settings
from tests.servers import RunningServer, http_server, mcp_http_client
from tests.testbed.catalog_runs import fixture_catalog
from tests.testbed.hosts import HostFactory, HostSet

pytestmark = pytest.mark.docker

ALICE = "readonly system:admin"
APPROVER = "readonly changes:approve"
POLICY: list[dict[str, Any]] = [{"group": "prod", "low": 2, "high": 2, "critical": 2}, {"group": "dev", "low": "auto"}]


@pytest.fixture(scope="module")
def bed(
    docker_client: Any, base_image: str, test_labels: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HostSet, list[str], list[str], Path]]:
    """3 hosts; an inventory that puts two in prod and one in dev (all in targets, tb_marker's hosts)."""
    factory = HostFactory(docker_client, test_labels, tmp_path_factory.mktemp("groups-bed"))
    try:
        hosts = factory.make(3)
        prod, dev = hosts.names[:2], hosts.names[2:]
        inventory = hosts.inventory.with_name("groups.ini")
        inventory.write_text(
            hosts.inventory.read_text() + "\n[prod]\n" + "\n".join(prod) + "\n\n[dev]\n" + "\n".join(dev) + "\n"
        )
        yield hosts, prod, dev, inventory
    finally:
        factory.cleanup()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return fixture_catalog(tmp_path_factory.mktemp("groups-catalog"))


Bed = tuple[HostSet, list[str], list[str], Path]


@pytest.fixture
def settings_for(
    make_settings: Callable[..., Settings], catalog: tuple[Path, Path], bed: Bed
) -> Callable[[list[dict[str, Any]]], Settings]:
    """Settings on one data dir (per test) with the given group rules: call again to 'edit the config'."""

    def make(rules: list[dict[str, Any]]) -> Settings:
        changes = {
            "playbooks_dir": str(catalog[0]),
            "roles_dir": str(catalog[1]),
            "inventory": str(bed[3]),
            "group_approvals": rules,
        }
        return make_settings(changes=changes)

    return make


async def call(srv: RunningServer, who: str, scopes: str, tool: str, args: dict[str, Any]) -> tuple[bool, str, Any]:
    async with mcp_http_client(srv.url, srv.mint(who, scopes)) as client:
        with anyio.fail_after(300):
            result = await client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return bool(result.is_error), block.text, result.structured_content


async def ok(srv: RunningServer, who: str, scopes: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    is_error, text, data = await call(srv, who, scopes, tool, args)
    assert not is_error, f"{tool}: {text}"
    return dict(data)


async def plan(srv: RunningServer, message: str, limit: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"playbook": "tb_marker", "params": {"message": message}}
    if limit:
        args["limit"] = limit
    return await ok(srv, "alice", ALICE, "plan_change", args)


async def approve(srv: RunningServer, who: str, plan_id: str) -> dict[str, Any]:
    return await ok(srv, who, APPROVER, "approve_plan", {"plan_id": plan_id, "comment": f"{who} ok"})


async def apply_refused(srv: RunningServer, plan_id: str) -> str:
    is_error, text, _ = await call(srv, "alice", ALICE, "apply_plan", {"plan_id": plan_id})
    assert is_error and text.startswith("approval_error:"), text
    return text


async def apply(srv: RunningServer, plan_id: str) -> dict[str, Any]:
    run = await ok(srv, "alice", ALICE, "apply_plan", {"plan_id": plan_id})
    assert run["status"] == "succeeded", run
    return run


def marker(hosts: HostSet, host: str) -> str:
    return hosts.exec(host, "cat /etc/tailops-tb-marker 2>/dev/null || true")[1].strip()


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.audit_path.read_text().splitlines()]


async def test_a_prod_plan_needs_two_distinct_people_even_for_low_risk(
    settings_for: Callable[[list[dict[str, Any]]], Settings], bed: Bed, tmp_path: Path
) -> None:
    hosts, prod, _dev, _inv = bed
    settings = settings_for(POLICY)
    rule = f"2 approvals: group prod ({', '.join(sorted(prod))})"
    with http_server(settings) as srv:
        planned = await plan(srv, "prod two", "prod")
        plan_id = planned["plan_id"]
        assert planned["risk"] == "low" and planned["status"] == "pending"
        assert planned["approvals_required"] == 2 and planned["approval_rule"] == rule
        assert rule in planned["next_step"]
        assert "it needs " + rule in await apply_refused(srv, plan_id)
        first = await approve(srv, "bob", plan_id)
        assert first["status"] == "pending" and first["approvals_given"] == 1
        assert "1 of 2 approvals" in await apply_refused(srv, plan_id)
        # The same person again (another token, another spelling) does not count twice; nor does the requester.
        is_error, text, _ = await call(srv, "BOB", APPROVER, "approve_plan", {"plan_id": plan_id})
        assert is_error and "distinct people" in text
        is_error, text, _ = await call(srv, "alice", f"{ALICE} changes:approve", "approve_plan", {"plan_id": plan_id})
        assert is_error and "is the requester" in text
        assert all(marker(hosts, h) != "prod two" for h in prod)
        second = await approve(srv, "carol", plan_id)
        assert second["status"] == "approved" and second["approvals_given"] == 2
        await apply(srv, plan_id)
        assert [marker(hosts, h) for h in prod] == ["prod two", "prod two"]
        with httpx.Client(base_url=srv.base_url, timeout=10) as page:
            page.post("/review/login", data={"token": srv.mint("rita", "readonly")}, headers={"Origin": srv.base_url})
            html = page.get(f"/review/plans/{plan_id}").text
        assert "Required: " + rule in html
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(
        json.dumps({"server": {"data_dir": str(settings.server.data_dir)}, "changes": {"inventory": str(bed[3])}})
    )
    shown = CliRunner().invoke(cli_app, ["plans", "show", plan_id[:12], "--config", str(cfg)])
    assert shown.exit_code == 0, shown.output
    assert f"approvals   2 of 2 — {rule}" in shown.stdout


async def test_a_dev_only_low_risk_plan_is_approved_by_policy_and_applies(
    settings_for: Callable[[list[dict[str, Any]]], Settings], bed: Bed
) -> None:
    hosts, _prod, dev, _inv = bed
    settings = settings_for(POLICY)
    with http_server(settings) as srv:
        planned = await plan(srv, "dev auto", "dev")
        assert planned["status"] == "approved", planned
        assert planned["approval_rule"] == f"auto: group dev ({dev[0]}); approved by policy, no person approves"
        [decision] = planned["approvals"]
        assert decision["by_policy"] and decision["by"] == "policy:changes.group_approvals[dev].low=auto"
        assert "no person reviewed" in decision["comment"]
        await apply(srv, planned["plan_id"])
        assert marker(hosts, dev[0]) == "dev auto"
    [record] = [r for r in audit(settings) if r.get("event") == "plan:approved"]
    assert record["plan_id"] == planned["plan_id"] and record["principal"] is None
    assert record["by_policy"] is True and record["human_approved"] is False
    assert record["rule"].startswith("auto: group dev")


async def test_a_mixed_dev_and_prod_plan_needs_prods_count(
    settings_for: Callable[[list[dict[str, Any]]], Settings], bed: Bed
) -> None:
    _hosts, prod, dev, _inv = bed
    with http_server(settings_for(POLICY)) as srv:
        planned = await plan(srv, "mixed", None)
        assert sorted(h["host"] for h in planned["hosts"]) == sorted(prod + dev)
        assert planned["status"] == "pending" and planned["approvals_required"] == 2
        assert planned["approval_rule"] == f"2 approvals: group prod ({', '.join(sorted(prod))})"
        assert planned["approvals"] == []  # dev's auto never applies to a plan that also touches prod
        await approve(srv, "bob", planned["plan_id"])
        assert "1 of 2 approvals" in await apply_refused(srv, planned["plan_id"])


async def test_config_tightened_after_planning_applies_the_new_count(
    settings_for: Callable[[list[dict[str, Any]]], Settings], bed: Bed
) -> None:
    hosts, _prod, dev, _inv = bed
    with http_server(settings_for(POLICY)) as srv:
        planned = await plan(srv, "tightened", "dev")
        assert planned["status"] == "approved"  # auto under the config it was planned with
    tightened = [POLICY[0], {"group": "dev", "low": 2}]
    with http_server(settings_for(tightened)) as srv:
        plan_id = planned["plan_id"]
        text = await apply_refused(srv, plan_id)
        assert "0 of 2 approvals" in text and "config tightened since planning" in text
        view = await ok(srv, "rita", "readonly", "get_plan", {"plan_id": plan_id})
        assert view["approvals_required"] == 2 and view["approvals_given"] == 0
        assert view["approval_rule"] == f"2 approvals: group dev ({dev[0]}) (config tightened since planning)"
        first = await approve(srv, "bob", plan_id)
        assert first["status"] == "pending" and first["approvals_given"] == 1
        assert "1 of 2 approvals" in await apply_refused(srv, plan_id)
        await approve(srv, "carol", plan_id)
        run = await apply(srv, plan_id)
        assert marker(hosts, dev[0]) == "tightened"
        detail = await ok(srv, "rita", "readonly", "get_plan", {"plan_id": plan_id})
        used = {a["by"]: a["used_by_run"] for a in detail["approvals"]}
        assert used["bob"] == used["carol"] == run["run_id"]
        assert used["policy:changes.group_approvals[dev].low=auto"] is None  # voided, never used


async def test_config_loosened_after_planning_keeps_the_plans_count(
    settings_for: Callable[[list[dict[str, Any]]], Settings], bed: Bed
) -> None:
    hosts, prod, _dev, _inv = bed
    with http_server(settings_for(POLICY)) as srv:
        planned = await plan(srv, "loosened", prod[0])
        assert planned["approvals_required"] == 2
    loosened: list[dict[str, Any]] = [{"group": "prod", "low": 1}]
    with http_server(settings_for(loosened)) as srv:
        plan_id = planned["plan_id"]
        first = await approve(srv, "bob", plan_id)
        assert first["status"] == "pending" and first["approvals_required"] == 2
        assert "1 of 2 approvals" in await apply_refused(srv, plan_id)
        # Planning the same change again under the looser config is a new plan with its own count.
        again = await plan(srv, "loosened", prod[0])
        assert again["plan_id"] != plan_id and again["approvals_required"] == 1
        await approve(srv, "carol", plan_id)
        await apply(srv, plan_id)
        assert marker(hosts, prod[0]) == "loosened"


async def test_a_rule_for_a_group_the_inventory_lacks_refuses_planning(
    settings_for: Callable[[list[dict[str, Any]]], Settings], bed: Bed
) -> None:
    with http_server(settings_for([*POLICY, {"group": "prdo", "low": 2}])) as srv:
        is_error, text, _ = await call(
            srv, "alice", ALICE, "plan_change", {"playbook": "tb_marker", "params": {"message": "typo"}}
        )
        assert is_error and text.startswith("config_error:") and "prdo" in text and "inventory groups:" in text
        count = srv.runtime.store.query_one("SELECT COUNT(*) AS n FROM plans")
        assert count is not None and count["n"] == 0
