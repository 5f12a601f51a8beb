"""The ``test_*`` fixtures the official MCP conformance suite calls, for one test server only.

Why it exists: the suite's scenarios call tools, resources and prompts with
fixed names (``test_image_content``, ``test://static-text``,
``test_prompt_with_arguments``…). :func:`register_fixtures` adds them to a
server built by the test (``http_server(settings, extra=register_fixtures)``),
so each scenario exercises tailops' real HTTP transport, session handling,
transport security and protocol handlers (logging levels, completion,
subscriptions) instead of passing vacuously or failing on a missing name.

What it must never do: be imported by anything under ``tailops/`` (a normally
built server has none of these; ``test_protocol_features`` checks that), or
fake a feature the product lacks: logging goes through the product's
:func:`~tailops.server.protocol.send_client_log`, completion through the
product's completion registry, subscriptions through the product's handlers.

Every expected value below is copied from the scenario that checks it
(``@modelcontextprotocol/conformance`` 0.1.16, ``dist/index.js``).
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.message import ServerMessageMetadata
from mcp.types import (
    AudioContent,
    CallToolResult,
    ClientCapabilities,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitationCapability,
    EmbeddedResource,
    ImageContent,
    SamplingCapability,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field

from tailops.server.protocol import CompletionQuery, features, send_client_log

__all__ = [
    "FIXTURE_PROMPTS",
    "FIXTURE_RESOURCES",
    "FIXTURE_TEMPLATES",
    "FIXTURE_TOOLS",
    "JSON_SCHEMA_2020_12",
    "register_fixtures",
]

# A 1x1 red PNG and a minimal (empty) 8 kHz mono 16-bit WAV.
RED_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
SILENT_WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

JSON_SCHEMA_TOOL = "json_schema_2020_12_tool"
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}

FIXTURE_TOOLS = (
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    JSON_SCHEMA_TOOL,
)
FIXTURE_RESOURCES = ("test://static-text", "test://static-binary", "test://watched-resource")
FIXTURE_TEMPLATES = ("test://template/{id}/data",)
FIXTURE_PROMPTS = (
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
)

# Candidates for completing test_prompt_with_arguments' arg1 (the suite types "test").
ARG1_CANDIDATES = ("test-alpha", "test-beta", "testValue1", "paris", "park", "party")


class _Address(BaseModel):
    street: str | None = None
    city: str | None = None


def _text(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


def _require(ctx: Context, capability: ClientCapabilities, what: str) -> None:
    """The scenarios' rule: a client without the capability gets a tool error."""
    if not ctx.session.check_client_capability(capability):
        raise ToolError(f"the client does not support {what}")


async def _elicit(ctx: Context, message: str, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    _require(ctx, ClientCapabilities(elicitation=ElicitationCapability()), "elicitation")
    # Form-mode elicitation with the raw schema: a pydantic model cannot express
    # SEP-1330's titled enums (oneOf/anyOf of const+title) or legacy enumNames.
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return result.action, dict(result.content or {})


def register_fixtures(server: MCPServer[Any]) -> None:
    """Register every fixture the active conformance suite (and json-schema-2020-12) expects."""
    _register_tools(server)
    _register_resources(server)
    _register_prompts(server)
    _register_completions(server)


def _register_tools(server: MCPServer[Any]) -> None:
    levels = features(server).log_levels

    @server.tool(name="test_simple_text", description="Returns one fixed text block.")
    def simple_text() -> CallToolResult:
        return _text("This is a simple text response for testing.")

    @server.tool(name="test_image_content", description="Returns a 1x1 PNG image block.")
    def image_content() -> CallToolResult:
        return CallToolResult(content=[ImageContent(type="image", data=RED_PIXEL_PNG, mime_type="image/png")])

    @server.tool(name="test_audio_content", description="Returns a tiny WAV audio block.")
    def audio_content() -> CallToolResult:
        return CallToolResult(content=[AudioContent(type="audio", data=SILENT_WAV, mime_type="audio/wav")])

    @server.tool(name="test_embedded_resource", description="Returns an embedded text resource.")
    def embedded_resource() -> CallToolResult:
        resource = TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
        return CallToolResult(content=[EmbeddedResource(type="resource", resource=resource)])

    @server.tool(name="test_multiple_content_types", description="Returns text, image and resource blocks.")
    def multiple_content_types() -> CallToolResult:
        resource = TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}),
        )
        return CallToolResult(
            content=[
                TextContent(type="text", text="Multiple content types test:"),
                ImageContent(type="image", data=RED_PIXEL_PNG, mime_type="image/png"),
                EmbeddedResource(type="resource", resource=resource),
            ]
        )

    @server.tool(name="test_tool_with_logging", description="Sends three info log messages while it runs.")
    async def tool_with_logging(ctx: Context) -> CallToolResult:
        sent = 0
        for i, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if i:
                await anyio.sleep(0.05)
            sent += await send_client_log(ctx, levels, "info", message, logger_name="conformance")
        return _text(f"Tool with logging executed successfully ({sent} log messages sent)")

    @server.tool(name="test_tool_with_progress", description="Reports progress 0, 50, 100 of 100.")
    async def tool_with_progress(ctx: Context) -> CallToolResult:
        for i, done in enumerate((0, 50, 100)):
            if i:
                await anyio.sleep(0.05)
            await ctx.report_progress(done, 100, f"Completed step {done} of 100")
        return _text("Tool with progress executed successfully")

    @server.tool(name="test_error_handling", description="Always fails.")
    def error_handling() -> CallToolResult:
        raise ToolError("This tool intentionally returns an error for testing")

    @server.tool(name="test_sampling", description="Asks the client's LLM to answer a prompt.")
    async def sampling(
        prompt: Annotated[str, Field(description="The prompt to send to the LLM")], ctx: Context
    ) -> CallToolResult:
        _require(ctx, ClientCapabilities(sampling=SamplingCapability()), "sampling")
        request = CreateMessageRequest(
            params=CreateMessageRequestParams(
                messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
                max_tokens=100,
            )
        )
        result = await ctx.session.send_request(
            request, CreateMessageResult, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
        )
        answer = result.content.text if isinstance(result.content, TextContent) else "(no text)"
        return _text(f"LLM response: {answer}")

    @server.tool(name="test_elicitation", description="Asks the user for a username and an email.")
    async def elicitation(
        message: Annotated[str, Field(description="The message to show the user")], ctx: Context
    ) -> CallToolResult:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        action, content = await _elicit(ctx, message, schema)
        return _text(f"User response: action={action}, content={json.dumps(content)}")

    @server.tool(
        name="test_elicitation_sep1034_defaults",
        description="Elicits a form whose fields all have defaults (SEP-1034).",
    )
    async def elicitation_defaults(ctx: Context) -> CallToolResult:
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
            "required": [],
        }
        action, content = await _elicit(ctx, "Please provide user information", schema)
        return _text(f"Elicitation completed: action={action}, content={json.dumps(content)}")

    @server.tool(
        name="test_elicitation_sep1330_enums",
        description="Elicits a form with the five enum shapes of SEP-1330.",
    )
    async def elicitation_enums(ctx: Context) -> CallToolResult:
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
            "required": [],
        }
        action, content = await _elicit(ctx, "Please select values using different enum schema types", schema)
        return _text(f"Elicitation completed: action={action}, content={json.dumps(content)}")

    def json_schema_tool(name: str | None = None, address: _Address | None = None) -> CallToolResult:
        return _text(json.dumps({"name": name, "address": address.model_dump() if address else None}))

    server.add_tool(json_schema_tool, name=JSON_SCHEMA_TOOL, description="Tool with JSON Schema 2020-12 features")
    # SEP-1613: the scenario checks that a hand-written 2020-12 input schema is
    # listed verbatim. MCPServer derives every input schema from the function
    # signature and has no public way to declare one, so the fixture sets it on
    # the registered tool (arguments are still validated by the signature).
    registered = server._tool_manager.get_tool(JSON_SCHEMA_TOOL)
    assert registered is not None
    registered.parameters = dict(JSON_SCHEMA_2020_12)


def _register_resources(server: MCPServer[Any]) -> None:
    @server.resource(
        "test://static-text",
        name="static-text",
        description="A static text resource.",
        mime_type="text/plain",
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", name="static-binary", description="A 1x1 PNG.", mime_type="image/png")
    def static_binary() -> bytes:
        return base64.b64decode(RED_PIXEL_PNG)

    @server.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource clients subscribe to.",
        mime_type="text/plain",
    )
    def watched_resource() -> str:
        return "Watched resource content"

    @server.resource(
        "test://template/{id}/data",
        name="template-data",
        description="Data for one id (template).",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


def _register_prompts(server: MCPServer[Any]) -> None:
    @server.prompt(name="test_simple_prompt", description="A simple prompt without arguments.")
    def simple_prompt() -> list[UserMessage]:
        return [UserMessage("This is a simple prompt for testing.")]

    @server.prompt(name="test_prompt_with_arguments", description="A prompt with two required arguments.")
    def prompt_with_arguments(
        arg1: Annotated[str, Field(description="First test argument")],
        arg2: Annotated[str, Field(description="Second test argument")],
    ) -> list[UserMessage]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @server.prompt(
        name="test_prompt_with_embedded_resource",
        description="A prompt that embeds the resource it is given.",
    )
    def prompt_with_embedded_resource(
        resourceUri: Annotated[str, Field(description="URI of the resource to embed")],
    ) -> list[UserMessage]:
        resource = TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(EmbeddedResource(type="resource", resource=resource)),
            UserMessage("Please process the embedded resource above."),
        ]

    @server.prompt(name="test_prompt_with_image", description="A prompt with an image.")
    def prompt_with_image() -> list[UserMessage]:
        return [
            UserMessage(ImageContent(type="image", data=RED_PIXEL_PNG, mime_type="image/png")),
            UserMessage("Please analyze the image above."),
        ]


def _register_completions(server: MCPServer[Any]) -> None:
    completions = features(server).completions

    async def arg1(query: CompletionQuery) -> tuple[str, ...]:
        return ARG1_CANDIDATES

    async def template_id(query: CompletionQuery) -> list[str]:
        return [str(n) for n in range(100, 130)]

    completions.add("ref/prompt", "test_prompt_with_arguments", "arg1", arg1)
    completions.add("ref/resource", "test://template/{id}/data", "id", template_id)
