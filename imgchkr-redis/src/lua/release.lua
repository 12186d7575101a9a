-- Gives a lease up: its deadline becomes -inf, so the next lease of any worker takes it over.
-- ARGV: prefix, member, worker. Returns 1 if the worker held it, else 0.
local m, worker = ARGV[2], ARGV[3]
if redis.call('ZSCORE', P .. 'leases', m) and redis.call('HGET', job_key(m), 'worker') == worker then
  redis.call('ZADD', P .. 'leases', 'XX', '-inf', m)
  ring_bell()
  return 1
end
return 0
