"""The tool-schema cache: a tool made from cached schemas is the tool the SDK would make,
a stale or damaged cache is never used, and nothing it holds can loosen validation."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver.tools import Tool
from pydantic import ValidationError

from tailops.config import Settings
from tailops.runtime import Runtime
from tailops.server.mcp_server import build_mcp
from tailops.server.tool_schemas import SchemaCache, cache_key
from tailops.tools.registry import annotations_for, bind, declared_specs


@pytest.fixture
def rt(make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    runtime = Runtime(make_settings())
    yield runtime
    runtime.stop()


def _tool_kwargs(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "annotations": annotations_for(spec),
        "meta": {"tailops/group": spec.group, "tailops/scope": spec.scope},
    }


def _facts(tool: Tool) -> dict[str, Any]:
    """Everything about a registered tool that a client or a call can observe."""
    meta = tool.fn_metadata
    return {
        **tool.model_dump(exclude={"fn", "fn_metadata"}),
        "output_schema": tool.output_schema,
        "output_model": meta.output_model,
        "wrap_output": meta.wrap_output,
        "arg_schema": meta.arg_model.model_json_schema(by_alias=True),
        "arg_fields": {n: (f.alias, f.is_required()) for n, f in meta.arg_model.model_fields.items()},
    }


def test_a_tool_from_cached_schemas_is_the_tool_the_sdk_makes(rt: Runtime, tmp_path: Path) -> None:
    specs = declared_specs()
    cold = SchemaCache.load(tmp_path / "cache.json")
    for spec in specs:
        cold.tool(bind(spec, rt), **_tool_kwargs(spec), output_model=spec.output_model)
    cold.save()
    warm = SchemaCache.load(tmp_path / "cache.json")
    assert set(warm.entries) == {s.name for s in specs}
    for spec in specs:
        fn = bind(spec, rt)
        reference = Tool.from_function(fn, **_tool_kwargs(spec))
        cached = warm.tool(fn, **_tool_kwargs(spec), output_model=spec.output_model)
        assert _facts(cached) == _facts(reference), spec.name
    assert warm.hits == len(specs) and not warm.dirty


def test_cached_tools_still_validate_arguments_from_the_code(rt: Runtime, tmp_path: Path) -> None:
    """Validation comes from the code, not the file: even a cache that advertises an
    anything-goes schema does not let a bad argument through."""
    [spec] = [s for s in declared_specs() if s.name == "get_top_processes"]
    path = tmp_path / "cache.json"
    loose = {"type": "object", "properties": {}, "additionalProperties": True}
    path.write_text(json.dumps({"key": cache_key(), "tools": {spec.name: {"parameters": loose, "output_schema": {}}}}))
    tool = SchemaCache.load(path).tool(bind(spec, rt), **_tool_kwargs(spec), output_model=spec.output_model)
    assert tool.parameters == loose  # what is advertised comes from the file ...
    with pytest.raises(ValidationError, match="limit"):  # ... what is accepted does not
        tool.fn_metadata.validate_arguments({"limit": 0})
    assert tool.fn_metadata.validate_arguments({"limit": 3})["limit"] == 3
    assert tool.fn_metadata.output_model is spec.output_model  # results are checked against the code's model


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"key": "0" * 64, "tools": {"get_system_status": {"parameters": {}, "output_schema": None}}}),
        json.dumps({"key": "__KEY__", "tools": {"get_system_status": {"parameters": "nope"}}}),
        "",
    ],
    ids=["garbage", "wrong-shape", "stale-key", "bad-entry", "empty"],
)
def test_a_stale_or_damaged_cache_is_regenerated(rt: Runtime, tmp_path: Path, content: str) -> None:
    path = tmp_path / "cache.json"
    path.write_text(content.replace("__KEY__", cache_key()))
    cache = SchemaCache.load(path)
    assert "get_system_status" not in cache.entries
    [spec] = [s for s in declared_specs() if s.name == "get_system_status"]
    tool = cache.tool(bind(spec, rt), **_tool_kwargs(spec), output_model=spec.output_model)
    assert tool.parameters["type"] == "object" and cache.dirty
    cache.save()
    assert json.loads(path.read_text())["tools"]["get_system_status"]["parameters"] == tool.parameters


def test_the_key_changes_with_any_source_edit(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    first = cache_key(pkg)
    assert cache_key(pkg) == first
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert cache_key(pkg) != first
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    assert cache_key(pkg) == first
    (pkg / "c.py").write_text("")
    assert cache_key(pkg) != first


def test_an_unwritable_cache_dir_costs_time_not_the_start(rt: Runtime, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores directory permissions: make the cache path's parent a file instead.
        (tmp_path / "ro").write_text("")
        path = tmp_path / "ro" / "cache.json"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        path = tmp_path / "ro" / "cache.json"
    cache = SchemaCache.load(path)
    [spec] = [s for s in declared_specs() if s.name == "health_check"]
    cache.tool(bind(spec, rt), **_tool_kwargs(spec), output_model=spec.output_model)
    cache.save()  # logs a warning, raises nothing
    assert cache.dirty and not path.exists()


def test_the_server_writes_the_cache_once_and_then_reads_it(rt: Runtime) -> None:
    path = rt.config.server.data_dir / "cache" / "tool-schemas.json"
    first = build_mcp(rt)
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    written = path.stat().st_mtime_ns
    second = build_mcp(rt)
    assert path.stat().st_mtime_ns == written  # nothing regenerated, nothing rewritten
    assert [_facts(t) for t in first._tool_manager.list_tools()] == [
        _facts(t) for t in second._tool_manager.list_tools()
    ]
