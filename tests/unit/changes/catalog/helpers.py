"""What the catalog tests share: the shipped playbooks, a fake collections tree, YAML edits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

EXPECTED = {
    # name: (risk, scope, target)
    "package_update": ("high", "system:admin", "targets"),
    "package_install": ("high", "system:admin", "targets"),
    "package_remove": ("critical", "system:admin", "targets"),
    "container_state": ("low", "container:write", "localhost"),
    "container_update": ("high", "container:admin", "localhost"),
    "image_pull": ("low", "container:write", "localhost"),
    "service_state": ("high", "system:admin", "targets"),
    "service_state_critical": ("critical", "system:admin", "targets"),
}


def fake_collections(root: Path, docker_version: str = "5.4.0") -> Path:
    manifest = root / "community" / "docker" / "MANIFEST.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps({"collection_info": {"namespace": "community", "name": "docker", "version": docker_version}})
    )
    return root


def edit_yaml(path: Path, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
