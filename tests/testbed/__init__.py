"""The multi-host test bed: offline apt repo, container hosts, local registry.

Real parts only (TESTBED.md): containers from the locally built
``tailops-target:*`` images, a real apt repository built with dpkg tools, a
real ``docker-registry`` process on loopback. Fixtures that wrap these live in
tests/integration/conftest.py.
"""

from tests.testbed.aptrepo import AptRepo, build_apt_repo
from tests.testbed.hosts import Host, HostFactory, HostSet, localhost_inventory
from tests.testbed.registry import LocalRegistry, start_local_registry

__all__ = [
    "AptRepo",
    "Host",
    "HostFactory",
    "HostSet",
    "LocalRegistry",
    "build_apt_repo",
    "localhost_inventory",
    "start_local_registry",
]
