//! The Lua scripts: every step that reads and then writes runs as one script, so it is atomic
//! with respect to every other client.
//!
//! Scripts touch keys derived inside the script (a tenant's stream, an evicted job), all under
//! the one prefix: fine on a standalone Redis or a Sentinel-managed primary, which is what
//! this adapter targets (not Redis Cluster).

use redis::Script;

/// Helpers shared by the store scripts.
const STORE_HELPERS: &str = r#"
local STATES = {'any', 'queued', 'started', 'success', 'failed'}
local function is_final(s) return s == 'success' or s == 'failed' end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function idx(ip, state, tenant)
  if tenant then return ip .. state .. ':t:' .. tenant end
  return ip .. state .. ':g'
end
local function index(ip, id, tenant, state, seq)
  redis.call('ZADD', idx(ip, 'any', false), seq, id)
  redis.call('ZADD', idx(ip, state, false), seq, id)
  if tenant then
    redis.call('ZADD', idx(ip, 'any', tenant), seq, id)
    redis.call('ZADD', idx(ip, state, tenant), seq, id)
  end
end
local function move(ip, id, tenant, from, to, seq)
  redis.call('ZREM', idx(ip, from, false), id)
  redis.call('ZADD', idx(ip, to, false), seq, id)
  if tenant then
    redis.call('ZREM', idx(ip, from, tenant), id)
    redis.call('ZADD', idx(ip, to, tenant), seq, id)
  end
end
local function unindex(ip, id, tenant)
  for _, s in ipairs(STATES) do
    redis.call('ZREM', idx(ip, s, false), id)
    if tenant then redis.call('ZREM', idx(ip, s, tenant), id) end
  end
end
-- A `finished` member: the 36-character id, then ':' and the tenant if the job has one.
local function fin_member(id, tenant)
  if tenant then return id .. ':' .. tenant end
  return id
end
local function evict(jp, ip, member)
  local id = string.sub(member, 1, 36)
  local tenant = false
  if #member > 36 then tenant = string.sub(member, 38) end
  redis.call('DEL', jp .. id)
  unindex(ip, id, tenant)
end
-- Retention, as the embedded store: finished jobs older than max_age go, then the oldest
-- finished jobs while more than max_jobs are held. At most `budget` evictions per call.
-- `now`: the time in µs if the caller has it (else read).
local function retain(jp, ip, fin, max_age_us, max_jobs, budget, now)
  local old = redis.call('ZRANGEBYSCORE', fin, '-inf', (now or now_us()) - max_age_us,
    'LIMIT', 0, budget)
  for _, m in ipairs(old) do
    evict(jp, ip, m)
    redis.call('ZREM', fin, m)
  end
  budget = budget - #old
  local all = idx(ip, 'any', false)
  while budget > 0 and redis.call('ZCARD', all) > max_jobs do
    local popped = redis.call('ZPOPMIN', fin)
    if #popped == 0 then break end
    evict(jp, ip, popped[1])
    budget = budget - 1
  end
end

-- A new job (KEYS 1–3: job, seq, finished; ARGV 1–9 as INSERT's), its field/value pairs
-- from ARGV[first]: stored under the retention rules, indexed, expiring once final.
local function record_new(first)
  local id, jp, ip = ARGV[1], ARGV[4], ARGV[5]
  local tenant = false
  if ARGV[2] == '1' then tenant = ARGV[3] end
  retain(jp, ip, KEYS[3], tonumber(ARGV[6]), tonumber(ARGV[8]), tonumber(ARGV[9]))
  local seq = redis.call('INCR', KEYS[2])
  local fields = {}
  for i = first, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], 'seq', seq, unpack(fields))
  local state = redis.call('HGET', KEYS[1], 'state')
  index(ip, id, tenant, state, seq)
  if is_final(state) then
    redis.call('ZADD', KEYS[3], now_us(), fin_member(id, tenant))
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
  end
end
"#;

/// KEYS: job, seq, finished. ARGV: id, has_tenant ('0'|'1'), tenant, job prefix, index
/// prefix, max_age µs, max_age ms, max_jobs, budget, then field/value pairs.
/// Returns `{}` when inserted, the existing job's HGETALL otherwise.
const INSERT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
record_new(10)
return {}
"#;

/// KEYS: job, seq, finished, then the queue's: stream, waiting, depth, rotation, tenants,
/// bell. ARGV: as INSERT's first nine (id … budget), then the queue's: tenant, capacity,
/// per_tenant, group, bell cap, then the job's field/value pairs (from `ARGV[15]`).
/// A submission in one step: the job is recorded and queued (as INSERT then PUSH), or
/// nothing is done. Returns `{'new', depth}`, `{'full', depth}` (the queue or the tenant's
/// share is full) or `{'existing', HGETALL...}` (a job with this id exists: nothing queued),
/// `depth` being the entries waiting (all tenants) after the call.
const SUBMIT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local existing = redis.call('HGETALL', KEYS[1])
  table.insert(existing, 1, 'existing')
  return existing
end
local qt = ARGV[10]
local depth = tonumber(redis.call('GET', KEYS[6]) or '0')
if depth >= tonumber(ARGV[11]) then return {'full', tostring(depth)} end
local mine = tonumber(redis.call('HGET', KEYS[5], qt) or '0')
if mine >= tonumber(ARGV[12]) then return {'full', tostring(depth)} end
record_new(15)
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.pcall('XGROUP', 'CREATE', KEYS[4], ARGV[13], '0', 'MKSTREAM')
end
redis.call('XADD', KEYS[4], '*', 'job', ARGV[1])
depth = redis.call('INCR', KEYS[6])
redis.call('HINCRBY', KEYS[5], qt, 1)
if mine == 0 then redis.call('RPUSH', KEYS[7], qt) end
redis.call('SADD', KEYS[8], qt)
redis.call('LPUSH', KEYS[9], '1')
redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[14]) - 1)
return {'new', tostring(depth)}
"#;

/// Applies a batch of job updates (a store helper). `apply_updates(job, finished, first)`
/// reads from `ARGV[first]`: id, job prefix, index prefix, max_age µs, max_age ms, max_jobs,
/// budget, then one or more updates, each a kind and its arguments:
/// - `started`: at;
/// - `verdict` / `park` (a verdict only if none is in yet): state, at, errors JSON or '';
/// - `delivery`: event, record JSON.
///
/// The updates are applied in order. Returns 0 if the job is unknown or expired (nothing
/// done), 1 if applied, 2 if a park found the job already finished (the rest still applied).
/// A job its own verdict evicts (retention) takes no further updates.
const UPDATE_HELPERS: &str = r#"
local function apply_updates(job, fin, first)
  local cur = redis.call('HMGET', job, 'state', 'tenant', 'seq', 'order', 'startedAt', 'errors')
  local state, tenant, seq, order, started, errors = cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]
  -- Every job hash has a state: none, the job is unknown or expired.
  if not state then return 0 end
  local id, jp, ip = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local i, code = first + 7, 1
  while i <= #ARGV do
    local kind, a = ARGV[i], i + 1
    if kind == 'started' then
      local set = {}
      if not is_final(state) and state ~= 'started' then
        move(ip, id, tenant, state, 'started', seq)
        state = 'started'
        set = {'state', 'started'}
      end
      if not started then
        started = ARGV[a]
        set[#set + 1] = 'startedAt'
        set[#set + 1] = started
      end
      if #set > 0 then redis.call('HSET', job, unpack(set)) end
      i = a + 1
    elseif kind == 'verdict' or kind == 'park' then
      local was_final = is_final(state)
      if kind == 'park' and was_final then
        code = 2
      else
        local new = ARGV[a]
        if ARGV[a + 2] ~= '' then
          redis.call('HSET', job, 'state', new, 'finishedAt', ARGV[a + 1], 'errors', ARGV[a + 2])
          errors = ARGV[a + 2]
        else
          redis.call('HSET', job, 'state', new, 'finishedAt', ARGV[a + 1])
          if errors then redis.call('HDEL', job, 'errors') end
          errors = false
        end
        if new ~= state then move(ip, id, tenant, state, new, seq) end
        state = new
        if not was_final then
          local now = now_us()
          redis.call('ZADD', fin, now, fin_member(id, tenant))
          redis.call('PEXPIRE', job, ARGV[first + 4])
          retain(jp, ip, fin, tonumber(ARGV[first + 3]), tonumber(ARGV[first + 5]),
            tonumber(ARGV[first + 6]), now)
          -- Evicted by its own retention (a tiny max_jobs): nothing more to record.
          if redis.call('EXISTS', job) == 0 then return code end
        end
      end
      i = a + 3
    elseif kind == 'delivery' then
      local event = ARGV[a]
      if string.find(',' .. (order or '') .. ',', ',' .. event .. ',', 1, true) then
        redis.call('HSET', job, 'n:' .. event, ARGV[a + 1])
      else
        if order and order ~= '' then order = order .. ',' .. event else order = event end
        redis.call('HSET', job, 'order', order, 'n:' .. event, ARGV[a + 1])
      end
      i = a + 2
    else
      return redis.error_reply('unknown update ' .. kind)
    end
  end
  return code
end
"#;

/// KEYS: job, finished. ARGV: as `apply_updates` reads them from `ARGV[1]` (one or more
/// updates, applied in order, atomically). Returns 0 (unknown job), 1 (applied) or 2 (a
/// park found the job already finished).
const UPDATE: &str = r#"
return apply_updates(KEYS[1], KEYS[2], 1)
"#;

/// KEYS: job, finished. ARGV: id, index prefix. Forgets the job (a submission that could not
/// be queued); returns its HGETALL, `{}` if unknown.
const REMOVE: &str = r#"
local job = redis.call('HGETALL', KEYS[1])
if #job == 0 then return {} end
local tenant = redis.call('HGET', KEYS[1], 'tenant')
redis.call('DEL', KEYS[1])
unindex(ARGV[2], ARGV[1], tenant)
redis.call('ZREM', KEYS[2], fin_member(ARGV[1], tenant))
return job
"#;

/// KEYS: the index. ARGV: job prefix, cursor id or '', limit, scan budget.
/// Returns the HGETALL of each live job, newest first. An unknown or expired cursor gives `{}`.
const LIST: &str = r#"
local jp = ARGV[1]
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local max = '+inf'
if ARGV[2] ~= '' then
  local seq = redis.call('HGET', jp .. ARGV[2], 'seq')
  if not seq then return {} end
  max = '(' .. seq
end
local out = {}
while #out < limit and budget > 0 do
  local want = math.min(limit - #out, budget)
  local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES', 'LIMIT', 0, want)
  if #ids == 0 then break end
  for i = 1, #ids, 2 do
    local job = redis.call('HGETALL', jp .. ids[i])
    if #job > 0 then out[#out + 1] = job end
    max = '(' .. ids[i + 1]
  end
  budget = budget - #ids / 2
end
return out
"#;

/// KEYS: stream, waiting, depth, rotation, tenants, bell. ARGV: tenant, job id, capacity,
/// per_tenant, group, bell cap. Returns the entry id, or '-1' (queue full) / '-2' (tenant's
/// share full).
const PUSH: &str = r#"
local depth = tonumber(redis.call('GET', KEYS[3]) or '0')
if depth >= tonumber(ARGV[3]) then return '-1' end
local mine = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if mine >= tonumber(ARGV[4]) then return '-2' end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[5], '0', 'MKSTREAM')
end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
redis.call('INCR', KEYS[3])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if mine == 0 then redis.call('RPUSH', KEYS[4], ARGV[1]) end
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('LPUSH', KEYS[6], '1')
redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[6]) - 1)
return entry
"#;

/// KEYS: waiting, depth, rotation, bell. ARGV: stream prefix, group, consumer, most
/// entries, job prefix.
/// Takes up to `most` entries, one at a time round-robin across tenants (XREADGROUP, so each
/// becomes pending for `consumer`), each with its job record. Returns
/// `{depth left, {{tenant, entry id, job id, job HGETALL}, ...}}` (no entries when nothing
/// waits). A tenant in the rotation whose stream has nothing new (counters out of step, e.g.
/// after a restore) is dropped and its counters are corrected. When nothing is left waiting
/// the wake-up tokens are dropped (they would only wake idle workers for nothing).
const POP: &str = r#"
local most = tonumber(ARGV[4])
local out = {}
local tries = redis.call('LLEN', KEYS[3]) + most
local depth = nil
while #out < most and tries > 0 do
  tries = tries - 1
  local tenant = redis.call('LPOP', KEYS[3])
  if not tenant then break end
  local res = redis.pcall('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', 1,
    'STREAMS', ARGV[1] .. tenant, '>')
  local entry = nil
  if type(res) == 'table' and not res.err and res[1] then entry = res[1][2][1] end
  if entry then
    local left = redis.call('HINCRBY', KEYS[1], tenant, -1)
    if left > 0 then
      redis.call('RPUSH', KEYS[3], tenant)
    else
      redis.call('HDEL', KEYS[1], tenant)
    end
    depth = redis.call('DECR', KEYS[2])
    if depth < 0 then
      redis.call('SET', KEYS[2], 0)
      depth = 0
    end
    local job = ''
    for i = 1, #entry[2], 2 do
      if entry[2][i] == 'job' then job = entry[2][i + 1] end
    end
    local record = {}
    if job ~= '' then record = redis.call('HGETALL', ARGV[5] .. job) end
    out[#out + 1] = {tenant, entry[1], job, record}
  else
    local stale = tonumber(redis.call('HGET', KEYS[1], tenant) or '0')
    redis.call('HDEL', KEYS[1], tenant)
    depth = redis.call('DECRBY', KEYS[2], stale)
    if depth < 0 then
      redis.call('SET', KEYS[2], 0)
      depth = 0
    end
  end
end
if depth == nil then depth = tonumber(redis.call('GET', KEYS[2]) or '0') end
if depth == 0 then redis.call('DEL', KEYS[4]) end
return {tostring(depth), out}
"#;

/// KEYS: tenants, stats. ARGV: stream prefix, group, consumer, min idle ms, max scan steps.
/// Counts pending entries over every tenant stream, and claims (XAUTOCLAIM) for `consumer`
/// the first entry idle for at least min idle. Returns `{pending}` or
/// `{pending, tenant, entry id, job id, deliveries}`, all as strings, counting a claim in the
/// stats hash (`reclaimed`). A stream left with no entries at all is deleted (with its group
/// and consumers) and its tenant forgotten.
const RECLAIM: &str = r#"
local pending, found = 0, nil
for _, tenant in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local stream = ARGV[1] .. tenant
  local summary = redis.pcall('XPENDING', stream, ARGV[2])
  if type(summary) ~= 'table' or summary.err then
    if redis.call('EXISTS', stream) == 0 then redis.call('SREM', KEYS[1], tenant) end
  else
    pending = pending + summary[1]
    if summary[1] == 0 and redis.call('XLEN', stream) == 0 then
      redis.call('DEL', stream)
      redis.call('SREM', KEYS[1], tenant)
    elseif summary[1] > 0 and not found then
      local cursor, steps = '0-0', tonumber(ARGV[5])
      repeat
        local res = redis.call('XAUTOCLAIM', stream, ARGV[2], ARGV[3], ARGV[4], cursor,
          'COUNT', 1)
        cursor = res[1]
        local entry = res[2][1]
        if type(entry) == 'table' then
          local job = ''
          for i = 1, #entry[2], 2 do
            if entry[2][i] == 'job' then job = entry[2][i + 1] end
          end
          local info = redis.call('XPENDING', stream, ARGV[2], entry[1], entry[1], 1)
          local deliveries = 1
          if info[1] then deliveries = info[1][4] end
          found = {tenant, entry[1], job, tostring(deliveries)}
        end
        steps = steps - 1
      until found or cursor == '0-0' or steps <= 0
    end
  end
end
if found then
  redis.call('HINCRBY', KEYS[2], 'reclaimed', 1)
  return {tostring(pending), found[1], found[2], found[3], found[4]}
end
return {tostring(pending)}
"#;

/// KEYS: depth, tenants, stats. ARGV: stream prefix, group. Read-only.
/// Returns `{depth, pending, reclaimed, parked}`: entries waiting, entries handed out and not
/// acknowledged (all tenant streams), and the deployment's reclaim and park counts so far.
const STATS: &str = r#"
local depth = tonumber(redis.call('GET', KEYS[1]) or '0')
local pending = 0
for _, tenant in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local summary = redis.pcall('XPENDING', ARGV[1] .. tenant, ARGV[2])
  if type(summary) == 'table' and not summary.err then pending = pending + summary[1] end
end
local reclaimed = tonumber(redis.call('HGET', KEYS[3], 'reclaimed') or '0')
local parked = tonumber(redis.call('HGET', KEYS[3], 'parked') or '0')
return {depth, pending, reclaimed, parked}
"#;

/// KEYS: stream. ARGV: group, consumer, entry id. Resets the entry's idle time if `consumer`
/// still holds it (XCLAIM JUSTID does not count a delivery). Returns 1, or 0 if it is no
/// longer ours (reclaimed by another worker, or acknowledged).
const HEARTBEAT: &str = r#"
local info = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if type(info) ~= 'table' or info.err or not info[1] or info[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"#;

/// KEYS: stream. ARGV: group, entry id. XACK then XDEL (keeps the stream short). Returns
/// how many were acknowledged (0: already acknowledged, or the stream is gone).
const ACK: &str = r#"
local acked = redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
if type(acked) ~= 'number' then acked = 0 end
redis.pcall('XDEL', KEYS[1], ARGV[2])
return acked
"#;

/// KEYS: stream, job, finished, stats. ARGV: group, entry id, parked ('0'|'1'), then
/// (optionally) the job's last updates as `apply_updates` reads them from `ARGV[4]`.
/// Applies the updates (if the job still exists), then XACK and XDEL (and counts a park in
/// the stats), all at once: the job's last records and its acknowledgement land together.
/// Returns how many entries were acknowledged.
const FINISH: &str = r#"
if #ARGV > 3 then
  local applied = apply_updates(KEYS[2], KEYS[3], 4)
  if type(applied) == 'table' and applied.err then return applied end
end
local acked = redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
if type(acked) ~= 'number' then acked = 0 end
redis.pcall('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[4], 'parked', 1) end
return acked
"#;

/// The compiled scripts (their SHA1s; loaded on first use and after a Redis restart).
pub(crate) struct Scripts {
    pub(crate) insert: Script,
    pub(crate) submit: Script,
    pub(crate) update: Script,
    pub(crate) remove: Script,
    pub(crate) list: Script,
    pub(crate) push: Script,
    pub(crate) pop: Script,
    pub(crate) reclaim: Script,
    pub(crate) heartbeat: Script,
    pub(crate) ack: Script,
    pub(crate) finish: Script,
    pub(crate) stats: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            insert: Script::new(&format!("{STORE_HELPERS}\n{INSERT}")),
            submit: Script::new(&format!("{STORE_HELPERS}\n{SUBMIT}")),
            update: Script::new(&format!("{STORE_HELPERS}\n{UPDATE_HELPERS}\n{UPDATE}")),
            remove: Script::new(&format!("{STORE_HELPERS}\n{REMOVE}")),
            list: Script::new(LIST),
            push: Script::new(PUSH),
            pop: Script::new(POP),
            reclaim: Script::new(RECLAIM),
            heartbeat: Script::new(HEARTBEAT),
            ack: Script::new(ACK),
            finish: Script::new(&format!("{STORE_HELPERS}\n{UPDATE_HELPERS}\n{FINISH}")),
            stats: Script::new(STATS),
        }
    }
}
