"""Key rotation: a second public key accepted during a rotation window.

Through one real HTTP server that is never restarted: tokens of the old key keep
working after ``tailops token keygen --rotate`` (tokens with the old ``kid`` and
old tokens without any ``kid``), new tokens work at once, and after
``tailops token retire-key`` the old ones get 401, even one the server had verified
and cached. Forgeries are refused: a token naming the wrong ``kid``, a foreign key
claiming a known ``kid``, an unknown ``kid``, a malformed one; unsafe files in the
previous-keys directory are refused, and the CLI's bad inputs are one-line errors.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from tailops.auth import tokens
from tailops.auth.tokens import KeyRing, TokenVerifier, generate_keypair, key_id, load_public_key
from tailops.cli.main import app
from tailops.config import Settings, load_config
from tailops.errors import AuthError, ConfigError
from tailops.store import Store
from tests.servers import RunningServer, http_server, mcp_http_client

runner = CliRunner()


def cli(cfg: Path, *args: str) -> Result:
    return runner.invoke(app, ["token", *args, "--config", str(cfg)])


def status(srv: RunningServer, token: str) -> int:
    return httpx2.get(f"{srv.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}).status_code


def forge(srv: RunningServer, key: Ed25519PrivateKey, headers: dict[str, Any] | None, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": srv.settings.auth.issuer,
        "sub": "mallory",
        "scope": "admin",
        "aud": srv.url,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": os.urandom(8).hex(),
        **claims,
    }
    if headers is not None and not isinstance(headers.get("kid", ""), str):
        # PyJWT will not encode such a header; build the JWS by hand.
        def part(value: dict[str, Any]) -> bytes:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

        signing_input = part({"alg": "EdDSA", "typ": "JWT", **headers}) + b"." + part(body)
        signature = base64.urlsafe_b64encode(key.sign(signing_input)).rstrip(b"=")
        return (signing_input + b"." + signature).decode()
    return jwt.encode(body, key, algorithm="EdDSA", headers=headers)


def private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"server": {"data_dir": str(tmp_path / "data")}}))
    settings = load_config(path)
    generate_keypair(settings.private_key_path, settings.public_key_path)
    return path


async def test_old_tokens_work_until_the_old_key_is_retired(cfg: Path) -> None:
    settings = load_config(cfg)
    with http_server(settings) as srv:
        old_token = srv.mint("alice", "admin")
        old_kid = key_id(load_public_key(settings.public_key_path))
        assert jwt.get_unverified_header(old_token)["kid"] == old_kid
        old_private = private_key(settings.private_key_path)
        no_kid_token = forge(srv, old_private, None, sub="legacy")  # minted before tokens had a kid
        assert "kid" not in jwt.get_unverified_header(no_kid_token)
        assert status(srv, old_token) == 200 and status(srv, no_kid_token) == 200

        # The running server picks the rotation up: no restart.
        rotated = runner.invoke(app, ["token", "keygen", "--rotate", "--config", str(cfg)])
        assert rotated.exit_code == 0, rotated.output
        new_kid = key_id(load_public_key(settings.public_key_path))
        assert new_kid != old_kid and old_kid in rotated.stdout and new_kid in rotated.stdout
        assert (settings.private_key_path.stat().st_mode & 0o777) == 0o600
        assert private_key(settings.private_key_path).public_key().public_bytes_raw() != (
            old_private.public_key().public_bytes_raw()
        )
        new_token = srv.mint("bob", "admin")
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        assert status(srv, old_token) == 200, "old-key tokens must work during the rotation window"
        assert status(srv, no_kid_token) == 200
        assert status(srv, new_token) == 200
        async with mcp_http_client(srv.url, old_token) as client:  # a real MCP client, too
            assert not (await client.call_tool("health_check", {})).is_error

        listed = cli(cfg, "keys")
        assert listed.exit_code == 0
        rows = [line.split()[:2] for line in listed.stdout.splitlines()]
        assert rows == [[new_kid, "current"], [old_kid, "previous"]]

        retired = cli(cfg, "retire-key", old_kid)
        assert retired.exit_code == 0, retired.output
        assert status(srv, old_token) == 401  # cached before, refused now
        assert status(srv, no_kid_token) == 401
        assert status(srv, new_token) == 200
        r = httpx2.get(srv.url, headers={"Authorization": f"Bearer {old_token}"})
        assert r.json()["error"]["message"] == tokens.UNKNOWN_KEY
        metrics = httpx2.get(f"{srv.base_url}/metrics", headers={"Authorization": f"Bearer {new_token}"}).text
        assert 'tailops_auth_failures_total{reason="unknown_key"}' in metrics

    records = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    cli_records = [(r["command"], r["outcome"]) for r in records if r.get("kind") == "cli"]
    assert ("token keygen", "ok") in cli_records and ("token retire-key", "ok") in cli_records
    rotation = next(r for r in records if r.get("command") == "token keygen" and r["args"]["rotate"])
    assert (rotation["old_kid"], rotation["new_kid"]) == (old_kid, new_kid)


def test_forged_and_wrong_kid_tokens_are_refused(cfg: Path) -> None:
    settings = load_config(cfg)
    with http_server(settings) as srv:
        old_private = private_key(settings.private_key_path)
        old_kid = key_id(old_private.public_key())
        assert cli(cfg, "keygen", "--rotate").exit_code == 0
        new_kid = key_id(load_public_key(settings.public_key_path))
        mallory = Ed25519PrivateKey.generate()
        cases = {
            # the old key's signature under the new key's id: checked against that key only
            "wrong kid": (forge(srv, old_private, {"kid": new_kid}), tokens.BAD_SIGNATURE),
            # a foreign key claiming a known id
            "foreign key, current kid": (forge(srv, mallory, {"kid": new_kid}), tokens.BAD_SIGNATURE),
            "foreign key, previous kid": (forge(srv, mallory, {"kid": old_kid}), tokens.BAD_SIGNATURE),
            "foreign key, no kid": (forge(srv, mallory, None), tokens.BAD_SIGNATURE),
            "unknown kid": (forge(srv, mallory, {"kid": key_id(mallory.public_key())}), tokens.UNKNOWN_KEY),
            "kid not hex": (forge(srv, old_private, {"kid": "../../token.pub"}), tokens.MALFORMED),
            "kid not a string": (forge(srv, old_private, {"kid": 7}), tokens.MALFORMED),
        }
        for name, (token, message) in cases.items():
            r = httpx2.get(srv.url, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, name
            assert r.json()["error"]["message"] == message, name
        # The genuine old token with its own kid still works in the window.
        assert status(srv, forge(srv, old_private, {"kid": old_kid})) == 200


def test_unsafe_previous_keys_are_refused(cfg: Path, tmp_path: Path) -> None:
    settings = load_config(cfg)
    store = Store(settings.db_path)
    try:
        assert cli(cfg, "keygen", "--rotate").exit_code == 0
        directory = settings.previous_keys_dir
        (old_file,) = directory.iterdir()
        # Group-writable directory: someone else could add a key. The server does not start.
        os.chmod(directory, 0o770)
        with pytest.raises(ConfigError, match="writable by group/others"):
            TokenVerifier.from_config(settings, store)
        os.chmod(directory, 0o700)
        verifier = TokenVerifier.from_config(settings, store)
        # A key added later under a name that is not its kid is refused; the running
        # verifier keeps the keys it had (fails closed for the new file only).
        mallory = Ed25519PrivateKey.generate()
        pem = mallory.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (directory / old_file.name).rename(directory / "keep.tmp")
        (directory / old_file.name).write_bytes(pem)
        os.chmod(directory / old_file.name, 0o644)
        with pytest.raises(ConfigError, match="its file must be named"):
            KeyRing(settings.public_key_path, directory)
        token = forge_for(settings, mallory, key_id(mallory.public_key()))
        with pytest.raises(AuthError) as info:
            verifier.verify_claims(token)
        assert info.value.message == tokens.UNKNOWN_KEY
    finally:
        store.close()


def forge_for(settings: Settings, key: Ed25519PrivateKey, kid: str) -> str:
    now = int(time.time())
    claims = {
        "iss": settings.auth.issuer,
        "sub": "mallory",
        "scope": "admin",
        "aud": settings.mcp_url,
        "iat": now,
        "exp": now + 60,
        "jti": "x" * 16,
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def test_cli_bad_inputs(cfg: Path, tmp_path: Path) -> None:
    settings = load_config(cfg)
    for args, code, text in [
        (("retire-key", "nothex"), 2, "16 hex digits"),
        (("retire-key", "0123456789abcdef"), 2, "no previous key 0123456789abcdef"),
        (("keygen", "--rotate", "--force"), 2, "exclude each other"),
        (("retire-key", key_id(load_public_key(settings.public_key_path))), 2, "is the current key"),
    ]:
        result = cli(cfg, *args)
        assert result.exit_code == code, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    # Rotating without a key pair: nothing to rotate.
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"server": {"data_dir": str(tmp_path / "none")}}))
    result = cli(empty, "keygen", "--rotate")
    assert result.exit_code == 2 and "no token public key" in result.stderr
    assert not (tmp_path / "none" / "keys" / "token.key").exists()
    assert settings.public_key_path.exists()
