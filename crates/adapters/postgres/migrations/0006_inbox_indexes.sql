-- The inbox's indexes serve its two readers: the quarantine listing and the retention purge.
--
-- `inbox_tenant (tenant_id, received_at)` served one query, the operator's listing of a
-- tenant's quarantined deliveries, oldest first. Those are rare among the stored ones, so the
-- listing walked every delivery the tenant ever sent to find a handful. A partial index holds the
-- quarantined ones alone, in the listing's order. The purge of deliveries past their retention
-- (ADR 0020) walks all tenants' deliveries oldest first, which `inbox_received` gives; its
-- entries are appended at the index's right edge, as deliveries arrive in time order.
CREATE INDEX inbox_quarantined ON inbox (tenant_id, received_at) WHERE quarantine IS NOT NULL;
CREATE INDEX inbox_received ON inbox (received_at);
DROP INDEX inbox_tenant;
