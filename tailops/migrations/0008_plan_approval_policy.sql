-- Team approval policy per inventory group: the approval requirement a plan was given at plan
-- time (how many distinct people, which rule said so, the host groups it was decided on), as
-- JSON. Recorded so a config edit between plan and apply can never lower it; NULL for plans
-- stored before (the current config decides for them).
ALTER TABLE plans ADD COLUMN approval_policy TEXT;
