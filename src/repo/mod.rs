//! Upstream repositories of signed SUIT updates, and the verified blob cache they fill.
//!
//! DESIGN §3 steps 1–3: poll each `[[repository]]` (a folder, HTTP(S) or CoAP) for its signed
//! index ([`index`]) or its `watch` paths, fetch new envelopes, **verify** each through a
//! pluggable [`Verifier`] (the trust policy), then fetch the payloads its signed manifest names
//! and cache them content-addressed ([`cache`]), checking size and digest while streaming.
//! Nothing is indexed as a manifest before its envelope verified and every payload matched.
//!
//! Each poll: with an `index_key`, fetch `ferry-index.cbor` (conditional GET over HTTP), refuse
//! it if forged, expired or older than the last accepted version; otherwise follow the `watch`
//! paths. The last accepted index is kept as a pinned blob with its ETag, so the first poll
//! after a restart is conditional too, and a CoAP server that supports Observe notifies index
//! changes between polls. For every listed envelope not yet accepted: fetch (≤ 64 KiB, in memory), check it
//! against the index entry, verify, fetch each payload into the cache, then record the manifest
//! (`repo_manifests`) and hand it to the daemon. Accepted manifests whose payloads were evicted
//! meanwhile get them fetched again. Refusals land in `cache_rejections` with their RFC 9124
//! threat. Transport errors fail the poll and back off; partial payloads resume.
//!
//! | file | what |
//! |---|---|
//! | `cache.rs` | [`BlobCache`]: blobs, streaming writer, pins, LRU, scrub |
//! | `index.rs` | the signed index format (documented there), sign and verify |
//! | `poll.rs` | [`Poller`]: interval, jitter and backoff, sans-IO |
//! | `metrics.rs` | [`RepoMetrics`]: counters for `ferry_repo_*` |
//! | `plan.rs` | what a verified manifest needs fetched, pure |
//! | `transport/` | the thin I/O shells: folder, HTTP(S) (ureq + rustls), CoAP (our endpoint) |
//!
//! For the daemon:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use ferry::repo::{BlobCache, KeyVerifier, Repository};
//! # async fn f(cfg: ferry::config::Config, store: ferry::store::Store) -> anyhow::Result<()> {
//! let cache = BlobCache::open(store, cfg.store.cache_max_mib * 1024 * 1024)?;
//! cache.scrub(true).await?;                       // once, before serving anything
//! let verifier = Arc::new(KeyVerifier::new(vec![/* or the trust policy */]));
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let (tx, mut accepted) = tokio::sync::mpsc::channel(64);
//! for rc in &cfg.repositories {
//!     let repo = Repository::new(rc, cache.clone(), verifier.clone())?;
//!     tokio::spawn(repo.run(shutdown.clone(), tx.clone()));
//! }
//! while let Some(m) = accepted.recv().await {
//!     // A delivery pins what it serves before it starts, and unpins when the session ends;
//!     // a device's installed version stays pinned as `installed:<device>`.
//!     for d in std::iter::once(&m.envelope).chain(&m.payloads) {
//!         cache.pin("delivery:42", d).await?;
//!     }
//!     let _file = cache.open_blob(&m.payloads[0]).await?; // serve block-wise from this
//!     cache.unpin("delivery:42").await?;
//! }
//! # Ok(()) }
//! ```

pub mod cache;
pub mod index;
pub mod metrics;
pub mod plan;
pub mod poll;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use cache::{BlobCache, BlobDigest, BlobWriter, CacheError, Expected, GcReport, Landed, ScrubReport};
pub use index::{Index, IndexEntry, IndexError};
pub use metrics::RepoMetrics;
pub use poll::{Jitter, Poller};
pub use transport::{FetchError, Transport};

use crate::config::RepositoryConfig;
use crate::store::cache::{self as q, BlobKind, ManifestRow};
use crate::store::StoreError;
use crate::suit::{Envelope, Manifest, PublicKey};

/// Why the trust policy refused an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    /// RFC 9124 threat ID (draft-ietf-suit-information-model), when the refusal is evidence
    /// of one.
    pub threat: Option<&'static str>,
}

impl From<crate::suit::Error> for Rejection {
    fn from(e: crate::suit::Error) -> Rejection {
        Rejection { reason: e.to_string(), threat: e.threat() }
    }
}

/// "Verify this envelope": the trust policy's seat. `repository` names where it came from.
/// Implemented for closures, so a policy plugs in as `Arc::new(|repo, bytes| ...)`.
pub trait Verifier: Send + Sync {
    fn verify(&self, repository: &str, envelope: &[u8]) -> Result<Manifest, Rejection>;
}

impl<F> Verifier for F
where
    F: Fn(&str, &[u8]) -> Result<Manifest, Rejection> + Send + Sync,
{
    fn verify(&self, repository: &str, envelope: &[u8]) -> Result<Manifest, Rejection> {
        self(repository, envelope)
    }
}

/// Plain signature check against fixed keys (no scopes, thresholds or anti-rollback): for
/// tests and until the trust policy lands.
pub struct KeyVerifier {
    keys: Vec<PublicKey>,
}

impl KeyVerifier {
    pub fn new(keys: Vec<PublicKey>) -> KeyVerifier {
        KeyVerifier { keys }
    }
}

impl Verifier for KeyVerifier {
    fn verify(&self, _repository: &str, envelope: &[u8]) -> Result<Manifest, Rejection> {
        let parsed = Envelope::parse(envelope)?;
        Ok(parsed.authenticate(&self.keys)?.into_manifest())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("repository {name}: {reason}; fix its [[repository]] entry")]
    Config { name: String, reason: String },
    #[error("repository {name}: {source}")]
    Index { name: String, source: IndexError },
    #[error("repository {name}: cannot fetch {path}: {reason}; retrying with backoff")]
    Fetch { name: String, path: String, reason: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl From<StoreError> for RepoError {
    fn from(e: StoreError) -> RepoError {
        RepoError::Cache(CacheError::Store(e))
    }
}

/// A manifest verified and cached with all its payloads.
#[derive(Debug, Clone)]
pub struct AcceptedManifest {
    pub repository: String,
    /// Path of the envelope in the repository.
    pub path: String,
    /// The envelope blob in the cache.
    pub envelope: BlobDigest,
    /// The payload blobs, in manifest order.
    pub payloads: Vec<BlobDigest>,
    pub manifest: Manifest,
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub index_version: Option<u64>,
    pub accepted: Vec<AcceptedManifest>,
    /// Envelopes or payloads refused (recorded in `cache_rejections`).
    pub rejected: usize,
    /// Transport trouble; the sync counts as failed for backoff and is retried.
    pub errors: Vec<String>,
}

/// One configured repository.
pub struct Repository {
    name: String,
    transport: Transport,
    index_key: Option<PublicKey>,
    watch: Vec<String>,
    cache: BlobCache,
    verifier: Arc<dyn Verifier>,
    interval: Duration,
    /// The last index accepted this run, and its ETag, for conditional GETs.
    last_index: Option<(Index, Option<String>)>,
    metrics: Arc<RepoMetrics>,
}

impl Repository {
    pub fn new(cfg: &RepositoryConfig, cache: BlobCache, verifier: Arc<dyn Verifier>) -> Result<Self, RepoError> {
        let config_err = |reason: String| RepoError::Config { name: cfg.name.clone(), reason };
        let transport = Transport::new(&cfg.url, cfg.max_rate_kib_s.map(|k| k * 1024)).map_err(config_err)?;
        let index_key = cfg.index_key.as_deref().map(index::load_public_key).transpose().map_err(config_err)?;
        for w in &cfg.watch {
            index::check_path(w).map_err(|e| config_err(format!("watch path: {e}")))?;
        }
        if index_key.is_none() && cfg.watch.is_empty() {
            return Err(config_err("needs an index_key (signed index) or watch paths; it has neither".into()));
        }
        Ok(Repository {
            name: cfg.name.clone(),
            transport,
            index_key,
            watch: cfg.watch.clone(),
            cache,
            verifier,
            interval: Duration::from_secs(cfg.poll_interval_s),
            last_index: None,
            metrics: Arc::default(),
        })
    }

    /// Counts into `metrics` (share one between all repositories; the daemon exports it).
    pub fn with_metrics(mut self, metrics: Arc<RepoMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<RepoMetrics> {
        &self.metrics
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls until `shutdown`, sending each newly accepted manifest to `accepted`.
    pub async fn run(mut self, shutdown: CancellationToken, accepted: mpsc::Sender<AcceptedManifest>) {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
                ^ self.name.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        let mut rng = Jitter::new(seed);
        let mut poller = Poller::new(std::time::Instant::now(), self.interval);
        loop {
            let deadline = tokio::time::Instant::from_std(poller.poll_timeout());
            // A CoAP server that keeps an Observe of the index wakes us early; the poll
            // interval stays as the fallback.
            let observing = self.index_key.is_some() && self.transport.observing();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.transport.changed(), if observing => {
                    tracing::debug!(repository = %self.name, "repo: the index changed (Observe); syncing now");
                }
            }
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.sync(jiff::Timestamp::now()) => r,
            };
            let now = std::time::Instant::now();
            match result {
                Ok(report) => {
                    let failed = !report.errors.is_empty();
                    for e in &report.errors {
                        tracing::warn!(repository = %self.name, error = %e, "repo: sync incomplete");
                    }
                    for m in report.accepted {
                        if accepted.send(m).await.is_err() {
                            return;
                        }
                    }
                    if failed {
                        poller.on_failure(now, rng.next_u64());
                    } else {
                        poller.on_success(now, rng.next_u64());
                    }
                    if self.index_key.is_some()
                        && !self.transport.observing()
                        && self.transport.observe(index::INDEX_FILE).await
                    {
                        tracing::info!(repository = %self.name, "repo: observing the index; polls continue as a fallback");
                    }
                }
                Err(e) => {
                    tracing::warn!(repository = %self.name, error = %e, "repo: sync failed");
                    poller.on_failure(now, rng.next_u64());
                }
            }
        }
    }

    /// One poll: index (or watch list) → envelopes → verify → payloads → cache. `now` is the
    /// wall clock the index expiry is checked against.
    pub async fn sync(&mut self, now: jiff::Timestamp) -> Result<SyncReport, RepoError> {
        let result = self.sync_inner(now).await;
        self.metrics.count_sync(&result);
        result
    }

    async fn sync_inner(&mut self, now: jiff::Timestamp) -> Result<SyncReport, RepoError> {
        let mut report = SyncReport::default();
        let entries: Vec<(String, Option<Expected>)> = match &self.index_key {
            Some(key) => {
                let index = self.fetch_index(key.clone(), now).await?;
                report.index_version = Some(index.version);
                index
                    .entries
                    .iter()
                    .map(|e| (e.path.clone(), Some(Expected { digest: e.digest, size: e.size })))
                    .collect()
            }
            None => self.watch.iter().map(|w| (w.clone(), None)).collect(),
        };
        let name = self.name.clone();
        let known = self.cache.store().call(move |c| q::manifests(c, Some(&name))).await?;
        for (path, expected) in entries {
            if let Some(e) = expected {
                let done = known.iter().find(|m| m.path == path && m.digest == e.digest.hex());
                if let Some(row) = done {
                    if self.cache.contains(&e.digest).await? {
                        // Verified before: only payloads evicted since need fetching again.
                        if let Err(e) = self.refill(row).await {
                            report.errors.push(e);
                        }
                        continue;
                    }
                }
            }
            match self.sync_manifest(&path, expected, &known).await {
                Ok(Some(m)) => report.accepted.push(m),
                Ok(None) => {}
                Err(Step::Rejected) => report.rejected += 1,
                Err(Step::Failed(e)) => report.errors.push(e),
                Err(Step::Fatal(e)) => return Err(e),
            }
        }
        Ok(report)
    }

    /// The index accepted before the last restart, re-verified (signature, expiry) from the
    /// cache; `None` when there is none or it no longer holds, so the poll is unconditional.
    async fn restore_index(
        &self,
        key: &PublicKey,
        now: jiff::Timestamp,
    ) -> Result<Option<(Index, Option<String>)>, RepoError> {
        let name = self.name.clone();
        let Some(stored) = self.cache.store().call(move |c| q::stored_index(c, &name)).await? else {
            return Ok(None);
        };
        let Some(digest) = stored.digest.as_deref().and_then(|d| d.parse::<BlobDigest>().ok()) else {
            return Ok(None);
        };
        let bytes = match self.cache.read_small(&digest, index::MAX_INDEX_LEN as u64).await {
            Ok(bytes) => bytes,
            Err(CacheError::NotCached(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match Index::verify(&bytes, key, now, Some(stored.version)) {
            Ok(index) => Ok(Some((index, stored.etag))),
            Err(e) => {
                tracing::info!(repository = %self.name, "repo: the stored index no longer holds ({e}); fetching it whole");
                Ok(None)
            }
        }
    }

    async fn fetch_index(&mut self, key: PublicKey, now: jiff::Timestamp) -> Result<Index, RepoError> {
        if self.last_index.is_none() {
            self.last_index = self.restore_index(&key, now).await?;
        }
        let etag = self.last_index.as_ref().and_then(|(_, t)| t.clone());
        let fetched = self
            .transport
            .get_small(index::INDEX_FILE, index::MAX_INDEX_LEN, etag.as_deref())
            .await
            .map_err(|e| self.fetch_err(index::INDEX_FILE, e))?;
        let name = self.name.clone();
        let seen = self.cache.store().call(move |c| q::index_state(c, &name)).await?.map(|(v, _)| v);
        let (bytes, etag) = match fetched {
            transport::Small::Body { bytes, etag } => (bytes, etag),
            transport::Small::Unchanged => match &self.last_index {
                // Unchanged, but freshness is re-checked: a frozen index expires here too.
                Some((index, _)) => {
                    let expires = jiff::Timestamp::from_second(index.expires_unix_s).unwrap_or(jiff::Timestamp::MIN);
                    if expires <= now {
                        let e = IndexError::Expired { expires, now };
                        return Err(self.refuse_index(e).await);
                    }
                    return Ok(index.clone());
                }
                None => {
                    return Err(
                        self.fetch_err(index::INDEX_FILE, FetchError::Transport("304 without a cached index".into()))
                    )
                }
            },
        };
        let index = match Index::verify(&bytes, &key, now, seen) {
            Ok(index) => index,
            Err(e) => return Err(self.refuse_index(e).await),
        };
        // Kept as a pinned blob, so the next start polls conditionally and still knows it.
        let source = format!("{}:{}", self.name, index::INDEX_FILE);
        let digest = self.cache.insert_bytes(bytes, BlobKind::Index, &source).await?;
        let reference = format!("index:{}", self.name);
        self.cache.unpin(&reference).await?;
        self.cache.pin(&reference, &digest).await?;
        let stored = q::StoredIndex {
            version: index.version,
            expires_unix_s: index.expires_unix_s,
            digest: Some(digest.hex()),
            etag: etag.clone(),
        };
        let (name, now_ms) = (self.name.clone(), now.as_millisecond());
        self.cache.store().call(move |c| q::set_index_state(c, &name, &stored, now_ms)).await?;
        self.last_index = Some((index.clone(), etag));
        Ok(index)
    }

    async fn refuse_index(&mut self, e: IndexError) -> RepoError {
        self.last_index = None;
        let source = format!("{}:{}", self.name, index::INDEX_FILE);
        if let Err(store) = self.cache.record_rejection(&source, "index", &e.to_string(), e.threat()).await {
            return RepoError::Cache(store);
        }
        RepoError::Index { name: self.name.clone(), source: e }
    }

    fn fetch_err(&self, path: &str, e: FetchError) -> RepoError {
        RepoError::Fetch { name: self.name.clone(), path: path.to_owned(), reason: e.to_string() }
    }

    async fn reject(&self, path: &str, what: &str, reason: &str, threat: Option<&str>) -> Step {
        let source = format!("{}:{path}", self.name);
        match self.cache.record_rejection(&source, what, reason, threat).await {
            Ok(()) => Step::Rejected,
            Err(e) => Step::Fatal(e.into()),
        }
    }

    async fn sync_manifest(
        &self,
        path: &str,
        expected: Option<Expected>,
        known: &[ManifestRow],
    ) -> Result<Option<AcceptedManifest>, Step> {
        let max = crate::suit::limits::MAX_ENVELOPE_LEN;
        let bytes = match self.transport.get_small(path, max, None).await {
            Ok(transport::Small::Body { bytes, .. }) => bytes,
            Ok(transport::Small::Unchanged) => return Ok(None),
            Err(FetchError::TooLarge { limit }) => {
                let reason = format!("envelope larger than {limit} bytes");
                return Err(self.reject(path, "envelope", &reason, Some("THREAT.IMG.EXTRA")).await);
            }
            Err(e) => return Err(Step::Failed(format!("{path}: {e}"))),
        };
        let digest = BlobDigest::of(&bytes);
        if let Some(e) = expected {
            if e.digest != digest || e.size != bytes.len() as u64 {
                let reason = format!(
                    "envelope is {} bytes with digest {digest}, the signed index says {} bytes with {}",
                    bytes.len(),
                    e.size,
                    e.digest
                );
                return Err(self.reject(path, "envelope", &reason, Some("THREAT.NET.ONPATH")).await);
            }
        } else if let Some(row) = known.iter().find(|m| m.path == path && m.digest == digest.hex()) {
            // A watched path that has not changed.
            return match self.refill(row).await {
                Ok(()) => Ok(None),
                Err(e) => Err(Step::Failed(e)),
            };
        }
        let manifest = match self.verifier.verify(&self.name, &bytes) {
            Ok(m) => m,
            Err(r) => return Err(self.reject(path, "envelope", &r.reason, r.threat).await),
        };
        let wanted = match plan::payloads(&manifest, path) {
            Ok(w) => w,
            Err(reason) => return Err(self.reject(path, "manifest", &reason, None).await),
        };
        let wanted_rows: Vec<(String, String, u64)> =
            wanted.iter().map(|w| (w.location.clone(), w.expected.digest.hex(), w.expected.size)).collect();
        let mut payloads = Vec::with_capacity(wanted.len());
        let mut failed = None;
        for want in wanted {
            payloads.push(want.expected.digest);
            match self.fetch_payload(&want).await {
                Ok(()) => {}
                Err(Step::Failed(e)) => failed = Some(e),
                Err(other) => return Err(other),
            }
        }
        if let Some(e) = failed {
            return Err(Step::Failed(e));
        }
        let source = format!("{}:{path}", self.name);
        let envelope =
            self.cache.insert_bytes(bytes, BlobKind::Envelope, &source).await.map_err(|e| Step::Fatal(e.into()))?;
        let row = ManifestRow {
            repository: self.name.clone(),
            path: path.to_owned(),
            digest: envelope.hex(),
            sequence_number: manifest.sequence_number,
            payloads: wanted_rows,
            accepted_unix_ms: jiff::Timestamp::now().as_millisecond(),
        };
        self.cache.store().call(move |c| q::record_manifest(c, &row)).await.map_err(|e| Step::Fatal(e.into()))?;
        tracing::info!(repository = %self.name, path, seq = manifest.sequence_number, "repo: manifest verified and cached");
        Ok(Some(AcceptedManifest {
            repository: self.name.clone(),
            path: path.to_owned(),
            envelope,
            payloads,
            manifest,
        }))
    }

    /// Fetches again the payloads of an accepted manifest that are no longer cached (evicted
    /// while unpinned). Their digests and sizes come from the verified manifest, as recorded.
    async fn refill(&self, row: &ManifestRow) -> Result<(), String> {
        let mut failed = None;
        for (location, hex, size) in &row.payloads {
            let Ok(digest) = hex.parse::<BlobDigest>() else { continue };
            let want = plan::PayloadFetch {
                location: location.clone(),
                expected: Expected { digest, size: *size },
                manifest_path: row.path.clone(),
                uri: String::new(),
            };
            match self.fetch_payload(&want).await {
                Ok(()) | Err(Step::Rejected) => {}
                Err(Step::Failed(e)) => failed = Some(e),
                Err(Step::Fatal(e)) => return Err(e.to_string()),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn fetch_payload(&self, want: &plan::PayloadFetch) -> Result<(), Step> {
        if self.cache.contains(&want.expected.digest).await.map_err(|e| Step::Fatal(e.into()))? {
            self.cache.touch(&want.expected.digest).await.map_err(|e| Step::Fatal(e.into()))?;
            return Ok(());
        }
        let what = format!("payload {} of {}:{}", want.location, self.name, want.manifest_path);
        let cache = self.cache.clone();
        let expected = want.expected;
        let writer = match tokio::task::spawn_blocking(move || cache.writer(expected, &what)).await {
            Ok(Ok(w)) => w,
            // Another repository fetches the same bytes right now; ours is retried next poll.
            Ok(Err(CacheError::Busy(d))) => return Err(Step::Failed(format!("{d} is being fetched elsewhere"))),
            Ok(Err(e)) => return Err(Step::Fatal(e.into())),
            Err(e) => return Err(Step::Fatal(CacheError::Worker(e.to_string()).into())),
        };
        // What an interrupted earlier attempt left: only the rest crosses the network.
        let resumed = writer.written();
        match self.transport.download(&want.location, writer).await {
            Ok(landed) => {
                let source = format!("{}:{}", self.name, want.location);
                self.cache.register(landed, BlobKind::Payload, &source).await.map_err(|e| Step::Fatal(e.into()))?;
                self.metrics.add_downloaded(landed.size.saturating_sub(resumed));
                Ok(())
            }
            Err(FetchError::Cache(e)) if e.is_rejection() => {
                Err(self.reject(&want.location, "payload", &e.to_string(), e.threat()).await)
            }
            Err(FetchError::Cache(e)) => Err(Step::Fatal(e.into())),
            Err(e) => Err(Step::Failed(format!("{}: {e}", want.location))),
        }
    }
}

/// How one manifest's sync ended, when not accepted.
enum Step {
    /// Refused and recorded.
    Rejected,
    /// Transport trouble: retry later.
    Failed(String),
    /// Our own store or disk failed.
    Fatal(RepoError),
}
