"""A caller's parameters: good ones pass with defaults filled, bad ones are refused naming the
parameter and the rule, for every shipped playbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tailops.changes.catalog import Catalog
from tailops.errors import InvalidInput, NotFound
from tests.unit.changes.catalog.helpers import EXPECTED

DIGEST = "sha256:" + "ab" * 32


GOOD: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("package_update", {}, {"security_only": False, "packages": []}),
    ("package_update", {"security_only": True, "packages": ["tbdemo", "libc6"]}, {}),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "version": "1:1.0-1+deb12u1~bpo"}]},
        {"allow_downgrade": False},
    ),
    (
        "package_install",
        {"packages": [{"name": "g++"}, {"name": "tbtool", "version": "2.0"}], "allow_downgrade": True},
        {},
    ),
    ("package_remove", {"packages": [{"name": "tbdemo"}]}, {"purge": False}),
    ("package_remove", {"packages": [{"name": "tbdemo"}], "purge": True}, {}),
    ("container_state", {"name": "web_1.prod-a", "state": "restarted"}, {}),
    (
        "container_update",
        {"name": "web", "image": "127.0.0.1:5000/tailops/webapp:2"},
        {"health_timeout": 120, "refresh": False},
    ),
    (
        "container_update",
        {"name": "web", "image": f"registry.example.com/team/app@{DIGEST}", "health_timeout": 5},
        {"refresh": False},
    ),
    ("container_update", {"name": "web", "image": f"app:1.2@{DIGEST}"}, {"health_timeout": 120, "refresh": False}),
    ("image_pull", {"image": "127.0.0.1:5000/tailops/webapp", "tag": "1"}, {"refresh": False}),
    ("image_pull", {"image": "library/debian", "digest": DIGEST, "refresh": True}, {}),
    ("service_state", {"name": "nginx.service", "state": "stopped"}, {}),
    ("service_state", {"name": "postgresql@15-main", "state": "started"}, {}),
    ("service_state_critical", {"name": "getty@tty1", "state": "restarted"}, {}),
]


@pytest.mark.parametrize(("name", "params", "defaults"), GOOD)
def test_good_params_pass_with_defaults_filled(name: str, params: dict[str, Any], defaults: dict[str, Any]) -> None:
    out = Catalog.load().validate_params(name, params)
    assert out == {**params, **defaults}
    assert out is not params


BAD: list[tuple[str, dict[str, Any] | Any, str]] = [
    ("package_update", {"security_only": "yes"}, r"`security_only`: 'yes' is not of type 'boolean'"),
    (
        "package_update",
        {"packages": ["Bad_Name"]},
        r"`packages\[0\]`: 'Bad_Name' is not a valid package name \(rule: \^\[a-z0-9\]",
    ),
    ("package_update", {"packages": ["-rf"]}, r"`packages\[0\]`: '-rf' is not a valid package name"),
    ("package_update", {"reboot": True}, r"unknown parameter\(s\) reboot \(allowed: packages, security_only\)"),
    ("package_install", {}, r"`\(parameters\)`: 'packages' is a required property"),
    ("package_install", {"packages": []}, r"`packages`: \[\] should be non-empty"),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "version": "latest"}]},
        r"`packages\[0\].version`: 'latest' is not a valid Debian version string",
    ),
    ("package_install", {"packages": [{"name": "tbdemo", "version": "1.0-"}]}, r"not a valid Debian version string"),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "version": "1.0 ; rm -rf /"}]},
        r"not a valid Debian version string",
    ),
    (
        "package_install",
        {"packages": [{"name": "tbdemo"}, {"name": "tbdemo", "version": "1.0-1"}]},
        r"`packages`: lists name 'tbdemo' more than once",
    ),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "arch": "all"}]},
        r"`packages\[0\]`: unknown parameter\(s\) arch",
    ),
    ("package_install", {"packages": "tbdemo"}, r"`packages`: 'tbdemo' is not of type 'array'"),
    ("package_remove", {"packages": [{"name": "TBDEMO"}]}, r"'TBDEMO' is not a valid package name"),
    ("package_remove", {"packages": [{"name": "tbdemo", "version": "1.0-1"}]}, r"unknown parameter\(s\) version"),
    (
        "container_state",
        {"name": "web", "state": "paused"},
        r"`state`: 'paused' is not one of \['started', 'stopped', 'restarted'\]",
    ),
    (
        "container_state",
        {"name": "-web", "state": "started"},
        r"`name`: '-web' is not a valid container name \(rule: \^\[a-zA-Z0-9\]",
    ),
    ("container_state", {"name": "web/../x", "state": "started"}, r"not a valid container name"),
    (
        "container_update",
        {"name": "web", "image": "tailops/webapp"},
        r"`image`: 'tailops/webapp' is not a valid image reference \(rule: .*a tag or a digest is required",
    ),
    ("container_update", {"name": "web", "image": "Tailops/WebApp:1"}, r"not a valid image reference"),
    ("container_update", {"name": "web", "image": "app@sha256:123"}, r"not a valid image reference"),
    (
        "container_update",
        {"name": "web", "image": "app:1", "health_timeout": 1},
        r"`health_timeout`: 1 is less than the minimum of 5",
    ),
    ("image_pull", {"image": "app"}, r"`\(parameters\)`: give exactly one of tag and digest"),
    ("image_pull", {"image": "app", "tag": "1", "digest": DIGEST}, r"give exactly one of tag and digest"),
    ("image_pull", {"image": "app:1", "tag": "1"}, r"`image`: 'app:1' is not a valid image repository"),
    ("image_pull", {"image": "app", "tag": "-1"}, r"`tag`: '-1' is not a valid image tag"),
    ("image_pull", {"image": "app", "digest": "md5:abc"}, r"`digest`: 'md5:abc' is not a valid image digest"),
    (
        "service_state",
        {"name": "nginx; reboot", "state": "restarted"},
        r"`name`: 'nginx; reboot' is not a valid systemd service name",
    ),
    (
        "service_state_critical",
        {"name": "nginx", "state": "restarted"},
        r"`name`: 'nginx' is not a valid protected systemd service name",
    ),
    ("service_state", {"name": "nginx"}, r"'state' is a required property"),
    ("service_state", ["nginx"], r"parameters for service_state must be an object"),
]


@pytest.mark.parametrize(("name", "params", "message"), BAD)
def test_bad_params_are_refused_naming_parameter_and_rule(name: str, params: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        Catalog.load().validate_params(name, params)
    assert not isinstance(info.value, NotFound)


def test_every_playbook_has_good_and_bad_parameter_cases() -> None:
    assert {n for n, _p, _d in GOOD} == set(EXPECTED)
    assert {n for n, _p, _m in BAD} == set(EXPECTED)


def test_template_markers_and_control_characters_are_refused_everywhere(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    # A free-form string parameter (no format) still may not smuggle a template in.
    manifest = playbooks / "container_state" / "manifest.yml"
    data = yaml.safe_load(manifest.read_text())
    data["parameters"]["properties"]["comment"] = {"type": "string"}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    catalog = Catalog.load(playbooks, roles)
    base = {"name": "web", "state": "started"}
    with pytest.raises(InvalidInput, match=r"parameter `comment`: template markers"):
        catalog.validate_params("container_state", {**base, "comment": "{{ lookup('pipe', 'id') }}"})
    with pytest.raises(InvalidInput, match=r"parameter `comment`: control characters"):
        catalog.validate_params("container_state", {**base, "comment": "a\nb"})
    assert catalog.validate_params("container_state", {**base, "comment": "fine"})["comment"] == "fine"


def test_validate_params_of_unknown_playbook_is_not_found() -> None:
    with pytest.raises(NotFound, match="Did you mean: image_pull"):
        Catalog.load().validate_params("image_pul", {})
