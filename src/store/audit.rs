//! The audit log (migration 1): who did what, when. Rows are only ever added.

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_unix_ms: i64,
    /// `uid:1000 (tenant)`, `config`, `radio`, `repository:NAME`…
    pub actor: String,
    pub action: String,
    pub detail: String,
}

pub fn record(conn: &Connection, entry: &AuditEntry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_log (at_unix_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![entry.at_unix_ms, entry.actor, entry.action, entry.detail],
    )?;
    Ok(())
}

/// Rows whose detail mentions `needle` (an EUI-64, a digest), oldest first.
pub fn mentioning(conn: &Connection, needle: &str) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut stmt = conn
        .prepare("SELECT at_unix_ms, actor, action, detail FROM audit_log WHERE instr(detail, ?1) > 0 ORDER BY id")?;
    let rows = stmt.query_map([needle], |r| {
        Ok(AuditEntry { at_unix_ms: r.get(0)?, actor: r.get(1)?, action: r.get(2)?, detail: r.get(3)? })
    })?;
    rows.collect()
}
