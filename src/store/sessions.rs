//! `sessions` and `session_events`: the delivery sessions of the `deliver` room and the audit
//! trail of every transition. The engine hands the daemon a record at every transition; the
//! daemon writes it here (row upsert and event insert in one transaction) before it performs the
//! action the transition caused, so after a crash the table never claims more than happened.
//!
//! States are stored as the engine's lowercase names (`planned`, `triggered`, …, `done`,
//! `unconfirmed`, `failed`, `rolled-back`, `cancelled`); this module does not interpret them
//! beyond [`TERMINAL_STATES`].

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// States after which a session never moves again.
pub const TERMINAL_STATES: &[&str] = &["done", "unconfirmed", "failed", "rolled-back", "cancelled"];

/// One `sessions` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub id: i64,
    /// EUI-64, 16 lowercase hex digits.
    pub device: String,
    /// Lowercase hex SHA-256 of the envelope.
    pub manifest_digest: String,
    pub sequence: u64,
    pub state: String,
    pub reason: Option<String>,
    pub bytes: u64,
    pub attempts: u32,
    /// Who signed the update (the trust policy's authority).
    pub authority: String,
    /// Which policy or approval allowed it.
    pub approval: String,
    pub started_unix_ms: i64,
    pub updated_unix_ms: i64,
    /// Opaque to the store: what the engine needs to resume the session.
    #[serde(skip)]
    pub resume_json: String,
}

/// One `session_events` row: a transition (or a progress checkpoint when `from_state` equals
/// `to_state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub session: i64,
    pub at_unix_ms: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub detail: String,
    pub bytes: u64,
}

/// Writes a session's row and, if given, its transition event, in one transaction.
pub fn write(conn: &mut Connection, row: &SessionRow, event: Option<&EventRow>) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO sessions (id, device, manifest_digest, sequence, state, reason, bytes, attempts, authority,
                               approval, started_unix_ms, updated_unix_ms, resume_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, reason = excluded.reason, bytes = excluded.bytes,
             attempts = excluded.attempts, updated_unix_ms = excluded.updated_unix_ms,
             resume_json = excluded.resume_json",
        params![
            row.id,
            row.device,
            row.manifest_digest,
            to_sql_u64(row.sequence),
            row.state,
            row.reason,
            to_sql_u64(row.bytes),
            row.attempts,
            row.authority,
            row.approval,
            row.started_unix_ms,
            row.updated_unix_ms,
            row.resume_json,
        ],
    )?;
    if let Some(e) = event {
        tx.execute(
            "INSERT INTO session_events (session, at_unix_ms, from_state, to_state, detail, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.session, e.at_unix_ms, e.from_state, e.to_state, e.detail, to_sql_u64(e.bytes)],
        )?;
    }
    tx.commit()
}

/// SQLite integers are signed; sequence numbers and byte counts never reach 2^63.
fn to_sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "id, device, manifest_digest, sequence, state, reason, bytes, attempts, authority, approval,
                       started_unix_ms, updated_unix_ms, resume_json";

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        device: row.get(1)?,
        manifest_digest: row.get(2)?,
        sequence: row.get::<_, i64>(3)?.max(0) as u64,
        state: row.get(4)?,
        reason: row.get(5)?,
        bytes: row.get::<_, i64>(6)?.max(0) as u64,
        attempts: row.get(7)?,
        authority: row.get(8)?,
        approval: row.get(9)?,
        started_unix_ms: row.get(10)?,
        updated_unix_ms: row.get(11)?,
        resume_json: row.get(12)?,
    })
}

/// Every session not in a terminal state, oldest first: what the engine resumes.
pub fn unfinished(conn: &Connection) -> rusqlite::Result<Vec<SessionRow>> {
    let placeholders = TERMINAL_STATES.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let mut stmt =
        conn.prepare(&format!("SELECT {COLUMNS} FROM sessions WHERE state NOT IN ({placeholders}) ORDER BY id"))?;
    let rows = stmt.query_map([], session_row)?;
    rows.collect()
}

/// Sessions, newest first, of one device (EUI-64 hex) or all.
pub fn list(conn: &Connection, device: Option<&str>) -> rusqlite::Result<Vec<SessionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE ?1 IS NULL OR device = ?1 ORDER BY started_unix_ms DESC, id DESC"
    ))?;
    let rows = stmt.query_map([device], session_row)?;
    rows.collect()
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<SessionRow>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"), [id], session_row).optional()
}

/// The transitions of one session, in order.
pub fn events(conn: &Connection, session: i64) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = conn.prepare(
        "SELECT session, at_unix_ms, from_state, to_state, detail, bytes FROM session_events
         WHERE session = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([session], |row| {
        Ok(EventRow {
            session: row.get(0)?,
            at_unix_ms: row.get(1)?,
            from_state: row.get(2)?,
            to_state: row.get(3)?,
            detail: row.get(4)?,
            bytes: row.get::<_, i64>(5)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

/// The highest session id ever written (0 when none): new sessions are numbered above it.
pub fn max_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM sessions", [], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, state: &str) -> SessionRow {
        SessionRow {
            id,
            device: "0011223344556677".into(),
            manifest_digest: "ab".repeat(32),
            sequence: 1_700_000_000,
            state: state.into(),
            reason: None,
            bytes: 0,
            attempts: 1,
            authority: "riot-community".into(),
            approval: "policy:auto".into(),
            started_unix_ms: 1_000,
            updated_unix_ms: 1_000,
            resume_json: "{}".into(),
        }
    }

    #[test]
    fn transitions_rewrite_the_row_and_append_events() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        crate::store::migrate(&mut conn).expect("migrate");
        let first = row(1, "planned");
        let ev = |from: Option<&str>, to: &str| EventRow {
            session: 1,
            at_unix_ms: 2_000,
            from_state: from.map(str::to_owned),
            to_state: to.into(),
            detail: format!("to {to}"),
            bytes: 0,
        };
        write(&mut conn, &first, Some(&ev(None, "planned"))).expect("write");
        let mut moved = SessionRow { state: "streaming".into(), bytes: 640, updated_unix_ms: 3_000, ..first.clone() };
        moved.authority = "someone else".into(); // identity columns are never rewritten
        write(&mut conn, &moved, Some(&ev(Some("planned"), "streaming"))).expect("write");
        write(&mut conn, &row(2, "done"), None).expect("write");
        let got = get(&conn, 1).expect("get").expect("row");
        assert_eq!((got.state.as_str(), got.bytes, got.authority.as_str()), ("streaming", 640, "riot-community"));
        assert_eq!(events(&conn, 1).expect("events").len(), 2);
        assert_eq!(unfinished(&conn).expect("unfinished").iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(list(&conn, Some("0011223344556677")).expect("list").len(), 2);
        assert_eq!(list(&conn, Some("ffffffffffffffff")).expect("list").len(), 0);
        assert_eq!(max_id(&conn).expect("max"), 2);
    }
}
