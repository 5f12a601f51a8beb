"""The change engine as a service: executors plug in, the plan is loaded once per apply,
lifecycle audit records, and the catalog cache never vouches for content.

The executor here is the real :class:`LocalExecutor` behind a recording wrapper (what
another executor — a remote node, AWX — sees of the engine); the playbook is the test-only
``tb_marker`` run in CHECK mode against ``localhost`` with the local connection (check
mode writes nothing).
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tailops.audit import AuditLog
from tailops.changes import plans
from tailops.changes.catalog import Catalog
from tailops.changes.engine import ChangeEngine
from tailops.changes.executors import EventSink, Executor, LocalExecutor
from tailops.changes.models import RunMode, RunRequest, RunResult
from tailops.config import Settings
from tailops.errors import CatalogError
from tailops.principal import Principal
from tailops.store import Store
from tests.helpers import REPO_ROOT

EXTRA = REPO_ROOT / "tests" / "fixtures" / "catalog_extra"
ALICE = Principal("alice", frozenset({"system:admin", "readonly"}), "http", token_id="jti-alice")


class RecordingExecutor:
    """Delegates to the local executor and records what the engine asked for."""

    name = "recording"

    def __init__(self, inner: LocalExecutor) -> None:
        self.inner = inner
        self.requests: list[tuple[str, RunRequest]] = []

    async def check(self, request: RunRequest) -> RunResult:
        self.requests.append(("check", request))
        return await self.inner.check(request)

    async def run(
        self, request: RunRequest, *, on_event: EventSink | None = None, cancel: anyio.Event | None = None
    ) -> RunResult:
        self.requests.append(("run", request))
        return await self.inner.run(request, on_event=on_event, cancel=cancel)

    def recover(self, request_ident: str) -> int:
        return self.inner.recover(request_ident)


@pytest.fixture
def catalog_dirs(tmp_path: Path) -> tuple[Path, Path]:
    playbooks, roles = tmp_path / "catalog" / "playbooks", tmp_path / "catalog" / "roles"
    playbooks.mkdir(parents=True)
    roles.mkdir()
    shutil.copytree(EXTRA / "playbooks" / "tb_marker", playbooks / "tb_marker")
    shutil.copytree(EXTRA / "roles" / "tb_marker", roles / "tb_marker")
    Catalog.load(playbooks, roles).lock()
    return playbooks, roles


@pytest.fixture
def engine_parts(
    make_settings: Callable[..., Settings], catalog_dirs: tuple[Path, Path], tmp_path: Path
) -> Iterator[tuple[ChangeEngine, RecordingExecutor, Settings]]:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[targets]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    settings = make_settings(
        changes={"playbooks_dir": str(catalog_dirs[0]), "roles_dir": str(catalog_dirs[1]), "inventory": str(inventory)}
    )
    store = Store(settings.db_path)
    audit = AuditLog(settings.audit_path)
    executor = RecordingExecutor(LocalExecutor(settings.artifacts_dir))
    engine = ChangeEngine(settings, store, audit, executor=executor, instance_id=uuid.uuid4().hex)
    try:
        yield engine, executor, settings
    finally:
        audit.close()
        store.close()


def test_the_local_executor_keeps_the_interface() -> None:
    assert isinstance(LocalExecutor(Path("/tmp")), Executor)
    assert isinstance(RecordingExecutor(LocalExecutor(Path("/tmp"))), Executor)


async def test_plans_go_through_the_given_executor_as_check_runs_and_are_audited(
    engine_parts: tuple[ChangeEngine, RecordingExecutor, Settings],
) -> None:
    engine, executor, settings = engine_parts
    plan = await engine.plan(ALICE, "tb_marker", {"message": "hello engine"})
    assert plan.status == "pending" and plan.host_names == ["localhost"]
    [(kind, request)] = executor.requests
    assert kind == "check" and request.mode is RunMode.CHECK
    assert request.playbook.name == "playbook.yml" and request.playbook.is_absolute()
    assert request.extravars["message"] == "hello engine"
    # Planning the same content again returns the open plan without a new record.
    again = await engine.plan(ALICE, "tb_marker", {"message": "hello engine"})
    assert again.id == plan.id
    records = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    stored = [r for r in records if r.get("kind") == "change" and r["event"] == "plan:stored"]
    assert len(stored) == 1 and stored[0]["plan_id"] == plan.id and stored[0]["principal"]["sub"] == "alice"


async def test_apply_loads_the_plan_once_and_refuses_before_the_executor_runs(
    engine_parts: tuple[ChangeEngine, RecordingExecutor, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, executor, _settings = engine_parts
    plan = await engine.plan(ALICE, "tb_marker", {"message": "load once"})
    executor.requests.clear()
    loads: list[str] = []
    real_get_plan = plans.get_plan

    def counting_get_plan(store: Store, plan_id: str, **kwargs: Any) -> Any:
        loads.append(plan_id)
        return real_get_plan(store, plan_id, **kwargs)

    monkeypatch.setattr(plans, "get_plan", counting_get_plan)
    with pytest.raises(Exception, match="has not been approved"):
        await engine.apply(ALICE, plan.id)
    assert loads == [plan.id]
    assert executor.requests == []  # nothing ran, not even the re-check


async def test_a_cached_catalog_never_vouches_for_changed_content(
    engine_parts: tuple[ChangeEngine, RecordingExecutor, Settings], catalog_dirs: tuple[Path, Path]
) -> None:
    engine, _executor, _settings = engine_parts
    assert engine.playbook_scope("tb_marker") == "system:admin"  # loads and caches the catalog
    role_tasks = catalog_dirs[1] / "tb_marker" / "tasks" / "main.yml"
    role_tasks.write_text(role_tasks.read_text() + "\n# edited after locking\n")
    with pytest.raises(CatalogError, match="tb_marker"):
        await engine.plan(ALICE, "tb_marker", {"message": "edited"})


def test_lifecycle_notifications_are_queued_only_when_the_state_is_reached(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """With an endpoint configured, a plan of a two-approver policy queues plan.approved only with the
    second approval (not at "1 of 2"); without endpoints nothing is built or queued."""
    from tailops.notify import outbox
    from tests.testbed.seed import seed_plan

    endpoint = {"name": "ops", "url": "http://127.0.0.1:9/hook", "format": "json", "secret_env": "TB_HOOK_KEY"}
    settings = make_settings(changes={"required_approvals": {"low": 2}}, notifications={"endpoints": [endpoint]})
    plan = seed_plan(settings.db_path, ALICE, message="notify")
    store = Store(settings.db_path)
    audit = AuditLog(settings.audit_path)
    try:
        engine = ChangeEngine(settings, store, audit, instance_id="t")
        engine.approve(Principal("bob", frozenset({"changes:approve"}), "http"), plan.id)
        assert [r.kind for r in outbox.list_notifications(store)] == []
        engine.approve(Principal("carol", frozenset({"changes:approve"}), "http"), plan.id)
        assert [r.kind for r in outbox.list_notifications(store)] == ["plan.approved"]
    finally:
        audit.close()
        store.close()
