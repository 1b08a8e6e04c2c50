-- The conflict queue and the per-field audit trail.
--
-- Conflicts: at most one open conflict per record, system and field, so a field that conflicts
-- again updates the open one (its values and `last_seen`) instead of queueing it twice. Earlier
-- versions queued it again at every sync that found it: the newest open copy is kept.
ALTER TABLE conflicts ADD COLUMN field text, ADD COLUMN last_seen timestamptz;
UPDATE conflicts SET field = conflict->>'key', last_seen = detected_at;
DELETE FROM conflicts c USING conflicts n
 WHERE c.resolution IS NULL AND n.resolution IS NULL
   AND c.tenant_id = n.tenant_id AND c.object = n.object AND c.attio_record = n.attio_record
   AND c.system = n.system AND c.field = n.field
   AND (c.detected_at, c.conflict_id) < (n.detected_at, n.conflict_id);
ALTER TABLE conflicts ALTER COLUMN field SET NOT NULL, ALTER COLUMN last_seen SET NOT NULL;
CREATE UNIQUE INDEX conflicts_open_field
    ON conflicts (tenant_id, object, attio_record, system, field) WHERE resolution IS NULL;

-- Every value the service writes, per Attio record, newest first; purged by age.
CREATE TABLE audit_log (
    entry_id  bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    object    text NOT NULL,
    record    uuid NOT NULL,
    at        timestamptz NOT NULL,
    entry     jsonb NOT NULL
);
CREATE INDEX audit_log_record ON audit_log (tenant_id, object, record, at DESC, entry_id DESC);
CREATE INDEX audit_log_at ON audit_log (at);
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log USING (attio_sync_allowed(tenant_id))
    WITH CHECK (attio_sync_allowed(tenant_id));
GRANT SELECT, INSERT, DELETE ON audit_log TO attio_sync_app;
GRANT USAGE ON SEQUENCE audit_log_entry_id_seq TO attio_sync_app;
