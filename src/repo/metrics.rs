//! Counters of the repository pollers; the daemon exports them as `ferry_repo_*`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{RepoError, SyncReport};

/// Shared by every repository task (atomics: the tasks run concurrently).
#[derive(Debug, Default)]
pub struct RepoMetrics {
    /// `ferry_repo_syncs_total`: polls run.
    pub syncs: AtomicU64,
    /// `ferry_repo_sync_failures_total`: polls that failed or stayed incomplete.
    pub sync_failures: AtomicU64,
    /// `ferry_repo_manifests_accepted_total`: manifests verified and cached with their payloads.
    pub manifests_accepted: AtomicU64,
    /// `ferry_repo_rejections_total`: indexes, envelopes and payloads refused.
    pub rejections: AtomicU64,
    /// `ferry_repo_downloaded_bytes_total`: payload bytes fetched into the cache (a resumed
    /// download counts only the rest).
    pub downloaded_bytes: AtomicU64,
}

impl RepoMetrics {
    pub(super) fn count_sync(&self, result: &Result<SyncReport, RepoError>) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(r) => {
                self.manifests_accepted.fetch_add(r.accepted.len() as u64, Ordering::Relaxed);
                self.rejections.fetch_add(r.rejected as u64, Ordering::Relaxed);
                if !r.errors.is_empty() {
                    self.sync_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                if matches!(e, RepoError::Index { .. }) {
                    self.rejections.fetch_add(1, Ordering::Relaxed);
                }
                self.sync_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn add_downloaded(&self, bytes: u64) {
        self.downloaded_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot, in the order of the fields, for tests and `ferry status`.
    pub fn snapshot(&self) -> [u64; 5] {
        [&self.syncs, &self.sync_failures, &self.manifests_accepted, &self.rejections, &self.downloaded_bytes]
            .map(|c| c.load(Ordering::Relaxed))
    }
}
