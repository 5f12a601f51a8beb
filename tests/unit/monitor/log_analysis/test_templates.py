"""Template mining and its bounded counters (tailops.monitor.log_analysis.templates)."""

from __future__ import annotations

from tailops.monitor.log_analysis.templates import Templates, mask


def test_variable_parts_are_masked_in_one_pass() -> None:
    text = "2024-05-01T10:00:00Z conn 3f2a9c1e-aaaa-bbbb-cccc-0123456789ab to 10.0.0.7:5432 took 31 ms (0xdeadbeef)"
    assert mask(text) == "<TS> conn <ID> to <IP> took <NUM> ms (<HEX>)"


def test_lines_that_differ_in_numbers_share_a_template() -> None:
    t = Templates(max_clusters=100)
    a = t.mine("connect to 10.0.0.7:5432 failed after 31 ms")
    b = t.mine("connect to 10.0.0.9:5432 failed after 12 ms")
    assert a == b
    t.count(a, "error", 1, None, "x")
    t.count(b, "warning", 2, None, "y")
    [stat] = t.stats(10, 400)
    assert stat.count == 2 and stat.severity == "error"  # an error template stays an error


def test_counters_are_pruned_to_the_most_frequent_and_covered_ids_go_with_them() -> None:
    t = Templates(max_clusters=2)
    words = ("alpha", "beta gamma", "delta epsilon zeta", "eta theta iota kappa", "lambda mu nu xi omicron")
    ids = [t.mine(f"failure kind {word}") for word in words]
    assert len(set(ids)) == 5
    for n, cid in enumerate(ids[:4]):
        for _ in range(n + 1):
            assert not t.count(cid, "error", 1, None, "x")  # up to twice max_clusters: no pruning
    t.covered.add(ids[0])
    assert t.count(ids[4], "error", 1, None, "x")  # the fifth: the least frequent go
    assert set(t.groups) == {ids[3], ids[2], ids[4]} and ids[0] not in t.covered
    assert [cid for cid, _, _ in t.unexplained_errors()] == [ids[3], ids[2], ids[4]]
