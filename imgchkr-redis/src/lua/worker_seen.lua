-- Notes a worker alive (a heartbeat without leases). ARGV: prefix, worker, now (ms), now
-- (RFC 3339), forget workers last seen at or before (ms), status, jobs held. Returns 1.
local worker = ARGV[2]
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', P .. 'workers:at', '-inf', ARGV[5])) do
  redis.call('HDEL', P .. 'workers', gone)
  redis.call('ZREM', P .. 'workers:at', gone)
end
redis.call('HSET', P .. 'workers', worker, ARGV[7] .. ' ' .. ARGV[4] .. ' ' .. ARGV[6])
redis.call('ZADD', P .. 'workers:at', ARGV[3], worker)
return 1
