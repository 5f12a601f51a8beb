"""Architecture rules from STYLE.md, checked on the source:

- the read path (monitor/, files, netdiag/) imports neither the change engine
  nor ansible_runner;
- exactly one module (tailops/changes/ansible/invoke.py, in the Ansible adapter room)
  imports ansible_runner;
- monitor/ (the facts) imports nothing above it (server, runtime, tools, cli);
- only monitor/containers/ (the Docker access package) imports the Docker SDK;
- server/ is transport only: it imports neither monitor/ (facts) nor changes/ (the
  change engine); resources that read them are declared beside the tools;
- runtime.py (one server's parts) reaches the change engine only through its services
  (changes/engine.py, changes/drift.py), never the runner, catalog or plan records,
  and imports no surface (server, tools, web, cli) that is built on it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT

PKG = REPO_ROOT / "tailops"
READ_PATH = ["monitor", "files", "files.py", "netdiag"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def importers_of(top: str) -> list[str]:
    """Modules of the package (paths under tailops/) that import ``top`` or anything under it."""
    return sorted(
        str(f.relative_to(PKG))
        for f in PKG.rglob("*.py")
        if any(m == top or m.startswith(f"{top}.") for m in imported_modules(f))
    )


def read_path_files() -> list[Path]:
    files: list[Path] = []
    for entry in READ_PATH:
        p = PKG / entry
        if p.is_dir():
            files.extend(sorted(p.rglob("*.py")))
        elif p.is_file():
            files.append(p)
    return files


def test_read_path_never_imports_the_change_engine() -> None:
    files = read_path_files()
    assert files, "read path modules not found"
    for f in files:
        for mod in imported_modules(f):
            assert not mod.startswith("tailops.changes"), f"{f.relative_to(REPO_ROOT)} imports {mod}"
            assert not mod.startswith("ansible_runner"), f"{f.relative_to(REPO_ROOT)} imports {mod}"
            assert not mod.startswith("tailops.tools"), f"{f.relative_to(REPO_ROOT)} imports {mod} (tools sit above)"


def test_monitor_imports_nothing_above_it() -> None:
    """Facts are read and parsed below the transport: the server subscribes to monitor's event
    feed, never the other way round."""
    above = ("tailops.server", "tailops.runtime", "tailops.tools", "tailops.cli", "tailops.web")
    files = sorted((PKG / "monitor").rglob("*.py"))
    assert len(files) > 20, "monitor modules not found"
    for f in files:
        for mod in imported_modules(f):
            assert not mod.startswith(above), f"{f.relative_to(REPO_ROOT)} imports {mod}"


def test_the_server_is_transport_only() -> None:
    files = sorted((PKG / "server").rglob("*.py"))
    assert len(files) > 4, "server modules not found"
    for f in files:
        for mod in imported_modules(f):
            assert not mod.startswith(("tailops.monitor", "tailops.changes")), (
                f"{f.relative_to(REPO_ROOT)} imports {mod}: server/ is transport only "
                "(declare what reads facts or the catalog beside the tools, e.g. tailops/tools/resources/)"
            )


# The change engine's services: what the runtime builds and hands to the surfaces.
RUNTIME_MAY_IMPORT_FROM_CHANGES = {"tailops.changes.engine", "tailops.changes.drift"}


def test_the_runtime_reaches_the_change_engine_only_through_its_services() -> None:
    imported = imported_modules(PKG / "runtime.py")
    from_changes = {m for m in imported if m.startswith("tailops.changes")}
    assert from_changes, "runtime.py imports nothing from changes/: the check looks at the wrong names"
    assert from_changes <= RUNTIME_MAY_IMPORT_FROM_CHANGES, sorted(from_changes - RUNTIME_MAY_IMPORT_FROM_CHANGES)
    surfaces = ("tailops.server", "tailops.tools", "tailops.web", "tailops.cli")
    assert not [m for m in imported if m.startswith(surfaces)], "runtime.py imports a surface built on it"


def test_only_the_docker_access_package_imports_the_docker_sdk() -> None:
    importers = importers_of("docker")
    assert importers, "no module imports the Docker SDK: the check looks at the wrong names"
    assert all(path.startswith("monitor/containers/") for path in importers), importers


def test_only_the_ansible_adapter_imports_ansible_runner() -> None:
    """One call into the library (tailops/changes/ansible/invoke.py), where its exceptions are translated."""
    assert importers_of("ansible_runner") == ["changes/ansible/invoke.py"]


def test_only_the_ansible_room_and_its_plugins_import_ansible() -> None:
    """Ansible itself is loaded only inside ansible-playbook (the callback plugins), never by the server."""
    importers = importers_of("ansible")
    assert importers, "no module imports ansible: the check looks at the wrong names"
    assert all(path.startswith("changes/ansible/callback_plugins/") for path in importers), importers


def test_importing_the_read_path_loads_no_change_engine() -> None:
    modules = [
        "tailops." + str(f.relative_to(PKG).with_suffix("")).replace("/", ".").removesuffix(".__init__")
        for f in read_path_files()
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.startswith(('tailops.changes', 'ansible_runner'))]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


# Libraries a tool needs only when it runs. Importing any of them while the server
# starts costs every stdio client start-up time (measured in `make bench`), so they load
# on first use; this keeps a new top-level import from undoing that unnoticed.
LOADED_ON_FIRST_USE = (
    "ansible_runner",
    "docker",
    "requests",
    "jsonschema",
    "httpx",
    "dns",
    "drain3",
    "tiktoken",
    "toon_format",
    "regex",
    "charset_normalizer",
    "cryptography.x509",
    "jwt",
)


def test_starting_the_stdio_server_loads_no_library_a_tool_needs_only_when_it_runs(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tailops.cli.main import build_app\n"
        "from tailops.config import load_config\n"
        "from tailops.runtime import Runtime\n"
        "from tailops.server.mcp_server import build_mcp\n"
        "build_app(full=False)\n"
        "rt = Runtime(load_config(None))\n"
        "server = build_mcp(rt)\n"
        "assert len(server._tool_manager.list_tools()) > 30\n"
        f"names = {LOADED_ON_FIRST_USE!r}\n"
        "bad = sorted(m for m in sys.modules if any(m == n or m.startswith(n + '.') for n in names))\n"
        "print(','.join(bad))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TAILOPS_SERVER__DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"loaded at start-up: {out.stdout.strip()}"
