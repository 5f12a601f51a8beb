"""MCP resources, beside the tools: declared with :func:`~tailops.tools.resources.registry.resource`
in one module per kind (``playbooks``, ``containers``), bound by the server like tools are.

Why here and not in ``server/``: a resource reads the catalog or the Docker engine, and the
server package is transport only (it must not import ``monitor/`` or ``changes/``; the
import-boundary test says so). :func:`load_all` imports every resource module so their
declarations run; the server binds :func:`~tailops.tools.resources.registry.declared_resources`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

__all__ = ["load_all"]


@functools.cache
def load_all() -> None:
    """Import every resource module once (their ``@resource`` declarations register them)."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "registry" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
