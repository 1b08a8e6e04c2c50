-- The queue's write steps as functions, so that a plain enqueue, an idempotency claim and the
-- inbox's accept run the same SQL, and the accept is one round trip. They run as the caller, so
-- row-level security applies with the tenant the caller set.

-- Claims an idempotency key for `p_retention_s` seconds; false when it is held (not expired).
CREATE FUNCTION claim_key(p_tenant text, p_key text, p_retention_s float8)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO idempotency_keys (tenant_id, key, expires_at)
    VALUES (p_tenant, p_key, now() + make_interval(secs => p_retention_s))
    ON CONFLICT (tenant_id, key) DO UPDATE SET expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at <= now();
    RETURN FOUND;
END
$$;

-- Enqueues a job, or folds its payload into the pending (never delivered, not retrying) job of
-- the same key, under the key's advisory lock (the key's text form, tenant/partition/entity).
-- Returns ('enqueued' | 'coalesced', job id). Waking the workers is the caller's, after commit.
CREATE FUNCTION enqueue_job(
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

-- The inbox's one step: claim the key, store the delivery and enqueue its job, in one implicit
-- transaction. Returns ('duplicate', NULL), ('stored', NULL) or what `enqueue_job` returns.
CREATE FUNCTION accept_delivery(
    p_tenant text, p_key text, p_retention_s float8,
    p_inbox uuid, p_source text, p_received timestamptz, p_body bytea, p_quarantine text,
    p_job uuid, p_partition text, p_entity text, p_payload jsonb, p_max_attempts integer,
    p_delay_s float8)
RETURNS TABLE (outcome text, job uuid)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant, true);
    IF NOT claim_key(p_tenant, p_key, p_retention_s) THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::uuid;
        RETURN;
    END IF;
    INSERT INTO inbox (inbox_id, tenant_id, source, idempotency_key, received_at, body, quarantine)
    VALUES (p_inbox, p_tenant, p_source, p_key, p_received, p_body, p_quarantine);
    IF p_job IS NULL THEN
        RETURN QUERY SELECT 'stored'::text, NULL::uuid;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM enqueue_job(p_tenant, p_partition, p_entity, p_payload,
                                           p_max_attempts, p_delay_s, p_job);
END
$$;
