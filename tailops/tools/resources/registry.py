"""Resource declarations and the one boundary every resource read, completion and watch passes.

A resource module declares a blocking ``read(rt, name) -> dict`` with :func:`resource`: its
URI template (one ``{name}`` parameter), what it is, how to complete its names, and (optional)
how to watch it for updates. The server binds each :class:`ResourceSpec` with
:func:`bind_read` and :func:`bind_completer`; those wrappers are the single place where, for
every read and completion:

1. the caller is resolved and authorized (:func:`authorize`: the scope of the action's row
   in the policy table, :mod:`tailops.auth.policy`, then the rate limit); a refusal is
   audited (fsynced) before the client hears of it;
2. the blocking body runs in the bounded worker pool, never on the event loop;
3. :class:`~tailops.errors.TailopsError` becomes the SDK's resource error (``NotFound`` →
   resource-not-found), and the read is audited with its true outcome.

What it must never do: hand out anything the policy table does not allow, or import the
transport (``server/``): the server imports this, never the other way round.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from tailops.auth import policy
from tailops.errors import NotFound, PermissionDenied, RateLimited, TailopsError

if TYPE_CHECKING:
    from tailops.principal import Principal
    from tailops.runtime import Runtime

__all__ = [
    "Notify",
    "ResourceSpec",
    "Watcher",
    "authorize",
    "bind_completer",
    "bind_read",
    "declared_resources",
    "resource",
]

log = logging.getLogger("tailops.tools.resources")

# Tell the clients that want it that the resource at this URI changed (runs on the event loop).
Notify = Callable[[str], Coroutine[Any, Any, None]]


class Watcher(Protocol):
    """Follows what can change the resources of one template, and calls ``notify(uri)``."""

    def watch(self, uris: Iterable[str]) -> None:
        """Watch exactly the URIs of ``uris`` that are this watcher's (call on the event loop)."""


@dataclass(frozen=True)
class ResourceSpec:
    template: str  # e.g. tailops://containers/{name}
    name: str
    title: str
    description: str
    read: Callable[[Runtime, str], Mapping[str, Any]]  # blocking; runs in the worker pool
    mime_type: str = "application/json"
    # Every candidate value of {name} (blocking), for completion/complete; None: no completion.
    names: Callable[[Runtime], list[str]] | None = None
    # Builds the watcher that turns engine events into update notifications; None: never updates.
    watcher: Callable[[Runtime, Notify], Watcher] | None = None

    @property
    def prefix(self) -> str:
        """The URI before ``{name}``: ``prefix + name`` is the URI of one resource."""
        return self.template.removesuffix("{name}")


_SPECS: list[ResourceSpec] = []


def resource(
    template: str,
    *,
    name: str,
    title: str,
    description: str,
    mime_type: str = "application/json",
    names: Callable[[Runtime], list[str]] | None = None,
    watcher: Callable[[Runtime, Notify], Watcher] | None = None,
) -> Callable[[Callable[[Runtime, str], Mapping[str, Any]]], Callable[[Runtime, str], Mapping[str, Any]]]:
    """Declare a resource whose ``read(rt, name)`` returns its JSON body."""
    if not template.endswith("{name}") or template.count("{") != 1:
        raise ValueError(f"resource template {template!r} must end in its one parameter, {{name}}")
    if template not in policy.RESOURCES:
        raise ValueError(f"resource {template} has no row in the policy table: add it to tailops/auth/policy.py")

    def decorate(fn: Callable[[Runtime, str], Mapping[str, Any]]) -> Callable[[Runtime, str], Mapping[str, Any]]:
        spec = ResourceSpec(
            template=template,
            name=name,
            title=title,
            description=description,
            read=fn,
            mime_type=mime_type,
            names=names,
            watcher=watcher,
        )
        if any(s.template == template for s in _SPECS):
            raise ValueError(f"resource {template} declared twice")
        _SPECS.append(spec)
        return fn

    return decorate


def declared_resources() -> list[ResourceSpec]:
    """Every declared resource (importing the resource modules first)."""
    from tailops.tools import resources as _resources

    _resources.load_all()
    return list(_SPECS)


async def authorize(rt: Runtime, ctx: Context | None, surface: policy.Surface, action: str, what: str) -> Principal:
    """The caller of ``ctx``, if the policy table lets it take ``action`` and it is within its
    rate limit; a refusal is audited (fsynced) before it is raised."""
    principal = rt.principals.resolve(ctx)
    try:
        policy.require(principal, surface, action, what)
        rt.rate_limiter.check_call(principal)
    except (PermissionDenied, RateLimited) as exc:
        entry = {
            "kind": "protocol",
            "what": what,
            "principal": principal.audit_view(),
            "decision": "denied",
            "reason": exc.message,
        }
        await rt.run_blocking(rt.audit.record, entry, sync=True)
        raise
    return principal


async def _read_json(rt: Runtime, ctx: Context, template: str, uri: str, read: Callable[[], Mapping[str, Any]]) -> str:
    """One authorized, audited resource read; tailops errors become SDK resource errors."""
    started = time.perf_counter()
    try:
        principal = await authorize(rt, ctx, "resource", template, f"resource {uri}")
    except TailopsError as exc:
        raise ResourceError(f"{exc.code}: {exc.public_message()}") from exc
    # Pessimistic until the read returned: a crash or a cancellation is not an "ok".
    outcome: str = "error"
    error: str | None = "the read did not finish"
    try:
        data = await rt.run_blocking(read)
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
        outcome, error = "ok", None
        return text
    except NotFound as exc:
        outcome, error = "error", exc.public_message()
        raise ResourceNotFoundError(f"{exc.code}: {exc.public_message()}") from exc
    except TailopsError as exc:
        outcome, error = "error", exc.public_message()
        raise ResourceError(f"{exc.code}: {exc.public_message()}") from exc
    finally:
        entry = {
            "kind": "resource",
            "uri": uri,
            "principal": principal.audit_view(),
            "decision": "allowed",
            "outcome": outcome,
            "error": error,
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }
        try:
            rt.audit.record(entry)
        except TailopsError:
            log.exception("audit write failed", extra={"uri": uri})


def bind_read(spec: ResourceSpec, rt: Runtime) -> Callable[[str, Context], Coroutine[Any, Any, str]]:
    """The SDK-facing read function of ``spec`` (``name`` is the template's parameter)."""

    async def read(name: str, ctx: Context) -> str:
        return await _read_json(rt, ctx, spec.template, spec.prefix + name, lambda: spec.read(rt, name))

    read.__name__ = f"read_{spec.name}"
    return read


def bind_completer(spec: ResourceSpec, rt: Runtime) -> Callable[[Context], Coroutine[Any, Any, list[str]]] | None:
    """Every candidate ``{name}`` of ``spec`` for an authorized caller, or None if it has no completion."""
    names = spec.names
    if names is None:
        return None

    async def complete(ctx: Context) -> list[str]:
        await authorize(rt, ctx, "resource", spec.template, f"completion of {spec.name} names")
        return await rt.run_blocking(names, rt)

    return complete
