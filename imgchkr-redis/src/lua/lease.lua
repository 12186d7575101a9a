-- Hands out up to `max` jobs: first those whose lease expired, then waiting ones,
-- round-robin across tenants. ARGV: prefix, worker, max, now (ms), until (ms), now
-- (RFC 3339), in-flight cap per tenant ('' for none).
-- Returns {{member, <HGETALL>}, ...}, each job marked started and leased to the worker.
local worker, max, now, until_ms, now_text = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local cap = tonumber(ARGV[7])
local out = {}

-- Leases job m to the worker (replacing an earlier lease) and marks it started.
local function take(m)
  redis.call('ZADD', P .. 'leases', until_ms, m)
  local job = load(m)
  if not job then
    -- No record (cannot happen unless a foreign writer removed it): no lease on nothing.
    end_lease(m)
    return
  end
  delivered(job)
  put(job, 'worker', worker)
  step_started(job, now_text)
  flush(job)
  local record = redis.call('HGETALL', job.key)
  table.insert(record, 1, m)
  out[#out + 1] = record
end

-- The tenant whose turn it is, skipping tenants at the cap.
local function next_tenant()
  if not cap then return redis.call('ZRANGE', P .. 'turns', 0, 0)[1] end
  local from = 0
  while true do
    local tenants = redis.call('ZRANGE', P .. 'turns', from, from + 63)
    if #tenants == 0 then return nil end
    for _, tenant in ipairs(tenants) do
      if tonumber(redis.call('HGET', P .. 'inflight', tenant) or '0') < cap then
        return tenant
      end
    end
    from = from + 64
  end
end

for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, max)) do
  take(m)
end

-- Bounded even if the counters were out of step with the lines (a foreign writer).
local tries = max + 64
while #out < max and tries > 0 do
  tries = tries - 1
  local tenant = next_tenant()
  if not tenant then break end
  local wk = P .. 'wait:' .. tenant
  local popped = redis.call('ZPOPMIN', wk)
  if #popped == 0 then
    redis.call('ZREM', P .. 'turns', tenant)
  else
    local turn = redis.call('INCR', P .. 'turn')
    redis.call('HSET', P .. 'served', tenant, turn)
    redis.call('HINCRBY', P .. 'inflight', tenant, 1)
    redis.call('DECR', P .. 'nwait')
    if redis.call('ZCARD', wk) > 0 then
      redis.call('ZADD', P .. 'turns', turn, tenant)
    else
      redis.call('ZREM', P .. 'turns', tenant)
    end
    take(member(popped[1], tenant))
  end
end

-- Nothing left waiting: old wake-up tokens would only wake idle workers for nothing. Jobs
-- left waiting (more than this worker's free slots): a token stays for the next wait, so a
-- worker whose slot frees up looks again at once.
if tonumber(redis.call('GET', P .. 'nwait') or '0') <= 0 then
  redis.call('DEL', P .. 'bell')
elseif redis.call('LLEN', P .. 'bell') == 0 then
  redis.call('LPUSH', P .. 'bell', '1')
end
return out
