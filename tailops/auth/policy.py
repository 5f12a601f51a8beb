"""The policy table: every action any surface offers, and the scope it needs.

Why it exists: a reviewer asking "who may do X?" reads one table, not six places. Every
MCP tool, MCP resource (by URI template), MCP request method, HTTP route and review-page
action has exactly one :class:`Rule` here; the surfaces look their rule up:

- tools: ``@tool`` takes its scope from :data:`TOOLS` (a tool without a row cannot be
  declared), and the registry boundary checks it before the body;
- resources and completions: :mod:`tailops.tools.resources.registry` checks :data:`RESOURCES`
  and :data:`PROTOCOL` (``completion/complete``, ``subscriptions/listen``);
- HTTP: the middleware serves the :data:`HTTP` routes marked ``open`` without a token and
  checks ``/metrics``' scope;
- the review page: each route is named after its :data:`REVIEW` action and checks it.

``tests/unit/auth/test_policy.py`` fails when a registered tool, resource, request handler,
route or page action has no row, or a row names nothing that exists.

Some rules depend on what is acted on (a plan's playbook scope, "never the requester"):
the change engine enforces those on top; :attr:`Rule.plus` says so, for the docs.

What it must never do: grant by omission. An action without a row is refused
(:func:`rule` raises ``PermissionDenied``), and this module imports nothing above ``auth/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from tailops.auth.scopes import Scope, require_scope
from tailops.errors import PermissionDenied

if TYPE_CHECKING:
    from tailops.principal import Principal

__all__ = [
    "HTTP",
    "PROTOCOL",
    "RESOURCES",
    "REVIEW",
    "TOOLS",
    "Rule",
    "Surface",
    "allows",
    "require",
    "rule",
    "table",
    "token_allows",
]

Surface = Literal["tool", "resource", "protocol", "http", "review"]


@dataclass(frozen=True)
class Rule:
    """What an action needs.

    ``scope``: the scope checked before anything is done (``admin`` implies all); None when
    a valid token is all it takes (or, with ``open``, not even that). ``plus``: what the
    change engine enforces on top, in words (docs). ``open``: served without a token.
    """

    scope: Scope | None
    plus: str | None = None
    open: bool = False


READ: Final = Rule("readonly")
TOKEN: Final = Rule(None)  # any valid token; nothing more
OPEN: Final = Rule(None, open=True)  # no token at all

_PLAYBOOK_ARGS = "+ the scope of the playbook its arguments name"
_PLAN_PLAYBOOK = "+ the scope of the plan's playbook (checked by the change engine before any work)"
_RUN_PLAYBOOK = "+ the scope of the run's playbook (checked by the change engine before any work)"

# MCP tools, by name. A tool with ``scope_for`` names the scope its arguments add in that
# function's docstring (the README shows it); ``plus`` is for the ones the engine checks.
TOOLS: Final[Mapping[str, Rule]] = {
    # system
    "get_system_status": READ,
    "get_top_processes": READ,
    "health_check": READ,
    # containers
    "get_container_list": READ,
    "inspect_container": READ,
    "reveal_container_env": Rule("container:admin"),
    "get_container_stats": READ,
    "list_docker_images": READ,
    "get_docker_networks": READ,
    "get_container_logs": READ,
    "analyze_container_logs": READ,
    "manage_container": Rule("container:write", plus=_PLAYBOOK_ARGS),
    # files
    "list_directory": Rule("file:read"),
    "read_file": Rule("file:read"),
    "tail_file": Rule("file:read"),
    "search_files": Rule("file:read"),
    "file_operations": Rule("file:read"),
    # network
    "get_network_status": READ,
    "get_network_io_counters": READ,
    "get_active_connections": READ,
    "ping_host": Rule("network:diag"),
    "traceroute": Rule("network:diag"),
    "test_port_connectivity": Rule("network:diag"),
    "dns_lookup": Rule("network:diag"),
    "check_ssl_certificate": Rule("network:diag"),
    "http_request_test": Rule("network:diag"),
    # changes
    "check_inventory": READ,
    "list_nodes": READ,
    "list_playbooks": READ,
    "plan_change": Rule("readonly", plus=_PLAYBOOK_ARGS),
    "get_plan": READ,
    "list_plans": READ,
    "approve_plan": Rule("changes:approve"),  # never on one's own plan (the change engine)
    "deny_plan": Rule("changes:approve"),  # or the plan's own requester (the change engine)
    "apply_plan": Rule("readonly", plus=_PLAN_PLAYBOOK),
    "get_run": READ,
    "cancel_run": Rule("readonly", plus=_RUN_PLAYBOOK),
    "get_host_history": READ,
    "get_drift": READ,
    "run_drift_check": Rule("readonly", plus=_PLAYBOOK_ARGS),
    "plan_from_drift": Rule("readonly", plus=_PLAYBOOK_ARGS),
    "check_system_updates": Rule("system:admin", plus=_PLAYBOOK_ARGS),
    "update_system_packages": Rule("system:admin", plus=_PLAYBOOK_ARGS),
    "install_package": Rule("system:admin", plus=_PLAYBOOK_ARGS),
    "update_docker_container": Rule("container:admin", plus=_PLAYBOOK_ARGS),
    "pull_docker_image": Rule("container:write", plus=_PLAYBOOK_ARGS),
}

# MCP resources, by URI template (reads and completion of their names).
RESOURCES: Final[Mapping[str, Rule]] = {
    "tailops://playbooks/{name}": READ,
    "tailops://containers/{name}": READ,
}

# MCP request methods the server answers (beyond a valid token on HTTP).
PROTOCOL: Final[Mapping[str, Rule]] = {
    "server/discover": TOKEN,
    "ping": TOKEN,
    "tools/list": TOKEN,
    "tools/call": Rule(None, plus="each tool's own rule (TOOLS)"),
    "resources/list": TOKEN,
    "resources/templates/list": TOKEN,
    "resources/read": Rule(None, plus="each resource's own rule (RESOURCES)"),
    "resources/subscribe": Rule(None, plus="reads the resource once, under its own rule (RESOURCES)"),
    "resources/unsubscribe": TOKEN,
    "subscriptions/listen": Rule("readonly", plus="reads each resource once, under its own rule (RESOURCES)"),
    "completion/complete": Rule(None, plus="the completed resource's own rule (RESOURCES)"),
    "prompts/list": TOKEN,
    "prompts/get": TOKEN,
    "logging/setLevel": TOKEN,
}

# HTTP routes. "/.well-known/oauth-protected-resource" stands for the RFC 9728 metadata
# path of the MCP URL (path-suffixed, e.g. /.well-known/oauth-protected-resource/mcp).
HTTP: Final[Mapping[str, Rule]] = {
    "/health": OPEN,
    "/.well-known/oauth-protected-resource": OPEN,
    "/metrics": Rule("admin"),
    "/mcp": Rule(None, plus="each MCP method's own rule (PROTOCOL)"),
}

# The review page (/review): each route is named after its action; the POSTs are audited
# under the same names (``kind: web``, ``event: review:…``).
REVIEW: Final[Mapping[str, Rule]] = {
    "review:index": TOKEN,  # /review → /review/
    "review:login-form": OPEN,
    "review:login": OPEN,
    "review:logout": TOKEN,
    "review:stylesheet": OPEN,
    "review:not-found": TOKEN,
    "review:plans": READ,
    "review:plan": READ,
    "review:run": READ,
    "review:host": READ,
    "review:drift": READ,
    "review:approve": Rule("changes:approve", plus="never on one's own plan (checked by the change engine)"),
    "review:deny": Rule(None, plus="changes:approve, or the plan's own requester (checked by the change engine)"),
    "review:cancel": Rule(None, plus="the scope of the run's playbook (checked by the change engine)"),
}

_TABLES: Final[Mapping[Surface, Mapping[str, Rule]]] = {
    "tool": TOOLS,
    "resource": RESOURCES,
    "protocol": PROTOCOL,
    "http": HTTP,
    "review": REVIEW,
}


def table(surface: Surface) -> Mapping[str, Rule]:
    """Every action of ``surface`` and its rule (docs, tests)."""
    return _TABLES[surface]


def rule(surface: Surface, action: str) -> Rule:
    """The rule of ``action``; an action without a row is refused (deny by default)."""
    try:
        return _TABLES[surface][action]
    except KeyError:
        raise PermissionDenied(
            f"{surface} {action} has no entry in the policy table (tailops/auth/policy.py); refusing."
        ) from None


def require(principal: Principal, surface: Surface, action: str, what: str | None = None) -> None:
    """Raise PermissionDenied unless ``principal`` holds the scope ``action`` needs."""
    scope = rule(surface, action).scope
    if scope is not None:
        require_scope(principal, scope, what or f"{surface} {action}")


def allows(principal: Principal, surface: Surface, action: str) -> bool:
    """Whether ``principal`` holds the scope ``action`` needs (for what a page offers)."""
    try:
        require(principal, surface, action)
    except PermissionDenied:
        return False
    return True


def token_allows(scopes: Iterable[str], surface: Surface, action: str) -> bool:
    """Whether a token carrying ``scopes`` may take ``action`` (the HTTP middleware's check,
    before any principal is built); ``admin`` implies every scope."""
    scope = rule(surface, action).scope
    held = set(scopes)
    return scope is None or scope in held or "admin" in held
