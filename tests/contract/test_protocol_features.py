"""tailops' own MCP protocol features, through the real SDK client over real HTTP.

logging/setLevel (per connection), completion of playbook and container names,
the ``tailops://playbooks/{name}`` and ``tailops://containers/{name}``
resources (authorized and audited like tools), resource subscriptions fed by
real Docker events, and the absence of the conformance fixtures from a normally
built server.
"""

from __future__ import annotations

import ast
import contextlib
import json
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import (
    CallToolResult,
    LoggingMessageNotificationParams,
    PromptReference,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
    TextContent,
    TextResourceContents,
)

from tailops.config import Settings
from tailops.server.protocol import LOG_LEVELS, features, send_client_log
from tailops.tools.resources.containers import CONTAINER_TEMPLATE
from tailops.tools.resources.playbooks import PLAYBOOK_TEMPLATE
from tests.contract.conformance_fixtures import (
    FIXTURE_PROMPTS,
    FIXTURE_RESOURCES,
    FIXTURE_TEMPLATES,
    FIXTURE_TOOLS,
)
from tests.helpers import REPO_ROOT, unique_name
from tests.servers import RunningServer, http_server, mcp_http_client

WAIT = 20  # seconds: upper bound of every wait below


@contextlib.contextmanager
def legacy_api() -> Iterator[None]:
    """Calls the SDK marks deprecated from 2026-07-28 on (setLevel, subscribe): 2025 clients use them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        yield


def _write_playbook(root: Path, name: str, task: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "manifest.yml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            version: 1.2.0
            description: Print a greeting on the target hosts ({name}).
            parameters: {{type: object, additionalProperties: false, properties: {{}}}}
            target: targets
            risk: low
            scope: system:admin
            roles: []
            collections: [ansible.builtin]
            """
        )
    )
    (folder / "playbook.yml").write_text(
        textwrap.dedent(
            f"""\
            - name: {name}
              hosts: targets
              gather_facts: false
              serial: "{{{{ tailops_serial | default('100%') }}}}"
              max_fail_percentage: "{{{{ tailops_max_fail_percentage | default(0) }}}}"
              tasks:
                - name: {task}
                  ansible.builtin.debug:
                    msg: hello
            """
        )
    )


@pytest.fixture
def catalog_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Settings whose catalog holds demo_restart, demo_reload and other_thing."""
    playbooks, roles = tmp_path / "playbooks", tmp_path / "roles"
    roles.mkdir()
    for name in ("demo_restart", "demo_reload", "other_thing"):
        _write_playbook(playbooks, name, f"Say hello from {name}")
    return make_settings(changes={"playbooks_dir": playbooks, "roles_dir": roles})


def _text(result: Any) -> str:
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


def _audit_entries(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.audit_path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- fixtures stay out


def test_normal_server_has_no_conformance_fixtures(make_settings: Callable[..., Settings]) -> None:
    async def check(srv: RunningServer) -> None:
        async with mcp_http_client(srv.url, srv.mint("alice", "readonly")) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            resources = {str(r.uri) for r in (await client.list_resources()).resources}
            templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
            prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert tools, "the product exposes tools"
        # By name, not by the test_ prefix: test_port_connectivity is a product tool.
        assert tools.isdisjoint(FIXTURE_TOOLS), tools & set(FIXTURE_TOOLS)
        assert not resources & set(FIXTURE_RESOURCES)
        assert templates == {PLAYBOOK_TEMPLATE, CONTAINER_TEMPLATE}
        assert not prompts & set(FIXTURE_PROMPTS)
        assert not templates & set(FIXTURE_TEMPLATES)

    with http_server(make_settings()) as srv:
        anyio.run(check, srv)


def test_product_code_never_imports_test_code() -> None:
    offenders = []
    for path in sorted((REPO_ROOT / "tailops").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.relative_to(REPO_ROOT)}: {n}" for n in names if n.split(".")[0] == "tests"]
    assert offenders == []


# ------------------------------------------------------------------------------------- logging


def _log_probe(server: MCPServer[Any]) -> None:
    """A test-only tool that tries one client log message at every level."""
    levels = features(server).log_levels

    @server.tool(name="probe_logs", description="Sends one log message per level.")
    async def probe_logs(ctx: Context) -> CallToolResult:
        sent = [lv for lv in LOG_LEVELS if await send_client_log(ctx, levels, lv, f"at {lv}")]
        return CallToolResult(content=[TextContent(type="text", text=",".join(sent))])


def test_set_level_filters_client_logs_per_connection(make_settings: Callable[..., Settings]) -> None:
    async def run(srv: RunningServer) -> None:
        token = srv.mint("alice", "readonly")
        got_a: list[LoggingMessageNotificationParams] = []
        got_b: list[LoggingMessageNotificationParams] = []

        async def on_a(params: LoggingMessageNotificationParams) -> None:
            got_a.append(params)

        async def on_b(params: LoggingMessageNotificationParams) -> None:
            got_b.append(params)

        async def levels_seen(client: Client, got: list[LoggingMessageNotificationParams]) -> list[str]:
            got.clear()
            result = await client.call_tool("probe_logs", {})
            sent = result.content[0].text.split(",") if isinstance(result.content[0], TextContent) else []
            with anyio.fail_after(WAIT):
                while len(got) < len(sent):
                    await anyio.sleep(0.01)
            assert [p.data for p in got] == [f"at {lv}" for lv in sent]
            assert {p.logger for p in got} <= {"tailops"}
            return [p.level for p in got]

        async with (
            mcp_http_client(srv.url, token, mode="legacy", logging_callback=on_a) as a,
            mcp_http_client(srv.url, token, mode="legacy", logging_callback=on_b) as b,
        ):
            caps = a.server_capabilities
            assert caps.logging is not None and caps.completions is not None
            assert caps.resources is not None and caps.resources.subscribe
            # No setLevel yet: info and above.
            assert await levels_seen(a, got_a) == list(LOG_LEVELS[1:])
            with legacy_api():
                assert (await a.set_logging_level("error")).model_dump(exclude_none=True) == {}
            assert await levels_seen(a, got_a) == ["error", "critical", "alert", "emergency"]
            # The level belongs to connection a only, and lasts across its requests.
            assert await levels_seen(b, got_b) == list(LOG_LEVELS[1:])
            assert await levels_seen(a, got_a) == ["error", "critical", "alert", "emergency"]
            with legacy_api():
                await b.set_logging_level("debug")
            assert await levels_seen(b, got_b) == list(LOG_LEVELS)

    with http_server(make_settings(), extra=_log_probe) as srv:
        anyio.run(run, srv)


# ---------------------------------------------------------------------------- playbooks


def test_playbook_resource_and_completion(catalog_settings: Settings) -> None:
    async def run(srv: RunningServer) -> None:
        ref = ResourceTemplateReference(type="ref/resource", uri=PLAYBOOK_TEMPLATE)
        async with mcp_http_client(srv.url, srv.mint("alice", "readonly"), mode="legacy") as client:
            done = await client.complete(ref, {"name": "name", "value": "demo_"})
            assert done.completion.values == ["demo_reload", "demo_restart"]
            assert done.completion.total == 2 and not done.completion.has_more
            everything = await client.complete(ref, {"name": "name", "value": ""})
            assert everything.completion.values == ["demo_reload", "demo_restart", "other_thing"]
            # An argument nobody completes answers with nothing, not an error.
            other = await client.complete(PromptReference(type="ref/prompt", name="nope"), {"name": "x", "value": ""})
            assert other.completion.values == []

            read = await client.read_resource("tailops://playbooks/demo_reload")
            assert read.contents[0].mime_type == "application/json"
            data = json.loads(_text(read))
            assert data["name"] == "demo_reload" and data["version"] == "1.2.0"
            assert data["manifest"]["risk"] == "low" and data["manifest"]["scope"] == "system:admin"
            assert "Say hello from demo_reload" in data["playbook"] and not data["playbook_truncated"]

            with pytest.raises(MCPError) as err:
                await client.read_resource("tailops://playbooks/demo_missing")
            assert "not_found" in str(err.value) and "demo_missing" in str(err.value)

    with http_server(catalog_settings) as srv:
        anyio.run(run, srv)
        reads = [e for e in _audit_entries(catalog_settings) if e.get("kind") == "resource"]
        assert [(e["uri"], e["outcome"], e["principal"]["sub"]) for e in reads] == [
            ("tailops://playbooks/demo_reload", "ok", "alice"),
            ("tailops://playbooks/demo_missing", "error", "alice"),
        ]


def test_resources_and_completion_need_the_readonly_scope(catalog_settings: Settings) -> None:
    async def run(srv: RunningServer) -> None:
        ref = ResourceTemplateReference(type="ref/resource", uri=PLAYBOOK_TEMPLATE)
        async with mcp_http_client(srv.url, srv.mint("bob", "file:read"), mode="legacy") as client:
            with pytest.raises(MCPError) as err:
                await client.read_resource("tailops://playbooks/demo_reload")
            assert "needs scope 'readonly'" in str(err.value)
            with pytest.raises(MCPError) as err:
                await client.complete(ref, {"name": "name", "value": ""})
            assert "needs scope 'readonly'" in str(err.value)

    with http_server(catalog_settings) as srv:
        anyio.run(run, srv)
        denied = [e for e in _audit_entries(catalog_settings) if e.get("decision") == "denied"]
        assert {(e["principal"]["sub"], e["kind"]) for e in denied} == {("bob", "protocol")}
        assert len(denied) == 2


# ---------------------------------------------------------------------------- containers


@pytest.fixture
def container(docker_client: Any, base_image: str, test_labels: dict[str, str]) -> Iterator[Any]:
    c = docker_client.containers.run(
        base_image,
        ["sleep", "infinity"],
        name=unique_name("proto"),
        labels=test_labels,
        detach=True,
        init=True,
    )
    try:
        yield c
    finally:
        c.remove(force=True)


def test_container_resource_completion_and_subscription(make_settings: Callable[..., Settings], container: Any) -> None:
    uri = f"tailops://containers/{container.name}"

    async def run(srv: RunningServer) -> None:
        updates: list[str] = []
        arrived = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, ResourceUpdatedNotification):
                updates.append(str(message.params.uri))
                arrived.set()

        ref = ResourceTemplateReference(type="ref/resource", uri=CONTAINER_TEMPLATE)
        prefix = container.name[: container.name.rindex("-") + 1]
        async with mcp_http_client(
            srv.url, srv.mint("alice", "readonly"), mode="legacy", message_handler=on_message
        ) as client:
            done = await client.complete(ref, {"name": "name", "value": prefix})
            assert done.completion.values == [container.name]

            state = json.loads(_text(await client.read_resource(uri)))
            assert state["name"] == container.name and state["id"] == container.id[:12]
            assert state["state"] == "running" and state["running"] is True and state["exit_code"] is None
            assert state["image"] == container.attrs["Config"]["Image"]

            with pytest.raises(MCPError) as err, legacy_api():
                await client.subscribe_resource("tailops://containers/tailops-test-no-such-container")
            assert "not_found" in str(err.value)

            with legacy_api():
                await client.subscribe_resource(uri)
            await anyio.to_thread.run_sync(lambda: container.stop(timeout=2))
            with anyio.fail_after(WAIT):
                await arrived.wait()
            assert set(updates) == {uri}
            stopped = json.loads(_text(await client.read_resource(uri)))
            assert stopped["state"] == "exited" and stopped["running"] is False

            with legacy_api():
                await client.unsubscribe_resource(uri)
            # The last container subscription gone, the engine event thread ends.
            with anyio.fail_after(WAIT):
                while any(t.name == "tailops-container-events" for t in threading.enumerate()):
                    await anyio.sleep(0.02)
            updates.clear()
            arrived = anyio.Event()
            await anyio.to_thread.run_sync(container.start)
            with anyio.move_on_after(2):  # bounded: nothing may arrive after unsubscribing
                await arrived.wait()
            assert updates == []

    with http_server(make_settings()) as srv:
        anyio.run(run, srv)


def _event_followers() -> list[threading.Thread]:
    """Threads following the engine's /events: the shared feed's, or any other follower (the inspect
    cache and the subscription watcher each had their own before there was one feed)."""
    return [t for t in threading.enumerate() if t.name.startswith("tailops-") and t.name.endswith("-events")]


def test_one_engine_event_stream_serves_the_list_cache_and_subscriptions(
    make_settings: Callable[..., Settings], container: Any
) -> None:
    """get_container_list (its inspect cache follows engine events) and a resource subscription
    active together share one GET /events stream; one event reaches both."""
    uri = f"tailops://containers/{container.name}"
    flt = {"all": True, "filters": {"id": container.id}, "format": "json"}

    async def run(srv: RunningServer) -> None:
        feed = srv.runtime.docker.events
        arrived = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, ResourceUpdatedNotification) and str(message.params.uri) == uri:
                arrived.set()

        async with mcp_http_client(
            srv.url, srv.mint("alice", "readonly"), mode="legacy", message_handler=on_message
        ) as client:
            listed = await client.call_tool("get_container_list", flt)
            assert not listed.is_error and (listed.structured_content or {})["containers"][0]["state"] == "running"
            assert srv.runtime.docker.inspect_cache.watching
            with legacy_api():
                await client.subscribe_resource(uri)
            assert len(_event_followers()) == 1 and feed.streams_opened == 1

            await anyio.to_thread.run_sync(lambda: container.stop(timeout=2))
            with anyio.fail_after(WAIT):
                await arrived.wait()  # the subscription heard it ...
            relisted = await client.call_tool("get_container_list", flt)
            row = (relisted.structured_content or {})["containers"][0]
            assert row["state"] == "exited" and row["exit_code"] is not None  # ... and the cache dropped its entry

            with legacy_api():
                await client.unsubscribe_resource(uri)
            # The cache still listens: the same stream stays open, no second one is made.
            assert feed.connected and feed.streams_opened == 1 and len(_event_followers()) == 1

    with http_server(make_settings()) as srv:
        anyio.run(run, srv)


def test_container_updates_reach_a_2026_listen_stream(make_settings: Callable[..., Settings], container: Any) -> None:
    """On the 2026-07-28 wire (no resources/subscribe) a listen stream gets the same
    container updates; opening one is authorized and checked like subscribing."""
    uri = f"tailops://containers/{container.name}"

    def events_thread_alive() -> bool:
        return any(t.name == "tailops-container-events" for t in threading.enumerate())

    async def run(srv: RunningServer) -> None:
        async with mcp_http_client(srv.url, srv.mint("alice", "readonly")) as client:
            assert client.protocol_version >= "2026-07-28"
            with pytest.raises(MCPError) as err:
                async with client.listen(resource_subscriptions=["tailops://containers/tailops-test-no-such-one"]):
                    pass
            assert "not_found" in str(err.value)

            async with client.listen(resource_subscriptions=[uri]) as sub:
                assert sub.honored.resource_subscriptions == [uri]
                assert events_thread_alive()
                await anyio.to_thread.run_sync(lambda: container.stop(timeout=2))
                with anyio.fail_after(WAIT):
                    event = await sub.__anext__()
                assert isinstance(event, ResourceUpdated) and event.uri == uri
            stopped = json.loads(_text(await client.read_resource(uri)))
            assert stopped["state"] == "exited"
            # The stream closed: nothing else wants the container watched.
            with anyio.fail_after(WAIT):
                while events_thread_alive():
                    await anyio.sleep(0.02)

        async with mcp_http_client(srv.url, srv.mint("bob", "file:read")) as client:
            for wanted in ({"resource_subscriptions": [uri]}, {"tools_list_changed": True}):
                with pytest.raises(MCPError) as err:
                    async with client.listen(**wanted):
                        pass
                assert "needs scope 'readonly'" in str(err.value)

    with http_server(make_settings()) as srv:
        anyio.run(run, srv)
        settings = srv.settings
    denied = [e for e in _audit_entries(settings) if e.get("decision") == "denied"]
    assert [(e["principal"]["sub"], e["what"]) for e in denied] == [("bob", "subscriptions/listen")] * 2
