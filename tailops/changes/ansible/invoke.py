"""The one call into ansible-runner: the only module of tailops that imports ``ansible_runner``.

Why one: ansible-runner gives kwargs, a private data dir format (``env/settings``,
``env/extravars``), status strings, raw event dicts, a polled ``cancel_callback`` and
its own exceptions; each of those is a place where a secret could leak or a library
error escape untranslated. Here they are used once, for playbook runs
(:mod:`~tailops.changes.ansible.job`) and ad-hoc module runs
(:mod:`~tailops.changes.ansible.ping`) alike.

``ansible_runner`` is imported inside :func:`run_runner`, not at module level: a server
that never runs a playbook starts without loading ansible-runner (and pexpect) at all.

It must never: let the child inherit what ansible-runner merges in from ``os.environ``
(only the environment the caller built plus the keys ansible-runner itself adds),
put extravars on the command line (they go to a 0600 ``env/extravars`` file, passed as
``-e @file``), or let an ansible-runner exception escape (it becomes
:class:`~tailops.errors.RunnerError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tailops.changes.ansible.artifacts import secure_dir, write_private
from tailops.errors import RunnerError
from tailops.redact import redact_text

__all__ = ["POLL_S", "run_runner", "write_runner_inputs"]

POLL_S = 0.2  # how often ansible-runner checks cancel/timeout while Ansible is quiet
# Keys ansible-runner itself adds to the child env in prepare(); everything else
# it merged in from os.environ is dropped again.
_RUNNER_KEYS = frozenset(
    {
        "ANSIBLE_CALLBACK_PLUGINS",
        "ANSIBLE_STDOUT_CALLBACK",
        "ANSIBLE_RETRY_FILES_ENABLED",
        "ANSIBLE_HOST_KEY_CHECKING",
        "AWX_ISOLATED_DATA_DIR",
        "ANSIBLE_ROLES_PATH",
        "RUNNER_OMIT_EVENTS",
        "RUNNER_ONLY_FAILED_EVENTS",
    }
)
# ... and these two for an ad-hoc (module) run.
_ADHOC_RUNNER_KEYS = frozenset({"ANSIBLE_LOAD_CALLBACK_PLUGINS", "AD_HOC_COMMAND_ID"})


def write_runner_inputs(private: Path, extravars: Mapping[str, Any] | None = None) -> None:
    """ansible-runner's ``env/settings`` (and ``env/extravars``) in the private dir, 0600.

    ansible-runner reads its settings only from this file (a ``settings=`` kwarg is
    dropped without it): ``pexpect_timeout`` is how often ``cancel_callback`` is polled.
    """
    secure_dir(private / "env")
    write_private(
        private / "env" / "settings", json.dumps({"pexpect_timeout": POLL_S, "suppress_ansible_output": True})
    )
    if extravars:
        write_private(private / "env" / "extravars", json.dumps(dict(extravars), default=str))


def run_runner(
    private: Path,
    *,
    ident: str,
    env: Mapping[str, str],
    what: str,
    event_handler: Callable[[dict[str, Any]], bool],
    cancel_callback: Callable[[], bool],
    on_prepared: Callable[[Path], None] | None = None,
    **target: Any,
) -> tuple[str, int | None]:
    """Run ansible-runner on the private dir ``private`` and return ``(status, rc)``. Blocking.

    ``target`` names what runs: ``playbook``/``inventory``/``forks``/``cmdline``, or
    ``module``/``host_pattern``/``inventory``/``forks``. ``env`` is the child's
    complete environment (:func:`~tailops.changes.ansible.environment.build_env`).
    ``on_prepared`` gets the run's artifact dir once ansible-runner has prepared it,
    before anything starts. ``what`` completes the error message "ansible-runner could
    not …" of the :class:`~tailops.errors.RunnerError` any ansible-runner or OS error becomes.
    """
    from ansible_runner.config.runner import RunnerConfig
    from ansible_runner.exceptions import AnsibleRunnerException
    from ansible_runner.runner import Runner

    kept = _RUNNER_KEYS | _ADHOC_RUNNER_KEYS if "module" in target else _RUNNER_KEYS
    try:
        config = RunnerConfig(
            private_data_dir=str(private),
            ident=ident,
            envvars=dict(env),
            quiet=True,
            suppress_env_files=True,
            fact_cache_type="memory",
            **target,
        )
        config.prepare()
        # Drop everything ansible-runner merged in from os.environ.
        config.env = {k: v for k, v in config.env.items() if k in env or k in kept}
        if on_prepared is not None:
            on_prepared(Path(config.artifact_dir))
        status, rc = Runner(config, event_handler=event_handler, cancel_callback=cancel_callback).run()
    except (AnsibleRunnerException, OSError) as exc:
        raise RunnerError(
            f"ansible-runner could not {what}: {redact_text(str(exc))[:500]}",
            hint="Check that ansible is installed in the server's environment.",
        ) from exc
    return str(status), rc if isinstance(rc, int) else None
