"""Tokens: minting, every way verification must refuse, revocation, key files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tailops.auth import tokens
from tailops.auth.tokens import (
    TokenVerifier,
    check_private_key_permissions,
    check_public_key_permissions,
    failure_reason,
    generate_keypair,
    is_revoked,
    list_tokens,
    load_public_key,
    mint_token,
    parse_scopes,
    revoke_token,
    verify_token,
)
from tailops.config import Settings
from tailops.errors import AuthError, ConfigError, InvalidInput
from tailops.store import Store

AUD = "http://127.0.0.1:8787/mcp"
ISS = "tailops"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub = tmp_path / "keys" / "token.key", tmp_path / "keys" / "token.pub"
    generate_keypair(priv, pub)
    return priv, pub


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "t.db")


def _mint(priv: Path, store: Store | None = None, **kw: Any) -> tokens.MintedToken:
    args: dict[str, Any] = {
        "private_key_path": priv,
        "subject": "alice",
        "scopes": "readonly container:write",
        "ttl": timedelta(hours=1),
        "max_ttl": timedelta(days=30),
        "audience": AUD,
        "issuer": ISS,
        "store": store,
    }
    args.update(kw)
    return mint_token(**args)


def _verify(token: str, pub: Path, store: Store | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"public_key": load_public_key(pub), "audience": AUD, "issuer": ISS, "store": store}
    args.update(kw)
    return verify_token(token, **args)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISS,
        "sub": "mallory",
        "scope": "admin",
        "aud": AUD,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "f" * 32,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def test_minted_token_carries_every_claim_and_verifies(keys: tuple[Path, Path], store: Store) -> None:
    priv, pub = keys
    minted = _mint(priv, store, now=time.time())
    claims = _verify(minted.token, pub, store)
    assert claims["sub"] == "alice"
    assert claims["scope"] == "readonly container:write"
    assert claims["aud"] == AUD and claims["iss"] == ISS and claims["jti"] == minted.jti
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(minted.token)["alg"] == "EdDSA"
    # The store has the claims, never the token.
    row = store.query_one("SELECT * FROM tokens WHERE jti = ?", (minted.jti,))
    assert row is not None and row["subject"] == "alice"
    assert minted.token not in json.dumps([dict(r) for r in store.query("SELECT * FROM tokens")])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("expired", tokens.EXPIRED),
        ("not_yet_valid", tokens.NOT_YET_VALID),
        ("wrong_audience", tokens.WRONG_AUDIENCE),
        ("wrong_issuer", tokens.WRONG_ISSUER),
        ("forged", tokens.BAD_SIGNATURE),
        ("tampered_scope", tokens.BAD_SIGNATURE),
        ("alg_none", tokens.BAD_ALGORITHM),
        ("hs256_public_key", tokens.BAD_ALGORITHM),
        ("rs256_header", tokens.BAD_ALGORITHM),
        ("no_exp", tokens.MISSING_CLAIM),
        ("no_jti", tokens.MISSING_CLAIM),
        ("no_aud", tokens.MISSING_CLAIM),
        ("unknown_scope", tokens.UNKNOWN_SCOPE),
        ("empty_scope", tokens.UNKNOWN_SCOPE),
        ("too_long_lived", tokens.TOO_LONG_LIVED),
        ("audience_list", tokens.WRONG_AUDIENCE),
        ("garbage", tokens.MALFORMED),
        ("empty", tokens.MALFORMED),
        ("huge", tokens.MALFORMED),
    ],
)
def test_verification_refuses(keys: tuple[Path, Path], make: str, message: str) -> None:
    priv, pub = keys
    other = Ed25519PrivateKey.generate()
    now = time.time()
    token: str
    if make == "expired":
        token = _mint(priv, now=now - 7200).token
    elif make == "not_yet_valid":
        token = _mint(priv, now=now + 3600).token
    elif make == "wrong_audience":
        token = _mint(priv, audience="http://elsewhere.example/mcp").token
    elif make == "wrong_issuer":
        token = _mint(priv, issuer="someone-else").token
    elif make == "forged":
        token = jwt.encode(_claims(), other, algorithm="EdDSA")
    elif make == "tampered_scope":
        real = _mint(priv, scopes="readonly").token
        h, p, s = real.split(".")
        payload = json.loads(base64.urlsafe_b64decode(p + "=="))
        payload["scope"] = "admin"
        token = f"{h}.{_b64(json.dumps(payload).encode())}.{s}"
    elif make == "alg_none":
        token = _unsigned({"alg": "none", "typ": "JWT"}, _claims()) + "."
    elif make == "hs256_public_key":
        signing = _unsigned({"alg": "HS256", "typ": "JWT"}, _claims())
        sig = hmac.new(pub.read_bytes(), signing.encode(), hashlib.sha256).digest()
        token = f"{signing}.{_b64(sig)}"
    elif make == "rs256_header":
        token = _unsigned({"alg": "RS256", "typ": "JWT"}, _claims()) + "." + _b64(b"x" * 256)
    elif make == "no_exp":
        token = jwt.encode(_claims(exp=None), other, algorithm="EdDSA")
        token = _resign(token, priv)
    elif make == "no_jti":
        token = _resign(jwt.encode(_claims(jti=None), other, algorithm="EdDSA"), priv)
    elif make == "no_aud":
        token = _resign(jwt.encode(_claims(aud=None), other, algorithm="EdDSA"), priv)
    elif make == "unknown_scope":
        token = _resign(jwt.encode(_claims(scope="readonly root"), other, algorithm="EdDSA"), priv)
    elif make == "empty_scope":
        token = _resign(jwt.encode(_claims(scope=""), other, algorithm="EdDSA"), priv)
    elif make == "too_long_lived":
        token = _resign(jwt.encode(_claims(exp=int(now) + 90 * 86400), other, algorithm="EdDSA"), priv)
    elif make == "audience_list":
        token = _resign(jwt.encode(_claims(aud=[AUD, "x"]), other, algorithm="EdDSA"), priv)
    elif make == "garbage":
        token = "not.a.jwt"
    elif make == "empty":
        token = ""
    else:
        token = "a." * 5000 + "b"
    with pytest.raises(AuthError) as info:
        _verify(token, pub, max_ttl=timedelta(days=30))
    assert info.value.message == message
    assert failure_reason(info.value) != "invalid" or message == tokens.INVALID


def _resign(token: str, priv: Path) -> str:
    """Re-sign a token's claims with the real key (so only the claims are wrong)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    key = tokens._load_private_key(priv)
    return jwt.encode(claims, key, algorithm="EdDSA")


def test_revocation_takes_effect_and_is_idempotent(keys: tuple[Path, Path], store: Store) -> None:
    priv, pub = keys
    minted = _mint(priv, store)
    _verify(minted.token, pub, store)
    assert revoke_token(store, minted.jti, by="test") == (True, True)
    assert is_revoked(store, minted.jti)
    with pytest.raises(AuthError, match="revoked"):
        _verify(minted.token, pub, store)
    assert revoke_token(store, minted.jti, by="test") == (False, True)
    # A jti this store never issued (minted elsewhere with the same key) can be revoked too.
    foreign = jwt.encode(_claims(sub="bob", scope="readonly"), tokens._load_private_key(priv), algorithm="EdDSA")
    _verify(foreign, pub, store)
    assert revoke_token(store, "f" * 32, by="test") == (True, False)
    with pytest.raises(AuthError, match="revoked"):
        _verify(foreign, pub, store)
    listed = {t.jti: t for t in list_tokens(store)}
    assert listed[minted.jti].status(time.time()) == "revoked"
    assert listed["f" * 32].revoked_by == "test"


@pytest.mark.parametrize("jti", ["", "   ", "x" * 129, "abc def", "a;DROP TABLE tokens"])
def test_revoke_refuses_bad_jti(store: Store, jti: str) -> None:
    with pytest.raises(InvalidInput, match="jti"):
        revoke_token(store, jti, by="test")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"subject": ""}, "subject"),
        ({"subject": "two words"}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"subject": "bad\nname"}, "subject"),
        ({"scopes": ""}, "no scopes"),
        ({"scopes": "readonly superuser"}, "unknown scope"),
        ({"ttl": timedelta(0)}, "ttl"),
        ({"ttl": timedelta(days=31)}, "max_token_ttl"),
        ({"note": "line\nbreak"}, "note"),
    ],
)
def test_mint_refuses_bad_input(keys: tuple[Path, Path], kw: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        _mint(keys[0], **kw)


def test_parse_scopes_dedupes_and_accepts_commas() -> None:
    assert parse_scopes("readonly, readonly file:read") == ("readonly", "file:read")


def test_keygen_modes_ignore_umask_and_refuse_overwrite(tmp_path: Path) -> None:
    priv, pub = tmp_path / "k" / "token.key", tmp_path / "k" / "token.pub"
    old = os.umask(0)
    try:
        generate_keypair(priv, pub)
    finally:
        os.umask(old)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert stat.S_IMODE(priv.parent.stat().st_mode) == 0o700
    before = pub.read_bytes()
    with pytest.raises(InvalidInput, match="already exists"):
        generate_keypair(priv, pub)
    assert pub.read_bytes() == before
    generate_keypair(priv, pub, overwrite=True)
    assert pub.read_bytes() != before
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600


def test_keygen_refuses_same_path_for_both_keys(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="same file"):
        generate_keypair(tmp_path / "k", tmp_path / "k")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620])
def test_private_key_readable_by_others_is_refused(keys: tuple[Path, Path], mode: int) -> None:
    priv, _ = keys
    priv.chmod(mode)
    with pytest.raises(ConfigError, match="group/others") as info:
        check_private_key_permissions(priv)
    assert info.value.hint is not None and "chmod 600" in info.value.hint
    with pytest.raises(ConfigError):
        _mint(priv)
    priv.chmod(0o600)
    check_private_key_permissions(priv)


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_public_key_writable_by_others_is_refused(keys: tuple[Path, Path], mode: int) -> None:
    _, pub = keys
    pub.chmod(mode)
    with pytest.raises(ConfigError, match="writable"):
        check_public_key_permissions(pub)
    with pytest.raises(ConfigError):
        load_public_key(pub)


def test_verifier_refuses_to_start_with_world_readable_private_key(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    priv, pub = tmp_path / "elsewhere" / "signing.key", tmp_path / "elsewhere" / "signing.pub"
    generate_keypair(priv, pub)
    settings = make_settings(auth={"private_key": str(priv), "public_key": str(pub)})
    store = Store(settings.db_path)
    TokenVerifier.from_config(settings, store)  # fine at 0600
    priv.chmod(0o644)
    with pytest.raises(ConfigError, match="private key"):
        TokenVerifier.from_config(settings, store)


def test_missing_or_wrong_key_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no token public key") as info:
        load_public_key(tmp_path / "nope.pub")
    assert info.value.hint is not None and "tailops token keygen" in info.value.hint
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="PEM"):
        load_public_key(bad)
    with pytest.raises(ConfigError, match="no private key"):
        _mint(tmp_path / "nope.key")


def test_both_key_loaders_refuse_a_key_that_is_not_ed25519_pem_or_readable(tmp_path: Path) -> None:
    """One loader serves both halves of the pair: each refusal is the same for a private and a
    public key, and minting (the private key's only user) refuses before signing anything."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    ec_priv, ec_pub, junk = tmp_path / "ec.key", tmp_path / "ec.pub", tmp_path / "junk.key"
    ec_priv.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ec_pub.write_bytes(
        other.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    junk.write_text("not a key")
    folder = tmp_path / "a-folder.key"
    folder.mkdir()
    for path in (ec_priv, junk, folder):
        path.chmod(0o700 if path.is_dir() else 0o600)
    with pytest.raises(ConfigError, match=r"ec\.key is not an Ed25519 private key; tailops tokens are EdDSA only"):
        tokens._load_private_key(ec_priv)
    with pytest.raises(ConfigError, match=r"ec\.pub is not an Ed25519 public key; tailops tokens are EdDSA only"):
        load_public_key(ec_pub)
    with pytest.raises(ConfigError, match=r"junk\.key is not a PEM private key"):
        _mint(junk)
    with pytest.raises(ConfigError, match=r"cannot read the private key .*a-folder\.key"):
        tokens._load_private_key(folder)
    with pytest.raises(ConfigError, match=r"no private key at .*nope\.key") as info:
        tokens._load_private_key(tmp_path / "nope.key")
    assert info.value.hint is not None and "tailops token keygen" in info.value.hint


async def test_sdk_verifier_protocol_and_per_request_reuse(keys: tuple[Path, Path], store: Store) -> None:
    priv, pub = keys
    failures: list[str] = []
    verifier = TokenVerifier(
        public_key=load_public_key(pub), audience=AUD, issuer=ISS, store=store, on_failure=failures.append
    )
    minted = _mint(priv, store)
    access = await verifier.verify_token(minted.token)
    assert access is not None and access.subject == "alice" and access.scopes == ["readonly", "container:write"]
    assert access.claims is not None and access.claims["jti"] == minted.jti
    assert await verifier.verify_token("garbage") is None
    assert failures == ["malformed"]
    # Within one request the middleware's verification is reused; the next request checks again.
    marker = verifier.remember(minted.token, access)
    revoke_token(store, minted.jti, by="test")
    assert await verifier.verify_token(minted.token) is access
    verifier.forget(marker)
    assert await verifier.verify_token(minted.token) is None
    assert failures[-1] == "revoked"


def test_verifier_cache_still_checks_expiry_and_revocation(
    keys: tuple[Path, Path], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    priv, pub = keys
    verifier = TokenVerifier(public_key=load_public_key(pub), audience=AUD, issuer=ISS, store=store)
    minted = _mint(priv, store, ttl=timedelta(minutes=10))
    assert verifier.verify_claims(minted.token)["jti"] == minted.jti
    assert verifier.verify_claims(minted.token)["jti"] == minted.jti  # from the cache
    later = time.time() + 11 * 60 + tokens.LEEWAY_S
    monkeypatch.setattr(time, "time", lambda: later)  # the module tailops.auth.tokens reads the clock from
    with pytest.raises(AuthError, match="expired"):
        verifier.verify_claims(minted.token)
    monkeypatch.undo()
    other = _mint(priv, store)
    verifier.verify_claims(other.token)
    revoke_token(store, other.jti, by="test")
    with pytest.raises(AuthError, match="revoked"):
        verifier.verify_claims(other.token)
    # A token that failed is never cached: a forged twin of a cached token still fails.
    h, p, _s = other.token.split(".")
    with pytest.raises(AuthError, match="signature"):
        verifier.verify_claims(f"{h}.{p}.{_b64(b'x' * 64)}")


def test_verifier_cache_is_bounded(keys: tuple[Path, Path], store: Store) -> None:
    priv, pub = keys
    verifier = TokenVerifier(public_key=load_public_key(pub), audience=AUD, issuer=ISS, store=store)
    verifier.CACHE_SIZE = 3
    for _ in range(5):
        verifier.verify_claims(_mint(priv).token)
    assert len(verifier._verified) == 3
