"""Known failure signatures and their targets (tailops.monitor.log_analysis.signatures)."""

from __future__ import annotations

import pytest

from tailops.monitor.log_analysis.signatures import SIGNATURE_BY_KIND, SIGNATURES, match_signature, target_of


@pytest.mark.parametrize(
    ("line", "kind", "target"),
    [
        ("dial tcp 10.0.0.7:5432: connect: connection refused", "connection_refused", "10.0.0.7:5432"),
        (
            'could not connect to server: Connection refused Is the server running on host "db" (172.18.0.2), '
            "port 5432",
            "connection_refused",
            "db:5432",
        ),
        ("getaddrinfo ENOTFOUND redis.internal", "dns_failure", "redis.internal"),
        ("open /data/app.db: no space left on device", "disk_full", "/data/app.db"),
        ("listen tcp :8080: bind: address already in use", "port_in_use", "8080"),
        ('FATAL: password authentication failed for user "app"', "auth_failure", "app"),
    ],
)
def test_signature_and_target(line: str, kind: str, target: str) -> None:
    found = match_signature(line)
    assert found is not None and found[0] == kind
    sig = SIGNATURE_BY_KIND[kind]
    assert sig.target is not None and target_of(sig.target, line) == target


def test_the_leftmost_signature_wins() -> None:
    found = match_signature("Permission denied while handling: connection refused by upstream")
    assert found is not None and found[0] == "permission_denied"


def test_a_line_without_any_keyword_matches_nothing() -> None:
    assert match_signature("GET /health 200 1.2ms") is None


def test_every_signature_has_a_pattern_and_a_recommendation() -> None:
    assert {s.kind for s in SIGNATURES} == set(SIGNATURE_BY_KIND)
    for sig in SIGNATURES:
        assert sig.recommendation.endswith(".") and sig.title
