-- attio-sync schema. Every tenant-owned table carries tenant_id under a row-level-security policy:
-- a transaction sees and writes only the rows of the tenant it set with
--   set_config('app.tenant_id', <tenant>, true)
-- or, for the few cross-tenant operations (queue dispatch, tenant administration, purges),
--   set_config('app.scope', 'system', true).
-- The service works as the role attio_sync_app, which is neither superuser nor BYPASSRLS.

DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('attio_sync_app role'));
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'attio_sync_app') THEN
        CREATE ROLE attio_sync_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;

CREATE FUNCTION attio_sync_allowed(row_tenant text) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT row_tenant = current_setting('app.tenant_id', true)
        OR current_setting('app.scope', true) = 'system'
$$;

CREATE TABLE tenants (
    tenant_id    text PRIMARY KEY,
    name         text NOT NULL,
    -- AES-256-GCM (nonce || ciphertext) of the credentials, bound to tenant_id as associated data.
    credentials  bytea NOT NULL,
    crm_settings jsonb NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE jobs (
    job_id           uuid PRIMARY KEY,
    tenant_id        text NOT NULL,
    partition        text NOT NULL,
    entity           text NOT NULL,
    seq              bigserial NOT NULL,
    payloads         jsonb NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    enqueued_at      timestamptz NOT NULL,
    not_before       timestamptz NOT NULL,
    -- never delivered and not retrying: may absorb new payloads of its key
    fresh            boolean NOT NULL DEFAULT true,
    lease_token      uuid,
    lease_expires_at timestamptz,
    last_error       text
);
CREATE INDEX jobs_key_seq ON jobs (tenant_id, partition, entity, seq);
CREATE INDEX jobs_seq ON jobs (seq);

CREATE TABLE dead_letters (
    job_id               uuid PRIMARY KEY,
    tenant_id            text NOT NULL,
    partition            text NOT NULL,
    entity               text NOT NULL,
    payloads             jsonb NOT NULL,
    attempts             integer NOT NULL,
    max_attempts         integer NOT NULL,
    enqueued_at          timestamptz NOT NULL,
    error                text NOT NULL,
    failed_at            timestamptz NOT NULL,
    needs_reconciliation boolean NOT NULL,
    seq                  bigserial NOT NULL
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant_id, seq DESC);

CREATE TABLE inbox (
    inbox_id        uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    source          text NOT NULL,
    idempotency_key text NOT NULL,
    received_at     timestamptz NOT NULL,
    body            bytea NOT NULL,
    quarantine      text
);
CREATE INDEX inbox_tenant ON inbox (tenant_id, received_at);

CREATE TABLE idempotency_keys (
    tenant_id  text NOT NULL,
    key        text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE links (
    tenant_id       text NOT NULL,
    object          text NOT NULL,
    attio_record    uuid NOT NULL,
    system          text NOT NULL,
    external_object text NOT NULL,
    external_id     text NOT NULL,
    snapshot        jsonb NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL,
    PRIMARY KEY (tenant_id, object, attio_record, system),
    UNIQUE (tenant_id, system, external_object, external_id)
);

CREATE TABLE sync_states (
    tenant_id text NOT NULL,
    object    text NOT NULL,
    system    text NOT NULL,
    state     jsonb NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (tenant_id, object, system)
);

CREATE TABLE conflicts (
    conflict_id  uuid NOT NULL,
    tenant_id    text NOT NULL,
    object       text NOT NULL,
    attio_record uuid NOT NULL,
    system       text NOT NULL,
    external_id  text NOT NULL,
    conflict     jsonb NOT NULL,
    detected_at  timestamptz NOT NULL,
    resolution   jsonb,
    resolved_at  timestamptz,
    PRIMARY KEY (conflict_id)
);
CREATE INDEX conflicts_open ON conflicts (tenant_id, detected_at) WHERE resolution IS NULL;

CREATE TABLE write_ledger (
    tenant_id  text NOT NULL,
    system     text NOT NULL,
    object     text NOT NULL,
    record     text NOT NULL,
    field      text NOT NULL,
    value_hash text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, system, object, record, field)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'jobs', 'dead_letters', 'inbox', 'idempotency_keys',
                             'links', 'sync_states', 'conflicts', 'write_ledger']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (attio_sync_allowed(tenant_id)) '
                       'WITH CHECK (attio_sync_allowed(tenant_id))', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO attio_sync_app', t);
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO attio_sync_app', current_schema());
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO attio_sync_app', current_schema());
END
$$;
