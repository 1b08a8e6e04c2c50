-- The inbox's one step in one round trip: claim the key, store the delivery and enqueue its job
-- (folding it into a pending job of the same key). The same statements as the separate calls, in
-- one implicit transaction; workers are woken after the commit (a NOTIFY in the transaction would
-- serialise every commit of the database behind its global lock); it runs as the caller, so row-level security
-- applies with the tenant it sets. Returns ('duplicate', NULL), ('stored', NULL) or
-- ('enqueued' | 'coalesced', job id).
CREATE FUNCTION accept_delivery(
    p_tenant text, p_key text, p_retention_s float8,
    p_inbox uuid, p_source text, p_received timestamptz, p_body bytea, p_quarantine text,
    p_job uuid, p_partition text, p_entity text, p_payload jsonb, p_max_attempts integer,
    p_delay_s float8)
RETURNS TABLE (outcome text, job uuid)
LANGUAGE plpgsql AS $$
DECLARE
    folded uuid;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant, true);
    INSERT INTO idempotency_keys (tenant_id, key, expires_at)
    VALUES (p_tenant, p_key, now() + make_interval(secs => p_retention_s))
    ON CONFLICT (tenant_id, key) DO UPDATE SET expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at <= now();
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::uuid;
        RETURN;
    END IF;
    INSERT INTO inbox (inbox_id, tenant_id, source, idempotency_key, received_at, body, quarantine)
    VALUES (p_inbox, p_tenant, p_source, p_key, p_received, p_body, p_quarantine);
    IF p_job IS NULL THEN
        RETURN QUERY SELECT 'stored'::text, NULL::uuid;
        RETURN;
    END IF;
    -- The same per-key lock as a plain enqueue (the key's text form, tenant/partition/entity).
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant || '/' || p_partition || '/' || p_entity, 0));
    UPDATE jobs SET payloads = payloads || jsonb_build_array(p_payload)
    WHERE job_id = (SELECT j.job_id FROM jobs j
                    WHERE j.tenant_id = p_tenant AND j.partition = p_partition AND j.entity = p_entity
                      AND j.fresh AND j.lease_token IS NULL
                    ORDER BY j.seq DESC LIMIT 1)
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
