//! The daemon's read model for `ferry status` and systemd's STATUS= line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::config::Config;
use crate::control::api::{
    ApproveRequest, Approved, CacheGcReport, CacheGcRequest, CacheReport, CacheVerifyReport, CancelRequest, Cancelled,
    Counts, DeviceChange, DeviceChanged, DeviceList, DeviceReport, PlanReport, PlanRequest, RadioStatus, StatusReport,
    StoreStatus, TopologyReport, UpdateList,
};
use crate::control::{ApiError, ControlApi, Peer};
use crate::metrics::Metrics;
use crate::store::{runs, Store};

pub(super) struct Shared {
    pub started: Instant,
    pub config_path: Option<PathBuf>,
    pub store: Store,
    pub run_id: runs::RunId,
    pub metrics: Metrics,
    pub metrics_listen: SocketAddr,
    pub coap_listen: Vec<SocketAddr>,
    pub radio: super::radio::RadioRoom,
    pub owners: super::owners::OwnersRoom,
    /// The configuration in force (replaced on SIGHUP).
    pub config: watch::Receiver<Arc<Config>>,
    pub plan: super::plan::PlanRoom,
    pub deliver: super::deliver::DeliverHandle,
    /// The verified blob cache (`ferry cache`).
    pub cache: crate::repo::BlobCache,
}

impl Shared {
    /// systemd's one-line STATUS=.
    pub fn summary(&self) -> String {
        let radio = self.radio.state();
        format!("radio {}, metrics on {}", if radio.up { "up" } else { "down" }, self.metrics_listen)
    }

    /// Plans for now again (heartbeat, and after every change) and exports the decisions.
    pub async fn replan(&self) {
        match super::fleet::compute_plan(self, jiff::Timestamp::now()).await {
            Ok((plan, offered, closed, report)) => {
                self.plan.export(&report);
                self.deliver.plan(plan, offered, closed);
            }
            Err(e) => tracing::warn!("cannot plan: {e}"),
        }
    }
}

pub(super) struct DaemonApi(pub Arc<Shared>);

impl ControlApi for DaemonApi {
    async fn status(&self, _peer: Peer) -> Result<StatusReport, ApiError> {
        let shared = &self.0;
        let run_id = shared.run_id;
        let (schema_version, runs, audit_entries) = shared
            .store
            .call(move |c| {
                let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                let audit: i64 = c.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))?;
                Ok((version, runs::summary(c, run_id)?, audit))
            })
            .await
            .map_err(ApiError::internal)?;
        let paths = shared.store.paths().clone();
        let (db_bytes, blobs) = tokio::task::spawn_blocking(move || (file_size(&paths.db), count_files(&paths.blobs)))
            .await
            .map_err(ApiError::internal)?;
        let radio = shared.radio.state();
        Ok(StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_s: shared.started.elapsed().as_secs(),
            config_path: shared.config_path.clone(),
            radio: RadioStatus { url: radio.url, up: radio.up, detail: radio.detail },
            store: StoreStatus {
                state_dir: shared.store.paths().state_dir.clone(),
                db_path: shared.store.paths().db.clone(),
                db_bytes,
                schema_version,
                runs,
            },
            metrics_listen: shared.metrics_listen,
            coap_listen: shared.coap_listen.clone(),
            counts: Counts { audit_entries, blobs, owner_files_in_force: shared.owners.effective().owners.len() },
            sessions: super::deliver::session_lines(&shared.deliver.progress()),
        })
    }

    async fn topology(&self, _peer: Peer) -> Result<TopologyReport, ApiError> {
        self.0.radio.topology().ok_or_else(|| ApiError {
            status: 503,
            message: "the radio has not come up yet, so there is no LoWPAN to show; see `ferry status`".into(),
        })
    }

    async fn plan(&self, _peer: Peer, request: PlanRequest) -> Result<PlanReport, ApiError> {
        super::fleet::plan(&self.0, request).await
    }

    async fn devices(&self, _peer: Peer) -> Result<DeviceList, ApiError> {
        super::fleet::list(&self.0).await
    }

    async fn device(&self, _peer: Peer, eui64: String) -> Result<DeviceReport, ApiError> {
        super::fleet::show(&self.0, eui64).await
    }

    async fn admit(&self, peer: Peer, change: DeviceChange) -> Result<DeviceChanged, ApiError> {
        super::fleet::admit(&self.0, peer, change).await
    }

    async fn retire(&self, peer: Peer, change: DeviceChange) -> Result<DeviceChanged, ApiError> {
        super::fleet::retire(&self.0, peer, change).await
    }

    async fn updates(&self, _peer: Peer) -> Result<UpdateList, ApiError> {
        super::fleet::updates(&self.0).await
    }

    async fn approve(&self, peer: Peer, request: ApproveRequest) -> Result<Approved, ApiError> {
        super::fleet::approve(&self.0, peer, request).await
    }

    async fn cancel(&self, peer: Peer, request: CancelRequest) -> Result<Cancelled, ApiError> {
        let shared = &self.0;
        let id =
            i64::try_from(request.session).map_err(|_| ApiError { status: 400, message: "no such session".into() })?;
        // The device's group decides who may stop its session: root or the group's admin.
        let groups = shared
            .store
            .call(move |c| {
                let Some(row) = crate::store::sessions::get(c, id)? else { return Ok(None) };
                let device = crate::fleet::device::parse_eui64(&row.device).ok();
                let group = device.and_then(|d| crate::store::devices::load(c, d).ok().flatten()).and_then(|d| d.group);
                Ok(Some(group.map(|g| g.value)))
            })
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError { status: 404, message: format!("no session {id}; `ferry history` lists them") })?;
        let config = shared.config.borrow().clone();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        crate::fleet::rights::may_manage_device(&config, peer.uid, &groups)
            .map_err(|r| ApiError { status: 403, message: r.to_string() })?;
        let state =
            shared.deliver.cancel(request.session).await.map_err(|message| ApiError { status: 409, message })?;
        tracing::info!(session = id, uid = peer.uid, "delivery session cancelled");
        Ok(Cancelled { session: request.session, state: state.as_str().to_owned() })
    }

    async fn cache(&self, _peer: Peer) -> Result<CacheReport, ApiError> {
        super::repos::cache_report(&self.0.cache).await
    }

    async fn cache_verify(&self, peer: Peer) -> Result<CacheVerifyReport, ApiError> {
        super::repos::cache_verify(&self.0.cache, peer).await
    }

    async fn cache_gc(&self, peer: Peer, request: CacheGcRequest) -> Result<CacheGcReport, ApiError> {
        super::repos::cache_gc(&self.0.cache, peer, request).await
    }
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Files below `dir`, recursively; the blob cache is two levels deep.
fn count_files(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => count_files(&entry.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}
