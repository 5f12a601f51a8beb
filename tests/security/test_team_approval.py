"""Team approval policy: a plan of a risk that needs N approvals needs N distinct people.

Real server, real tokens, the real MCP client; the plan is seeded (low risk) and the policy
says low: 2. Every way of counting one person twice is tried: the same token, the same
subject with another token, another spelling, the requester.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from mcp import Client

from tailops.changes import plans
from tailops.config import load_config
from tailops.principal import Principal
from tests.servers import RunningServer, http_server, mcp_http_client
from tests.testbed.seed import seed_plan


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RunningServer]:
    settings = load_config(None, server={"data_dir": tmp_path / "data"}, changes={"required_approvals": {"low": 2}})
    with http_server(settings) as running:
        yield running


@contextlib.asynccontextmanager
async def as_(srv: RunningServer, subject: str, scopes: str) -> AsyncIterator[Client]:
    async with mcp_http_client(srv.url, srv.mint(subject, scopes)) as client:
        yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> tuple[bool, str, Any]:
    result = await client.call_tool(tool, args)
    return bool(result.is_error), result.content[0].text, result.structured_content  # type: ignore[union-attr]


async def test_two_distinct_people_must_approve_and_apply_waits_for_both(srv: RunningServer) -> None:
    alice_token = srv.mint("alice", "readonly system:admin")
    alice_jti = str(jwt.decode(alice_token, options={"verify_signature": False})["jti"])
    plan = seed_plan(srv.settings.db_path, Principal("alice", frozenset({"system:admin"}), "http", token_id=alice_jti))
    async with as_(srv, "bob", "readonly changes:approve") as bob:
        is_error, text, view = await call(bob, "approve_plan", {"plan_id": plan.id, "comment": "one"})
        assert not is_error, text
        assert view["status"] == "pending" and view["approvals_given"] == 1 and view["approvals_required"] == 2
        assert "1 of 2 approvals" in view["next_step"]
        again, text, _ = await call(bob, "approve_plan", {"plan_id": plan.id})
        assert again and "already approved" in text
    # Bob with another token, and "BOB": the same person.
    for subject in ("bob", "BOB"):
        async with as_(srv, subject, "changes:approve") as other:
            is_error, text, _ = await call(other, "approve_plan", {"plan_id": plan.id})
            assert is_error and "distinct people" in text, subject
    async with mcp_http_client(srv.url, alice_token) as alice:
        is_error, text, _ = await call(alice, "apply_plan", {"plan_id": plan.id})
        assert is_error and "1 of 2 approvals" in text
        assert plans.list_runs(srv.runtime.store, plan_id=plan.id)[1] == 0
    async with as_(srv, "carol", "readonly changes:approve") as carol:
        is_error, text, view = await call(carol, "approve_plan", {"plan_id": plan.id, "comment": "two"})
        assert not is_error, text
        assert view["status"] == "approved" and view["approvals_given"] == 2
        assert {a["by"] for a in view["approvals"]} == {"bob", "carol"}
    async with mcp_http_client(srv.url, alice_token) as alice:
        is_error, text, _ = await call(alice, "apply_plan", {"plan_id": plan.id})
    # Both approvals accepted; what stops it now is the seeded plan's playbook (not in the catalog).
    assert is_error and text.startswith("not_found:") and "tb_marker" in text, text
    with httpx.Client(base_url=srv.base_url, timeout=10) as page:
        page.post("/review/login", data={"token": srv.mint("rita", "readonly")}, headers={"Origin": srv.base_url})
        html = page.get(f"/review/plans/{plan.id}").text
    assert "2 of 2" in html
