"""Scanning: where the catalog lives on disk, and each playbook held to what it really uses.

Why it exists: a manifest is a promise about its playbook, so loading reads
``playbooks/<name>/playbook.yml`` and every task file of the roles it uses (transitively)
and refuses the entry when the manifest does not say exactly what is there: the target of
every play, the serial/max_fail_percentage expressions, the roles, the collections, and
the tasks that run for real in check mode (``check_mode: false``).

What it must never do: execute or template anything it reads (YAML is parsed with
``safe_load`` only), accept a role reference that is a template or a path, allow
``import_playbook``, or build an entry whose manifest disagrees with its playbook.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

import tailops
from tailops.changes.catalog.entry import CatalogEntry
from tailops.changes.catalog.formats import TEMPLATE_MARKERS
from tailops.changes.catalog.manifest import Manifest
from tailops.changes.catalog.pinning import LockEntry
from tailops.config import Settings
from tailops.errors import CatalogError

__all__ = [
    "MANIFEST_FILE",
    "PLAYBOOK_FILE",
    "catalog_dirs",
    "default_catalog_dirs",
    "load_entries",
    "load_entry",
    "packaged_catalog_dir",
]

MANIFEST_FILE = "manifest.yml"
PLAYBOOK_FILE = "playbook.yml"

_FQCN_KEY_RE = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+$")
_ROLE_ACTIONS = frozenset(
    f"{prefix}{action}"
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for action in ("include_role", "import_role")
)
_TASK_LIST_KEYS = ("pre_tasks", "tasks", "post_tasks", "handlers")
_BLOCK_KEYS = ("block", "rescue", "always")


def packaged_catalog_dir() -> Path:
    """Where an installed wheel keeps its copy of the catalog (setup.py's build step writes it)."""
    return Path(tailops.__file__).resolve().parent / "_catalog"


def default_catalog_dirs() -> tuple[Path, Path]:
    """The catalog shipped inside the installed package, else the repository's folders.

    A wheel (pip, pipx, the container image) carries ``tailops/_catalog/{playbooks,roles}``;
    a source checkout or editable install has none, and uses ``playbooks/`` and ``roles/``
    next to the ``tailops`` package.
    """
    packaged = packaged_catalog_dir()
    if (packaged / "playbooks").is_dir():
        return packaged / "playbooks", packaged / "roles"
    root = Path(tailops.__file__).resolve().parent.parent
    return root / "playbooks", root / "roles"


def catalog_dirs(settings: Settings) -> tuple[Path, Path]:
    """``changes.playbooks_dir`` / ``changes.roles_dir``, else the repository defaults."""
    default_playbooks, default_roles = default_catalog_dirs()
    return (
        settings.changes.playbooks_dir or default_playbooks,
        settings.changes.roles_dir or default_roles,
    )


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{what}: {path.name} is missing.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{what}: {path.name} cannot be read ({exc.__class__.__name__}).") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CatalogError(f"{what}: {path.name} is not valid YAML{where}.") from exc


def _role_name(item: Any, where: str) -> str:
    name = item if isinstance(item, str) else (item.get("role") or item.get("name")) if isinstance(item, dict) else None
    if not isinstance(name, str) or not name:
        raise CatalogError(f"{where}: a role reference has no name.")
    if any(marker in name for marker in TEMPLATE_MARKERS) or "/" in name:
        raise CatalogError(f"{where}: role reference {name!r} must be a plain role name (no templates, no paths).")
    return name


def _scan_tasks(tasks: Any, where: str, roles: set[str], collections: set[str]) -> None:
    if not isinstance(tasks, list):
        return
    for task in tasks:
        if not isinstance(task, dict):
            continue
        for key, value in task.items():
            if key in _BLOCK_KEYS:
                _scan_tasks(value, where, roles, collections)
                continue
            if key in _ROLE_ACTIONS:
                args = value if isinstance(value, dict) else {}
                roles.add(_role_name(args.get("name"), where))
            match = _FQCN_KEY_RE.fullmatch(key)
            if match and (match.group(1), match.group(2)) != ("ansible", "legacy"):
                collections.add(f"{match.group(1)}.{match.group(2)}")


def _scan_playbook(data: Any, where: str) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    if not isinstance(data, list) or not data or not all(isinstance(p, dict) for p in data):
        raise CatalogError(f"{where}: must be a non-empty list of plays.")
    roles: set[str] = set()
    collections: set[str] = set()
    for play in data:
        if "import_playbook" in play or "ansible.builtin.import_playbook" in play:
            raise CatalogError(f"{where}: import_playbook is not allowed (one playbook, its roles).")
        for item in play.get("roles") or []:
            roles.add(_role_name(item, where))
        for key in _TASK_LIST_KEYS:
            _scan_tasks(play.get(key), where, roles, collections)
    return data, roles, collections


def _scan_role(role_dir: Path) -> tuple[set[str], set[str]]:
    """Roles a role pulls in (meta dependencies, include/import_role) and collections it uses."""
    where = f"role {role_dir.name}"
    roles: set[str] = set()
    collections: set[str] = set()
    meta = role_dir / "meta" / "main.yml"
    if meta.is_file():
        data = _read_yaml(meta, where) or {}
        if isinstance(data, dict):
            for dep in data.get("dependencies") or []:
                roles.add(_role_name(dep, f"{where} meta/main.yml"))
    for sub in ("tasks", "handlers"):
        folder = role_dir / sub
        if not folder.is_dir():
            continue
        for path in sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")]):
            _scan_tasks(_read_yaml(path, where), where, roles, collections)
    return roles, collections


def _real_in(tasks: Any, where: str, out: set[str]) -> None:
    if not isinstance(tasks, list):
        return
    for task in tasks:
        if not isinstance(task, dict):
            continue
        mode = task.get("check_mode")
        if mode is not None and mode is not True:
            if mode is not False:
                raise CatalogError(
                    f"{where}: task {task.get('name')!r} sets check_mode to {mode!r}; only a literal true or "
                    "false is allowed (a plan must know which tasks run for real)."
                )
            name = task.get("name")
            if not isinstance(name, str) or not name:
                raise CatalogError(f"{where}: a task with check_mode: false needs a name.")
            out.add(name)
        for key in _BLOCK_KEYS:
            _real_in(task.get(key), where, out)


def _tasks_run_for_real(playbook_data: Any, role_dirs: Iterable[Path], what: str) -> set[str]:
    """Names of tasks that run for real in check mode (``check_mode: false``), in the
    playbook's plays and every file under its roles' ``tasks/`` and ``handlers/``."""
    out: set[str] = set()
    for play in playbook_data if isinstance(playbook_data, list) else []:
        if isinstance(play, dict):
            if play.get("check_mode") is not None:
                raise CatalogError(f"{what}: playbook.yml may not set check_mode on a play.")
            for key in _TASK_LIST_KEYS:
                _real_in(play.get(key), f"{what}: playbook.yml", out)
    for role_dir in role_dirs:
        for sub in ("tasks", "handlers"):
            folder = role_dir / sub
            if folder.is_dir():
                for path in sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")]):
                    _real_in(_read_yaml(path, f"role {role_dir.name}"), f"role {role_dir.name}", out)
    return out


def load_entries(
    playbooks_dir: Path, roles_dir: Path, collections_root: Path | None, lock: Mapping[str, LockEntry]
) -> dict[str, CatalogEntry]:
    """Every ``<playbooks_dir>/<name>/`` with a manifest, loaded and checked, by name.

    Folders starting with ``.`` or ``_`` and folders without a manifest are not playbooks.
    """
    entries: dict[str, CatalogEntry] = {}
    for folder in sorted(p for p in playbooks_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if not (folder / MANIFEST_FILE).is_file():
            continue
        entry = load_entry(folder, roles_dir, collections_root, lock)
        entries[entry.name] = entry
    return entries


def load_entry(
    folder: Path, roles_dir: Path, collections_root: Path | None, lock: Mapping[str, LockEntry]
) -> CatalogEntry:
    """The playbook in ``folder``, its manifest checked against what the playbook and its roles use.

    Raises CatalogError naming the file and the rule.
    """
    what = f"playbook {folder.name}"
    raw = _read_yaml(folder / MANIFEST_FILE, what)
    if not isinstance(raw, dict):
        raise CatalogError(f"{what}: manifest.yml must be a mapping of fields.")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise CatalogError(f"{what}: manifest.yml field `{key}`: {msg}{more}.") from None
    if manifest.name != folder.name:
        raise CatalogError(f"{what}: manifest name {manifest.name!r} must equal the folder name.")
    playbook = folder / PLAYBOOK_FILE
    plays, direct_roles, collections = _scan_playbook(_read_yaml(playbook, what), f"{what}: playbook.yml")
    expected_serial = f"{{{{ tailops_serial | default({manifest.serial!r}) }}}}".replace("'", '"')
    expected_fail = f"{{{{ tailops_max_fail_percentage | default({manifest.max_fail_percentage}) }}}}"
    for play in plays:
        if play.get("hosts") != manifest.target:
            raise CatalogError(
                f"{what}: play hosts {play.get('hosts')!r} must equal the manifest target {manifest.target!r}."
            )
        serial = str(play.get("serial", "")).replace("'", '"')
        if serial != expected_serial or str(play.get("max_fail_percentage", "")) != expected_fail:
            raise CatalogError(
                f"{what}: each play must set serial: {expected_serial!r} and "
                f"max_fail_percentage: {expected_fail!r} (the manifest's defaults, overridable per run)."
            )
    # Resolve roles transitively.
    resolved: dict[str, Path] = {}
    pending = sorted(direct_roles)
    while pending:
        role = pending.pop()
        if role in resolved:
            continue
        role_dir = roles_dir / role
        if not role_dir.is_dir():
            raise CatalogError(f"{what}: uses role {role!r}, which is not in {roles_dir}.")
        resolved[role] = role_dir
        deps, role_collections = _scan_role(role_dir)
        collections |= role_collections
        pending.extend(sorted(deps - resolved.keys()))
    if sorted(manifest.roles) != sorted(resolved):
        raise CatalogError(
            f"{what}: manifest roles {sorted(manifest.roles)} must list exactly the roles the playbook "
            f"uses (transitively): {sorted(resolved)}."
        )
    real = _tasks_run_for_real(_read_yaml(playbook, what), resolved.values(), what)
    if sorted(manifest.check_mode_side_effects) != sorted(real):
        raise CatalogError(
            f"{what}: manifest check_mode_side_effects {sorted(manifest.check_mode_side_effects)} must name "
            f"exactly the tasks that run for real in check mode (check_mode: false): {sorted(real)}, each "
            "with what it may change on a host during a plan.",
        )
    if sorted(manifest.collections) != sorted(collections):
        raise CatalogError(
            f"{what}: manifest collections {sorted(manifest.collections)} must list exactly the "
            f"collections its tasks use: {sorted(collections)}."
        )
    return CatalogEntry(
        manifest=manifest,
        directory=folder,
        playbook=playbook,
        role_dirs=tuple(resolved[r] for r in sorted(resolved)),
        collections_root=collections_root,
        locked=lock.get(manifest.name),
    )
