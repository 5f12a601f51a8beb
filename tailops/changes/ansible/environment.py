"""What environment reaches ``ansible-playbook`` (and ``ansible``, ``ansible-inventory``).

Why: the server's own environment may hold secrets (tokens, cloud keys) and settings
(an ambient ``ansible.cfg``, ``ANSIBLE_*`` variables) that would change what a playbook
does or let a secret reach a playbook or its artifacts. Every Ansible child of tailops
gets exactly the environment :func:`build_env` returns, built from an allow-list:

* ``PATH``: this interpreter's bin dir (the venv: ``ansible-playbook``) first,
  then the server's PATH (the ``docker`` CLI for the docker connection);
  ``HOME``, ``LANG``/``LC_ALL=C.UTF-8``, and a short allow-list of non-secret
  locations (``TMPDIR``, ``SSH_AUTH_SOCK``, ``DOCKER_HOST``…).
* ``ANSIBLE_CONFIG`` points at a file of our own in the run's private dir
  (:data:`ANSIBLE_CFG`), so no ambient ``ansible.cfg`` (cwd, ``~``, ``/etc/ansible``)
  changes behaviour. It sets only ``internal_poll_interval = 0.01`` (no variable exists
  for it: the 1 ms default poll costs ~30 % of the controller's CPU, docs/scale.md); the
  rest comes from ``ANSIBLE_*`` variables: pipelining on, host key checking on, no
  colour, no retry files, args never echoed, unparsable inventory fatal, collections
  only from the installed ``ansible`` package (what the catalog lock pins), roles only
  from ``RunRequest.roles_path``, and the ``tailops_taskinfo`` callback enabled.
* Interpreter: ``ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3`` is the default
  for every host (no discovery, no warning); an inventory's
  ``ansible_python_interpreter`` host/group var overrides it (e.g. localhost with
  the venv python). It is deliberately not an extravar, which would override
  the inventory too.
* ``RunRequest.extra_env`` may add ``ANSIBLE_*`` keys only (tests use it for
  ``ANSIBLE_HOST_KEY_CHECKING=False``); anything else is refused.

It must never copy the server's environment wholesale or let ``extra_env`` set a
non-``ANSIBLE_*`` variable.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from tailops.changes.ansible import callback_plugins
from tailops.changes.catalog.pinning import installed_collections_root
from tailops.changes.models import RunRequest
from tailops.errors import RunnerError

__all__ = ["ANSIBLE_CFG", "DEFAULT_INTERPRETER", "build_env"]

DEFAULT_INTERPRETER = "/usr/bin/python3"
_PASS_THROUGH = (
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CONTEXT",
    "USER",
    "LOGNAME",
    "TZ",
)
_FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Keys ansible-runner itself adds to the child env in prepare(); everything else
# The run's ansible.cfg: everything else comes from ANSIBLE_* variables (build_env).
ANSIBLE_CFG = "# tailops: other settings come from ANSIBLE_* variables\n[defaults]\ninternal_poll_interval = 0.01\n"


def _venv_bin() -> str:
    candidate = Path(sys.prefix) / "bin"
    if (candidate / "ansible-playbook").exists():
        return str(candidate)
    return str(Path(sys.executable).parent)


def _collections_path() -> str:
    # The collections the catalog lock pinned (wherever `ansible` is installed: the venv, a
    # system site dir), not just this interpreter's own site-packages.
    root = installed_collections_root()
    return str(root.parent) if root is not None else sysconfig.get_paths()["purelib"]


def build_env(req: RunRequest, *, ansible_cfg: Path) -> dict[str, str]:
    """The complete, minimal environment of the ``ansible-playbook`` child."""
    bad = sorted(k for k in req.extra_env if not k.startswith("ANSIBLE_"))
    if bad:
        raise RunnerError(
            f"extra_env may only set ANSIBLE_* settings, not {', '.join(bad)}.",
            hint="Pass values a playbook needs as validated parameters (extravars).",
        )
    path_parts = [_venv_bin()]
    for part in (os.environ.get("PATH") or _FALLBACK_PATH).split(os.pathsep) + _FALLBACK_PATH.split(os.pathsep):
        if part and part not in path_parts:
            path_parts.append(part)
    env = {
        "PATH": os.pathsep.join(path_parts),
        "HOME": os.environ.get("HOME") or str(Path.home()),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update({k: os.environ[k] for k in _PASS_THROUGH if os.environ.get(k)})
    env.update(
        {
            "ANSIBLE_CONFIG": str(ansible_cfg),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PYTHON_INTERPRETER": DEFAULT_INTERPRETER,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_DISPLAY_ARGS_TO_STDOUT": "False",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
            "ANSIBLE_COLLECTIONS_PATH": _collections_path(),
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_CALLBACK_PLUGINS": str(Path(callback_plugins.__file__).parent),
            "ANSIBLE_CALLBACKS_ENABLED": "tailops_taskinfo",
        }
    )
    if req.roles_path is not None:
        env["ANSIBLE_ROLES_PATH"] = str(req.roles_path)
    env.update({k: str(v) for k, v in req.extra_env.items()})
    return env
