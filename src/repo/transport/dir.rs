//! A local folder repository (`file://` or a path): RIOT's `coaproot` layout works as is.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::{join_err, FetchError, Small};
use crate::repo::cache::{BlobWriter, Landed};

const CHUNK: usize = 64 * 1024;

pub struct DirSource {
    root: PathBuf,
}

fn open(root: &std::path::Path, path: &str) -> Result<File, FetchError> {
    let full = root.join(path);
    File::open(&full).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => FetchError::NotFound,
        _ => FetchError::Transport(format!("cannot open {}: {e}", full.display())),
    })
}

impl DirSource {
    pub fn new(root: PathBuf) -> DirSource {
        DirSource { root }
    }

    pub async fn get_small(&self, path: &str, max: usize) -> Result<Small, FetchError> {
        let (root, path) = (self.root.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            let file = open(&root, &path)?;
            let mut bytes = Vec::new();
            file.take(max as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| FetchError::Transport(format!("cannot read {path}: {e}")))?;
            if bytes.len() > max {
                return Err(FetchError::TooLarge { limit: max as u64 });
            }
            Ok(Small::Body { bytes, etag: None })
        })
        .await
        .map_err(join_err)?
    }

    pub async fn download(&self, path: &str, mut writer: BlobWriter) -> Result<Landed, FetchError> {
        let (root, path) = (self.root.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut file = open(&root, &path)?;
            let read_err = |e: io::Error| FetchError::Transport(format!("cannot read {path}: {e}"));
            file.seek(SeekFrom::Start(writer.written())).map_err(read_err)?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = file.read(&mut buf).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                writer.write(&buf[..n])?;
            }
            Ok(writer.finish()?)
        })
        .await
        .map_err(join_err)?
    }
}
