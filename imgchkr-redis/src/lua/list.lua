-- ARGV: prefix, '1' and the tenant (or '0' and ''), state ('any' or a state), cursor member
-- (or ''), limit. Returns {member, <HGETALL>} of each job, newest first. A cursor that is unknown or
-- of another tenant gives an empty page.
local scoped, tenant, state, cursor = ARGV[2] == '1', ARGV[3], ARGV[4], ARGV[5]
local index = P .. 'list:g:' .. state
if scoped then index = P .. 'list:t:' .. state .. ':' .. tenant end
local max = '+inf'
if cursor ~= '' then
  local _, owner = split(cursor)
  if scoped and owner ~= tenant then return {} end
  local seq = redis.call('HGET', job_key(cursor), 'seq')
  if not seq then return {} end
  max = '(' .. seq
end
local out = {}
for _, entry in ipairs(redis.call('ZREVRANGEBYSCORE', index, max, '-inf', 'LIMIT', 0, ARGV[6])) do
  local m = entry
  if scoped then m = member(entry, tenant) end
  local job = redis.call('HGETALL', job_key(m))
  if #job > 0 then
    table.insert(job, 1, m)
    out[#out + 1] = job
  end
end
return out
