-- Each tenant's mappings, every version kept with who changed them and when; the newest is in
-- force. A change inserts the next version, so two operators changing the same version race
-- for one primary key and the loser is told to read again.
CREATE TABLE mappings (
    tenant_id  text NOT NULL,
    version    bigint NOT NULL,
    document   jsonb NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
ALTER TABLE mappings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mappings USING (attio_sync_allowed(tenant_id))
    WITH CHECK (attio_sync_allowed(tenant_id));
GRANT SELECT, INSERT, DELETE ON mappings TO attio_sync_app;
