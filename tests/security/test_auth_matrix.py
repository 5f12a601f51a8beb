"""Every exposed tool x every kind of token → exactly the expected allow/deny.

One real HTTP server for the module, driven by the real MCP SDK client (and,
for requests the server must refuse before any session exists, by plain HTTP
POSTs of ``tools/call``). The tool list comes from
``exposed_specs(runtime)``, so tools added later are covered automatically.

To prove a denied body never runs, every tool's body is replaced for this
module by a counting stub with the same signature (so the same input schema
and the same registry boundary: scope check, rate limit, audit); the stub
raises a marker error, so "allowed" means "the marker came back and the count
went up", "denied" means "permission_denied / 401 and the count did not move".
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import inspect
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mcp.types import TextContent

from tailops.auth.scopes import SCOPES
from tailops.auth.tokens import mint_token, revoke_token
from tailops.config import load_config
from tailops.errors import NotFound
from tailops.server.mcp_server import exposed_specs
from tailops.tools import registry
from tailops.tools.registry import ToolCall, ToolSpec
from tests.contract.samples import SAMPLE_ARGS
from tests.servers import RunningServer, http_server, mcp_http_client

MARK = "matrix-stub: body reached"
UNAUTHENTICATED = ["no_token", "expired", "revoked", "forged", "alg_none", "hs256_public_key", "wrong_audience"]
ALLOWED = ["right_scope", "admin"]
CASES = [*UNAUTHENTICATED, "wrong_scope", *ALLOWED]


def _stub(spec: ToolSpec, counts: Counter[str]) -> Callable[..., Any]:
    """Same signature and annotations as the real body; counts and raises the marker."""
    if inspect.iscoroutinefunction(spec.fn):

        @functools.wraps(spec.fn)
        async def astub(call: ToolCall, *args: Any, **kwargs: Any) -> Any:
            counts[spec.name] += 1
            raise NotFound(f"{MARK} ({spec.name})")

        return astub

    @functools.wraps(spec.fn)
    def stub(call: ToolCall, *args: Any, **kwargs: Any) -> Any:
        counts[spec.name] += 1
        raise NotFound(f"{MARK} ({spec.name})")

    return stub


def _static_scope(spec: ToolSpec) -> Callable[[Any, dict[str, Any]], str]:
    return lambda _rt, _args: spec.scope


@dataclass
class Matrix:
    srv: RunningServer
    counts: Counter[str]
    specs: list[ToolSpec]
    schemas: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    real = registry.declared_specs()  # imports every tool module first
    counts: Counter[str] = Counter()
    # The matrix checks the static scope gate of every tool. An argument-dependent
    # scope (``scope_for``: a playbook's or a plan's) resolves real catalog entries
    # and plans, so here it is pinned to the static scope; its own denials are
    # proven in tests/integration/test_change_lifecycle.py.
    stubs = [
        dataclasses.replace(s, fn=_stub(s, counts), scope_for=_static_scope(s) if s.scope_for else None) for s in real
    ]
    tmp = tmp_path_factory.mktemp("matrix")
    (tmp / "empty.yaml").write_text("{}\n")
    settings = load_config(
        tmp / "empty.yaml",
        server={"data_dir": str(tmp / "data")},
        auth={"rate_limit_per_minute": 1_000_000, "auth_failures_per_minute": 1_000_000},
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_SPECS", stubs)
        with http_server(settings) as srv:
            specs = exposed_specs(srv.runtime)
            assert specs and all(hasattr(s.fn, "__wrapped__") for s in specs), "stubs not installed"
            yield Matrix(srv=srv, counts=counts, specs=specs)


# -- arguments ------------------------------------------------------------------------

_STRING_CANDIDATES = ("localhost", "127.0.0.1", "/var/log/syslog", "x", "nginx", "a")


def _minimal(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _minimal(root.get("$defs", {}).get(name, {}), root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _minimal(options[0], root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10_000)
        for cand in (*_STRING_CANDIDATES, "a" * max(low, 1)):
            if low <= len(cand) <= high and jsonschema.Draft202012Validator(schema).is_valid(cand):
                return cand
        return "a" * max(low, 1)
    if kind in ("integer", "number"):
        if "minimum" in schema:
            return schema["minimum"]
        if "exclusiveMinimum" in schema:
            return schema["exclusiveMinimum"] + 1
        return min(1, schema.get("maximum", 1))
    if kind == "boolean":
        return False
    if kind == "array":
        return [_minimal(schema.get("items", {}), root) for _ in range(schema.get("minItems", 0))]
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _minimal(props.get(k, {}), root) for k in schema.get("required", [])}
    return None


def arguments_for(name: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    """The contract tests' sample arguments if they fit the published schema, else a minimal valid set."""
    validator = jsonschema.Draft202012Validator(input_schema)
    sample = SAMPLE_ARGS.get(name)
    if sample is not None and validator.is_valid(sample):
        return dict(sample)
    generated = _minimal(input_schema, input_schema)
    assert isinstance(generated, dict) and validator.is_valid(generated), (
        f"cannot build valid arguments for {name} from its inputSchema; add it to tests/contract/samples.py"
    )
    return generated


async def _schemas(m: Matrix) -> dict[str, dict[str, Any]]:
    if not m.schemas:
        token = m.srv.mint("matrix-lister", "readonly")
        async with mcp_http_client(m.srv.url, token) as client:
            tools = (await client.list_tools()).tools
        m.schemas = {t.name: t.input_schema for t in tools}
        assert set(m.schemas) == {s.name for s in m.specs}, "tools/list differs from exposed_specs"
    return m.schemas


# -- tokens ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _good_claims(srv: RunningServer, sub: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": srv.settings.auth.issuer,
        "sub": sub,
        "scope": "admin",
        "aud": srv.url,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": hashlib.sha256(sub.encode()).hexdigest()[:32],
    }


def bad_token(case: str, srv: RunningServer) -> str | None:
    """A token that must be refused (every one carries the admin scope: only its defect matters)."""
    settings = srv.settings
    sub = f"matrix-{case}"
    if case == "no_token":
        return None
    if case == "expired":
        return mint_token(
            private_key_path=settings.private_key_path,
            subject=sub,
            scopes="admin",
            ttl=timedelta(hours=1),
            max_ttl=settings.auth.max_token_ttl,
            audience=srv.url,
            issuer=settings.auth.issuer,
            store=srv.runtime.store,
            now=time.time() - 3 * 3600,
        ).token
    if case == "revoked":
        minted = mint_token(
            private_key_path=settings.private_key_path,
            subject=sub,
            scopes="admin",
            ttl=timedelta(hours=1),
            max_ttl=settings.auth.max_token_ttl,
            audience=srv.url,
            issuer=settings.auth.issuer,
            store=srv.runtime.store,
        )
        revoke_token(srv.runtime.store, minted.jti, by="matrix")
        return minted.token
    if case == "forged":
        return jwt.encode(_good_claims(srv, sub), Ed25519PrivateKey.generate(), algorithm="EdDSA")
    if case == "alg_none":
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{_b64(json.dumps(_good_claims(srv, sub)).encode())}."
    if case == "hs256_public_key":
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        signing = f"{header}.{_b64(json.dumps(_good_claims(srv, sub)).encode())}"
        key = Path(settings.public_key_path).read_bytes()
        return f"{signing}.{_b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())}"
    if case == "wrong_audience":
        return mint_token(
            private_key_path=settings.private_key_path,
            subject=sub,
            scopes="admin",
            ttl=timedelta(hours=1),
            max_ttl=settings.auth.max_token_ttl,
            audience="http://other-server.example:8787/mcp",
            issuer=settings.auth.issuer,
            store=srv.runtime.store,
        ).token
    raise AssertionError(case)


def _wrong_scope(scope: str) -> str:
    return next(s for s in SCOPES if s not in (scope, "admin"))


def _audit_since(srv: RunningServer, seq: int) -> list[dict[str, Any]]:
    lines = srv.settings.audit_path.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["seq"] > seq]


def _audit_seq(srv: RunningServer) -> int:
    lines = srv.settings.audit_path.read_text().splitlines() if srv.settings.audit_path.exists() else []
    return json.loads(lines[-1])["seq"] if lines else 0


def _text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


# -- the matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("case", UNAUTHENTICATED)
async def test_unauthenticated_requests_never_reach_a_tool(matrix: Matrix, case: str) -> None:
    srv, schemas = matrix.srv, await _schemas(matrix)
    token = bad_token(case, srv)
    before_counts = dict(matrix.counts)
    since = _audit_seq(srv)
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    wrong: list[str] = []
    async with httpx2.AsyncClient(timeout=30) as http:
        for i, spec in enumerate(matrix.specs):
            body = {
                "jsonrpc": "2.0",
                "id": i,
                "method": "tools/call",
                "params": {"name": spec.name, "arguments": arguments_for(spec.name, schemas[spec.name])},
            }
            r = await http.post(srv.url, json=body, headers=headers)
            challenge = r.headers.get("www-authenticate", "")
            if r.status_code != 401 or "resource_metadata=" not in challenge:
                wrong.append(f"{spec.name}: HTTP {r.status_code} {challenge!r}")
            elif token is not None and 'error="invalid_token"' not in challenge:
                wrong.append(f"{spec.name}: challenge lacks invalid_token: {challenge!r}")
    assert not wrong, f"{case}: not refused with 401:\n" + "\n".join(wrong)
    # The real SDK client cannot even open a session with this token.
    with pytest.raises(Exception):  # noqa: B017 (the SDK wraps the 401 in exception groups)
        async with mcp_http_client(srv.url, token) as client:
            await client.call_tool(matrix.specs[0].name, {})
    assert dict(matrix.counts) == before_counts, f"{case}: a tool body ran"
    records = _audit_since(srv, since)
    assert not [r for r in records if r.get("kind") == "tool"], f"{case}: a tool call was recorded"
    refusals = [r for r in records if r.get("event") == "authentication"]
    assert len(refusals) >= len(matrix.specs)
    assert all(r["decision"] == "denied" for r in refusals)
    if token is not None:
        text = srv.settings.audit_path.read_text()
        assert token not in text and token.split(".")[1] not in text, "a token reached the audit log"


async def test_wrong_scope_is_refused_before_the_body_and_audited(matrix: Matrix) -> None:
    srv, schemas = matrix.srv, await _schemas(matrix)
    since = _audit_seq(srv)
    wrong: list[str] = []
    for scope in sorted({s.scope for s in matrix.specs}):
        held = _wrong_scope(scope)
        token = srv.mint(f"wrong-for-{scope.replace(':', '-')}", held)
        async with mcp_http_client(srv.url, token) as client:
            for spec in (s for s in matrix.specs if s.scope == scope):
                before = matrix.counts[spec.name]
                result = await client.call_tool(spec.name, arguments_for(spec.name, schemas[spec.name]))
                text = _text(result)
                if not (result.is_error and text.startswith("permission_denied:") and f"'{scope}'" in text):
                    wrong.append(f"{spec.name} with {held}: {text[:120]}")
                if matrix.counts[spec.name] != before:
                    wrong.append(f"{spec.name} with {held}: BODY RAN")
    assert not wrong, "wrong scope not refused:\n" + "\n".join(wrong)
    denied = {r["tool"]: r for r in _audit_since(srv, since) if r.get("kind") == "tool"}
    assert set(denied) == {s.name for s in matrix.specs}
    for spec in matrix.specs:
        rec = denied[spec.name]
        assert rec["decision"] == "denied" and rec["outcome"] == "denied" and rec["phase"] == "end"
        assert f"needs scope '{spec.scope}'" in rec["reason"]
        assert rec["principal"]["jti"] and rec["principal"]["transport"] == "http"


@pytest.mark.parametrize("case", ALLOWED)
async def test_right_scope_and_admin_reach_the_body(matrix: Matrix, case: str) -> None:
    srv, schemas = matrix.srv, await _schemas(matrix)
    since = _audit_seq(srv)
    wrong: list[str] = []
    scopes = sorted({s.scope for s in matrix.specs}) if case == "right_scope" else ["admin"]
    for scope in scopes:
        token = srv.mint(f"{case}-{scope.replace(':', '-')}", scope)
        async with mcp_http_client(srv.url, token) as client:
            for spec in (s for s in matrix.specs if case == "admin" or s.scope == scope):
                before = matrix.counts[spec.name]
                result = await client.call_tool(spec.name, arguments_for(spec.name, schemas[spec.name]))
                text = _text(result)
                if MARK not in text or matrix.counts[spec.name] != before + 1:
                    wrong.append(f"{spec.name} with {scope}: {text[:120]}")
    assert not wrong, f"{case}: allowed call did not reach the body:\n" + "\n".join(wrong)
    records = [r for r in _audit_since(srv, since) if r.get("kind") == "tool"]
    ends = {r["tool"]: r for r in records if r["phase"] == "end"}
    assert set(ends) == {s.name for s in matrix.specs}
    for spec in matrix.specs:
        rec = ends[spec.name]
        # The stub failed, and the audit says so: outcomes are true.
        assert rec["decision"] == "allowed" and rec["outcome"] == "error" and MARK in rec["error"]
        starts = [r for r in records if r["tool"] == spec.name and r["phase"] == "start"]
        assert len(starts) == (0 if spec.read_only else 1), spec.name


async def test_revocation_takes_effect_on_the_next_request(matrix: Matrix) -> None:
    srv = matrix.srv
    minted = mint_token(
        private_key_path=srv.settings.private_key_path,
        subject="soon-revoked",
        scopes="readonly",
        ttl=timedelta(hours=1),
        max_ttl=srv.settings.auth.max_token_ttl,
        audience=srv.url,
        issuer=srv.settings.auth.issuer,
        store=srv.runtime.store,
    )
    readonly = next(s for s in matrix.specs if s.scope == "readonly")
    with pytest.raises(Exception):  # noqa: B017 (the SDK wraps the 401 in exception groups)
        async with mcp_http_client(srv.url, minted.token) as client:
            first = await client.call_tool(readonly.name, {})
            assert MARK in _text(first)
            revoke_token(srv.runtime.store, minted.jti, by="test")
            await client.call_tool(readonly.name, {})
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.post(
            srv.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Authorization": f"Bearer {minted.token}", "Accept": "application/json"},
        )
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
