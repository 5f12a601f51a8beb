"""The tool boundary: scope before body, worker pool, caps, error mapping, audit."""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Iterator
from typing import Annotated

import pytest
from mcp.types import TextContent
from pydantic import Field

from tailops.config import Settings
from tailops.models import ListResult, Model
from tailops.runtime import Runtime
from tailops.tools.registry import ToolCall, ToolSpec, bind, declared_specs


class Echo(Model):
    value: str


class Row(Model):
    n: int | None = None
    pad: str | None = None


class Rows(ListResult):
    rows: list[Row]


def _text(result: object) -> str:
    block = result.content[0]  # type: ignore[attr-defined]
    assert isinstance(block, TextContent)
    return block.text


@pytest.fixture
def rt(make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(server={"max_output_bytes": 2048}))
    yield runtime
    runtime.stop()


async def test_scope_is_checked_before_the_body_runs(rt: Runtime) -> None:
    ran = []

    def admin_only(call: ToolCall) -> Echo:
        """Needs admin."""
        ran.append(True)
        return Echo(value="x")

    spec = ToolSpec(name="admin_only", group="system", scope="admin", fn=admin_only, description="d")
    result = await bind(spec, rt)(ctx=None)  # stdio principal: no admin
    assert result.is_error
    assert _text(result).startswith("permission_denied: tool admin_only needs scope 'admin'")
    assert ran == []
    lines = [json.loads(line) for line in rt.config.audit_path.read_text().splitlines()]
    assert lines[-1]["tool"] == "admin_only"
    assert lines[-1]["decision"] == "denied"
    assert lines[-1]["outcome"] == "denied"


async def test_blocking_bodies_run_off_the_event_loop(rt: Runtime) -> None:
    seen: list[str] = []

    def where(call: ToolCall) -> Echo:
        """Report thread."""
        seen.append(threading.current_thread().name)
        return Echo(value="ok")

    spec = ToolSpec(name="where", group="system", scope="readonly", fn=where, description="d")
    result = await bind(spec, rt)(ctx=None)
    assert not result.is_error
    assert seen and seen[0] != threading.main_thread().name


async def test_unexpected_exception_gives_incident_id_not_traceback(rt: Runtime) -> None:
    def crash(call: ToolCall) -> Echo:
        """Crash."""
        raise KeyError("secret-internal-detail")

    spec = ToolSpec(name="crash", group="system", scope="readonly", fn=crash, description="d")
    result = await bind(spec, rt)(ctx=None)
    text = _text(result)
    assert result.is_error
    assert text.startswith("internal_error: crash failed unexpectedly (incident ")
    assert "secret-internal-detail" not in text
    audit = json.loads(rt.config.audit_path.read_text().splitlines()[-1])
    assert audit["outcome"] == "error"


async def test_byte_cap_cuts_whole_items_and_marks_truncation(rt: Runtime) -> None:
    def many(call: ToolCall, count: Annotated[int, Field(ge=1)] = 100) -> Rows:
        """Many rows."""
        return Rows(rows=[Row(n=i, pad="x" * 50) for i in range(count)], total=count)

    spec = ToolSpec(name="many", group="system", scope="readonly", fn=many, description="d", list_field="rows")
    result = await bind(spec, rt)(ctx=None, count=100, format="json")
    data = result.structured_content
    assert data is not None
    assert data["truncated"] is True
    assert "output cap of 2048 bytes" in data["truncation"]
    assert 0 < len(data["rows"]) < 100
    assert json.loads(_text(result))["rows"] == data["rows"]
    assert len(_text(result).encode()) <= 2048 + 400  # items fit the cap; the envelope is small


async def test_projection_and_format_parameters_are_added_to_list_tools(rt: Runtime) -> None:
    def few(call: ToolCall) -> Rows:
        """Few rows."""
        return Rows(rows=[Row(n=1, pad="a"), Row(n=2, pad="b")], total=2)

    spec = ToolSpec(name="few", group="system", scope="readonly", fn=few, description="d", list_field="rows")
    fn = bind(spec, rt)
    params = inspect.signature(fn).parameters
    assert {"format", "fields", "ctx"} <= set(params)
    result = await fn(ctx=None, fields=["n"], format="json")
    assert result.structured_content is not None
    assert result.structured_content["rows"] == [{"n": 1}, {"n": 2}]
    bad = await fn(ctx=None, fields=["nope"])
    assert bad.is_error and "choose from: n, pad" in _text(bad)


def test_declared_tools_have_descriptions_scopes_and_models() -> None:
    specs = declared_specs()
    assert {"get_system_status", "get_top_processes", "health_check", "get_network_status"} <= {s.name for s in specs}
    for spec in specs:
        assert spec.description and len(spec.description) <= 200, spec.name
        assert spec.output_model is not None
        if spec.list_field and spec.projectable:
            item_fields = spec.output_model.model_fields[spec.list_field].annotation
            assert item_fields is not None
            # projection needs every item field optional
            (item_model,) = item_fields.__args__
            required = [n for n, f in item_model.model_fields.items() if f.is_required()]
            assert required == [], f"{spec.name}: projectable item fields must be optional: {required}"
