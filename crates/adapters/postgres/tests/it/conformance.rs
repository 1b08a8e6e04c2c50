use std::sync::Arc;

use adapter_postgres::PgStore;

use crate::store;

async fn inbox() -> (Arc<PgStore>, Arc<PgStore>) {
    let s = store().await;
    (s.clone(), s)
}

mod queue {
    use super::store;
    ports::queue_conformance!(store);
}
mod inbox {
    use super::inbox;
    ports::inbox_conformance!(inbox);
}
mod idempotency {
    use super::store;
    ports::idempotency_conformance!(store);
}
mod links {
    use super::store;
    ports::link_conformance!(store);
}
mod sync_state {
    use super::store;
    ports::sync_state_conformance!(store);
}
mod conflicts {
    use super::store;
    ports::conflict_conformance!(store);
}
mod audit {
    use super::store;
    ports::audit_conformance!(store);
}
mod usage {
    use super::store;
    ports::usage_conformance!(store);
}
mod deletes {
    use super::store;
    ports::delete_conformance!(store);
}
mod mappings {
    use super::store;
    ports::mapping_conformance!(store);
}
mod tenants {
    use super::store;
    ports::tenant_conformance!(store);
}
mod ledger {
    use super::store;
    ports::ledger_conformance!(store);
}
