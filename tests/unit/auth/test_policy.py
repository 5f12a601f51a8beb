"""The policy table (tailops/auth/policy.py) is the one answer to "who may do what".

Every registered tool, resource, MCP request handler, HTTP route and review-page action
has exactly one row, and no row names something that does not exist; the surfaces take
their scope from it (changing a row changes what is enforced); an action without a row is
refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from starlette.routing import Mount, Route

from tailops.auth import policy
from tailops.auth.policy import Rule
from tailops.changes.approvals import APPROVE_SCOPE
from tailops.config import Settings
from tailops.errors import PermissionDenied
from tailops.principal import Principal
from tailops.runtime import Runtime
from tailops.server.app import build_app
from tailops.server.mcp_server import build_mcp
from tailops.server.middleware import open_paths, resource_metadata_path
from tailops.tools.registry import ToolCall, declared_specs, tool
from tailops.tools.resources.registry import authorize, declared_resources, resource
from tailops.web.session import open_review_path
from tests.servers import ensure_keys

CONTAINERS = "tailops://containers/{name}"


@pytest.fixture
def rt(make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    settings = make_settings(server={"review_page": True})
    ensure_keys(settings)
    runtime = Runtime(settings)
    yield runtime
    runtime.stop()


def _audit(rt: Runtime) -> list[dict[str, object]]:
    return [json.loads(line) for line in rt.config.audit_path.read_text().splitlines()]


# ------------------------------------------------------------ every surface has its rows


def test_every_declared_tool_has_its_row_and_takes_its_scope_from_it() -> None:
    specs = {s.name: s for s in declared_specs()}
    assert len(specs) > 40
    assert set(specs) == set(policy.TOOLS), {
        "tools without a row": sorted(set(specs) - set(policy.TOOLS)),
        "rows without a tool": sorted(set(policy.TOOLS) - set(specs)),
    }
    for name, spec in specs.items():
        assert spec.scope == policy.TOOLS[name].scope, name


def test_every_declared_resource_has_its_row() -> None:
    templates = {s.template for s in declared_resources()}
    assert templates == set(policy.RESOURCES)


def test_every_mcp_request_method_and_resource_the_server_answers_has_its_row(rt: Runtime) -> None:
    server = build_mcp(rt)
    methods = set(server._lowlevel_server._request_handlers)
    assert "tools/call" in methods and "subscriptions/listen" in methods
    assert methods == set(policy.PROTOCOL), {
        "methods without a row": sorted(methods - set(policy.PROTOCOL)),
        "rows without a method": sorted(set(policy.PROTOCOL) - methods),
    }
    registered = {str(t.uri_template) for t in server._resource_manager.list_templates()}
    assert registered == set(policy.RESOURCES)


def test_every_http_route_and_review_page_action_has_its_row(rt: Runtime) -> None:
    app = build_app(rt)
    http: set[str] = set()
    review: set[str] = set()
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "":  # the MCP app, mounted at /
            http.add("/mcp")
        elif isinstance(route, Mount):
            review.update(r.name for r in route.routes if isinstance(r, Route))
        elif isinstance(route, Route) and route.name.startswith("review:"):
            review.add(route.name)
        elif isinstance(route, Route):
            path = route.path
            http.add("/.well-known/oauth-protected-resource" if path == resource_metadata_path(rt.config) else path)
    assert http == set(policy.HTTP)
    # approve and deny share one route (/plans/{id}/{decision}): both rows apply there.
    assert "review:decide" in review
    review = (review - {"review:decide"}) | {"review:approve", "review:deny"}
    assert review == set(policy.REVIEW), {
        "routes without a row": sorted(review - set(policy.REVIEW)),
        "rows without a route": sorted(set(policy.REVIEW) - review),
    }


def test_the_open_rows_are_exactly_what_is_served_without_a_token(rt: Runtime) -> None:
    metadata = "/.well-known/oauth-protected-resource"  # stands for the path-suffixed metadata URL
    expected = {p for p, r in policy.HTTP.items() if r.open} - {metadata} | {resource_metadata_path(rt.config)}
    assert policy.HTTP[metadata].open
    assert open_paths(rt.config) == expected
    app = build_app(rt)
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == "/review"]
    for route in mount.routes:
        assert isinstance(route, Route)
        if route.name in policy.REVIEW and "{" not in route.path:
            assert open_review_path(mount.path + route.path) == policy.REVIEW[route.name].open, route.name


def test_the_rows_agree_with_the_change_engine_on_approving() -> None:
    assert policy.TOOLS["approve_plan"].scope == APPROVE_SCOPE
    assert policy.REVIEW["review:approve"].scope == APPROVE_SCOPE


def test_every_scope_in_the_table_is_a_scope() -> None:
    from tailops.auth.scopes import SCOPES

    for surface in ("tool", "resource", "protocol", "http", "review"):
        for action, rule in policy.table(surface).items():
            assert rule.scope is None or rule.scope in SCOPES, (surface, action)
            assert not (rule.open and rule.scope), f"{action}: an open action cannot need a scope"


# ------------------------------------------------------------ deny by default


def test_an_action_without_a_row_is_refused() -> None:
    reader = Principal(subject="alice", transport="http", scopes=frozenset({"admin"}))
    with pytest.raises(PermissionDenied, match="no entry in the policy table"):
        policy.require(reader, "review", "review:launch-missiles")
    assert not policy.allows(reader, "tool", "no_such_tool")
    with pytest.raises(PermissionDenied):
        policy.token_allows(["admin"], "http", "/secret")


def test_a_tool_without_a_row_cannot_be_declared() -> None:
    def not_in_the_table(call: ToolCall) -> None:
        """A tool nobody gave a scope."""

    with pytest.raises(ValueError, match="no scope in the policy table"):
        tool(group="system")(not_in_the_table)
    assert "not_in_the_table" not in {s.name for s in declared_specs()}


def test_a_resource_without_a_row_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="no row in the policy table"):
        resource("tailops://secrets/{name}", name="secret", title="t", description="d")(lambda rt, name: {})
    assert "tailops://secrets/{name}" not in {s.template for s in declared_resources()}


def test_token_rules() -> None:
    assert policy.token_allows(["admin"], "http", "/metrics")
    assert not policy.token_allows(["readonly", "system:admin"], "http", "/metrics")
    assert policy.token_allows([], "http", "/health")
    assert policy.token_allows([], "review", "review:logout")  # a valid token, no scope


# ------------------------------------------------------------ the surfaces read the table


async def test_resource_reads_take_their_scope_from_the_table(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stdio principal holds readonly (the default stdio scopes) but not container:admin.
    principal = await authorize(rt, None, "resource", CONTAINERS, "resource tailops://containers/x")
    assert principal.has_scope("readonly") and not principal.has_scope("container:admin")
    monkeypatch.setitem(policy.RESOURCES, CONTAINERS, Rule("container:admin"))
    with pytest.raises(PermissionDenied, match="needs scope 'container:admin'"):
        await authorize(rt, None, "resource", CONTAINERS, "resource tailops://containers/x")
    last = _audit(rt)[-1]
    assert last["kind"] == "protocol" and last["decision"] == "denied"
    assert last["what"] == "resource tailops://containers/x"


async def test_listen_streams_take_their_scope_from_the_table(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime(make_settings(auth={"stdio_scopes": ["file:read"]}))
    try:
        with pytest.raises(PermissionDenied, match="needs scope 'readonly'"):
            await authorize(runtime, None, "protocol", "subscriptions/listen", "subscriptions/listen")
        monkeypatch.setitem(policy.PROTOCOL, "subscriptions/listen", Rule("file:read"))
        await authorize(runtime, None, "protocol", "subscriptions/listen", "subscriptions/listen")
    finally:
        runtime.stop()


def test_review_pages_take_their_scope_from_the_table(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    # Without auth every caller is an anonymous reader (readonly).
    runtime = Runtime(make_settings(auth={"unsafe_no_auth": True}, server={"review_page": True}))
    try:
        client = TestClient(build_app(runtime), headers={"host": "127.0.0.1"})
        assert client.get("/review/drift").status_code == 200
        monkeypatch.setitem(policy.REVIEW, "review:drift", Rule("admin"))
        refused = client.get("/review/drift")
        assert refused.status_code == 403
        assert "Reading drift needs the admin scope." in refused.text
    finally:
        runtime.stop()
