"""The review page in a real browser (Chromium driven by Playwright): sign in, read, decide.

What a reviewer does: paste a token, find the plan waiting for a decision, read
its diff, approve it with a comment; the requester sees the plan but cannot
approve it; hostile text in a diff stays text (no script runs: the page has a
CSP without scripts and autoescaping). Chromium comes from the distribution
(`make test` installs it); under CI=true a missing browser fails the test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from tailops.changes import plans
from tailops.config import load_config
from tailops.principal import Principal
from tests.servers import RunningServer, http_server
from tests.testbed.seed import seed_plan, seed_run

ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-alice-plan")
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"{CHROMIUM} is missing: make test installs it (scripts/testbed/setup-host.sh).", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = load_config(None, server={"data_dir": tmp_path / "data"})
    with http_server(settings) as srv:
        yield srv


def signed_in(browser: Browser, srv: RunningServer, subject: str, scopes: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(f"{srv.base_url}/review/")
    expect(page).to_have_url(f"{srv.base_url}/review/login")
    page.fill("#token", srv.mint(subject, scopes))
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{srv.base_url}/review/")
    expect(page.locator("header .who")).to_contain_text(subject)
    return page


def test_reviewer_reads_the_diff_and_approves(browser: Browser, server: RunningServer) -> None:
    plan = seed_plan(server.settings.db_path, ALICE, message="motd")
    page = signed_in(browser, server, "bob", "readonly changes:approve")
    page.click(f"a[href='/review/plans/{plan.id}']")
    expect(page.locator("#plan-status")).to_have_text("pending")
    expect(page.locator("pre.diff .add")).to_have_text("+hello")
    expect(page.locator("text=not simulated")).to_be_visible()
    page.fill("#comment", "checked the marker text")
    page.click("#approve-form button")
    expect(page.locator("#plan-status")).to_have_text("approved")
    expect(page.locator("[role=status]")).to_contain_text("Approved.")
    expect(page.locator("ul.decisions")).to_contain_text("approved by bob")
    expect(page.locator("#approve-form")).to_have_count(0)
    live = plans.live_approval(server.runtime.store, plan.id)
    assert live is not None and live.approver_subject == "bob" and live.comment == "checked the marker text"


def test_requester_cannot_approve_own_plan(browser: Browser, server: RunningServer) -> None:
    plan = seed_plan(server.settings.db_path, ALICE)
    page = signed_in(browser, server, "alice", "readonly changes:approve")
    page.goto(f"{server.base_url}/review/plans/{plan.id}")
    expect(page.locator("#own-plan")).to_be_visible()
    expect(page.locator("#approve-form")).to_have_count(0)
    page.fill("#reason", "withdrawn: wrong hosts")
    page.click("#deny-form button")
    expect(page.locator("#plan-status")).to_have_text("denied")
    assert plans.get_plan(server.runtime.store, plan.id).status == "denied"


def test_hostile_diff_text_never_runs(browser: Browser, server: RunningServer) -> None:
    xss = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    plan = seed_plan(server.settings.db_path, ALICE, diff=f"--- a\n+++ b\n@@ -1 +1 @@\n+{xss}\n", task_msg=xss)
    page = signed_in(browser, server, "bob", "readonly changes:approve")
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"{server.base_url}/review/plans/{plan.id}")
    expect(page.locator("pre.diff .add")).to_have_text(f"+{xss}")
    assert page.evaluate("document.querySelectorAll('script, img').length") == 0
    assert page.evaluate("window.pwned === undefined")
    assert dialogs == []


def test_sign_out_ends_the_session(browser: Browser, server: RunningServer) -> None:
    page = signed_in(browser, server, "bob", "readonly")
    expect(page.locator("header .badge")).to_have_text("read only")
    page.click("header button.link")
    expect(page).to_have_url(f"{server.base_url}/review/login?done=logged-out")
    page.goto(f"{server.base_url}/review/")
    expect(page).to_have_url(f"{server.base_url}/review/login")


def test_a_running_run_page_follows_the_run_to_its_end(browser: Browser, server: RunningServer) -> None:
    """The page has no scripts; its meta refresh alone brings the end of the run to an
    open tab (CSP allows it), and the refreshing stops once the run is over."""
    plan = seed_plan(server.settings.db_path, ALICE, message="watch")
    bob = Principal("bob", frozenset({"changes:approve", "readonly"}), "http", token_id="jti-bob")
    run = seed_run(server.settings.db_path, plan, bob, [])
    page = signed_in(browser, server, "carol", "readonly")
    page.goto(f"{server.base_url}/review/plans/{plan.id}")
    page.click(f"a[href='/review/runs/{run.id}']")
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator("#live")).to_be_visible()
    plans.finish_run(server.runtime.store, run.id, status="succeeded", reason=None)
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=10_000)
    expect(page.locator("#live")).to_have_count(0)
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
