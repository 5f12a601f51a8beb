#!/usr/bin/python
# Part of the tailops catalog (roles/service_state). Read-only: never changes the host.
"""Read a systemd unit's real name, aliases and load state (``systemctl show``)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tailops_unit_info
short_description: Read a systemd unit's id, aliases and load state for the tailops service_state role
description:
  - Runs C(systemctl show --property=Id,Names,LoadState -- NAME) and returns what it says,
    so the role can check the unit's real name and every alias against its protected list.
  - Never changes the host; supports check mode fully (it only reads).
options:
  name:
    description: Unit name (with its suffix, e.g. nginx.service).
    type: str
    required: true
"""

RETURN = r"""
id:
  description: The unit's real name (systemd resolves aliases to it).
  type: str
  returned: always
names:
  description: The unit's real name and all its aliases.
  type: list
  returned: always
load_state:
  description: loaded, not-found, masked, ...
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}}, supports_check_mode=True)
    name = module.params["name"]
    systemctl = module.get_bin_path("systemctl", required=True)
    rc, out, err = module.run_command([systemctl, "show", "--property=Id,Names,LoadState", "--", name])
    if rc != 0:
        module.fail_json(msg="systemctl show %s failed (rc=%d): %s" % (name, rc, (err or out).strip()))
    props = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    names = [n for n in props.get("Names", "").split() if n]
    unit_id = props.get("Id") or name
    if unit_id not in names:
        names.insert(0, unit_id)
    module.exit_json(changed=False, id=unit_id, names=names, load_state=props.get("LoadState", ""))


if __name__ == "__main__":
    main()
