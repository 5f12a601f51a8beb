"""Prometheus metrics for one server instance (its own registry, so tests can
run several servers in one process without colliding)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from tailops.errors import TailopsError

# `*_created` series double the output and no dashboard uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

if TYPE_CHECKING:
    from tailops.audit import AuditStatus

__all__ = ["Metrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "tailops_tool_calls",
            "Tool calls by tool and outcome (ok, error, denied).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "tailops_tool_errors", "Tool calls that ended in an error or denial.", ["tool"], registry=self.registry
        )
        self.latency = Histogram(
            "tailops_tool_duration_seconds",
            "Tool call latency.",
            ["tool"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tailops_tool_calls_in_flight", "Tool calls running now.", ["tool"], registry=self.registry
        )
        self.http_requests = Counter(
            "tailops_http_requests",
            "HTTP requests by route class and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "tailops_auth_failures", "Rejected HTTP authentications by reason.", ["reason"], registry=self.registry
        )
        self.rate_limited = Counter(
            "tailops_rate_limited", "Requests refused by the rate limiter.", ["kind"], registry=self.registry
        )
        self.drift_hosts = Gauge(
            "tailops_drift_hosts",
            "Hosts per drift check and state (in_line, drifted, unreachable, failed) at its latest run.",
            ["check", "state"],
            registry=self.registry,
        )
        # Webhook notifications (tailops/notify): per endpoint name, never its URL.
        self.notifications_delivered = Counter(
            "tailops_notifications_delivered",
            "Notifications a receiver accepted (2xx).",
            ["endpoint"],
            registry=self.registry,
        )
        self.notifications_failed = Counter(
            "tailops_notifications_failed",
            "Delivery attempts that failed (non-2xx, timeout, network error); most are retried.",
            ["endpoint"],
            registry=self.registry,
        )
        self.notifications_dead = Counter(
            "tailops_notifications_dead",
            "Notifications given up on (max_attempts or max_age reached).",
            ["endpoint"],
            registry=self.registry,
        )
        self.notifications_pending = Gauge(
            "tailops_notifications_pending",
            "Notifications queued or being sent (all endpoints), as of the worker's last look.",
            registry=self.registry,
        )

        self.audit_gaps = Gauge(
            "tailops_audit_gaps",
            "Gap records in the audit log (entries lost to truncation or a crash-cut line; never decreases),"
            " plus 1 while its head file is missing or unreadable. Alert on > 0.",
            registry=self.registry,
        )

    def watch_audit(self, status: Callable[[], AuditStatus]) -> None:
        """Read the audit alarm at scrape time (the 128-byte head file, never the whole log)."""

        def alarms() -> float:
            try:
                return float(status().alarms)
            except TailopsError:  # a scrape must not fail: NaN says "could not read"
                return math.nan

        self.audit_gaps.set_function(alarms)

    def observe_call(self, tool: str, outcome: str, seconds: float) -> None:
        self.calls.labels(tool, outcome).inc()
        self.latency.labels(tool).observe(seconds)
        if outcome != "ok":
            self.errors.labels(tool).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
