"""``tailops init``: the files, their modes, the refusals, the audit record.

``--system`` is exercised for real (useradd, /etc, /var/lib) inside a container in
tests/deploy/test_init_system.py; it never runs on the test machine itself.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner, Result

from tailops.audit import verify as verify_audit
from tailops.cli.main import app
from tailops.config import load_config

runner = CliRunner()


def init(*args: str) -> Result:
    return runner.invoke(app, ["init", *args])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mode and content (a refused init must leave it as is)."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[str(path.relative_to(root))] = (st.st_mode, content)
    return out


def test_init_writes_config_keys_and_data_dir_with_safe_modes(tmp_path: Path) -> None:
    cfg_dir, data_dir = tmp_path / "etc", tmp_path / "data"
    result = init("--config-dir", str(cfg_dir), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    config = cfg_dir / "config.yaml"
    assert mode(data_dir) == 0o700 and mode(cfg_dir) == 0o700
    assert mode(config) == 0o600
    assert mode(data_dir / "keys") == 0o700
    assert mode(data_dir / "keys" / "token.key") == 0o600
    assert mode(data_dir / "keys" / "token.pub") == 0o644
    # The generated config loads and names the data dir; everything else is the default.
    settings = load_config(config)
    assert settings.server.data_dir == data_dir
    assert settings == load_config(None, server={"data_dir": data_dir})
    assert settings.server.proxy_socket is None  # only --system names /run/tailops/proxy.sock
    assert "# Address the HTTP transport listens on." in config.read_text()
    # The two keys are one pair.
    private = serialization.load_pem_private_key((data_dir / "keys" / "token.key").read_bytes(), None)
    public = serialization.load_pem_public_key((data_dir / "keys" / "token.pub").read_bytes())
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert private.public_key().public_bytes(*raw) == public.public_bytes(*raw)
    # Next steps are printed; the private key is not.
    assert "Next steps:" in result.stdout and "tailops token mint" in result.stdout
    assert "PRIVATE KEY" not in result.output
    # Audited in the new install's log, chain intact.
    lines = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert [(e["command"], e["outcome"]) for e in lines] == [("init", "ok")]
    assert lines[0]["args"]["data_dir"] == str(data_dir)
    assert verify_audit(settings.audit_path).ok


def test_init_uses_the_user_dirs_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    result = init()
    assert result.exit_code == 0, result.output
    config = tmp_path / "xdg-config" / "tailops" / "config.yaml"
    assert load_config(config).server.data_dir == tmp_path / "xdg-state" / "tailops"
    assert (tmp_path / "xdg-state" / "tailops" / "keys" / "token.pub").is_file()


@pytest.mark.parametrize(
    "existing",
    ["config", "private_key", "public_key", "data_not_empty", "data_is_file", "config_symlink", "data_symlink"],
)
def test_init_refuses_any_existing_target_and_writes_nothing(tmp_path: Path, existing: str) -> None:
    cfg_dir, data_dir = tmp_path / "etc", tmp_path / "data"
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    if existing == "config":
        cfg_dir.mkdir()
        (cfg_dir / "config.yaml").write_text("server: {}\n")
    elif existing in ("private_key", "public_key"):
        (data_dir / "keys").mkdir(parents=True)
        (data_dir / "keys" / ("token.key" if existing == "private_key" else "token.pub")).write_text("x")
    elif existing == "data_not_empty":
        data_dir.mkdir()
        (data_dir / "tailops.db").write_text("")
    elif existing == "data_is_file":
        data_dir.write_text("")
    elif existing == "config_symlink":
        cfg_dir.mkdir()
        (cfg_dir / "config.yaml").symlink_to(victim)  # a planted link must not be followed
    elif existing == "data_symlink":
        data_dir.symlink_to(tmp_path / "elsewhere")
    before = tree(tmp_path)
    result = init("--config-dir", str(cfg_dir), "--data-dir", str(data_dir))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: refusing to overwrite: ")
    assert "nothing was changed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree(tmp_path) == before
    assert victim.read_text() == "keep me\n"


def test_an_empty_existing_data_dir_is_used_and_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    result = init("--config-dir", str(tmp_path / "etc"), "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert mode(data_dir) == 0o700


def test_a_refused_reinit_is_audited_in_the_existing_install(tmp_path: Path) -> None:
    args = ("--config-dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"))
    assert init(*args).exit_code == 0
    config = (tmp_path / "etc" / "config.yaml").read_bytes()
    assert init(*args).exit_code == 2
    assert (tmp_path / "etc" / "config.yaml").read_bytes() == config
    settings = load_config(tmp_path / "etc" / "config.yaml")
    lines = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert [(e["command"], e["outcome"]) for e in lines] == [("init", "ok"), ("init", "error")]
    assert "refusing to overwrite" in lines[1]["error"]
    assert verify_audit(settings.audit_path).ok


def test_config_dir_and_data_dir_must_differ(tmp_path: Path) -> None:
    result = init("--config-dir", str(tmp_path / "x"), "--data-dir", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "two separate directories" in result.stderr
    assert not (tmp_path / "x").exists()


def test_system_layout_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = init("--system", "--config-dir", str(tmp_path / "etc"), "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 1
    assert "must run as root" in result.stderr
    assert list(tmp_path.iterdir()) == []
