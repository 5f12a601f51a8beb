"""Reuse tools' JSON schemas across server starts.

Registering a tool with the SDK (``Tool.from_function``) builds its argument model
and generates two JSON schemas with pydantic: the input schema and the output
schema. The generation is pure Python and, for our ~40 tools, the biggest part of
start-up after importing the SDK itself (~0.2 s of a stdio client's wait, every
time Claude Desktop or an agent starts the server). The schemas are a function of
the code alone, so they are cached in the data dir under a key made of the source
of the ``tailops`` package and the versions of Python, the SDK and pydantic: any
edit or upgrade makes a new key, and the schemas are generated again.

What the cache holds is only what the server *advertises*: the argument model that
validates every call and the output model that checks every result are still built
from the code at each start, so a damaged or edited cache file can misstate a
schema to clients but never let an argument or a result through unchecked. A file
that cannot be read or parsed is ignored (and replaced); one that cannot be written
costs only the next start's time.

``Tool`` objects made from cached schemas are checked field by field against
``Tool.from_function`` in the unit tests, so an SDK change that adds a field or
changes how a tool is derived fails there, not in production.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata, func_metadata
from mcp.types import ToolAnnotations

__all__ = ["SchemaCache", "cache_key"]

log = logging.getLogger("tailops.server")

_FORMAT = 1
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_CONTEXT_KWARG = "ctx"  # the bound tool functions' Context parameter (tools.registry)


def cache_key(package_root: Path = _PACKAGE_ROOT) -> str:
    """SHA-256 over the package's Python source and the versions schemas depend on."""
    h = hashlib.sha256()
    h.update(f"format={_FORMAT};python={sys.version}".encode())
    for dist in ("mcp", "pydantic", "pydantic-core"):
        h.update(f";{dist}={metadata.version(dist)}".encode())
    for path in sorted(package_root.rglob("*.py")):
        h.update(b"\0" + str(path.relative_to(package_root)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


class SchemaCache:
    """The tools' cached ``{"parameters", "output_schema"}`` by tool name, for one key."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        self.hits = 0

    @classmethod
    def load(cls, path: Path, key: str | None = None) -> SchemaCache:
        cache = cls(path, key or cache_key())
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cache
        except (OSError, ValueError) as exc:
            log.warning("tool schema cache unreadable; regenerating", extra={"path": str(path), "error": str(exc)})
            return cache
        if isinstance(data, dict) and data.get("key") == cache.key and isinstance(data.get("tools"), dict):
            cache.entries = {
                name: entry
                for name, entry in data["tools"].items()
                if isinstance(entry, dict)
                and isinstance(entry.get("parameters"), dict)
                and isinstance(entry.get("output_schema"), dict | None)
            }
        return cache

    def tool(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        title: str | None,
        description: str,
        annotations: ToolAnnotations | None,
        meta: dict[str, Any] | None,
        output_model: type[Any],
    ) -> Tool:
        """The SDK ``Tool`` for ``fn``; its schemas from the cache when present."""
        entry = self.entries.get(name)
        if entry is None:
            tool = Tool.from_function(
                fn, name=name, title=title, description=description, annotations=annotations, meta=meta
            )
            self.entries[name] = {"parameters": tool.parameters, "output_schema": tool.fn_metadata.output_schema}
            self.dirty = True
            return tool
        self.hits += 1
        args = func_metadata(fn, skip_names=[_CONTEXT_KWARG], structured_output=False)
        return Tool(
            fn=fn,
            name=name,
            title=title,
            description=description,
            parameters=entry["parameters"],
            fn_metadata=FuncMetadata(
                arg_model=args.arg_model,
                output_schema=entry["output_schema"],
                output_model=output_model,
                wrap_output=False,
            ),
            is_async=True,
            context_kwarg=_CONTEXT_KWARG,
            annotations=annotations,
            meta=meta,
        )

    def save(self) -> None:
        """Write the entries (atomically) if any were generated; never fails the start."""
        if not self.dirty:
            return
        tmp: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tool-schemas.")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"key": self.key, "tools": self.entries}, out, separators=(",", ":"))
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError as exc:
            log.warning("tool schema cache not written", extra={"path": str(self.path), "error": str(exc)})
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
