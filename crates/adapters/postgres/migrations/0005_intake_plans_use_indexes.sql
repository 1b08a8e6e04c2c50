-- The intake's plans stay on the key's index whatever the statistics say (ADR 0017).
--
-- PL/pgSQL caches each statement's plan per connection and, after five calls, keeps a generic
-- plan when it costs no more than the custom ones did. When the jobs table is emptied (a queue
-- the workers have drained, then vacuumed down to no pages, or a TRUNCATE) every cached plan is
-- invalidated and rebuilt against a table PostgreSQL believes empty. The pending-job probe
-- (`WHERE tenant, partition, entity … ORDER BY seq DESC LIMIT 1`) then became a sequential scan
-- and sort of `jobs`, or a backward walk of `jobs_seq` filtering for the key, kept for the life
-- of the connection while the table grew again: every batch read the whole queue, and on a
-- 2-core machine 250 batches/s fell to 40 within 20 s, the answers to seconds.
--
-- So the plans are left no choice. The probe orders by `seq + 0`, an expression no index
-- provides, so `jobs_seq` offers nothing to it; the batch's fold updates `job_id = ANY (…)`
-- instead of joining `jobs` to the probe's rows (a join let the planner walk the whole primary
-- key as the outer side); and the functions run with sequential scans priced out. What remains
-- for each statement is its index on the key: `jobs_key_seq` for the probe (a handful of rows,
-- sorted), the primary keys for the fold and the idempotency claim.
-- Bodies otherwise as in migrations 0002 (`enqueue_job`) and 0004 (`accept_deliveries`).

CREATE OR REPLACE FUNCTION enqueue_job(
    p_tenant text, p_partition text, p_entity text, p_payload jsonb, p_max_attempts integer,
    p_delay_s float8, p_job uuid)
RETURNS TABLE (outcome text, job uuid)
LANGUAGE plpgsql AS $$
DECLARE
    folded uuid;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant || '/' || p_partition || '/' || p_entity, 0));
    UPDATE jobs SET payloads = payloads || jsonb_build_array(p_payload)
    WHERE job_id = (SELECT j.job_id FROM jobs j
                    WHERE j.tenant_id = p_tenant AND j.partition = p_partition AND j.entity = p_entity
                      AND j.fresh AND j.lease_token IS NULL
                    ORDER BY j.seq + 0 DESC LIMIT 1)
      AND fresh AND lease_token IS NULL
    RETURNING jobs.job_id INTO folded;
    IF folded IS NOT NULL THEN
        RETURN QUERY SELECT 'coalesced'::text, folded;
        RETURN;
    END IF;
    INSERT INTO jobs (job_id, tenant_id, partition, entity, payloads, max_attempts, enqueued_at, not_before)
    VALUES (p_job, p_tenant, p_partition, p_entity, jsonb_build_array(p_payload), p_max_attempts, now(),
            now() + make_interval(secs => p_delay_s));
    RETURN QUERY SELECT 'enqueued'::text, p_job;
END
$$;

CREATE OR REPLACE FUNCTION accept_deliveries(
    p_tenants text[], p_keys text[], p_retention_s float8[],
    p_inbox uuid[], p_sources text[], p_received timestamptz[], p_bodies bytea[],
    p_quarantines text[],
    p_jobs uuid[], p_partitions text[], p_entities text[], p_payloads jsonb[],
    p_max_attempts integer[], p_delays_s float8[])
RETURNS TABLE (idx integer, outcome text, job uuid)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(array_length(p_tenants, 1), 0);
    t text;
    claimed integer[] := '{}';
    won_idx integer[];
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF array_length(p_keys, 1) IS DISTINCT FROM n OR array_length(p_retention_s, 1) IS DISTINCT FROM n
       OR array_length(p_inbox, 1) IS DISTINCT FROM n OR array_length(p_sources, 1) IS DISTINCT FROM n
       OR array_length(p_received, 1) IS DISTINCT FROM n OR array_length(p_bodies, 1) IS DISTINCT FROM n
       OR array_length(p_quarantines, 1) IS DISTINCT FROM n OR array_length(p_jobs, 1) IS DISTINCT FROM n
       OR array_length(p_partitions, 1) IS DISTINCT FROM n OR array_length(p_entities, 1) IS DISTINCT FROM n
       OR array_length(p_payloads, 1) IS DISTINCT FROM n OR array_length(p_max_attempts, 1) IS DISTINCT FROM n
       OR array_length(p_delays_s, 1) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'accept_deliveries: the arrays differ in length' USING ERRCODE = '22023';
    END IF;
    -- 1. Keys and inbox, tenant by tenant in order, keys in order within a tenant.
    FOR t IN SELECT DISTINCT x FROM unnest(p_tenants) x ORDER BY 1 LOOP
        PERFORM set_config('app.tenant_id', t, true);
        WITH d AS (
            SELECT u.i::integer AS i, u.key, u.retention_s FROM unnest(p_tenants, p_keys, p_retention_s)
                WITH ORDINALITY AS u(tenant, key, retention_s, i) WHERE u.tenant = t),
        firsts AS (SELECT DISTINCT ON (d.key) d.i, d.key, d.retention_s FROM d ORDER BY d.key, d.i),
        won AS (
            INSERT INTO idempotency_keys AS k (tenant_id, key, expires_at)
            SELECT t, f.key, now() + make_interval(secs => f.retention_s) FROM firsts f ORDER BY f.key
            ON CONFLICT (tenant_id, key) DO UPDATE SET expires_at = EXCLUDED.expires_at
                WHERE k.expires_at <= now()
            RETURNING k.key)
        SELECT coalesce(array_agg(f.i), '{}') INTO won_idx FROM firsts f JOIN won w ON w.key = f.key;
        claimed := claimed || won_idx;
        INSERT INTO inbox (inbox_id, tenant_id, source, idempotency_key, received_at, body, quarantine)
        SELECT u.inbox, t, u.source, u.key, u.received, u.body, u.quarantine
        FROM unnest(p_inbox, p_sources, p_keys, p_received, p_bodies, p_quarantines)
             WITH ORDINALITY AS u(inbox, source, key, received, body, quarantine, i)
        WHERE u.i = ANY (won_idx) ORDER BY u.i;
    END LOOP;
    RETURN QUERY
    SELECT o::integer, CASE WHEN o = ANY (claimed) THEN 'stored' ELSE 'duplicate' END, NULL::uuid
    FROM generate_series(1, cardinality(p_tenants)) o
    WHERE NOT (o = ANY (claimed)) OR p_jobs[o] IS NULL;
    -- 2. Every job key's advisory lock, in hash order, then the jobs tenant by tenant.
    PERFORM pg_advisory_xact_lock(h) FROM (
        SELECT DISTINCT hashtextextended(u.tenant || '/' || u.partition || '/' || u.entity, 0) AS h
        FROM unnest(p_tenants, p_partitions, p_entities, p_jobs) WITH ORDINALITY AS u(tenant, partition, entity, job, i)
        WHERE u.job IS NOT NULL AND u.i = ANY (claimed) ORDER BY 1) s;
    FOR t IN SELECT DISTINCT x FROM unnest(p_tenants) x ORDER BY 1 LOOP
        PERFORM set_config('app.tenant_id', t, true);
        RETURN QUERY
        WITH d AS (
            SELECT u.i::integer AS i, u.job, u.partition, u.entity, u.payload, u.max_attempts, u.delay_s
            FROM unnest(p_tenants, p_jobs, p_partitions, p_entities, p_payloads, p_max_attempts, p_delays_s)
                 WITH ORDINALITY AS u(tenant, job, partition, entity, payload, max_attempts, delay_s, i)
            WHERE u.tenant = t AND u.job IS NOT NULL AND u.i = ANY (claimed)),
        keys AS (
            SELECT d.partition, d.entity, min(d.i) AS first_i, jsonb_agg(d.payload ORDER BY d.i) AS payloads
            FROM d GROUP BY d.partition, d.entity),
        pending AS (
            SELECT k.partition, k.entity, p.job_id FROM keys k
            JOIN LATERAL (SELECT j.job_id FROM jobs j
                          WHERE j.tenant_id = t AND j.partition = k.partition AND j.entity = k.entity
                            AND j.fresh AND j.lease_token IS NULL
                          ORDER BY j.seq + 0 DESC LIMIT 1) p ON true),
        folded AS (
            UPDATE jobs SET payloads = jobs.payloads || (
                SELECT k.payloads FROM keys k WHERE k.partition = jobs.partition AND k.entity = jobs.entity)
            WHERE jobs.job_id = ANY (ARRAY(SELECT p.job_id FROM pending p))
              AND jobs.fresh AND jobs.lease_token IS NULL
            RETURNING jobs.job_id, jobs.partition, jobs.entity),
        created AS (
            INSERT INTO jobs (job_id, tenant_id, partition, entity, payloads, max_attempts, enqueued_at, not_before)
            SELECT d.job, t, k.partition, k.entity, k.payloads, d.max_attempts, now(),
                   now() + make_interval(secs => d.delay_s)
            FROM keys k JOIN d ON d.i = k.first_i
            WHERE NOT EXISTS (SELECT 1 FROM folded f WHERE f.partition = k.partition AND f.entity = k.entity)
            ORDER BY k.first_i
            RETURNING jobs.job_id, jobs.partition, jobs.entity)
        SELECT d.i,
               CASE WHEN c.job_id IS NOT NULL AND d.i = k.first_i THEN 'enqueued' ELSE 'coalesced' END,
               coalesce(c.job_id, f.job_id)
        FROM d JOIN keys k ON k.partition = d.partition AND k.entity = d.entity
        LEFT JOIN folded f ON f.partition = d.partition AND f.entity = d.entity
        LEFT JOIN created c ON c.partition = d.partition AND c.entity = d.entity;
    END LOOP;
END
$$;

ALTER FUNCTION enqueue_job(text, text, text, jsonb, integer, float8, uuid)
    SET enable_seqscan = off;
ALTER FUNCTION accept_delivery(
    text, text, float8, uuid, text, timestamptz, bytea, text,
    uuid, text, text, jsonb, integer, float8)
    SET enable_seqscan = off;
ALTER FUNCTION accept_deliveries(
    text[], text[], float8[], uuid[], text[], timestamptz[], bytea[], text[],
    uuid[], text[], text[], jsonb[], integer[], float8[])
    SET enable_seqscan = off;
ALTER FUNCTION claim_key(text, text, float8)
    SET enable_seqscan = off;
