-- The queue's figures. ARGV: prefix. Returns {waiting, in flight, {tenant, waiting,
-- in flight, ...}, {worker, 'held at status', ...}}.
local tenants, seen = {}, {}
for _, tenant in ipairs(redis.call('ZRANGE', P .. 'turns', 0, -1)) do
  seen[tenant] = true
  tenants[#tenants + 1] = tenant
end
for _, tenant in ipairs(redis.call('HKEYS', P .. 'inflight')) do
  if not seen[tenant] then tenants[#tenants + 1] = tenant end
end
local lines = {}
for _, tenant in ipairs(tenants) do
  lines[#lines + 1] = tenant
  lines[#lines + 1] = tostring(redis.call('ZCARD', P .. 'wait:' .. tenant))
  lines[#lines + 1] = redis.call('HGET', P .. 'inflight', tenant) or '0'
end
return {redis.call('GET', P .. 'nwait') or '0', tostring(redis.call('ZCARD', P .. 'leases')),
  lines, redis.call('HGETALL', P .. 'workers')}
