"""Rate limits: per principal (429 + Retry-After, then recovery), a separate smaller
budget for failed authentications per client address, and the stdio path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from tailops.auth.ratelimit import AuthFailureLimiter, RateLimiter, TokenBucket
from tailops.config import load_config
from tailops.errors import RateLimited
from tailops.principal import Principal
from tailops.server.middleware import REFUSED_CODE
from tests.servers import RunningServer, http_server, mcp_http_client

PER_MINUTE = 120  # 2 per second
BURST = 5
FAILURES_PER_MINUTE = 30  # one more try every 2 s once spent
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("ratelimit")
    (tmp / "empty.yaml").write_text("{}\n")
    settings = load_config(
        tmp / "empty.yaml",
        server={"data_dir": str(tmp / "data")},
        auth={
            "rate_limit_per_minute": PER_MINUTE,
            "rate_limit_burst": BURST,
            "auth_failures_per_minute": FAILURES_PER_MINUTE,
        },
    )
    with http_server(settings) as running:
        yield running


def client(local: str) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.HTTPTransport(local_address=local), timeout=10)


def wait_until_allowed(http: httpx2.Client, url: str, headers: dict[str, str], limit_s: float) -> httpx2.Response:
    deadline = time.monotonic() + limit_s
    while True:
        r = http.post(url, json=PING, headers=headers)
        if r.status_code != 429 or time.monotonic() > deadline:
            return r
        time.sleep(float(r.headers["retry-after"]) / 4)


def test_per_principal_limit_answers_429_with_retry_after_and_recovers(srv: RunningServer) -> None:
    alice = {**ACCEPT, "Authorization": f"Bearer {srv.mint('alice', 'readonly')}"}
    bob = {**ACCEPT, "Authorization": f"Bearer {srv.mint('bob', 'readonly')}"}
    limited_before = srv.runtime.metrics.rate_limited.labels("principal")._value.get()
    with client("127.0.0.1") as http:
        statuses = [http.post(srv.url, json=PING, headers=alice).status_code for _ in range(BURST + 3)]
        assert 429 not in statuses[: BURST - 1], statuses  # the burst is served (a refill may add one)
        assert statuses[-1] == 429, statuses
        refused = http.post(srv.url, json=PING, headers=alice)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        body = refused.json()
        assert body["jsonrpc"] == "2.0" and body["id"] is None
        assert body["error"]["data"]["error"] == "rate_limited" and 0 < body["error"]["data"]["retry_after"] <= 2
        assert "alice" in body["error"]["message"] and "Retry after" in body["error"]["message"]
        # Another principal on the same address is not affected.
        assert http.post(srv.url, json=PING, headers=bob).status_code != 429
        # After Retry-After the principal is served again.
        time.sleep(int(refused.headers["retry-after"]))
        assert http.post(srv.url, json=PING, headers=alice).status_code != 429
    assert srv.runtime.metrics.rate_limited.labels("principal")._value.get() > limited_before


async def test_sdk_client_is_told_to_wait_and_its_session_is_served_again(srv: RunningServer) -> None:
    """The refusal reaches the agent as an MCP error it can act on (not the SDK's bare
    "Server returned an error response"), and the same session works once it has waited."""
    token = srv.mint("busy-agent", "readonly")
    async with mcp_http_client(srv.url, token) as c:
        calls = 0
        with pytest.raises(MCPError) as refused:
            for _ in range(BURST + 5):
                assert not (await c.call_tool("health_check", {})).is_error
                calls += 1
        assert calls < BURST + 5
        err = refused.value
        assert err.code == REFUSED_CODE
        assert "rate limit of 120 requests/min reached for busy-agent" in err.message
        assert "Retry after" in err.message
        assert err.data["error"] == "rate_limited" and err.data["status"] == 429
        await anyio.sleep(max(err.data["retry_after"], BURST * 60 / PER_MINUTE))
        for _ in range(2):
            assert not (await c.call_tool("health_check", {})).is_error


async def test_sdk_client_with_a_bad_token_is_told_why(srv: RunningServer) -> None:
    # The refused initialize ends the client's task group: the MCPError arrives in a group.
    with pytest.raises(ExceptionGroup) as refused:
        async with mcp_http_client(srv.url, "forged.token.value"):
            pass
    matched, _ = refused.value.split(MCPError)
    assert matched is not None
    err = matched.exceptions[0]
    while isinstance(err, ExceptionGroup):
        err = err.exceptions[0]
    assert isinstance(err, MCPError)
    assert err.code == REFUSED_CODE and err.message == "malformed token."
    assert err.data == {"error": "invalid_token", "status": 401}


def test_failed_authentications_get_a_smaller_budget_per_address(srv: RunningServer) -> None:
    good = {**ACCEPT, "Authorization": f"Bearer {srv.mint('carol', 'readonly')}"}
    bad = {**ACCEPT, "Authorization": "Bearer forged.token.value"}
    with client("127.0.0.3") as attacker, client("127.0.0.4") as neighbour:
        statuses = [attacker.post(srv.url, json=PING, headers=bad).status_code for _ in range(FAILURES_PER_MINUTE)]
        assert statuses == [401] * FAILURES_PER_MINUTE
        blocked = attacker.post(srv.url, json=PING, headers=bad)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert blocked.json()["error"]["data"]["error"] == "too_many_failed_authentications"
        assert "127.0.0.3" in blocked.json()["error"]["message"]
        # The token is verified first: a valid token from the same address is never locked out
        # (behind one proxy address, a noisy client must not lock everyone else out).
        assert attacker.post(srv.url, json=PING, headers=good).status_code not in (401, 429)
        # Other addresses are not affected.
        assert neighbour.post(srv.url, json=PING, headers=good).status_code != 429
        assert neighbour.post(srv.url, json=PING, headers=bad).status_code == 401
        # /health stays open for everyone.
        assert attacker.get(f"{srv.base_url}/health").status_code == 200
        recovered = wait_until_allowed(attacker, srv.url, bad, limit_s=10)
        assert recovered.status_code == 401


def test_blocked_attempts_are_not_audited_one_by_one(srv: RunningServer) -> None:
    before = len(srv.settings.audit_path.read_text().splitlines())
    bad = {**ACCEPT, "Authorization": "Bearer forged.token.value"}
    with client("127.0.0.5") as http:
        codes = [http.post(srv.url, json=PING, headers=bad).status_code for _ in range(FAILURES_PER_MINUTE + 20)]
    assert codes.count(401) <= FAILURES_PER_MINUTE + 1 and codes.count(429) >= 19
    after = len(srv.settings.audit_path.read_text().splitlines())
    # each 401 recorded; the flood of 429s once (the budget ran out), not one by one
    assert after - before == codes.count(401) + 1
    last = [json.loads(x) for x in srv.settings.audit_path.read_text().splitlines()[before:]]
    over = [r for r in last if r.get("error", "").startswith("429")]
    assert len(over) == 1 and "127.0.0.5" in over[0]["reason"] and over[0]["decision"] == "denied"


# -- the limiter itself (stdio path and buckets) -----------------------------------------


def test_stdio_calls_are_charged_at_the_tool_boundary_http_ones_are_not() -> None:
    limiter = RateLimiter(per_minute=60, burst=3)
    stdio = Principal(subject="local:me", scopes=frozenset({"readonly"}), transport="stdio")
    http = Principal(subject="alice", scopes=frozenset({"readonly"}), transport="http")
    for _ in range(10):
        limiter.check_call(http)  # charged per request by the HTTP middleware instead
    for _ in range(3):
        limiter.check_call(stdio)
    with pytest.raises(RateLimited) as info:
        limiter.check_call(stdio)
    assert 0 < info.value.retry_after <= 1.0 and "local:me" in info.value.message


def test_default_burst_is_the_per_minute_rate() -> None:
    limiter = RateLimiter(per_minute=100)
    for _ in range(100):
        limiter.check_key("k", "k")
    with pytest.raises(RateLimited):
        limiter.check_key("k", "k")


def test_auth_failure_limiter_peeks_without_charging() -> None:
    limiter = AuthFailureLimiter(per_minute=2)
    assert limiter.retry_after("1.2.3.4") == 0
    assert limiter.retry_after("1.2.3.4") == 0  # looking is free
    limiter.record_failure("1.2.3.4")
    limiter.record_failure("1.2.3.4")
    assert 0 < limiter.retry_after("1.2.3.4") <= 30
    assert limiter.retry_after("5.6.7.8") == 0


def test_bucket_memory_is_bounded() -> None:
    bucket = TokenBucket(rate=1.0, capacity=5, max_keys=100)
    for i in range(1000):
        bucket.take(f"k{i}", cost=5)
    assert len(bucket._state) <= 101
