-- Provider requests per tenant, provider and UTC day, as in PostgreSQL's migration 0010.
CREATE TABLE provider_usage (
    tenant_id TEXT NOT NULL,
    day       INTEGER NOT NULL,
    provider  TEXT NOT NULL,
    requests  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, provider)
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at DESC, entry_id DESC);
