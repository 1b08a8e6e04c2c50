-- Each tenant's mappings, every version kept, as in PostgreSQL's migration 0009.
CREATE TABLE mappings (
    tenant_id  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    document   TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
