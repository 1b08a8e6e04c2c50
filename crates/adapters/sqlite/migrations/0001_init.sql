-- attio-sync embedded schema. Times are milliseconds since the Unix epoch (UTC); JSON is TEXT.

CREATE TABLE tenants (
    tenant_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    credentials  BLOB NOT NULL,
    crm_settings TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           TEXT NOT NULL UNIQUE,
    tenant_id        TEXT NOT NULL,
    partition        TEXT NOT NULL,
    entity           TEXT NOT NULL,
    payloads         TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    enqueued_at      INTEGER NOT NULL,
    not_before       INTEGER NOT NULL,
    fresh            INTEGER NOT NULL DEFAULT 1,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT
);
CREATE INDEX jobs_key_seq ON jobs (tenant_id, partition, entity, seq);

CREATE TABLE dead_letters (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id               TEXT NOT NULL UNIQUE,
    tenant_id            TEXT NOT NULL,
    partition            TEXT NOT NULL,
    entity               TEXT NOT NULL,
    payloads             TEXT NOT NULL,
    attempts             INTEGER NOT NULL,
    max_attempts         INTEGER NOT NULL,
    enqueued_at          INTEGER NOT NULL,
    error                TEXT NOT NULL,
    failed_at            INTEGER NOT NULL,
    needs_reconciliation INTEGER NOT NULL
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant_id, seq);

CREATE TABLE inbox (
    inbox_id        TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    source          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    body            BLOB NOT NULL,
    quarantine      TEXT
);
CREATE INDEX inbox_tenant ON inbox (tenant_id, received_at);

CREATE TABLE idempotency_keys (
    tenant_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE links (
    tenant_id       TEXT NOT NULL,
    object          TEXT NOT NULL,
    attio_record    TEXT NOT NULL,
    system          TEXT NOT NULL,
    external_object TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    snapshot        TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, object, attio_record, system),
    UNIQUE (tenant_id, system, external_object, external_id)
);

CREATE TABLE sync_states (
    tenant_id TEXT NOT NULL,
    object    TEXT NOT NULL,
    system    TEXT NOT NULL,
    state     TEXT NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, object, system)
);

CREATE TABLE conflicts (
    conflict_id  TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    object       TEXT NOT NULL,
    attio_record TEXT NOT NULL,
    system       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    conflict     TEXT NOT NULL,
    detected_at  INTEGER NOT NULL,
    resolution   TEXT,
    resolved_at  INTEGER
);
CREATE INDEX conflicts_open ON conflicts (tenant_id, detected_at);

CREATE TABLE write_ledger (
    tenant_id  TEXT NOT NULL,
    system     TEXT NOT NULL,
    object     TEXT NOT NULL,
    record     TEXT NOT NULL,
    field      TEXT NOT NULL,
    value_hash TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, system, object, record, field)
);
