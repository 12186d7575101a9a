-- Applies a job's last updates and ends its lease, in one step: the job leaves the queue
-- for good and goes under retention. ARGV: prefix, member, then the updates (see `apply`).
-- Returns 1, or 0 if the job is unknown.
local m = ARGV[2]
local applied = apply(m, 3)
if type(applied) == 'table' then return applied end
end_lease(m)
retire(m)
if applied then return 1 end
return 0
