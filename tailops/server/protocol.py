"""MCP protocol features the SDK leaves to the server; transport only.

Why it exists: :func:`tailops.server.mcp_server.build_mcp` binds the tools; this
module adds, in one call (:func:`install`), what a client needs around them:

- ``logging/setLevel``. The level is kept per *connection*: the SDK hands every
  request a fresh ``ServerSession`` proxy, so a level keyed by that proxy would
  be forgotten as soon as the request ends. :func:`send_client_log` is the one
  way tailops sends ``notifications/message`` (long runs report as they go).
- ``completion/complete``. A registry of completers keyed by (reference type,
  prompt name or URI template, argument name). The product completes playbook
  and container names; a test's ``extra`` hook adds its own through
  :func:`features` without touching the product's.
- Resources: every resource declared beside the tools
  (:mod:`tailops.tools.resources`: ``tailops://playbooks/{name}``,
  ``tailops://containers/{name}``), bound through their boundary
  (:func:`~tailops.tools.resources.registry.bind_read`), with their completers and
  watchers. This module knows no catalog and no Docker engine.
- ``resources/subscribe`` / ``unsubscribe``: a client that subscribed to a
  container resource gets ``notifications/resources/updated`` when the Docker
  engine reports a state change of that container (start, stop, die, health…),
  so an agent waiting for a restart need not poll. Subscribing reads the
  resource once: unknown URIs and callers who may not read it are refused.
- ``subscriptions/listen`` (2026-07-28, where ``resources/subscribe`` no longer
  exists): the same container updates as ``ResourceUpdated`` events on the listen
  stream, through the SDK's own listen handler. Opening a stream needs the
  ``readonly`` scope and reads each requested resource once, exactly like
  subscribing; the container event thread watches a URI while any stream or
  subscription wants it (each resource's watcher is told what is watched).

What it must never do: hand out anything the policy table
(:mod:`tailops.auth.policy`) does not allow (every resource read, completion and
listen stream is authorized like a tool call, and reads are audited), show
environment values or files outside the catalog, block the event loop, import
``monitor/`` or ``changes/`` (the import-boundary test says so: what reads facts or
the catalog lives beside the tools), or import test code (test fixtures reach these
registries through ``build_mcp(extra=...)``).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.subscriptions import ListenHandler, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from tailops.errors import InvalidInput, RateLimited, TailopsError, Unavailable, jsonrpc_code
from tailops.tools.client_log import (
    DEFAULT_CLIENT_LOG_LEVEL,
    LOG_LEVELS,
    ClientLogLevels,
    send_client_log,
)
from tailops.tools.client_log import (
    connection_key as _connection_key,
)
from tailops.tools.resources.registry import Watcher, authorize, bind_completer, bind_read, declared_resources

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from tailops.runtime import Runtime

__all__ = [
    "DEFAULT_CLIENT_LOG_LEVEL",
    "LOG_LEVELS",
    "MAX_COMPLETIONS",
    "ClientLogLevels",
    "CompletionQuery",
    "Completions",
    "ProtocolFeatures",
    "Subscriptions",
    "features",
    "install",
    "send_client_log",
]

log = logging.getLogger("tailops.server.protocol")

MAX_COMPLETIONS: Final = 100  # the most values one completion result may carry (spec)


# =============================================================== completion

RefType = Literal["ref/prompt", "ref/resource"]


@dataclass(frozen=True)
class CompletionQuery:
    """What a completer is asked: the partial ``value`` of one argument."""

    value: str
    arguments: Mapping[str, str]  # other arguments the client already resolved
    ctx: Context


Completer = Callable[[CompletionQuery], Awaitable[Iterable[str]]]


class Completions:
    """Completers keyed by (ref type, prompt name or URI template, argument).

    A completer returns every candidate; :meth:`complete` keeps those starting
    with the typed value (case-insensitive), sorts them and caps the answer at
    :data:`MAX_COMPLETIONS` with ``total``/``hasMore`` telling the rest. An
    argument without a completer completes to nothing.
    """

    def __init__(self) -> None:
        self._completers: dict[tuple[RefType, str, str], Completer] = {}

    def add(self, ref_type: RefType, name: str, argument: str, completer: Completer) -> None:
        key = (ref_type, name, argument)
        if key in self._completers:
            raise ValueError(f"a completer for {key} is already registered")
        self._completers[key] = completer

    def keys(self) -> list[tuple[RefType, str, str]]:
        return sorted(self._completers)

    async def complete(
        self,
        ref: PromptReference | ResourceTemplateReference,
        argument: str,
        value: str,
        arguments: Mapping[str, str],
        ctx: Context,
    ) -> Completion:
        name = ref.name if isinstance(ref, PromptReference) else ref.uri
        completer = self._completers.get((ref.type, name, argument))
        if completer is None:
            return Completion(values=[], total=0, has_more=False)
        candidates = await completer(CompletionQuery(value=value, arguments=arguments, ctx=ctx))
        wanted = value.casefold()
        matches = sorted({c for c in candidates if c.casefold().startswith(wanted)})
        return Completion(values=matches[:MAX_COMPLETIONS], total=len(matches), has_more=len(matches) > MAX_COMPLETIONS)


# ============================================================ subscriptions


@dataclass
class _Subscriber:
    key: Any  # the connection key (kept alive while subscribed)
    session: Any  # a session proxy of that connection: its notifications go on the connection's stream
    uris: set[str] = field(default_factory=set)


class Subscriptions:
    """Which connection subscribed to which resource URI (2025-era ``resources/subscribe``).

    Bounded: at most ``max_connections`` subscribing connections (the one idle
    longest is dropped first) and ``max_uris`` URIs each. A connection that
    goes away without unsubscribing keeps its entry until it is evicted;
    notifications to it are dropped by the SDK.
    """

    def __init__(self, *, max_connections: int = 256, max_uris: int = 64) -> None:
        self.max_connections = max_connections
        self.max_uris = max_uris
        self._subs: OrderedDict[int, _Subscriber] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, session: Any, uri: str) -> None:
        key = _connection_key(session)
        if key is None:
            raise InvalidInput("resources/subscribe needs an initialized connection (client info missing).")
        with self._lock:
            sub = self._subs.pop(id(key), None) or _Subscriber(key=key, session=session)
            if uri not in sub.uris and len(sub.uris) >= self.max_uris:
                self._subs[id(key)] = sub
                raise InvalidInput(
                    f"this connection already has {self.max_uris} resource subscriptions.",
                    hint="Unsubscribe from resources you no longer watch.",
                )
            sub.session = session
            sub.uris.add(uri)
            self._subs[id(key)] = sub
            while len(self._subs) > self.max_connections:
                self._subs.popitem(last=False)

    def remove(self, session: Any, uri: str) -> bool:
        key = _connection_key(session)
        with self._lock:
            sub = self._subs.get(id(key)) if key is not None else None
            if sub is None or uri not in sub.uris:
                return False
            sub.uris.discard(uri)
            if not sub.uris:
                del self._subs[id(key)]
            return True

    def sessions_for(self, uri: str) -> list[Any]:
        with self._lock:
            return [s.session for s in self._subs.values() if uri in s.uris]

    def uris(self) -> set[str]:
        with self._lock:
            return {u for s in self._subs.values() for u in s.uris}


class Listens:
    """Resource URIs wanted by open ``subscriptions/listen`` streams (a multiset: two
    streams on one URI keep it watched until both end). Bounded like subscriptions: per
    stream (URIs), per caller (so one token cannot take every slot) and per server."""

    def __init__(self, *, max_streams: int = 256, max_per_caller: int = 16, max_uris: int = 64) -> None:
        self.max_streams = max_streams
        self.max_per_caller = max_per_caller
        self.max_uris = max_uris
        self._streams: Counter[str] = Counter()
        self._callers: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, caller: str, uris: Iterable[str]) -> None:
        wanted = set(uris)
        if len(wanted) > self.max_uris:
            raise InvalidInput(f"one listen stream may watch at most {self.max_uris} resources.")
        with self._lock:
            if self._callers[caller] >= self.max_per_caller:
                raise RateLimited(
                    f"{caller} already has {self.max_per_caller} listen streams open.",
                    retry_after=1.0,
                    hint="One stream can watch many resources; close the streams you no longer read.",
                )
            if self._callers.total() >= self.max_streams:
                raise Unavailable(
                    f"{self.max_streams} listen streams are already open on this server.",
                    hint="Close a stream you no longer read, or retry later.",
                )
            self._callers[caller] += 1
            self._streams.update(wanted)

    def remove(self, caller: str, uris: Iterable[str]) -> None:
        with self._lock:
            self._callers[caller] -= 1
            self._streams.subtract(set(uris))
            # Drop what no stream wants any more (Counter's unary + keeps positive counts).
            self._callers = +self._callers
            self._streams = +self._streams

    def uris(self) -> set[str]:
        with self._lock:
            return set(self._streams)


# =================================================================== glue


@dataclass
class ProtocolFeatures:
    """The protocol state of one MCP server instance (see :func:`features`)."""

    log_levels: ClientLogLevels
    completions: Completions
    subscriptions: Subscriptions
    listens: Listens = field(default_factory=Listens)
    _watchers: list[Watcher] = field(default_factory=list)

    def watched(self) -> set[str]:
        """Every resource URI a client currently wants updates for (either protocol era)."""
        return self.subscriptions.uris() | self.listens.uris()

    def close(self) -> None:
        """Stop every watcher (server shutdown): subscriptions get no more updates."""
        for watcher in self._watchers:
            watcher.watch(())

    def rewatch(self) -> None:
        """Tell every watcher what is watched now (after a subscription or stream came or went)."""
        watched = self.watched()
        for watcher in self._watchers:
            watcher.watch(watched)


_INSTALLED: weakref.WeakKeyDictionary[MCPServer[Any], ProtocolFeatures] = weakref.WeakKeyDictionary()


def features(server: MCPServer[Any]) -> ProtocolFeatures:
    """The registries :func:`install` put on ``server`` (tests add completers here)."""
    try:
        return _INSTALLED[server]
    except KeyError:
        raise ValueError("tailops protocol features are not installed on this server") from None


def _mcp_error(exc: TailopsError, **data: Any) -> MCPError:
    """The JSON-RPC error for a tailops error raised in a protocol handler (tailops.errors.JSONRPC_CODE)."""
    return MCPError(code=jsonrpc_code(exc), message=f"{exc.code}: {exc.public_message()}", data=data or None)


def _add_resources(server: MCPServer[Any], rt: Runtime, feats: ProtocolFeatures) -> None:
    """Bind every resource declared beside the tools, with its completer."""
    for spec in declared_resources():
        server.resource(
            spec.template,
            name=spec.name,
            title=spec.title,
            description=spec.description,
            mime_type=spec.mime_type,
        )(bind_read(spec, rt))
        complete = bind_completer(spec, rt)
        if complete is not None:
            feats.completions.add("ref/resource", spec.template, "name", _completer(complete))


def _completer(complete: Callable[[Context], Awaitable[list[str]]]) -> Completer:
    async def completer(query: CompletionQuery) -> list[str]:
        return await complete(query.ctx)

    return completer


# ------------------------------------------------------------------ handlers


def install(server: MCPServer[Any], rt: Runtime, bus: SubscriptionBus) -> ProtocolFeatures:
    """Add logging/setLevel, completion/complete, resources (+ subscribe, listen) to ``server``.

    ``bus`` is the subscription bus ``server`` was built with (``MCPServer(subscriptions=…)``):
    container updates are published there for listen streams."""
    feats = ProtocolFeatures(log_levels=ClientLogLevels(), completions=Completions(), subscriptions=Subscriptions())
    _INSTALLED[server] = feats
    rt.client_log_levels = feats.log_levels
    _add_resources(server, rt, feats)

    async def notify_updated(uri: str) -> None:
        for session in feats.subscriptions.sessions_for(uri):
            try:
                await session.send_resource_updated(uri)
            except Exception:  # one gone client must not stop the others' updates
                log.debug("resource update not delivered", exc_info=True, extra={"uri": uri})
        await bus.publish(ResourceUpdated(uri=uri))

    feats._watchers = [spec.watcher(rt, notify_updated) for spec in declared_resources() if spec.watcher]

    async def set_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        try:
            feats.log_levels.set(ctx.session, params.level)
        except TailopsError as exc:
            raise _mcp_error(exc) from exc
        log.debug("client log level set", extra={"level": params.level})
        return EmptyResult()

    async def complete(ctx: ServerRequestContext[Any], params: CompleteRequestParams) -> CompleteResult:
        context = Context(request_context=ctx, mcp_server=server)
        resolved = params.context.arguments if params.context and params.context.arguments else {}
        try:
            completion = await feats.completions.complete(
                params.ref, params.argument.name, params.argument.value, resolved, context
            )
        except TailopsError as exc:
            raise _mcp_error(exc) from exc
        return CompleteResult(completion=completion)

    async def subscribe(ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        try:
            # The resource must exist and the caller must be allowed to read it.
            await server.read_resource(uri, Context(request_context=ctx, mcp_server=server))
        except ResourceError as exc:
            code = INVALID_PARAMS if isinstance(exc, ResourceNotFoundError) else INTERNAL_ERROR
            raise MCPError(code=code, message=str(exc), data={"uri": uri}) from exc
        try:
            feats.subscriptions.add(ctx.session, uri)
        except TailopsError as exc:
            raise _mcp_error(exc, uri=uri) from exc
        feats.rewatch()
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        feats.subscriptions.remove(ctx.session, str(params.uri))
        feats.rewatch()
        return EmptyResult()

    streams = ListenHandler(bus, max_subscriptions=feats.listens.max_streams)

    async def listen(
        ctx: ServerRequestContext[Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        context = Context(request_context=ctx, mcp_server=server)
        uris = sorted({str(u) for u in params.notifications.resource_subscriptions or ()})
        try:
            principal = await authorize(rt, context, "protocol", "subscriptions/listen", "subscriptions/listen")
        except TailopsError as exc:
            raise _mcp_error(exc) from exc
        caller = principal.subject
        for uri in uris:
            try:
                # As for resources/subscribe: the resource must exist and the caller may read it.
                await server.read_resource(uri, context)
            except ResourceError as exc:
                code = INVALID_PARAMS if isinstance(exc, ResourceNotFoundError) else INTERNAL_ERROR
                raise MCPError(code=code, message=str(exc), data={"uri": uri}) from exc
        try:
            feats.listens.add(caller, uris)
        except TailopsError as exc:
            raise _mcp_error(exc) from exc
        feats.rewatch()
        try:
            return await streams(ctx, params)
        finally:  # the stream ended: closed, dropped (cancelled) or failed
            feats.listens.remove(caller, uris)
            feats.rewatch()

    # MCPServer has no public hook for these methods; the low-level server's
    # add_request_handler is the SDK's own registration path (it also derives
    # the advertised capabilities from what is registered).
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("completion/complete", CompleteRequestParams, complete)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    # Replaces the SDK's unguarded default listen handler (it serves any caller).
    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listen)
    return feats
