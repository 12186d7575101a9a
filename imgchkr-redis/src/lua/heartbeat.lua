-- Pushes back the leases still held by the worker and notes it alive. ARGV: prefix, worker,
-- until (ms), now (ms), now (RFC 3339), forget workers last seen at or before (ms), status,
-- then the members of the leases. Returns the (1-based) positions of the leases no longer
-- held.
local worker, until_ms = ARGV[2], ARGV[3]
local lost = {}
for i = 8, #ARGV do
  local m = ARGV[i]
  if redis.call('ZSCORE', P .. 'leases', m)
      and redis.call('HGET', job_key(m), 'worker') == worker then
    redis.call('ZADD', P .. 'leases', 'XX', until_ms, m)
  else
    lost[#lost + 1] = i - 7
  end
end
local held = #ARGV - 7 - #lost
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', P .. 'workers:at', '-inf', ARGV[6])) do
  redis.call('HDEL', P .. 'workers', gone)
  redis.call('ZREM', P .. 'workers:at', gone)
end
redis.call('HSET', P .. 'workers', worker, held .. ' ' .. ARGV[5] .. ' ' .. ARGV[7])
redis.call('ZADD', P .. 'workers:at', ARGV[4], worker)
return lost
