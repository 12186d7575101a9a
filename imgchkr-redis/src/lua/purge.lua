-- Expires finished jobs past retention, leaving tombstones, and drops old tombstones.
-- ARGV: prefix, now (ms), expire jobs finished at or before (ms), most jobs per tenant,
-- drop tombstones made at or before (ms), most tombstones, budget.
-- Returns how many jobs expired (at most the budget; as many tombstones at most are dropped
-- by age, and as many by count).
local now, max_jobs, max_tombs, budget = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[6]),
  tonumber(ARGV[7])
local expired = 0

-- Forgets job m, leaving a tombstone.
local function expire(m)
  local id, tenant = split(m)
  local jk = job_key(m)
  local state = redis.call('HGET', jk, 'state')
  redis.call('ZREM', P .. 'fin', m)
  redis.call('ZREM', P .. 'fin:' .. tenant, id)
  if not state then return end
  index_drop(id, tenant, state)
  redis.call('DEL', jk)
  if tonumber(redis.call('ZINCRBY', P .. 'count', -1, tenant)) <= 0 then
    redis.call('ZREM', P .. 'count', tenant)
  end
  redis.call('ZADD', P .. 'tomb', now, m)
  expired = expired + 1
end

for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'fin', '-inf', ARGV[3], 'LIMIT', 0, budget)) do
  expire(m)
end

-- Tenants holding more than their count: their oldest finished jobs go (one tenant's volume
-- never evicts another's).
local crowded = {}
if expired < budget then
  crowded = redis.call('ZRANGEBYSCORE', P .. 'count', '(' .. max_jobs, '+inf', 'LIMIT', 0, budget)
end
for _, tenant in ipairs(crowded) do
  while expired < budget
      and tonumber(redis.call('ZSCORE', P .. 'count', tenant) or '0') > max_jobs do
    local oldest = redis.call('ZRANGE', P .. 'fin:' .. tenant, 0, 0)[1]
    if not oldest then break end
    expire(member(oldest, tenant))
  end
end

for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'tomb', '-inf', ARGV[5], 'LIMIT', 0, budget)) do
  redis.call('ZREM', P .. 'tomb', m)
end
local over = redis.call('ZCARD', P .. 'tomb') - max_tombs
if over > 0 then redis.call('ZPOPMIN', P .. 'tomb', math.min(over, budget)) end
return expired
