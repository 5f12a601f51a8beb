"""The Ansible adapter: the one room of tailops that talks to Ansible and ansible-runner.

Why a room of its own: the planner, the executors and the execution nodes must run
playbooks the same way every time, and what crosses the boundary (environment,
arguments, events, artifacts, processes) is where secrets leak and hosts change
unrecorded. Each module here has one of those jobs:

* :mod:`~tailops.changes.ansible.environment` — what environment reaches ``ansible-playbook``;
* :mod:`~tailops.changes.ansible.events` — ansible-runner events → :class:`~tailops.changes.models.RunEvent`
  and per-host results (with :mod:`~tailops.changes.ansible.diffs` for unified diffs and
  :mod:`~tailops.changes.ansible.envmask` hiding container env values first);
* :mod:`~tailops.changes.ansible.artifacts` — the private 0700 run dir, its ``ansible.cfg``, scrubbing, pruning;
* :mod:`~tailops.changes.ansible.processes` — killing a run's process tree (cancel, a crashed server's leftovers);
* :mod:`~tailops.changes.ansible.invoke` — the ONLY module that imports ``ansible_runner``;
  its exceptions become :class:`~tailops.errors.RunnerError` there;
* :mod:`~tailops.changes.ansible.relay` — a job's events from its worker thread to the event loop, cancel;
* :mod:`~tailops.changes.ansible.job` — :func:`~tailops.changes.ansible.job.run_playbook`, one run;
* :mod:`~tailops.changes.ansible.ping` — the read-only ad-hoc ``ping`` (``tailops inventory check``);
* ``callback_plugins/`` — loaded by ``ansible-playbook``, never imported by tailops:
  ``tailops_taskinfo`` emits the check-mode facts ansible-runner's events lack as
  ``tailops_taskinfo`` events in the same stream (no side file).

The room leans only on :mod:`tailops.changes.models` (its vocabulary), the catalog's
installed-collections root and the foundations (errors, redact); it never reaches up to
plans, the engine, executors or nodes (``tests/unit/test_import_graph.py``). This
``__init__`` imports nothing: importing one module must not load ansible-runner.
"""
