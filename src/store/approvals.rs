//! `ferry update approve`: operators' approvals of accepted manifests (migration 6).

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// An approval of one manifest (by envelope digest), for one group or for all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Lowercase hex SHA-256 of the envelope.
    pub digest: String,
    /// `None`: every group.
    pub group: Option<String>,
    pub uid: u32,
    pub approved_unix_ms: i64,
}

/// Records `approval`; false when the same digest was already approved for that scope (the
/// first approval is kept).
pub fn approve(conn: &Connection, approval: &Approval) -> rusqlite::Result<bool> {
    let added = conn.execute(
        "INSERT INTO update_approvals (digest, group_name, uid, approved_unix_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (digest, group_name) DO NOTHING",
        params![
            approval.digest,
            approval.group.as_deref().unwrap_or(""),
            i64::from(approval.uid),
            approval.approved_unix_ms
        ],
    )?;
    Ok(added == 1)
}

pub fn all(conn: &Connection) -> rusqlite::Result<Vec<Approval>> {
    let mut stmt = conn.prepare(
        "SELECT digest, group_name, uid, approved_unix_ms FROM update_approvals ORDER BY approved_unix_ms, digest",
    )?;
    let rows = stmt.query_map([], |r| {
        let group: String = r.get(1)?;
        Ok(Approval {
            digest: r.get(0)?,
            group: (!group.is_empty()).then_some(group),
            uid: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
            approved_unix_ms: r.get(3)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_are_kept_once_per_scope() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let a = Approval { digest: "ab".repeat(32), group: None, uid: 0, approved_unix_ms: 5 };
        assert!(approve(&conn, &a).unwrap());
        assert!(!approve(&conn, &Approval { uid: 7, approved_unix_ms: 9, ..a.clone() }).unwrap());
        let flat = Approval { group: Some("flat-1".into()), uid: 1000, ..a.clone() };
        assert!(approve(&conn, &flat).unwrap());
        assert_eq!(all(&conn).unwrap(), vec![a, flat]);
    }
}
