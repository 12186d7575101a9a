-- Forgets a job recorded by `submit` whose message the broker did not confirm, if it is
-- still queued (as if never submitted). ARGV: prefix, member. Returns 1 if it did, else 0.
local m = ARGV[2]
local job = load(m)
if not job or job.state ~= 'queued' then return 0 end
local wk = P .. 'wait:' .. job.tenant
if redis.call('ZREM', wk, job.id) == 0 then return 0 end
redis.call('DECR', P .. 'nwait')
if redis.call('ZCARD', wk) == 0 then
  redis.call('ZREM', P .. 'turns', job.tenant)
  line_gone(job.tenant)
end
index_drop(job.id, job.tenant, 'queued')
if tonumber(redis.call('ZINCRBY', P .. 'count', -1, job.tenant)) <= 0 then
  redis.call('ZREM', P .. 'count', job.tenant)
end
redis.call('DEL', job.key)
return 1
