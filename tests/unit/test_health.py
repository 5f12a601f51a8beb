"""``tailops --version`` and ``/health`` say what an upgrade changes: the tailops
version, the store schema and which catalog (its lock file's SHA-256 and how many
playbooks it pins); ``/health`` does so without naming a path."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
import yaml
from typer.testing import CliRunner

from tailops import __version__
from tailops.cli.main import app
from tailops.config import Settings
from tailops.store import load_migrations
from tests.helpers import REPO_ROOT
from tests.servers import http_server

LOCK = REPO_ROOT / "playbooks" / "catalog.lock.json"
LATEST = load_migrations()[-1].version


def test_version_names_catalog_lock_and_schema(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"server": {"data_dir": str(tmp_path / "d")}}))
    monkeypatch.setenv("TAILOPS_CONFIG", str(cfg))
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"tailops {__version__}"
    pinned = len(json.loads(LOCK.read_text()))
    assert lines[1].startswith(
        f"catalog: {pinned} playbooks, lock sha256 {hashlib.sha256(LOCK.read_bytes()).hexdigest()}"
    )
    assert lines[2] == f"store schema: v{LATEST} (migrations run on start)"


def test_version_with_a_catalog_without_lock_or_a_broken_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pb").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"changes": {"playbooks_dir": str(tmp_path / "pb")}}))
    monkeypatch.setenv("TAILOPS_CONFIG", str(cfg))
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and "(the catalog has no lock file)" in result.stdout
    cfg.write_text("server: [not, a, mapping]\n")
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.splitlines()[1].startswith("catalog: unknown (bad config")


def test_health_shows_schema_and_catalog_without_paths(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with http_server(settings) as srv:
        r = httpx2.get(f"{srv.base_url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["schema_version"] == LATEST and body["checks"]["store"]["detail"] == f"schema v{LATEST}"
    assert body["catalog"] == {
        "lock_sha256": hashlib.sha256(LOCK.read_bytes()).hexdigest(),
        "playbooks": len(json.loads(LOCK.read_text())),
        "problem": None,
    }
    assert str(REPO_ROOT) not in r.text and str(settings.server.data_dir) not in r.text
