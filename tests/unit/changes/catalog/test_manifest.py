"""The manifest model: every field error names the field and the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailops.changes.catalog import Catalog
from tailops.errors import CatalogError
from tests.unit.changes.catalog.helpers import edit_yaml


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "field `colour`: unknown field"),
        ({"version": "1.0"}, "field `version`: .*'1.0' is not a semantic version"),
        ({"risk": "medium"}, "field `risk`: Input should be 'low', 'high' or 'critical'"),
        ({"scope": "root"}, "field `scope`"),
        ({"name": "other"}, "manifest name 'other' must equal the folder name"),
        ({"parameters": {"type": "objekt"}}, r"field `parameters`: .*not a valid JSON Schema .*at type"),
        ({"parameters": {"type": "object"}}, 'must set "additionalProperties": false'),
        (
            {"parameters": {"type": "object", "additionalProperties": False, "properties": {"ansible_host": {}}}},
            "parameter name 'ansible_host' must match",
        ),
        (
            {
                "parameters": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string", "format": "hostname-ish"}},
                }
            },
            "unknown format 'hostname-ish'",
        ),
        ({"roles": ["container_state", "image_pull"]}, r"manifest roles \['container_state', 'image_pull'\] must list"),
        (
            {"collections": ["ansible.builtin"]},
            r"must list exactly the collections its tasks use: \['ansible.builtin', 'community.docker'\]",
        ),
        ({"target": "all"}, "play hosts 'localhost' must equal the manifest target 'all'"),
        ({"serial": 2}, "each play must set serial"),
        ({"serial": "150%"}, "field `serial`"),
        ({"max_fail_percentage": 101}, "field `max_fail_percentage`"),
        ({"description": None}, "field `description`: Field required"),
    ],
)
def test_manifest_errors_name_the_field_and_rule(tree: tuple[Path, Path], change: dict[str, Any], message: str) -> None:
    playbooks, roles = tree
    edit_yaml(playbooks / "container_state" / "manifest.yml", **change)
    with pytest.raises(CatalogError, match=message) as info:
        Catalog.load(playbooks, roles)
    assert "playbook container_state" in info.value.message
