-- ARGV: prefix, member. Returns {'found', <HGETALL>}, {'expired'} or {'unknown'}.
local m = ARGV[2]
local job = redis.call('HGETALL', job_key(m))
if #job > 0 then
  table.insert(job, 1, 'found')
  return job
end
if redis.call('ZSCORE', P .. 'tomb', m) then return {'expired'} end
return {'unknown'}
