"""Trust under attack: each attempt a hostile agent or local process made, kept as a test.

A real server (uvicorn in a thread), real tokens, the real MCP SDK client and the real
store; plans are seeded through the store API (tests/testbed/seed.py) because these
rules act before any Ansible run. Each test names the hole it closes; each failed on
the code before the fix:

- a self-approval refused inside the tool body was audited as an error, not denied;
- ``Alice`` could approve ``alice``'s plan (subjects compared case-sensitively);
- a token pasted into an approval comment or a deny reason was shown to every reader;
- an approval given with a token revoked afterwards was still used by apply_plan, and a
  revoked requester's plan was still approved and applied;
- a 401 answered by the SDK's own bearer layer (a token expired within our clock
  leeway) left no audit record;
- the review page accepted a cookie-authenticated form without Origin/CSRF when the
  request also carried any ``Authorization`` header (Basic credentials from a
  ``user:pass@`` URL), and accepted an Origin of any loopback port (login CSRF from any
  local web app); refused forms were not audited.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from mcp import Client

from tailops.auth.tokens import mint_token, revoke_token
from tailops.changes import plans
from tailops.changes.planner import inventory_snapshot, refuse_secret_params
from tailops.changes.plans import Plan
from tailops.config import load_config
from tailops.errors import InvalidInput
from tailops.principal import Principal
from tests.netfixtures import free_port
from tests.servers import RunningServer, http_server, mcp_http_client
from tests.testbed.seed import seed_plan

JWT_LIKE = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RunningServer]:
    settings = load_config(None, server={"data_dir": tmp_path / "data"})
    with http_server(settings) as running:
        yield running


def minted(srv: RunningServer, subject: str, scopes: str) -> tuple[str, str]:
    """(token, jti) of a real token for this server, recorded in its store (so it can be revoked)."""
    token = srv.mint(subject, scopes)
    return token, str(jwt.decode(token, options={"verify_signature": False})["jti"])


def requester(subject: str, jti: str) -> Principal:
    return Principal(subject, frozenset({"system:admin"}), "http", token_id=jti)


def audit(srv: RunningServer, **match: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not srv.settings.audit_path.exists():
        return out
    for line in srv.settings.audit_path.read_text().splitlines():
        rec = json.loads(line)
        if all(rec.get(k) == v for k, v in match.items()):
            out.append(rec)
    return out


@contextlib.asynccontextmanager
async def as_client(srv: RunningServer, token: str) -> AsyncIterator[Client]:
    async with mcp_http_client(srv.url, token) as client:
        yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> tuple[bool, str, Any]:
    result = await client.call_tool(tool, args)
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    return bool(result.is_error), text, result.structured_content


# -- identity: the same person under another spelling --------------------------------------------


@pytest.mark.parametrize("spelling", ["alice", "Alice", "ALICE"])
async def test_the_requester_cannot_approve_under_any_spelling_and_the_refusal_is_denied(
    srv: RunningServer, spelling: str
) -> None:
    _, jti = minted(srv, "alice", "system:admin")
    plan = seed_plan(srv.settings.db_path, requester("alice", jti), message=f"own {spelling.lower()}")
    token, _ = minted(srv, spelling, "changes:approve")
    async with as_client(srv, token) as client:
        is_error, text, _ = await call(client, "approve_plan", {"plan_id": plan.id})
    assert is_error and "is the requester" in text and "token subject" in text
    assert plans.get_plan(srv.runtime.store, plan.id).status == "pending"
    (end,) = [r for r in audit(srv, tool="approve_plan", phase="end") if r["principal"]["sub"] == spelling]
    assert end["decision"] == "denied" and end["outcome"] == "denied" and "requester" in end["reason"]


# -- free text people type ------------------------------------------------------------------------


async def test_comments_and_deny_reasons_are_stored_and_shown_redacted(srv: RunningServer) -> None:
    _, jti = minted(srv, "alice", "system:admin")
    approved = seed_plan(srv.settings.db_path, requester("alice", jti), message="comment")
    denied = seed_plan(srv.settings.db_path, requester("alice", jti), message="reason")
    bob, _ = minted(srv, "bob", "readonly changes:approve")
    reader, _ = minted(srv, "rita", "readonly")
    async with as_client(srv, bob) as client:
        ok, _, _ = await call(client, "approve_plan", {"plan_id": approved.id, "comment": f"fine, used {JWT_LIKE}"})
        assert not ok
        ok, _, _ = await call(
            client, "deny_plan", {"plan_id": denied.id, "reason": "no: PASSWORD=hunter2 was pasted here"}
        )
        assert not ok
    async with as_client(srv, reader) as client:
        for plan in (approved, denied):
            is_error, text, data = await call(client, "get_plan", {"plan_id": plan.id})
            assert not is_error
            assert JWT_LIKE not in text and "hunter2" not in text
            assert JWT_LIKE not in json.dumps(data) and "hunter2" not in json.dumps(data)
    (approval,) = plans.approvals_for(srv.runtime.store, approved.id)
    assert approval.comment == "fine, used [REDACTED]"
    (denial,) = plans.approvals_for(srv.runtime.store, denied.id)
    assert denial.comment is not None and "hunter2" not in denial.comment and "[REDACTED]" in denial.comment
    assert "hunter2" not in (plans.get_plan(srv.runtime.store, denied.id).status_reason or "")
    assert JWT_LIKE not in srv.settings.audit_path.read_text() and "hunter2" not in srv.settings.audit_path.read_text()


def test_secret_looking_plan_parameters_are_refused() -> None:
    refuse_secret_params({"packages": [{"name": "nginx"}], "message": "hello world"})
    for bad in ({"message": JWT_LIKE}, {"token": "abc"}, {"note": "PASSWORD=x"}, {"url": "https://u:p@host/x"}):
        with pytest.raises(InvalidInput, match="looks like a secret"):
            refuse_secret_params(bad)


# -- revocation voids what has not happened yet ----------------------------------------------------


async def test_an_approval_by_a_revoked_token_cannot_be_used_and_can_be_replaced(srv: RunningServer) -> None:
    alice, alice_jti = minted(srv, "alice", "readonly system:admin")
    plan = seed_plan(srv.settings.db_path, requester("alice", alice_jti), message="revoked approver")
    bob, bob_jti = minted(srv, "bob", "changes:approve")
    async with as_client(srv, bob) as client:
        is_error, text, _ = await call(client, "approve_plan", {"plan_id": plan.id, "comment": "ok"})
        assert not is_error, text
    revoke_token(srv.runtime.store, bob_jti, by="test")
    async with as_client(srv, alice) as client:
        is_error, text, _ = await call(client, "apply_plan", {"plan_id": plan.id})
    assert is_error and text.startswith("approval_error:") and bob_jti in text and "revoked" in text
    assert plans.list_runs(srv.runtime.store, plan_id=plan.id)[1] == 0  # nothing ran
    (refusal,) = [r for r in audit(srv, tool="apply_plan", phase="end")]
    assert refusal["decision"] == "denied"
    # Someone with a valid token approves again: the voided approval does not block it.
    carol, _ = minted(srv, "carol", "changes:approve")
    async with as_client(srv, carol) as client:
        is_error, text, _ = await call(client, "approve_plan", {"plan_id": plan.id, "comment": "again"})
    assert not is_error, text
    live = plans.live_approval(srv.runtime.store, plan.id)
    assert live is not None and live.approver_subject == "carol"


async def test_a_revoked_requester_s_plan_is_neither_approved_nor_applied(srv: RunningServer) -> None:
    _, alice_jti = minted(srv, "alice", "system:admin")
    pending = seed_plan(srv.settings.db_path, requester("alice", alice_jti), message="pending one")
    approved = seed_plan(srv.settings.db_path, requester("alice", alice_jti), message="approved one")
    bob, _ = minted(srv, "bob", "changes:approve")
    async with as_client(srv, bob) as client:
        assert not (await call(client, "approve_plan", {"plan_id": approved.id}))[0]
    revoke_token(srv.runtime.store, alice_jti, by="test")
    async with as_client(srv, bob) as client:
        is_error, text, _ = await call(client, "approve_plan", {"plan_id": pending.id})
    assert is_error and alice_jti in text and "revoked" in text
    assert plans.get_plan(srv.runtime.store, pending.id).status == "pending"
    dave, _ = minted(srv, "dave", "readonly system:admin")
    async with as_client(srv, dave) as client:
        is_error, text, _ = await call(client, "apply_plan", {"plan_id": approved.id})
    assert is_error and "requested with token" in text and "revoked" in text
    assert plans.list_runs(srv.runtime.store, plan_id=approved.id)[1] == 0


# -- refusals by the SDK's own bearer layer --------------------------------------------------------


def test_a_401_answered_by_the_mcp_layer_is_audited(srv: RunningServer) -> None:
    """Our check allows a 30 s clock leeway; the SDK's bearer layer does not. A token that
    expired 10 s ago passes ours and is refused further down: that 401 must be audited too."""
    now = time.time()
    token = mint_token(
        private_key_path=srv.settings.private_key_path,
        subject="late",
        scopes="readonly",
        ttl=timedelta(seconds=3590),
        max_ttl=srv.settings.auth.max_token_ttl,
        audience=srv.settings.mcp_url,
        issuer=srv.settings.auth.issuer,
        now=now - 3600,
    ).token
    before = len(audit(srv, event="authentication"))
    r = httpx.post(
        srv.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 401
    records = audit(srv, event="authentication")
    assert len(records) == before + 1
    assert records[-1]["decision"] == "denied" and "refused_by_mcp_layer" in records[-1]["reason"]
    assert token not in srv.settings.audit_path.read_text()


# -- the review page: cross-site forms --------------------------------------------------------------


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m
    return m.group(1)


def _review_client(srv: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, follow_redirects=False, timeout=10)


def test_a_form_with_a_cookie_and_some_other_authorization_header_is_still_checked(srv: RunningServer) -> None:
    """A web app on another local port is the same *site* (SameSite ignores ports), so the
    browser sends the session cookie with its form; posting to http://x:y@server/... also makes
    it add Basic credentials. The cookie, not that header, authenticates the request: Origin
    and CSRF must still be checked (the old code skipped both when any Authorization header
    was present, and approved)."""
    _, jti = minted(srv, "alice", "system:admin")
    plan: Plan = seed_plan(srv.settings.db_path, requester("alice", jti), message="basic auth")
    bob, _ = minted(srv, "bob", "readonly changes:approve")
    with _review_client(srv) as c:
        r = c.post("/review/login", data={"token": bob}, headers={"Origin": srv.base_url})
        assert r.status_code == 303
        forged = c.post(
            f"/review/plans/{plan.id}/approve",
            data={"comment": "csrf"},
            headers={"Authorization": "Basic eDp5", "Origin": f"http://127.0.0.1:{free_port()}"},
        )
        assert forged.status_code == 403
    assert plans.get_plan(srv.runtime.store, plan.id).status == "pending"
    (refused,) = audit(srv, event="review:approve")
    assert refused["decision"] == "denied" and refused["principal"]["sub"] == "bob"
    assert "Origin" in refused["error"]


def test_only_this_server_s_own_origin_may_post_forms(srv: RunningServer) -> None:
    """Another web app on the same machine (another loopback port) is another origin: it
    cannot sign a victim in with the attacker's token (login CSRF) nor post decisions."""
    _, jti = minted(srv, "alice", "system:admin")
    plan = seed_plan(srv.settings.db_path, requester("alice", jti), message="other port")
    bob, _ = minted(srv, "bob", "readonly changes:approve")
    port = srv.settings.server.port
    others = [f"http://127.0.0.1:{free_port()}", f"http://localhost:{port + 1}", f"http://[::1]:{port}"]
    with _review_client(srv) as c:
        for origin in others:
            r = c.post("/review/login", data={"token": bob}, headers={"Origin": origin})
            assert r.status_code == 403 and "set-cookie" not in r.headers, origin
        assert c.post("/review/login", data={"token": bob}, headers={"Origin": srv.base_url}).status_code == 303
        csrf = _csrf(c.get(f"/review/plans/{plan.id}").text)
        r = c.post(f"/review/plans/{plan.id}/approve", data={"csrf": csrf}, headers={"Origin": others[0]})
        assert r.status_code == 403
    assert plans.get_plan(srv.runtime.store, plan.id).status == "pending"
    logins = audit(srv, event="review:login")
    assert len(logins) == len(others) and all(r["decision"] == "denied" for r in logins)
    assert bob not in srv.settings.audit_path.read_text()


# -- apply exactly what was reviewed: the inventory snapshot ----------------------------------------


def test_the_inventory_snapshot_covers_vars_beside_the_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "inventory"
    inv.mkdir()
    hosts = inv / "hosts.ini"
    hosts.write_text("[targets]\nweb1\n")
    first = inventory_snapshot(hosts)
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "web1.yml").write_text("ansible_host: 203.0.113.9\n")
    second = inventory_snapshot(hosts)
    assert second != first, "a new host_vars file did not change the snapshot"
    (inv / "group_vars").mkdir()
    (inv / "group_vars" / "all.yml").write_text("ansible_become: true\n")
    third = inventory_snapshot(hosts)
    assert third != second
    # A symlinked vars file is followed: swapping its target changes the snapshot.
    target_a, target_b = tmp_path / "a.yml", tmp_path / "b.yml"
    target_a.write_text("ansible_user: deploy\n")
    target_b.write_text("ansible_user: root\n")
    link = inv / "group_vars" / "targets.yml"
    link.symlink_to(target_a)
    with_a = inventory_snapshot(hosts)
    link.unlink()
    link.symlink_to(target_b)
    assert inventory_snapshot(hosts) != with_a
    # Files that are not beside the inventory's vars dirs are not part of it.
    (inv / "README.md").write_text("notes")
    assert inventory_snapshot(hosts) == inventory_snapshot(hosts)


def test_an_inventory_directory_snapshot_covers_nested_vars_and_linked_dirs(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all: {hosts: {web1: {}}}\n")
    shared = tmp_path / "shared_host_vars"
    shared.mkdir()
    (shared / "web1.yml").write_text("ansible_port: 22\n")
    (inv / "host_vars").symlink_to(shared, target_is_directory=True)
    before = inventory_snapshot(inv)
    (shared / "web1.yml").write_text("ansible_port: 2222\n")
    assert inventory_snapshot(inv) != before
