-- Safe deletes (held for approval when the policy or the breaker says so).
-- Deletes seen on one side: propagated without a person (`done`, counted by the delete breaker)
-- or held for approval; one per record, system and origin, so a replayed delete finds the first.
CREATE TABLE deletes (
    delete_id       uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    object          text NOT NULL,
    attio_record    uuid NOT NULL,
    system          text NOT NULL,
    external_object text NOT NULL,
    external_id     text NOT NULL,
    origin          text NOT NULL,
    status          text NOT NULL,
    reason          text NOT NULL,
    at              timestamptz NOT NULL,
    decided_at      timestamptz,
    UNIQUE (tenant_id, object, attio_record, system, origin)
);
CREATE INDEX deletes_done ON deletes (tenant_id, at) WHERE status = 'done';
CREATE INDEX deletes_held ON deletes (tenant_id, at) WHERE status = 'held';
ALTER TABLE deletes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deletes USING (attio_sync_allowed(tenant_id))
    WITH CHECK (attio_sync_allowed(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON deletes TO attio_sync_app;
