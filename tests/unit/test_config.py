"""Config loading: file, environment, defaults, and one clear error per bad input."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tailops.config import load_config
from tailops.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_defaults_are_safe_without_a_file(tmp_path: Path) -> None:
    s = load_config(write(tmp_path, ""))
    assert s.server.host == "127.0.0.1"
    assert s.server.transport == "http"
    assert s.server.read_only is False
    assert s.auth.unsafe_no_auth is False
    assert "changes:approve" not in s.auth.stdio_scopes
    assert [str(p) for p in s.files.allowed_roots] == ["/var/log"]
    assert s.changes.approval.high == "manual"
    assert s.mcp_url == "http://127.0.0.1:8787/mcp"


def test_file_values_apply(tmp_path: Path) -> None:
    s = load_config(write(tmp_path, "server:\n  port: 9100\n  read_only: true\nchanges:\n  plan_ttl: 30m\n"))
    assert s.server.port == 9100
    assert s.server.read_only is True
    assert s.changes.plan_ttl == timedelta(minutes=30)


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOPS_SERVER__PORT", "9200")
    monkeypatch.setenv("TAILOPS_TOOLS__GROUPS", '["system"]')
    s = load_config(write(tmp_path, "server:\n  port: 9100\n"))
    assert s.server.port == 9200
    assert s.tools.groups == ["system"]


def test_config_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server:\n  port: 9300\n")
    monkeypatch.setenv("TAILOPS_CONFIG", str(path))
    assert load_config().server.port == 9300


def test_ipv6_host_is_bracketed_in_url(tmp_path: Path) -> None:
    s = load_config(write(tmp_path, "server:\n  host: '::1'\n  port: 1234\n"))
    assert s.mcp_url == "http://[::1]:1234/mcp"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("server:\n  port: abc\n", "`server.port`"),
        ("server:\n  port: 70000\n", "`server.port`"),
        ("server:\n  prot: 80\n", "`server.prot`: unknown key"),
        ("sever:\n  port: 80\n", "`sever`: unknown key"),
        ("server: [1, 2\n", "not valid YAML at line"),
        ("- a\n- b\n", "must hold a mapping"),
        ("auth:\n  stdio_scopes: [readonly, changes:approve]\n", "cannot be given to the stdio user"),
        ("auth:\n  stdio_scopes: [superuser]\n", "`auth.stdio_scopes.0`"),
        ("changes:\n  plan_ttl: soon\n", "`changes.plan_ttl`"),
        ("tools:\n  groups: [system, toys]\n", "`tools.groups.1`"),
        ("changes:\n  approval:\n    high: auto\n", "`changes.approval.high`"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert fragment in info.value.message
    assert "\n" not in info.value.message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_cli_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: abc\n")
    exe = str(Path(sys.executable).with_name("tailops"))
    proc = subprocess.run([exe, "config", "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: bad config in {path}: `server.port`: Input should be a valid integer, unable to parse string "
        "as an integer."
    ]


def test_cli_serve_with_bad_config_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "auth:\n  rate_limit_per_minute: 0\n")
    exe = str(Path(sys.executable).with_name("tailops"))
    proc = subprocess.run([exe, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "`auth.rate_limit_per_minute`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_serve_rejects_unknown_transport(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    exe = str(Path(sys.executable).with_name("tailops"))
    proc = subprocess.run(
        [exe, "serve", "--config", str(path), "--transport", "carrier-pigeon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "`server.transport`" in proc.stderr
