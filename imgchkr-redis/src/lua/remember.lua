-- Remembers a value unless a live one is held. ARGV: prefix, key, value, expires (ms),
-- now (ms), key TTL (ms). Returns {'held', value} or {'stored'}.
local key = P .. 'mem:' .. ARGV[2]
local held = redis.call('HMGET', key, 'value', 'expires')
if held[1] and held[2] and tonumber(held[2]) > tonumber(ARGV[5]) then
  return {'held', held[1]}
end
redis.call('HSET', key, 'value', ARGV[3], 'expires', ARGV[4])
redis.call('PEXPIRE', key, ARGV[6])
return {'stored'}
