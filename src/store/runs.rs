//! `daemon_runs`: one row per ferryd start. A row whose `stopped_unix_ms` stays empty is a
//! run that ended without a clean shutdown (crash, kill, power loss); `alive_unix_ms` says
//! roughly when it was last seen healthy.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

pub type RunId = i64;

pub fn start(conn: &Connection, version: &str, now_ms: i64) -> rusqlite::Result<RunId> {
    conn.execute(
        "INSERT INTO daemon_runs (version, started_unix_ms, alive_unix_ms) VALUES (?1, ?2, ?2)",
        params![version, now_ms],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn heartbeat(conn: &Connection, run: RunId, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute("UPDATE daemon_runs SET alive_unix_ms = ?2 WHERE id = ?1", params![run, now_ms])?;
    Ok(())
}

pub fn stop(conn: &Connection, run: RunId, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE daemon_runs SET alive_unix_ms = ?2, stopped_unix_ms = ?2 WHERE id = ?1",
        params![run, now_ms],
    )?;
    Ok(())
}

/// What `ferry status` reports about the daemon's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub runs: i64,
    /// Earlier runs that never stopped cleanly.
    pub unclean_stops: i64,
    /// Whether the run before this one stopped cleanly (`None` on the first run).
    pub previous_clean: Option<bool>,
}

pub fn summary(conn: &Connection, current: RunId) -> rusqlite::Result<RunSummary> {
    let runs = conn.query_row("SELECT count(*) FROM daemon_runs", [], |row| row.get(0))?;
    let unclean_stops = conn.query_row(
        "SELECT count(*) FROM daemon_runs WHERE stopped_unix_ms IS NULL AND id <> ?1",
        [current],
        |row| row.get(0),
    )?;
    let previous_clean = conn
        .query_row(
            "SELECT stopped_unix_ms IS NOT NULL FROM daemon_runs WHERE id < ?1 ORDER BY id DESC LIMIT 1",
            [current],
            |row| row.get(0),
        )
        .optional()?;
    Ok(RunSummary { runs, unclean_stops, previous_clean })
}
