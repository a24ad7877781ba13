//! `delivery_attempts`: per device and update, the sessions that ended and what the retry
//! policy ([`crate::deliver::RetryPolicy`]) made of them, so a restart keeps counting.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

/// One `delivery_attempts` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    /// EUI-64, 16 lowercase hex digits (as `sessions.device`).
    pub device: String,
    pub manifest_digest: String,
    pub sequence: u64,
    /// Sessions of this update on this device that ended (cancelled ones are not counted).
    pub attempts: u32,
    pub last_session: i64,
    /// The last session's terminal state (`failed`, `rolled-back`, `done`, …).
    pub last_result: String,
    pub last_reason: Option<String>,
    pub last_unix_ms: i64,
    /// When the next session may start; `None` when none will.
    pub next_unix_ms: Option<i64>,
    /// The attempts are spent: ferry does not try this update on this device again.
    pub gave_up: bool,
}

const COLUMNS: &str = "device, manifest_digest, sequence, attempts, last_session, last_result, last_reason,
                       last_unix_ms, next_unix_ms, gave_up";

fn attempt_row(row: &Row<'_>) -> rusqlite::Result<AttemptRow> {
    Ok(AttemptRow {
        device: row.get(0)?,
        manifest_digest: row.get(1)?,
        sequence: row.get::<_, i64>(2)?.max(0) as u64,
        attempts: row.get(3)?,
        last_session: row.get(4)?,
        last_result: row.get(5)?,
        last_reason: row.get(6)?,
        last_unix_ms: row.get(7)?,
        next_unix_ms: row.get(8)?,
        gave_up: row.get(9)?,
    })
}

/// Writes (replaces) the row of its device and update.
pub fn write(conn: &Connection, row: &AttemptRow) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO delivery_attempts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            row.device,
            row.manifest_digest,
            i64::try_from(row.sequence).unwrap_or(i64::MAX),
            row.attempts,
            row.last_session,
            row.last_result,
            row.last_reason,
            row.last_unix_ms,
            row.next_unix_ms,
            row.gave_up,
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, device: &str, manifest_digest: &str) -> rusqlite::Result<Option<AttemptRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM delivery_attempts WHERE device = ?1 AND manifest_digest = ?2"),
        [device, manifest_digest],
        attempt_row,
    )
    .optional()
}

/// Rows of one device (EUI-64 hex) or all, latest result first.
pub fn list(conn: &Connection, device: Option<&str>) -> rusqlite::Result<Vec<AttemptRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM delivery_attempts WHERE ?1 IS NULL OR device = ?1 ORDER BY last_unix_ms DESC"
    ))?;
    let rows = stmt.query_map([device], attempt_row)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_replaced_per_device_and_update() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        crate::store::migrate(&mut conn).expect("migrate");
        let first = AttemptRow {
            device: "0011223344556677".into(),
            manifest_digest: "ab".repeat(32),
            sequence: 6,
            attempts: 1,
            last_session: 1,
            last_result: "rolled-back".into(),
            last_reason: Some("boot".into()),
            last_unix_ms: 1_000,
            next_unix_ms: Some(61_000),
            gave_up: false,
        };
        write(&conn, &first).expect("write");
        let second = AttemptRow { attempts: 2, last_session: 2, next_unix_ms: None, gave_up: true, ..first.clone() };
        write(&conn, &second).expect("write");
        assert_eq!(get(&conn, &first.device, &first.manifest_digest).expect("get"), Some(second.clone()));
        assert_eq!(list(&conn, Some("0011223344556677")).expect("list"), vec![second]);
        assert!(list(&conn, Some("ffffffffffffffff")).expect("list").is_empty());
    }
}
