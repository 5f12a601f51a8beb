"""``tailops notifications``: list/show/retry/test on a real store and real local
receivers; bad input is one stderr line and exit 2; retry and test are audited;
nothing printed holds a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailops.config import load_config
from tailops.notify import Event, EventKind, emit, outbox
from tailops.store import Store
from tests.clihelpers import cli_records, group_runner, one_error_line
from tests.webhooks import receiver

run = group_runner("notifications")
KEY = "cli-test-hmac-key-93ab"


def write_config(tmp_path: Path, endpoints: list[dict[str, Any]]) -> Path:
    key = tmp_path / "hook.key"
    key.write_text(KEY)
    for ep in endpoints:
        if ep.get("format", "json") == "json":
            ep.setdefault("secret_file", str(key))
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"data_dir": str(tmp_path / "data")},
                "notifications": {"endpoints": endpoints, "backoff_min": 0.2, "backoff_max": 1, "poll_interval": 0.1},
            }
        )
    )
    return path


def test_test_command_delivers_a_signed_test_and_audits_it(tmp_path: Path) -> None:
    with receiver("verify", secret=KEY) as rx:
        cfg = write_config(tmp_path, [{"name": "ops", "url": rx.url, "events": ["run.failed"]}])
        result = run(cfg, "test")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "ops: delivered HTTP 200"
        (hit,) = rx.hits
        assert hit.verified is True and json.loads(hit.body)["kind"] == "test"
    settings = load_config(cfg)
    (record,) = cli_records(settings)
    assert record["command"] == "notifications test" and record["outcome"] == "ok"
    listed = run(cfg, "list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines()[0] == "0 pending, 0 sending, 1 delivered, 0 dead"
    assert "ops" in listed.stdout and "test" in listed.stdout and KEY not in listed.stdout


def test_test_command_reports_a_failing_endpoint_and_exits_1(tmp_path: Path) -> None:
    with receiver(500) as bad, receiver(200) as good:
        cfg = write_config(tmp_path, [{"name": "bad", "url": bad.url}, {"name": "good", "url": good.url}])
        result = run(cfg, "test")
        assert result.exit_code == 1
        assert sorted(result.stdout.strip().splitlines()) == [
            "bad: NOT delivered HTTP 500",
            "good: delivered HTTP 200",
        ]
        only = run(cfg, "test", "--endpoint", "good")
        assert only.exit_code == 0 and len(good.hits) == 2 and len(bad.hits) == 1
    store = Store(load_config(cfg).db_path)
    states = {r.endpoint: r.state for r in outbox.list_notifications(store) if r.endpoint == "bad"}
    assert states == {"bad": "dead"}, "a test gets one attempt; no server retries it later"


def test_show_and_retry_of_a_dead_notification(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "ops", "url": "http://127.0.0.1:9/hook"}])
    settings = load_config(cfg)
    store = Store(settings.db_path)
    (nid,) = emit(store, Event(kind=EventKind.RUN_FAILED, run_id="r1"), settings=settings)
    store.execute("UPDATE notifications SET state = 'dead', attempts = 8, last_error = 'HTTP 500' WHERE id = ?", (nid,))
    shown = run(cfg, "show", nid[:10])
    assert shown.exit_code == 0 and f"notification {nid}" in shown.stdout and "dead after 8" in shown.stdout
    dead = run(cfg, "list", "--state", "dead")
    assert nid[:12] in dead.stdout and "HTTP 500" in dead.stdout
    retried = run(cfg, "retry", nid[:8])
    assert retried.exit_code == 0 and retried.stdout.strip() == "1 notification(s) due again."
    row = outbox.get_notification(store, nid)
    assert row.state == "pending" and row.attempts == 0
    store.execute("UPDATE notifications SET state = 'dead'")
    assert run(cfg, "retry", "--all").stdout.strip() == "1 notification(s) due again."
    records = [r for r in cli_records(settings) if r["command"] == "notifications retry"]
    assert [r["outcome"] for r in records] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("retry",), "give notification ids or --all"),
        (("retry", "abcdef12", "--all"), "give notification ids or --all"),
        (("retry", "xyz"), "not a notification id"),
        (("retry", "abcdef1234"), "no notification"),
        (("show", "12"), "not a notification id"),
        (("list", "--state", "lost"), "unknown state"),
        (("test", "--endpoint", "nope"), "no endpoint named nope"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    cfg = write_config(tmp_path, [{"name": "ops", "url": "http://127.0.0.1:9/hook"}])
    result = run(cfg, *args)
    assert result.exit_code == 2, result.output
    assert needle in one_error_line(result)


def test_retry_of_a_live_row_is_refused_and_audited(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "ops", "url": "http://127.0.0.1:9/hook"}])
    settings = load_config(cfg)
    (nid,) = emit(Store(settings.db_path), Event(kind=EventKind.RUN_FAILED), settings=settings)
    result = run(cfg, "retry", nid)
    assert result.exit_code == 2 and "pending, not dead" in one_error_line(result)
    (record,) = cli_records(settings)
    assert record["outcome"] == "error"


def test_without_endpoints_test_says_so_and_a_bad_url_is_a_config_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [])
    assert "no notification endpoints are configured" in one_error_line(run(cfg, "test"))
    bad = write_config(tmp_path, [{"name": "ops", "url": "file:///etc/shadow"}])
    result = run(bad, "list")
    assert result.exit_code == 2
    assert "`notifications.endpoints.0`" in one_error_line(result) and "http:// or https://" in result.stderr
