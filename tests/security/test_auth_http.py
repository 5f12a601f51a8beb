"""HTTP enforcement and the audit trail, against one real server.

- 401 + ``WWW-Authenticate`` + RFC 9728 metadata; only /health (and the
  metadata) are open; /metrics needs admin; Host/Origin allow-list.
- Audit outcomes are true, secrets never reach the file, a mutating call whose
  audit record cannot be written does not run.
- The server refuses to start with a private key others can read.
- stdio: the local user with ``auth.stdio_scopes``, audited as such.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx2
import pytest
import yaml
from mcp import Client
from mcp.types import TextContent
from pydantic import Field

from tailops.auth.tokens import generate_keypair
from tailops.config import load_config
from tailops.errors import ConfigError, InvalidInput
from tailops.models import Model
from tailops.runtime import Runtime
from tailops.server.app import build_app
from tailops.tools import registry
from tailops.tools.registry import ToolCall, ToolSpec
from tests.security.test_auth_matrix import arguments_for
from tests.servers import RunningServer, http_server, mcp_http_client, stdio_params

RAN: Counter[str] = Counter()
PASSWORD = "S3cr3t-Pa55-w0rd"


class Done(Model):
    ok: bool


def vault_login(
    call: ToolCall,
    user: Annotated[str, Field(description="User name.")],
    password: Annotated[str, Field(description="Password (must never be logged).")],
) -> Done:
    """Test-only tool: takes a secret argument and fails."""
    RAN["vault_login"] += 1
    raise InvalidInput(f"login refused for {user}")


def mutate_thing(call: ToolCall) -> Done:
    """Test-only tool: a mutating (non-read-only) call."""
    RAN["mutate_thing"] += 1
    return Done(ok=True)


TEST_SPECS = [
    ToolSpec(
        name="vault_login",
        group="system",
        scope="readonly",
        fn=vault_login,
        description="Test-only tool: takes a secret argument and fails.",
    ),
    ToolSpec(
        name="mutate_thing",
        group="system",
        scope="readonly",
        fn=mutate_thing,
        read_only=False,
        idempotent=False,
        description="Test-only tool: a mutating (non-read-only) call.",
    ),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    specs = registry.declared_specs()
    tmp = tmp_path_factory.mktemp("authhttp")
    (tmp / "empty.yaml").write_text("{}\n")
    # Many refusals from one address here: the failed-auth budget is tested in test_rate_limit.py.
    settings = load_config(
        tmp / "empty.yaml", server={"data_dir": str(tmp / "data")}, auth={"auth_failures_per_minute": 10_000}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_SPECS", [*specs, *TEST_SPECS])
        with http_server(settings) as running:
            yield running


def audit(srv: RunningServer) -> list[dict[str, Any]]:
    return [json.loads(x) for x in srv.settings.audit_path.read_text().splitlines()]


def text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


# -- 401, metadata, open and closed routes --------------------------------------------


def test_missing_token_gets_401_with_resource_metadata(srv: RunningServer) -> None:
    metadata_url = f"{srv.base_url}/.well-known/oauth-protected-resource/mcp"
    r = httpx2.post(srv.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer realm="tailops", resource_metadata="{metadata_url}"'
    meta = httpx2.get(metadata_url)
    assert meta.status_code == 200
    assert meta.json()["resource"] == srv.url and meta.json()["bearer_methods_supported"] == ["header"]
    # No OAuth authorization server exists (tokens come from `tailops token mint`): naming this
    # server as one made clients such as the MCP Inspector start an OAuth flow that cannot work.
    assert "authorization_servers" not in meta.json()
    assert "changes:approve" in meta.json()["scopes_supported"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer garbage", "malformed"),
        ("Bearer a.b.c", "malformed"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer  x y", "malformed"),
    ],
)
def test_invalid_credentials_get_401(srv: RunningServer, header: str, reason: str | None) -> None:
    r = httpx2.get(srv.url, headers={"Authorization": header})
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert "resource_metadata=" in challenge
    if reason:
        assert 'error="invalid_token"' in challenge
        # On the MCP endpoint the reason travels as a JSON-RPC error (what MCP clients show).
        error = r.json()["error"]
        assert reason in error["message"] and error["data"] == {"error": "invalid_token", "status": 401}


def test_expired_token_says_so(srv: RunningServer) -> None:
    from datetime import timedelta

    from tailops.auth.tokens import mint_token

    token = mint_token(
        private_key_path=srv.settings.private_key_path,
        subject="late",
        scopes="readonly",
        ttl=timedelta(minutes=5),
        max_ttl=timedelta(days=1),
        audience=srv.url,
        issuer="tailops",
        now=1000,
    ).token
    r = httpx2.get(srv.url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "token expired."


def test_health_is_open_everything_else_needs_a_token(srv: RunningServer) -> None:
    assert httpx2.get(f"{srv.base_url}/health").status_code == 200
    assert httpx2.get(f"{srv.base_url}/health", headers={"Authorization": "Bearer junk"}).status_code == 200
    for path in (
        "/metrics",
        "/mcp",
        "/nope",
        "/ui",
        "/.well-known/other",
        "/health/",
        "/.well-known/oauth-protected-resource/../../mcp",
        "/.well-known/oauth-protected-resource/x",
    ):
        assert httpx2.get(f"{srv.base_url}{path}").status_code == 401, path
    token = srv.mint("reader", "readonly")
    assert httpx2.get(f"{srv.base_url}/nope", headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_metrics_needs_the_admin_scope(srv: RunningServer) -> None:
    url = f"{srv.base_url}/metrics"
    reader = httpx2.get(url, headers={"Authorization": f"Bearer {srv.mint('reader', 'readonly')}"})
    assert reader.status_code == 403 and reader.json()["error"] == "insufficient_scope"
    assert 'scope="admin"' in reader.headers["www-authenticate"]
    admin = httpx2.get(url, headers={"Authorization": f"Bearer {srv.mint('root', 'admin')}"})
    assert admin.status_code == 200 and "tailops_auth_failures" in admin.text


def test_host_and_origin_allow_list(srv: RunningServer) -> None:
    token = srv.mint("host-check", "admin")
    auth = {"Authorization": f"Bearer {token}"}
    port = srv.url.split(":")[2].split("/")[0]
    for path in ("/metrics", "/mcp"):
        assert httpx2.get(f"{srv.base_url}{path}", headers={**auth, "Host": "evil.example"}).status_code == 421
        assert httpx2.get(f"{srv.base_url}{path}", headers={**auth, "Host": f"evil.example:{port}"}).status_code == 421
        origin = {**auth, "Origin": "http://evil.example"}
        assert httpx2.get(f"{srv.base_url}{path}", headers=origin).status_code == 403
    assert httpx2.get(f"{srv.base_url}/metrics", headers={**auth, "Host": f"localhost:{port}"}).status_code == 200
    ok_origin = {**auth, "Origin": f"http://127.0.0.1:{port}"}
    assert httpx2.get(f"{srv.base_url}/metrics", headers=ok_origin).status_code == 200
    # /health answers whatever Host a container health check uses.
    assert httpx2.get(f"{srv.base_url}/health", headers={"Host": "10.1.2.3:8787"}).status_code == 200


# -- the audit trail ------------------------------------------------------------------


async def test_outcomes_are_true_and_secrets_never_reach_the_log(srv: RunningServer) -> None:
    token = srv.mint("auditee", "readonly")
    async with mcp_http_client(srv.url, token) as client:
        failed = await client.call_tool("vault_login", {"user": "alice", "password": PASSWORD})
        assert failed.is_error and text(failed).startswith("invalid_input: login refused")
        bad = await client.call_tool("get_active_connections", {"status": "BOGUS"})
        assert bad.is_error
        good = await client.call_tool("health_check", {})
        assert not good.is_error
    records = {r["tool"]: r for r in audit(srv) if r.get("principal", {}).get("sub") == "auditee"}
    assert records["vault_login"]["outcome"] == "error" and "login refused" in records["vault_login"]["error"]
    assert records["vault_login"]["args"] == {"user": "alice", "password": "[REDACTED]"}
    assert records["get_active_connections"]["outcome"] == "error"
    assert records["health_check"]["outcome"] == "ok" and records["health_check"]["error"] is None
    raw = srv.settings.audit_path.read_text()
    for secret in (PASSWORD, token, token.split(".")[2]):
        assert secret not in raw
    assert RAN["vault_login"] == 1


async def test_a_mutating_call_does_not_run_unaudited(srv: RunningServer) -> None:
    token = srv.mint("mutator", "readonly")
    path = srv.settings.audit_path
    async with mcp_http_client(srv.url, token) as client:
        done = await client.call_tool("mutate_thing", {})
        assert not done.is_error and RAN["mutate_thing"] == 1
        phases = [r["phase"] for r in audit(srv) if r.get("tool") == "mutate_thing"]
        assert phases == ["start", "end"]
        moved = path.with_name("audit.jsonl.moved")
        path.rename(moved)
        path.mkdir()  # the live audit file is now a directory: every append fails
        try:
            refused = await client.call_tool("mutate_thing", {})
            assert refused.is_error and text(refused).startswith("audit_error:")
            assert RAN["mutate_thing"] == 1, "the body ran without an audit record"
            # Reading stays available while the log is broken (and the failure is logged).
            assert not (await client.call_tool("health_check", {})).is_error
        finally:
            path.rmdir()
            moved.rename(path)
        again = await client.call_tool("mutate_thing", {})
        assert not again.is_error and RAN["mutate_thing"] == 2
    from tailops.audit import verify

    assert verify(path).ok


# -- start-up refusals ----------------------------------------------------------------


def test_server_refuses_a_world_readable_private_key(tmp_path: Path) -> None:
    priv, pub = tmp_path / "keys" / "signing.key", tmp_path / "keys" / "signing.pub"
    generate_keypair(priv, pub)
    priv.chmod(0o644)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "server": {"data_dir": str(tmp_path / "data"), "port": 0},
                "auth": {"private_key": str(priv), "public_key": str(pub)},
            }
        )
    )
    with pytest.raises(ConfigError, match="private key"):
        build_app(Runtime(load_config(cfg)))
    exe = str(Path(sys.executable).with_name("tailops"))
    proc = subprocess.run([exe, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "private key" in proc.stderr and "chmod 600" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stdio_can_never_be_given_approve(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"auth": {"stdio_scopes": ["readonly", "changes:approve"]}}))
    with pytest.raises(ConfigError, match="stdio_scopes"):
        load_config(tmp_path / "c.yaml")


async def test_stdio_principal_is_the_local_user_with_stdio_scopes(tmp_path: Path) -> None:
    cfg = tmp_path / "stdio.yaml"
    cfg.write_text(
        yaml.safe_dump({"server": {"data_dir": str(tmp_path / "data")}, "auth": {"stdio_scopes": ["readonly"]}})
    )
    target = next(s for s in registry.declared_specs() if s.scope not in ("readonly", "admin"))
    async with Client(stdio_params(cfg)) as client:
        schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        allowed = await client.call_tool("health_check", {})
        assert not allowed.is_error
        denied = await client.call_tool(target.name, arguments_for(target.name, schemas[target.name]))
        assert denied.is_error and text(denied).startswith("permission_denied:")
        assert f"needs scope '{target.scope}'" in text(denied)
    records = [json.loads(x) for x in load_config(cfg).audit_path.read_text().splitlines()]
    by_tool = {r["tool"]: r for r in records}
    assert by_tool["health_check"]["principal"]["transport"] == "stdio"
    assert by_tool["health_check"]["principal"]["sub"].startswith("local:")
    assert by_tool[target.name]["decision"] == "denied"
