"""get_drift and `tailops drift list` filtered by inventory group (children included).

Real server and MCP client, a real INI inventory read by ansible-inventory, drift results
stored as the checker stores them (raw rows: the check runs themselves are covered on the
container test bed by tests/integration/test_drift.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tailops.cli.main import app as cli_app
from tailops.config import Settings
from tailops.store import Store
from tests.servers import http_server, mcp_http_client

INVENTORY = "[web]\nweb-1\nweb-2\n\n[db]\ndb-1\n\n[dev]\ndev-1\n\n[prod:children]\nweb\ndb\n"


def seed_results(settings: Settings) -> None:
    store = Store(settings.db_path)
    try:
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO drift_runs (id, check_name, playbook, params, limit_pattern, started_at, finished_at,"
                " status, reason) VALUES ('r1', 'marker', 'tb_marker', '{}', NULL, 1.0, 2.0, 'done', NULL)"
            )
            conn.executemany(
                "INSERT INTO drift_results (run_id, check_name, host, state, changes, diff, after_apply, checked_at)"
                " VALUES ('r1', 'marker', ?, ?, ?, NULL, NULL, 2.0)",
                [
                    ("web-1", "drifted", '["Write the marker file"]'),
                    ("web-2", "in_line", "[]"),
                    ("db-1", "drifted", '["Write the marker file"]'),
                    ("dev-1", "drifted", '["Write the marker file"]'),
                ],
            )
    finally:
        store.close()


def settings_with_inventory(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(INVENTORY)
    settings = make_settings(changes={"inventory": str(inventory)})
    Store(settings.db_path).close()  # migrated
    seed_results(settings)
    return settings


async def call(url: str, token: str, args: dict[str, Any]) -> tuple[bool, str, Any]:
    async with mcp_http_client(url, token) as client:
        result = await client.call_tool("get_drift", args)
    return bool(result.is_error), result.content[0].text, result.structured_content  # type: ignore[union-attr]


async def test_get_drift_filters_by_group_with_children(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_with_inventory(make_settings, tmp_path)
    with http_server(settings) as srv:
        reader = srv.mint("rita", "readonly")
        is_error, text, report = await call(srv.url, reader, {"group": "prod"})
        assert not is_error, text
        # prod = web (web-1, web-2) + db (db-1), through [prod:children]; dev-1 is left out.
        assert {r["host"]: r["state"] for r in report["results"]} == {
            "web-1": "drifted",
            "db-1": "drifted",
            "web-2": "in_line",
        }
        assert report["drifted"] == 2
        _, _, both = await call(srv.url, reader, {"group": "prod", "host": "web-2"})
        assert [r["host"] for r in both["results"]] == ["web-2"]
        _, _, dev = await call(srv.url, reader, {"group": "dev", "check": "marker"})
        assert [r["host"] for r in dev["results"]] == ["dev-1"]
        # Bad input: one coded error each, naming what there is.
        is_error, text, _ = await call(srv.url, reader, {"group": "staging"})
        assert is_error and text.startswith("not_found:") and "no group 'staging'" in text and "prod" in text
        is_error, text, _ = await call(srv.url, reader, {"group": "prod;rm -rf"})
        assert is_error and text.startswith("invalid_input:") and "not an inventory group name" in text
        is_error, text, _ = await call(srv.url, reader, {"group": "x" * 200})
        assert is_error


def test_drift_list_group_on_the_cli(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_with_inventory(make_settings, tmp_path)
    cfg = tmp_path / "cli.yaml"
    data = {
        "server": {"data_dir": str(settings.server.data_dir)},
        "changes": {"inventory": str(tmp_path / "inventory.ini")},
    }
    cfg.write_text(json.dumps(data))
    listed = CliRunner().invoke(cli_app, ["drift", "list", "--group", "web", "--json", "--config", str(cfg)])
    assert listed.exit_code == 0, listed.output
    assert sorted(r["host"] for r in json.loads(listed.stdout)["results"]) == ["web-1", "web-2"]
    unknown = CliRunner().invoke(cli_app, ["drift", "list", "--group", "nope", "--config", str(cfg)])
    assert unknown.exit_code != 0 and "no group 'nope'" in unknown.stderr and len(unknown.stderr.splitlines()) == 1
