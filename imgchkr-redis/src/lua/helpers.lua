-- Shared by every script (prepended to each). ARGV[1] is the key prefix; every key is built
-- from it inside the script, so the scripts need a standalone Redis (or a Sentinel-managed
-- primary), not Redis Cluster.
local P = ARGV[1]

-- A job's member in the global sets: its 36-character id, ':', its tenant. The id has a
-- fixed length, so the tenant (any string) is unambiguous.
local function member(id, tenant) return id .. ':' .. tenant end
local function split(m) return string.sub(m, 1, 36), string.sub(m, 38) end
local function job_key(m) return P .. 'job:' .. m end

-- Waiting score: rank * 2^40 + seq (higher priority first, FIFO within one).
local RANK = 1099511627776
-- Turn score of a tenant never served: its `since` seq - 2^52, before every served tenant
-- (scored by the turn it was last served in, > 0).
local UNSERVED = 4503599627370496
-- Wake-up tokens kept at most.
local BELL_CAP = 64

local function is_final(s) return s == 'success' or s == 'failed' end
local function is_terminal(s) return is_final(s) or s == 'cancelled' end

local function index_add(id, tenant, state, seq)
  local m = member(id, tenant)
  redis.call('ZADD', P .. 'list:g:any', seq, m)
  redis.call('ZADD', P .. 'list:g:' .. state, seq, m)
  redis.call('ZADD', P .. 'list:t:any:' .. tenant, seq, id)
  redis.call('ZADD', P .. 'list:t:' .. state .. ':' .. tenant, seq, id)
end

local function index_move(id, tenant, from, to, seq)
  if from == to then return end
  local m = member(id, tenant)
  redis.call('ZREM', P .. 'list:g:' .. from, m)
  redis.call('ZADD', P .. 'list:g:' .. to, seq, m)
  redis.call('ZREM', P .. 'list:t:' .. from .. ':' .. tenant, id)
  redis.call('ZADD', P .. 'list:t:' .. to .. ':' .. tenant, seq, id)
end

local function index_drop(id, tenant, state)
  local m = member(id, tenant)
  redis.call('ZREM', P .. 'list:g:any', m)
  redis.call('ZREM', P .. 'list:g:' .. state, m)
  redis.call('ZREM', P .. 'list:t:any:' .. tenant, id)
  redis.call('ZREM', P .. 'list:t:' .. state .. ':' .. tenant, id)
end

local function ring_bell()
  -- LPUSH answers the new length: trimmed only past the cap (one call, not two, per job).
  if redis.call('LPUSH', P .. 'bell', '1') > BELL_CAP then
    redis.call('LTRIM', P .. 'bell', 0, BELL_CAP - 1)
  end
end

-- Forgets the tenant's last-served turn once it has nothing waiting and nothing in flight
-- (it then queues as a tenant never served).
local function line_gone(tenant)
  if redis.call('ZCARD', P .. 'wait:' .. tenant) == 0
      and not redis.call('HGET', P .. 'inflight', tenant) then
    redis.call('HDEL', P .. 'served', tenant)
  end
end

-- Ends the job's lease and its place in flight (if it holds one).
local function end_lease(m)
  if redis.call('ZREM', P .. 'leases', m) == 0 then return end
  local _, tenant = split(m)
  redis.call('HDEL', job_key(m), 'worker')
  if redis.call('HINCRBY', P .. 'inflight', tenant, -1) <= 0 then
    redis.call('HDEL', P .. 'inflight', tenant)
    line_gone(tenant)
  end
end

-- Puts a finished or cancelled job under retention (once), scored by when it finished.
local function retire(m)
  local jk = job_key(m)
  local f = redis.call('HMGET', jk, 'state', 'retired', 'finishedMs', 'createdMs')
  if not f[1] or f[2] then return end
  local at = f[3] or f[4]
  local id, tenant = split(m)
  redis.call('HSET', jk, 'retired', '1')
  redis.call('ZADD', P .. 'fin', at, m)
  redis.call('ZADD', P .. 'fin:' .. tenant, at, id)
end

-- A job's mutable part, as the update steps read and change it. `set` collects the hash
-- fields the steps write (field, value, ...), written by one HSET in `flush`: each
-- redis.call costs the script more than the write itself.
local function load(m)
  local jk = job_key(m)
  local f = redis.call('HMGET', jk, 'state', 'seq', 'order', 'startedAt', 'deliveries')
  if not f[1] then return nil end
  local id, tenant = split(m)
  return {key = jk, id = id, tenant = tenant, state = f[1], seq = f[2], order = f[3],
    started = f[4], deliveries = tonumber(f[5]) or 0, set = {}}
end

-- Queues hash fields of the job for `flush`.
local function put(job, ...)
  local set = job.set
  for _, v in ipairs({...}) do set[#set + 1] = v end
end

-- Writes the fields queued by `put`, in order (a field put twice keeps the later value).
local function flush(job)
  if #job.set > 0 then
    redis.call('HSET', job.key, unpack(job.set))
    job.set = {}
  end
end

-- Counts one more delivery of the job (written by `flush`).
local function delivered(job)
  job.deliveries = job.deliveries + 1
  put(job, 'deliveries', tostring(job.deliveries))
end

-- Deletes a hash field of the job, after the fields queued before it.
local function unset(job, field)
  flush(job)
  redis.call('HDEL', job.key, field)
end

local function set_state(job, to)
  index_move(job.id, job.tenant, job.state, to, job.seq)
  job.state = to
end

-- The update steps, as `Job::apply` does them.
local function step_started(job, at)
  if job.state == 'cancelled' then return end
  if not is_final(job.state) and job.state ~= 'started' then
    set_state(job, 'started')
    put(job, 'state', 'started')
  end
  if not job.started then
    job.started = at
    put(job, 'startedAt', at)
  end
end

local function step_verdict(job, state, at, at_ms, errors, warnings)
  if job.state == 'cancelled' then return end
  put(job, 'state', state, 'finishedAt', at, 'finishedMs', at_ms, 'warnings', warnings)
  if errors ~= '' then
    put(job, 'errors', errors)
  else
    unset(job, 'errors')
  end
  set_state(job, state)
end

local function step_gave_up(job, at, at_ms, errors)
  if is_terminal(job.state) then return end
  put(job, 'state', 'failed', 'finishedAt', at, 'finishedMs', at_ms, 'errors', errors)
  set_state(job, 'failed')
end

-- One record per event, in first-recorded order (`order` lists the events).
local function step_delivery(job, event, record)
  local order = job.order or ''
  if string.find(',' .. order .. ',', ',' .. event .. ',', 1, true) then
    put(job, 'n:' .. event, record)
  else
    if order ~= '' then order = order .. ',' .. event else order = event end
    job.order = order
    put(job, 'order', order, 'n:' .. event, record)
  end
end

-- How many arguments each update kind takes, its name included.
local WIDTH = {started = 2, verdict = 6, gaveup = 4, delivery = 3}

-- Applies the updates in ARGV[from..] to job m, in order. Every update is checked before any
-- is applied (a script error does not undo writes). Returns false if the job is unknown.
local function apply(m, from)
  local i = from
  while i <= #ARGV do
    local width = WIDTH[ARGV[i]]
    if not width or i + width - 1 > #ARGV then
      return redis.error_reply('imgchkr: malformed update at ' .. i)
    end
    i = i + width
  end
  local job = load(m)
  if not job then return false end
  i = from
  while i <= #ARGV do
    local kind = ARGV[i]
    if kind == 'started' then
      step_started(job, ARGV[i + 1])
    elseif kind == 'verdict' then
      step_verdict(job, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
    elseif kind == 'gaveup' then
      step_gave_up(job, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    else
      step_delivery(job, ARGV[i + 1], ARGV[i + 2])
    end
    i = i + WIDTH[kind]
  end
  flush(job)
  return true
end
