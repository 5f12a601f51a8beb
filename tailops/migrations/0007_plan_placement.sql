-- Execution nodes: where a plan's hosts run. JSON of the plan's placement (shard map
-- digest; per shard the node, its hosts and the SHA-256 of the job bundle sent to it),
-- NULL for a plan that runs every host on the controller (every plan before nodes).
-- The placement is part of the plan id, so an approval binds to it.
ALTER TABLE plans ADD COLUMN placement TEXT;
