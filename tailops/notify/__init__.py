"""Webhook notifications of lifecycle events, from a durable outbox.

Why: approvers must learn that a plan waits, and operators that a run failed,
without watching the review page. The public surface:

- :class:`Event`, :class:`EventKind`, :func:`plan_event`, :func:`run_event`: what
  can be said (ids, counts, subjects; never params, diffs or secrets);
- :func:`emit` (the one call the change lifecycle makes) and :func:`enqueue` /
  :func:`enqueue_in` (the same inside a caller's own store transaction);
- :class:`Notifier`: the background delivery worker the runtime starts and stops;
- :func:`verify_signature`: what a receiver runs on a json notification.

Modules: ``events`` (the model), ``outbox`` (all SQL), ``formats`` (json/slack/ntfy
bodies), ``signing`` (HMAC), ``secrets`` (read at send time), ``delivery`` (one HTTP
attempt), ``worker`` (the loop), ``expiry`` (plan.expired sweep). Nothing here logs a
URL, a secret or a body; importing this package loads no HTTP library.
"""

from __future__ import annotations

import logging
from typing import Protocol

from tailops.config import Settings
from tailops.errors import TailopsError
from tailops.notify.events import Event, EventKind, plan_event, review_url, run_event, run_kind
from tailops.notify.outbox import enqueue, enqueue_in
from tailops.notify.signing import SIGNATURE_HEADER, verify_signature
from tailops.notify.worker import Notifier
from tailops.store import Store


class OutboxOwner(Protocol):
    """What :func:`emit` needs of a server runtime (duck-typed: notify never imports the runtime,
    which is built on it)."""

    store: Store
    config: Settings
    notifier: Notifier


__all__ = [
    "SIGNATURE_HEADER",
    "Event",
    "EventKind",
    "Notifier",
    "emit",
    "enqueue",
    "enqueue_in",
    "plan_event",
    "review_url",
    "run_event",
    "run_kind",
    "verify_signature",
]

log = logging.getLogger("tailops.notify")


def emit(target: OutboxOwner | Store, event: Event, *, settings: Settings | None = None) -> list[str]:
    """Queue ``event`` for every endpoint that wants it and wake the worker; return the row ids.

    ``target`` is the server's Runtime (its store, config and worker), or a Store plus
    ``settings`` (a CLI process: the server's worker picks the rows up within its
    poll interval). Only SQLite is written, so this costs about one small insert per
    endpoint. Meant to be called after the state change committed: it never raises —
    a store failure is logged (without the event) and nothing is queued.
    To commit the change and its notification together, use :func:`enqueue_in` inside
    the change's own ``store.transaction()`` and then ``rt.notifier.wake()``.
    """
    if isinstance(target, Store):
        if settings is None:
            raise TypeError("emit(store, event) needs settings=")
        store, config, notifier = target, settings, None
    else:
        store, config, notifier = target.store, target.config, target.notifier
    try:
        ids = enqueue(store, config, event)
    except TailopsError:
        log.exception("could not queue a notification", extra={"kind": event.kind.value, "event_id": event.id})
        return []
    if ids and notifier is not None:
        notifier.wake()
    return ids
