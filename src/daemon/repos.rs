//! The daemon's repository room: the verified cache, one poller per `[[repository]]`, and the
//! trust policy built from `[[authority]]` that every envelope must pass before anything of it
//! is cached. Accepted manifests are written to the audit log.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::control::api::{CacheGcReport, CacheGcRequest, CacheReport, CacheVerifyReport};
use crate::control::{ApiError, Peer};
use crate::fleet::rights;
use crate::repo::metrics::RepoMetrics;
use crate::repo::{AcceptedManifest, BlobCache, Rejection, Repository, Verifier};
use crate::store::Store;
use crate::suit::policy::Policy;
use crate::suit::Envelope;

/// How often the pollers' counters are copied into the registry.
const EXPORT_PERIOD: Duration = Duration::from_secs(5);

pub(super) struct ReposRoom {
    repositories: Vec<Repository>,
    cache: BlobCache,
    policy: Arc<Policy>,
    metrics: Arc<RepoMetrics>,
    exported: [IntCounter; 5],
    manifests: IntCounterVec,
    store: Store,
}

impl ReposRoom {
    /// Opens the cache (scrubbing it first) and builds the policy and the pollers; a bad
    /// `[[authority]]` or `[[repository]]` stops start-up with its name in the message.
    pub(super) async fn start(config: &Config, store: &Store, registry: &Registry) -> anyhow::Result<ReposRoom> {
        let cache = BlobCache::open(store.clone(), config.store.cache_max_mib.saturating_mul(1024 * 1024))?;
        let scrub = cache.scrub(true).await.context("cannot scrub the blob cache")?;
        if !scrub.is_clean() {
            tracing::warn!(?scrub, "blob cache scrubbed: corrupt or stray files were dropped");
        }
        let policy = Policy::from_config(&config.authorities, |path| std::fs::read_to_string(path))?;
        let policy = Arc::new(policy);
        let manifests = IntCounterVec::new(
            Opts::new(
                "ferry_manifests_total",
                "Envelopes judged by the trust policy, by result and reason (RFC 9124 threat).",
            ),
            &["result", "reason"],
        )?;
        registry.register(Box::new(manifests.clone()))?;
        let skipped = IntCounterVec::new(
            Opts::new(
                "ferry_manifest_blocks_skipped_total",
                "Authentication blocks ferry cannot check (COSE_Mac/Mac0), by reason; they never authenticate.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(skipped.clone()))?;
        let verifier: Arc<dyn Verifier> =
            Arc::new(PolicyVerifier { policy: policy.clone(), manifests: manifests.clone(), skipped });
        let metrics = Arc::new(RepoMetrics::default());
        let mut repositories = Vec::new();
        for rc in &config.repositories {
            repositories.push(Repository::new(rc, cache.clone(), verifier.clone())?.with_metrics(metrics.clone()));
        }
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        // In the order of `RepoMetrics::snapshot`.
        let exported = [
            counter("ferry_repo_syncs_total", "Repository polls run.")?,
            counter("ferry_repo_sync_failures_total", "Repository polls that failed or stayed incomplete.")?,
            counter("ferry_repo_manifests_accepted_total", "Manifests verified and cached with all their payloads.")?,
            counter("ferry_repo_rejections_total", "Indexes, envelopes and payloads refused.")?,
            counter("ferry_repo_downloaded_bytes_total", "Payload bytes that landed in the cache.")?,
        ];
        Ok(ReposRoom { repositories, cache, policy, metrics, exported, manifests, store: store.clone() })
    }

    /// The verified cache, shared with the planner.
    pub(super) fn cache(&self) -> BlobCache {
        self.cache.clone()
    }

    /// The trust policy built from `[[authority]]`.
    pub(super) fn policy(&self) -> Arc<Policy> {
        self.policy.clone()
    }

    /// Runs the pollers; `accepted_one` is rung for every manifest verified and recorded, so
    /// the plan offers it at once instead of at the next heartbeat.
    pub(super) async fn serve(self, shutdown: CancellationToken, accepted_one: Arc<tokio::sync::Notify>) {
        let ReposRoom { repositories, cache, policy, metrics, exported, manifests, store } = self;
        let (tx, mut accepted) = mpsc::channel::<AcceptedManifest>(64);
        let mut pollers = tokio::task::JoinSet::new();
        for repository in repositories {
            pollers.spawn(repository.run(shutdown.clone(), tx.clone()));
        }
        drop(tx);
        let mut last = [0u64; 5];
        let mut export = tokio::time::interval(EXPORT_PERIOD);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                // A poller's panic is this room's, so the daemon's task set sees it.
                Some(Err(e)) = pollers.join_next() => {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
                _ = export.tick() => {
                    let now = metrics.snapshot();
                    for ((counter, new), old) in exported.iter().zip(now).zip(last) {
                        counter.inc_by(new.saturating_sub(old));
                    }
                    last = now;
                }
                Some(m) = accepted.recv() => {
                    if admit(&store, &cache, &policy, &m).await {
                        manifests.with_label_values(&["accepted", "verified"]).inc();
                        record(&store, m).await;
                        accepted_one.notify_one();
                    } else {
                        manifests.with_label_values(&["rejected", "THREAT.IMG.EXPIRED"]).inc();
                        metrics.rejections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The trust policy in the repository's seat: scopes, thresholds and key validity.
struct PolicyVerifier {
    policy: Arc<Policy>,
    manifests: IntCounterVec,
    skipped: IntCounterVec,
}

impl Verifier for PolicyVerifier {
    fn verify(&self, repository: &str, bytes: &[u8]) -> Result<crate::suit::Manifest, Rejection> {
        let judged = Envelope::parse(bytes).map_err(Rejection::from).and_then(|envelope| {
            for block in envelope.skipped_blocks() {
                self.skipped.with_label_values(&[block.reason.code()]).inc();
                tracing::warn!(
                    repository,
                    block = block.block,
                    tag = block.tag,
                    "authentication block skipped: {}",
                    block.reason
                );
            }
            self.policy
                .evaluate(&envelope, SystemTime::now())
                .map(|accepted| accepted.manifest().clone())
                .map_err(|r| Rejection { reason: r.reason, threat: Some(r.threat.id()) })
        });
        if let Err(rejection) = &judged {
            let threat = rejection.threat.unwrap_or("malformed");
            self.manifests.with_label_values(&["rejected", threat]).inc();
            tracing::warn!(repository, reason = %rejection.reason, threat, "envelope refused");
        }
        judged
    }
}

/// Anti-rollback: every component's sequence number must be above the highest ever accepted
/// (THREAT.IMG.EXPIRED); if so, the new highest is recorded in the same transaction. A manifest
/// that fails stays in the cache unpinned, but is never recorded as an update to offer.
async fn admit(store: &Store, cache: &BlobCache, policy: &Policy, m: &AcceptedManifest) -> bool {
    let checked = async {
        let bytes = cache.read_small(&m.envelope, 64 * 1024).await?;
        let envelope = Envelope::parse(&bytes)?;
        let accepted = policy.evaluate(&envelope, SystemTime::now())?;
        let now = super::now_ms();
        store.call(move |c| Ok(crate::store::sequence::admit(c, &accepted, now))).await?.map_err(anyhow::Error::from)
    };
    match checked.await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(repository = m.repository, path = m.path, "manifest refused: {e:#}");
            false
        }
    }
}

async fn record(store: &Store, m: AcceptedManifest) {
    let detail = format!(
        "{}: sequence {}, envelope sha256:{}, {} payload(s)",
        m.path,
        m.manifest.sequence_number,
        m.envelope.hex(),
        m.payloads.len()
    );
    tracing::info!(repository = m.repository, "{detail}: verified and cached");
    let actor = format!("repository:{}", m.repository);
    let at = super::now_ms();
    let written = store
        .call(move |c| {
            c.execute(
                "INSERT INTO audit_log (at_unix_ms, actor, action, detail) VALUES (?1, ?2, 'manifest accepted', ?3)",
                rusqlite::params![at, actor, detail],
            )
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// `GET /v1/cache`: open to every local user, like `ferry status`.
pub(super) async fn cache_report(cache: &BlobCache) -> Result<CacheReport, ApiError> {
    let blobs = cache.list().await.map_err(ApiError::internal)?;
    let total_bytes = blobs.iter().map(|b| b.size).sum();
    Ok(CacheReport { blobs, total_bytes, max_bytes: cache.max_bytes() })
}

/// Verify and gc drop files, so they are root's (the daemon's own maintenance).
fn root_only(peer: Peer, what: &str) -> Result<(), ApiError> {
    if peer.uid == rights::ROOT_UID {
        return Ok(());
    }
    Err(ApiError {
        status: 403,
        message: format!("uid {} may not {what}: it drops cached files, so only root may", peer.uid),
    })
}

/// `POST /v1/cache/verify`: re-hashes every blob; drops corrupt blobs and rows without files.
pub(super) async fn cache_verify(cache: &BlobCache, peer: Peer) -> Result<CacheVerifyReport, ApiError> {
    root_only(peer, "verify the cache")?;
    let report = cache.scrub_live().await.map_err(ApiError::internal)?;
    if !report.is_clean() {
        tracing::warn!(uid = peer.uid, ?report, "ferry cache verify: problems found; corrupt blobs dropped");
    }
    Ok(report)
}

/// `POST /v1/cache/gc`: a live scrub, then LRU eviction that never takes a pinned blob.
pub(super) async fn cache_gc(
    cache: &BlobCache,
    peer: Peer,
    request: CacheGcRequest,
) -> Result<CacheGcReport, ApiError> {
    root_only(peer, "collect the cache's garbage")?;
    let max_bytes = request.max_mib.map_or(cache.max_bytes(), |mib| mib.saturating_mul(1024 * 1024));
    let scrub = cache.scrub_live().await.map_err(ApiError::internal)?;
    let gc = cache.gc_within(max_bytes).await.map_err(ApiError::internal)?;
    tracing::info!(uid = peer.uid, evicted = gc.evicted.len(), freed = gc.freed_bytes, "ferry cache gc");
    Ok(CacheGcReport { scrub, gc })
}
