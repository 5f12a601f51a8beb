"""MCP tools, one module per group. Each module declares its tools with
:func:`tailops.tools.registry.tool` (the scope each needs is its row in
:mod:`tailops.auth.policy`); :func:`load_all` imports every module so the
declarations run. Tool modules are thin: argument checks and a call into
``monitor/``, ``files``, ``netdiag/`` or ``changes/``. The MCP resources live
beside them, in :mod:`tailops.tools.resources`."""

from __future__ import annotations

import functools
import importlib
import pkgutil

__all__ = ["load_all"]


@functools.cache
def load_all() -> None:
    """Import every tool module once (their ``@tool`` declarations register them)."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "registry" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
