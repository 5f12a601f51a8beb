"""The import graph of tailops/ has no cycle — between modules, or between rooms.

Every ``import`` counts, including the ones under ``if TYPE_CHECKING:`` and inside
functions (``from pkg import mod`` counts as a dependency on ``pkg.mod``): a type-only
or lazy import is still a dependency a reader must follow. A
"room" is a top-level package or module (``tailops.changes``, ``tailops.runtime``…).
A cycle between rooms means two floors lean on each other; the test names the edges
that close it, so the next person sees what to move.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO_ROOT

PKG = REPO_ROOT / "tailops"


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PKG.rglob("*.py"):
        if "ansible_plugins" in path.parts:  # loaded by Ansible, not imported by tailops
            continue
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # ``from pkg import mod`` depends on pkg.mod (pkg/__init__ runs first, as for any
                # submodule, but that is not a dependency on what pkg/__init__ itself imports).
                names = [f"{module}.{a.name}" for a in node.names]
                targets = [n for n in names if n in modules] or [module]
            for target in targets:
                if target == "tailops" or target.startswith("tailops."):
                    found = resolve(target)
                    if found and found != name:
                        edges[name].add(found)
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_module_imports_itself_back() -> None:
    cycles = _cycles(_graph())
    assert cycles == [], f"import cycles between modules: {cycles}"


def test_no_two_rooms_lean_on_each_other() -> None:
    edges = _graph()
    rooms: dict[str, set[str]] = {}
    for module, targets in edges.items():
        for target in targets:
            if _room(module) != _room(target):
                rooms.setdefault(_room(module), set()).add(_room(target))
    cycles = _cycles(rooms)
    detail = [
        (m, t)
        for cycle in cycles
        for m, ts in edges.items()
        for t in ts
        if _room(m) in cycle and _room(t) in cycle and _room(m) != _room(t)
    ]
    assert cycles == [], f"cycles between rooms {cycles}; edges: {detail}"


def test_the_graph_is_read_at_all() -> None:
    edges = _graph()
    assert "tailops.changes.engine" in edges["tailops.runtime"]
    assert "tailops.auth.scopes" in edges["tailops.tools.registry"]
