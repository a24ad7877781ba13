//! `ferry history`: sessions and their transitions, read from the store (who signed, what
//! allowed it, when, bytes served, result).

use rusqlite::Connection;
use serde::Serialize;

use crate::store::sessions::{self, EventRow, SessionRow};

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub session: SessionRow,
    pub events: Vec<EventRow>,
}

/// Sessions of `device` (16 lowercase hex digits) or of all devices, newest first.
pub fn read(conn: &Connection, device: Option<&str>) -> rusqlite::Result<Vec<HistoryEntry>> {
    sessions::list(conn, device)?
        .into_iter()
        .map(|session| Ok(HistoryEntry { events: sessions::events(conn, session.id)?, session }))
        .collect()
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map_or_else(|_| ms.to_string(), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The text `ferry history` prints.
pub fn render(entries: &[HistoryEntry]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("no delivery sessions\n");
    }
    for e in entries {
        let s = &e.session;
        let _ = writeln!(
            out,
            "session {} device {} sequence {}: {}{} ({} bytes, {} trigger(s))",
            s.id,
            s.device,
            s.sequence,
            s.state,
            s.reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default(),
            s.bytes,
            s.attempts
        );
        let _ = writeln!(
            out,
            "  signed by {}, allowed by {}, manifest sha256:{}, {} → {}",
            s.authority,
            s.approval,
            s.manifest_digest,
            time(s.started_unix_ms),
            time(s.updated_unix_ms)
        );
        for ev in &e.events {
            let _ = writeln!(
                out,
                "  {}  {} → {}: {}",
                time(ev.at_unix_ms),
                ev.from_state.as_deref().unwrap_or("-"),
                ev.to_state,
                ev.detail
            );
        }
    }
    out
}
