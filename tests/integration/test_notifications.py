"""Webhook notifications end to end: the real outbox (SQLite), the real delivery worker
(its thread, httpx, timeouts) and real HTTP receivers on 127.0.0.1 (tests/webhooks.py).

What each proves:
- a signed json notification verifies at the receiver with the documented helper and
  carries the plan's review link, ids and counts — and no params, diff or token;
- a receiver answering 500 is retried with growing, jittered backoff until it accepts,
  always under the same notification id; past max_attempts a row is dead, and
  ``retry_dead`` revives it;
- a receiver that never answers costs its timeout and nothing else: the other
  endpoint gets every notification promptly and queuing stays instant;
- nothing is lost across a stop or a killed process (at-least-once, same id);
- Slack and ntfy receivers get their shapes; secrets reach the wire only where they
  belong and never the store or the logs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tailops.config import Settings
from tailops.metrics import Metrics
from tailops.notify import Event, EventKind, Notifier, emit, outbox, plan_event, verify_signature
from tailops.notify.expiry import sweep_expired_plans
from tailops.principal import Principal
from tailops.store import Store
from tests.testbed.seed import seed_plan
from tests.webhooks import receiver

SECRET = "whsec-test-4f1e9a7d0c2b"
TOKEN_PARAM = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-a")

FAST = {
    "backoff_min": 0.2,
    "backoff_max": 1.0,
    "poll_interval": 0.1,
    "connect_timeout": 1.0,
}


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "hook.key"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def workers() -> Iterator[list[Notifier]]:
    started: list[Notifier] = []
    yield started
    for w in started:
        w.stop()


def start(store: Store, settings: Settings, workers: list[Notifier], metrics: Metrics | None = None) -> Notifier:
    w = Notifier(store, settings, metrics)
    w.start()
    workers.append(w)
    return w


def json_endpoint(name: str, url: str, secret_file: Path, **more: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "format": "json", "secret_file": str(secret_file), **more}


def wait_state(store: Store, nid: str, states: set[str], timeout: float) -> outbox.NotificationRow:
    deadline = time.monotonic() + timeout
    while True:
        row = outbox.get_notification(store, nid)
        if row.state in states or time.monotonic() > deadline:
            return row
        time.sleep(0.02)


def counted(metric: Any, endpoint: str, expected: float, timeout: float = 5) -> float:
    """The counter's value once it reaches ``expected`` (the worker counts just after it commits)."""
    deadline = time.monotonic() + timeout
    while True:
        value = float(metric.labels(endpoint)._value.get())
        if value >= expected or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_signed_json_verifies_and_carries_ids_not_params_or_diffs(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver("verify", secret=SECRET) as rx:
        settings = make_settings(
            server={"public_url": "https://ops.example.ts.net/mcp"},
            notifications={**FAST, "endpoints": [json_endpoint("ops", rx.url, secret_file)]},
        )
        plan = seed_plan(
            settings.db_path,
            ALICE,
            message=f"deploy with {TOKEN_PARAM}",
            diff=f"--- a\n+++ b\n+api_token: {TOKEN_PARAM}\n",
        )
        store = Store(settings.db_path)
        metrics = Metrics()
        start(store, settings, workers, metrics)
        ids = emit(
            store,
            plan_event(EventKind.PLAN_AWAITING_APPROVAL, plan, reason=f"needs review; token={TOKEN_PARAM}"),
            settings=settings,
        )
        assert len(ids) == 1
        (hit,) = rx.wait_for(1, timeout=10)
        assert hit.verified is True
        doc = json.loads(hit.body)
        assert doc["id"] == ids[0] == hit.headers["X-Tailops-Delivery"]
        assert doc["kind"] == "plan.awaiting_approval" == hit.headers["X-Tailops-Event"]
        assert doc["review_url"] == f"https://ops.example.ts.net/review/plans/{plan.id}"
        assert doc["plan_id"] == plan.id and doc["playbook"] == "tb_marker" and doc["hosts"] == 1
        assert doc["requester"] == "alice" and doc["risk"] == "low"
        # No params, no diff, no token anywhere in what left the process.
        raw = hit.body.decode() + json.dumps(hit.headers)
        assert TOKEN_PARAM not in raw and "deploy with" not in raw and "api_token" not in raw
        assert "params" not in doc and "[REDACTED]" in doc["reason"]
        row = wait_state(store, ids[0], {"delivered"}, 5)
        assert row.state == "delivered" and row.last_status == 200
        assert counted(metrics.notifications_delivered, "ops", 1) == 1
        # A body altered in transit no longer verifies with the same header.
        with pytest.raises(Exception, match="does not match"):
            verify_signature(SECRET, hit.headers["X-Tailops-Signature"], hit.body.replace(b"low", b"critical"), 300)


def test_a_failing_receiver_is_retried_with_backoff_under_one_id(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver(500, 503, 200) as rx:
        settings = make_settings(notifications={**FAST, "endpoints": [json_endpoint("flaky", rx.url, secret_file)]})
        store = Store(settings.db_path)
        metrics = Metrics()
        start(store, settings, workers, metrics)
        (nid,) = emit(store, Event(kind=EventKind.RUN_FAILED, run_id="r1"), settings=settings)
        hits = rx.wait_for(3, timeout=10)
        assert len(hits) == 3
        assert {h.headers["X-Tailops-Delivery"] for h in hits} == {nid}
        assert [h.headers["X-Tailops-Attempt"] for h in hits] == ["1", "2", "3"]
        assert len({h.body for h in hits}) == 1, "the body is the same on every attempt"
        # Backoff: attempt n waits in [base/2, base], base = 0.2 s * 2^(n-1).
        first_gap, second_gap = hits[1].at - hits[0].at, hits[2].at - hits[1].at
        assert first_gap >= 0.1
        assert second_gap >= 0.2
        row = wait_state(store, nid, {"delivered"}, 5)
        assert row.state == "delivered" and row.attempts == 3
        attempts = outbox.list_attempts(store, nid)
        assert [(a.outcome, a.status) for a in attempts] == [("failed", 500), ("failed", 503), ("delivered", 200)]
        assert counted(metrics.notifications_failed, "flaky", 2) == 2


def test_dead_after_max_attempts_is_visible_and_can_be_retried(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver(500, 500, 200) as rx:
        settings = make_settings(
            notifications={**FAST, "max_attempts": 2, "endpoints": [json_endpoint("down", rx.url, secret_file)]}
        )
        store = Store(settings.db_path)
        metrics = Metrics()
        start(store, settings, workers, metrics)
        (nid,) = emit(store, Event(kind=EventKind.PLAN_DENIED, reason="no"), settings=settings)
        row = wait_state(store, nid, {"dead"}, 10)
        assert row.state == "dead" and row.attempts == 2 and row.last_error == "HTTP 500"
        assert [r.id for r in outbox.list_notifications(store, state="dead")] == [nid]
        assert counted(metrics.notifications_dead, "down", 1) == 1
        assert outbox.retry_dead(store, [nid]) == 1
        workers[0].wake()
        row = wait_state(store, nid, {"delivered"}, 10)
        assert row.state == "delivered"
        assert len(rx.hits) == 3


def test_a_hanging_receiver_costs_its_timeout_and_nothing_else(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver("hang") as stuck, receiver(200) as good:
        settings = make_settings(
            notifications={
                **FAST,
                "per_endpoint_concurrency": 2,
                "endpoints": [
                    json_endpoint("stuck", stuck.url, secret_file, timeout="6s"),
                    json_endpoint("good", good.url, secret_file),
                ],
            }
        )
        store = Store(settings.db_path)
        start(store, settings, workers)
        began = time.monotonic()
        queued: list[str] = []
        for n in range(3):
            t = time.monotonic()
            queued += emit(store, Event(kind=EventKind.RUN_STARTED, run_id=f"run{n}"), settings=settings)
            # Queuing never waits for a receiver (the stuck one holds its requests open for 6 s).
            # The bounds here sit well below that timeout, with room for a loaded machine.
            assert time.monotonic() - t < 3.0
        assert len(queued) == 6
        got = good.wait_for(3, timeout=4.5)
        assert len(got) == 3, "the healthy endpoint got everything while the other hung"
        assert time.monotonic() - began < 5.0
        # The stuck endpoint holds at most its per-endpoint slots.
        assert len(stuck.hits) <= 2
        stuck_ids = [r.id for r in outbox.list_notifications(store) if r.endpoint == "stuck"]
        first = stuck.hits[0].headers["X-Tailops-Delivery"] if stuck.hits else stuck_ids[0]
        row = wait_state(store, first, {"pending", "dead"}, 12)
        assert row.state == "pending" and row.last_error is not None and "6s" in row.last_error
        (attempt,) = outbox.list_attempts(store, first)[:1]
        assert attempt.outcome == "timeout"
        assert 5.5 <= attempt.finished_at - attempt.started_at < 10


def test_rows_survive_a_stop_and_a_new_worker_delivers_them(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver("hang", 200) as rx:
        settings = make_settings(notifications={**FAST, "endpoints": [json_endpoint("ops", rx.url, secret_file)]})
        store = Store(settings.db_path)
        # Queued while no worker runs (e.g. by a CLI process): stays pending.
        (nid,) = emit(store, Event(kind=EventKind.PLAN_APPROVED), settings=settings)
        first = start(store, settings, workers)
        rx.wait_for(1, timeout=5)  # the first worker is now stuck delivering it
        first.stop()
        row = outbox.get_notification(store, nid)
        assert row.state == "pending", "a stop gives the row in flight back"
        store.close()

        store2 = Store(settings.db_path)
        start(store2, settings, workers)
        row = wait_state(store2, nid, {"delivered"}, 5)
        assert row.state == "delivered"
        assert [h.headers["X-Tailops-Delivery"] for h in rx.hits] == [nid, nid]


_CRASHING_WORKER = """
import sys, time
from pathlib import Path
from tailops.config import load_config
from tailops.store import Store
from tailops.notify import Notifier
settings = load_config(Path(sys.argv[1]))
w = Notifier(Store(settings.db_path), settings)
w.start()
time.sleep(60)
"""


@pytest.mark.slow
def test_a_row_being_sent_when_the_process_died_is_sent_again(
    tmp_path: Path, secret_file: Path, workers: list[Notifier]
) -> None:
    import yaml

    from tailops.config import load_config

    with receiver("hang", 200) as rx:
        cfg = tmp_path / "config.yaml"
        endpoints = [json_endpoint("ops", rx.url, secret_file, timeout="0.5s")]
        cfg.write_text(
            yaml.safe_dump(
                {"server": {"data_dir": str(tmp_path / "data")}, "notifications": {**FAST, "endpoints": endpoints}}
            )
        )
        settings = load_config(cfg)
        store = Store(settings.db_path)
        (nid,) = emit(store, Event(kind=EventKind.RUN_SUCCEEDED, run_id="r9"), settings=settings)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.Popen([sys.executable, "-c", _CRASHING_WORKER, str(cfg)], env=env)
        try:
            assert len(rx.wait_for(1, timeout=20)) == 1, "the doomed worker started sending"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert outbox.get_notification(store, nid).state == "sending"
        start(store, settings, workers)
        row = wait_state(store, nid, {"delivered"}, 15)
        assert row.state == "delivered"
        second = rx.hits[1]
        assert second.headers["X-Tailops-Delivery"] == nid and second.headers["X-Tailops-Attempt"] == "2"


def test_slack_and_ntfy_receive_their_shapes(
    make_settings: Callable[..., Settings], workers: list[Notifier], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with receiver(200) as slack, receiver(200) as ntfy:
        monkeypatch.setenv("TEST_SLACK_URL", slack.url + "/T000/B000/XXXX")
        token_file = tmp_path / "ntfy.token"
        token_file.write_text("tk_ntfysecret123\n")
        settings = make_settings(
            server={"public_url": "https://ops.example.ts.net/mcp"},
            notifications={
                **FAST,
                "endpoints": [
                    {"name": "chat", "format": "slack", "secret_env": "TEST_SLACK_URL"},
                    {"name": "phone", "format": "ntfy", "url": ntfy.url, "secret_file": str(token_file)},
                ],
            },
        )
        plan = seed_plan(settings.db_path, ALICE, message=TOKEN_PARAM)
        store = Store(settings.db_path)
        start(store, settings, workers)
        emit(
            store, plan_event(EventKind.PLAN_DENIED, plan, approver="bob <b@x>", reason="not today"), settings=settings
        )
        (s_hit,) = slack.wait_for(1, timeout=10)
        (n_hit,) = ntfy.wait_for(1, timeout=10)

        assert s_hit.path == "/hook/T000/B000/XXXX"
        msg = json.loads(s_hit.body)
        assert set(msg) == {"text", "blocks"}
        link = f"https://ops.example.ts.net/review/plans/{plan.id}"
        assert msg["text"].startswith("Plan denied: tb_marker") and f"<{link}|review>" in msg["text"]
        assert "bob &lt;b@x&gt;" in msg["text"], "mrkdwn control characters are escaped"
        buttons = next(b for b in msg["blocks"] if b["type"] == "actions")["elements"]
        assert buttons[0]["url"] == link
        assert TOKEN_PARAM not in s_hit.body.decode()

        assert n_hit.headers["Title"] == "tailops: Plan denied"
        assert n_hit.headers["Priority"] == "3" and n_hit.headers["Tags"] == "no_entry"
        assert n_hit.headers["Click"] == link
        assert n_hit.headers["Authorization"] == "Bearer tk_ntfysecret123"
        assert n_hit.headers["Content-Type"].startswith("text/plain")
        text = n_hit.body.decode()
        assert "tb_marker" in text and "denied by bob <b@x>" in text and "reason: not today" in text
        assert TOKEN_PARAM not in text


def test_secrets_never_reach_the_store_or_the_logs(
    make_settings: Callable[..., Settings],
    secret_file: Path,
    workers: list[Notifier],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx's request lines included
    with receiver(500, 200) as rx, receiver(500, 200) as slack:
        live_slack = slack.url + "/services/T1/B1/liveslacksecret"
        # A second Slack URL points at a closed port: its error must not echo it either.
        from tests.netfixtures import free_port

        dead_slack = f"http://127.0.0.1:{free_port()}/services/T1/B1/deadslacksecret"
        monkeypatch.setenv("TEST_SLACK_URL", live_slack)
        monkeypatch.setenv("TEST_DEAD_SLACK_URL", dead_slack)
        settings = make_settings(
            notifications={
                **FAST,
                "max_attempts": 2,
                "endpoints": [
                    json_endpoint("ops", rx.url, secret_file),
                    {"name": "chat", "format": "slack", "secret_env": "TEST_SLACK_URL"},
                    {"name": "gone", "format": "slack", "secret_env": "TEST_DEAD_SLACK_URL"},
                ],
            }
        )
        store = Store(settings.db_path)
        start(store, settings, workers)
        ids = emit(store, Event(kind=EventKind.DRIFT_FOUND, check="nightly", hosts=2), settings=settings)
        assert len(ids) == 3
        for nid in ids:
            wait_state(store, nid, {"delivered", "dead"}, 10)
        states = {r.endpoint: r for r in outbox.list_notifications(store)}
        assert states["ops"].state == states["chat"].state == "delivered"
        gone = states["gone"]
        assert gone.state == "dead" and gone.last_error == "ConnectError: Connection refused"
    workers[0].stop()
    store.close()
    dump = "\n".join(sqlite3.connect(settings.db_path).iterdump())
    assert "HTTP Request: POST" in caplog.text, "httpx's request lines were captured (and cut)"
    for secret in (SECRET, "liveslacksecret", "deadslacksecret", "/services/T1"):
        assert secret not in dump
        assert secret not in caplog.text
    assert "ops" in dump and "chat" in dump


def test_expired_plans_are_announced_once(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver(200) as rx:
        settings = make_settings(notifications={**FAST, "endpoints": [json_endpoint("ops", rx.url, secret_file)]})
        plan = seed_plan(settings.db_path, ALICE)
        fresh = seed_plan(settings.db_path, ALICE, message="still valid")
        store = Store(settings.db_path)
        store.execute("UPDATE plans SET expires_at = ? WHERE id = ?", (time.time() - 5, plan.id))
        assert sweep_expired_plans(store, settings) == 1
        assert sweep_expired_plans(store, settings) == 0, "announced once"
        start(store, settings, workers)
        (hit,) = rx.wait_for(1, timeout=10)
        doc = json.loads(hit.body)
        assert (
            doc["kind"] == "plan.expired" and doc["plan_id"] == plan.id and doc["event_id"] == f"plan.expired:{plan.id}"
        )
        assert fresh.id not in hit.body.decode()


def test_the_runtime_runs_the_worker_and_emit_reaches_the_receiver(
    make_settings: Callable[..., Settings], secret_file: Path
) -> None:
    from tailops.runtime import Runtime

    with receiver("verify", secret=SECRET) as rx:
        settings = make_settings(notifications={**FAST, "endpoints": [json_endpoint("ops", rx.url, secret_file)]})
        rt = Runtime(settings)

        def running() -> bool:
            return rt.notifier.running

        assert not running()
        rt.start()
        try:
            assert running()
            (nid,) = emit(rt, Event(kind=EventKind.RUN_INTERRUPTED, run_id="r7", reason="server stopped"))
            (hit,) = rx.wait_for(1, timeout=10)
            assert hit.verified is True and json.loads(hit.body)["id"] == nid
            assert "tailops_notifications_pending" in rt.metrics.render().decode()
        finally:
            rt.stop()
        assert not running()


def test_without_endpoints_the_runtime_starts_no_worker(make_settings: Callable[..., Settings]) -> None:
    from tailops.runtime import Runtime

    rt = Runtime(make_settings())
    rt.start()
    try:
        assert not rt.notifier.running
        assert emit(rt, Event(kind=EventKind.RUN_FAILED)) == []
    finally:
        rt.stop()


def test_a_saturated_endpoint_neither_spins_the_worker_nor_starves_the_others(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver("hang") as stuck, receiver(200) as good:
        settings = make_settings(
            notifications={
                **FAST,
                "per_endpoint_concurrency": 1,
                "endpoints": [
                    json_endpoint("stuck", stuck.url, secret_file, timeout="20s", events=["run.started"]),
                    json_endpoint("good", good.url, secret_file, events=["run.failed"]),
                ],
            }
        )
        store = Store(settings.db_path)
        # A backlog bigger than the worker's candidate window, all for the stuck endpoint…
        with store.transaction() as conn:
            for n in range(300):
                outbox.enqueue_in(conn, settings, Event(kind=EventKind.RUN_STARTED, run_id=f"s{n}"))
        worker = start(store, settings, workers)
        assert len(stuck.wait_for(1, timeout=5)) == 1
        # …does not keep the other endpoint's row from going out at once,
        emit(store, Event(kind=EventKind.RUN_FAILED, run_id="f1"), settings=settings)
        worker.wake()
        assert len(good.wait_for(1, timeout=3)) == 1
        # and 299 due rows that cannot be sent do not make the loop spin (poll: 0.1 s).
        before = worker.cycles
        time.sleep(1.0)
        assert worker.cycles - before < 40
        assert len(stuck.hits) == 1


def test_redirects_are_not_followed(
    make_settings: Callable[..., Settings], secret_file: Path, workers: list[Notifier]
) -> None:
    with receiver(200) as elsewhere:
        with receiver(f"redirect:{elsewhere.url}") as rx:
            settings = make_settings(
                notifications={**FAST, "max_attempts": 1, "endpoints": [json_endpoint("ops", rx.url, secret_file)]}
            )
            store = Store(settings.db_path)
            start(store, settings, workers)
            (nid,) = emit(store, Event(kind=EventKind.RUN_FAILED), settings=settings)
            row = wait_state(store, nid, {"dead"}, 10)
        assert row.state == "dead" and row.last_status == 302
        assert row.last_error == "HTTP 302 (redirects are not followed)"
        assert elsewhere.hits == [], "the redirect target never saw the notification"
