//! The content-addressed blob cache: `<state_dir>/blobs/sha256/<hex>`, indexed in SQLite
//! (`store::cache`).
//!
//! * **Nothing partial under a final name.** Bytes go to a temp file in the same folder
//!   (`.tmp-*`, or `.partial-<hex>` when the expected digest is known, so an interrupted
//!   download resumes), are fsynced, renamed, and the folder is fsynced. A kill at any point
//!   leaves either no blob or the whole blob.
//! * **Checked while streaming.** A [`BlobWriter`] hashes as it writes and cuts a download off
//!   at the first byte beyond the announced size (endless-data attack, THREAT.IMG.EXTRA); a
//!   size or digest mismatch at the end discards the bytes.
//! * **LRU within `cache_max_mib`, never evicting a pinned blob.** Pins are (reference, digest)
//!   rows: deliveries and devices' installed versions pin what they still need.
//! * **Scrub at startup** re-hashes every blob, drops corrupt ones, rows without files and
//!   files without rows.
//!
//! Blocking file I/O lives in [`BlobWriter`] (call it from `spawn_blocking` or a blocking
//! thread); the async methods of [`BlobCache`] go through the store thread or `spawn_blocking`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::store::cache::{self as q, BlobKind, BlobRow, Rejection};
use crate::store::{Store, StoreError};

/// Sub-folder of `blobs/` for SHA-256-named files.
const SHA256_DIR: &str = "sha256";
const TEMP_PREFIX: &str = ".tmp-";
const PARTIAL_PREFIX: &str = ".partial-";
/// An interrupted download not resumed for this long is abandoned by `gc`/scrub.
const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// Read buffer for hashing files: bounded memory whatever the blob size.
const HASH_BUF: usize = 64 * 1024;

/// A SHA-256 digest, the name of a blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobDigest(pub [u8; 32]);

impl BlobDigest {
    pub fn of(data: &[u8]) -> BlobDigest {
        BlobDigest(Sha256::digest(data).into())
    }

    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// From a manifest's digest bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<BlobDigest> {
        bytes.try_into().ok().map(BlobDigest)
    }
}

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl FromStr for BlobDigest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{s}` is not a SHA-256 digest (64 hex digits)"));
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(BlobDigest(out))
    }
}

/// What a download must turn out to be, from a signed manifest or index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub digest: BlobDigest,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot {op} {path}: {source}; check free space and permissions of the state dir")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error(
        "{what} sent more than the {limit} bytes its signed size allows; download cut off \
         (endless-data attack, or a manifest that does not match the repository)"
    )]
    TooLarge { what: String, limit: u64 },
    #[error("{what} ended after {got} bytes, but its signed size is {expected}; discarded, it will be fetched again")]
    Short { what: String, expected: u64, got: u64 },
    #[error(
        "{what} hashes to {got}, not the signed digest {expected}; discarded. The repository or \
         the path to it serves modified content"
    )]
    DigestMismatch { what: String, expected: BlobDigest, got: BlobDigest },
    #[error("blob {0} is not in the cache; fetch it from its repository first")]
    NotCached(BlobDigest),
    #[error("blob {0} is already being downloaded; it will be there when that download ends")]
    Busy(BlobDigest),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a cache worker stopped: {0}")]
    Worker(String),
}

impl CacheError {
    /// The RFC 9124 threat a failed download is evidence of.
    pub fn threat(&self) -> Option<&'static str> {
        match self {
            CacheError::TooLarge { .. } => Some("THREAT.IMG.EXTRA"),
            CacheError::DigestMismatch { .. } => Some("THREAT.NET.ONPATH"),
            _ => None,
        }
    }

    /// True when the bytes were refused (as opposed to I/O trouble on our side).
    pub fn is_rejection(&self) -> bool {
        matches!(self, CacheError::TooLarge { .. } | CacheError::Short { .. } | CacheError::DigestMismatch { .. })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io { op, path: path.to_owned(), source }
}

/// How large a writer may grow.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Exact(Expected),
    AtMost(u64),
}

/// A blob that has landed under its final name, not yet indexed ([`BlobCache::register`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "register the blob, or it is dropped as an orphan by the next scrub"]
pub struct Landed {
    pub digest: BlobDigest,
    pub size: u64,
}

/// Streams one download to disk, hashing and size-checking as it goes. Blocking I/O.
///
/// Dropping a writer removes an anonymous temp file but keeps a `.partial-<hex>` one, so an
/// interrupted download of a known blob resumes from [`BlobWriter::written`].
pub struct BlobWriter {
    file: Option<File>,
    temp: PathBuf,
    dir: PathBuf,
    hasher: Sha256,
    written: u64,
    limit: Limit,
    what: String,
    resumable: bool,
    /// Keeps a second writer off the same `.partial` file while this one lives.
    _claim: Option<Claim>,
}

/// A digest being written; released on drop.
struct Claim {
    set: Arc<Mutex<HashSet<BlobDigest>>>,
    digest: BlobDigest,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.digest);
        }
    }
}

impl BlobWriter {
    /// Bytes already on disk: resume a download from here (HTTP `Range: bytes=N-`).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// What the writer was opened for (error messages name it).
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The size limit: exact size when known, else the maximum allowed.
    pub fn limit(&self) -> u64 {
        match self.limit {
            Limit::Exact(e) => e.size,
            Limit::AtMost(n) => n,
        }
    }

    /// Appends `chunk`. One byte past the limit discards everything and fails at once.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), CacheError> {
        let limit = self.limit();
        if self.written.saturating_add(chunk.len() as u64) > limit {
            self.discard_file();
            return Err(CacheError::TooLarge { what: self.what.clone(), limit });
        }
        let file = self.file.as_mut().ok_or_else(|| CacheError::Worker("writer already closed".into()))?;
        file.write_all(chunk).map_err(io_err("write", &self.temp))?;
        self.hasher.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Starts over (the server ignored our Range request and sends the whole body).
    pub fn reset(&mut self) -> Result<(), CacheError> {
        let file = self.file.as_mut().ok_or_else(|| CacheError::Worker("writer already closed".into()))?;
        file.set_len(0).map_err(io_err("truncate", &self.temp))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err("seek", &self.temp))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// The stream ended: checks size and digest, then fsyncs and renames into place.
    pub fn finish(mut self) -> Result<Landed, CacheError> {
        let got = BlobDigest(self.hasher.clone().finalize().into());
        if let Limit::Exact(e) = self.limit {
            if self.written != e.size {
                self.discard_file();
                return Err(CacheError::Short { what: self.what.clone(), expected: e.size, got: self.written });
            }
            if got != e.digest {
                self.discard_file();
                return Err(CacheError::DigestMismatch { what: self.what.clone(), expected: e.digest, got });
            }
        }
        let file = self.file.take().ok_or_else(|| CacheError::Worker("writer already closed".into()))?;
        file.sync_all().map_err(io_err("fsync", &self.temp))?;
        drop(file);
        let dest = self.dir.join(got.hex());
        fs::rename(&self.temp, &dest).map_err(io_err("rename into", &dest))?;
        sync_dir(&self.dir)?;
        Ok(Landed { digest: got, size: self.written })
    }

    /// Keeps the `.partial` file even if the writer is dropped mid-download (the task is
    /// cancelled or ferry stops): a transport that writes every piece as it arrives and can
    /// ask for the rest (CoAP Block2) resumes from it; the digest check at the end still
    /// decides.
    pub fn keep_partial_on_drop(&mut self) {
        self.resumable = true;
    }

    /// Cuts the bytes written back to `len` (a block boundary) and re-hashes what stays.
    pub fn rewind_to(&mut self, len: u64) -> Result<(), CacheError> {
        if len >= self.written {
            return Ok(());
        }
        let file = self.file.as_mut().ok_or_else(|| CacheError::Worker("writer already closed".into()))?;
        file.set_len(len).map_err(io_err("truncate", &self.temp))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err("seek", &self.temp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; HASH_BUF];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let k = file.read(&mut buf[..want]).map_err(io_err("read", &self.temp))?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            left -= k as u64;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err("seek", &self.temp))?;
        self.hasher = hasher;
        self.written = len - left;
        Ok(())
    }

    /// Keeps what was written for a later resume (a transport error, not a bad byte).
    pub fn suspend(mut self) {
        if let Some(f) = self.file.take() {
            // Best effort: a partial that did not reach the disk is re-downloaded.
            let _ = f.sync_data();
        }
        self.resumable = true;
    }

    fn discard_file(&mut self) {
        self.file = None;
        let _ = fs::remove_file(&self.temp);
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() && !self.resumable {
            self.discard_file();
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    // The rename is only durable once the folder's entry is on disk.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync folder", dir))
}

fn hash_file(path: &Path) -> io::Result<(BlobDigest, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; HASH_BUF];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((BlobDigest(h.finalize().into()), n))
}

/// What a scrub found (and, when repairing, fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    pub checked: u64,
    /// Files whose content does not hash to their name.
    pub corrupt: Vec<String>,
    /// Index rows whose file is missing.
    pub missing_files: Vec<String>,
    /// Files the index does not know.
    pub orphan_files: Vec<String>,
    /// Leftover temp files and stale partial downloads.
    pub temps_removed: u64,
}

impl ScrubReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing_files.is_empty() && self.orphan_files.is_empty()
    }
}

/// What an eviction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub evicted: Vec<String>,
    pub freed_bytes: u64,
    pub total_bytes: u64,
    /// Bytes over the limit that could not be freed because pins hold them.
    pub pinned_over_limit: u64,
}

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct BlobCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    dir: PathBuf,
    max_bytes: u64,
    temp_counter: AtomicU64,
    last_ms: AtomicI64,
    in_flight: Arc<Mutex<HashSet<BlobDigest>>>,
}

impl BlobCache {
    /// Opens the cache in the store's `blobs/` folder with a size limit (`cache_max_mib`).
    /// Call [`BlobCache::scrub`] once at startup, before serving anything.
    pub fn open(store: Store, max_bytes: u64) -> Result<BlobCache, CacheError> {
        let dir = store.paths().blobs.join(SHA256_DIR);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(BlobCache {
            inner: Arc::new(Inner {
                store,
                dir,
                max_bytes,
                temp_counter: AtomicU64::new(0),
                last_ms: AtomicI64::new(0),
                in_flight: Arc::new(Mutex::new(HashSet::new())),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The folder of final blob files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// Where a blob's file is (whether or not it exists).
    pub fn path_of(&self, digest: &BlobDigest) -> PathBuf {
        self.inner.dir.join(digest.hex())
    }

    /// Wall-clock milliseconds, strictly increasing per cache so LRU order is total.
    fn now_ms(&self) -> i64 {
        let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let prev = self.inner.last_ms.fetch_max(wall, Ordering::SeqCst);
        if wall > prev {
            wall
        } else {
            self.inner.last_ms.fetch_add(1, Ordering::SeqCst) + 1
        }
    }

    /// A writer for a blob whose digest and size are known (signed). Resumes a `.partial`
    /// file left by an interrupted download: see [`BlobWriter::written`]. Blocking.
    /// Fails with [`CacheError::Busy`] while another writer of this process holds the digest.
    pub fn writer(&self, expected: Expected, what: &str) -> Result<BlobWriter, CacheError> {
        let claim = {
            let mut set =
                self.inner.in_flight.lock().map_err(|_| CacheError::Worker("in-flight set poisoned".into()))?;
            if !set.insert(expected.digest) {
                return Err(CacheError::Busy(expected.digest));
            }
            Claim { set: self.inner.in_flight.clone(), digest: expected.digest }
        };
        let temp = self.inner.dir.join(format!("{PARTIAL_PREFIX}{}", expected.digest.hex()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&temp)
            .map_err(io_err("open", &temp))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let len = file.metadata().map_err(io_err("stat", &temp))?.len();
        if len > expected.size {
            // Cannot be a prefix of the right blob.
            file.set_len(0).map_err(io_err("truncate", &temp))?;
        } else {
            // Re-hash what survived so the digest covers the whole blob.
            let mut buf = vec![0u8; HASH_BUF];
            loop {
                let k = file.read(&mut buf).map_err(io_err("read", &temp))?;
                if k == 0 {
                    break;
                }
                hasher.update(&buf[..k]);
                written += k as u64;
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io_err("seek", &temp))?;
        Ok(BlobWriter {
            file: Some(file),
            temp,
            dir: self.inner.dir.clone(),
            hasher,
            written,
            limit: Limit::Exact(expected),
            what: what.to_owned(),
            resumable: false,
            _claim: Some(claim),
        })
    }

    /// A writer for bytes whose digest is not known in advance (an envelope from a folder
    /// without an index), at most `max` bytes. Blocking.
    pub fn writer_unknown(&self, max: u64, what: &str) -> Result<BlobWriter, CacheError> {
        let n = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self.inner.dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        let file =
            OpenOptions::new().write(true).create(true).truncate(true).open(&temp).map_err(io_err("create", &temp))?;
        Ok(BlobWriter {
            file: Some(file),
            temp,
            dir: self.inner.dir.clone(),
            hasher: Sha256::new(),
            written: 0,
            limit: Limit::AtMost(max),
            what: what.to_owned(),
            resumable: false,
            _claim: None,
        })
    }

    /// Indexes a landed blob and evicts least-recently-used unpinned blobs (never this one)
    /// until the cache fits its limit.
    pub async fn register(&self, landed: Landed, kind: BlobKind, source: &str) -> Result<GcReport, CacheError> {
        let now = self.now_ms();
        let source = source.to_owned();
        let hex = landed.digest.hex();
        let keep = hex.clone();
        let (dir, max) = (self.inner.dir.clone(), self.inner.max_bytes);
        Ok(self
            .inner
            .store
            .call(move |c| {
                q::upsert_blob(c, &hex, landed.size, kind, &source, now)?;
                evict(c, &dir, max, Some(&keep))
            })
            .await?)
    }

    /// Writes small in-memory bytes (a verified envelope) as a blob and indexes it.
    pub async fn insert_bytes(&self, bytes: Vec<u8>, kind: BlobKind, source: &str) -> Result<BlobDigest, CacheError> {
        let expected = Expected { digest: BlobDigest::of(&bytes), size: bytes.len() as u64 };
        if self.contains(&expected.digest).await? {
            self.touch(&expected.digest).await?;
            return Ok(expected.digest);
        }
        let this = self.clone();
        let what = format!("{} from {source}", kind.as_str());
        let landed = tokio::task::spawn_blocking(move || {
            let mut w = this.writer(expected, &what)?;
            w.reset()?;
            w.write(&bytes)?;
            w.finish()
        })
        .await
        .map_err(|e| CacheError::Worker(e.to_string()))??;
        self.register(landed, kind, source).await?;
        Ok(landed.digest)
    }

    /// Whether the blob is indexed and its file exists.
    pub async fn contains(&self, digest: &BlobDigest) -> Result<bool, CacheError> {
        let hex = digest.hex();
        let indexed = self.inner.store.call(move |c| q::get(c, &hex)).await?.is_some();
        Ok(indexed && self.path_of(digest).is_file())
    }

    /// Marks a blob used now (LRU).
    pub async fn touch(&self, digest: &BlobDigest) -> Result<bool, CacheError> {
        let (hex, now) = (digest.hex(), self.now_ms());
        Ok(self.inner.store.call(move |c| q::touch(c, &hex, now)).await?)
    }

    /// Opens a cached blob for reading (delivery serves from this) and marks it used. The
    /// file stays readable through this handle even if it is evicted meanwhile; pin it for
    /// as long as a delivery needs it.
    pub async fn open_blob(&self, digest: &BlobDigest) -> Result<File, CacheError> {
        if !self.touch(digest).await? {
            return Err(CacheError::NotCached(*digest));
        }
        let path = self.path_of(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CacheError::NotCached(*digest),
            _ => CacheError::Io { op: "open", path: path.clone(), source: e },
        })
    }

    /// Reads a small cached blob (an envelope) whole, at most `max` bytes.
    pub async fn read_small(&self, digest: &BlobDigest, max: u64) -> Result<Vec<u8>, CacheError> {
        let file = self.open_blob(digest).await?;
        let path = self.path_of(digest);
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            file.take(max + 1).read_to_end(&mut out).map_err(io_err("read", &path))?;
            if out.len() as u64 > max {
                return Err(CacheError::TooLarge { what: path.display().to_string(), limit: max });
            }
            Ok(out)
        })
        .await
        .map_err(|e| CacheError::Worker(e.to_string()))?
    }

    /// Pins `digest` for `reference` (`delivery:<id>`, `installed:<device>`...): LRU
    /// eviction never takes a pinned blob. Idempotent.
    pub async fn pin(&self, reference: &str, digest: &BlobDigest) -> Result<(), CacheError> {
        let (r, hex, now) = (reference.to_owned(), digest.hex(), self.now_ms());
        Ok(self.inner.store.call(move |c| q::pin(c, &r, &hex, now)).await?)
    }

    /// Releases every pin of `reference`; returns how many there were.
    pub async fn unpin(&self, reference: &str) -> Result<usize, CacheError> {
        let r = reference.to_owned();
        Ok(self.inner.store.call(move |c| q::unpin(c, &r)).await?)
    }

    /// Every indexed blob, least recently used first.
    pub async fn list(&self) -> Result<Vec<BlobRow>, CacheError> {
        Ok(self.inner.store.call(|c| q::list(c)).await?)
    }

    /// Records a refused download or envelope.
    pub async fn record_rejection(
        &self,
        source: &str,
        what: &str,
        reason: &str,
        threat: Option<&str>,
    ) -> Result<(), CacheError> {
        let r = Rejection {
            at_unix_ms: self.now_ms(),
            source: source.to_owned(),
            what: what.to_owned(),
            reason: reason.to_owned(),
            threat: threat.map(str::to_owned),
        };
        tracing::warn!(source = %r.source, what = %r.what, reason = %r.reason, threat = ?r.threat, "repo: refused");
        Ok(self.inner.store.call(move |c| q::record_rejection(c, &r)).await?)
    }

    /// Evicts to the size limit and drops stale partial downloads.
    pub async fn gc(&self) -> Result<GcReport, CacheError> {
        self.gc_within(self.inner.max_bytes).await
    }

    /// [`BlobCache::gc`] to `max_bytes` instead of the configured limit (`ferry cache gc --max-mib`).
    pub async fn gc_within(&self, max_bytes: u64) -> Result<GcReport, CacheError> {
        let (dir, max) = (self.inner.dir.clone(), max_bytes);
        let report = self.inner.store.call(move |c| evict(c, &dir, max, None)).await?;
        let dir = self.inner.dir.clone();
        tokio::task::spawn_blocking(move || remove_temps(&dir, false))
            .await
            .map_err(|e| CacheError::Worker(e.to_string()))??;
        Ok(report)
    }

    /// Re-hashes every blob and reconciles files with index rows. With `repair`, drops corrupt
    /// blobs, rows without files, files without rows and leftover temp files; without it,
    /// only reports (`ferry cache verify`). Run with `repair` at startup.
    pub async fn scrub(&self, repair: bool) -> Result<ScrubReport, CacheError> {
        self.scrub_as(if repair { Scrub::Startup } else { Scrub::Report }).await
    }

    /// Scrub while ferryd serves (`ferry cache verify|gc` over the control socket): drops
    /// corrupt blobs and rows without files, but only reports temp and unindexed files, since a
    /// live download may own them (a landed blob is renamed into place just before its row is
    /// written).
    pub async fn scrub_live(&self) -> Result<ScrubReport, CacheError> {
        self.scrub_as(Scrub::Live).await
    }

    async fn scrub_as(&self, mode: Scrub) -> Result<ScrubReport, CacheError> {
        let repair = mode != Scrub::Report;
        let rows = self.list().await?;
        let dir = self.inner.dir.clone();
        let (mut report, good) = tokio::task::spawn_blocking(move || scan(&dir, mode))
            .await
            .map_err(|e| CacheError::Worker(e.to_string()))??;
        let indexed: HashMap<String, u64> = rows.into_iter().map(|r| (r.digest, r.size)).collect();
        let mut drop_rows = Vec::new();
        for (hex, size) in &indexed {
            match good.get(hex) {
                Some(file_size) if file_size == size => {}
                Some(_) => {
                    // Right content, wrong recorded size: the row is what is wrong.
                    report.corrupt.push(hex.clone());
                    drop_rows.push(hex.clone());
                    if repair {
                        let _ = fs::remove_file(self.path_of_hex(hex));
                    }
                }
                None if report.corrupt.contains(hex) => drop_rows.push(hex.clone()),
                None => {
                    report.missing_files.push(hex.clone());
                    drop_rows.push(hex.clone());
                }
            }
        }
        for hex in good.keys() {
            if !indexed.contains_key(hex) {
                report.orphan_files.push(hex.clone());
                if mode == Scrub::Startup {
                    let _ = fs::remove_file(self.path_of_hex(hex));
                }
            }
        }
        if repair {
            for hex in &report.corrupt {
                self.record_rejection("scrub", hex, "cached blob no longer matches its digest; dropped", None).await?;
            }
            self.inner
                .store
                .call(move |c| {
                    for hex in &drop_rows {
                        q::delete(c, hex)?;
                    }
                    Ok(())
                })
                .await?;
            sync_dir(&self.inner.dir)?;
        }
        report.corrupt.sort();
        report.missing_files.sort();
        report.orphan_files.sort();
        Ok(report)
    }

    fn path_of_hex(&self, hex: &str) -> PathBuf {
        self.inner.dir.join(hex)
    }
}

/// How much a scrub may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scrub {
    /// Change nothing (`ferry cache verify --state-dir`).
    Report,
    /// Nothing else runs: drop everything wrong, temp files included.
    Startup,
    /// Downloads may be running: drop corrupt blobs and dead rows only.
    Live,
}

/// Hashes every final-named file; returns the report so far and the good files' sizes.
fn scan(dir: &Path, mode: Scrub) -> Result<(ScrubReport, HashMap<String, u64>), CacheError> {
    let repair = mode != Scrub::Report;
    let mut report = ScrubReport::default();
    let mut good = HashMap::new();
    if mode == Scrub::Startup {
        report.temps_removed = remove_temps(dir, true)?;
    }
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(named) = name.parse::<BlobDigest>() else {
            continue;
        };
        if name != named.hex() {
            continue; // Upper-case or prefixed names are not ours.
        }
        let path = entry.path();
        report.checked += 1;
        match hash_file(&path) {
            Ok((digest, size)) if digest == named => {
                good.insert(name, size);
            }
            Ok(_) => {
                tracing::warn!(blob = %path.display(), "repo: corrupt blob (content does not match its name)");
                report.corrupt.push(name);
                if repair {
                    fs::remove_file(&path).map_err(io_err("remove", &path))?;
                }
            }
            Err(e) => {
                tracing::warn!(blob = %path.display(), error = %e, "repo: unreadable blob");
                report.corrupt.push(name);
                if repair {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
    Ok((report, good))
}

/// Removes `.tmp-*` files (only at startup: a live writer may own them) and partial
/// downloads older than [`PARTIAL_MAX_AGE`].
fn remove_temps(dir: &Path, startup: bool) -> Result<u64, CacheError> {
    let mut n = 0;
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = || {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > PARTIAL_MAX_AGE)
        };
        let remove = (startup && name.starts_with(TEMP_PREFIX)) || (name.starts_with(PARTIAL_PREFIX) && stale());
        if remove && fs::remove_file(entry.path()).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Evicts LRU unpinned blobs until the total fits `max`, never `keep`. Runs on the store
/// thread so no pin can slip in between the check and the removal.
fn evict(c: &rusqlite::Connection, dir: &Path, max: u64, keep: Option<&str>) -> rusqlite::Result<GcReport> {
    let mut report = GcReport { total_bytes: q::total_size(c)?, ..GcReport::default() };
    if report.total_bytes <= max {
        return Ok(report);
    }
    for (hex, size) in q::evictable(c)? {
        if report.total_bytes <= max {
            break;
        }
        if Some(hex.as_str()) == keep {
            continue;
        }
        // File first: a crash in between leaves a row without a file, which scrub drops.
        match fs::remove_file(dir.join(&hex)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(blob = %hex, error = %e, "repo: cannot evict blob");
                continue;
            }
        }
        q::delete(c, &hex)?;
        report.total_bytes = report.total_bytes.saturating_sub(size);
        report.freed_bytes += size;
        report.evicted.push(hex);
    }
    report.pinned_over_limit = report.total_bytes.saturating_sub(max);
    if report.pinned_over_limit > 0 {
        tracing::warn!(
            over = report.pinned_over_limit,
            "repo: cache is over [store] cache_max_mib but the rest is pinned by deliveries or installed versions"
        );
    }
    Ok(report)
}
