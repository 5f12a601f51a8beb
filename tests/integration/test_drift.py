"""Drift on the container test bed: a host changed by hand drifts, a plan made from the drift
in one step is approved and applied, the host is in line again, and a second change by hand
is flagged as drift introduced outside tailops (naming the run that had brought it in line).

Real Docker hosts, real ansible-runner check runs, the real MCP client over HTTP; the
playbook is the test-only tb_marker (writes /etc/tailops-tb-marker).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tailops.cli.main import app as cli_app
from tailops.config import Settings
from tailops.principal import Principal
from tests.servers import http_server, mcp_http_client
from tests.testbed.catalog_runs import fixture_catalog
from tests.testbed.hosts import MakeHosts

pytestmark = pytest.mark.docker

CHECK = {"name": "marker", "playbook": "tb_marker", "params": {"message": "desired"}, "every": "30d"}


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_drift_found_planned_fixed_and_flagged_when_it_returns(
    container_hosts: MakeHosts, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    bed = container_hosts(2)
    drifted_host, other = bed.names
    playbooks, roles = fixture_catalog(tmp_path / "catalog")
    settings = make_settings(
        changes={"playbooks_dir": str(playbooks), "roles_dir": str(roles), "inventory": str(bed.inventory)},
        drift={"checks": [CHECK]},
    )
    # The other host is already in the desired state; the first one has another content.
    assert bed.exec(other, "printf 'desired\\n' > /etc/tailops-tb-marker")[0] == 0
    assert bed.exec(drifted_host, "printf 'changed by hand\\n' > /etc/tailops-tb-marker")[0] == 0
    with http_server(settings) as srv:
        srv.runtime.drift_scheduler.stop()  # this test runs the check itself, when it wants
        alice = srv.mint("alice", "readonly system:admin")
        reader = srv.mint("rita", "readonly")
        async with mcp_http_client(srv.url, alice) as client:
            first = await client.call_tool("run_drift_check", {"check": "marker"})
            assert not first.is_error, _text(first)
            states = {r["host"]: r for r in first.structured_content["results"]}
            assert states[drifted_host]["state"] == "drifted" and states[other]["state"] == "in_line"
            assert "Write the marker file" in states[drifted_host]["changes"]
            assert "+desired" in states[drifted_host]["diff"] and not states[drifted_host]["after_apply"]
            # The check changed nothing: the hand-made content is still there.
            assert bed.exec(drifted_host, ["cat", "/etc/tailops-tb-marker"])[1].strip() == "changed by hand"
            planned = await client.call_tool("plan_from_drift", {"check": "marker", "host": drifted_host})
            assert not planned.is_error, _text(planned)
            plan = planned.structured_content
            assert plan is not None and plan["limit"] == drifted_host and plan["playbook"] == "tb_marker"
        srv.runtime.engine.approve(Principal("bob", frozenset({"changes:approve"}), "http"), plan["plan_id"], "ok")
        async with mcp_http_client(srv.url, alice) as client:
            applied = await client.call_tool("apply_plan", {"plan_id": plan["plan_id"]})
            assert not applied.is_error, _text(applied)
            run_id = applied.structured_content["run_id"]
            again = await client.call_tool("run_drift_check", {"check": "marker"})
            states = {r["host"]: r["state"] for r in again.structured_content["results"]}
            assert states == {drifted_host: "in_line", other: "in_line"}
        assert bed.exec(drifted_host, "printf 'changed again\\n' > /etc/tailops-tb-marker")[0] == 0
        async with mcp_http_client(srv.url, alice) as client:
            third = await client.call_tool("run_drift_check", {"check": "marker"})
        flagged = {r["host"]: r for r in third.structured_content["results"]}[drifted_host]
        assert flagged["state"] == "drifted" and flagged["after_apply"] == run_id
        # Readers see the latest results (readonly scope), newest per host; metrics count them.
        async with mcp_http_client(srv.url, reader) as client:
            seen = await client.call_tool("get_drift", {"host": drifted_host})
            assert not seen.is_error
            assert [r["state"] for r in seen.structured_content["results"]] == ["drifted"]
            refused = await client.call_tool("run_drift_check", {"check": "marker"})
            assert refused.is_error and "system:admin" in _text(refused)
        metrics = srv.runtime.metrics.render().decode()
        assert 'tailops_drift_hosts{check="marker",state="drifted"} 1.0' in metrics
        with httpx.Client(base_url=srv.base_url, timeout=10) as page:
            page.post("/review/login", data={"token": reader}, headers={"Origin": srv.base_url})
            html = page.get("/review/drift").text
        assert drifted_host in html and "changed outside tailops" in html and run_id[:12] in html
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(json.dumps({"server": {"data_dir": str(settings.server.data_dir)}}))
    listed = CliRunner().invoke(cli_app, ["drift", "list", "--json", "--config", str(cfg)])
    assert listed.exit_code == 0, listed.output
    assert {r["host"]: r["state"] for r in json.loads(listed.stdout)["results"]}[drifted_host] == "drifted"
    unknown = CliRunner().invoke(cli_app, ["drift", "run", "nope", "--config", str(cfg)])
    assert unknown.exit_code == 2 and "no drift check named" in unknown.stderr


async def test_the_scheduler_runs_due_checks_on_its_own(
    container_hosts: MakeHosts, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A server with a configured check runs it by itself when due (never ran: at once), on its own
    thread and loop, while the server loop keeps answering; a check that just ran is not due again."""
    import time

    import anyio

    bed = container_hosts(1)
    playbooks, roles = fixture_catalog(tmp_path / "catalog")
    settings = make_settings(
        changes={"playbooks_dir": str(playbooks), "roles_dir": str(roles), "inventory": str(bed.inventory)},
        drift={"checks": [{**CHECK, "every": "1h"}]},
    )
    with http_server(settings) as srv:
        reader = srv.mint("rita", "readonly")
        deadline = time.monotonic() + 240
        async with mcp_http_client(srv.url, reader) as client:
            while True:
                seen = await client.call_tool("get_drift", {})
                assert not seen.is_error, _text(seen)
                results = seen.structured_content["results"]
                if results:
                    break
                assert time.monotonic() < deadline, "the scheduler did not run the due check"
                await anyio.sleep(2)
        assert [(r["host"], r["state"]) for r in results] == [(bed.names[0], "drifted")]
        assert srv.runtime.drift_scheduler.due() == []  # ran just now: next due in an hour
