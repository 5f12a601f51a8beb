"""Tool declarations and the one boundary every MCP tool call passes through.

A tool module declares plain functions with :func:`tool`: its group, whether
it is read-only, and (for list-shaped results) which field
holds the list. The first parameter of every tool function is a
:class:`ToolCall` (runtime, principal, progress, client logging); the rest is
the MCP input schema. The scope a tool needs is its row in the policy table
(:data:`tailops.auth.policy.TOOLS`); a tool without a row cannot be declared.

:func:`bind` turns a spec into the function registered with the SDK. That
wrapper is the single place where, for every call:

1. the principal is resolved and the tool's scope checked *before* the body
   runs (deny by default: a tool without a policy row cannot be declared), then the
   scope its arguments need (``scope_for``, e.g. a playbook's), if declared;
2. blocking bodies run in the bounded worker pool, never on the event loop;
3. list results get field projection, the byte cap with a ``truncated`` marker,
   and the JSON/TOON text choice;
4. :class:`~tailops.errors.TailopsError` becomes an ``isError`` result whose
   text says what to do; any other exception becomes a generic error with an
   incident id (the traceback stays in the server log);
5. metrics and the audit record are written with the real outcome.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from tailops.auth import policy
from tailops.auth.scopes import require_scope
from tailops.errors import InvalidInput, PermissionDenied, RateLimited, TailopsError, is_refusal
from tailops.formats import Format, cap_items, encode_json, project_items, render
from tailops.tools.client_log import send_client_log

if TYPE_CHECKING:
    from tailops.principal import Principal
    from tailops.runtime import Runtime

__all__ = ["ToolCall", "ToolGroup", "ToolSpec", "audit_tool_call", "bind", "tool"]

log = logging.getLogger("tailops.tools")

ToolGroup = Literal["system", "containers", "files", "network", "changes"]

_SPECS: list[ToolSpec] = []


@dataclass(frozen=True)
class ToolSpec:
    name: str
    group: ToolGroup
    scope: str  # from the policy table (tailops.auth.policy.TOOLS) for every declared tool
    fn: Callable[..., Any]
    description: str
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False
    list_field: str | None = None
    projectable: bool = True
    title: str | None = None
    # A second scope that depends on the arguments (e.g. a playbook's manifest scope),
    # checked after the static ``scope`` (the minimum) and before the body.
    scope_for: Callable[[Runtime, dict[str, Any]], str] | None = None
    # For the docs: what is enforced on top (the policy row's ``plus``, e.g. apply_plan's
    # plan scope, checked by the change engine before any work).
    scope_note: str | None = None

    @functools.cached_property
    def hints(self) -> dict[str, Any]:
        """The body's evaluated annotations (evaluating them is most of binding a tool's cost)."""
        return typing.get_type_hints(self.fn, include_extras=True)

    @property
    def output_model(self) -> type[BaseModel]:
        ret = self.hints.get("return")
        if not (inspect.isclass(ret) and issubclass(ret, BaseModel)):
            raise TypeError(f"tool {self.name} must return a pydantic model, not {ret!r}")
        return ret

    @property
    def item_fields(self) -> list[str]:
        """Field names of one list item (for projection), or [] if not list-shaped."""
        if not self.list_field:
            return []
        annotation = self.output_model.model_fields[self.list_field].annotation
        if get_origin(annotation) is list:
            (item,) = get_args(annotation)
            if inspect.isclass(item) and issubclass(item, BaseModel):
                return list(item.model_fields)
        return []


def tool(
    *,
    group: ToolGroup,
    read_only: bool = True,
    destructive: bool = False,
    idempotent: bool = True,
    open_world: bool = False,
    list_field: str | None = None,
    projectable: bool = True,
    name: str | None = None,
    title: str | None = None,
    scope_for: Callable[[Runtime, dict[str, Any]], str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a tool. The docstring's first paragraph is its MCP description; its scope
    is its row in :data:`tailops.auth.policy.TOOLS` (no row: ``ValueError``).

    ``scope_for(rt, arguments)`` names a further scope the call needs when that
    depends on the arguments (blocking is fine: it runs in the worker pool); a
    refusal is audited as denied before the body runs, like the static check.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.cleandoc(fn.__doc__ or "")
        description = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
        if not description:
            raise ValueError(f"tool {fn.__name__} needs a docstring: it is the description agents read")
        tool_name = name or fn.__name__
        row = policy.TOOLS.get(tool_name)
        if row is None or row.scope is None:
            raise ValueError(f"tool {tool_name} has no scope in the policy table: add it to tailops/auth/policy.py")
        spec = ToolSpec(
            name=tool_name,
            group=group,
            scope=row.scope,
            fn=fn,
            description=description,
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent,
            open_world=open_world,
            list_field=list_field,
            projectable=projectable,
            title=title,
            scope_for=scope_for,
            scope_note=row.plus,
        )
        if any(s.name == spec.name for s in _SPECS):
            raise ValueError(f"tool {spec.name} declared twice")
        _SPECS.append(spec)
        return fn

    return decorate


def declared_specs() -> list[ToolSpec]:
    """Every declared tool (importing the tool modules first)."""
    from tailops import tools as _tools

    _tools.load_all()
    return list(_SPECS)


@dataclass
class ToolCall:
    """What a tool body gets besides its arguments."""

    rt: Runtime
    principal: Principal
    spec: ToolSpec
    ctx: Context | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    async def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """MCP progress notification (sent only if the client asked for progress)."""
        if self.ctx is not None:
            await self.ctx.report_progress(done, total, message)

    async def log(self, level: Literal["debug", "info", "warning", "error"], message: str) -> None:
        """A log message to the client (notifications/message), if it wants them."""
        if self.ctx is None or self.rt.client_log_levels is None:
            return
        try:
            await send_client_log(self.ctx, self.rt.client_log_levels, level, message)
        except Exception:  # a client that cannot take logs must not fail the call
            log.debug("client log delivery failed", exc_info=True)

    def note(self, **values: Any) -> None:
        """Attach plan/run ids and similar facts to this call's audit record."""
        self.meta.update(values)


def _format_param() -> inspect.Parameter:
    return inspect.Parameter(
        "format",
        inspect.Parameter.KEYWORD_ONLY,
        default="auto",
        annotation=Annotated[
            Format,
            Field(description="Text encoding: json, toon, or auto (whichever has fewer tokens)."),
        ],
    )


def _fields_param(allowed: list[str]) -> inspect.Parameter:
    return inspect.Parameter(
        "fields",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            list[str] | None,
            Field(description=f"Only these item fields (default all): {', '.join(allowed)}."),
        ],
    )


def _signature(spec: ToolSpec) -> tuple[inspect.Signature, dict[str, Any]]:
    hints = spec.hints
    sig = inspect.signature(spec.fn)
    params = list(sig.parameters.values())[1:]  # drop the ToolCall
    out: list[inspect.Parameter] = []
    for p in params:
        out.append(p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY))
    names = {p.name for p in out}
    if spec.list_field and "format" not in names:
        out.append(_format_param())
    if spec.list_field and spec.projectable and "fields" not in names and spec.item_fields:
        out.append(_fields_param(spec.item_fields))
    out.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    ret = hints["return"]
    annotations = {p.name: p.annotation for p in out}
    annotations["return"] = ret
    return inspect.Signature(out, return_annotation=ret), annotations


def _error_result(exc: TailopsError) -> CallToolResult:
    text = f"{exc.code}: {exc.public_message()}"
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def bind(spec: ToolSpec, rt: Runtime) -> Callable[..., Awaitable[CallToolResult]]:
    """The SDK-facing function for ``spec`` (see the module docstring)."""
    signature, annotations = _signature(spec)
    body_params = set(inspect.signature(spec.fn).parameters)
    is_async = inspect.iscoroutinefunction(spec.fn)
    item_fields = spec.item_fields
    max_bytes = rt.config.server.max_output_bytes

    async def call(**kwargs: Any) -> CallToolResult:
        ctx: Context | None = kwargs.pop("ctx", None)
        fmt: Format = kwargs.pop("format", "auto") if "format" not in body_params else kwargs.get("format", "auto")
        fields: list[str] | None = kwargs.pop("fields", None) if "fields" not in body_params else None
        started = time.perf_counter()
        principal = rt.principals.resolve(ctx)
        tc = ToolCall(rt=rt, principal=principal, spec=spec, ctx=ctx)
        # Pessimistic until the body returned: a cancelled call is not an "ok".
        outcome = "error"
        error_text: str | None = "the call was cancelled before it finished"
        decision = "allowed"
        reason: str | None = None
        rt.metrics.in_flight.labels(spec.name).inc()
        try:
            try:
                require_scope(principal, spec.scope, f"tool {spec.name}")
                rt.rate_limiter.check_call(principal)
                if spec.scope_for is not None:
                    needed = await rt.run_blocking(spec.scope_for, rt, dict(kwargs))
                    require_scope(principal, needed, f"tool {spec.name} with these arguments")
            except (PermissionDenied, RateLimited) as exc:
                decision, reason = "denied", exc.message
                raise
            if not spec.read_only:
                # No start record, no call: a mutating call never runs unaudited.
                await audit_tool_call(
                    rt,
                    spec=spec,
                    principal=principal,
                    arguments=kwargs,
                    decision=decision,
                    reason=None,
                    outcome="started",
                    error=None,
                    duration=0.0,
                    meta=tc.meta,
                    phase="start",
                )
            # Rendering (projection, caps, token counting for format=auto) costs real
            # CPU on big lists, so it runs in the worker pool too, never on the loop.
            if is_async:
                model = await spec.fn(tc, **kwargs)
                if spec.list_field:
                    result = await rt.run_blocking(_success, spec, model, fmt, fields, item_fields, max_bytes)
                else:
                    result = _success(spec, model, fmt, fields, item_fields, max_bytes)
            else:

                def body() -> CallToolResult:
                    return _success(spec, spec.fn(tc, **kwargs), fmt, fields, item_fields, max_bytes)

                result = await rt.run_blocking(body)
            outcome, error_text = "ok", None
            return result
        except TailopsError as exc:
            if is_refusal(exc):
                # Refused by a rule, before or inside the body (e.g. approving one's own plan).
                decision, reason = "denied", exc.message
            outcome = "denied" if decision == "denied" else "error"
            error_text = exc.public_message()
            return _error_result(exc)
        except Exception:
            incident = uuid.uuid4().hex[:12]
            outcome = "error"
            error_text = f"internal error (incident {incident})"
            log.exception("tool crashed", extra={"tool": spec.name, "incident": incident})
            return CallToolResult(
                content=[
                    TextContent(
                        type="text",
                        text=f"internal_error: {spec.name} failed unexpectedly (incident {incident}); "
                        "the server log has details. The server is still running.",
                    )
                ],
                is_error=True,
            )
        finally:
            elapsed = time.perf_counter() - started
            rt.metrics.in_flight.labels(spec.name).dec()
            rt.metrics.observe_call(spec.name, outcome, elapsed)
            # Shielded: a cancelled call still gets its (true) record.
            with anyio.CancelScope(shield=True):
                try:
                    await audit_tool_call(
                        rt,
                        spec=spec,
                        principal=principal,
                        arguments=kwargs,
                        decision=decision,
                        reason=reason,
                        outcome=outcome,
                        error=error_text,
                        duration=elapsed,
                        meta=tc.meta,
                    )
                except TailopsError:
                    log.exception("audit write failed", extra={"tool": spec.name, "outcome": outcome})

    call.__name__ = spec.name
    call.__qualname__ = spec.name
    call.__doc__ = spec.description
    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__annotations__ = annotations
    return call


def _success(
    spec: ToolSpec,
    model: BaseModel,
    fmt: Format,
    fields: list[str] | None,
    item_fields: list[str],
    max_bytes: int,
) -> CallToolResult:
    data = model.model_dump(mode="json", by_alias=True)
    if spec.list_field:
        items: list[dict[str, Any]] = data.get(spec.list_field) or []
        if fields:
            items = project_items(items, fields, item_fields)
        items, cut = cap_items(items, max_bytes)
        data[spec.list_field] = items
        if cut:
            data["truncated"] = True
            data["truncation"] = (
                f"output cap of {max_bytes} bytes reached: {len(items)} item(s) shown; "
                "narrow the query (limit, fields, filters) to see the rest"
            )
        # The text omits "nothing was cut" markers: they cost tokens and say nothing.
        shown = {k: v for k, v in data.items() if not (k in ("truncated", "truncation") and not v)}
        text, _chosen = render(shown, fmt)
    else:
        text = encode_json(data)
        if len(text.encode()) > max_bytes:
            raise InvalidInput(
                f"{spec.name} produced more than {max_bytes} bytes; narrow the request.",
            )
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


async def audit_tool_call(
    rt: Runtime,
    *,
    spec: ToolSpec,
    principal: Principal,
    arguments: dict[str, Any],
    decision: str,
    reason: str | None,
    outcome: str,
    error: str | None,
    duration: float,
    meta: dict[str, Any],
    phase: str = "end",
) -> None:
    """Write one tool-call record; raise AuditError if it cannot be written.

    Denied and mutating (non-read-only) calls are fsynced, off the event
    loop; the rest are plain appends. ``phase="start"`` is the record a
    mutating call writes before its body runs (no start record, no call).
    """
    entry: dict[str, Any] = {
        "kind": "tool",
        "tool": spec.name,
        "phase": phase,
        "principal": principal.audit_view(),
        "args": arguments,
        "decision": decision,
        "reason": reason,
        "outcome": outcome,
        "error": error,
        "ms": round(duration * 1000, 3),
    }
    if meta:
        entry.update(meta)
    if decision == "denied" or not spec.read_only:
        await anyio.to_thread.run_sync(functools.partial(rt.audit.record, entry, sync=True))
    else:
        rt.audit.record(entry)


def annotations_for(spec: ToolSpec) -> ToolAnnotations:
    return ToolAnnotations(
        title=spec.title,
        read_only_hint=spec.read_only,
        destructive_hint=spec.destructive if not spec.read_only else False,
        idempotent_hint=spec.idempotent,
        open_world_hint=spec.open_world,
    )
