-- Applies updates to a job. ARGV: prefix, member, then the updates (see `apply`).
-- Returns 1, or 0 if the job is unknown.
local applied = apply(ARGV[2], 3)
if type(applied) == 'table' then return applied end
if applied then return 1 end
return 0
