-- The provider requests made for each tenant, per provider and UTC day (days since 1970-01-01):
-- the API budget a tenant used, shown by its status.
CREATE TABLE provider_usage (
    tenant_id text NOT NULL,
    day       bigint NOT NULL,
    provider  text NOT NULL,
    requests  bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, provider)
);
ALTER TABLE provider_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON provider_usage USING (attio_sync_allowed(tenant_id))
    WITH CHECK (attio_sync_allowed(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON provider_usage TO attio_sync_app;

-- A tenant's newest writes across its records (its status's last write per object and system).
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at DESC, entry_id DESC);
