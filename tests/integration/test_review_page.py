"""The review page over real HTTP: sessions, CSRF, scopes, escaping, audit.

A real server (uvicorn in a thread, real tokens, real SQLite); plans are stored
through the store API (tests/testbed/seed.py). The browser flow itself is in
test_review_browser.py; here each refusal is checked at the HTTP level, together
with what must NOT have happened (the plan is still pending, nothing approved).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tailops.auth.tokens import revoke_token
from tailops.changes import plans
from tailops.changes.executors.placement import PlacedShard, Placement
from tailops.changes.models import RunEvent
from tailops.changes.plans import HostOutcome, Plan
from tailops.config import load_config
from tailops.principal import Principal
from tests.servers import RunningServer, http_server, mcp_http_client
from tests.testbed.seed import seed_plan, seed_run

ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-alice-plan")
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = load_config(None, server={"data_dir": tmp_path / "data"})
    with http_server(settings) as srv:
        yield srv


def plan_for(srv: RunningServer, **kwargs: Any) -> Plan:
    return seed_plan(srv.settings.db_path, ALICE, **kwargs)


def status_of(srv: RunningServer, plan_id: str) -> str:
    return plans.get_plan(srv.runtime.store, plan_id).status


def audit(srv: RunningServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in srv.settings.audit_path.read_text().splitlines()]


def client(srv: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, follow_redirects=False, timeout=10)


def sign_in(c: httpx.Client, srv: RunningServer, token: str) -> str:
    """Sign in through the form; returns the session cookie value."""
    r = c.post("/review/login", data={"token": token}, headers={"Origin": srv.base_url})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/review/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/review" in cookie
    return c.cookies["tailops_review"]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "page has no CSRF field"
    return m.group(1)


def test_without_a_session_pages_redirect_to_the_login_form(server: RunningServer) -> None:
    plan = plan_for(server)
    with client(server) as c:
        for path in ("/review", "/review/", f"/review/plans/{plan.id}"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] in ("/review/login", "/review/"), path
        form = c.get("/review/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        assert c.get("/review/static/review.css").headers["content-type"].startswith("text/css")
        # A POST without a session never reaches the decision.
        r = c.post(f"/review/plans/{plan.id}/approve", headers={"Origin": server.base_url})
        assert r.status_code == 303 and r.headers["location"] == "/review/login"
    assert status_of(server, plan.id) == "pending"


def test_login_refuses_bad_tokens_and_audits_it(server: RunningServer) -> None:
    with client(server) as c:
        for bad in ("not-a-token", server.mint("eve", "readonly") + "x"):
            r = c.post("/review/login", data={"token": bad}, headers={"Origin": server.base_url})
            assert r.status_code == 401 and "set-cookie" not in r.headers
            assert "Sign in" in r.text and bad not in r.text
    records = [e for e in audit(server) if e.get("event") == "review:login"]
    assert len(records) == 2 and all(e["outcome"] == "denied" and e["decision"] == "denied" for e in records)
    assert "not-a-token" not in server.settings.audit_path.read_text()


def test_pages_carry_the_security_headers(server: RunningServer) -> None:
    plan = plan_for(server)
    with client(server) as c:
        sign_in(c, server, server.mint("bob", "readonly changes:approve"))
        for path in ("/review/", f"/review/plans/{plan.id}", "/review/login"):
            r = c.get(path)
            assert r.status_code == 200, path
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
            assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_plan_page_shows_the_plan_and_escapes_everything(server: RunningServer) -> None:
    diff = f"--- before\n+++ /etc/motd\n@@ -1 +1 @@\n-old {XSS}\n+new {XSS}\n"
    plan = plan_for(server, diff=diff, task_msg=XSS, message=XSS)
    with client(server) as c:
        sign_in(c, server, server.mint("bob", "readonly changes:approve"))
        html = c.get(f"/review/plans/{plan.id}").text
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert '<span class="del">-old &lt;script&gt;' in html and '<span class="add">+new &lt;script&gt;' in html
    assert plan.id in html and "Write the marker file" in html and "not simulated" in html
    assert 'id="approve-form"' in html and 'id="deny-form"' in html


def test_plan_page_and_get_plan_show_where_each_host_runs(server: RunningServer) -> None:
    placement = Placement(
        shard_digest="d" * 64,
        shards=[PlacedShard(node="dc2", hosts=["web1"], bundle_sha256="e" * 64)],
    )
    plan = plan_for(server, placement=placement)
    here = plan_for(server, message="here")
    # 6,000 hosts over two nodes: the view lists a capped number per node and counts the rest.
    big_hosts = [f"host-{i:05d}" for i in range(6000)]
    big = plan_for(
        server,
        message="big",
        placement=Placement(
            shard_digest="b" * 64,
            shards=[
                PlacedShard(node="dc2", hosts=big_hosts[:4000], bundle_sha256="e" * 64),
                PlacedShard(node="dc3", hosts=big_hosts[4000:], bundle_sha256="f" * 64),
            ],
        ),
    )
    with client(server) as c:
        sign_in(c, server, server.mint("bob", "readonly changes:approve"))
        html = c.get(f"/review/plans/{plan.id}").text
        plain = c.get(f"/review/plans/{here.id}").text
    assert 'id="placement"' in html and "node <strong>dc2</strong>: web1" in html
    assert f'<code title="{"e" * 64}">{"e" * 12}</code>' in html
    assert 'id="placement"' not in plain

    async def view() -> list[dict[str, Any]]:
        views = []
        async with mcp_http_client(server.url, server.mint("bob", "readonly")) as mcp:
            for one in (plan, here, big):
                result = await mcp.call_tool("get_plan", {"plan_id": one.id})
                assert not result.is_error and result.structured_content is not None, result.content
                views.append(result.structured_content)
        return views

    placed, local, large = anyio.run(view)
    assert placed["placement"] == {
        "shard_digest": "d" * 64,
        "shards": [{"node": "dc2", "hosts_total": 1, "hosts": ["web1"], "hosts_omitted": 0, "bundle_sha256": "e" * 64}],
    }
    assert local.get("placement") is None
    shards = large["placement"]["shards"]
    assert [(s["node"], s["hosts_total"], len(s["hosts"]), s["hosts_omitted"]) for s in shards] == [
        ("dc2", 4000, 100, 3900),
        ("dc3", 2000, 100, 1900),
    ]
    assert shards[1]["hosts"][0] == "host-04000" and large["placement"]["shard_digest"] == "b" * 64


def test_approve_needs_origin_and_csrf_then_works_once(server: RunningServer) -> None:
    plan = plan_for(server)
    with client(server) as c:
        sign_in(c, server, server.mint("bob", "readonly changes:approve"))
        token = csrf_of(c.get(f"/review/plans/{plan.id}").text)
        url = f"/review/plans/{plan.id}/approve"
        refused = [
            c.post(url, data={"csrf": token}),  # no Origin
            c.post(url, data={"csrf": token}, headers={"Origin": "http://evil.example"}),
            c.post(url, data={}, headers={"Origin": server.base_url}),  # no CSRF field
            c.post(url, data={"csrf": "0" * 40}, headers={"Origin": server.base_url}),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert status_of(server, plan.id) == "pending"

        ok = c.post(url, data={"csrf": token, "comment": "looks right"}, headers={"Origin": server.base_url})
        assert ok.status_code == 303 and ok.headers["location"] == f"/review/plans/{plan.id}?done=approved"
        assert status_of(server, plan.id) == "approved"
        page = c.get(ok.headers["location"]).text
        assert "Approved." in page and "looks right" in page and 'id="approve-form"' not in page

        again = c.post(url, data={"csrf": token}, headers={"Origin": server.base_url})
        assert again.status_code in (403, 409)
    live = plans.live_approval(server.runtime.store, plan.id)
    assert live is not None and live.approver_subject == "bob" and live.comment == "looks right"
    decisions = [e for e in audit(server) if e.get("event") == "review:approve"]
    # The cross-site refusals are audited as denied (nothing decided), then the approval, then
    # the second attempt refused by the approval rules (already approved): denied too. The
    # foreign Origin is refused before the page, by the Host/Origin check: audited there.
    assert [e["outcome"] for e in decisions] == ["denied"] * 3 + ["ok", "denied"]
    assert all("refused: the form" in e["error"] for e in decisions[:3])
    assert decisions[3]["principal"]["sub"] == "bob" and decisions[3]["plan_id"] == plan.id
    (foreign,) = [e for e in audit(server) if e.get("event") == "review:form"]
    assert foreign["decision"] == "denied" and "evil.example" in foreign["error"]


def test_rules_of_the_approvals_module_hold_on_the_page(server: RunningServer) -> None:
    plan = plan_for(server)
    # The requester (same token subject as the plan's) may not approve; a reader may not either.
    for subject, scopes, shown in (("alice", "readonly changes:approve", "own-plan"), ("carol", "readonly", None)):
        with client(server) as c:
            sign_in(c, server, server.mint(subject, scopes))
            html = c.get(f"/review/plans/{plan.id}").text
            assert 'id="approve-form"' not in html
            if shown:
                assert f'id="{shown}"' in html
            r = c.post(
                f"/review/plans/{plan.id}/approve",
                data={"csrf": csrf_of(c.get("/review/").text)},
                headers={"Origin": server.base_url},
            )
            assert r.status_code == 403, r.text
    assert status_of(server, plan.id) == "pending"
    outcomes = [(e["principal"]["sub"], e["decision"]) for e in audit(server) if e.get("event") == "review:approve"]
    assert outcomes == [("alice", "denied"), ("carol", "denied")]


def test_deny_needs_a_reason_and_closes_the_plan(server: RunningServer) -> None:
    plan = plan_for(server)
    with client(server) as c:
        sign_in(c, server, server.mint("bob", "readonly changes:approve"))
        token = csrf_of(c.get(f"/review/plans/{plan.id}").text)
        empty = c.post(f"/review/plans/{plan.id}/deny", data={"csrf": token}, headers={"Origin": server.base_url})
        assert empty.status_code == 400 and "reason" in empty.text
        assert status_of(server, plan.id) == "pending"
        r = c.post(
            f"/review/plans/{plan.id}/deny",
            data={"csrf": token, "reason": "wrong host group"},
            headers={"Origin": server.base_url},
        )
        assert r.status_code == 303
    assert status_of(server, plan.id) == "denied"


def test_a_revoked_token_ends_the_session_on_the_next_click(server: RunningServer) -> None:
    plan = plan_for(server)
    token = server.mint("bob", "readonly changes:approve")
    with client(server) as c:
        sign_in(c, server, token)
        page = c.get(f"/review/plans/{plan.id}")
        assert page.status_code == 200
        csrf = csrf_of(page.text)
        row = server.runtime.store.query_one("SELECT jti FROM tokens WHERE subject = 'bob'", ())
        assert row is not None
        revoke_token(server.runtime.store, str(row["jti"]), by="test")
        r = c.post(f"/review/plans/{plan.id}/approve", data={"csrf": csrf}, headers={"Origin": server.base_url})
        assert r.status_code == 303 and r.headers["location"] == "/review/login?expired=1"
        assert "Max-Age=0" in r.headers["set-cookie"]
    assert status_of(server, plan.id) == "pending"


def test_bad_paths_and_oversized_forms_get_clear_answers(server: RunningServer) -> None:
    plan = plan_for(server)
    with client(server) as c:
        sign_in(c, server, server.mint("bob", "readonly changes:approve"))
        token = csrf_of(c.get("/review/").text)
        assert c.get("/review/plans/" + "f" * 64).status_code == 404
        assert c.get("/review/nothing-here").status_code == 404
        assert c.post(f"/review/plans/{plan.id}/launch", headers={"Origin": server.base_url}).status_code == 404
        huge = c.post(
            f"/review/plans/{plan.id}/approve",
            data={"csrf": token, "comment": "x" * 70_000},
            headers={"Origin": server.base_url},
        )
        assert huge.status_code == 400 and "KiB" in huge.text
        long = c.post(
            f"/review/plans/{plan.id}/approve",
            data={"csrf": token, "comment": "y" * 5000},
            headers={"Origin": server.base_url},
        )
        assert long.status_code == 400
    assert status_of(server, plan.id) == "pending"


def test_the_session_cookie_is_not_a_bearer_token_elsewhere(server: RunningServer) -> None:
    with client(server) as c:
        cookie = sign_in(c, server, server.mint("bob", "readonly changes:approve admin"))
        r = httpx.get(f"{server.base_url}/metrics", cookies={"tailops_review": cookie})
        assert r.status_code == 401
        r = httpx.post(
            server.url, cookies={"tailops_review": cookie}, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
        )
        assert r.status_code == 401


def test_read_only_server_approves_nothing(tmp_path: Path) -> None:
    settings = load_config(None, server={"data_dir": tmp_path / "data", "read_only": True})
    with http_server(settings) as srv:
        plan = plan_for(srv)
        with client(srv) as c:
            sign_in(c, srv, srv.mint("bob", "readonly changes:approve"))
            html = c.get(f"/review/plans/{plan.id}").text
            assert 'id="approve-form"' not in html and "read-only" in html
            r = c.post(
                f"/review/plans/{plan.id}/approve", data={"csrf": csrf_of(html)}, headers={"Origin": srv.base_url}
            )
            assert r.status_code == 400
        assert status_of(srv, plan.id) == "pending"


def test_the_page_can_be_switched_off(tmp_path: Path) -> None:
    settings = load_config(None, server={"data_dir": tmp_path / "data", "review_page": False})
    with http_server(settings) as srv, client(srv) as c:
        token = srv.mint("bob", "readonly changes:approve")
        r = c.get("/review/", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404


BOB = Principal("bob", frozenset({"changes:approve", "readonly"}), "http", token_id="jti-bob-approve")


def _events(msg: str) -> list[RunEvent]:
    return [
        RunEvent(kind="task_result", counter=1, host="web1", task="Write the marker file", status="ok", changed=True),
        RunEvent(kind="task_result", counter=2, host="web1", task="Wait before finishing", status="ok", msg=msg),
    ]


def test_a_running_run_has_a_live_page_linked_from_its_plan(server: RunningServer) -> None:
    plan = plan_for(server)
    run = seed_run(server.settings.db_path, plan, BOB, _events(XSS))
    with client(server) as c:
        sign_in(c, server, server.mint("carol", "readonly"))
        plan_page = c.get(f"/review/plans/{plan.id}")
        assert f'href="/review/runs/{run.id}"' in plan_page.text
        page = c.get(f"/review/runs/{run.id}")
        assert page.status_code == 200
        assert '<meta http-equiv="refresh" content="3">' in page.text
        assert 'id="run-status">running<' in page.text and "reloads every 3 s" in page.text
        assert "Write the marker file" in page.text and "Wait before finishing" in page.text
        assert XSS not in page.text and "&lt;script&gt;" in page.text  # event text is escaped
        assert f'href="/review/plans/{plan.id}"' in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_finished_run_shows_planned_vs_actual_and_stops_reloading(server: RunningServer) -> None:
    plan = plan_for(server)
    outcome = [HostOutcome(host="web1", status="ok", planned=["Write the marker file"], actual=[], mismatches=["x"])]
    mismatch = "web1: planned to change 'Write the marker file', but it did not change"
    run = seed_run(
        server.settings.db_path, plan, BOB, _events("done"), finish=("failed", "failed on web1", outcome, [mismatch])
    )
    with client(server) as c:
        sign_in(c, server, server.mint("carol", "readonly"))
        page = c.get(f"/review/runs/{run.id}")
    assert page.status_code == 200 and 'http-equiv="refresh"' not in page.text
    assert 'id="run-status">failed<' in page.text and "failed on web1" in page.text
    outcome_table = page.text.split('id="outcome"', 1)[1].split("</table>", 1)[0]
    assert "web1" in outcome_table and "Write the marker file" in outcome_table and "none" in outcome_table
    assert "planned to change &#39;Write the marker file&#39;, but it did not change" in page.text


def test_run_page_refusals(server: RunningServer) -> None:
    plan = plan_for(server)
    run = seed_run(server.settings.db_path, plan, BOB, [])
    with client(server) as c:
        sign_in(c, server, server.mint("dave", "file:read"))
        assert c.get(f"/review/runs/{run.id}").status_code == 403
        assert c.get(f"/review/hosts/{'h' * 500}").status_code == 403
    # A page refused for want of a scope leaves a denied record naming who asked for what.
    views = [e for e in audit(server) if e.get("event") in ("review:run", "review:host")]
    assert [(e["event"], e["principal"]["sub"], e["decision"], e["outcome"]) for e in views] == [
        ("review:run", "dave", "denied", "denied"),
        ("review:host", "dave", "denied", "denied"),
    ]
    assert views[0]["args"] == {"run_id": run.id} and "needs the readonly scope" in views[0]["error"]
    assert views[1]["args"] == {"host": "h" * 200}, "a path parameter is capped in the audit record"
    with client(server) as c:
        sign_in(c, server, server.mint("carol", "readonly"))
        bad = c.get("/review/runs/not-a-run-id")
        assert bad.status_code == 400 and "is not a run id" in bad.text
        missing = c.get(f"/review/runs/{'0' * 32}")
        assert missing.status_code == 404 and f"no run {'0' * 32}" in missing.text
        assert "No events yet." in c.get(f"/review/runs/{run.id}").text


def cancel_requested_by(srv: RunningServer, run_id: str) -> str | None:
    return plans.get_run(srv.runtime.store, run_id).cancel_requested_by


def test_cancel_needs_origin_csrf_and_the_playbooks_scope_then_stops_the_run(server: RunningServer) -> None:
    run = seed_run(server.settings.db_path, plan_for(server), BOB, [])
    url = f"/review/runs/{run.id}/cancel"
    with client(server) as c:
        sign_in(c, server, server.mint("carol", "readonly"))
        page = c.get(f"/review/runs/{run.id}")
        assert 'id="cancel-form"' not in page.text  # carol may read the run, not stop it
        refused = c.post(url, data={"csrf": csrf_of(page.text)}, headers={"Origin": server.base_url})
        assert refused.status_code == 403 and "needs scope &#39;system:admin&#39;" in refused.text
    with client(server) as c:
        sign_in(c, server, server.mint("erin", "readonly system:admin"))
        page = c.get(f"/review/runs/{run.id}")
        assert 'id="cancel-form"' in page.text
        token = csrf_of(page.text)
        assert c.post(url, data={"csrf": token}).status_code == 403  # no Origin
        assert c.post(url, data={"csrf": "0" * 64}, headers={"Origin": server.base_url}).status_code == 403
        assert cancel_requested_by(server, run.id) is None
        done = c.post(url, data={"csrf": token}, headers={"Origin": server.base_url})
        assert done.status_code == 303 and done.headers["location"] == f"/review/runs/{run.id}?done=cancel-requested"
        after = c.get(done.headers["location"])
        assert "Cancel requested" in after.text and 'id="cancel-form"' not in after.text
    assert cancel_requested_by(server, run.id) == "erin (review page)"
    cancels = [e for e in audit(server) if e.get("event") == "review:cancel"]
    records = [(e["principal"]["sub"], e["decision"], e["outcome"]) for e in cancels]
    assert records == [("carol", "denied", "denied")] + [("erin", "denied", "denied")] * 2 + [("erin", "allowed", "ok")]


def test_a_finished_run_cannot_be_cancelled(server: RunningServer) -> None:
    run = seed_run(server.settings.db_path, plan_for(server), BOB, [], finish=("succeeded", None, [], []))
    with client(server) as c:
        sign_in(c, server, server.mint("erin", "readonly system:admin"))
        page = c.get(f"/review/runs/{run.id}")
        assert 'id="cancel-form"' not in page.text
        form = {"csrf": csrf_of(page.text)}
        r = c.post(f"/review/runs/{run.id}/cancel", data=form, headers={"Origin": server.base_url})
    assert r.status_code in (400, 409) and "not running" in r.text
    assert cancel_requested_by(server, run.id) is None
