"""The one configuration model of tailops.

Sources, strongest first: ``TAILOPS_*`` environment variables (nested keys with
``__``, e.g. ``TAILOPS_SERVER__PORT=9000``), then the YAML file (``--config``,
``TAILOPS_CONFIG``, else ``/etc/tailops/config.yaml`` if it exists), then the
defaults below. Every key has a safe default, so ``tailops serve`` runs with no
file at all; every key has a description, and ``tests/unit/test_docs.py``
fails when one is missing from the README's config reference.

A bad file or value never produces a traceback: :func:`load_config` raises one
:class:`~tailops.errors.ConfigError` naming the key and the problem.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import platformdirs
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tailops.durations import parse_duration
from tailops.errors import ConfigError

__all__ = [
    "NOTIFICATION_EVENTS",
    "TOOL_GROUPS",
    "Scope",
    "Settings",
    "default_config_path",
    "load_config",
]

SYSTEM_CONFIG_PATH = Path("/etc/tailops/config.yaml")

TOOL_GROUPS: tuple[str, ...] = ("system", "containers", "files", "network", "changes")

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
# Every scope there is (DESIGN.md "Security model"): the one list. tailops.auth.scopes
# derives SCOPES from it and says what each means; tailops.auth.policy says who needs which.
Scope = Literal[
    "readonly",
    "file:read",
    "network:diag",
    "container:write",
    "container:admin",
    "system:admin",
    "changes:approve",
    "admin",
]

GroupName = Literal["system", "containers", "files", "network", "changes"]

# tailops/notify/events.py EventKind: one value per lifecycle event a webhook can carry.
NotificationEvent = Literal[
    "plan.awaiting_approval",
    "plan.approved",
    "plan.denied",
    "plan.expired",
    "run.started",
    "run.succeeded",
    "run.failed",
    "run.canceled",
    "run.interrupted",
    "drift.found",
]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = (
    "plan.awaiting_approval",
    "plan.approved",
    "plan.denied",
    "plan.expired",
    "run.started",
    "run.succeeded",
    "run.failed",
    "run.canceled",
    "run.interrupted",
    "drift.found",
)


def _all_groups() -> list[GroupName]:
    return ["system", "containers", "files", "network", "changes"]


def _default_stdio_scopes() -> list[Scope]:
    return ["readonly", "file:read", "network:diag", "container:write", "system:admin"]


def _repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted (for "one per name" validators)."""
    seen = Counter(names)
    return sorted(n for n, count in seen.items() if count > 1)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    transport: Literal["http", "stdio"] = Field(
        "http", description="Transport `tailops serve` uses when --transport is not given."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP transport listens on.")
    port: int = Field(8787, ge=0, le=65535, description="TCP port of the HTTP transport (0 = any free port).")
    public_url: str | None = Field(
        None,
        description="URL clients use to reach /mcp (token audience, RFC 9728 metadata). Default: http://HOST:PORT/mcp.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_state_dir("tailops")),
        description="Directory for the SQLite store, audit log, keys and run artifacts (created 0700).",
    )
    read_only: bool = Field(False, description="Expose no tool that can lead to a change (same as --read-only).")
    review_page: bool = Field(
        True, description="Serve the plan review page at /review on the HTTP transport (sign in with a token)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Server log level.")
    log_format: Literal["json", "text"] = Field("json", description="Log line format on stderr.")
    workers: int = Field(8, ge=1, le=64, description="Size of the bounded worker pool for blocking calls.")
    max_output_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Byte cap on any tool's text output."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header values accepted (DNS-rebinding protection), e.g. `myhost.tailnet.ts.net:*`.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Extra Origin header values accepted, e.g. `https://myhost.tailnet.ts.net`."
    )
    proxy_socket: Path | None = Field(
        None,
        description="Unix socket for `tailscale serve` (e.g. /run/tailops/proxy.sock), served beside the TCP "
        "listener and created 0600. Tailscale-User-* and X-Forwarded-For headers are read ONLY from requests "
        "that arrive on it; the TCP listener never trusts them. Unset: no identity headers are trusted.",
    )
    shutdown_timeout: Duration = Field(
        timedelta(seconds=10), description="How long a SIGTERM/SIGINT waits for in-flight requests."
    )


class ToolsSettings(_Section):
    groups: list[GroupName] = Field(
        default_factory=_all_groups,
        description="Tool groups to expose: system, containers, files, network, changes.",
    )


class AuthSettings(_Section):
    public_key: Path | None = Field(
        None, description="Ed25519 public key (PEM) that verifies tokens. Default: DATA_DIR/keys/token.pub."
    )
    private_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) used only by `tailops token mint`. Default: DATA_DIR/keys/token.key.",
    )
    issuer: str = Field("tailops", description="`iss` claim of minted tokens, checked on verification.")
    max_token_ttl: Duration = Field(timedelta(days=30), description="Longest lifetime `token mint --ttl` accepts.")
    stdio_scopes: list[Scope] = Field(
        default_factory=_default_stdio_scopes,
        description="Scopes of the local OS user on the stdio transport (read + plan; "
        "`changes:approve` and `admin` are refused here).",
    )
    rate_limit_per_minute: int = Field(100, ge=1, description="Requests per minute per principal.")
    rate_limit_burst: int | None = Field(
        None,
        ge=1,
        description="Most requests one principal may make at once (token-bucket size; it refills at "
        "rate_limit_per_minute). Default: rate_limit_per_minute.",
    )
    auth_failures_per_minute: int = Field(
        10, ge=1, description="Failed authentications per minute per client address before 429."
    )
    unsafe_no_auth: bool = Field(
        False,
        description="UNSAFE: serve HTTP without tokens (all callers get `readonly`). For local protocol "
        "testing only; logged as a warning on every start.",
    )

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "trusted_proxies" in data:
            raise ValueError(
                "auth.trusted_proxies was removed: any local process could send Tailscale identity headers "
                "from a trusted address. Point `tailscale serve` at server.proxy_socket instead (identity "
                "headers are read only from that socket); see docs/security.md"
            )
        return data

    @field_validator("stdio_scopes")
    @classmethod
    def _no_approve_on_stdio(cls, value: list[str]) -> list[str]:
        forbidden = sorted({"changes:approve", "admin"} & set(value))
        if forbidden:
            raise ValueError(
                f"{', '.join(forbidden)} cannot be given to the stdio user: approvals need a "
                "token-authenticated person other than the requester"
            )
        return value


class AuditSettings(_Section):
    path: Path | None = Field(None, description="Audit log file (JSON lines). Default: DATA_DIR/audit/audit.jsonl.")
    rotate_bytes: int = Field(
        50 * 1024 * 1024, ge=4096, description="Rotate the audit log past this size (the hash chain continues)."
    )


class FilesSettings(_Section):
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path("/var/log")], description="Directories file tools may read under."
    )
    deny_patterns: list[str] = Field(
        default_factory=lambda: [
            "*.key",
            "*.pem",
            "*.p12",
            "*.pfx",
            "id_rsa*",
            "id_ed25519*",
            "id_ecdsa*",
            "shadow",
            "gshadow",
            "*.kdbx",
            ".env",
        ],
        description="File name patterns never read, even under an allowed root.",
    )
    max_read_bytes: int = Field(1024 * 1024, ge=1024, description="Most bytes one read/tail/search returns.")
    allow_hard_links: bool = Field(
        False,
        description="Read files that have more than one hard link (off: refused, since another name of the "
        "same file escapes the deny patterns). The server's own files are refused either way.",
    )
    search_timeout: Duration = Field(timedelta(seconds=10), description="Longest time one file search may run.")
    search_max_files: int = Field(20000, ge=1, description="Most files one search looks at.")
    search_max_file_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Bytes of one file a content search reads at most (the rest is skipped)."
    )


class NetworkSettings(_Section):
    allow_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed as probe targets even where a default or deny_cidrs rule refuses them "
        "(never: unspecified, multicast, broadcast, the server's own port).",
    )
    deny_cidrs: list[str] = Field(default_factory=list, description="Extra CIDRs refused for every probe.")
    http_allow_loopback: bool = Field(
        False, description="Let http_request_test reach loopback/link-local addresses (off: SSRF protection)."
    )
    timeout: Duration = Field(timedelta(seconds=5), description="Default per-probe timeout.")
    max_concurrent_probes: int = Field(32, ge=1, description="Probes running at once across all callers.")
    resolver: list[str] = Field(
        default_factory=list,
        description="Nameservers (IP or IP:port) that resolve probe targets. Empty: the system resolver "
        "(/etc/hosts, resolv.conf).",
    )
    http_methods: list[Literal["GET", "HEAD", "OPTIONS"]] = Field(
        default=["GET", "HEAD"], description="Methods http_request_test may send."
    )
    http_max_redirects: int = Field(
        5, ge=0, le=20, description="Most redirects http_request_test follows (each target is re-checked)."
    )
    icmp_mode: Literal["auto", "privileged", "unprivileged"] = Field(
        "auto",
        description="ICMP sockets for ping/traceroute: raw (privileged, needs root or CAP_NET_RAW), "
        "unprivileged datagram (needs net.ipv4.ping_group_range), or auto (raw when root).",
    )


class DockerSettings(_Section):
    base_url: str | None = Field(
        None, description="Docker engine URL (e.g. unix:///var/run/docker.sock). Default: DOCKER_HOST or the socket."
    )
    timeout: Duration = Field(timedelta(seconds=10), description="Timeout of one Docker API call.")
    ping_timeout: Duration = Field(
        timedelta(seconds=2), description="Timeout of the engine ping behind /health and health_check."
    )
    concurrency: int = Field(
        16, ge=1, le=64, description="Docker API calls one tool runs at once (stats, list details)."
    )
    stats_concurrency: int = Field(
        128,
        ge=1,
        le=512,
        description="Containers get_container_stats samples at once (the engine answers them all on its next "
        "1-second collection tick, so this should cover the usual container count).",
    )
    stats_timeout: Duration = Field(
        timedelta(seconds=5),
        description="Time limit of one get_container_stats call; containers not sampled in time carry an error.",
    )
    log_max_lines: int = Field(
        200_000,
        ge=100,
        le=2_000_000,
        description="Most log lines one grep or analysis reads (the newest); bounds its time.",
    )
    log_max_bytes: int = Field(
        32 * 1024 * 1024,
        ge=64 * 1024,
        le=512 * 1024 * 1024,
        description="Most log bytes one read or analysis takes (the newest are kept; analysis streams them, "
        "holding none).",
    )
    analysis_timeout: Duration = Field(
        timedelta(seconds=20),
        description="Time limit of analyze_container_logs; past it the result covers what was read, marked partial.",
    )


class ApprovalPolicy(_Section):
    low: Literal["manual", "auto"] = Field("manual", description="Approval for low-risk playbooks.")
    high: Literal["manual"] = Field("manual", description="Approval for high-risk playbooks (always manual).")
    critical: Literal["manual"] = Field("manual", description="Approval for critical playbooks (always manual).")


class RequiredApprovals(_Section):
    low: int = Field(1, ge=1, le=5, description="Distinct people who must approve a low-risk plan.")
    high: int = Field(1, ge=1, le=5, description="Distinct people who must approve a high-risk plan.")
    critical: int = Field(2, ge=1, le=5, description="Distinct people who must approve a critical plan.")


def _approval_value(value: Any) -> Any:
    """A group rule's value: 1-5 distinct people or ``auto`` (one clear message for anything else)."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"give a number of approvals (1-5) or auto, not {str(value)[:40]!r}")
    if not 1 <= value <= 5:
        raise ValueError(
            f"a number of approvals is 1-5, not {value} (no human approval at all is `auto`, for low risk only)"
        )
    return value


# A group rule's value for one risk: a number of distinct people, or "auto" (low risk only).
GroupApprovalValue = Annotated[int | Literal["auto"] | None, BeforeValidator(_approval_value)]
_GROUP_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class GroupApprovalRule(_Section):
    """Approvals a plan needs when it targets a host of one inventory group (``changes.group_approvals``)."""

    group: str = Field(
        pattern=_GROUP_NAME,
        description="Inventory group (children included, as ansible-inventory resolves it); it must exist in "
        "the inventory, or planning is refused (a misspelt group would silently weaken the policy).",
    )
    low: GroupApprovalValue = Field(
        None,
        description="Distinct people (1-5) who must approve a low-risk plan touching a host of this group, or "
        "`auto`: approved by policy when EVERY host of the plan is in a group whose rule says auto and no rule "
        "asks for a count. Unset: this group adds nothing for the risk.",
    )
    high: GroupApprovalValue = Field(
        None, description="Distinct people (1-5) for a high-risk plan touching this group (never auto)."
    )
    critical: GroupApprovalValue = Field(
        None, description="Distinct people (1-5) for a critical plan touching this group (never auto)."
    )

    @model_validator(mode="after")
    def _check(self) -> GroupApprovalRule:
        for risk in ("high", "critical"):
            if getattr(self, risk) == "auto":
                raise ValueError(
                    f"group {self.group}: {risk}: auto is refused; only low-risk plans may be approved by policy "
                    f"(a {risk}-risk plan is always approved by people). Give a number of approvals (1-5)"
                )
        if self.low is None and self.high is None and self.critical is None:
            raise ValueError(f"group {self.group}: the rule sets no risk (give low, high and/or critical)")
        return self


class ChangesSettings(_Section):
    playbooks_dir: Path | None = Field(
        None,
        description="Catalog directory (one folder per playbook). Default: the copy shipped in the installed "
        "package (a source checkout: its playbooks/).",
    )
    roles_dir: Path | None = Field(
        None,
        description="Roles directory. Default: the copy shipped in the installed package (a source checkout: "
        "its roles/).",
    )
    inventory: Path | None = Field(
        None, description="Ansible inventory file or directory. Default: localhost with ansible_connection=local."
    )
    plan_ttl: Duration = Field(timedelta(hours=1), description="How long a plan stays approvable/applicable.")
    approval_ttl: Duration = Field(timedelta(hours=1), description="How long an approval stays valid.")
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy, description="Approval policy per risk.")
    required_approvals: RequiredApprovals = Field(
        default_factory=RequiredApprovals,
        description="How many distinct people (never the requester) must approve a plan, per risk.",
    )
    group_approvals: list[GroupApprovalRule] = Field(
        default_factory=list,
        description="Approval rules per inventory group; the strictest rule over all hosts a plan targets "
        "(and the risk rule) wins. E.g. `[{group: prod, low: 2, high: 2, critical: 2}, {group: dev, low: auto}]`.",
    )
    forks: int = Field(
        20,
        ge=1,
        le=100,
        description="Ansible forks (workers) per run. Ansible starts min(forks, hosts) workers; fewer forks than "
        "hosts makes it busy-wait for a free worker (docs/scale.md).",
    )
    run_timeout: Duration = Field(timedelta(minutes=30), description="Hard limit for one ansible run.")
    keep_artifacts: int = Field(50, ge=0, description="Number of runner artifact dirs kept (oldest pruned).")

    @field_validator("group_approvals")
    @classmethod
    def _one_rule_per_group(cls, rules: list[GroupApprovalRule]) -> list[GroupApprovalRule]:
        if dupes := _repeated(r.group for r in rules):
            raise ValueError(f"one rule per group; repeated: {', '.join(dupes)} (merge them into one rule)")
        return rules


class NodeSettings(_Section):
    """One execution node (docs/nodes.md): reached over SSH, runs ``ansible-runner worker``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Node name (lower case, digits, '-').")
    host: str = Field(min_length=1, max_length=253, description="SSH address of the node.")
    port: int = Field(22, ge=1, le=65535, description="SSH port of the node.")
    user: str = Field("tailops", pattern=r"^[a-z_][a-z0-9_-]{0,31}$", description="SSH user on the node.")
    key: Path = Field(description="Private key whose public half is the node's forced-command entry.")
    known_hosts: Path = Field(description="known_hosts file with the node's host key (checking is always on).")
    claims: list[str] = Field(
        min_length=1,
        description="Inventory groups or host patterns (fnmatch) this node runs; first matching node wins.",
    )
    forks: int = Field(5, ge=1, le=200, description="Ansible forks on this node (its capacity).")
    connect_timeout: Duration = Field(timedelta(seconds=10), description="SSH connect timeout.")
    keepalive: Duration = Field(
        timedelta(seconds=5), description="SSH keepalive interval; three missed answers mean the node dropped."
    )
    cancel_grace: Duration = Field(
        timedelta(seconds=60), description="How long a canceled job may take to end before the link is cut."
    )


def _all_events() -> list[NotificationEvent]:
    return list(NOTIFICATION_EVENTS)


class NotificationEndpoint(_Section):
    """One webhook receiver. Its secret is named here (file or environment variable) and read
    only when a notification is sent: it never reaches the outbox, a log line or an error."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Endpoint name (a-z, 0-9, -, _): what outbox rows, metrics and the CLI show instead of the URL.",
    )
    url: str | None = Field(
        None,
        description="http(s) URL notifications are POSTed to (json and ntfy). Not for slack: a Slack webhook "
        "URL is a credential, so it comes from secret_file/secret_env.",
    )
    format: Literal["json", "slack", "ntfy"] = Field(
        "json",
        description="json (signed with HMAC-SHA256, needs a secret), slack (incoming-webhook JSON; the secret "
        "is the webhook URL) or ntfy (text body with Title/Priority/Tags/Click; optional secret = access token).",
    )
    events: list[NotificationEvent] = Field(
        default_factory=_all_events,
        description="Events sent to this endpoint: plan.awaiting_approval, plan.approved, plan.denied, "
        "plan.expired, run.started, run.succeeded, run.failed, run.canceled, run.interrupted, drift.found.",
    )
    secret_file: Path | None = Field(
        None, description="File holding the endpoint's secret (HMAC key, Slack webhook URL or ntfy token)."
    )
    secret_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the secret instead of a file.",
    )
    timeout: Duration = Field(
        timedelta(seconds=10),
        description="Longest one delivery may take in total (connect, send, answer); then it counts as failed.",
    )

    @model_validator(mode="after")
    def _check(self) -> NotificationEndpoint:
        if self.secret_file is not None and self.secret_env is not None:
            raise ValueError(f"endpoint {self.name}: give secret_file or secret_env, not both")
        has_secret = self.secret_file is not None or self.secret_env is not None
        if self.format == "slack":
            if self.url is not None:
                raise ValueError(
                    f"endpoint {self.name}: a Slack webhook URL is a credential; put it in secret_file or "
                    "secret_env, not in url"
                )
            if not has_secret:
                raise ValueError(f"endpoint {self.name}: slack needs secret_file or secret_env (the webhook URL)")
        else:
            if self.url is None:
                raise ValueError(f"endpoint {self.name}: url is required for format {self.format}")
            check_webhook_url(self.url, f"endpoint {self.name}")
            if self.format == "json" and not has_secret:
                raise ValueError(
                    f"endpoint {self.name}: json notifications are signed; give secret_file or secret_env "
                    "(the HMAC key)"
                )
        if self.timeout <= timedelta(0) or self.timeout > timedelta(minutes=5):
            raise ValueError(f"endpoint {self.name}: timeout must be between 0s and 5m")
        return self


def check_webhook_url(url: str, what: str) -> None:
    """Refuse anything but an absolute http(s) URL without credentials (deny by default)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{what}: url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what}: url must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"{what}: url has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what}: url must not carry credentials (user:password@); use secret_file or secret_env")
    if any(c in url for c in "\r\n\t "):
        raise ValueError(f"{what}: url contains whitespace")


class NotificationsSettings(_Section):
    endpoints: list[NotificationEndpoint] = Field(
        default_factory=list,
        description="Webhook receivers (list of name, url, format, events, secret_file/secret_env, timeout). "
        "Empty: nothing is queued or sent.",
    )
    max_attempts: int = Field(8, ge=1, le=100, description="Delivery attempts before a notification is dead.")
    max_age: Duration = Field(
        timedelta(hours=24), description="A notification not delivered this long after it was queued is dead."
    )
    backoff_min: Duration = Field(
        timedelta(seconds=5), description="Wait before the first retry; doubles per attempt (with jitter)."
    )
    backoff_max: Duration = Field(timedelta(minutes=15), description="Longest wait between two attempts.")
    connect_timeout: Duration = Field(
        timedelta(seconds=5), description="Longest wait for a receiver's TCP/TLS connection (within its timeout)."
    )
    concurrency: int = Field(8, ge=1, le=64, description="Deliveries in flight at once, all endpoints together.")
    per_endpoint_concurrency: int = Field(
        2, ge=1, le=64, description="Deliveries in flight at once to one endpoint (a hanging one holds only these)."
    )
    poll_interval: Duration = Field(
        timedelta(seconds=5),
        description="How often the delivery worker looks for due rows (also those queued by other processes).",
    )
    retention: Duration = Field(
        timedelta(days=30), description="Delivered and dead notifications older than this are deleted."
    )

    @field_validator("endpoints")
    @classmethod
    def _unique_names(cls, value: list[NotificationEndpoint]) -> list[NotificationEndpoint]:
        seen: set[str] = set()
        for endpoint in value:
            if endpoint.name in seen:
                raise ValueError(f"endpoint name {endpoint.name} is used twice")
            seen.add(endpoint.name)
        return value

    @model_validator(mode="after")
    def _check(self) -> NotificationsSettings:
        if self.backoff_min <= timedelta(0) or self.backoff_min > self.backoff_max:
            raise ValueError("backoff_min must be above 0s and at most backoff_max")
        if self.poll_interval <= timedelta(0) or self.connect_timeout <= timedelta(0):
            raise ValueError("poll_interval and connect_timeout must be above 0s")
        if self.max_age <= timedelta(0) or self.retention < self.max_age:
            raise ValueError("max_age must be above 0s and retention at least max_age")
        return self

    def endpoint(self, name: str) -> NotificationEndpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)


class DriftCheck(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Name of the check (e.g. packages-nightly).")
    playbook: str = Field(description="Catalog playbook run in check mode (e.g. package_update).")
    params: dict[str, Any] = Field(default_factory=dict, description="Its parameters, as for plan_change.")
    limit: str | None = Field(None, description="Host pattern (default: the playbook's target hosts).")
    every: Duration = Field(timedelta(hours=24), description="How often it runs (at least 1m).")

    @field_validator("every")
    @classmethod
    def _often_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("a drift check runs at most once a minute (every >= 1m)")
        return value


class DriftSettings(_Section):
    checks: list[DriftCheck] = Field(
        default_factory=list,
        description="Desired-state checks: catalog playbooks run in check mode on a schedule (no approval: a "
        "check never changes a host); per host the result is in line, drifted (with the diff) or unreachable.",
    )
    keep_results: int = Field(
        20_000, ge=100, description="Drift results kept (oldest pruned); the latest per check and host is always kept."
    )


class Settings(BaseSettings):
    """All of tailops' configuration. Construct with :func:`load_config`."""

    model_config = SettingsConfigDict(
        env_prefix="TAILOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings, description="Server and transports.")
    tools: ToolsSettings = Field(default_factory=ToolsSettings, description="Which tool groups are exposed.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Tokens, scopes, rate limits.")
    audit: AuditSettings = Field(default_factory=AuditSettings, description="Tamper-evident audit log.")
    files: FilesSettings = Field(default_factory=FilesSettings, description="File access rules.")
    network: NetworkSettings = Field(default_factory=NetworkSettings, description="Network probe policy.")
    docker: DockerSettings = Field(default_factory=DockerSettings, description="Docker engine access.")
    changes: ChangesSettings = Field(default_factory=ChangesSettings, description="Change engine.")
    drift: DriftSettings = Field(default_factory=DriftSettings, description="Scheduled desired-state checks.")
    notifications: NotificationsSettings = Field(
        default_factory=NotificationsSettings, description="Webhook notifications (tailops/notify)."
    )
    nodes: list[NodeSettings] = Field(
        default_factory=list,
        description="Execution nodes (docs/nodes.md); hosts no node claims run on this machine.",
    )

    @field_validator("nodes")
    @classmethod
    def _unique_node_names(cls, nodes: list[NodeSettings]) -> list[NodeSettings]:
        if dupes := _repeated(n.name for n in nodes):
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        if any(n.name == "local" for n in nodes):
            raise ValueError("'local' is reserved for hosts this machine runs itself; name the node otherwise")
        return nodes

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file (passed as init kwargs); no .env files.
        return (env_settings, init_settings)

    # Derived paths: one place decides where things live in the data dir.
    @property
    def mcp_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url
        host = self.server.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}/mcp"

    @property
    def db_path(self) -> Path:
        return self.server.data_dir / "tailops.db"

    @property
    def keys_dir(self) -> Path:
        return self.server.data_dir / "keys"

    @property
    def public_key_path(self) -> Path:
        return self.auth.public_key or self.keys_dir / "token.pub"

    @property
    def private_key_path(self) -> Path:
        return self.auth.private_key or self.keys_dir / "token.key"

    @property
    def previous_keys_dir(self) -> Path:
        """Public keys still accepted during a key rotation (``tailops token keygen --rotate``)."""
        return self.public_key_path.parent / "previous-keys"

    @property
    def audit_path(self) -> Path:
        return self.audit.path or self.server.data_dir / "audit" / "audit.jsonl"

    @property
    def artifacts_dir(self) -> Path:
        return self.server.data_dir / "runs"

    @property
    def public_base_url(self) -> str:
        """Where people reach this server (no trailing slash): mcp_url without its /mcp path."""
        url = self.mcp_url.rstrip("/")
        return url.removesuffix("/mcp")


def default_config_path() -> Path | None:
    """``TAILOPS_CONFIG`` if set, else the system file if it exists."""
    env = os.environ.get("TAILOPS_CONFIG")
    if env:
        return Path(env)
    if SYSTEM_CONFIG_PATH.is_file():
        return SYSTEM_CONFIG_PATH
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.__class__.__name__}.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (server:, auth:, …), not a list or value."
        )
    return data


def _describe(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against the README's config reference)"
    return f"`{key}`: {msg}"


def load_config(path: Path | None = None, **overrides: Any) -> Settings:
    """Load configuration from ``path`` (or the default location) plus environment.

    ``overrides`` are nested dicts applied on top of the file (used by CLI flags
    and tests), e.g. ``load_config(server={"port": 0})``.
    """
    source = path if path is not None else default_config_path()
    data: dict[str, Any] = _read_yaml(source) if source is not None else {}
    # A section whose keys are all commented out (`server:` and nothing else) means "defaults".
    data = {section: ({} if values is None else values) for section, values in data.items()}
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    try:
        return Settings(**data)
    except ValidationError as exc:
        errors = exc.errors()
        where = f" in {source}" if source is not None else ""
        first = _describe(errors[0])
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(f"bad config{where}: {first}{more}.") from None


class _Required:
    def __repr__(self) -> str:
        return "(required)"


_REQUIRED = _Required()


def _walk(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, str]]:
    rows: list[tuple[str, Any, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(_walk(ann, key + "."))
            continue
        item = get_args(ann)[0] if get_origin(ann) is list and get_args(ann) else None
        if isinstance(item, type) and issubclass(item, BaseModel):
            # A list of sections (notifications.endpoints): the list, then each item key as `key[].sub`.
            rows.append((key, [], field.description or ""))
            rows.extend(_walk(item, key + "[]."))
            continue
        if field.is_required():
            default: Any = _REQUIRED
        elif field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        else:
            default = field.default
        rows.append((key, default, field.description or ""))
    return rows


def config_keys() -> list[tuple[str, Any, str]]:
    """(dotted key, default, description) for every leaf setting."""
    return _walk(Settings)


def config_reference_markdown() -> str:
    """The README's config reference table, generated from the model."""

    def show(value: Any) -> str:
        if isinstance(value, timedelta):
            from tailops.durations import format_duration

            return f"`{format_duration(value)}`"
        if isinstance(value, Path):
            return "`" + str(value).replace(str(Path.home()), "~") + "`"
        if isinstance(value, list):
            return "`" + ", ".join(str(v) for v in value) + "`" if value else "(empty)"
        if value is None:
            return "(unset)"
        if value is _REQUIRED:
            return "(required)"
        return f"`{value}`"

    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, description in config_keys():
        if "[]" in key:  # an item of a list of sections: set in the YAML file (or the list's JSON in env)
            lines.append(f"| `{key}` | {show(default)} | {description.replace('|', '/')} |")
            continue
        env = "TAILOPS_" + key.upper().replace(".", "__")
        lines.append(f"| `{key}` (`{env}`) | {show(default)} | {description.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
