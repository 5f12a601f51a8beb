from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailops.durations import format_duration, parse_duration
from tailops.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("24h", 86400), ("7d", 604800), ("1h30m", 5400), ("2w", 1209600), ("90", 90), (5, 5)],
)
def test_parses(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "h", "1h 30", "-5m", "1.2.3s", "9" * 40 + "s"])
def test_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


def test_rejects_negative_number() -> None:
    with pytest.raises(InvalidInput):
        parse_duration(-1)


@given(st.integers(min_value=0, max_value=10**8))
def test_format_roundtrips(seconds: int) -> None:
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)
