"""The change lifecycle end to end: plan → approve → apply, over MCP, on real hosts.

Everything is real: the tailops HTTP server, the MCP SDK client with two
different tokens (requester ``alice`` with ``system:admin readonly``, approver
``bob`` with ``changes:approve readonly``), ansible-runner, three container
hosts whose only apt source is the offline test repository, SQLite and the
audit log. The catalog is a temporary, locked copy of the repository's
``package_install`` plus the test-only ``tb_marker`` playbook
(tests/fixtures/catalog_extra: writes /etc/tailops-tb-marker, optionally
pauses — a run slow enough to cancel or to kill the server under).

Hosts are shared by the module (tests use distinct packages/messages, so the
order does not matter); each test has its own data dir and server.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import psutil
import pytest
import yaml
from mcp import Client
from mcp.types import TextContent
from typer.testing import CliRunner

from tailops.auth.tokens import generate_keypair
from tailops.changes import plans
from tailops.changes.catalog import Catalog
from tailops.cli.main import app as cli_app
from tailops.config import Settings, load_config
from tailops.store import Store
from tests.helpers import REPO_ROOT
from tests.netfixtures import free_port
from tests.servers import RunningServer, http_server, mcp_http_client, mint_for, serve_process
from tests.testbed.aptrepo import AptRepo
from tests.testbed.hosts import HostFactory, HostSet

pytestmark = pytest.mark.docker

EXTRA = REPO_ROOT / "tests" / "fixtures" / "catalog_extra"
INSTALL = "Install packages (apt)"
MARKER = "Write the marker file"
ALICE = "system:admin readonly"
BOB = "changes:approve readonly"
cli = CliRunner()


# --------------------------------------------------------------------------- fixtures
def make_catalog(dest: Path, *, with_packages: bool = True) -> tuple[Path, Path]:
    """A locked catalog copy: package_install (+ its roles) and the test-only tb_marker."""
    playbooks, roles = dest / "playbooks", dest / "roles"
    playbooks.mkdir(parents=True)
    roles.mkdir()
    if with_packages:
        shutil.copytree(REPO_ROOT / "playbooks" / "package_install", playbooks / "package_install")
        for role in ("package_common", "package_install"):
            shutil.copytree(REPO_ROOT / "roles" / role, roles / role, ignore=shutil.ignore_patterns("molecule"))
    shutil.copytree(EXTRA / "playbooks" / "tb_marker", playbooks / "tb_marker")
    shutil.copytree(EXTRA / "roles" / "tb_marker", roles / "tb_marker")
    Catalog.load(playbooks, roles).lock()
    return playbooks, roles


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_catalog(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="module")
def bed(
    docker_client: Any,
    base_image: str,
    test_labels: dict[str, str],
    apt_repo: AptRepo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HostSet]:
    """3 docker-connection hosts with tbdemo 1.0-1 installed."""
    factory = HostFactory(docker_client, test_labels, tmp_path_factory.mktemp("lifecycle-bed"))
    try:
        yield factory.make(3, apt_repo=apt_repo, preinstall={"tbdemo": "1.0-1"})
    finally:
        factory.cleanup()


@pytest.fixture
def settings_for(
    make_settings: Callable[..., Settings], catalog: tuple[Path, Path], bed: HostSet
) -> Callable[..., Settings]:
    def make(**changes: Any) -> Settings:
        base = {"playbooks_dir": str(catalog[0]), "roles_dir": str(catalog[1]), "inventory": str(bed.inventory)}
        server = changes.pop("server", {})
        return make_settings(changes={**base, **changes}, server=server)

    return make


@dataclass
class Session:
    srv: RunningServer
    alice: Client
    bob: Client

    @property
    def store(self) -> Store:
        return self.srv.runtime.store


@contextlib.asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[Session]:
    with http_server(settings) as srv:
        async with (
            mcp_http_client(srv.url, srv.mint("alice", ALICE)) as alice,
            mcp_http_client(srv.url, srv.mint("bob", BOB)) as bob,
        ):
            yield Session(srv, alice, bob)


# --------------------------------------------------------------------------- helpers
async def call(client: Client, name: str, args: dict[str, Any], **kw: Any) -> tuple[bool, dict[str, Any], str]:
    with anyio.fail_after(240):
        result = await client.call_tool(name, args, **kw)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return bool(result.is_error), dict(result.structured_content or {}), block.text


async def ok(client: Client, name: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
    is_error, data, text = await call(client, name, args, **kw)
    assert not is_error, f"{name}: {text}"
    return data


async def refused(client: Client, name: str, args: dict[str, Any], code: str) -> str:
    is_error, _data, text = await call(client, name, args)
    assert is_error and text.startswith(f"{code}:"), f"{name}: {text}"
    return text


def installed(bed: HostSet, host: str, package: str) -> str:
    _rc, text = bed.exec(host, f"dpkg-query -W -f '${{db:Status-Abbrev}}${{Version}}' {package} 2>/dev/null")
    return text[3:].strip() if text.startswith("ii ") else ""


def marker(bed: HostSet, host: str) -> str:
    _rc, text = bed.exec(host, "cat /etc/tailops-tb-marker 2>/dev/null || true")
    return text.strip()


def audit(settings: Settings) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in settings.audit_path.read_text().splitlines()]


def tool_records(settings: Settings, tool: str) -> list[dict[str, Any]]:
    return [r for r in audit(settings) if r.get("kind") == "tool" and r.get("tool") == tool and r["phase"] == "end"]


def write_cli_config(settings: Settings, path: Path) -> Path:
    changes = settings.changes
    data = {
        "server": {"data_dir": str(settings.server.data_dir)},
        "changes": {
            "playbooks_dir": str(changes.playbooks_dir),
            "roles_dir": str(changes.roles_dir),
            "inventory": str(changes.inventory),
        },
    }
    path.write_text(yaml.safe_dump(data))
    return path


async def run_cli(*args: str) -> Any:
    """The real CLI in a worker thread (it runs its own event loop for `apply`)."""
    return await anyio.to_thread.run_sync(lambda: cli.invoke(cli_app, ["plans", *args]))


def ansible_left(root: Path) -> list[str]:
    """ansible processes of runs under ``root`` still alive (bounded wait for them to go)."""
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                env_dir = proc.environ().get("AWX_ISOLATED_DATA_DIR", "")
                if env_dir.startswith(str(root)) and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{proc.pid} {' '.join(proc.info.get('cmdline') or [])}")
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.1)


# --------------------------------------------------------------------------- the lifecycle
async def test_plan_approve_apply_on_three_hosts(settings_for: Callable[..., Settings], bed: HostSet) -> None:
    settings = settings_for()
    hosts = bed.names
    params = {"packages": [{"name": "tbdemo", "version": "1.1-1"}, {"name": "tbtool"}]}
    before = {h: installed(bed, h, "tbdemo") for h in hosts}
    async with session(settings) as s:
        started = time.perf_counter()
        plan = await ok(s.alice, "plan_change", {"playbook": "package_install", "params": params})
        plan_s = time.perf_counter() - started
        plan_id = plan["plan_id"]
        assert plan["status"] == "pending", plan
        assert plan["requested_by"] == "alice" and plan["risk"] == "high" and plan["scope"] == "system:admin"
        assert plan["hosts_total"] == 3 and plan["hosts_changing"] == 3
        for host in plan["hosts"]:
            assert host["changed_tasks"] == [INSTALL]
            [task] = [t for t in host["tasks"] if t["task"] == INSTALL]
            assert f"tbdemo ({before[host['host']]} => 1.1-1)" in task["diff"]
            assert "tbtool" in task["diff"]
        assert {h: installed(bed, h, "tbdemo") for h in hosts} == before  # a plan changes nothing

        # Not approved yet: refused; the requester cannot approve, not even with another token.
        text = await refused(s.alice, "apply_plan", {"plan_id": plan_id}, "approval_error")
        assert "has not been approved" in text
        async with mcp_http_client(s.srv.url, s.srv.mint("alice", f"{ALICE} changes:approve")) as alice2:
            text = await refused(alice2, "approve_plan", {"plan_id": plan_id}, "permission_denied")
            assert "is the requester" in text and "someone else" in text

        approved = await ok(s.bob, "approve_plan", {"plan_id": plan_id, "comment": "tbdemo 1.1 is fine"})
        assert approved["status"] == "approved"
        [decision] = approved["approvals"]
        assert decision["by"] == "bob" and decision["comment"] == "tbdemo 1.1 is fine" and not decision["by_policy"]

        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        started = time.perf_counter()
        run = await ok(s.alice, "apply_plan", {"plan_id": plan_id}, progress_callback=on_progress)
        apply_s = time.perf_counter() - started
        print(f"\nlifecycle timings on 3 hosts: plan {plan_s:.1f} s, apply (re-check + run) {apply_s:.1f} s")
        assert run["status"] == "succeeded", run
        assert run["mismatches"] == []
        outcome = {h["host"]: (h["planned"], h["actual"]) for h in run["hosts"]}
        assert outcome == {h: ([INSTALL], [INSTALL]) for h in hosts}
        for host in hosts:
            assert installed(bed, host, "tbdemo") == "1.1-1" and installed(bed, host, "tbtool") == "1.1-1"

        # Progress notifications arrived while it ran, one per task result, counting up.
        assert len(progress) >= 3 * 5
        assert [p[0] for p in progress] == sorted(p[0] for p in progress)
        assert any(f"{hosts[0]}: {INSTALL}: changed" in (p[2] or "") for p in progress)

        # Single use: a second apply is refused and nothing runs.
        text = await refused(s.alice, "apply_plan", {"plan_id": plan_id}, "approval_error")
        assert "already applied" in text

        # Stored rows carry the ids; get_run shows the stored events.
        stored = plans.get_plan(s.store, plan_id)
        assert stored.status == "applied" and run["run_id"] in (stored.status_reason or "")
        row = plans.get_run(s.store, run["run_id"])
        assert row.plan_id == plan_id and row.status == "succeeded" and row.requester_subject == "alice"
        assert row.instance_id == s.srv.runtime.instance_id
        [approval] = plans.approvals_for(s.store, plan_id)
        assert approval.used_by_run == run["run_id"] and approval.approver_subject == "bob"
        shown = await ok(s.bob, "get_run", {"run_id": run["run_id"], "events_limit": 1000})
        results = [e for e in shown["events"] if e["kind"] == "task_result"]
        assert {(e["host"], e["task"]) for e in results if e["changed"]} == {(h, INSTALL) for h in hosts}
        assert shown["events_total"] == row.event_count > len(results)

    records = {name: tool_records(settings, name) for name in ("plan_change", "approve_plan", "apply_plan")}
    assert [r["plan_id"] for r in records["plan_change"]] == [plan_id]
    # The requester's own approval was refused inside the tool body: audited as denied, not as an error.
    assert [(r["principal"]["sub"], r["decision"], r["outcome"], r["plan_id"]) for r in records["approve_plan"]] == [
        ("alice", "denied", "denied", plan_id),
        ("bob", "allowed", "ok", plan_id),
    ]
    assert records["approve_plan"][1]["approval_id"] == approval.id
    applied = [r for r in records["apply_plan"] if r["outcome"] == "ok"]
    assert [(r["plan_id"], r["run_id"]) for r in applied] == [(plan_id, run["run_id"])]


async def test_stale_plan_is_refused_with_the_difference(settings_for: Callable[..., Settings], bed: HostSet) -> None:
    settings = settings_for()
    first, *others = bed.names
    params = {"packages": [{"name": "tbdemo", "version": "2.0-1"}]}
    async with session(settings) as s:
        plan = await ok(s.alice, "plan_change", {"playbook": "package_install", "params": params})
        assert plan["status"] == "pending" and plan["hosts_changing"] == 3
        await ok(s.bob, "approve_plan", {"plan_id": plan["plan_id"]})
        # Someone changes a host behind the plan's back.
        rc, out = bed.exec(
            first, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades tbdemo=2.0-1"
        )
        assert rc == 0, out
        before = {h: installed(bed, h, "tbdemo") for h in others}
        text = await refused(s.alice, "apply_plan", {"plan_id": plan["plan_id"]}, "stale_plan")
        assert re.search(
            rf"host {first}, task {re.escape(INSTALL)}: planned 'tbdemo \([^)]+ => 2\.0-1\)', now: no change", text
        ), text
        assert "nothing was applied" in text
        assert {h: installed(bed, h, "tbdemo") for h in others} == before  # nothing applied elsewhere
        assert plans.get_plan(s.store, plan["plan_id"]).status == "stale"
        assert plans.list_runs(s.store, plan_id=plan["plan_id"])[1] == 0
        text = await refused(s.alice, "apply_plan", {"plan_id": plan["plan_id"]}, "approval_error")
        assert "stale" in text


async def test_catalog_drift_after_planning_is_refused(
    make_settings: Callable[..., Settings], bed: HostSet, tmp_path: Path
) -> None:
    playbooks, roles = make_catalog(tmp_path / "catalog", with_packages=False)
    settings = make_settings(
        changes={"playbooks_dir": str(playbooks), "roles_dir": str(roles), "inventory": str(bed.inventory)}
    )
    host = bed.names[0]
    async with session(settings) as s:
        plan = await ok(
            s.alice, "plan_change", {"playbook": "tb_marker", "params": {"message": "drift"}, "limit": host}
        )
        assert plan["hosts_total"] == 1 and plan["status"] == "pending"
        await ok(s.bob, "approve_plan", {"plan_id": plan["plan_id"]})
        tasks = roles / "tb_marker" / "tasks" / "main.yml"
        tasks.write_text(tasks.read_text() + "# an unreviewed edit\n")
        text = await refused(s.alice, "apply_plan", {"plan_id": plan["plan_id"]}, "catalog_error")
        assert "no longer matches its lock" in text and "content changed" in text
        assert marker(bed, host) != "drift"
        assert plans.list_runs(s.store, plan_id=plan["plan_id"])[1] == 0
        # A new plan of the drifted playbook is refused before anything runs.
        args = {"playbook": "tb_marker", "params": {"message": "x"}}
        text = await refused(s.alice, "plan_change", args, "catalog_error")
        assert "version bump" in text


async def test_expired_plan_can_be_neither_approved_nor_applied(
    settings_for: Callable[..., Settings], bed: HostSet
) -> None:
    settings = settings_for(plan_ttl="3s")
    host = bed.names[1]
    async with session(settings) as s:
        plan = await ok(s.alice, "plan_change", {"playbook": "tb_marker", "params": {"message": "late"}, "limit": host})
        plan_id = plan["plan_id"]
        approved = await ok(s.bob, "approve_plan", {"plan_id": plan_id})
        # The approval never outlives the plan.
        assert approved["approvals"][0]["expires_at"] <= approved["expires_at"]
        await wait_for(lambda: plans.get_plan(s.store, plan_id).status == "expired", "the plan to expire", 15)
        text = await refused(s.alice, "apply_plan", {"plan_id": plan_id}, "change_error")
        assert "expired at" in text and "Plan the change again" in text
        text = await refused(s.bob, "approve_plan", {"plan_id": plan_id}, "approval_error")
        assert "expired" in text
        listed = await ok(s.bob, "list_plans", {"status": "expired"})
        assert [p["plan_id"] for p in listed["plans"]] == [plan_id]
        assert marker(bed, host) != "late"


async def test_blocked_plans_cli_approval_and_apply(
    settings_for: Callable[..., Settings], bed: HostSet, tmp_path: Path
) -> None:
    # An inventory with one host that cannot be reached (a container that does not exist).
    gone = "gone-host"
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        bed.inventory.read_text().replace(
            "[docker_hosts]\n",
            f"[docker_hosts]\n{gone} ansible_connection=community.docker.docker ansible_host=tailops-test-no-such\n",
        )
    )
    settings = settings_for(inventory=str(inventory))
    cfg = write_cli_config(settings, tmp_path / "cli.yaml")
    async with session(settings) as s:
        unknown = await ok(
            s.alice,
            "plan_change",
            {"playbook": "package_install", "params": {"packages": [{"name": "tbnosuch"}]}, "limit": f"all:!{gone}"},
        )
        assert unknown["status"] == "blocked"
        for host in bed.names:
            assert f"host {host} failed at task 'Look the packages up'" in unknown["status_reason"]
        assert "unknown package(s): tbnosuch" in unknown["status_reason"]
        text = await refused(s.bob, "approve_plan", {"plan_id": unknown["plan_id"]}, "approval_error")
        assert "is blocked" in text

        params = {"message": "cli apply"}
        blocked = await ok(s.alice, "plan_change", {"playbook": "tb_marker", "params": params})
        assert blocked["status"] == "blocked" and f"host {gone} unreachable" in blocked["status_reason"]
        # The same open plan again is the same plan.
        again = await ok(s.alice, "plan_change", {"playbook": "tb_marker", "params": params})
        assert again["plan_id"] == blocked["plan_id"] and again["reused"]
        plan = await ok(s.alice, "plan_change", {"playbook": "tb_marker", "params": params, "limit": f"all:!{gone}"})
        assert plan["status"] == "pending" and plan["hosts_total"] == 3
        short = plan["plan_id"][:10]

        shown = await run_cli("show", short, "--config", str(cfg))
        assert shown.exit_code == 0, shown.output
        assert "+cli apply" in shown.output and MARKER in shown.output and "not simulated" in shown.output

        approved = await run_cli("approve", short, "--comment", "ok from the shell", "--config", str(cfg))
        assert approved.exit_code == 0, approved.output
        assert plans.get_plan(s.store, plan["plan_id"]).status == "approved"
        [decision] = plans.approvals_for(s.store, plan["plan_id"])
        assert decision.approver["transport"] == "cli" and decision.comment == "ok from the shell"

        applied = await run_cli("apply", short, "--config", str(cfg))
        assert applied.exit_code == 0, applied.output
        assert re.search(rf"\[\s*\d+/\d+\] {bed.names[0]}  {MARKER}  changed \(changed\)", applied.output)
        assert "succeeded" in applied.output
        for host in bed.names:
            assert marker(bed, host) == "cli apply"
        [run] = plans.list_runs(s.store, plan_id=plan["plan_id"])[0]
        assert run.status == "succeeded" and run.requester["transport"] == "cli"
    cli_records = [r for r in audit(settings) if r.get("kind") == "cli"]
    assert [(r["command"], r.get("phase"), r["outcome"]) for r in cli_records] == [
        ("plans approve", None, "ok"),
        ("plans apply", "start", "ok"),
        ("plans apply", None, "ok"),
    ]
    assert cli_records[-1]["run_id"] == run.id and cli_records[0]["plan_id"] == plan["plan_id"]


async def test_low_risk_auto_policy_approves_at_plan_time(settings_for: Callable[..., Settings], bed: HostSet) -> None:
    settings = settings_for(approval={"low": "auto"})
    host = bed.names[2]
    async with session(settings) as s:
        plan = await ok(s.alice, "plan_change", {"playbook": "tb_marker", "params": {"message": "auto"}, "limit": host})
        assert plan["status"] == "approved" and plan["risk"] == "low"
        [decision] = plan["approvals"]
        assert decision["by_policy"] and decision["transport"] == "policy"
        assert "changes.approval.low" in decision["by"]
        run = await ok(s.alice, "apply_plan", {"plan_id": plan["plan_id"]})
        assert run["status"] == "succeeded" and marker(bed, host) == "auto"
    [record] = tool_records(settings, "plan_change")
    assert record["approved_by_policy"] is True and record["plan_id"] == plan["plan_id"]


async def test_approved_on_the_review_page_then_applied(settings_for: Callable[..., Settings], bed: HostSet) -> None:
    """The page's approval is a real approval: the executor accepts it and the change lands."""
    settings = settings_for()
    host = bed.names[1]
    async with session(settings) as s:
        plan = await ok(
            s.alice, "plan_change", {"playbook": "tb_marker", "params": {"message": "reviewed"}, "limit": host}
        )
        plan_id = plan["plan_id"]
        assert plan["status"] == "pending"
        base = s.srv.base_url
        async with httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=30) as web:
            signed = await web.post("/review/login", data={"token": s.srv.mint("bob", BOB)}, headers={"Origin": base})
            assert signed.status_code == 303
            page = await web.get(f"/review/plans/{plan_id}")
            assert page.status_code == 200 and host in page.text and "+reviewed" in page.text
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
            assert csrf is not None
            decided = await web.post(
                f"/review/plans/{plan_id}/approve",
                data={"csrf": csrf.group(1), "comment": "marker text checked"},
                headers={"Origin": base},
            )
            assert decided.status_code == 303, decided.text
        run = await ok(s.alice, "apply_plan", {"plan_id": plan_id})
        assert run["status"] == "succeeded" and marker(bed, host) == "reviewed"
        [approval] = plans.approvals_for(s.store, plan_id)
        assert approval.approver_subject == "bob" and approval.used_by_run == run["run_id"]
    [record] = [r for r in audit(settings) if r.get("event") == "review:approve"]
    assert record["outcome"] == "ok" and record["plan_id"] == plan_id and record["approval_id"] == approval.id


async def test_read_only_server_hides_every_change_tool(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(server={"read_only": True})
    with http_server(settings) as srv:
        async with mcp_http_client(srv.url, srv.mint("alice", "admin")) as client:
            names = {t.name for t in (await client.list_tools()).tools}
    hidden = {
        "plan_change",
        "approve_plan",
        "deny_plan",
        "apply_plan",
        "cancel_run",
        "check_system_updates",
        "update_system_packages",
        "install_package",
        "update_docker_container",
        "pull_docker_image",
        "manage_container",
    }
    assert not names & hidden
    assert {"list_playbooks", "get_plan", "list_plans", "get_run"} <= names


async def test_playbook_scope_is_checked_before_any_work(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for()
    with http_server(settings) as srv:
        async with mcp_http_client(srv.url, srv.mint("carol", "readonly container:write")) as carol:
            args = {"playbook": "package_install", "params": {"packages": [{"name": "tbdemo"}]}}
            text = await refused(carol, "plan_change", args, "permission_denied")
            assert "needs scope 'system:admin'" in text
            text = await refused(carol, "install_package", {"name": "tbdemo"}, "permission_denied")
            assert "system:admin" in text
            text = await refused(carol, "plan_change", {"playbook": "no_such", "params": {}}, "not_found")
            assert "no playbook named 'no_such'" in text
        assert plans.list_plans(srv.runtime.store)[1] == 0
        assert not settings.artifacts_dir.exists() or not any(settings.artifacts_dir.iterdir())
    denied = [r for r in audit(settings) if r.get("kind") == "tool" and r["decision"] == "denied"]
    assert [(r["tool"], r["outcome"]) for r in denied] == [("plan_change", "denied"), ("install_package", "denied")]
    # Refused before the body: no "start" record was written for them.
    assert not [r for r in audit(settings) if r.get("phase") == "start"]


# --------------------------------------------------------------------------- cancel and crash
async def test_cancel_mid_apply_four_ways(settings_for: Callable[..., Settings], bed: HostSet, tmp_path: Path) -> None:
    settings = settings_for()
    cfg = write_cli_config(settings, tmp_path / "cli.yaml")
    host = bed.names[0]
    async with session(settings) as s:

        async def slow_apply(how: str) -> None:
            plan = await ok(
                s.alice,
                "plan_change",
                {"playbook": "tb_marker", "params": {"message": f"cancel {how}", "wait_seconds": 300}, "limit": host},
            )
            wait_task = [t for t in plan["hosts"][0]["tasks"] if t["task"] == "Wait before finishing"]
            assert wait_task and wait_task[0]["not_simulated"]
            await ok(s.bob, "approve_plan", {"plan_id": plan["plan_id"]})
            wrote = anyio.Event()
            outcome: dict[str, Any] = {}

            async def on_progress(_done: float, _total: float | None, message: str | None) -> None:
                if MARKER in (message or ""):
                    wrote.set()

            async def apply() -> None:
                outcome["result"] = await call(
                    s.alice, "apply_plan", {"plan_id": plan["plan_id"]}, progress_callback=on_progress
                )

            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(apply)
                with anyio.fail_after(120):
                    await wrote.wait()
                [run] = plans.list_runs(s.store, plan_id=plan["plan_id"])[0]
                assert run.status == "running"
                cancel_at = time.monotonic()
                if how == "tool":
                    view = await ok(s.alice, "cancel_run", {"run_id": run.id})
                    assert view["cancel_requested_by"].startswith("alice")
                elif how == "cli":
                    result = await run_cli("cancel", run.id[:10], "--config", str(cfg))
                    assert result.exit_code == 0, result.output
                elif how == "page":
                    base = s.srv.base_url
                    async with httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=30) as web:
                        signed = await web.post(
                            "/review/login", data={"token": s.srv.mint("alice", ALICE)}, headers={"Origin": base}
                        )
                        assert signed.status_code == 303
                        page = await web.get(f"/review/runs/{run.id}")
                        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
                        assert csrf is not None and 'id="cancel-form"' in page.text
                        done = await web.post(
                            f"/review/runs/{run.id}/cancel", data={"csrf": csrf.group(1)}, headers={"Origin": base}
                        )
                        assert done.status_code == 303, done.text
                else:
                    tg.cancel_scope.cancel()  # the client abandons the request
            await wait_for(lambda: plans.get_run(s.store, run.id).status != "running", f"the run to stop ({how})", 60)
            final = plans.get_run(s.store, run.id)
            assert final.status == "canceled", final
            # Stopped soon after the cancel, and long before the 300 s pause could have ended
            # (planning and the re-check before it take a while on a loaded machine).
            assert time.monotonic() - cancel_at < 60
            assert time.monotonic() - started < 300
            if how != "client":
                is_error, data, text = outcome["result"]
                assert not is_error and data["status"] == "canceled", text
            assert marker(bed, host) == f"cancel {how}"  # the first task ran, the pause did not finish
            assert ansible_left(settings.artifacts_dir) == []

        for how in ("tool", "cli", "page", "client"):
            await slow_apply(how)


async def raw_mcp_session(http: httpx.AsyncClient, url: str, token: str) -> dict[str, str]:
    """Headers of an initialized MCP session made by hand (to drop its connection at will)."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    r = await http.post(url, json=init, headers=headers)
    assert r.status_code == 200, r.text
    headers |= {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    r = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert r.status_code == 202, r.text
    return headers


async def test_a_dropped_connection_does_not_stop_an_apply(settings_for: Callable[..., Settings], bed: HostSet) -> None:
    """A network blip is not a cancel: only an explicit MCP cancel (or cancel_run) stops a
    run. The agent's connection drops while Ansible runs; the run still finishes, is
    recorded, and the agent (or anyone) reads the outcome with get_run."""
    settings = settings_for()
    host = bed.names[2]
    async with session(settings) as s:
        args = {"playbook": "tb_marker", "params": {"message": "dropped", "wait_seconds": 4}, "limit": host}
        plan = await ok(s.alice, "plan_change", args)
        await ok(s.bob, "approve_plan", {"plan_id": plan["plan_id"]})
        async with httpx.AsyncClient(timeout=30) as http:
            headers = await raw_mcp_session(http, s.srv.url, s.srv.mint("alice", ALICE))
            apply = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
            apply["params"] = {
                "name": "apply_plan",
                "arguments": {"plan_id": plan["plan_id"]},
                "_meta": {"progressToken": "apply-1"},
            }
            run_id = None
            async with http.stream("POST", s.srv.url, json=apply, headers=headers) as response:
                assert response.status_code == 200
                with anyio.fail_after(120):
                    async for line in response.aiter_lines():
                        found = re.search(r'"message":"run ([0-9a-f]+) started"', line)
                        if found:
                            run_id = found.group(1)
                            break
            # The response stream is closed here, mid-run, without a cancel notification.
        assert run_id is not None
        run = plans.get_run(s.store, run_id)
        assert run.plan_id == plan["plan_id"] and run.status == "running"
        await wait_for(lambda: plans.get_run(s.store, run.id).status != "running", "the run to finish", 120)
        view = await ok(s.alice, "get_run", {"run_id": run.id})
        assert view["status"] == "succeeded", view
        assert marker(bed, host) == "dropped"
    [record] = tool_records(settings, "apply_plan")
    assert record["outcome"] == "ok" and record["ms"] > 3000


def orphans(root: Path) -> list[psutil.Process]:
    """Live Ansible processes of runs under ``root`` (matched by their run dir, never by name)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("AWX_ISOLATED_DATA_DIR", "").startswith(str(root)) and proc.status() != "zombie":
                found.append(proc)
    return found


def kill_orphans(root: Path) -> None:
    """Test cleanup only (the product does this itself at the next start)."""
    for proc in orphans(root):
        with contextlib.suppress(psutil.Error):
            proc.kill()


async def test_server_killed_mid_apply_leaves_an_interrupted_run(
    catalog: tuple[Path, Path], bed: HostSet, tmp_path: Path
) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "server": {"data_dir": str(data_dir), "port": port, "host": "127.0.0.1", "log_level": "WARNING"},
                "changes": {
                    "playbooks_dir": str(catalog[0]),
                    "roles_dir": str(catalog[1]),
                    "inventory": str(bed.inventory),
                },
            }
        )
    )
    settings = load_config(cfg)
    generate_keypair(settings.private_key_path, settings.public_key_path)
    store = Store(settings.db_path)

    def token(subject: str, scopes: str) -> str:
        return mint_for(settings, subject, scopes, store=store)

    host = bed.names[1]
    log = tmp_path / "serve.log"
    try:
        killed = False
        plan: dict[str, Any] = {}
        with serve_process(cfg, port, log) as first:
            try:
                async with (
                    mcp_http_client(settings.mcp_url, token("alice", ALICE)) as alice,
                    mcp_http_client(settings.mcp_url, token("bob", BOB)) as bob,
                ):
                    plan = await ok(
                        alice,
                        "plan_change",
                        {"playbook": "tb_marker", "params": {"message": "crash", "wait_seconds": 300}, "limit": host},
                    )
                    await ok(bob, "approve_plan", {"plan_id": plan["plan_id"]})

                    def running() -> bool:
                        runs = plans.list_runs(store, plan_id=plan["plan_id"])[0]
                        return bool(runs) and any(
                            e.task == MARKER for e in plans.run_events(store, runs[0].id, kinds=["task_result"])
                        )

                    async with anyio.create_task_group() as tg:

                        async def apply() -> None:
                            with contextlib.suppress(Exception):
                                await alice.call_tool("apply_plan", {"plan_id": plan["plan_id"]})

                        tg.start_soon(apply)
                        await wait_for(running, "the run to be under way", 120)
                        first.send_signal(signal.SIGKILL)
                        killed = True
                        first.wait(timeout=10)
                        tg.cancel_scope.cancel()
            except Exception:  # the SDK client's transport fails once the server is gone
                if not killed:
                    raise
        assert killed
        [run] = plans.list_runs(store, plan_id=plan["plan_id"])[0]
        assert run.status == "running"  # the row was written before ansible started; nobody finished it
        assert orphans(data_dir), "the killed server's ansible-playbook is still running (orphaned)"
        with serve_process(cfg, port, log):
            final = plans.get_run(store, run.id)
            # The restarted server stopped the orphaned ansible processes of the interrupted run.
            assert orphans(data_dir) == []
        assert final.status == "interrupted", final
        assert "crash or kill" in (final.status_reason or "")
        shown = cli.invoke(cli_app, ["plans", "run", run.id[:12], "--config", str(cfg)])
        assert shown.exit_code == 0 and "interrupted" in shown.output
    finally:
        kill_orphans(data_dir)
        store.close()
