-- Shared helpers of the queue scripts. ARGV[1] is always the namespace (a `{...}` hash tag, so
-- every key lands in one cluster slot). Times are milliseconds from the server's clock.
local ns = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function job_key(id) return ns .. ':job:' .. id end
local function list_key(h) return ns .. ':key:' .. redis.call('HGET', h, 'key') end

-- Puts a job that is the head of its key where consumers find it: its ready stream, or the
-- delayed set until its not-before time. `nb` and `stream` are read from the job unless given.
-- The stream entry's id is recorded when the job is reserved (nothing settles an unreserved job).
local function make_ready(id, nb, stream)
    local h = job_key(id)
    nb = nb or tonumber(redis.call('HGET', h, 'nb'))
    if nb > now then
        redis.call('ZADD', ns .. ':delayed', nb, id)
        return
    end
    stream = stream or redis.call('HGET', h, 'stream')
    if redis.call('SISMEMBER', ns .. ':streams', stream) == 0 then
        pcall(redis.call, 'XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
        redis.call('SADD', ns .. ':streams', stream)
        redis.call('HSET', ns .. ':streaminfo', stream,
            redis.call('HGET', h, 'tenant') .. '\n' .. redis.call('HGET', h, 'partition'))
    end
    redis.call('XADD', stream, '*', 'job', id)
end

-- Takes a job out of its stream's pending list and its lease set.
local function unlist(id)
    local h = job_key(id)
    local eid = redis.call('HGET', h, 'eid')
    if eid and eid ~= '' then
        local stream = redis.call('HGET', h, 'stream')
        redis.call('XACK', stream, 'w', eid)
        redis.call('XDEL', stream, eid)
    end
    redis.call('HSET', h, 'eid', '', 'lease', '')
    redis.call('ZREM', ns .. ':leases', id)
    redis.call('ZREM', ns .. ':delayed', id)
end

-- Removes a settled job and readies the next job of its key.
local function remove(id)
    local h = job_key(id)
    local list = list_key(h)
    unlist(id)
    redis.call('LREM', list, 1, id)
    redis.call('DEL', h)
    redis.call('DECR', ns .. ':count')
    local next_id = redis.call('LINDEX', list, 0)
    if next_id then make_ready(next_id) else redis.call('DEL', list) end
end

local function holds(id, token)
    return redis.call('HGET', job_key(id), 'lease') == token
end

-- A new job has no `err`, `lease`, `exp` or `eid` yet (fewer fields to write on the hot path);
-- missing ones read as empty.
local function job_reply(id)
    local h = job_key(id)
    local r = redis.call('HMGET', h, 'tenant', 'partition', 'entity', 'payloads', 'attempts', 'max',
        'enq', 'err', 'exp')
    for i = 1, 9 do if not r[i] then r[i] = '' end end
    return r
end

local function bury(id, err, rec)
    local h = job_key(id)
    local f = redis.call('HMGET', h, 'tenant', 'partition', 'entity', 'payloads', 'attempts', 'max', 'enq')
    local dead = ns .. ':dead:' .. f[1]
    local eid = redis.call('XADD', dead, '*', 'job', id, 'tenant', f[1], 'partition', f[2],
        'entity', f[3], 'payloads', f[4], 'attempts', f[5], 'max', f[6], 'enq', f[7], 'err', err,
        'failed', now, 'rec', rec)
    redis.call('HSET', ns .. ':deadidx:' .. f[1], id, eid)
    redis.call('INCR', ns .. ':deadcount')
    remove(id)
end

-- Adds a job, or folds its payload into the pending (never delivered) job of the same key.
-- Returns {"coalesced"|"enqueued", id}.
local function enqueue(tenant, partition, entity, payload, max, delay, id)
    local key = tenant .. '/' .. partition .. '/' .. entity
    local list = ns .. ':key:' .. key
    local ids = redis.call('LRANGE', list, 0, -1)
    for i = #ids, 1, -1 do
        local h = job_key(ids[i])
        if redis.call('HGET', h, 'fresh') == '1' then
            local p = redis.call('HGET', h, 'payloads')
            redis.call('HSET', h, 'payloads', string.sub(p, 1, -2) .. ',' .. payload .. ']')
            return {'coalesced', ids[i]}
        end
    end
    local nb, stream = now + tonumber(delay), ns .. ':ready:' .. tenant .. ':' .. partition
    redis.call('HSET', job_key(id), 'key', key, 'tenant', tenant, 'partition', partition, 'entity', entity,
        'payloads', '[' .. payload .. ']', 'attempts', 0, 'max', max, 'enq', now, 'fresh', 1,
        'nb', nb, 'stream', stream)
    redis.call('INCR', ns .. ':count')
    if redis.call('RPUSH', list, id) == 1 then make_ready(id, nb, stream) end
    return {'enqueued', id}
end
