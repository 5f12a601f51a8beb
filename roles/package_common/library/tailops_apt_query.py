#!/usr/bin/python
# Part of the tailops catalog (roles/package_common). Read-only: never changes the host,
# and never installs python3-apt: where the inventory's interpreter lacks it, the module
# re-runs itself under the system Python that has it (as ansible.builtin.apt does), or
# fails saying what to install.
"""Look packages up in the apt cache: known names, available versions, upgrades."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tailops_apt_query
short_description: Read-only apt cache lookups for the tailops package roles
description:
  - Looks names and pinned versions up in the local apt cache (python3-apt) and
    lists upgradable packages with their installed and target versions.
  - Never changes the host; supports check mode fully (it only reads).
  - When the interpreter running it cannot import python3-apt (e.g. a virtualenv's
    Python), it respawns under the first of /usr/bin/python3, /usr/bin/python that can,
    exactly as ansible.builtin.apt does; if none can, it fails with a message naming what
    to install. It never installs anything itself.
options:
  bindings_only:
    description: Only check that python3-apt can be used (respawning if needed) and return the interpreter.
    type: bool
    default: false
  names:
    description: Package names to look up.
    type: list
    elements: str
    default: []
  versions:
    description: Pinned versions to check, name -> version.
    type: dict
    default: {}
  allow_downgrade:
    description: When false, a pinned version lower than the installed one fails with a clear message.
    type: bool
    default: true
  require_known:
    description: Fail when a name is unknown to apt (not installed and no version available).
    type: bool
    default: true
  upgrades:
    description: Also list upgradable installed packages (restricted to O(names) when given).
    type: bool
    default: false
  security_only:
    description: With O(upgrades), only versions from a security origin (label Debian-Security or a -security suite).
    type: bool
    default: false
"""

RETURN = r"""
python:
  description: The interpreter that ran the lookup (after a respawn, the system Python).
  type: str
  returned: always
packages:
  description: name -> {known, installed, candidate, versions}
  type: dict
  returned: always
upgrades:
  description: Upgradable packages, each {name, installed, target, security, spec, text} (spec is name=target).
  type: list
  returned: always
specs:
  description: One apt spec per name, in order (name, or name=version when pinned).
  type: list
  returned: always
held:
  description: Upgradable packages on hold (never upgraded here).
  type: list
  returned: always
"""

import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.respawn import has_respawned, probe_interpreters_for_module, respawn_module

try:
    import apt
    import apt_pkg

    HAS_PYTHON_APT = True
except ImportError:
    HAS_PYTHON_APT = False

# Where Debian and Ubuntu install python3-apt: the interpreters ansible.builtin.apt probes.
SYSTEM_INTERPRETERS = ["/usr/bin/python3", "/usr/bin/python"]


def _require_python_apt(module):
    """Respawn under a system Python that has python3-apt, or fail saying what to install."""
    if HAS_PYTHON_APT:
        return
    if not has_respawned():
        interpreter = probe_interpreters_for_module(SYSTEM_INTERPRETERS, "apt")
        if interpreter:
            respawn_module(interpreter)  # runs the module again there; this process exits with it
    module.fail_json(
        msg="python3-apt is not installed on this host: neither the inventory's interpreter (%s) nor %s "
        "can import it. Install it on the host (apt-get install python3-apt), then plan again; tailops "
        "never installs it itself, neither in a plan nor in a run." % (sys.executable, " or ".join(SYSTEM_INTERPRETERS)),
        python=sys.executable,
    )


def _is_security(origin):
    label = (origin.label or "").lower()
    archive = (origin.archive or "").lower()
    codename = (getattr(origin, "codename", "") or "").lower()
    return label.endswith("-security") or archive.endswith("-security") or codename.endswith("-security")


def main():
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "default": []},
            "versions": {"type": "dict", "default": {}},
            "require_known": {"type": "bool", "default": True},
            "allow_downgrade": {"type": "bool", "default": True},
            "upgrades": {"type": "bool", "default": False},
            "security_only": {"type": "bool", "default": False},
            "bindings_only": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    _require_python_apt(module)
    params = module.params
    if params["bindings_only"]:
        module.exit_json(changed=False, python=sys.executable, packages={}, specs=[], upgrades=[], held=[])
    cache = apt.Cache()
    names = list(dict.fromkeys(params["names"]))
    packages = {}
    unknown = []
    for name in names:
        pkg = cache[name] if name in cache else None
        versions = sorted({v.version for v in pkg.versions}, key=_cmp_key(apt_pkg)) if pkg is not None else []
        installed = pkg.installed.version if pkg is not None and pkg.installed is not None else None
        candidate = pkg.candidate.version if pkg is not None and pkg.candidate is not None else None
        known = bool(versions) or installed is not None
        packages[name] = {"known": known, "installed": installed, "candidate": candidate, "versions": versions}
        if not known:
            unknown.append(name)
    if unknown and params["require_known"]:
        module.fail_json(
            msg="unknown package(s): %s - not known to apt on this host (check the spelling, or that the "
            "host's apt sources provide them)." % ", ".join(unknown),
            packages=packages,
            unknown=unknown,
        )
    pins = {str(k): str(v) for k, v in (params["versions"] or {}).items()}
    missing = []
    downgrades = []
    for name, version in sorted(pins.items()):
        info = packages.get(name)
        if info is None or not info["known"]:
            continue
        if version not in info["versions"]:
            missing.append("%s=%s (available: %s)" % (name, version, ", ".join(info["versions"]) or "none"))
        elif info["installed"] and apt_pkg.version_compare(version, info["installed"]) < 0:
            downgrades.append("%s %s -> %s" % (name, info["installed"], version))
    if missing:
        module.fail_json(
            msg="version(s) not available on this host: %s." % "; ".join(missing), packages=packages
        )
    if downgrades and not params["allow_downgrade"]:
        module.fail_json(
            msg="refusing to downgrade %s: set allow_downgrade to true to allow it." % ", ".join(downgrades),
            packages=packages,
        )
    specs = ["%s=%s" % (n, pins[n]) if n in pins else n for n in names]

    upgrades = []
    held = []
    if params["upgrades"]:
        wanted = set(names)
        for pkg in cache:
            if not pkg.is_installed or (wanted and pkg.name not in wanted):
                continue
            installed = pkg.installed.version
            target = None
            security = False
            if params["security_only"]:
                newer = [
                    v for v in pkg.versions
                    if apt_pkg.version_compare(v.version, installed) > 0 and any(_is_security(o) for o in v.origins)
                ]
                if newer:
                    best = max(newer, key=lambda v: _cmp_key(apt_pkg)(v.version))
                    target, security = best.version, True
            elif pkg.is_upgradable and pkg.candidate is not None:
                target = pkg.candidate.version
                security = any(_is_security(o) for o in pkg.candidate.origins)
            if target is None:
                continue
            entry = {
                "name": pkg.name,
                "installed": installed,
                "target": target,
                "security": security,
                "spec": "%s=%s" % (pkg.name, target),
                "text": "%s %s -> %s%s" % (pkg.name, installed, target, " (security)" if security else ""),
            }
            if pkg._pkg.selected_state == apt_pkg.SELSTATE_HOLD:
                held.append(entry)
            else:
                upgrades.append(entry)
        upgrades.sort(key=lambda e: e["name"])
        held.sort(key=lambda e: e["name"])
    module.exit_json(
        changed=False, python=sys.executable, packages=packages, specs=specs, upgrades=upgrades, held=held
    )


def _cmp_key(apt_pkg):
    import functools

    return functools.cmp_to_key(apt_pkg.version_compare)


if __name__ == "__main__":
    main()
