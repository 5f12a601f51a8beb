"""Who wants which resource updates: bounded per connection / per server, and a URI
stays watched exactly while some subscription or listen stream wants it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tailops.errors import InvalidInput, RateLimited, Unavailable
from tailops.server.protocol import ClientLogLevels, Completions, Listens, ProtocolFeatures, Subscriptions

A, B = "tailops://containers/a", "tailops://containers/b"


@dataclass
class Connection:
    """What the SDK hands a handler as ``ctx.session``: its initialize params identify the connection."""

    client_params: object = field(default_factory=object)


def test_a_uri_stays_listened_while_any_stream_wants_it() -> None:
    listens = Listens()
    listens.add("alice", [A, B])
    listens.add("bob", [A])
    assert listens.uris() == {A, B}
    listens.remove("alice", [A, B])
    assert listens.uris() == {A}
    listens.remove("bob", [A])
    assert listens.uris() == set()


def test_listen_streams_are_bounded_per_stream_caller_and_server() -> None:
    listens = Listens(max_streams=3, max_per_caller=2, max_uris=2)
    with pytest.raises(InvalidInput, match="at most 2 resources"):
        listens.add("alice", [A, B, "tailops://containers/c"])
    listens.add("alice", [A])
    listens.add("alice", [])
    with pytest.raises(RateLimited, match="alice already has 2 listen streams"):
        listens.add("alice", [B])
    listens.add("bob", [B])  # another caller still gets a slot ...
    with pytest.raises(Unavailable, match="3 listen streams"):
        listens.add("carol", [B])  # ... until the server is full
    assert listens.uris() == {A, B}
    listens.remove("alice", [])  # a stream ending frees its slot
    listens.add("carol", [])
    listens.remove("bob", [B])
    assert listens.uris() == {A}


def test_watched_is_both_eras_together() -> None:
    feats = ProtocolFeatures(log_levels=ClientLogLevels(), completions=Completions(), subscriptions=Subscriptions())
    conn = Connection()
    feats.subscriptions.add(conn, A)
    feats.listens.add("alice", [B])
    assert feats.watched() == {A, B}
    feats.subscriptions.remove(conn, A)
    assert feats.watched() == {B}


def test_subscriptions_are_bounded_per_connection_and_oldest_connection_first() -> None:
    subs = Subscriptions(max_connections=2, max_uris=1)
    first, second, third = Connection(), Connection(), Connection()
    subs.add(first, A)
    with pytest.raises(InvalidInput, match="1 resource subscriptions"):
        subs.add(first, B)
    subs.add(second, A)
    subs.add(third, B)  # the connection idle longest (first) is dropped
    assert subs.sessions_for(A) == [second] and subs.sessions_for(B) == [third]
    with pytest.raises(InvalidInput, match="initialized connection"):
        subs.add(Connection(client_params=None), A)
