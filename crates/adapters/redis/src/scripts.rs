//! The queue's Lua scripts. Each is the shared helpers (`queue.lua`) followed by one operation, so
//! every operation is atomic on the server.

use std::sync::LazyLock;

use redis::Script;

/// A script built (and its SHA-1 computed) once per process.
macro_rules! script {
    ($body:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("queue.lua"), "\n", $body)))
    };
}

/// ARGV: ns, tenant, partition, entity, payload JSON, max attempts, delay ms, new id.
/// Returns {"coalesced"|"enqueued", id}.
pub(crate) static ENQUEUE: LazyLock<Script> = script!(
    r#"
return enqueue(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
"#
);

/// The inbox's one step. ARGV: ns, tenant, retention ms, inbox id (derived from the idempotency
/// key, so the stored delivery is its own claim), the stored delivery (see `inbox.rs`),
/// quarantined (0/1), has a job (0/1), then the job's partition, entity, payload JSON, max
/// attempts, delay ms and new id (empty when it has none).
/// Returns "duplicate", "", "" | "stored", "", "" | "stored", "coalesced"|"enqueued", job id.
pub(crate) static ACCEPT: LazyLock<Script> = script!(
    r#"
local tenant, retention, id = ARGV[2], ARGV[3], ARGV[4]
if not redis.call('SET', ns .. ':inbox:' .. tenant .. ':' .. id, ARGV[5], 'NX', 'PX', retention) then
    return {'duplicate', '', ''}
end
if ARGV[6] == '1' then redis.call('ZADD', ns .. ':quarantine:' .. tenant, now, id) end
if ARGV[7] ~= '1' then return {'stored', '', ''} end
local r = enqueue(tenant, ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13])
return {'stored', r[1], r[2]}
"#
);

/// ARGV: ns, consumer, lease ms, token, tenants JSON array, partitions JSON array (empty = all).
/// Returns the job fields plus its id, or nil.
pub(crate) static RESERVE: LazyLock<Script> = script!(
    r#"
local tenants, partitions = {}, {}
for _, v in ipairs(cjson.decode(ARGV[5])) do tenants[v] = true end
for _, v in ipairs(cjson.decode(ARGV[6])) do partitions[v] = true end
local any_tenant = next(tenants) == nil
local any_partition = next(partitions) == nil
local function allowed(stream)
    local info = redis.call('HGET', ns .. ':streaminfo', stream)
    if not info then return false end
    local sep = string.find(info, '\n', 1, true)
    local tenant, partition = string.sub(info, 1, sep - 1), string.sub(info, sep + 1)
    return (any_tenant or tenants[tenant]) and (any_partition or partitions[partition])
end
local function lease(id)
    local h = job_key(id)
    local exp = now + tonumber(ARGV[3])
    redis.call('HINCRBY', h, 'attempts', 1)
    redis.call('HSET', h, 'lease', ARGV[4], 'exp', exp, 'dlv', 1)
    redis.call('ZADD', ns .. ':leases', exp, id)
    local reply = job_reply(id)
    table.insert(reply, id)
    return reply
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', ns .. ':delayed', '-inf', now)) do
    redis.call('ZREM', ns .. ':delayed', id)
    make_ready(id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', ns .. ':leases', '-inf', now)) do
    local h = job_key(id)
    local stream = stream_key(h)
    if allowed(stream) then
        redis.call('XCLAIM', stream, 'w', ARGV[2], 0, redis.call('HGET', h, 'eid'))
        return lease(id)
    end
end
for _, stream in ipairs(redis.call('SMEMBERS', ns .. ':streams')) do
    if allowed(stream) then
        local r = redis.call('XREADGROUP', 'GROUP', 'w', ARGV[2], 'COUNT', 1, 'STREAMS', stream, '>')
        if r then
            local entry = r[1][2][1]
            local id = entry[2][2]
            redis.call('HSET', job_key(id), 'eid', entry[1])
            return lease(id)
        end
    end
end
return nil
"#
);

/// ARGV: ns, id, token. Returns 1, or 0 when the lease is lost.
pub(crate) static ACK: LazyLock<Script> = script!(
    r#"
if not holds(ARGV[2], ARGV[3]) then return 0 end
remove(ARGV[2])
return 1
"#
);

/// ARGV: ns, id, token, lease ms. Returns 1, or 0 when the lease is lost.
pub(crate) static EXTEND: LazyLock<Script> = script!(
    r#"
if not holds(ARGV[2], ARGV[3]) then return 0 end
local exp = now + tonumber(ARGV[4])
redis.call('HSET', job_key(ARGV[2]), 'exp', exp)
redis.call('ZADD', ns .. ':leases', exp, ARGV[2])
return 1
"#
);

/// ARGV: ns, id, token, error, delay ms. Returns {"retry", at ms}, {"dead"} or {"lost"}.
pub(crate) static FAIL: LazyLock<Script> = script!(
    r#"
local id = ARGV[2]
if not holds(id, ARGV[3]) then return {'lost'} end
local h = job_key(id)
redis.call('HSET', h, 'err', ARGV[4])
if attempts(h) >= tonumber(redis.call('HGET', h, 'max')) then
    bury(id, ARGV[4], 0)
    return {'dead'}
end
unlist(id)
local nb = now + tonumber(ARGV[5])
redis.call('HSET', h, 'nb', nb)
make_ready(id)
return {'retry', tostring(nb)}
"#
);

/// ARGV: ns, id, token, error, needs reconciliation (0/1). Returns 1, or 0 when the lease is lost.
pub(crate) static DEAD_LETTER: LazyLock<Script> = script!(
    r#"
if not holds(ARGV[2], ARGV[3]) then return 0 end
bury(ARGV[2], ARGV[4], ARGV[5])
return 1
"#
);

/// ARGV: ns, id, token. Returns 1, or 0 when the lease is lost.
pub(crate) static RELEASE: LazyLock<Script> = script!(
    r#"
local id = ARGV[2]
if not holds(id, ARGV[3]) then return 0 end
local h = job_key(id)
unlist(id)
if attempts(h) > 0 then redis.call('HINCRBY', h, 'attempts', -1) end
redis.call('HSET', h, 'nb', now)
make_ready(id)
return 1
"#
);

/// ARGV: ns. Returns {ready, delayed, in flight, dead}.
pub(crate) static DEPTH: LazyLock<Script> = script!(
    r#"
local total = tonumber(redis.call('GET', ns .. ':count') or '0')
local in_flight = redis.call('ZCOUNT', ns .. ':leases', '(' .. now, '+inf')
local delayed = redis.call('ZCARD', ns .. ':delayed')
local dead = tonumber(redis.call('GET', ns .. ':deadcount') or '0')
return {total - in_flight - delayed, delayed, in_flight, dead}
"#
);

/// ARGV: ns, tenant. Returns a flat list of partition, jobs, oldest enqueue ms: the jobs in the
/// tenant's ready streams (ready or in flight) and in the delayed set. A job waiting behind
/// another of its key is in neither and is not counted; the oldest time is read from the first
/// 10,000 jobs of each.
pub(crate) static BACKLOG: LazyLock<Script> = script!(
    r#"
local tenant = ARGV[2]
local count, oldest = {}, {}
local function add(partition, enq, n)
    count[partition] = (count[partition] or 0) + n
    local e = tonumber(enq)
    if e and (not oldest[partition] or e < oldest[partition]) then oldest[partition] = e end
end
local info = redis.call('HGETALL', ns .. ':streaminfo')
for i = 1, #info, 2 do
    local sep = string.find(info[i + 1], '\n', 1, true)
    if string.sub(info[i + 1], 1, sep - 1) == tenant then
        local partition = string.sub(info[i + 1], sep + 1)
        local n = redis.call('XLEN', info[i])
        if n > 0 then
            add(partition, nil, n)
            for _, e in ipairs(redis.call('XRANGE', info[i], '-', '+', 'COUNT', 10000)) do
                add(partition, redis.call('HGET', job_key(e[2][2]), 'enq'), 0)
            end
        end
    end
end
for _, id in ipairs(redis.call('ZRANGE', ns .. ':delayed', 0, 9999)) do
    local f = redis.call('HMGET', job_key(id), 'tenant', 'partition', 'enq')
    if f[1] == tenant then add(f[2], f[3], 1) end
end
local out = {}
for partition, n in pairs(count) do
    table.insert(out, partition)
    table.insert(out, tostring(n))
    table.insert(out, tostring(oldest[partition] or ''))
end
return out
"#
);

/// ARGV: ns, tenant, job id. Returns the dead letter's fields, or an empty list when unknown.
pub(crate) static DEAD_ONE: LazyLock<Script> = script!(
    r#"
local eid = redis.call('HGET', ns .. ':deadidx:' .. ARGV[2], ARGV[3])
if not eid then return {} end
local e = redis.call('XRANGE', ns .. ':dead:' .. ARGV[2], eid, eid)
if #e == 0 then return {} end
return e[1][2]
"#
);

/// ARGV: ns, tenant, limit. Returns a flat list of dead-letter entries (field/value arrays).
pub(crate) static LIST_DEAD: LazyLock<Script> = script!(
    r#"
local out = {}
for _, e in ipairs(redis.call('XREVRANGE', ns .. ':dead:' .. ARGV[2], '+', '-', 'COUNT', tonumber(ARGV[3]))) do
    table.insert(out, e[2])
end
return out
"#
);

/// ARGV: ns, tenant, dead job id, new id. Returns the new id, or nil when unknown.
pub(crate) static REPLAY: LazyLock<Script> = script!(
    r#"
local idx = ns .. ':deadidx:' .. ARGV[2]
local eid = redis.call('HGET', idx, ARGV[3])
if not eid then return nil end
local dead = ns .. ':dead:' .. ARGV[2]
local entry = redis.call('XRANGE', dead, eid, eid)[1]
local f = {}
for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
local id = ARGV[4]
-- A replayed job starts over, and is never folded into (`dlv`).
redis.call('HSET', job_key(id), 'tenant', f.tenant, 'partition', f.partition, 'entity', f.entity,
    'payloads', f.payloads, 'max', f.max, 'enq', nows, 'dlv', 1)
redis.call('INCR', ns .. ':count')
if redis.call('RPUSH', key_list(f.tenant, f.partition, f.entity), id) == 1 then
    make_ready(id, now, f.tenant, f.partition)
end
redis.call('XDEL', dead, eid)
redis.call('HDEL', idx, ARGV[3])
redis.call('DECR', ns .. ':deadcount')
return id
"#
);

/// ARGV: ns, tenant, dead job id. Returns 1, or 0 when unknown.
pub(crate) static PURGE: LazyLock<Script> = script!(
    r#"
local idx = ns .. ':deadidx:' .. ARGV[2]
local eid = redis.call('HGET', idx, ARGV[3])
if not eid then return 0 end
redis.call('XDEL', ns .. ':dead:' .. ARGV[2], eid)
redis.call('HDEL', idx, ARGV[3])
redis.call('DECR', ns .. ':deadcount')
return 1
"#
);

/// ARGV: ns, tenant. Erases everything of the tenant: its jobs (their key lists, hashes, lease
/// and delay entries, and ready streams), dead letters, stored deliveries with their claims,
/// quarantine index and idempotency keys. Returns {jobs, dead letters, deliveries, keys}.
/// Tenant ids hold no glob characters, and `/` and `:` end them in these patterns.
pub(crate) static ERASE_TENANT: LazyLock<Script> = script!(
    r#"
local tenant = ARGV[2]
local function each_key(pattern, f)
    local cursor = '0'
    repeat
        local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
        cursor = r[1]
        for _, k in ipairs(r[2]) do f(k) end
    until cursor == '0'
end
local jobs = 0
each_key(ns .. ':key:' .. tenant .. '/*', function(list)
    for _, id in ipairs(redis.call('LRANGE', list, 0, -1)) do
        redis.call('ZREM', ns .. ':leases', id)
        redis.call('ZREM', ns .. ':delayed', id)
        redis.call('DEL', job_key(id))
        redis.call('DECR', ns .. ':count')
        jobs = jobs + 1
    end
    redis.call('DEL', list)
end)
for _, stream in ipairs(redis.call('SMEMBERS', ns .. ':streams')) do
    local info = redis.call('HGET', ns .. ':streaminfo', stream)
    if info and string.sub(info, 1, #tenant + 1) == tenant .. '\n' then
        redis.call('DEL', stream)
        redis.call('SREM', ns .. ':streams', stream)
        redis.call('HDEL', ns .. ':streaminfo', stream)
    end
end
local dead = redis.call('HLEN', ns .. ':deadidx:' .. tenant)
redis.call('DEL', ns .. ':dead:' .. tenant, ns .. ':deadidx:' .. tenant)
redis.call('DECRBY', ns .. ':deadcount', dead)
local deliveries = 0
each_key(ns .. ':inbox:' .. tenant .. ':*', function(k)
    redis.call('DEL', k)
    deliveries = deliveries + 1
end)
redis.call('DEL', ns .. ':quarantine:' .. tenant)
local keys = 0
each_key(ns .. ':idem:t:' .. tenant .. ':*', function(k)
    redis.call('DEL', k)
    keys = keys + 1
end)
return {jobs, dead, deliveries, keys}
"#
);
