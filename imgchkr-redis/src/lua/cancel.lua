-- Cancels a queued job. ARGV: prefix, member, at (RFC 3339), at (ms).
-- Returns {'cancelled', <HGETALL>}, {'notqueued', <HGETALL>}, {'expired'} or {'unknown'}.
local m = ARGV[2]
local job = load(m)
if not job then
  if redis.call('ZSCORE', P .. 'tomb', m) then return {'expired'} end
  return {'unknown'}
end
local wk = P .. 'wait:' .. job.tenant
if job.state ~= 'queued' or redis.call('ZREM', wk, job.id) == 0 then
  local held = redis.call('HGETALL', job.key)
  table.insert(held, 1, 'notqueued')
  return held
end
redis.call('DECR', P .. 'nwait')
if redis.call('ZCARD', wk) == 0 then
  redis.call('ZREM', P .. 'turns', job.tenant)
  line_gone(job.tenant)
end
redis.call('HSET', job.key, 'state', 'cancelled', 'finishedAt', ARGV[3], 'finishedMs', ARGV[4])
set_state(job, 'cancelled')
retire(m)
local done = redis.call('HGETALL', job.key)
table.insert(done, 1, 'cancelled')
return done
