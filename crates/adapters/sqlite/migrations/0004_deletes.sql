-- Safe deletes, as in PostgreSQL's migration 0008.
CREATE TABLE deletes (
    delete_id       TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    object          TEXT NOT NULL,
    attio_record    TEXT NOT NULL,
    system          TEXT NOT NULL,
    external_object TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    origin          TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    at              INTEGER NOT NULL,
    decided_at      INTEGER,
    UNIQUE (tenant_id, object, attio_record, system, origin)
);
CREATE INDEX deletes_done ON deletes (tenant_id, at) WHERE status = 'done';
CREATE INDEX deletes_held ON deletes (tenant_id, at) WHERE status = 'held';
