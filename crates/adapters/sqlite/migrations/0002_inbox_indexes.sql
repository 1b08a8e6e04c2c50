-- The inbox's indexes serve its two readers, as in PostgreSQL's migration 0006: the quarantine
-- listing reads a partial index of the quarantined deliveries alone, and the retention purge
-- (ADR 0020) walks all deliveries oldest first.
CREATE INDEX inbox_quarantined ON inbox (tenant_id, received_at) WHERE quarantine IS NOT NULL;
CREATE INDEX inbox_received ON inbox (received_at);
DROP INDEX inbox_tenant;
