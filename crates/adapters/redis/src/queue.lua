-- Shared helpers of the queue scripts. ARGV[1] is always the namespace (a `{...}` hash tag, so
-- every key lands in one cluster slot). Times are milliseconds from the server's clock.
--
-- A job is a hash holding what it was created with (tenant, partition, entity, payloads, max,
-- enq) and what happened to it since: `attempts`, `nb` (not before), `dlv` (it was delivered
-- once, so nothing folds into it), `lease`, `exp`, `eid` (its stream entry) and `err`. A field
-- that was never written reads as its starting value (0, or empty): the hot path of a new job
-- writes six fields, each of which costs Redis time (ADR 0011). Its key list and stream follow
-- from tenant, partition and entity.
local ns = ARGV[1]
local t = redis.call('TIME')
-- `now` as digits built from TIME's strings (formatting a Lua number goes through sprintf).
local nows = t[1] .. string.sub('00000' .. t[2], -6, -4)
local now = tonumber(nows)

local function job_key(id) return ns .. ':job:' .. id end
local function key_list(tenant, partition, entity)
    return ns .. ':key:' .. tenant .. '/' .. partition .. '/' .. entity
end
local function stream_of(tenant, partition) return ns .. ':ready:' .. tenant .. ':' .. partition end
local function list_key(h)
    local f = redis.call('HMGET', h, 'tenant', 'partition', 'entity')
    return key_list(f[1], f[2], f[3])
end
local function stream_key(h)
    local f = redis.call('HMGET', h, 'tenant', 'partition')
    return stream_of(f[1], f[2])
end

-- Puts a job that is the head of its key where consumers find it: its ready stream, or the
-- delayed set until its not-before time. `nb`, `tenant` and `partition` are read from the job
-- unless given. The stream entry's id is recorded when the job is reserved (nothing settles an
-- unreserved job).
local function make_ready(id, nb, tenant, partition)
    local h = job_key(id)
    nb = nb or tonumber(redis.call('HGET', h, 'nb')) or 0
    if nb > now then
        redis.call('ZADD', ns .. ':delayed', nb, id)
        return
    end
    if not tenant then
        local f = redis.call('HMGET', h, 'tenant', 'partition')
        tenant, partition = f[1], f[2]
    end
    local stream = stream_of(tenant, partition)
    if redis.call('SISMEMBER', ns .. ':streams', stream) == 0 then
        pcall(redis.call, 'XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
        redis.call('SADD', ns .. ':streams', stream)
        redis.call('HSET', ns .. ':streaminfo', stream, tenant .. '\n' .. partition)
    end
    redis.call('XADD', stream, '*', 'job', id)
end

-- Takes a job out of its stream's pending list and its lease set.
local function unlist(id)
    local h = job_key(id)
    local eid = redis.call('HGET', h, 'eid')
    if eid and eid ~= '' then
        local stream = stream_key(h)
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

-- The job's fields as the adapter reads them; unwritten ones read as their starting value.
local function job_reply(id)
    local h = job_key(id)
    local r = redis.call('HMGET', h, 'tenant', 'partition', 'entity', 'payloads', 'attempts', 'max',
        'enq', 'err', 'exp')
    if not r[5] then r[5] = '0' end
    for i = 1, 9 do if not r[i] then r[i] = '' end end
    return r
end

local function attempts(h) return tonumber(redis.call('HGET', h, 'attempts')) or 0 end

local function bury(id, err, rec)
    local h = job_key(id)
    local f = job_reply(id)
    local dead = ns .. ':dead:' .. f[1]
    local eid = redis.call('XADD', dead, '*', 'job', id, 'tenant', f[1], 'partition', f[2],
        'entity', f[3], 'payloads', f[4], 'attempts', f[5], 'max', f[6], 'enq', f[7], 'err', err,
        'failed', now, 'rec', rec)
    redis.call('HSET', ns .. ':deadidx:' .. f[1], id, eid)
    redis.call('INCR', ns .. ':deadcount')
    remove(id)
end

-- Adds a job, or folds its payload into the pending (never delivered) job of the same key.
-- The id is pushed first: a push that makes a new list (the common case) needs no look at the
-- others. Returns {"coalesced"|"enqueued", id}.
local function enqueue(tenant, partition, entity, payload, max, delay, id)
    local list = key_list(tenant, partition, entity)
    local n = redis.call('RPUSH', list, id)
    if n > 1 then
        local ids = redis.call('LRANGE', list, 0, -2)
        for i = #ids, 1, -1 do
            local h = job_key(ids[i])
            -- `fresh` = 0 marks a delivered job written before `dlv` existed.
            local f = redis.call('HMGET', h, 'dlv', 'fresh', 'payloads')
            if not f[1] and f[2] ~= '0' then
                redis.call('RPOP', list)
                redis.call('HSET', h, 'payloads', string.sub(f[3], 1, -2) .. ',' .. payload .. ']')
                return {'coalesced', ids[i]}
            end
        end
    end
    local nb = now + tonumber(delay)
    local fields = {'tenant', tenant, 'partition', partition, 'entity', entity,
        'payloads', '[' .. payload .. ']', 'max', max, 'enq', nows}
    -- `nb` only when it is later than now (an unwritten `nb` reads as 0: ready).
    if nb > now then table.insert(fields, 'nb'); table.insert(fields, nb) end
    redis.call('HSET', job_key(id), unpack(fields))
    redis.call('INCR', ns .. ':count')
    if n == 1 then make_ready(id, nb, tenant, partition) end
    return {'enqueued', id}
end
