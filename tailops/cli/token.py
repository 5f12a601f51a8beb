"""``tailops token``: key pair (and its rotation), mint, list, inspect, revoke.

A thin layer over :mod:`tailops.auth.tokens`. ``mint`` prints the token alone
on stdout (so ``TOKEN=$(tailops token mint ...)`` works) and everything else on
stderr. ``keygen``, ``retire-key``, ``mint`` and ``revoke`` are recorded in the audit log
(transport ``cli``); a mint whose audit record cannot be written is revoked
again and fails. No command ever prints a private key or a token's signature,
and the audit log never sees a token.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import jwt
import typer

from tailops.auth import local_user
from tailops.auth.scopes import SCOPES
from tailops.auth.tokens import (
    EXPIRED,
    MALFORMED,
    MAX_TOKEN_CHARS,
    REVOKED,
    TokenVerifier,
    check_jti,
    generate_keypair,
    key_id,
    list_tokens,
    load_public_key,
    mint_token,
    previous_public_keys,
    retire_key,
    revoke_token,
    rotate_keypair,
)
from tailops.cli.common import ConfigOption, audit_cli, audit_cli_failure, cli_errors, console_err, load
from tailops.docs import render_scope_table, render_surface_table
from tailops.durations import format_duration, parse_duration
from tailops.errors import AuditError, AuthError, ConfigError, InvalidInput, TailopsError
from tailops.store import Store

__all__ = ["app"]

app = typer.Typer(
    help="Bearer tokens: create the signing key pair, mint, list, inspect and revoke tokens.",
    no_args_is_help=True,
)


def _iso(ts: int | float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ensure_private_dir(path: Path) -> None:
    """Create the data dir (and missing parents) 0700, as documented: it holds the keys,
    the store and the audit log. An existing dir is left as it is (the server tightens it
    to 0700 at start)."""
    missing: list[Path] = []
    current = path.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    try:
        for directory in reversed(missing):
            directory.mkdir(mode=0o700)
            os.chmod(directory, 0o700)  # the umask must not widen or narrow it
    except OSError as exc:
        raise ConfigError(f"cannot create the data dir {path}: {exc.strerror}.") from exc


@app.command()
@cli_errors
def keygen(
    config: ConfigOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing key pair (tokens signed with it stop working)."),
    ] = False,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate",
            help="Start a key rotation: a new pair replaces the current one, whose public key stays "
            "accepted (tokens it signed keep working) until `tailops token retire-key`.",
        ),
    ] = False,
) -> None:
    """Create the Ed25519 signing key pair (private key 0600, public key 0644), or rotate it."""
    settings = load(config)
    args = {
        "private_key_path": str(settings.private_key_path),
        "public_key_path": str(settings.public_key_path),
        "force": force,
        "rotate": rotate,
    }
    try:
        _ensure_private_dir(settings.server.data_dir)
        if rotate and force:
            raise InvalidInput("--rotate and --force exclude each other (--force drops the old key at once).")
        if rotate:
            old_kid, new_kid = rotate_keypair(
                settings.private_key_path, settings.public_key_path, settings.previous_keys_dir
            )
        else:
            generate_keypair(settings.private_key_path, settings.public_key_path, overwrite=force)
    except TailopsError as exc:
        audit_cli_failure(settings, "token keygen", args, exc)
        raise
    if rotate:
        audit_cli(settings, "token keygen", args, None, old_kid=old_kid, new_kid=new_kid)
        typer.echo(f"new key {new_kid}: {settings.public_key_path} (new tokens are signed with it)")
        typer.echo(
            f"old key {old_kid}: still accepted ({settings.previous_keys_dir / (old_kid + '.pub')}); "
            f"once its tokens are replaced: tailops token retire-key {old_kid}"
        )
        return
    audit_cli(settings, "token keygen", args, None)
    typer.echo(f"private key: {settings.private_key_path} (0600; keep it off the server if you can)")
    typer.echo(f"public key:  {settings.public_key_path} (the server verifies tokens with this one)")


@app.command()
@cli_errors
def keys(config: ConfigOption = None) -> None:
    """The public keys the server accepts: the current one, then previous ones (rotation)."""
    settings = load(config)
    current = load_public_key(settings.public_key_path)
    typer.echo(f"{key_id(current)}  current   {settings.public_key_path}")
    for kid in previous_public_keys(settings.previous_keys_dir):
        typer.echo(f"{kid}  previous  {settings.previous_keys_dir / (kid + '.pub')}")


@app.command("retire-key")
@cli_errors
def retire_key_command(
    kid: Annotated[str, typer.Argument(help="Key id of a previous key (see `tailops token keys`).")],
    config: ConfigOption = None,
) -> None:
    """End a rotation: tokens signed by this previous key are refused from the next request on."""
    settings = load(config)
    args = {"kid": kid}
    try:
        if kid.strip() == key_id(load_public_key(settings.public_key_path)):
            raise InvalidInput(
                f"{kid.strip()} is the current key; it cannot be retired.",
                hint="Rotate first (tailops token keygen --rotate), then retire the old key.",
            )
        retire_key(settings.previous_keys_dir, kid.strip())
    except TailopsError as exc:
        audit_cli_failure(settings, "token retire-key", args, exc)
        raise
    audit_cli(settings, "token retire-key", args, None)
    typer.echo(f"retired key {kid.strip()}: tokens it signed are refused from now on.")


@app.command()
@cli_errors
def mint(
    subject: Annotated[str, typer.Option("--subject", "-s", help="Who the token is for, e.g. alice.")],
    scopes: Annotated[str, typer.Option("--scopes", help=f"Space-separated scopes: {' '.join(SCOPES)}.")],
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime, e.g. 1h, 24h, 7d (max: auth.max_token_ttl).")],
    note: Annotated[str | None, typer.Option("--note", help="Free text kept with the record.")] = None,
    config: ConfigOption = None,
) -> None:
    """Mint a token: prints the token alone on stdout, its details on stderr."""
    settings = load(config)
    args = {"subject": subject, "scopes": scopes, "ttl": ttl, "note": note}
    try:
        lifetime = parse_duration(ttl)
        store = Store(settings.db_path)
    except TailopsError as exc:
        audit_cli_failure(settings, "token mint", args, exc)
        raise
    try:
        minted = mint_token(
            private_key_path=settings.private_key_path,
            subject=subject,
            scopes=scopes,
            ttl=lifetime,
            max_ttl=settings.auth.max_token_ttl,
            audience=settings.mcp_url,
            issuer=settings.auth.issuer,
            store=store,
            note=note,
        )
    except TailopsError as exc:
        audit_cli_failure(settings, "token mint", args, exc)
        store.close()
        raise
    try:
        try:
            audit_cli(settings, "token mint", args, None, jti=minted.jti, expires=_iso(minted.expires_at))
        except AuditError as exc:
            # No audit record, no token: take it back before anyone can use it.
            revoke_token(store, minted.jti, by=f"cli:{local_user()} (audit write failed)")
            raise AuditError(
                f"{exc.message} The token was not issued (jti {minted.jti} revoked).", hint=exc.hint
            ) from exc
    finally:
        store.close()
    console_err(
        f"minted jti={minted.jti} subject={minted.subject} scopes={' '.join(minted.scopes)} "
        f"expires={_iso(minted.expires_at)} ({format_duration(lifetime)}) audience={settings.mcp_url}"
    )
    sys.stdout.write(minted.token + "\n")
    sys.stdout.flush()


@app.command()
@cli_errors
def revoke(
    jti: Annotated[str, typer.Argument(help="The token's jti (from `tailops token list` or `inspect`).")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token by its jti; the server refuses it from the next request on."""
    settings = load(config)
    args = {"jti": jti}
    try:
        clean = check_jti(jti)
        store = Store(settings.db_path)
        try:
            newly, known = revoke_token(store, clean, by=f"cli:{local_user()}")
        finally:
            store.close()
    except TailopsError as exc:
        audit_cli_failure(settings, "token revoke", args, exc)
        raise
    audit_cli(settings, "token revoke", args, None, newly_revoked=newly, issued_here=known)
    if not newly:
        typer.echo(f"{clean} was already revoked.")
    elif known:
        typer.echo(f"revoked {clean}.")
    else:
        typer.echo(f"revoked {clean} (not issued by this store; added to the revocation list).")


@app.command("list")
@cli_errors
def list_command(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per token.")] = False,
) -> None:
    """List issued and revoked tokens (claims only: tokens themselves are never stored)."""
    settings = load(config)
    store = Store(settings.db_path)
    try:
        rows = list_tokens(store)
    finally:
        store.close()
    now = time.time()
    if as_json:
        for r in rows:
            typer.echo(
                json.dumps(
                    {
                        "jti": r.jti,
                        "subject": r.subject,
                        "scopes": r.scopes,
                        "issued": _iso(r.issued_at),
                        "expires": _iso(r.expires_at),
                        "revoked": _iso(r.revoked_at) if r.revoked_at else None,
                        "revoked_by": r.revoked_by,
                        "status": r.status(now),
                        "note": r.note,
                    }
                )
            )
        return
    if not rows:
        console_err("no tokens yet: tailops token mint --subject NAME --scopes readonly --ttl 24h")
        return
    header = ("JTI", "SUBJECT", "SCOPES", "ISSUED", "EXPIRES", "REVOKED", "STATUS")
    table = [header] + [
        (
            r.jti,
            r.subject,
            r.scopes,
            _iso(r.issued_at),
            _iso(r.expires_at),
            _iso(r.revoked_at) if r.revoked_at else "-",
            r.status(now),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _read_token(token: str) -> str:
    if token == "-":  # noqa: S105 (stdin marker)
        token = sys.stdin.read(MAX_TOKEN_CHARS + 2)
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise InvalidInput("that is not a token (a JWT has three dot-separated parts).")
    return token


@app.command()
@cli_errors
def inspect(
    token: Annotated[str, typer.Argument(help="The token, or - to read it from stdin (keeps it out of ps).")],
    config: ConfigOption = None,
) -> None:
    """Decode a token and verify it against the configured public key (exit 0 only if valid)."""
    settings = load(config)
    raw = _read_token(token)
    try:
        header = jwt.get_unverified_header(raw)
        claims = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidInput(MALFORMED) from exc
    typer.echo(f"header: alg={header.get('alg')} typ={header.get('typ')} kid={header.get('kid', '-')}")
    for key in ("sub", "scope", "iss", "aud", "jti"):
        typer.echo(f"{key}: {claims.get(key, '-')}")
    for key in ("iat", "nbf", "exp"):
        value = claims.get(key)
        typer.echo(f"{key}: {_iso(value) if isinstance(value, int | float) else '-'}")
    store = Store(settings.db_path)
    try:
        verifier = TokenVerifier.from_config(settings, store)
        verifier.verify_claims(raw)
    except AuthError as exc:
        status = {EXPIRED: "expired", REVOKED: "revoked"}.get(exc.message, "invalid")
        typer.echo(f"status: {status} ({exc.message})")
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo("status: valid (signature, audience, issuer, lifetime and revocation checked)")


@app.command()
def scopes(
    markdown: Annotated[bool, typer.Option("--markdown", help="The Markdown table docs/security.md embeds.")] = False,
) -> None:
    """Which scope each tool, resource, route and review-page action needs (the policy table)."""
    from tailops.tools.registry import declared_specs  # imports every tool module: only here

    tools, surfaces = render_scope_table(declared_specs()), render_surface_table()
    if markdown:
        typer.echo(tools + "\n" + surfaces, nl=False)
        return
    for line in tools.splitlines()[2:]:
        cells = [c.strip().replace("`", "") for c in line.strip("|").split("|")]
        typer.echo(f"{cells[0]:<16} {cells[1]}\n{'':<16} tools: {cells[2]}")
    typer.echo("")
    for line in surfaces.splitlines()[2:]:
        cells = [c.strip().replace("`", "") for c in line.strip("|").split("|")]
        typer.echo(f"{cells[0]:<14} {cells[1]:<40} {cells[2]}")
