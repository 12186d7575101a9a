-- Marks jobs started for a broker's deliveries (the store half of a split engine): a queued
-- job leaves its line and is leased to the worker with no deadline (the broker holds the
-- delivery while the worker lives); a started or finished job is returned as it is (a
-- redelivery). ARGV: prefix, worker, now (RFC 3339), then the members. Returns, per member,
-- {} for a job that no longer exists or was cancelled (left unchanged), else its HGETALL.
local worker, now_text = ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local m = ARGV[i]
  local job = load(m)
  if not job or job.state == 'cancelled' then
    out[#out + 1] = {}
  else
    local wk = P .. 'wait:' .. job.tenant
    if job.state == 'queued' and redis.call('ZREM', wk, job.id) == 1 then
      redis.call('DECR', P .. 'nwait')
      if redis.call('ZCARD', wk) == 0 then redis.call('ZREM', P .. 'turns', job.tenant) end
    end
    if not is_final(job.state) then
      if not redis.call('ZSCORE', P .. 'leases', m) then
        redis.call('HINCRBY', P .. 'inflight', job.tenant, 1)
      end
      redis.call('ZADD', P .. 'leases', '+inf', m)
      put(job, 'worker', worker)
    end
    delivered(job)
    step_started(job, now_text)
    flush(job)
    out[#out + 1] = redis.call('HGETALL', job.key)
  end
end
return out
