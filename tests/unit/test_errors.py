"""The exception tree is mapped completely, at one boundary each."""

from __future__ import annotations

import inspect

import pytest
from mcp.types import TextContent

import tailops.errors as errors
from tailops.config import Settings
from tailops.runtime import Runtime
from tailops.tools.registry import ToolCall, ToolSpec, bind
from tests.unit.tools.test_registry import Echo


def all_error_classes() -> list[type[errors.TailopsError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.TailopsError) and obj.__module__ == errors.__name__
    ]


def test_every_error_class_maps_for_every_surface_and_is_exported() -> None:
    tables = {
        "HTTP status": errors.HTTP_STATUS,
        "JSON-RPC code": errors.JSONRPC_CODE,
        "CLI exit code": errors.CLI_EXIT,
    }
    for cls in all_error_classes():
        for surface, table in tables.items():
            assert cls in table, f"{cls.__name__} has no {surface} mapping (tailops/errors.py)"
        assert cls.__name__ in errors.__all__, f"{cls.__name__} not exported"


def test_refusals_are_the_rules_saying_no() -> None:
    refusals = {
        cls
        for cls in all_error_classes()
        if errors.is_refusal(cls("x") if cls is not errors.RateLimited else cls("x", retry_after=1))
    }
    assert refusals == {
        errors.AuthError,
        errors.PermissionDenied,
        errors.PathRefused,
        errors.TargetRefused,
        errors.RateLimited,
        errors.ApprovalError,
    }
    assert errors.cli_exit_code(errors.NotFound("x")) == 2 and errors.cli_exit_code(errors.StalePlan("x")) == 1
    assert errors.jsonrpc_code(errors.NotFound("x")) == errors.JSONRPC_INVALID_PARAMS


def test_every_error_class_appears_in_the_docstring_tree() -> None:
    doc = errors.__doc__ or ""
    for cls in all_error_classes():
        assert cls.__name__ in doc, f"{cls.__name__} missing from the tree in tailops/errors.py"


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))


def test_input_errors_are_also_builtin_value_errors() -> None:
    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.NotFound, LookupError)


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
async def test_every_error_becomes_a_clear_tool_error(cls: type[errors.TailopsError], make_settings: object) -> None:
    settings: Settings = make_settings()  # type: ignore[operator]
    rt = Runtime(settings)

    def boom(call: ToolCall) -> Echo:
        """Raise on purpose."""
        if cls is errors.RateLimited:
            raise errors.RateLimited("slow down", retry_after=1.0, hint="Wait.")
        raise cls("what went wrong", hint="What to do.")

    spec = ToolSpec(name="boom", group="system", scope="readonly", fn=boom, description="Raise.")
    result = await bind(spec, rt)(ctx=None)
    rt.stop()
    assert result.is_error is True
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert block.text.startswith(f"{cls.code}: ")
    assert "Traceback" not in block.text
