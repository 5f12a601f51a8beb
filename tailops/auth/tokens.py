"""Signed, scoped, expiring, revocable bearer tokens (EdDSA / Ed25519 JWTs).

The server holds only the public key; minting needs the private key, which the
server never reads. Claims: ``iss``, ``sub``, ``scope`` (space separated),
``aud`` (the server's MCP URL), ``iat``, ``nbf``, ``exp`` (always), ``jti``.

Verification pins the algorithm to EdDSA (so ``alg: none`` and HS256-with-the-
public-key tricks fail), requires every claim, checks audience and issuer, and
looks the ``jti`` up in the store's revocation list on every request (so a
revocation takes effect on the next request, even from another process).
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from mcp.server.auth.provider import AccessToken

from tailops.config import SCOPES
from tailops.errors import AuthError, ConfigError, InvalidInput
from tailops.store import Store

if TYPE_CHECKING:
    from tailops.runtime import Runtime

__all__ = [
    "ALGORITHM",
    "MintedToken",
    "TokenVerifier",
    "check_private_key_permissions",
    "generate_keypair",
    "load_public_key",
    "mint_token",
    "revoke_token",
    "verify_token",
]

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["iss", "sub", "scope", "aud", "iat", "exp", "jti"]
LEEWAY_S = 30


def _write_secret(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def generate_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> None:
    """Write a new Ed25519 key pair: private key 0600, public key 0644."""
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise InvalidInput(
                f"{p} already exists; refusing to overwrite a key.",
                hint="Pass --force to replace it (every token signed with the old key stops working).",
            )
        if p.exists():
            p.unlink()
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_secret(private_path, private_pem, 0o600)
    _write_secret(public_path, public_pem, 0o644)


def check_private_key_permissions(path: Path) -> None:
    """Refuse a private key that group or others can read or write."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"private key {path} is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o}); refusing.",
            hint=f"Run: chmod 600 {path}",
        )


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    check_private_key_permissions(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(
            f"no private key at {path}.", hint="Create one with: tailops token keygen"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM private key.") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key; tailops tokens are EdDSA only.")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"no token public key at {path}; the HTTP server cannot verify tokens.",
            hint="Create a key pair with: tailops token keygen",
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM public key.") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key; tailops tokens are EdDSA only.")
    return key


@dataclass(frozen=True)
class MintedToken:
    token: str
    jti: str
    subject: str
    scopes: tuple[str, ...]
    issued_at: int
    expires_at: int


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = text.split() if isinstance(text, str) else list(text)
    if not items:
        raise InvalidInput("no scopes given; choose from: " + ", ".join(SCOPES) + ".")
    unknown = [s for s in items if s not in SCOPES]
    if unknown:
        raise InvalidInput(f"unknown scope(s) {', '.join(unknown)}; choose from: {', '.join(SCOPES)}.")
    return tuple(dict.fromkeys(items))


def mint_token(
    *,
    private_key_path: Path,
    subject: str,
    scopes: str | list[str] | tuple[str, ...],
    ttl: timedelta,
    max_ttl: timedelta,
    audience: str,
    issuer: str,
    store: Store | None = None,
    note: str | None = None,
    now: float | None = None,
) -> MintedToken:
    """Sign a token and record its claims (never the token) in the store."""
    subject = subject.strip()
    if not subject or len(subject) > 200 or any(c.isspace() for c in subject):
        raise InvalidInput("subject must be 1-200 characters without spaces, e.g. alice or ci-bot.")
    scope_list = parse_scopes(scopes)
    if ttl.total_seconds() <= 0:
        raise InvalidInput("--ttl must be positive, e.g. 1h or 24h.")
    if ttl > max_ttl:
        raise InvalidInput(
            f"--ttl {ttl} is longer than auth.max_token_ttl ({max_ttl}).",
            hint="Use a shorter ttl or raise auth.max_token_ttl in the config.",
        )
    key = _load_private_key(private_key_path)
    issued = int(now if now is not None else time.time())
    expires = issued + int(ttl.total_seconds())
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "scope": " ".join(scope_list),
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": expires,
        "jti": jti,
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": "JWT"})
    if store is not None:
        store.execute(
            "INSERT INTO tokens(jti, subject, scopes, issued_at, expires_at, note) VALUES (?,?,?,?,?,?)",
            (jti, subject, claims["scope"], issued, expires, note),
        )
    return MintedToken(token, jti, subject, scope_list, issued, expires)


def is_revoked(store: Store, jti: str) -> bool:
    row = store.query_one(
        "SELECT 1 FROM tokens WHERE jti = ? AND revoked_at IS NOT NULL "
        "UNION ALL SELECT 1 FROM revocations WHERE jti = ? LIMIT 1",
        (jti, jti),
    )
    return row is not None


def revoke_token(store: Store, jti: str, *, by: str) -> bool:
    """Revoke ``jti``; return False if it was already revoked."""
    jti = jti.strip()
    if not jti or len(jti) > 128:
        raise InvalidInput("give the token's jti (see `tailops token list` or `tailops token inspect`).")
    now = int(time.time())
    with store.transaction() as conn:
        known = conn.execute("SELECT revoked_at FROM tokens WHERE jti = ?", (jti,)).fetchone()
        if known is not None:
            if known["revoked_at"] is not None:
                return False
            conn.execute("UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE jti = ?", (now, by, jti))
            return True
        if conn.execute("SELECT 1 FROM revocations WHERE jti = ?", (jti,)).fetchone():
            return False
        conn.execute("INSERT INTO revocations(jti, revoked_at, revoked_by) VALUES (?,?,?)", (jti, now, by))
        return True


def verify_token(
    token: str,
    *,
    public_key: Ed25519PublicKey,
    audience: str,
    issuer: str,
    store: Store | None,
) -> dict[str, Any]:
    """Return the verified claims or raise AuthError with the reason."""
    if not token or len(token) > 8192:
        raise AuthError("malformed token.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise AuthError("malformed token.") from exc
    if header.get("alg") != ALGORITHM:
        raise AuthError(f"token algorithm {header.get('alg')!r} is not accepted; tokens must be EdDSA.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise AuthError("token not yet valid.") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthError("token was issued for another server (audience mismatch).") from exc
    except jwt.InvalidIssuerError as exc:
        raise AuthError("token issuer is not accepted.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token lacks the required claim {exc.claim!r}.") from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthError("token signature is invalid.") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("token is invalid.") from exc
    scope = claims.get("scope")
    if not isinstance(scope, str) or any(s not in SCOPES for s in scope.split()):
        raise AuthError("token carries unknown scopes.")
    if store is not None and is_revoked(store, str(claims["jti"])):
        raise AuthError("token has been revoked.")
    return claims


class TokenVerifier:
    """The MCP SDK's TokenVerifier protocol over :func:`verify_token`."""

    def __init__(self, *, public_key: Ed25519PublicKey, audience: str, issuer: str, store: Store,
                 on_failure: Any = None) -> None:
        self._public_key = public_key
        self._audience = audience
        self._issuer = issuer
        self._store = store
        self._on_failure = on_failure

    @classmethod
    def from_config(cls, rt: Runtime) -> TokenVerifier:
        if rt.config.auth.private_key is not None:
            check_private_key_permissions(rt.config.auth.private_key)
        return cls(
            public_key=load_public_key(rt.config.public_key_path),
            audience=rt.config.mcp_url,
            issuer=rt.config.auth.issuer,
            store=rt.store,
            on_failure=lambda reason: rt.metrics.auth_failures.labels(reason).inc(),
        )

    def verify_claims(self, token: str) -> dict[str, Any]:
        return verify_token(
            token, public_key=self._public_key, audience=self._audience, issuer=self._issuer, store=self._store
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = self.verify_claims(token)
        except AuthError as exc:
            if self._on_failure is not None:
                self._on_failure(exc.code)
            return None
        return AccessToken(
            token=token,
            client_id=str(claims["sub"]),
            subject=str(claims["sub"]),
            scopes=str(claims["scope"]).split(),
            expires_at=int(claims["exp"]),
            resource=self._audience,
            claims={"jti": claims["jti"], "iat": claims["iat"], "iss": claims["iss"]},
        )
