//! Typed queries over the blob cache index (`cache_blobs`, `cache_pins`, `cache_rejections`)
//! and the repositories' freshness state (`repo_state`, `repo_manifests`). The files live in
//! `<state_dir>/blobs/sha256/`; `repo::cache` keeps the two in step.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// What a cached blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Envelope,
    Payload,
    Index,
}

impl BlobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Envelope => "envelope",
            BlobKind::Payload => "payload",
            BlobKind::Index => "index",
        }
    }

    /// Unknown text (a newer ferry's kind) reads as a payload: the most cautious choice, since
    /// payloads are never parsed.
    pub fn parse(s: &str) -> BlobKind {
        match s {
            "envelope" => BlobKind::Envelope,
            "index" => BlobKind::Index,
            _ => BlobKind::Payload,
        }
    }
}

/// One row of `cache_blobs`, with how many references pin it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRow {
    /// Lowercase hex SHA-256.
    pub digest: String,
    pub size: u64,
    pub kind: BlobKind,
    pub source: String,
    pub first_used_unix_ms: i64,
    pub last_used_unix_ms: i64,
    pub pins: u64,
}

const SELECT_BLOB: &str = "SELECT b.digest, b.size, b.kind, b.source, b.first_used_unix_ms, b.last_used_unix_ms,
            (SELECT count(*) FROM cache_pins p WHERE p.digest = b.digest)
     FROM cache_blobs b";

fn blob_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BlobRow> {
    let kind: String = row.get(2)?;
    Ok(BlobRow {
        digest: row.get(0)?,
        size: row.get::<_, i64>(1)?.max(0) as u64,
        kind: BlobKind::parse(&kind),
        source: row.get(3)?,
        first_used_unix_ms: row.get(4)?,
        last_used_unix_ms: row.get(5)?,
        pins: row.get::<_, i64>(6)?.max(0) as u64,
    })
}

/// Records a blob that has just landed under its final name (or refreshes its use time).
pub fn upsert_blob(
    conn: &Connection,
    digest: &str,
    size: u64,
    kind: BlobKind,
    source: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO cache_blobs (digest, size, kind, source, first_used_unix_ms, last_used_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (digest) DO UPDATE SET last_used_unix_ms = excluded.last_used_unix_ms",
        params![digest, size as i64, kind.as_str(), source, now_ms],
    )?;
    Ok(())
}

/// Marks a blob as just used (LRU). False if it is not indexed.
pub fn touch(conn: &Connection, digest: &str, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute("UPDATE cache_blobs SET last_used_unix_ms = ?2 WHERE digest = ?1", params![digest, now_ms])? > 0)
}

pub fn get(conn: &Connection, digest: &str) -> rusqlite::Result<Option<BlobRow>> {
    conn.query_row(&format!("{SELECT_BLOB} WHERE b.digest = ?1"), [digest], blob_row).optional()
}

/// Every indexed blob, least recently used first.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<BlobRow>> {
    let mut stmt = conn.prepare(&format!("{SELECT_BLOB} ORDER BY b.last_used_unix_ms, b.digest"))?;
    let rows = stmt.query_map([], blob_row)?;
    rows.collect()
}

pub fn delete(conn: &Connection, digest: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM cache_blobs WHERE digest = ?1", [digest])? > 0)
}

pub fn total_size(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row("SELECT coalesce(sum(size), 0) FROM cache_blobs", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Unpinned blobs, least recently used first: what eviction may take.
pub fn evictable(conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT digest, size FROM cache_blobs b
         WHERE NOT EXISTS (SELECT 1 FROM cache_pins p WHERE p.digest = b.digest)
         ORDER BY last_used_unix_ms, digest",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
    rows.collect()
}

/// Pins `digest` for `reference` (e.g. `delivery:42`, `installed:dev7`). Idempotent.
pub fn pin(conn: &Connection, reference: &str, digest: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO cache_pins (reference, digest, pinned_unix_ms) VALUES (?1, ?2, ?3)",
        params![reference, digest, now_ms],
    )?;
    Ok(())
}

/// Drops every pin held by `reference`; returns how many there were.
pub fn unpin(conn: &Connection, reference: &str) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM cache_pins WHERE reference = ?1", [reference])
}

/// The references pinning `digest`.
pub fn pinned_by(conn: &Connection, digest: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT reference FROM cache_pins WHERE digest = ?1 ORDER BY reference")?;
    let rows = stmt.query_map([digest], |r| r.get(0))?;
    rows.collect()
}

/// One refused download or envelope, for the audit trail and `ferry cache ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub at_unix_ms: i64,
    pub source: String,
    pub what: String,
    pub reason: String,
    /// RFC 9124 threat ID, when the failure is evidence of one.
    pub threat: Option<String>,
}

pub fn record_rejection(conn: &Connection, r: &Rejection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO cache_rejections (at_unix_ms, source, what, reason, threat) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![r.at_unix_ms, r.source, r.what, r.reason, r.threat],
    )?;
    Ok(())
}

/// The most recent rejections, newest first.
pub fn rejections(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<Rejection>> {
    let mut stmt = conn
        .prepare("SELECT at_unix_ms, source, what, reason, threat FROM cache_rejections ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([limit], |r| {
        Ok(Rejection {
            at_unix_ms: r.get(0)?,
            source: r.get(1)?,
            what: r.get(2)?,
            reason: r.get(3)?,
            threat: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The highest index version accepted from `repository`, and its expiry.
pub fn index_state(conn: &Connection, repository: &str) -> rusqlite::Result<Option<(u64, i64)>> {
    conn.query_row(
        "SELECT index_version, index_expires_unix_s FROM repo_state WHERE repository = ?1 AND index_version IS NOT NULL",
        [repository],
        |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?)),
    )
    .optional()
}

/// The last signed index accepted from a repository: its blob in the cache and the ETag it
/// came with, for a conditional first poll after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIndex {
    pub version: u64,
    pub expires_unix_s: i64,
    /// Hex SHA-256 of the index bytes (a `BlobKind::Index` blob).
    pub digest: Option<String>,
    pub etag: Option<String>,
}

pub fn stored_index(conn: &Connection, repository: &str) -> rusqlite::Result<Option<StoredIndex>> {
    conn.query_row(
        "SELECT index_version, index_expires_unix_s, index_digest, index_etag FROM repo_state
         WHERE repository = ?1 AND index_version IS NOT NULL",
        [repository],
        |r| {
            Ok(StoredIndex {
                version: r.get::<_, i64>(0)?.max(0) as u64,
                expires_unix_s: r.get(1)?,
                digest: r.get(2)?,
                etag: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Remembers an accepted index, its blob and ETag. Never lowers the stored version, so a bug
/// upstream of this call cannot open the door to a rollback.
pub fn set_index_state(conn: &Connection, repository: &str, index: &StoredIndex, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO repo_state (repository, index_version, index_expires_unix_s, updated_unix_ms, index_digest, index_etag)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (repository) DO UPDATE SET
             index_version = max(coalesce(index_version, 0), excluded.index_version),
             index_expires_unix_s = excluded.index_expires_unix_s,
             updated_unix_ms = excluded.updated_unix_ms,
             index_digest = excluded.index_digest,
             index_etag = excluded.index_etag",
        params![
            repository,
            // SQLite integers are signed: a version beyond i64::MAX is stored as i64::MAX, so the
            // stored floor only ever rises (a wrapped, negative value would read back as 0).
            i64::try_from(index.version).unwrap_or(i64::MAX),
            index.expires_unix_s,
            now_ms,
            index.digest,
            index.etag
        ],
    )?;
    Ok(())
}

/// A manifest verified and cached with all its payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestRow {
    pub repository: String,
    pub path: String,
    /// Hex SHA-256 of the envelope blob.
    pub digest: String,
    pub sequence_number: u64,
    /// Where each payload is in the repository, its hex SHA-256 and size, so payloads evicted
    /// later are fetched again without re-verifying the envelope.
    pub payloads: Vec<(String, String, u64)>,
    pub accepted_unix_ms: i64,
}

pub fn record_manifest(conn: &Connection, m: &ManifestRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO repo_manifests (repository, path, digest, sequence_number, payloads_json, accepted_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (repository, path) DO UPDATE SET digest = excluded.digest,
             sequence_number = excluded.sequence_number, payloads_json = excluded.payloads_json,
             accepted_unix_ms = excluded.accepted_unix_ms",
        params![
            m.repository,
            m.path,
            m.digest,
            // Admission (`store::sequence`) refuses sequence numbers above i64::MAX.
            i64::try_from(m.sequence_number).unwrap_or(i64::MAX),
            serde_json::to_string(&m.payloads).unwrap_or_else(|_| "[]".into()),
            m.accepted_unix_ms
        ],
    )?;
    Ok(())
}

/// Accepted manifests, of one repository or all.
pub fn manifests(conn: &Connection, repository: Option<&str>) -> rusqlite::Result<Vec<ManifestRow>> {
    let mut stmt = conn.prepare(
        "SELECT repository, path, digest, sequence_number, payloads_json, accepted_unix_ms FROM repo_manifests
         WHERE ?1 IS NULL OR repository = ?1 ORDER BY repository, path",
    )?;
    let rows = stmt.query_map([repository], |r| {
        Ok(ManifestRow {
            repository: r.get(0)?,
            path: r.get(1)?,
            digest: r.get(2)?,
            sequence_number: r.get::<_, i64>(3)?.max(0) as u64,
            // Unreadable text (never written by us) reads as "no payloads": the manifest is then
            // fetched and verified again when its path changes.
            payloads: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
            accepted_unix_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_index_version_never_wraps_to_a_lower_one() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        crate::store::migrate(&mut conn).expect("migrate");
        let index = |version| StoredIndex { version, expires_unix_s: 0, digest: None, etag: None };
        set_index_state(&conn, "r", &index(7), 1).expect("store");
        // Beyond what SQLite's signed integers hold: stored as the largest, not as a negative.
        set_index_state(&conn, "r", &index(u64::MAX), 2).expect("store");
        assert_eq!(index_state(&conn, "r").expect("read").map(|(v, _)| v), Some(i64::MAX as u64));
        set_index_state(&conn, "r", &index(8), 3).expect("store");
        assert_eq!(index_state(&conn, "r").expect("read").map(|(v, _)| v), Some(i64::MAX as u64), "never lowered");
    }
}
