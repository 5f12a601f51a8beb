"""Turn one event into one HTTP request for one endpoint format (json, slack, ntfy).

Why one module: every receiver gets the same facts (the event's fields, nothing
else), shaped for it:

- ``json``: the event as a JSON object plus ``id`` (the notification's stable id)
  and ``title``, signed (:mod:`tailops.notify.signing`). The body is the same on
  every attempt; only the signature's timestamp changes.
- ``slack``: an incoming-webhook message, ``{"text": …, "blocks": […]}`` with a
  "Review plan" button; the URL is the endpoint's secret.
- ``ntfy``: a text body with ``Title``, ``Priority``, ``Tags`` and ``Click``
  headers (https://docs.ntfy.sh/publish/); an optional secret is sent as a Bearer
  token.

Rendering is pure: no I/O, no logging. User-supplied text is escaped for Slack
mrkdwn and stripped to printable ASCII in ntfy headers (no header injection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from tailops import __version__
from tailops.config import NotificationEndpoint, check_webhook_url
from tailops.errors import ConfigError
from tailops.notify.events import Event, EventKind
from tailops.notify.signing import SIGNATURE_HEADER, signature_header

__all__ = ["Request", "render", "summary"]

USER_AGENT = f"tailops/{__version__}"

# ntfy priority (1 min … 5 max) and tags (emoji short codes) per event.
_NTFY_PRIORITY: dict[EventKind, int] = {
    EventKind.PLAN_AWAITING_APPROVAL: 4,
    EventKind.PLAN_APPROVED: 3,
    EventKind.PLAN_DENIED: 3,
    EventKind.PLAN_EXPIRED: 2,
    EventKind.RUN_STARTED: 2,
    EventKind.RUN_SUCCEEDED: 3,
    EventKind.RUN_FAILED: 5,
    EventKind.RUN_CANCELED: 3,
    EventKind.RUN_INTERRUPTED: 5,
    EventKind.DRIFT_FOUND: 4,
    EventKind.TEST: 1,
}
_NTFY_TAGS: dict[EventKind, str] = {
    EventKind.PLAN_AWAITING_APPROVAL: "hourglass",
    EventKind.PLAN_APPROVED: "white_check_mark",
    EventKind.PLAN_DENIED: "no_entry",
    EventKind.PLAN_EXPIRED: "alarm_clock",
    EventKind.RUN_STARTED: "arrow_forward",
    EventKind.RUN_SUCCEEDED: "heavy_check_mark",
    EventKind.RUN_FAILED: "x",
    EventKind.RUN_CANCELED: "stop_button",
    EventKind.RUN_INTERRUPTED: "warning",
    EventKind.DRIFT_FOUND: "warning",
    EventKind.TEST: "test_tube",
}


@dataclass(frozen=True)
class Request:
    """What the delivery worker POSTs. ``url`` may be a secret (slack): never log it."""

    url: str
    headers: dict[str, str]
    body: bytes


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(event: Event) -> str:
    """One line of facts: playbook, risk, hosts, who, why."""
    parts: list[str] = []
    if event.playbook:
        parts.append(event.playbook)
    if event.check:
        parts.append(f"check {event.check}")
    if event.risk:
        parts.append(f"risk {event.risk}")
    if event.hosts is not None:
        parts.append(f"{event.hosts} host{'s' if event.hosts != 1 else ''}")
    if event.plan_id:
        parts.append(f"plan {event.plan_id[:12]}")
    if event.run_id:
        parts.append(f"run {event.run_id[:12]}")
    if event.requester:
        parts.append(f"requested by {event.requester}")
    if event.approver:
        verb = "denied" if event.kind is EventKind.PLAN_DENIED else "approved"
        parts.append(f"{verb} by {event.approver}")
    if event.reason:
        parts.append(f"reason: {event.reason}")
    return " · ".join(parts)


def json_document(event: Event, notification_id: str) -> dict[str, object]:
    doc: dict[str, object] = {"id": notification_id, "event_id": event.id, "title": event.title}
    doc.update(event.model_dump(mode="json", exclude={"id"}))
    doc["occurred_at"] = _iso(event.occurred_at)
    return doc


def _common_headers(event: Event, notification_id: str, attempt: int) -> dict[str, str]:
    return {
        "User-Agent": USER_AGENT,
        "X-Tailops-Event": event.kind.value,
        "X-Tailops-Delivery": notification_id,
        "X-Tailops-Attempt": str(attempt),
    }


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _header_text(text: str, cap: int = 200) -> str:
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return clean[:cap]


def _render_json(event: Event, endpoint: NotificationEndpoint, secret: str | None, nid: str, attempt: int) -> Request:
    if not secret or endpoint.url is None:
        raise ConfigError(f"endpoint {endpoint.name}: json needs a url and a secret.")
    body = json.dumps(json_document(event, nid), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    headers = _common_headers(event, nid, attempt)
    headers["Content-Type"] = "application/json"
    headers[SIGNATURE_HEADER] = signature_header(secret, body)
    return Request(endpoint.url, headers, body)


def _render_slack(event: Event, endpoint: NotificationEndpoint, secret: str | None, nid: str, attempt: int) -> Request:
    if not secret:
        raise ConfigError(f"endpoint {endpoint.name}: slack needs its webhook URL as secret.")
    try:
        check_webhook_url(secret, f"endpoint {endpoint.name}: the webhook URL in its secret")
    except ValueError as exc:
        raise ConfigError(f"{exc}.") from None
    facts = summary(event)
    link = event.review_url
    text = _mrkdwn(f"{event.title}: {facts}") + (f" <{link}|review>" if link else "")
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{event.title}*\n{_mrkdwn(facts)}"}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"tailops · {event.kind.value} · {_iso(event.occurred_at)}"}],
        },
    ]
    if link:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Review plan"}, "url": link}
        blocks.append({"type": "actions", "elements": [button]})
    body = json.dumps({"text": text, "blocks": blocks}, ensure_ascii=False).encode()
    headers = _common_headers(event, nid, attempt)
    headers["Content-Type"] = "application/json"
    return Request(secret, headers, body)


def _render_ntfy(event: Event, endpoint: NotificationEndpoint, secret: str | None, nid: str, attempt: int) -> Request:
    if endpoint.url is None:
        raise ConfigError(f"endpoint {endpoint.name}: ntfy needs a url (server/topic).")
    headers = _common_headers(event, nid, attempt)
    headers.update(
        {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": _header_text(f"tailops: {event.title}"),
            "Priority": str(_NTFY_PRIORITY[event.kind]),
            "Tags": _NTFY_TAGS[event.kind],
        }
    )
    if event.review_url:
        headers["Click"] = _header_text(event.review_url, 2000)
    if secret:
        headers["Authorization"] = f"Bearer {_header_text(secret, 4096)}"
    body = summary(event) or event.title
    return Request(endpoint.url, headers, body.encode())


def render(
    event: Event, endpoint: NotificationEndpoint, secret: str | None, notification_id: str, attempt: int
) -> Request:
    """The request for one attempt; raises ConfigError when the endpoint cannot be used."""
    if endpoint.format == "json":
        return _render_json(event, endpoint, secret, notification_id, attempt)
    if endpoint.format == "slack":
        return _render_slack(event, endpoint, secret, notification_id, attempt)
    return _render_ntfy(event, endpoint, secret, notification_id, attempt)
