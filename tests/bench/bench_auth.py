"""Security overhead per call (issue: security core).

Measured in-process, over >= 2000 iterations each, on the code paths the
server runs for every tool call:

- the target: token verification + scope check + audit write of a read-only
  call (redaction, hash chain, flock, append) — p50 <= 0.5 ms. A client reuses
  its token, so after its first request verification is the verifier's cache
  hit plus the per-request expiry and revocation (SQLite) checks;
- the same call on a token's first use (full Ed25519 signature and claims
  verification), reported separately;
- the parts, for orientation: verification (cached and cold), the audit write,
  and the fsynced audit write that denied and mutating calls pay (disk-bound).
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from tailops.audit import verify
from tailops.auth.scopes import require_scope
from tailops.auth.tokens import TokenVerifier, generate_keypair, mint_token
from tailops.config import load_config
from tailops.models import Model
from tailops.principal import Principal
from tailops.runtime import Runtime
from tailops.tools.registry import ToolCall, ToolSpec, audit_tool_call
from tests.bench.common import Row, summarize_ms

GROUP = "auth"
N = 3000
N_FSYNC = 300
WARMUP = 200
TARGET_P50_MS = 0.5


class _Done(Model):
    ok: bool


def _noop(call: ToolCall) -> _Done:
    """Benchmark tool."""
    return _Done(ok=True)


async def _measure(rt: Runtime, verifier: TokenVerifier, token: str) -> dict[str, list[float]]:
    read = ToolSpec(name="get_top_processes", group="system", scope="readonly", fn=_noop, description="bench")
    write = ToolSpec(
        name="manage_container",
        group="containers",
        scope="container:write",
        fn=_noop,
        description="bench",
        read_only=False,
    )
    args: dict[str, Any] = {"limit": 10, "sort_by": "cpu", "fields": ["pid", "name", "cpu_percent"]}

    async def call(spec: ToolSpec) -> None:
        access = verifier.authenticate(token)
        claims = access.claims or {}
        principal = Principal(
            subject=access.subject or access.client_id,
            scopes=frozenset(access.scopes),
            transport="http",
            token_id=claims.get("jti"),
            client_addr="127.0.0.1",
        )
        require_scope(principal, spec.scope, f"tool {spec.name}")
        await audit_tool_call(
            rt,
            spec=spec,
            principal=principal,
            arguments=args,
            decision="allowed",
            reason=None,
            outcome="ok",
            error=None,
            duration=0.0012,
            meta={},
        )

    out: dict[str, list[float]] = {
        "full": [],
        "full_cold": [],
        "verify": [],
        "verify_cold": [],
        "audit": [],
        "audit_fsync": [],
    }
    for _ in range(WARMUP):
        await call(read)
    for _ in range(N):
        t = time.perf_counter()
        await call(read)
        out["full"].append(time.perf_counter() - t)
    for _ in range(N):
        t = time.perf_counter()
        verifier.authenticate(token)
        out["verify"].append(time.perf_counter() - t)
    for _ in range(N):
        verifier._verified.clear()  # every call is a token's first use
        t = time.perf_counter()
        verifier.authenticate(token)
        out["verify_cold"].append(time.perf_counter() - t)
    for _ in range(N):
        verifier._verified.clear()
        t = time.perf_counter()
        await call(read)
        out["full_cold"].append(time.perf_counter() - t)
    principal = Principal(subject="bench", scopes=frozenset({"admin"}), transport="http", token_id="j" * 32)
    # A read-only call's record is a plain append; a mutating call's is fsynced.
    for spec, rounds, key in ((read, N, "audit"), (write, N_FSYNC, "audit_fsync")):
        for _ in range(rounds):
            t = time.perf_counter()
            await audit_tool_call(
                rt,
                spec=spec,
                principal=principal,
                arguments=args,
                decision="allowed",
                reason=None,
                outcome="ok",
                error=None,
                duration=0.001,
                meta={},
            )
            out[key].append(time.perf_counter() - t)
    return out


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "empty.yaml").write_text("{}\n")
        settings = load_config(root / "empty.yaml", server={"data_dir": str(root / "data")})
        generate_keypair(settings.private_key_path, settings.public_key_path)
        rt = Runtime(settings)
        try:
            verifier = TokenVerifier.from_config(settings, rt.store)
            token = mint_token(
                private_key_path=settings.private_key_path,
                subject="bench",
                scopes="readonly container:write",
                ttl=timedelta(hours=1),
                max_ttl=settings.auth.max_token_ttl,
                audience=settings.mcp_url,
                issuer=settings.auth.issuer,
                store=rt.store,
            ).token
            samples = anyio.run(_measure, rt, verifier, token)
            report = verify(settings.audit_path)
            assert report.ok and report.entries == WARMUP + 3 * N + N_FSYNC, "the benchmark broke the chain"
        finally:
            rt.stop()
    full = summarize_ms(samples["full"])
    rows = [
        Row(
            GROUP,
            "verify + scope + audit per call p50",
            full["p50"],
            "ms",
            target=f"<= {TARGET_P50_MS} ms",
            ok=full["p50"] <= TARGET_P50_MS,
            note=f"n={N}, read-only call",
        ),
        Row(GROUP, "verify + scope + audit per call p99", full["p99"], "ms", note=f"n={N}"),
    ]
    for key, label in (
        ("full_cold", "verify + scope + audit, token's first use p50"),
        ("verify", "token verification (repeat use) p50"),
        ("verify_cold", "token verification (first use, Ed25519) p50"),
        ("audit", "audit write p50"),
        ("audit_fsync", "audit write, fsynced (denied/mutating) p50"),
    ):
        s = summarize_ms(samples[key])
        rows.append(Row(GROUP, label, s["p50"], "ms", note=f"n={int(s['n'])}, p99 {s['p99']:.3f} ms"))
    return rows
