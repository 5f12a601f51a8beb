#!/usr/bin/python
# Part of the tailops catalog (roles/container_update).
"""Rename a Docker container (community.docker has no rename module)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tailops_docker_rename
short_description: Rename a Docker container, with check mode
description:
  - Renames container O(name) to O(new_name) through the Docker API (the engine
    connection options are those of community.docker modules).
  - Idempotent - when O(name) does not exist and O(new_name) does, nothing changes.
  - In check mode nothing is renamed; RV(current_name) then still is O(name), so
    later tasks address the container under the name it really has.
options:
  name:
    description: Current container name.
    type: str
    required: true
  new_name:
    description: Name to give it.
    type: str
    required: true
extends_documentation_fragment:
  - community.docker._docker.api_documentation
"""

RETURN = r"""
current_name:
  description: The name the container has after this task (O(name) in check mode).
  type: str
  returned: success
"""

import traceback

from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException
from ansible_collections.community.docker.plugins.module_utils._common_api import (
    AnsibleDockerClient,
    RequestException,
)


def main():
    client = AnsibleDockerClient(
        argument_spec={
            "name": {"type": "str", "required": True},
            "new_name": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    name = client.module.params["name"]
    new_name = client.module.params["new_name"]
    try:
        current = client.get_container(name)
        target = client.get_container(new_name)
        if current is None:
            if target is not None:
                client.module.exit_json(changed=False, current_name=new_name)
            client.fail("container %s does not exist, so it cannot be renamed to %s." % (name, new_name))
        if target is not None:
            client.fail(
                "cannot rename %s to %s: a container named %s already exists (remove or rename it first)."
                % (name, new_name, new_name)
            )
        diff = {"before": {"name": name}, "after": {"name": new_name}}
        if client.module.check_mode:
            client.module.exit_json(changed=True, current_name=name, diff=diff)
        client.post_call("/containers/{0}/rename", current["Id"], params={"name": new_name})
        client.module.exit_json(changed=True, current_name=new_name, diff=diff)
    except DockerException as exc:
        client.fail("Docker error while renaming %s: %s" % (name, exc), exception=traceback.format_exc())
    except RequestException as exc:
        client.fail("cannot reach the Docker engine: %s" % exc, exception=traceback.format_exc())


if __name__ == "__main__":
    main()
