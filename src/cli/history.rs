//! `ferry history [DEVICE] [--state-dir DIR] [--json]`: delivery sessions and every transition,
//! read straight from the state dir's database (read-only; works while ferryd runs, WAL).

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

use crate::deliver::history;
use crate::deliver::record::device_hex;
use crate::fleet::device::parse_eui64;

pub fn run(state_dir: &Path, device: Option<&str>, json: bool) -> anyhow::Result<()> {
    let db = crate::store::StorePaths::new(state_dir).db;
    if !db.is_file() {
        anyhow::bail!("{} holds no ferry state (no ferry.db); give ferryd's [store] state_dir", state_dir.display());
    }
    let device = device.map(parse_eui64).transpose()?.map(|eui| device_hex(&eui));
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("open {}", db.display()))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 5 {
        anyhow::bail!(
            "{} predates delivery sessions (schema {version}); start ferryd once to upgrade it",
            db.display()
        );
    }
    let entries = history::read(&conn, device.as_deref()).with_context(|| format!("read {}", db.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print!("{}", history::render(&entries));
    }
    Ok(())
}
