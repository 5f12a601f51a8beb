"""Read path: facts about the host and its containers.

- ``system``, ``processes``, ``network``, ``sampler``, ``cgroup_cpu``: the host, from psutil and /proc;
- ``containers/``: Docker access (engine, one event feed, list, inspect, stats, images, networks, logs);
- ``log_analysis/``: why a container misbehaves, from its log lines and state (pure).

Modules here only read. They must never import ``tailops.changes`` or
``ansible_runner``, nor anything above them (server, runtime, tools, cli): import
tests enforce both. Looking is direct and fast, changing goes through the change
engine.
"""
