-- The conflict queue and the per-field audit trail, as in PostgreSQL's migration 0007: at most
-- one open conflict per record, system and field (the newest open copy of earlier duplicates is
-- kept), and every value the service writes, per Attio record, purged by age.
ALTER TABLE conflicts ADD COLUMN field TEXT;
ALTER TABLE conflicts ADD COLUMN last_seen INTEGER;
UPDATE conflicts SET field = json_extract(conflict, '$.key'), last_seen = detected_at;
DELETE FROM conflicts
 WHERE resolution IS NULL
   AND EXISTS (SELECT 1 FROM conflicts n
                WHERE n.resolution IS NULL AND n.tenant_id = conflicts.tenant_id
                  AND n.object = conflicts.object AND n.attio_record = conflicts.attio_record
                  AND n.system = conflicts.system AND n.field = conflicts.field
                  AND (n.detected_at > conflicts.detected_at
                       OR (n.detected_at = conflicts.detected_at
                           AND n.conflict_id > conflicts.conflict_id)));
CREATE UNIQUE INDEX conflicts_open_field
    ON conflicts (tenant_id, object, attio_record, system, field) WHERE resolution IS NULL;

CREATE TABLE audit_log (
    entry_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    object    TEXT NOT NULL,
    record    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    entry     TEXT NOT NULL
);
CREATE INDEX audit_log_record ON audit_log (tenant_id, object, record, at DESC, entry_id DESC);
CREATE INDEX audit_log_at ON audit_log (at);
