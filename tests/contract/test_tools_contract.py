"""The MCP contract, through the real SDK client over both transports.

Every exposed tool: has a description, an input and an output schema and
annotations; answers a call with either a result whose structuredContent
matches its outputSchema or a clear ``isError`` (never a crash or a hang); and
bad arguments leave the server serving.

``SAMPLE_ARGS`` holds one valid argument set per tool; a tool without an entry
fails ``test_every_tool_has_sample_arguments`` so new tools cannot slip past.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
import yaml
from mcp import Client
from mcp.types import TextContent

from tailops.audit import AuditLog
from tailops.changes.engine import ChangeEngine
from tailops.config import Settings
from tailops.principal import Principal
from tailops.store import Store
from tests.contract.samples import REFUSED_BY_SETUP, SAMPLE_ARGS, expand
from tests.helpers import unique_name
from tests.servers import ensure_keys, http_server, mcp_http_client, stdio_params
from tests.testbed.catalog_runs import fixture_catalog
from tests.testbed.seed import seed_plan, seed_run

# Network probes whose sample targets answer with a coded refusal (nothing listens on port 9;
# loopback HTTP is refused by the default SSRF policy).
PROBES = {"test_port_connectivity", "check_ssl_certificate", "http_request_test", "traceroute", "ping_host"}


def _write_config(path: Path, settings: Settings) -> Path:
    data: dict[str, Any] = {
        "server": {"data_dir": str(settings.server.data_dir)},
        "files": {"allowed_roots": [str(p) for p in settings.files.allowed_roots]},
    }
    changes = settings.changes
    if changes.inventory is not None:
        data["changes"] = {
            "playbooks_dir": str(changes.playbooks_dir),
            "roles_dir": str(changes.roles_dir),
            "inventory": str(changes.inventory),
        }
        data["drift"] = {
            "checks": [
                {**c.model_dump(mode="json"), "every": f"{int(c.every.total_seconds())}s"}
                for c in settings.drift.checks
            ]
        }
    path.write_text(yaml.safe_dump(data))
    return path


def _settings(make_settings: Callable[..., Settings], tmp_path: Path, container: str | None = None) -> Settings:
    root = tmp_path / "files"
    root.mkdir(exist_ok=True)
    (root / "app.log").write_text("start\nerror: disk full\nrecovered\n")
    if container is None:
        return make_settings(files={"allowed_roots": [str(root)]})
    # The change tools: a catalog of the test-only tb_marker playbook, the container as the one host.
    playbooks, roles = fixture_catalog(tmp_path / "catalog")
    inventory = tmp_path / "inventory.ini"
    host_vars = "ansible_connection=community.docker.docker ansible_python_interpreter=/usr/bin/python3"
    inventory.write_text(f"[targets]\n{container} {host_vars}\n")
    return make_settings(
        files={"allowed_roots": [str(root)]},
        changes={"playbooks_dir": str(playbooks), "roles_dir": str(roles), "inventory": str(inventory)},
        # A drift check that runs only when asked (every 30 days): run_drift_check and plan_from_drift use it.
        drift={
            "checks": [
                {"name": "contract-marker", "playbook": "tb_marker", "params": {"message": "drift"}, "every": "30d"}
            ]
        },
    )


async def _seed_changes(settings: Settings) -> dict[str, str]:
    """Plans and a run for the change tools' valid calls, stored on the server's data dir before the
    calls: two pending plans (requested by someone else), one real plan (a check run on the
    container) approved by a third person, and a running run."""
    requester = Principal("contract-requester", frozenset({"system:admin", "readonly"}), "http", token_id="jti-req")
    approver = Principal("contract-approver", frozenset({"changes:approve"}), "http", token_id="jti-appr")
    pending = seed_plan(settings.db_path, requester, message="contract pending")
    to_deny = seed_plan(settings.db_path, requester, message="contract deny")
    running = seed_run(settings.db_path, seed_plan(settings.db_path, requester, message="contract run"), approver, [])
    store = Store(settings.db_path)
    audit = AuditLog(settings.audit_path)
    try:
        engine = ChangeEngine(settings, store, audit, instance_id="contract-seed")
        real = await engine.plan(requester, "tb_marker", {"message": "contract apply"})
        assert real.status == "pending", real.status_reason
        engine.approve(approver, real.id, "contract")
    finally:
        audit.close()
        store.close()
    return {"plan": pending.id, "plan_deny": to_deny.id, "plan_apply": real.id, "run": running.id}


TRANSPORTS = ["stdio", "http"]


@contextlib.asynccontextmanager
async def connect(transport: str, settings: Settings, tmp_path: Path) -> AsyncIterator[Client]:
    """A connected SDK client; admin over HTTP so every tool's body is reached.

    (A context manager, not an async fixture: the SDK's task groups must be
    entered and left in the same task.)
    """
    if transport == "stdio":
        cfg = _write_config(tmp_path / "stdio.yaml", settings)
        async with Client(stdio_params(cfg)) as c:
            yield c
    else:
        with http_server(settings) as srv:
            token = srv.mint("contract-admin", "admin")
            async with mcp_http_client(srv.url, token) as c:
                yield c


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return str(block.text)


async def test_every_tool_is_described_and_typed(
    transport: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with connect(transport, _settings(make_settings, tmp_path), tmp_path) as client:
        await _test_every_tool_is_described_and_typed(client)


async def _test_every_tool_is_described_and_typed(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert len(tools) >= 6
    for t in tools:
        assert t.description and len(t.description) < 200, t.name
        assert t.input_schema.get("type") == "object", t.name
        assert t.output_schema and t.output_schema.get("type") == "object", t.name
        assert t.annotations is not None and t.annotations.read_only_hint is not None, t.name
        for pname, prop in t.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{t.name}.{pname} has no description"


async def test_every_tool_has_sample_arguments(
    transport: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with connect(transport, _settings(make_settings, tmp_path), tmp_path) as client:
        await _test_every_tool_has_sample_arguments(client)


async def _test_every_tool_has_sample_arguments(client: Client) -> None:
    names = {t.name for t in (await client.list_tools()).tools}
    missing = sorted(names - set(SAMPLE_ARGS))
    assert missing == [], f"add sample arguments for: {missing}"


async def test_call_every_tool(
    transport: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    docker_client: Any,
    base_image: str,
    test_labels: dict[str, str],
) -> None:
    container = docker_client.containers.run(
        base_image,
        ["sh", "-c", "echo started; echo 'error: connection refused to db:5432'; exec sleep 600"],
        name=unique_name("contract"),
        labels=test_labels,
        detach=True,
        init=True,
        environment={"DB_PASSWORD": "hunter2"},
    )
    try:
        settings = _settings(make_settings, tmp_path, container.name)
        ensure_keys(settings)
        ids = await _seed_changes(settings)
        async with connect(transport, settings, tmp_path) as client:
            await _test_call_every_tool(client, str(tmp_path / "files"), container.name, transport, ids)
        # The applied plan really ran: the marker file is in the container.
        rc, out = container.exec_run(["cat", "/etc/tailops-tb-marker"])
        assert rc == 0 and b"contract apply" in out
    finally:
        container.remove(force=True)


async def _test_call_every_tool(client: Client, root: str, container: str, transport: str, ids: dict[str, str]) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    for name, tool in sorted(tools.items()):
        args = expand(SAMPLE_ARGS[name], root, container, ids)
        # A change tool runs Ansible (plan_change: a check run; apply_plan: a re-check and the run).
        with anyio.fail_after(300 if name in ("apply_plan", "plan_change") else 60):
            result = await client.call_tool(name, args)
        text = _text(result)
        assert not text.startswith("internal_error"), f"{name}: {text}"
        if result.is_error and transport == "stdio" and text.startswith("permission_denied"):
            # stdio runs with auth.stdio_scopes (no container:admin): a refusal is the right answer.
            assert (tool.meta or {}).get("tailops/scope") not in ("readonly", None), f"{name}: {text}"
            continue
        if name in REFUSED_BY_SETUP:
            assert result.is_error and text.startswith("not_found:"), f"{name}: {text}"
            continue
        if result.is_error:
            # Allowed only for a clear, coded refusal of a probe's target: nothing listens on
            # port 9, and loopback HTTP is refused by the default SSRF policy.
            assert name in PROBES and text.split(":", 1)[0] in {"unavailable", "target_refused"}, f"{name}: {text}"
            continue
        assert result.structured_content is not None, name
        jsonschema.validate(result.structured_content, tool.output_schema or {})
        if tool.annotations and tool.annotations.read_only_hint is False:
            continue
        if "format" in tool.input_schema.get("properties", {}):
            json_result = await client.call_tool(name, {**args, "format": "json"})
            as_json = json.loads(_text(json_result))
            assert set(as_json) <= set(json_result.structured_content or {}), name


async def test_bad_arguments_are_errors_and_the_server_keeps_serving(
    transport: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with connect(transport, _settings(make_settings, tmp_path), tmp_path) as client:
        await _test_bad_arguments_are_errors_and_the_server_keeps_serving(client)


async def _test_bad_arguments_are_errors_and_the_server_keeps_serving(client: Client) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("get_top_processes", {"limit": "lots"}, "limit"),
        ("get_top_processes", {"limit": 0}, "limit"),
        ("get_top_processes", {"limit": 100000}, "limit"),
        ("get_top_processes", {"sort_by": "colour"}, "sort_by"),
        ("get_top_processes", {"fields": ["pid", "nope"]}, "unknown field"),
        ("get_top_processes", {"format": "xml"}, "format"),
        ("get_active_connections", {"status": "DANCING"}, "unknown connection status"),
        ("get_active_connections", {"kind": "carrier-pigeon"}, "kind"),
        ("get_system_status", {"per_cpu": "maybe"}, "per_cpu"),
    ]
    for name, args, fragment in cases:
        with anyio.fail_after(30):
            result = await client.call_tool(name, args)
        assert result.is_error, (name, args)
        assert fragment in _text(result), (name, args, _text(result))
    unknown = await client.call_tool("no_such_tool", {})
    assert unknown.is_error and "Unknown tool" in _text(unknown)
    ok = await client.call_tool("get_system_status", {})
    assert not ok.is_error


async def test_list_tools_get_toon_text_when_smaller(
    transport: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with connect(transport, _settings(make_settings, tmp_path), tmp_path) as client:
        await _test_list_tools_get_toon_text_when_smaller(client)


async def _test_list_tools_get_toon_text_when_smaller(client: Client) -> None:
    result = await client.call_tool("get_top_processes", {"limit": 20, "format": "auto"})
    text = _text(result)
    assert not result.is_error
    assert text.startswith("total:") or text.startswith("{"), text[:40]
    as_json = await client.call_tool("get_top_processes", {"limit": 20, "format": "json"})
    assert json.loads(_text(as_json))["sort_by"] == "cpu"
    toon = await client.call_tool("get_top_processes", {"limit": 20, "format": "toon"})
    assert "processes[" in _text(toon)
