//! Versioned schema migrations, tracked in `PRAGMA user_version`. Each step runs in one
//! transaction with its version bump, so a crash mid-migration leaves the previous version.
//! Append new steps; never edit a released one.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the daemon's own bookkeeping.
    "CREATE TABLE meta (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     ) STRICT;
     CREATE TABLE daemon_runs (
         id               INTEGER PRIMARY KEY,
         version          TEXT    NOT NULL,
         started_unix_ms  INTEGER NOT NULL,
         alive_unix_ms    INTEGER NOT NULL,
         stopped_unix_ms  INTEGER
     ) STRICT;
     CREATE TABLE audit_log (
         id          INTEGER PRIMARY KEY,
         at_unix_ms  INTEGER NOT NULL,
         actor       TEXT    NOT NULL,
         action      TEXT    NOT NULL,
         detail      TEXT    NOT NULL
     ) STRICT;",
    // 2: anti-rollback. The highest sequence number accepted per (vendor, class, component),
    // and the one each device reports installed. IDs are raw bytes; component IDs are their
    // CBOR encoding, so multi-segment IDs compare exactly.
    "CREATE TABLE sequence_accepted (
         vendor_id     BLOB    NOT NULL,
         class_id      BLOB    NOT NULL,
         component_id  BLOB    NOT NULL,
         sequence      INTEGER NOT NULL CHECK (sequence >= 0),
         at_unix_ms    INTEGER NOT NULL,
         PRIMARY KEY (vendor_id, class_id, component_id)
     ) STRICT;
     CREATE TABLE device_components (
         device_eui64  BLOB    NOT NULL CHECK (length(device_eui64) = 8),
         component_id  BLOB    NOT NULL,
         sequence      INTEGER NOT NULL CHECK (sequence >= 0),
         at_unix_ms    INTEGER NOT NULL,
         PRIMARY KEY (device_eui64, component_id)
     ) STRICT;",
    // 3 (plan branch): the fleet. One row per device with its lifecycle; every fact ferry knows
    // about it in `fleet_facts`, keyed by fact name, with its value as JSON, its source and when
    // it was learned (see `store::devices`).
    "CREATE TABLE fleet_devices (
         eui64              BLOB    PRIMARY KEY CHECK (length(eui64) = 8),
         lifecycle          TEXT    NOT NULL
                            CHECK (lifecycle IN ('discovered', 'commissioned', 'active', 'decommissioned')),
         lifecycle_unix_ms  INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE fleet_facts (
         eui64            BLOB    NOT NULL REFERENCES fleet_devices (eui64) ON DELETE CASCADE,
         fact             TEXT    NOT NULL,
         value            TEXT    NOT NULL,
         source           TEXT    NOT NULL,
         learned_unix_ms  INTEGER NOT NULL,
         PRIMARY KEY (eui64, fact)
     ) STRICT;",
    // 4: the repository cache (see `store::cache`).
    REPO_CACHE,
    // 5: delivery sessions (see `store::sessions`).
    SESSIONS,
];

/// The `deliver` room's sessions and their audit trail (see `store::sessions`). One row per
/// session, rewritten at every transition; one event row per transition, never rewritten.
const SESSIONS: &str = "CREATE TABLE sessions (
         id               INTEGER PRIMARY KEY,
         device           TEXT    NOT NULL,     -- EUI-64, 16 lowercase hex digits
         manifest_digest  TEXT    NOT NULL,     -- lowercase hex SHA-256 of the envelope
         sequence         INTEGER NOT NULL CHECK (sequence >= 0),
         state            TEXT    NOT NULL,
         reason           TEXT,
         bytes            INTEGER NOT NULL DEFAULT 0,
         attempts         INTEGER NOT NULL DEFAULT 0,
         authority        TEXT    NOT NULL,
         approval         TEXT    NOT NULL,
         started_unix_ms  INTEGER NOT NULL,
         updated_unix_ms  INTEGER NOT NULL,
         resume_json      TEXT    NOT NULL      -- what the engine needs to pick the session up again
     ) STRICT;
     CREATE INDEX sessions_device ON sessions (device, started_unix_ms);
     CREATE TABLE session_events (
         id          INTEGER PRIMARY KEY,
         session     INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
         at_unix_ms  INTEGER NOT NULL,
         from_state  TEXT,
         to_state    TEXT    NOT NULL,
         detail      TEXT    NOT NULL,
         bytes       INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX session_events_session ON session_events (session, id);";

/// The `repo` room's content-addressed cache index (see `store::cache`). A block of its own so
/// migrations from other branches can be ordered around it when merging.
const REPO_CACHE: &str = "CREATE TABLE cache_blobs (
         digest              TEXT    PRIMARY KEY,  -- lowercase hex SHA-256 of the file
         size                INTEGER NOT NULL,
         kind                TEXT    NOT NULL,     -- envelope | payload | index
         source              TEXT    NOT NULL,     -- repository name and path it came from
         first_used_unix_ms  INTEGER NOT NULL,
         last_used_unix_ms   INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX cache_blobs_lru ON cache_blobs (last_used_unix_ms);
     -- No foreign key: a delivery may pin a blob before it has been fetched.
     CREATE TABLE cache_pins (
         reference        TEXT    NOT NULL,
         digest           TEXT    NOT NULL,
         pinned_unix_ms   INTEGER NOT NULL,
         PRIMARY KEY (reference, digest)
     ) STRICT;
     CREATE INDEX cache_pins_digest ON cache_pins (digest);
     CREATE TABLE cache_rejections (
         id          INTEGER PRIMARY KEY,
         at_unix_ms  INTEGER NOT NULL,
         source      TEXT    NOT NULL,
         what        TEXT    NOT NULL,
         reason      TEXT    NOT NULL,
         threat      TEXT
     ) STRICT;
     CREATE TABLE repo_state (
         repository            TEXT    PRIMARY KEY,
         index_version         INTEGER,
         index_expires_unix_s  INTEGER,
         updated_unix_ms       INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE repo_manifests (
         repository        TEXT    NOT NULL,
         path              TEXT    NOT NULL,
         digest            TEXT    NOT NULL,
         sequence_number   INTEGER NOT NULL,
         payloads_json     TEXT    NOT NULL,     -- [[location, sha256 hex, size], ...]
         accepted_unix_ms  INTEGER NOT NULL,
         PRIMARY KEY (repository, path)
     ) STRICT;";

/// The schema version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

pub(super) fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > latest() {
        return Err(StoreError::TooNew { path: path.to_owned(), found, known: latest() });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
        tracing::info!(db = %path.display(), version = version + 1, "applied store migration");
    }
    Ok(())
}
