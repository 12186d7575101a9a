-- Records a job and queues it, in one step. ARGV: prefix, member, priority rank, created
-- (ms), capacity, tenant share, then the job's hash fields as field/value pairs.
-- Returns {'new'}, {'existing', <HGETALL>} (nothing queued), {'full', 'queue' | 'tenant'}.
local m = ARGV[2]
local jk = job_key(m)
if redis.call('EXISTS', jk) == 1 then
  local existing = redis.call('HGETALL', jk)
  table.insert(existing, 1, 'existing')
  return existing
end
if tonumber(redis.call('GET', P .. 'nwait') or '0') >= tonumber(ARGV[5]) then
  return {'full', 'queue'}
end
local id, tenant = split(m)
local wk = P .. 'wait:' .. tenant
local before = redis.call('ZCARD', wk)
if before >= tonumber(ARGV[6]) then return {'full', 'tenant'} end
local rank = tonumber(ARGV[3])
local seq = redis.call('INCR', P .. 'seq')
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', jk, 'seq', seq, 'createdMs', ARGV[4], 'state', 'queued', unpack(fields))
index_add(id, tenant, 'queued', seq)
redis.call('ZINCRBY', P .. 'count', 1, tenant)
-- A key submitted again after it expired is a new job.
redis.call('ZREM', P .. 'tomb', m)
redis.call('ZADD', wk, rank * RANK + seq, id)
redis.call('INCR', P .. 'nwait')
if before == 0 then
  local served = redis.call('HGET', P .. 'served', tenant)
  local turn = seq - UNSERVED
  if served then turn = tonumber(served) end
  redis.call('ZADD', P .. 'turns', turn, tenant)
end
ring_bell()
return {'new'}
