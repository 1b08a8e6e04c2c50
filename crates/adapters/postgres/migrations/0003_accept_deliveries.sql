-- Group commit for the inbox (ADR 0014): the deliveries that arrive while earlier ones are being
-- committed are accepted together, in one call and one transaction, so that one WAL flush makes
-- many durable. Each element i of the arrays is one delivery, as `accept_delivery` takes it.
--
-- Concurrent batches take their locks in one global order, so they cannot deadlock on each
-- other: every idempotency key first, ordered by (tenant, key); then every job key's advisory
-- lock, ordered by its hash. A single `accept_delivery` takes one of each in the same order
-- (key, then job key). Within a job key, deliveries are enqueued in arrival (index) order.
--
-- Returns one row per delivery: (index, outcome, job) with the outcomes of `accept_delivery`.
CREATE FUNCTION accept_deliveries(
    p_tenants text[], p_keys text[], p_retention_s float8[],
    p_inbox uuid[], p_sources text[], p_received timestamptz[], p_bodies bytea[],
    p_quarantines text[],
    p_jobs uuid[], p_partitions text[], p_entities text[], p_payloads jsonb[],
    p_max_attempts integer[], p_delays_s float8[])
RETURNS TABLE (idx integer, outcome text, job uuid)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(array_length(p_tenants, 1), 0);
    claimed boolean[];
    i integer;
    r record;
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
    claimed := array_fill(false, ARRAY[n]);
    -- 1. The idempotency keys, in (tenant, key) order; a key twice in the batch is a duplicate
    --    the second time, as it would be in two calls.
    FOR i IN SELECT o FROM generate_series(1, n) o ORDER BY p_tenants[o], p_keys[o], o LOOP
        PERFORM set_config('app.tenant_id', p_tenants[i], true);
        claimed[i] := claim_key(p_tenants[i], p_keys[i], p_retention_s[i]);
        IF NOT claimed[i] THEN
            RETURN QUERY SELECT i, 'duplicate'::text, NULL::uuid;
        END IF;
    END LOOP;
    -- 2. The inbox.
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT claimed[i];
        PERFORM set_config('app.tenant_id', p_tenants[i], true);
        INSERT INTO inbox (inbox_id, tenant_id, source, idempotency_key, received_at, body, quarantine)
        VALUES (p_inbox[i], p_tenants[i], p_sources[i], p_keys[i], p_received[i], p_bodies[i],
                p_quarantines[i]);
        IF p_jobs[i] IS NULL THEN
            RETURN QUERY SELECT i, 'stored'::text, NULL::uuid;
        END IF;
    END LOOP;
    -- 3. The jobs, in the order of their keys' advisory locks.
    FOR i IN SELECT o FROM generate_series(1, n) o
             WHERE claimed[o] AND p_jobs[o] IS NOT NULL
             ORDER BY hashtextextended(p_tenants[o] || '/' || p_partitions[o] || '/' || p_entities[o], 0), o
    LOOP
        PERFORM set_config('app.tenant_id', p_tenants[i], true);
        SELECT * INTO r FROM enqueue_job(p_tenants[i], p_partitions[i], p_entities[i], p_payloads[i],
                                         p_max_attempts[i], p_delays_s[i], p_jobs[i]);
        RETURN QUERY SELECT i, r.outcome, r.job;
    END LOOP;
END
$$;
