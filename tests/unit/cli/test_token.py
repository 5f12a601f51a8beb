"""``tailops token``: every command, its bad inputs (one stderr line, exit 2), its audit record."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from tailops.auth.tokens import load_public_key, mint_token, verify_token
from tailops.cli.main import app
from tailops.config import Settings
from tailops.store import Store

runner = CliRunner()


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"server": {"data_dir": str(tmp_path / "data")}, "auth": {"max_token_ttl": "7d"}}))
    return path


def run(cfg: Path, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["token", *args, "--config", str(cfg)], input=stdin)


def keygen(cfg: Path) -> None:
    assert run(cfg, "keygen").exit_code == 0


def mint(cfg: Path, *extra: str, subject: str = "alice", scopes: str = "readonly", ttl: str = "1h") -> Result:
    return run(cfg, "mint", "--subject", subject, "--scopes", scopes, "--ttl", ttl, *extra)


def audit_records(settings: Settings) -> list[dict[str, object]]:
    if not settings.audit_path.exists():
        return []
    return [json.loads(x) for x in settings.audit_path.read_text().splitlines()]


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_keygen_creates_the_data_dir_0700(tmp_path: Path) -> None:
    """The data dir holds the keys, the store and the audit log: created 0700 as documented,
    whatever the umask (it was 0755 with the usual umask before)."""
    path = tmp_path / "config.yaml"
    data = tmp_path / "deep" / "data"
    path.write_text(yaml.safe_dump({"server": {"data_dir": str(data)}}))
    result = run(path, "keygen")
    assert result.exit_code == 0, result.output
    for directory in (data, data.parent, data / "keys", data / "audit"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_keygen_writes_0600_and_refuses_overwrite(cfg: Path, settings: Settings) -> None:
    result = run(cfg, "keygen")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(settings.private_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.public_key_path.stat().st_mode) == 0o644
    assert "PRIVATE KEY" not in result.output
    before = settings.public_key_path.read_bytes()
    again = run(cfg, "keygen")
    assert again.exit_code == 2
    assert "already exists" in one_error_line(again)
    assert settings.public_key_path.read_bytes() == before
    forced = run(cfg, "keygen", "--force")
    assert forced.exit_code == 0
    assert settings.public_key_path.read_bytes() != before
    records = audit_records(settings)
    assert [(r["command"], r["outcome"]) for r in records] == [
        ("token keygen", "ok"),
        ("token keygen", "error"),
        ("token keygen", "ok"),
    ]
    assert all(r["principal"]["transport"] == "cli" for r in records)  # type: ignore[index]


def test_mint_prints_only_the_token_on_stdout(cfg: Path, settings: Settings) -> None:
    keygen(cfg)
    result = mint(cfg, "--note", "laptop", scopes="readonly container:write", ttl="24h")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = verify_token(
        token,
        public_key=load_public_key(settings.public_key_path),
        audience=settings.mcp_url,
        issuer=settings.auth.issuer,
        store=Store(settings.db_path),
    )
    assert claims["sub"] == "alice" and claims["scope"] == "readonly container:write"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert claims["jti"] in result.stderr and "expires=" in result.stderr
    assert token not in result.stderr
    text = settings.audit_path.read_text()
    assert token not in text and token.split(".")[2] not in text
    rec = audit_records(settings)[-1]
    assert rec["command"] == "token mint" and rec["jti"] == claims["jti"] and rec["outcome"] == "ok"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subject", "alice", "--scopes", "readonly", "--ttl", "soon"], "not a duration"),
        (["--subject", "alice", "--scopes", "readonly", "--ttl", "30d"], "max_token_ttl"),
        (["--subject", "alice", "--scopes", "readonly", "--ttl", "0s"], "at least 1s"),
        (["--subject", "alice", "--scopes", "readonly root", "--ttl", "1h"], "unknown scope"),
        (["--subject", "alice", "--scopes", "", "--ttl", "1h"], "no scopes"),
        (["--subject", "al ice", "--scopes", "readonly", "--ttl", "1h"], "subject"),
        (["--subject", "alice", "--scopes", "readonly", "--ttl", "1h", "--note", "a\nb"], "note"),
    ],
)
def test_mint_bad_input_is_one_line_exit_2(cfg: Path, settings: Settings, args: list[str], message: str) -> None:
    keygen(cfg)
    result = run(cfg, "mint", *args)
    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert result.stdout == ""
    assert audit_records(settings)[-1]["outcome"] == "error"


def test_mint_requires_subject_scopes_and_ttl(cfg: Path) -> None:
    keygen(cfg)
    for missing in ("--subject", "--scopes", "--ttl"):
        args = {"--subject": "alice", "--scopes": "readonly", "--ttl": "1h"}
        del args[missing]
        result = run(cfg, "mint", *[x for kv in args.items() for x in kv])
        assert result.exit_code == 2
        assert missing in result.stderr


def test_mint_without_a_key_says_to_run_keygen(cfg: Path) -> None:
    result = mint(cfg)
    assert result.exit_code == 2
    assert "tailops token keygen" in one_error_line(result)


def test_mint_refuses_a_world_readable_private_key(cfg: Path, settings: Settings) -> None:
    keygen(cfg)
    settings.private_key_path.chmod(0o644)
    result = mint(cfg)
    assert result.exit_code == 2
    assert "chmod 600" in one_error_line(result)


def test_mint_fails_closed_when_the_audit_log_cannot_be_written(cfg: Path, settings: Settings) -> None:
    keygen(cfg)
    settings.audit_path.rename(settings.audit_path.with_name("elsewhere"))
    settings.audit_path.mkdir()  # the live audit file is now a directory: writes fail
    result = mint(cfg)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "not issued" in result.stderr
    store = Store(settings.db_path)
    rows = store.query("SELECT revoked_at FROM tokens")
    assert len(rows) == 1 and rows[0]["revoked_at"] is not None


def test_revoke_list_and_inspect(cfg: Path, settings: Settings) -> None:
    keygen(cfg)
    token = mint(cfg).stdout.strip()
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]

    listed = run(cfg, "list")
    assert listed.exit_code == 0
    assert jti in listed.stdout and "active" in listed.stdout and "SUBJECT" in listed.stdout

    ok = run(cfg, "inspect", token)
    assert ok.exit_code == 0, ok.output
    assert "status: valid" in ok.stdout and "sub: alice" in ok.stdout
    assert token.split(".")[2] not in ok.stdout  # never the signature

    from_stdin = run(cfg, "inspect", "-", stdin=f"Bearer {token}\n")
    assert from_stdin.exit_code == 0 and "status: valid" in from_stdin.stdout

    revoked = run(cfg, "revoke", jti)
    assert revoked.exit_code == 0 and f"revoked {jti}" in revoked.stdout
    again = run(cfg, "revoke", jti)
    assert again.exit_code == 0 and "already revoked" in again.stdout

    after = run(cfg, "inspect", token)
    assert after.exit_code == 1 and "status: revoked" in after.stdout

    rows = [json.loads(x) for x in run(cfg, "list", "--json").stdout.splitlines()]
    assert rows[0]["jti"] == jti and rows[0]["status"] == "revoked" and rows[0]["revoked_by"].startswith("cli:")

    foreign = run(cfg, "revoke", "b" * 32)
    assert foreign.exit_code == 0 and "not issued by this store" in foreign.stdout
    commands = [(r["command"], r["outcome"]) for r in audit_records(settings)]
    assert commands.count(("token revoke", "ok")) == 3


def test_list_on_an_empty_store(cfg: Path) -> None:
    result = run(cfg, "list")
    assert result.exit_code == 0 and "no tokens yet" in result.stderr


@pytest.mark.parametrize("jti", ["", "has space", "x" * 200, "semi;colon"])
def test_revoke_bad_jti_is_exit_2(cfg: Path, settings: Settings, jti: str) -> None:
    result = run(cfg, "revoke", jti)
    assert result.exit_code == 2
    assert "jti" in one_error_line(result)
    assert audit_records(settings)[-1]["outcome"] == "error"


def test_inspect_expired_forged_and_garbage(cfg: Path, settings: Settings) -> None:
    keygen(cfg)
    expired = mint_token(
        private_key_path=settings.private_key_path,
        subject="old",
        scopes="readonly",
        ttl=timedelta(hours=1),
        max_ttl=timedelta(days=7),
        audience=settings.mcp_url,
        issuer=settings.auth.issuer,
        now=0,
    ).token
    result = run(cfg, "inspect", expired)
    assert result.exit_code == 1 and "status: expired" in result.stdout

    claims = jwt.decode(expired, options={"verify_signature": False})
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    result = run(cfg, "inspect", forged)
    assert result.exit_code == 1 and "status: invalid (token signature is invalid.)" in result.stdout

    for garbage in ("hello", "a.b.c", ""):
        result = run(cfg, "inspect", garbage)
        assert result.exit_code == 2, garbage
        one_error_line(result)


def test_inspect_without_a_public_key_is_a_config_error(cfg: Path, settings: Settings) -> None:
    keygen(cfg)
    token = mint(cfg).stdout.strip()
    settings.public_key_path.unlink()
    result = run(cfg, "inspect", token)
    assert result.exit_code == 2
    assert "no token public key" in one_error_line(result)


def test_bad_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("auth: [unclosed\n")
    result = runner.invoke(app, ["token", "list", "--config", str(bad)])
    assert result.exit_code == 2
    one_error_line(result)


def test_scopes_lists_every_scope_with_its_tools() -> None:
    result = runner.invoke(app, ["token", "scopes"])
    assert result.exit_code == 0
    for scope in ("readonly", "changes:approve", "admin"):
        assert scope in result.stdout
    assert "get_system_status" in result.stdout
    md = runner.invoke(app, ["token", "scopes", "--markdown"])
    assert md.stdout.startswith("| scope |")


def test_real_console_script_mint_is_capturable(cfg: Path, settings: Settings) -> None:
    exe = str(Path(sys.executable).with_name("tailops"))
    subprocess.run([exe, "token", "keygen", "--config", str(cfg)], check=True, capture_output=True, timeout=60)
    proc = subprocess.run(
        [exe, "token", "mint", "--subject", "ci-bot", "--scopes", "readonly", "--ttl", "2h", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert proc.stdout.count("\n") == 1 and token.count(".") == 2
    assert (
        verify_token(
            token,
            public_key=load_public_key(settings.public_key_path),
            audience=settings.mcp_url,
            issuer=settings.auth.issuer,
            store=None,
        )["sub"]
        == "ci-bot"
    )
    bad = subprocess.run(
        [exe, "token", "mint", "--subject", "x", "--scopes", "nope", "--ttl", "1h", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: unknown scope")
