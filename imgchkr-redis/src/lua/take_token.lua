-- Takes a token from a bucket (created full). ARGV: prefix, name, rate (tokens/s), burst,
-- now (µs), key TTL (ms, 0: none). Returns {1 granted | 0 empty, tokens left}.
local key = P .. 'bucket:' .. ARGV[2]
local rate, burst, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local held = redis.call('HMGET', key, 'tokens', 'at')
local tokens, last = burst, now
if held[1] and held[2] then tokens, last = tonumber(held[1]), tonumber(held[2]) end
-- A clock that goes back adds nothing.
tokens = math.min(tokens + math.max(0, now - last) / 1000000 * rate, burst)
if now > last then last = now end
local granted = 0
if tokens >= 1 then
  tokens = tokens - 1
  granted = 1
end
local left = string.format('%.17g', tokens)
redis.call('HSET', key, 'tokens', left, 'at', string.format('%.17g', last))
if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', key, ARGV[6]) else redis.call('PERSIST', key) end
return {granted, left}
