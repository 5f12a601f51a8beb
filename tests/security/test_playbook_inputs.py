"""Playbook inputs that must be refused at the tool door, before anything runs (issue 13).

Through the real MCP SDK client against a real HTTP server: a ``limit`` that looks
like an ansible-playbook option, and a ``service_state`` unit that is not a plain
service or is one tailops must never stop with the ordinary playbook. Each is an
``isError`` result naming the rule; no plan is stored and no check run starts
(the run artifacts directory stays empty).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from mcp.types import TextContent

from tailops.config import Settings
from tests.servers import http_server, mcp_http_client


def _text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return str(block.text)


def _no_run_started(settings: Settings) -> None:
    runs = settings.artifacts_dir
    assert not runs.exists() or not any(runs.iterdir()), sorted(p.name for p in runs.iterdir())


async def test_option_like_limits_are_refused_before_anything_runs(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    cases: list[tuple[str, dict[str, Any]]] = [
        (
            "plan_change",
            {"playbook": "package_install", "params": {"packages": [{"name": "tbdemo"}]}, "limit": "-e@/etc/shadow"},
        ),
        ("install_package", {"name": "tbdemo", "limit": "--become"}),
        ("check_system_updates", {"limit": "-vvvv"}),
        ("update_system_packages", {"packages": ["tbdemo"], "limit": "--limit=all"}),
    ]
    with http_server(settings) as srv:
        token = srv.mint("alice", "readonly system:admin")
        async with mcp_http_client(srv.url, token) as client:
            for tool, args in cases:
                with anyio.fail_after(30):
                    result = await client.call_tool(tool, args)
                assert result.is_error, (tool, args)
                assert "is not a host pattern" in _text(result) and "may not start with '-'" in _text(result), _text(
                    result
                )
            listed = await client.call_tool("list_plans", {})
            assert not listed.is_error and (listed.structured_content or {}).get("total") == 0
    _no_run_started(settings)


async def test_service_state_refuses_other_unit_types_and_protected_services_at_the_door(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"playbook": "service_state", "params": {"name": "poweroff.target", "state": "started"}}, "systemd service"),
        ({"playbook": "service_state", "params": {"name": "ssh", "state": "stopped"}}, "service_state_critical"),
        ({"playbook": "service_state", "params": {"name": "tailscaled", "state": "stopped"}}, "service_state_critical"),
        ({"playbook": "service_state", "params": {"name": "docker.service", "state": "restarted"}}, "protected"),
        ({"playbook": "service_state_critical", "params": {"name": "nginx", "state": "restarted"}}, "protected"),
    ]
    with http_server(settings) as srv:
        token = srv.mint("alice", "readonly system:admin")
        async with mcp_http_client(srv.url, token) as client:
            for args, fragment in cases:
                with anyio.fail_after(30):
                    result = await client.call_tool("plan_change", args)
                assert result.is_error, args
                assert "invalid parameters" in _text(result) and fragment in _text(result), _text(result)
            listed = await client.call_tool("list_plans", {})
            assert not listed.is_error and (listed.structured_content or {}).get("total") == 0
    _no_run_started(settings)
