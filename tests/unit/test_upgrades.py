"""Upgrades: a store written at EVERY earlier schema version opens with the current
code, keeps its data, and the app works on it.

For each N from 1 to the latest migration, the test builds a database the way a
tailops of schema N left it (migrations 1..N only, recorded in
``schema_migrations`` like :meth:`Store.migrate` does) and fills it with the rows
in ``tests/fixtures/schema_seeds/0001..N.sql`` (each in the shape of its own
version). Then the current :class:`Store` opens it (running the pending
migrations) and the checks of every seeded version run: tokens verify or are
refused as revoked, plans/approvals/runs read back whole, a pending plan can be
approved, new rows can be written. The versions come from the packaged
migrations, so a future migration is covered without editing this file; it only
needs its seed file (``test_every_migration_has_a_seed`` fails until it exists).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tailops.auth import tokens
from tailops.auth.tokens import TokenVerifier, generate_keypair, key_id, list_tokens, load_public_key
from tailops.changes import approvals, drift, history, plans
from tailops.config import ChangesSettings, Settings
from tailops.errors import AuthError
from tailops.notify import outbox
from tailops.principal import Principal
from tailops.store import Store, _split_sql, load_migrations
from tests.helpers import REPO_ROOT
from tests.testbed.seed import seed_plan

SEEDS = REPO_ROOT / "tests" / "fixtures" / "schema_seeds"
MIGRATIONS = load_migrations()
LATEST = MIGRATIONS[-1].version
APPLIED_PLAN = "8ecea31248aa796e7644951e0f8aaff13bed11c02fa4d586b0ac800eecc88774"
PENDING_PLAN = "c13b068bdbec8e04ae4c1f8476e5f562f98d87039cb6ff170a0d663bc3ecc6ad"
PLACED_PLAN = "f349956311568122d5a2dccaa5b20f4091fe78cffed00ff642f2e9ac38759a5b"
RUN = "76afc0ab58b345b4bb96c636cb38948e"
BOB = Principal("bob", frozenset({"changes:approve"}), "http", token_id="jti-bob")


def build_at(path: Path, version: int) -> None:
    """A database as schema ``version`` left it: migrations 1..version, then their seeds."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
        )
        for migration in MIGRATIONS[:version]:
            conn.execute("BEGIN")
            for statement in _split_sql(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(version, name) VALUES (?, ?)", (migration.version, migration.name)
            )
            conn.execute("COMMIT")
            # The rows that version's code wrote, before any later migration ran over them.
            conn.executescript((SEEDS / f"{migration.version:04d}.sql").read_text())
    finally:
        conn.close()


def token_for(settings: Settings, jti: str, subject: str) -> str:
    """A token with a seeded jti, signed by the configured key (as `token mint` made it)."""
    key = serialization.load_pem_private_key(settings.private_key_path.read_bytes(), password=None)
    now = int(time.time())
    claims = {
        "iss": settings.auth.issuer,
        "sub": subject,
        "scope": "readonly",
        "aud": settings.mcp_url,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": jti,
    }
    kid = key_id(load_public_key(settings.public_key_path))
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})  # type: ignore[arg-type]


def check_v1(store: Store, settings: Settings) -> None:
    meta = {r["key"]: r["value"] for r in store.query("SELECT key, value FROM meta")}
    assert meta["seeded_by"] == "tests/fixtures/schema_seeds/0001.sql"
    assert len(meta["instance_id"]) == 32


def check_v2(store: Store, settings: Settings) -> None:
    verifier = TokenVerifier.from_config(settings, store)
    assert verifier.verify_claims(token_for(settings, "seeded-active", "carol"))["sub"] == "carol"
    for jti in ("seeded-revoked", "seeded-foreign"):
        with pytest.raises(AuthError) as info:
            verifier.verify_claims(token_for(settings, jti, "dave"))
        assert info.value.message == tokens.REVOKED
    listed = {t.jti: t.status(time.time()) for t in list_tokens(store)}
    assert listed == {"seeded-active": "active", "seeded-revoked": "revoked", "seeded-foreign": "revoked"}


def check_v3(store: Store, settings: Settings) -> None:
    applied = plans.get_plan(store, APPLIED_PLAN)
    assert applied.status == "applied" and applied.params == {"message": "hello"}
    assert applied.hosts[0].tasks[0].diff is not None and "+hello" in applied.hosts[0].tasks[0].diff
    run = plans.get_run(store, RUN)
    assert run.status == "succeeded" and run.plan_id == APPLIED_PLAN
    events = plans.run_events(store, RUN)
    assert [(e.host, e.task) for e in events] == [("web1", "Write the marker file")]
    assert [a.decision for a in plans.approvals_for(store, APPLIED_PLAN)] == ["approved"]
    listed, _total = plans.list_plans(store)
    assert {p.id for p in listed} >= {APPLIED_PLAN, PENDING_PLAN}  # later seeds add their own
    # The app still works on old rows: the pending plan can be approved by someone else.
    approval = approvals.approve(store, ChangesSettings(), PENDING_PLAN, BOB, "after the upgrade")
    assert plans.get_plan(store, PENDING_PLAN).status == "approved" and approval.plan_id == PENDING_PLAN


def check_v4(store: Store, settings: Settings) -> None:
    rows = {r.id: r for r in outbox.list_notifications(store)}
    assert rows["seeded-delivered"].state == "delivered" and rows["seeded-pending"].state == "pending"
    assert [a.outcome for a in outbox.list_attempts(store, "seeded-pending")] == ["failed"]


def check_v5(store: Store, settings: Settings) -> None:
    # 0003's plans were indexed by the migration's backfill; 0005's plan came with its row.
    web1 = history.host_history(store, "web1")
    assert {c.plan_id for c in web1.changes} >= {APPLIED_PLAN, PENDING_PLAN}
    applied = next(c for c in web1.changes if c.plan_id == APPLIED_PLAN)
    assert applied.approved_by == ["bob"] and [r.status for r in applied.runs] == ["succeeded"]
    [web2] = history.host_history(store, "web2").changes
    assert web2.status == "denied" and web2.predicted == []


def check_v6(store: Store, settings: Settings) -> None:
    report = drift.latest_drift(store, check="marker")
    assert {r.host: r.state for r in report.results} == {"web1": "drifted", "web2": "in_line"}
    assert report.drifted == 1 and "+desired" in (report.results[0].diff or "")


def check_v7(store: Store, settings: Settings) -> None:
    # The placement reads back whole, and the plan id still covers it (recomputed from the row).
    plan = plans.get_plan(store, PLACED_PLAN)
    assert plan.placement is not None
    assert plan.placement.hosts_by_node() == {"dc2": ["db1"], "local": ["web3"]}
    assert plan.placement.bundles() == {"dc2": "c" * 64}
    fields: dict[str, Any] = dict(
        playbook=plan.playbook,
        version=plan.version,
        playbook_sha256=plan.playbook_sha256,
        params=plan.params,
        limit=plan.limit,
        inventory_sha256=plan.inventory_sha256,
        hosts=plan.hosts,
    )
    assert plans.plan_id_for(**fields, placement=plan.placement) == PLACED_PLAN
    assert plans.plan_id_for(**fields) != PLACED_PLAN
    # Plans from before placements have none.
    if store.query_one("SELECT 1 FROM plans WHERE id = ?", (APPLIED_PLAN,)):
        assert plans.get_plan(store, APPLIED_PLAN).placement is None


PROD_PLAN = "e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7"


def check_v8(store: Store, settings: Settings) -> None:
    # Plans stored before 0008 have no recorded requirement: the current config decides for them.
    assert plans.get_plan(store, APPLIED_PLAN).approval_policy is None
    plan = plans.get_plan(store, PROD_PLAN)
    assert plan.approval_policy is not None
    assert plan.approval_policy.summary() == "2 approvals: group prod (web1)"
    # The config that decided it is gone (defaults: low needs 1): the recorded 2 still holds.
    approvals.approve(store, ChangesSettings(), PROD_PLAN, BOB, "one of two")
    after = plans.get_plan(store, PROD_PLAN)
    assert after.status == "pending" and after.status_reason == "1 of 2 approvals"


CHECKS: dict[int, Callable[[Store, Settings], None]] = {
    1: check_v1,
    2: check_v2,
    3: check_v3,
    4: check_v4,
    5: check_v5,
    6: check_v6,
    7: check_v7,
    8: check_v8,
}


def test_every_migration_has_a_seed() -> None:
    for migration in MIGRATIONS:
        seed = SEEDS / f"{migration.version:04d}.sql"
        assert seed.is_file(), (
            f"migration {migration.version:04d}_{migration.name} has no {seed.relative_to(REPO_ROOT)}: "
            "add realistic rows in that version's shape (see its README)"
        )


@pytest.mark.parametrize("version", [m.version for m in MIGRATIONS])
def test_a_store_from_every_earlier_schema_upgrades_and_keeps_working(
    make_settings: Callable[..., Settings], version: int
) -> None:
    settings = make_settings()
    settings.server.data_dir.mkdir(mode=0o700)
    generate_keypair(settings.private_key_path, settings.public_key_path)
    build_at(settings.db_path, version)
    store = Store(settings.db_path)
    try:
        assert store.schema_version() == LATEST
        applied = [r["version"] for r in store.query("SELECT version FROM schema_migrations ORDER BY version")]
        assert applied == list(range(1, LATEST + 1))
        for n in range(1, version + 1):
            CHECKS.get(n, _missing_check(n))(store, settings)
        # New writes work on the upgraded store.
        seed_plan(settings.db_path, Principal("erin", frozenset({"system:admin"}), "http"), message="new")
        seeded_plans = (2 if version >= 3 else 0) + (1 if version >= 5 else 0) + (1 if version >= 7 else 0)
        seeded_plans += 1 if version >= 8 else 0
        assert plans.list_plans(store)[1] == seeded_plans + 1
        tokens.mint_token(
            private_key_path=settings.private_key_path,
            subject="frank",
            scopes="readonly",
            ttl=timedelta(hours=1),
            max_ttl=settings.auth.max_token_ttl,
            audience=settings.mcp_url,
            issuer=settings.auth.issuer,
            store=store,
        )
    finally:
        store.close()


def _missing_check(version: int) -> Callable[[Store, Settings], None]:
    def fail(store: Store, settings: Settings) -> None:
        pytest.fail(f"no CHECKS entry for schema version {version}: say what its seeded rows must still do")

    return fail
