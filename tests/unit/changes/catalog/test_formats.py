"""service_state parameters: only .service units, never a protected one (issue 13).

Before this, ``service-name`` accepted any unit (``poweroff.target`` started,
``ssh``/``tailscaled`` stopped). Now the catalog refuses other unit types and the
protected services for ``service_state``, and ``service_state_critical`` (risk
critical) accepts only the protected ones. The role carries the same list (it
refuses them on a direct run too, see tests/integration/test_playbooks_packages.py);
a test here keeps the two lists equal.
"""

from __future__ import annotations

import pytest
import yaml

from tailops.changes.catalog import Catalog
from tailops.changes.catalog.formats import PROTECTED_SERVICES, is_protected_service, service_unit
from tailops.errors import InvalidInput
from tests.helpers import REPO_ROOT

CATALOG = Catalog.load()

OTHER_TYPES = [
    "poweroff.target",
    "reboot.target",
    "rescue.target",
    "ssh.socket",
    "tmp.mount",
    "apt-daily.timer",
    "swapfile.swap",
    "user.slice",
    "foo.path",
    "init.scope",
    "dev-sda.device",
    "proc-sys.automount",
]
PROTECTED = [
    "ssh",
    "ssh.service",
    "sshd",
    "sshd.service",
    "ssh@1-10.0.0.1:22-10.0.0.2:5000",
    "tailscaled",
    "tailops",
    "tailops-review.service",
    "docker",
    "docker.service",
    "containerd",
    "dbus",
    "dbus-broker.service",
    "dbus-org.freedesktop.login1",
    "systemd-journald",
    "systemd-logind.service",
    "systemd-networkd",
    "getty@tty1",
    "serial-getty@ttyS0.service",
    "user@1000",
    "networking",
    "NetworkManager",
    "emergency",
]
ORDINARY = [
    "nginx",
    "nginx.service",
    "php8.2-fpm",
    "postgresql@15-main",
    "cron",
    "tbsvc",
    "sshguard",
    "dockerd-exporter",
]


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_services_pass_service_state_only(name: str) -> None:
    assert CATALOG.validate_params("service_state", {"name": name, "state": "restarted"})["name"] == name
    with pytest.raises(InvalidInput, match="not a valid protected systemd service name"):
        CATALOG.validate_params("service_state_critical", {"name": name, "state": "restarted"})


@pytest.mark.parametrize("name", PROTECTED)
def test_protected_services_need_the_critical_playbook(name: str) -> None:
    with pytest.raises(InvalidInput, match="only service_state_critical may touch"):
        CATALOG.validate_params("service_state", {"name": name, "state": "stopped"})
    assert CATALOG.validate_params("service_state_critical", {"name": name, "state": "stopped"})["name"] == name


@pytest.mark.parametrize("name", [*OTHER_TYPES, "foo@.service", "-x", ".service", "a b", "a/b", "x" * 129])
def test_other_unit_types_and_malformed_names_are_refused_by_both(name: str) -> None:
    for playbook in ("service_state", "service_state_critical"):
        with pytest.raises(InvalidInput, match="`name`"):
            CATALOG.validate_params(playbook, {"name": name, "state": "started"})


def test_a_name_without_suffix_means_service() -> None:
    assert service_unit("nginx") == "nginx.service"
    assert service_unit("php8.2-fpm") == "php8.2-fpm.service"
    assert service_unit("nginx.service") == "nginx.service"
    assert service_unit("poweroff.target") is None
    assert is_protected_service("systemd-udevd.service") and not is_protected_service("sshguard.service")


def test_the_critical_playbook_is_critical_and_the_role_list_equals_the_catalog_list() -> None:
    critical = CATALOG.get("service_state_critical").manifest
    assert critical.risk == "critical" and critical.roles == ["service_state"]
    assert CATALOG.get("service_state").manifest.risk == "high"
    role_vars = yaml.safe_load((REPO_ROOT / "roles" / "service_state" / "vars" / "main.yml").read_text())
    assert tuple(role_vars["service_state_protected"]) == PROTECTED_SERVICES
    # Only the critical playbook sets the role's switch, and no parameter can reach it.
    for name in ("service_state", "service_state_critical"):
        text = (REPO_ROOT / "playbooks" / name / "playbook.yml").read_text()
        assert ("service_state_critical: true" in text) == (name == "service_state_critical")
        assert "service_state_critical" not in CATALOG.get(name).manifest.parameters["properties"]
