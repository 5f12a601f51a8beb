"""Execution nodes: run shards of a run on other machines over ansible-runner's worker stream.

Public API (what the engine's
:class:`~tailops.changes.executors.sharded.ShardedExecutor` calls): :func:`~.shards.shard_map` /
:func:`~.shards.inventory_groups` (which host runs where),
:func:`~.distribute.run_sharded` (run every shard, local and remote, merged into
one result), :func:`~.remote.run_on_node` (one node), :mod:`.transport`
(``info``/``cancel``/version check) and :mod:`.health` (what ``tailops nodes``
and ``list_nodes`` show). The node side is :mod:`.node_wrapper` (stdlib only).
See docs/nodes.md.
"""
