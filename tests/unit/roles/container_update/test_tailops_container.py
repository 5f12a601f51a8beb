"""container_update's filter plugin (roles/container_update/filter_plugins/tailops_container.py):
the spec of the new container keeps the old one's own configuration."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from tests.helpers import REPO_ROOT


def _filter_module() -> Any:
    path = REPO_ROOT / "roles" / "container_update" / "filter_plugins" / "tailops_container.py"
    spec = importlib.util.spec_from_file_location("tailops_container_filter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INSPECT: dict[str, Any] = {
    "Id": "0123456789abcdef" * 4,
    "Name": "/web",
    "Image": "sha256:" + "11" * 32,
    "Config": {
        "Env": ["PATH=/usr/bin", "APP_VERSION=1", "FOO=bar"],
        "Labels": {"org.example.app": "webapp", "team": "ops"},
        "Cmd": ["python3", "-m", "http.server"],
        "Entrypoint": None,
        "User": "",
        "WorkingDir": "",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000},
        "Tty": False,
        "OpenStdin": False,
    },
    "HostConfig": {
        "Binds": ["named:/named"],
        "Mounts": [],
        "PortBindings": {
            "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
            "53/udp": [{"HostIp": "", "HostPort": ""}],
        },
        "NetworkMode": "appnet",
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "IpcMode": "private",
    },
    "Mounts": [
        {"Type": "volume", "Name": "named", "Destination": "/named", "RW": True},
        {"Type": "volume", "Name": "f00d" * 16, "Destination": "/data", "RW": True},
    ],
    "NetworkSettings": {
        "Networks": {"appnet": {"Aliases": ["web", "0123456789ab", "api"], "IPAMConfig": {"IPv4Address": "172.30.0.9"}}}
    },
    "State": {"Running": True, "Health": {"Status": "healthy"}},
}


IMAGE = {
    "Config": {
        "Env": ["PATH=/usr/bin", "APP_VERSION=1"],
        "Labels": {"org.example.app": "webapp"},
        "Cmd": ["python3", "-m", "http.server"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000},
    }
}


def test_container_spec_keeps_the_containers_own_configuration() -> None:
    spec = _filter_module().container_spec(INSPECT, IMAGE, "reg:5000/app:2")
    assert spec["image"] == "reg:5000/app:2"
    assert spec["env"] == {"FOO": "bar"}  # image defaults are left to the new image
    assert spec["labels"] == {"team": "ops"}
    assert spec["command"] is None and spec["healthcheck"] is None  # same as the image: not pinned
    assert spec["published_ports"] == ["53/udp", "127.0.0.1:18080:8000/tcp"]
    assert spec["volumes"] == ["named:/named", f"{'f00d' * 16}:/data:rw"]  # anonymous volume re-attached
    assert spec["network_mode"] == "appnet"
    assert spec["networks"] == [{"name": "appnet", "aliases": ["api"], "ipv4_address": "172.30.0.9"}]
    assert (spec["restart_policy"], spec["restart_retries"]) == ("on-failure", 3)
    assert spec["unsupported"] == []


def test_container_spec_pins_overrides_and_lists_unsupported_options() -> None:
    inspect = json.loads(json.dumps(INSPECT))
    inspect["Config"]["Cmd"] = ["sleep", "1"]
    inspect["Config"]["Healthcheck"] = {"Test": ["CMD", "false"], "Interval": 1_500_000_000, "Retries": 2}
    inspect["HostConfig"]["Memory"] = 1 << 28
    inspect["HostConfig"]["Devices"] = [{"PathOnHost": "/dev/fuse"}]
    spec = _filter_module().container_spec(inspect, IMAGE, "app:2")
    assert spec["command"] == ["sleep", "1"]
    assert spec["healthcheck"] == {"test": ["CMD", "false"], "interval": "1500ms", "retries": 2}
    assert spec["unsupported"] == ["Devices", "Memory"]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"Running": True, "Health": {"Status": "starting"}}, "starting"),
        ({"Running": True, "Health": {"Status": "unhealthy"}}, "unhealthy"),
        ({"Running": True}, "running"),
        ({"Running": True, "Restarting": True}, "exited"),
        ({"Running": False, "Health": {"Status": "healthy"}}, "exited"),
    ],
)
def test_container_health(state: dict[str, Any], expected: str) -> None:
    assert _filter_module().health_of({"State": state}) == expected
    assert _filter_module().health_of(None) == "missing"
