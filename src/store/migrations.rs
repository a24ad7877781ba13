//! Versioned schema migrations. Each step has a fixed number and runs in one transaction with
//! its bookkeeping, so a crash mid-migration leaves the previous state. Never edit a released
//! step; add a new number.
//!
//! Rooms developed side by side reserve numbers, so a build may lack a number below its highest
//! (e.g. 6 without 5). Applied numbers are recorded one row each in `store_migrations`, and every
//! missing step runs in number order, so a database written by such a build takes the missing
//! step later. `PRAGMA user_version` holds the highest applied number (for `ferry status` and
//! for refusing a database from a newer ferry). Databases from before `store_migrations` count
//! every number up to their `user_version` as applied.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// One schema step and the number it is known by.
struct Migration {
    version: i64,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    // 1: the daemon's own bookkeeping.
    Migration {
        version: 1,
        sql: "CREATE TABLE meta (
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
    },
    // 2: anti-rollback. The highest sequence number accepted per (vendor, class, component),
    // and the one each device reports installed. IDs are raw bytes; component IDs are their
    // CBOR encoding, so multi-segment IDs compare exactly.
    Migration {
        version: 2,
        sql: "CREATE TABLE sequence_accepted (
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
    },
    // 3 (plan branch): the fleet. One row per device with its lifecycle; every fact ferry knows
    // about it in `fleet_facts`, keyed by fact name, with its value as JSON, its source and when
    // it was learned (see `store::devices`).
    Migration {
        version: 3,
        sql: "CREATE TABLE fleet_devices (
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
    },
    // 4: the repository cache (see `store::cache`).
    Migration { version: 4, sql: REPO_CACHE },
    // 5: delivery sessions (see `store::sessions`).
    Migration { version: 5, sql: SESSIONS },
    // 6: operators' approvals of updates (see `store::approvals`).
    Migration { version: 6, sql: UPDATE_APPROVALS },
    // 9 (repo branch; 7 and 8 are left to rooms developed alongside): the last accepted signed
    // index per repository is kept as a cache blob with its ETag, so the first poll after a
    // restart is conditional and the stored index still guards against rollback and freeze.
    Migration {
        version: 9,
        sql: "ALTER TABLE repo_state ADD COLUMN index_digest TEXT;
     ALTER TABLE repo_state ADD COLUMN index_etag TEXT;",
    },
    // 10 (failures branch): delivery attempts per device and update, for the retry policy
    // (see `store::attempts`).
    Migration { version: 10, sql: DELIVERY_ATTEMPTS },
];

/// Sessions that ended per device and update: how many, the last result, and when the next may
/// start (`NULL`: none will, it is done or ferry gave up).
const DELIVERY_ATTEMPTS: &str = "CREATE TABLE delivery_attempts (
         device           TEXT    NOT NULL,     -- EUI-64, 16 lowercase hex digits
         manifest_digest  TEXT    NOT NULL,     -- lowercase hex SHA-256 of the envelope
         sequence         INTEGER NOT NULL CHECK (sequence >= 0),
         attempts         INTEGER NOT NULL CHECK (attempts >= 0),
         last_session     INTEGER NOT NULL,
         last_result      TEXT    NOT NULL,     -- the session's terminal state
         last_reason      TEXT,
         last_unix_ms     INTEGER NOT NULL,
         next_unix_ms     INTEGER,
         gave_up          INTEGER NOT NULL CHECK (gave_up IN (0, 1)),
         PRIMARY KEY (device, manifest_digest)
     ) STRICT;";

/// `ferry update approve`: who approved which accepted manifest (by envelope digest), for one
/// group or (`group_name` empty) for all.
const UPDATE_APPROVALS: &str = "CREATE TABLE update_approvals (
         digest            TEXT    NOT NULL,     -- lowercase hex SHA-256 of the envelope
         group_name        TEXT    NOT NULL,     -- '' approves it for every group
         uid               INTEGER NOT NULL,
         approved_unix_ms  INTEGER NOT NULL,
         PRIMARY KEY (digest, group_name)
     ) STRICT;";

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

/// The schema version this build writes: its highest migration number.
pub fn latest() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

pub(super) fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > latest() {
        return Err(StoreError::TooNew { path: path.to_owned(), found, known: latest() });
    }
    let tracked: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'store_migrations'",
        [],
        |row| row.get(0),
    )?;
    let applied: BTreeSet<i64> = if tracked {
        let mut stmt = conn.prepare("SELECT version FROM store_migrations")?;
        let versions = stmt.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
        versions
    } else {
        // Before per-step bookkeeping, versions were applied contiguously up to user_version.
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE store_migrations (version INTEGER PRIMARY KEY, applied_unix_ms INTEGER NOT NULL) STRICT;",
        )?;
        for version in MIGRATIONS.iter().map(|m| m.version).filter(|v| *v <= found) {
            tx.execute("INSERT INTO store_migrations (version, applied_unix_ms) VALUES (?1, 0)", [version])?;
        }
        tx.commit()?;
        MIGRATIONS.iter().map(|m| m.version).filter(|v| *v <= found).collect()
    };
    let mut pending: Vec<&Migration> = MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)).collect();
    pending.sort_by_key(|m| m.version);
    for migration in pending {
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)?;
        tx.execute(
            "INSERT INTO store_migrations (version, applied_unix_ms) VALUES (?1, ?2)",
            [migration.version, unix_ms_now()],
        )?;
        let highest: i64 = tx.query_row("SELECT max(version) FROM store_migrations", [], |row| row.get(0))?;
        tx.pragma_update(None, "user_version", highest)?;
        tx.commit()?;
        tracing::info!(db = %path.display(), version = migration.version, "applied store migration");
    }
    Ok(())
}

/// When a step ran, for the bookkeeping row only.
fn unix_ms_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_lower_step_runs_after_a_higher_one() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn, Path::new(":memory:")).unwrap();
        // As if this database had been written by a build without step 4.
        conn.execute("DELETE FROM store_migrations WHERE version = 4", []).unwrap();
        conn.execute_batch("DROP TABLE cache_blobs; DROP TABLE cache_pins; DROP TABLE cache_rejections; DROP TABLE repo_state; DROP TABLE repo_manifests;").unwrap();
        apply(&mut conn, Path::new(":memory:")).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM cache_blobs", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, latest());
    }

    #[test]
    fn a_database_from_before_the_bookkeeping_keeps_its_steps() {
        let mut conn = Connection::open_in_memory().unwrap();
        for m in MIGRATIONS.iter().filter(|m| m.version <= 3) {
            conn.execute_batch(m.sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        apply(&mut conn, Path::new(":memory:")).unwrap();
        let applied: i64 = conn.query_row("SELECT count(*) FROM store_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
    }
}
