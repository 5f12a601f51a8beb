"""tailops.notify without a network: config refusals, the signature check a receiver
runs (tamper, replay, rotation), what an event may carry, the three formats (escaping,
header injection) and the outbox's rules (one row per wanting endpoint, idempotent
ids, commit-or-nothing with the caller's transaction, backoff bounds, claim limits,
dead by age). Delivery over real HTTP is in tests/integration/test_notifications.py."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tailops.config import NotificationsSettings, Settings
from tailops.errors import AuthError, ConfigError, StoreError
from tailops.metrics import Metrics
from tailops.notify import Event, EventKind, emit, enqueue_in, outbox, plan_event, run_event, run_kind, verify_signature
from tailops.notify.formats import render
from tailops.notify.secrets import resolve_secret
from tailops.notify.signing import sign, signature_header
from tailops.principal import Principal
from tailops.store import Store, load_migrations
from tests.testbed.seed import seed_plan, seed_run

KEY = "k3y-for-tests"
HOOK = "https://hooks.example.com/tailops"


def endpoint(name: str = "ops", **more: Any) -> dict[str, Any]:
    return {"name": name, "url": HOOK, "secret_env": "TEST_HOOK_KEY", **more}


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("ep", "needle"),
    [
        (endpoint(url="ftp://example.com/x"), "http:// or https://"),
        (endpoint(url="file:///etc/passwd"), "http:// or https://"),
        (endpoint(url="javascript:alert(1)"), "http:// or https://"),
        (endpoint(url="https:///nohost"), "no host"),
        (endpoint(url="https://user:pw@example.com/x"), "credentials"),
        (endpoint(url="https://example.com:99999/x"), "not a valid URL"),
        (endpoint(url="https://example.com/a b"), "whitespace"),
        ({"name": "ops", "url": HOOK}, "signed"),
        ({"name": "ops", "format": "slack", "url": HOOK, "secret_env": "X"}, "credential"),
        ({"name": "ops", "format": "slack"}, "webhook URL"),
        ({"name": "ops", "format": "ntfy"}, "url is required"),
        (endpoint(secret_file="/k"), "not both"),
        (endpoint(name="Bad Name"), "name"),
        (endpoint(events=["plan.approvedd"]), "events"),
        (endpoint(events=["test"]), "events"),
        (endpoint(timeout="10m"), "timeout"),
        (endpoint(format="xml"), "format"),
        (endpoint(secret_env="A-B"), "secret_env"),
    ],
)
def test_bad_endpoints_are_refused_naming_the_problem(
    make_settings: Callable[..., Settings], ep: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError) as err:
        make_settings(notifications={"endpoints": [ep]})
    assert "notifications.endpoints" in err.value.message and needle in err.value.message


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"endpoints": [endpoint(), endpoint()]}, "used twice"),
        ({"backoff_min": "10m", "backoff_max": "1m"}, "backoff_min"),
        ({"backoff_min": 0}, "backoff_min"),
        ({"max_age": "2d", "retention": "1d"}, "retention"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"surprise": 1}, "unknown key"),
    ],
)
def test_bad_notification_settings_are_refused(
    make_settings: Callable[..., Settings], section: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        make_settings(notifications=section)


def test_good_endpoints_load_with_safe_defaults(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        notifications={
            "endpoints": [
                endpoint(),
                {"name": "chat", "format": "slack", "secret_file": "/run/secrets/slack"},
                {"name": "phone", "format": "ntfy", "url": "http://ntfy.local/ops", "events": ["run.failed"]},
            ]
        }
    )
    config = settings.notifications
    assert [e.name for e in config.endpoints] == ["ops", "chat", "phone"]
    assert config.endpoints[0].events[-1] == "drift.found" and len(config.endpoints[0].events) == 10
    assert config.endpoints[0].timeout == timedelta(seconds=10)
    assert NotificationsSettings().endpoints == []  # nothing is sent unless configured


def test_secret_resolution_errors_name_the_source_never_the_value(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(notifications={"endpoints": [endpoint()]})
    (ep,) = settings.notifications.endpoints
    with pytest.raises(ConfigError, match="TEST_HOOK_KEY is not set"):
        resolve_secret(ep)
    monkeypatch.setenv("TEST_HOOK_KEY", "  abc \n")
    assert resolve_secret(ep) == "abc"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, needle in ((tmp_path / "missing", "cannot be read"), (empty, "is empty")):
        other = make_settings(notifications={"endpoints": [{"name": "x", "url": HOOK, "secret_file": str(path)}]})
        with pytest.raises(ConfigError, match=needle):
            resolve_secret(other.notifications.endpoints[0])


# --------------------------------------------------------------------------- signing
def test_signature_round_trip_and_what_breaks_it() -> None:
    body = b'{"id":"abc","kind":"run.failed"}'
    now = 1_800_000_000
    header = signature_header(KEY, body, now=now)
    assert header == f"t={now},v1={sign(KEY, now, body)}"
    assert verify_signature(KEY, header, body, 300, now=now + 299) == now
    cases: list[tuple[str | bytes, str | None, bytes, float, str]] = [
        (KEY, header, body + b" ", now, "does not match"),
        ("other-key", header, body, now, "does not match"),
        (KEY, header, body, now + 301, "tolerance"),  # replayed later
        (KEY, header, body, now - 301, "tolerance"),  # from the future
        (KEY, header.replace(f"t={now}", f"t={now + 1}"), body, now, "does not match"),  # timestamp swapped
        (KEY, None, body, now, "missing"),
        (KEY, "v1=abc", body, now, "needs t= and v1="),
        (KEY, f"t={now}", body, now, "needs t= and v1="),
        (KEY, f"t=x{now},v1=ab", body, now, "timestamp"),
        (KEY, f"t={now},t={now},v1=ab", body, now, "timestamp"),
        (KEY, "garbage", body, now, "malformed"),
        (KEY, f"t={now},v1=ünïcode", body, now, "does not match"),
    ]
    for secret, hdr, data, at, needle in cases:
        with pytest.raises(AuthError, match=needle):
            verify_signature(secret, hdr, data, 300, now=at)


def test_a_rotated_key_still_verifies_with_either_signature() -> None:
    body = b"{}"
    now = 1_800_000_000
    header = f"t={now},v1={sign('old', now, body)},v1={sign('new', now, body)}"
    assert verify_signature("new", header, body, now=now) == now
    assert verify_signature(b"old", header, body, now=now) == now


# --------------------------------------------------------------------------- events
ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-secret-id", human_login="alice@corp")
BOB = Principal("bob", frozenset({"changes:approve"}), "http", token_id="jti-b")
TOKEN = "xoxb-1234567890-abcdefghijklmnop"


def test_plan_and_run_events_carry_ids_and_counts_only(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    plan = seed_plan(db, ALICE, message=TOKEN, diff=f"+password: {TOKEN}\n", task_msg=TOKEN)
    event = plan_event(EventKind.PLAN_AWAITING_APPROVAL, plan)
    text = event.model_dump_json()
    assert TOKEN not in text and "jti-secret-id" not in text
    assert event.requester == "alice@corp" and event.hosts == 1 and event.plan_id == plan.id
    run = seed_run(db, plan, BOB, [], finish=("failed", f"task failed: Authorization: Bearer {TOKEN}", [], []))
    failed = run_event(run, plan)
    assert failed.kind is EventKind.RUN_FAILED and failed.id == f"run.failed:{run.id}"
    assert failed.reason is not None and TOKEN not in failed.reason and "[REDACTED]" in failed.reason
    assert run_kind("canceled") is EventKind.RUN_CANCELED and run_kind("running") is EventKind.RUN_STARTED
    with pytest.raises(ValueError, match="no event"):
        run_kind("paused")


def test_free_text_is_redacted_flattened_and_capped() -> None:
    event = Event(kind=EventKind.PLAN_DENIED, reason="line1\r\nX-Injected: 1 token=supersecretvalue " + "x" * 900)
    assert event.reason is not None
    assert "\n" not in event.reason and "supersecretvalue" not in event.reason and len(event.reason) <= 500
    with pytest.raises(ValueError):
        Event(kind=EventKind.RUN_FAILED, plan_id="not-hex")
    with pytest.raises(ValueError):
        Event(kind=EventKind.RUN_FAILED, id="has space")
    with pytest.raises(ValueError):
        Event(kind=EventKind.RUN_FAILED, params={"a": 1})  # type: ignore[call-arg]


# --------------------------------------------------------------------------- formats
def _settings(make_settings: Callable[..., Settings], *eps: dict[str, Any]) -> Settings:
    return make_settings(notifications={"endpoints": list(eps)})


def test_formats_escape_receiver_syntax_and_strip_header_injection(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(
        make_settings,
        endpoint(),
        {"name": "chat", "format": "slack", "secret_env": "S"},
        {"name": "phone", "format": "ntfy", "url": "http://ntfy.local/t"},
    )
    json_ep, slack_ep, ntfy_ep = settings.notifications.endpoints
    event = Event(
        kind=EventKind.PLAN_APPROVED,
        playbook="pkg",
        approver="eve <!channel> \u00e9",
        review_url="https://x/review/plans/ab",
    )
    slack = json.loads(render(event, slack_ep, "https://hooks.slack.com/services/T/B/X", "n1", 1).body)
    assert "<!channel>" not in json.dumps(slack) and "&lt;!channel&gt;" in slack["text"]
    ntfy = render(event, ntfy_ep, None, "n1", 1)
    assert "Authorization" not in ntfy.headers
    assert all(all(32 <= ord(c) < 127 for c in v) for v in ntfy.headers.values())
    crlf = Event(kind=EventKind.PLAN_APPROVED, review_url="https://x/\r\nX-Evil: 1")
    assert "\r" not in render(crlf, ntfy_ep, None, "n1", 1).headers["Click"]
    signed = render(event, json_ep, KEY, "n1", 3)
    assert signed.headers["X-Tailops-Attempt"] == "3"
    verify_signature(KEY, signed.headers["X-Tailops-Signature"], signed.body)
    with pytest.raises(ConfigError, match="http:// or https://"):
        render(event, slack_ep, "file:///etc/passwd", "n1", 1)
    with pytest.raises(ConfigError) as err:
        render(event, slack_ep, "gopher://secret-host/very-secret-path", "n1", 1)
    assert "very-secret-path" not in err.value.public_message()


# --------------------------------------------------------------------------- outbox
def test_migration_0004_is_numbered_in_sequence() -> None:
    names = [(m.version, m.name) for m in load_migrations()]
    assert (4, "notifications") in names


def test_enqueue_writes_one_row_per_wanting_endpoint_once(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(
        make_settings,
        endpoint("all"),
        endpoint("failures", events=["run.failed", "run.interrupted"]),
    )
    store = Store(settings.db_path)
    failed = Event(id="run.failed:r1", kind=EventKind.RUN_FAILED, run_id="r1")
    ids = emit(store, failed, settings=settings)
    assert len(ids) == 2 and ids[0] == outbox.notification_id("run.failed:r1", "all")
    assert emit(store, failed, settings=settings) == [], "the same event id is queued once"
    assert len(emit(store, Event(kind=EventKind.RUN_STARTED), settings=settings)) == 1
    rows = outbox.list_notifications(store)
    assert sorted((r.endpoint, r.kind) for r in rows) == [
        ("all", "run.failed"),
        ("all", "run.started"),
        ("failures", "run.failed"),
    ]
    assert all(r.state == "pending" and r.attempts == 0 for r in rows)
    assert emit(store, Event(kind=EventKind.TEST), settings=settings) == [], "tests go only where named"
    assert outbox.counts(store)["pending"] == 3


def test_enqueue_in_commits_or_rolls_back_with_the_callers_change(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, endpoint())
    store = Store(settings.db_path)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        assert enqueue_in(conn, settings, Event(kind=EventKind.PLAN_APPROVED), now=1.0)
        raise RuntimeError("the state change failed")
    assert outbox.list_notifications(store) == []
    with store.transaction() as conn:
        enqueue_in(conn, settings, Event(kind=EventKind.PLAN_APPROVED))
    assert len(outbox.list_notifications(store)) == 1


def test_emit_never_raises_when_the_store_fails(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, endpoint())
    store = Store(settings.db_path)
    store.close()
    assert emit(store, Event(kind=EventKind.PLAN_APPROVED), settings=settings) == []
    with pytest.raises(StoreError):
        outbox.enqueue(store, settings, Event(kind=EventKind.PLAN_APPROVED))


def test_backoff_doubles_within_bounds_with_jitter() -> None:
    config = NotificationsSettings(backoff_min=timedelta(seconds=2), backoff_max=timedelta(seconds=60))
    rng = random.Random(7)
    for attempt, base in ((1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (30, 60), (400, 60)):
        delays = [outbox.backoff_delay(attempt, config, rng) for _ in range(200)]
        assert base / 2 <= min(delays) and max(delays) <= base
        assert len(set(delays)) > 100, "jittered"


def test_claims_respect_per_endpoint_and_total_capacity(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, endpoint("a"), endpoint("b"))
    store = Store(settings.db_path)
    for _ in range(5):
        emit(store, Event(kind=EventKind.RUN_STARTED), settings=settings)
    claims = outbox.claim_due(store, instance="w1", lease=60, capacity=10, busy={"a": 1}, per_endpoint=2)
    per = {name: sum(1 for c in claims if c.endpoint == name) for name in ("a", "b")}
    assert per == {"a": 1, "b": 2}
    assert all(c.attempt == 1 for c in claims)
    # Claimed rows are not claimed again while their lease runs…
    assert outbox.claim_due(store, instance="w2", lease=60, capacity=10, busy={}, per_endpoint=1) != []
    again = outbox.claim_due(store, instance="w3", lease=60, capacity=10, busy={}, per_endpoint=9)
    assert {c.id for c in again}.isdisjoint({c.id for c in claims})
    # …and are when it has run out (their worker died): attempt 2, same id.
    later = outbox.claim_due(
        store, instance="w4", lease=60, capacity=20, busy={}, per_endpoint=20, now=time.time() + 120
    )
    assert {c.id for c in claims} <= {c.id for c in later}
    assert {c.attempt for c in later if c.id in {x.id for x in claims}} == {2}
    assert outbox.claim_due(store, instance="w5", lease=60, capacity=0, busy={}, per_endpoint=9) == []


def test_a_row_older_than_max_age_dies_on_its_next_failure(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(notifications={"endpoints": [endpoint()], "max_age": "1h", "max_attempts": 50})
    store = Store(settings.db_path)
    (nid,) = emit(store, Event(kind=EventKind.RUN_STARTED), settings=settings)
    (claim,) = outbox.claim_due(store, instance="w", lease=60, capacity=1, busy={}, per_endpoint=1)
    later = time.time() + 3601
    state = outbox.record_attempt(
        store,
        claim,
        settings.notifications,
        instance="w",
        outcome="failed",
        status=502,
        error="HTTP 502",
        started_at=later - 1,
        now=later,
    )
    assert state == "dead" and outbox.get_notification(store, nid).state == "dead"
    # A worker that lost its lease records its attempt but does not overwrite the row.
    assert outbox.retry_dead(store, [nid]) == 1
    (claim2,) = outbox.claim_due(store, instance="w2", lease=60, capacity=1, busy={}, per_endpoint=1)
    outbox.record_attempt(
        store,
        claim2,
        settings.notifications,
        instance="someone-else",
        outcome="delivered",
        status=200,
        error=None,
        started_at=time.time(),
    )
    assert outbox.get_notification(store, nid).state == "sending"
    assert [a.outcome for a in outbox.list_attempts(store, nid)] == ["failed", "delivered"]


def test_retry_dead_refuses_unknown_and_live_rows(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, endpoint())
    store = Store(settings.db_path)
    (nid,) = emit(store, Event(kind=EventKind.RUN_STARTED), settings=settings)
    with pytest.raises(ValueError, match="pending, not dead"):
        outbox.retry_dead(store, [nid])
    with pytest.raises(LookupError):
        outbox.retry_dead(store, ["0" * 32])
    with pytest.raises(ValueError, match="unknown state"):
        outbox.list_notifications(store, state="lost")


def test_prune_deletes_only_finished_rows_past_retention(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, endpoint())
    store = Store(settings.db_path)
    (keep,) = emit(store, Event(kind=EventKind.RUN_STARTED), settings=settings)
    (done,) = emit(store, Event(kind=EventKind.RUN_SUCCEEDED), settings=settings)
    store.execute("UPDATE notifications SET state = 'delivered' WHERE id = ?", (done,))
    assert outbox.prune(store, older_than=time.time() + 1) == 1
    assert [r.id for r in outbox.list_notifications(store)] == [keep]


def test_metrics_expose_the_notification_series() -> None:
    metrics = Metrics()
    metrics.notifications_delivered.labels("ops").inc()
    metrics.notifications_pending.set(3)
    text = metrics.render().decode()
    assert 'tailops_notifications_delivered_total{endpoint="ops"} 1.0' in text
    assert "tailops_notifications_pending 3.0" in text
    for name in ("tailops_notifications_failed", "tailops_notifications_dead"):
        assert f"# HELP {name}" in text


# --------------------------------------------------------------------------- docs
def test_the_receiver_snippet_in_the_docs_verifies_what_tailops_signs() -> None:
    import re

    from tests.helpers import REPO_ROOT

    doc = (REPO_ROOT / "docs" / "notifications.md").read_text()
    (code,) = [c for c in re.findall(r"```python\n(.*?)```", doc, re.DOTALL) if "def verify(" in c]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/notifications.md", "exec"), namespace)  # our own docs
    verify = namespace["verify"]
    body = b'{"id":"n1","kind":"run.failed"}'
    verify(KEY.encode(), signature_header(KEY, body), body)
    for header, data in (
        (signature_header(KEY, body), body + b"x"),
        (signature_header("other", body), body),
        (signature_header(KEY, body, now=time.time() - 3600), body),
        ("t=1", body),
    ):
        with pytest.raises(ValueError):
            verify(KEY.encode(), header, data)


def test_an_unreadable_stored_event_dies_without_blocking_the_rest(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, endpoint())
    store = Store(settings.db_path)
    (bad,) = emit(store, Event(kind=EventKind.RUN_STARTED), settings=settings)
    (good,) = emit(store, Event(kind=EventKind.RUN_FAILED), settings=settings)
    store.execute('UPDATE notifications SET event = \'{"kind": "rm -rf"}\' WHERE id = ?', (bad,))
    claims = outbox.claim_due(store, instance="w", lease=60, capacity=5, busy={}, per_endpoint=5)
    assert [c.id for c in claims] == [good]
    row = outbox.get_notification(store, bad)
    assert row.state == "dead" and row.last_error == "the stored event cannot be read"


def test_retry_after_lengthens_the_wait_up_to_backoff_max(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(notifications={"endpoints": [endpoint()], "backoff_min": "1s", "backoff_max": "60s"})
    store = Store(settings.db_path)
    waits = []
    for retry_after in (30.0, 3600.0):
        (nid,) = emit(store, Event(kind=EventKind.RUN_STARTED), settings=settings)
        (claim,) = outbox.claim_due(store, instance="w", lease=60, capacity=1, busy={}, per_endpoint=1, only={nid})
        now = time.time()
        outbox.record_attempt(
            store,
            claim,
            settings.notifications,
            instance="w",
            outcome="failed",
            status=429,
            error="HTTP 429",
            started_at=now,
            retry_after=retry_after,
            now=now,
        )
        waits.append(outbox.get_notification(store, nid).next_attempt_at - now)
    assert 30 <= waits[0] < 31, "Retry-After: 30 beats a 1 s backoff"
    assert 59 <= waits[1] <= 60, "but never past backoff_max"
