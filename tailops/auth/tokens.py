"""Signed, scoped, expiring, revocable bearer tokens (EdDSA / Ed25519 JWTs).

The server holds only the public key; minting needs the private key, which the
server never reads. Claims: ``iss``, ``sub``, ``scope`` (space separated),
``aud`` (the server's MCP URL), ``iat``, ``nbf``, ``exp`` (always), ``jti``; the
header names the signing key (``kid``: 16 hex digits of the SHA-256 of the public
key).

Key rotation: ``rotate_keypair`` keeps the old public key in the previous-keys
directory (``<kid>.pub``) and writes a new pair; the server accepts tokens of the
current key and of every previous key until ``retire_key`` removes it. The
running server notices both (:class:`KeyRing` re-reads the files when they
change), so neither needs a restart.

Verification pins the algorithm to EdDSA (so ``alg: none`` and HS256-with-the-
public-key tricks fail), requires every claim, checks audience, issuer and the
lifetime cap, and looks the ``jti`` up in the store's revocation list on every
request (so a revocation takes effect on the next request, even one served by
another process).

There is deliberately no shared-secret (HMAC) mode: whoever can verify an HMAC
token can also mint one, so a server compromise would hand out every scope,
``changes:approve`` included (see docs/security.md).

This module must never log, store or print a token or a private key: the
store keeps claims only, and errors name the problem, never the token.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import re
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from tailops.auth.revocations import is_revoked
from tailops.auth.scopes import SCOPES
from tailops.errors import AuthError, ConfigError, InvalidInput, NotFound
from tailops.store import Store

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

    from tailops.config import Settings

__all__ = [
    "ALGORITHM",
    "KeyRing",
    "MintedToken",
    "TokenInfo",
    "TokenVerifier",
    "check_key_files",
    "check_private_key_permissions",
    "check_public_key_permissions",
    "failure_reason",
    "generate_keypair",
    "is_revoked",
    "key_id",
    "list_tokens",
    "load_public_key",
    "mint_token",
    "parse_scopes",
    "retire_key",
    "revoke_token",
    "rotate_keypair",
    "verify_token",
]

log = logging.getLogger("tailops.auth")

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["iss", "sub", "scope", "aud", "iat", "exp", "jti"]
LEEWAY_S = 30
MAX_TOKEN_CHARS = 8192
_SUBJECT = re.compile(r"[A-Za-z0-9._@:+-]{1,200}")
_JTI = re.compile(r"[A-Za-z0-9_-]{1,128}")
_KID = re.compile(r"[0-9a-f]{16}")

# Refusal messages (constant, so metrics and audit can name the reason).
MALFORMED = "malformed token."
BAD_ALGORITHM = "token algorithm is not accepted; tokens must be EdDSA (Ed25519)."
BAD_SIGNATURE = "token signature is invalid."
EXPIRED = "token expired."
NOT_YET_VALID = "token not yet valid."
WRONG_AUDIENCE = "token was issued for another server (audience mismatch)."
WRONG_ISSUER = "token issuer is not accepted."
MISSING_CLAIM = "token lacks a required claim (iss, sub, scope, aud, iat, exp, jti)."
BAD_CLAIMS = "token claims are malformed."
UNKNOWN_SCOPE = "token carries unknown scopes."
TOO_LONG_LIVED = "token lifetime exceeds auth.max_token_ttl."
REVOKED = "token has been revoked."
INVALID = "token is invalid."
UNKNOWN_KEY = "token was signed with a key this server does not accept (unknown or retired key id)."

_REASONS: dict[str, str] = {
    MALFORMED: "malformed",
    BAD_ALGORITHM: "algorithm",
    BAD_SIGNATURE: "signature",
    EXPIRED: "expired",
    NOT_YET_VALID: "not_yet_valid",
    WRONG_AUDIENCE: "audience",
    WRONG_ISSUER: "issuer",
    MISSING_CLAIM: "missing_claim",
    BAD_CLAIMS: "claims",
    UNKNOWN_SCOPE: "scope",
    TOO_LONG_LIVED: "lifetime",
    REVOKED: "revoked",
    INVALID: "invalid",
    UNKNOWN_KEY: "unknown_key",
}


def failure_reason(exc: AuthError) -> str:
    """A short label for a verification failure (metrics, audit)."""
    return _REASONS.get(exc.message, "invalid")


# -- key files -----------------------------------------------------------------


def _write_secret(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> None:
    """Write a new Ed25519 key pair: private key 0600, public key 0644."""
    if private_path.resolve() == public_path.resolve():
        raise InvalidInput("the private and public key paths are the same file; give two paths.")
    for p in (private_path, public_path):
        if (p.exists() or p.is_symlink()) and not overwrite:
            raise InvalidInput(
                f"{p} already exists; refusing to overwrite a key.",
                hint="Pass --force to replace it (every token signed with the old key stops working).",
            )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        for p in (private_path, public_path):
            if p.exists() or p.is_symlink():
                p.unlink()
        _write_secret(private_path, private_pem, 0o600)
        _write_secret(public_path, public_pem, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write the key pair: {exc.strerror} ({exc.filename}).") from exc


def _refuse_loose_mode(
    path: Path, what: str, forbidden: int, problem: str, *, chmod: str, refusing: str = "refusing"
) -> None:
    """Refuse ``path`` (``what``: a key file, the previous-keys directory) when group/others
    have any of the ``forbidden`` mode bits; a missing path is not refused here (loading it is)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot check {what}: {exc.strerror}.") from exc
    if st.st_mode & forbidden:
        raise ConfigError(
            f"{what} is {problem} by group/others (mode {stat.S_IMODE(st.st_mode):04o}); {refusing}.",
            hint=f"Run: chmod {chmod} {path}",
        )


def check_private_key_permissions(path: Path) -> None:
    """Refuse a private key that group or others can read or write."""
    _refuse_loose_mode(path, f"the private key {path}", stat.S_IRWXG | stat.S_IRWXO, "accessible", chmod="600")


def check_public_key_permissions(path: Path) -> None:
    """Refuse a public key others could replace (a swapped key lets them mint tokens)."""
    _refuse_loose_mode(path, f"the public key {path}", stat.S_IWGRP | stat.S_IWOTH, "writable", chmod="644")


def check_key_files(config: Settings) -> None:
    """What the HTTP server checks before it starts: key file permissions."""
    check_private_key_permissions(config.private_key_path)
    check_public_key_permissions(config.public_key_path)
    check_previous_keys_dir(config.previous_keys_dir)


def _load_key[K: (Ed25519PrivateKey, Ed25519PublicKey)](path: Path, kind: type[K], *, missing: str) -> K:
    """The Ed25519 key of ``kind`` in the PEM file at ``path``, once its mode is checked.

    One loader for both halves of the pair, so a private and a public key are refused for
    the same reasons (loose mode, missing, unreadable, not PEM, not Ed25519) in the same words.
    """
    private = kind is Ed25519PrivateKey
    what = "private key" if private else "public key"
    (check_private_key_permissions if private else check_public_key_permissions)(path)
    try:
        data = path.read_bytes()
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except FileNotFoundError:
        raise ConfigError(missing, hint="Create a key pair with: tailops token keygen") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}.") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM {what}.") from exc
    if not isinstance(key, kind):
        raise ConfigError(f"{path} is not an Ed25519 {what}; tailops tokens are EdDSA only.")
    return key


# The key classes are abstract; mypy refuses an abstract class for ``type[K]`` (python/mypy#4717).


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    return _load_key(path, Ed25519PrivateKey, missing=f"no private key at {path}.")  # type: ignore[type-abstract]


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The token public key at ``path`` (ConfigError when missing, loose, unreadable or not Ed25519)."""
    missing = f"no token public key at {path}; the HTTP server cannot verify tokens."
    return _load_key(path, Ed25519PublicKey, missing=missing)  # type: ignore[type-abstract]


def key_id(public_key: Ed25519PublicKey) -> str:
    """The ``kid`` of a key: 16 hex digits of the SHA-256 of its SubjectPublicKeyInfo DER.

    Minted tokens carry it in their header, so the server picks the one key that
    must verify them during a rotation instead of trying each."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def check_previous_keys_dir(directory: Path) -> None:
    """Refuse a previous-keys directory others can write to (they could add a key)."""
    _refuse_loose_mode(
        directory, str(directory), stat.S_IWGRP | stat.S_IWOTH, "writable", chmod="700", refusing="refusing its keys"
    )


def previous_public_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """The previous keys still accepted (``<kid>.pub`` files), by kid; a file whose name is not
    its key's kid is refused (a renamed file would otherwise outlive its retirement)."""
    check_previous_keys_dir(directory)
    try:
        names = sorted(p for p in directory.iterdir() if p.suffix == ".pub")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot list {directory}: {exc.strerror}.") from exc
    keys: dict[str, Ed25519PublicKey] = {}
    for path in names:
        key = load_public_key(path)
        kid = key_id(key)
        if path.stem != kid:
            raise ConfigError(f"{path} holds the key with id {kid}; its file must be named {kid}.pub.")
        keys[kid] = key
    return keys


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _write_secret(tmp, data, mode)
    os.replace(tmp, path)


def rotate_keypair(private_path: Path, public_path: Path, previous_dir: Path) -> tuple[str, str]:
    """Start a rotation: the current public key becomes a previous key (tokens it signed keep
    working until it is retired), a new pair replaces the current one. The old private key
    is deleted: after a rotation only the new key mints. Returns (old kid, new kid).

    Each file is replaced by a rename, so a server reading the keys meanwhile sees the old
    or the new file, never half of one."""
    old = load_public_key(public_path)
    old_kid = key_id(old)
    try:
        previous_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        check_previous_keys_dir(previous_dir)
        _atomic_write(previous_dir / f"{old_kid}.pub", public_path.read_bytes(), 0o644)
        key = Ed25519PrivateKey.generate()
        _atomic_write(
            private_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            0o600,
        )
        _atomic_write(
            public_path,
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            0o644,
        )
    except OSError as exc:
        raise ConfigError(f"cannot rotate the key pair: {exc.strerror} ({exc.filename}).") from exc
    return old_kid, key_id(key.public_key())


def retire_key(previous_dir: Path, kid: str) -> None:
    """End a rotation window: tokens signed by ``kid`` are refused from the next request on."""
    if not _KID.fullmatch(kid):
        raise InvalidInput("give a key id: 16 hex digits (see `tailops token keys`).")
    path = previous_dir / f"{kid}.pub"
    try:
        path.unlink()
    except FileNotFoundError:
        raise NotFound(
            f"no previous key {kid} in {previous_dir}.", hint="`tailops token keys` lists the keys accepted now."
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot remove {path}: {exc.strerror}.") from exc


class KeyRing:
    """The public keys the server accepts: the current one first, then previous ones.

    :meth:`refresh` re-reads the key files when their ``stat`` changed (a rotation or a
    retirement), so a running server follows ``tailops token keygen --rotate`` and
    ``tailops token retire-key`` without a restart. Files that fail the permission
    checks are refused and the keys loaded before are kept (fail closed for new key
    material, known-good for the old)."""

    def __init__(self, public_path: Path, previous_dir: Path | None) -> None:
        self._public_path = public_path
        self._previous_dir = previous_dir
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] = ()
        self.keys: dict[str, Ed25519PublicKey] = self._load()
        self._paths = self._watched()
        self._signature = self._stat()

    @classmethod
    def single(cls, key: Ed25519PublicKey) -> KeyRing:
        ring = cls.__new__(cls)
        ring._public_path = Path()
        ring._previous_dir = None
        ring._lock = threading.Lock()
        ring._signature = ()
        ring._paths = []
        ring.keys = {key_id(key): key}
        return ring

    def _load(self) -> dict[str, Ed25519PublicKey]:
        current = load_public_key(self._public_path)
        keys = {key_id(current): current}
        if self._previous_dir is not None:
            for kid, key in previous_public_keys(self._previous_dir).items():
                keys.setdefault(kid, key)
        return keys

    def _watched(self) -> list[str]:
        """The files whose ``stat`` says whether the keys changed (strings: built once per load)."""
        paths = [str(self._public_path)]
        if self._previous_dir is not None:
            paths.append(str(self._previous_dir))
            paths.extend(str(self._previous_dir / f"{kid}.pub") for kid in self.keys)
        return paths

    def _stat(self) -> tuple[Any, ...]:
        out: list[tuple[int, int, int, int] | None] = []
        for p in self._paths:
            try:
                st = os.stat(p)
            except OSError:
                out.append(None)
                continue
            out.append((st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode))
        return tuple(out)

    def refresh(self) -> bool:
        """Reload if the key files changed; True when the accepted keys changed."""
        if self._previous_dir is None and not self._signature:
            return False
        signature = self._stat()
        if signature == self._signature:
            return False
        with self._lock:
            try:
                keys = self._load()
            except (ConfigError, InvalidInput) as exc:
                log.error("token keys changed but cannot be loaded; keeping the keys loaded before: %s", exc.message)
                self._signature = signature
                return False
            changed = keys.keys() != self.keys.keys()
            self.keys = keys
            self._paths = self._watched()
            self._signature = self._stat()
            return changed

    def candidates(self, token: str) -> list[Ed25519PublicKey]:
        """The key a token names by ``kid``, or every key for a token without one."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(MALFORMED) from exc
        kid = header.get("kid")
        if kid is None:
            return list(self.keys.values())
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise AuthError(MALFORMED)
        key = self.keys.get(kid)
        if key is None:
            raise AuthError(UNKNOWN_KEY)
        return [key]


# -- minting and revocation ----------------------------------------------------


@dataclass(frozen=True)
class MintedToken:
    token: str
    jti: str
    subject: str
    scopes: tuple[str, ...]
    issued_at: int
    expires_at: int


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    if not items:
        raise InvalidInput("no scopes given; choose from: " + ", ".join(SCOPES) + ".")
    unknown = [s for s in items if s not in SCOPES]
    if unknown:
        shown = ", ".join(repr(s[:40]) for s in unknown[:5])
        raise InvalidInput(f"unknown scope(s) {shown}; choose from: {', '.join(SCOPES)}.")
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
    if not _SUBJECT.fullmatch(subject):
        raise InvalidInput("subject must be 1-200 characters from A-Z a-z 0-9 . _ @ : + -, e.g. alice or ci-bot.")
    scope_list = parse_scopes(scopes)
    if ttl.total_seconds() < 1:
        raise InvalidInput("--ttl must be at least 1s, e.g. 1h or 24h.")
    if ttl > max_ttl:
        raise InvalidInput(
            f"--ttl {ttl} is longer than auth.max_token_ttl ({max_ttl}).",
            hint="Use a shorter ttl or raise auth.max_token_ttl in the config.",
        )
    if note is not None and (len(note) > 500 or any(ord(c) < 32 for c in note)):
        raise InvalidInput("--note must be at most 500 printable characters on one line.")
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
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": "JWT", "kid": key_id(key.public_key())})
    if store is not None:
        store.execute(
            "INSERT INTO tokens(jti, subject, scopes, issued_at, expires_at, note) VALUES (?,?,?,?,?,?)",
            (jti, subject, claims["scope"], issued, expires, note),
        )
    return MintedToken(token, jti, subject, scope_list, issued, expires)


def check_jti(jti: str) -> str:
    jti = jti.strip()
    if not _JTI.fullmatch(jti):
        raise InvalidInput(
            "give the token's jti: 1-128 characters from A-Z a-z 0-9 _ - "
            "(see `tailops token list` or `tailops token inspect`)."
        )
    return jti


def revoke_token(store: Store, jti: str, *, by: str) -> tuple[bool, bool]:
    """Revoke ``jti``. Returns (newly_revoked, issued_by_this_store)."""
    jti = check_jti(jti)
    now = int(time.time())
    with store.transaction() as conn:
        known = conn.execute("SELECT revoked_at FROM tokens WHERE jti = ?", (jti,)).fetchone()
        if known is not None:
            if known["revoked_at"] is not None:
                return False, True
            conn.execute("UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE jti = ?", (now, by, jti))
            return True, True
        if conn.execute("SELECT 1 FROM revocations WHERE jti = ?", (jti,)).fetchone():
            return False, False
        conn.execute("INSERT INTO revocations(jti, revoked_at, revoked_by) VALUES (?,?,?)", (jti, now, by))
        return True, False


@dataclass(frozen=True)
class TokenInfo:
    """One row of ``tailops token list`` (claims only: the store never has the token)."""

    jti: str
    subject: str
    scopes: str
    issued_at: int | None
    expires_at: int | None
    revoked_at: int | None
    revoked_by: str | None
    note: str | None

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at < now:
            return "expired"
        return "active"


def list_tokens(store: Store) -> list[TokenInfo]:
    """Issued tokens and foreign revocations, newest first."""
    rows = store.query(
        "SELECT jti, subject, scopes, issued_at, expires_at, revoked_at, revoked_by, note FROM tokens "
        "UNION ALL SELECT jti, '?', '?', NULL, NULL, revoked_at, revoked_by, 'not issued by this store' "
        "FROM revocations ORDER BY 4 DESC, 6 DESC"
    )
    return [
        TokenInfo(
            jti=r["jti"],
            subject=r["subject"],
            scopes=r["scopes"],
            issued_at=r["issued_at"],
            expires_at=r["expires_at"],
            revoked_at=r["revoked_at"],
            revoked_by=r["revoked_by"],
            note=r["note"],
        )
        for r in rows
    ]


# -- verification --------------------------------------------------------------


def verify_token(
    token: str,
    *,
    public_key: Ed25519PublicKey | KeyRing,
    audience: str,
    issuer: str,
    store: Store | None,
    max_ttl: timedelta | None = None,
) -> dict[str, Any]:
    """Return the verified claims or raise AuthError with the reason.

    With a :class:`KeyRing`, a token naming a ``kid`` is checked against that key only
    (an unknown or retired kid is refused); a token without one against each key."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise AuthError(MALFORMED)
    ring = public_key if isinstance(public_key, KeyRing) else KeyRing.single(public_key)
    candidates = ring.candidates(token)
    for i, key in enumerate(candidates):
        try:
            return _verify_with(token, key, audience=audience, issuer=issuer, store=store, max_ttl=max_ttl)
        except AuthError as exc:
            if exc.message != BAD_SIGNATURE or i == len(candidates) - 1:
                raise
    raise AuthError(BAD_SIGNATURE)  # no key at all (a ring is never empty)


def _verify_with(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    audience: str,
    issuer: str,
    store: Store | None,
    max_ttl: timedelta | None,
) -> dict[str, Any]:
    try:
        # algorithms=[EdDSA] and an Ed25519 key object: `none`, HS256 with the
        # public key as secret, RS/ES algorithms all end in InvalidAlgorithmError.
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True, "strict_aud": True},
        )
    except jwt.InvalidAlgorithmError as exc:
        raise AuthError(BAD_ALGORITHM) from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthError(BAD_SIGNATURE) from exc
    except jwt.ExpiredSignatureError as exc:
        raise AuthError(EXPIRED) from exc
    except jwt.ImmatureSignatureError as exc:
        raise AuthError(NOT_YET_VALID) from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthError(WRONG_AUDIENCE) from exc
    except jwt.InvalidIssuerError as exc:
        raise AuthError(WRONG_ISSUER) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(MISSING_CLAIM) from exc
    except (InvalidSubjectError, InvalidJTIError, jwt.InvalidIssuedAtError) as exc:
        raise AuthError(BAD_CLAIMS) from exc
    except jwt.DecodeError as exc:
        raise AuthError(MALFORMED) from exc
    except jwt.PyJWTError as exc:
        raise AuthError(INVALID) from exc
    scope, jti, sub = claims.get("scope"), claims.get("jti"), claims.get("sub")
    if not (isinstance(jti, str) and _JTI.fullmatch(jti)):
        raise AuthError(BAD_CLAIMS)
    if not (isinstance(sub, str) and _SUBJECT.fullmatch(sub)):
        raise AuthError(BAD_CLAIMS)
    if not isinstance(scope, str) or not scope.split() or any(s not in SCOPES for s in scope.split()):
        raise AuthError(UNKNOWN_SCOPE)
    exp, iat = claims["exp"], claims["iat"]
    lifetime = exp - iat if isinstance(exp, int | float) and isinstance(iat, int | float) else 0
    if max_ttl is not None and lifetime > max_ttl.total_seconds() + LEEWAY_S:
        raise AuthError(TOO_LONG_LIVED)
    if store is not None and is_revoked(store, jti):
        raise AuthError(REVOKED)
    return claims


# The access token our HTTP middleware verified for the current request, so the
# SDK's bearer backend (called further down the same request) does not repeat
# the signature check. Set and reset around one request only.
_VERIFIED: contextvars.ContextVar[tuple[str, AccessToken] | None] = contextvars.ContextVar(
    "tailops_verified_token", default=None
)


class TokenVerifier:
    """Verifies bearer tokens; also the MCP SDK's ``TokenVerifier`` protocol.

    A token that verified once is remembered (exact token string → its claims,
    bounded LRU), so a client reusing its token does not pay the Ed25519
    check on every request. Everything that can change is still checked on
    every request: expiry and revocation. The cache only ever holds tokens
    whose signature, audience, issuer and claims were verified in full.
    """

    CACHE_SIZE = 4096

    def __init__(
        self,
        *,
        public_key: Ed25519PublicKey | KeyRing,
        audience: str,
        issuer: str,
        store: Store,
        max_ttl: timedelta | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.audience = audience
        self._keys = public_key if isinstance(public_key, KeyRing) else KeyRing.single(public_key)
        self._issuer = issuer
        self._store = store
        self._max_ttl = max_ttl
        self._on_failure = on_failure
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, config: Settings, store: Store, *, on_failure: Callable[[str], None] | None = None
    ) -> TokenVerifier:
        """Load the public keys (current and previous); refuse to start when key files have
        unsafe permissions."""
        check_key_files(config)
        return cls(
            public_key=KeyRing(config.public_key_path, config.previous_keys_dir),
            audience=config.mcp_url,
            issuer=config.auth.issuer,
            store=store,
            max_ttl=config.auth.max_token_ttl,
            on_failure=on_failure,
        )

    def verify_claims(self, token: str) -> dict[str, Any]:
        """The verified claims (do not mutate them) or AuthError."""
        if self._keys.refresh():
            with self._lock:  # a retired key's tokens must not live on in the cache
                self._verified.clear()
        with self._lock:
            claims = self._verified.get(token)
            if claims is not None:
                self._verified.move_to_end(token)
        if claims is None:
            claims = verify_token(
                token,
                public_key=self._keys,
                audience=self.audience,
                issuer=self._issuer,
                store=self._store,
                max_ttl=self._max_ttl,
            )
            with self._lock:
                self._verified[token] = claims
                if len(self._verified) > self.CACHE_SIZE:
                    self._verified.popitem(last=False)
            return claims
        if time.time() > claims["exp"] + LEEWAY_S:
            with self._lock:
                self._verified.pop(token, None)
            raise AuthError(EXPIRED)
        if is_revoked(self._store, str(claims["jti"])):
            raise AuthError(REVOKED)
        return claims

    def authenticate(self, token: str) -> AccessToken:
        """The verified access token, or AuthError (the failure hook is called)."""
        # Imported here: the SDK takes ~2 s to import and the CLI never needs it.
        from mcp.server.auth.provider import AccessToken

        try:
            claims = self.verify_claims(token)
        except AuthError as exc:
            if self._on_failure is not None:
                self._on_failure(failure_reason(exc))
            raise
        return AccessToken(
            token=token,
            client_id=str(claims["sub"]),
            subject=str(claims["sub"]),
            scopes=str(claims["scope"]).split(),
            expires_at=int(claims["exp"]),
            resource=self.audience,
            claims={"jti": claims["jti"], "iat": claims["iat"], "iss": claims["iss"]},
        )

    def remember(self, token: str, access: AccessToken) -> contextvars.Token[tuple[str, AccessToken] | None]:
        """Mark ``token`` as verified for the rest of this request (see :meth:`forget`)."""
        return _VERIFIED.set((token, access))

    @staticmethod
    def forget(marker: contextvars.Token[tuple[str, AccessToken] | None]) -> None:
        _VERIFIED.reset(marker)

    async def verify_token(self, token: str) -> AccessToken | None:
        """SDK protocol: None for any invalid token (the SDK answers 401)."""
        cached = _VERIFIED.get()
        if cached is not None and cached[0] == token:
            return cached[1]
        try:
            return self.authenticate(token)
        except AuthError:
            return None
