//! The state dir's lock file: one ferryd per state dir. The lock is an OS file lock, so it is
//! released when the process dies however it dies; the pid inside only helps the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "state dir {dir} is in use by another ferryd{pid}; stop that one first, or give this one \
         another [store] state_dir"
    )]
    Held { dir: PathBuf, pid: String },
    #[error("cannot open lock file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub(super) struct LockFile {
    _file: File,
}

impl LockFile {
    pub(super) fn acquire(path: &Path) -> Result<LockFile, LockError> {
        let io_err = |source| LockError::Io { path: path.to_owned(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let pid = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                let dir = path.parent().unwrap_or(path).to_owned();
                return Err(LockError::Held { dir, pid });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(LockFile { _file: file })
    }
}
