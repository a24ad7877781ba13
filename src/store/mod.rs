//! ferry's state on disk: one SQLite database (`<state_dir>/ferry.db`, WAL, versioned
//! migrations) and content-addressed blob files beside it (`<state_dir>/blobs/`).
//!
//! The connection is owned by one thread; the rest of the daemon sends it closures and awaits
//! the answer, so no lock is ever held across an `.await` and writes are naturally serialised.
//! A lock file keeps a second ferryd away from the same state dir.

pub mod approvals;
pub mod attempts;
pub mod audit;
pub mod cache;
pub mod devices;
mod lock;
mod migrations;
pub mod runs;
pub mod sequence;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;

use rusqlite::{Connection, OpenFlags};

pub use lock::LockError;

/// File names inside the state dir.
const DB_FILE: &str = "ferry.db";
const BLOBS_DIR: &str = "blobs";
const LOCK_FILE: &str = "ferryd.lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state dir {path}: {source}; check [store] state_dir and its permissions")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("cannot open database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "database {path} failed its integrity check: {report}. Stop ferryd, move the file aside \
         (keep it for inspection) and start again: ferry rebuilds its state and fetches \
         updates from the repositories again"
    )]
    Corrupt { path: PathBuf, report: String },
    #[error("database {path} has schema version {found}, newer than this ferry knows ({known}); run a newer ferry")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the store thread: {0}")]
    Thread(std::io::Error),
    #[error("the store thread has stopped")]
    Closed,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the store. Cheap to clone; the database closes when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    paths: Arc<StorePaths>,
    _lock: Arc<lock::LockFile>,
}

/// Where the store keeps its files.
#[derive(Debug, Clone)]
pub struct StorePaths {
    pub state_dir: PathBuf,
    pub db: PathBuf,
    pub blobs: PathBuf,
}

impl StorePaths {
    pub fn new(state_dir: &Path) -> StorePaths {
        StorePaths { state_dir: state_dir.to_owned(), db: state_dir.join(DB_FILE), blobs: state_dir.join(BLOBS_DIR) }
    }
}

impl Store {
    /// Locks the state dir, opens (or creates) the database, checks its integrity and brings
    /// its schema up to date.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let paths = StorePaths::new(state_dir);
        for dir in [&paths.state_dir, &paths.blobs] {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.clone(), source })?;
        }
        let lock = lock::LockFile::acquire(&paths.state_dir.join(LOCK_FILE))?;
        let mut conn = open_connection(&paths.db)?;
        migrations::apply(&mut conn, &paths.db)?;

        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("ferry-store".into())
            .spawn(move || {
                // Runs until every handle is gone; the connection closes with the thread.
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Store { jobs, paths: Arc::new(paths), _lock: Arc::new(lock) })
    }

    pub fn paths(&self) -> &StorePaths {
        &self.paths
    }

    /// Runs `f` on the store thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have gone away (shutdown); then nobody needs the answer.
            let _ = reply.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        Ok(answer.await.map_err(|_| StoreError::Closed)??)
    }
}

/// The schema version this build writes.
pub fn schema_version() -> i64 {
    migrations::latest()
}

/// Brings the schema of an already open connection up to date (tests, tools, in-memory stores).
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrations::apply(conn, Path::new(":memory:"))
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_owned(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    // A corrupt file may fail as early as the first pragma; report it as corruption.
    let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Corrupt { path: path.to_owned(), report: e.to_string() }
        }
        _ => StoreError::Open { path: path.to_owned(), source: e },
    };
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
    // WAL keeps readers (ferry cache ls on a state dir) off the writer's back; synchronous=FULL
    // makes every committed transaction survive a power cut, which a home router will see.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(corrupt)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(db = %path.display(), mode, "SQLite refused WAL mode; continuing in this mode");
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(corrupt)?;
    let report: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(corrupt)?;
    if report != "ok" {
        return Err(StoreError::Corrupt { path: path.to_owned(), report });
    }
    Ok(conn)
}

#[cfg(test)]
mod tests;
