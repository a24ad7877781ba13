//! Requests and answers of the control API, shared by ferryd and the `ferry` CLI.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::runs::RunSummary;

/// `GET /v1/status`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub config_path: Option<PathBuf>,
    pub radio: RadioStatus,
    pub store: StoreStatus,
    pub metrics_listen: SocketAddr,
    /// Where the CoAP endpoint answers on kernel UDP (`[coap] listen`, ports resolved).
    pub coap_listen: Vec<SocketAddr>,
    pub counts: Counts,
    /// Delivery sessions this ferryd holds: live ones first, then recently finished.
    #[serde(default)]
    pub sessions: Vec<SessionLine>,
}

/// One delivery session in `ferry status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLine {
    pub id: u64,
    /// planned, triggered, manifest-served, streaming, rebooting, confirming, done, …
    pub state: String,
    pub bytes_served: u64,
    /// Payload bytes the device fetched so far, of `total`.
    pub fetched: u64,
    pub total: u64,
    pub attempts: u32,
}

/// The body of `POST /v1/sessions/cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub session: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    pub session: u64,
    /// The state the session ended in.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadioStatus {
    pub url: String,
    pub up: bool,
    /// One line on why the radio is in this state.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub state_dir: PathBuf,
    pub db_path: PathBuf,
    pub db_bytes: u64,
    pub schema_version: i64,
    pub runs: RunSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub audit_entries: i64,
    pub blobs: u64,
    /// owners.d files whose settings are in force.
    pub owner_files_in_force: usize,
}

/// `GET /v1/topology`: the border router's read model of the LoWPAN (`ferry topology`).
pub type TopologyReport = crate::border::NetTopology;

/// `GET /v1/plan` (optionally `?at=RFC3339`): the scheduler's decisions, as `ferry plan` shows
/// them. The daemon builds it with [`PlanReport::from`] on a [`crate::schedule::plan::Plan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// Plan for this instant instead of now (what-if); RFC 3339 with an offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    /// RFC 3339.
    pub at: String,
    /// Share of the channel's time in use after the starts, and the budget (0..=1).
    pub air_time_used: f64,
    pub air_time_budget: f64,
    pub entries: Vec<PlanLine>,
}

/// What happens with one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanAction {
    Start,
    Wait,
    InProgress,
    UpToDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLine {
    /// EUI-64.
    pub device: String,
    /// Name, or the EUI-64 when it has none.
    pub label: String,
    pub group: String,
    pub action: PlanAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// One line for people, e.g. "start app@8 (window, ~4 min)" or "wait app@8: battery 12 % < 30 %".
    pub summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<PlanReason>,
    /// When waiting: when trying again makes sense (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// When starting or in progress: when the session is expected to end (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_end: Option<String>,
    /// When starting: `window`, `urgency` or `deadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub air_time_share: Option<f64>,
}

/// Why a device waits: a stable `code` and the human text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanReason {
    pub code: String,
    pub text: String,
}

impl From<&crate::schedule::plan::Plan> for PlanReport {
    fn from(plan: &crate::schedule::plan::Plan) -> PlanReport {
        use crate::schedule::plan::{Action, StartBasis, WaitReason};
        let entries = plan
            .entries
            .iter()
            .map(|e| {
                let mut line = PlanLine {
                    device: e.device.to_string(),
                    label: e.label(),
                    group: e.group.clone(),
                    action: PlanAction::UpToDate,
                    update: None,
                    summary: String::new(),
                    reasons: Vec::new(),
                    retry_at: None,
                    expected_end: None,
                    basis: None,
                    air_time_share: None,
                };
                match &e.action {
                    Action::Start(s) => {
                        let basis = match s.basis {
                            StartBasis::Window => "window",
                            StartBasis::Urgency => "urgency",
                            StartBasis::Deadline => "deadline",
                        };
                        let minutes = (s.estimate.total.as_secs() + 59) / 60;
                        line.action = PlanAction::Start;
                        line.update = Some(s.update.clone());
                        line.summary = format!(
                            "start {} ({} update, {basis}, ~{minutes} min, {:.0} % air time)",
                            s.update,
                            s.urgency,
                            s.estimate.air_time_share * 100.0
                        );
                        line.expected_end = plan.at.saturating_add(s.estimate.total).ok().map(|t| t.to_string());
                        line.basis = Some(basis.to_owned());
                        line.air_time_share = Some(s.estimate.air_time_share);
                    }
                    Action::Wait { update, reasons, retry_at } => {
                        let texts: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
                        line.action = PlanAction::Wait;
                        line.update = Some(update.clone());
                        line.summary = format!("wait {update}: {}", texts.join("; "));
                        line.reasons = reasons
                            .iter()
                            .zip(texts)
                            .map(|(r, text)| PlanReason { code: r.code().to_owned(), text })
                            .collect();
                        line.retry_at = retry_at.map(|t| t.to_string());
                    }
                    Action::InProgress { update, expected_end } => {
                        line.action = PlanAction::InProgress;
                        line.update = Some(update.clone());
                        line.summary = format!("updating {update} (expected to end {expected_end})");
                        line.expected_end = Some(expected_end.to_string());
                    }
                    Action::UpToDate { reason } => {
                        line.summary = match reason {
                            Some(r @ WaitReason::NotNewer { .. }) => format!("up to date: {r}"),
                            Some(r) => format!("no update planned: {r}"),
                            None => {
                                "up to date (no accepted update is for its vendor, class and components)".to_owned()
                            }
                        };
                        line.reasons = reason
                            .iter()
                            .map(|r| PlanReason { code: r.code().to_owned(), text: r.to_string() })
                            .collect();
                    }
                }
                line
            })
            .collect();
        PlanReport {
            at: plan.at.to_string(),
            air_time_used: plan.air_time_used,
            air_time_budget: plan.air_time_budget,
            entries,
        }
    }
}

/// `GET /v1/devices`: every device ferry knows, with its facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<crate::fleet::Device>,
}

/// `GET /v1/devices/{eui64}`: one device, its facts (where and when each was learned) and its
/// audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    pub device: crate::fleet::Device,
    pub audit: Vec<crate::store::audit::AuditEntry>,
    /// Its delivery attempts per update: how many, the last result, the next try or that ferry
    /// gave up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<crate::store::attempts::AttemptRow>,
}

/// The body of `POST /v1/devices/admit` and `POST /v1/devices/retire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceChange {
    /// EUI-64, `00:11:…:77` or 16 hex digits.
    pub eui64: String,
    /// Admit: the group to put the device in (default: the group it has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// What an admission or retirement did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceChanged {
    pub device: crate::fleet::Device,
    /// False when nothing had to change (already admitted in that group).
    pub changed: bool,
    /// One line for people.
    pub message: String,
}

/// `GET /v1/updates`: accepted manifests as the scheduler offers them, with their approvals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateList {
    pub updates: Vec<UpdateLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateLine {
    /// `repository/path@sequence`, as `ferry plan` names it.
    pub id: String,
    /// Hex SHA-256 of the envelope.
    pub digest: String,
    pub repository: String,
    pub path: String,
    pub sequence: u64,
    pub component: String,
    pub vendor_id: String,
    pub class_id: String,
    /// The authority whose signatures it carries (empty when the policy no longer accepts it).
    pub authority: String,
    /// `automatic` or `manual` (needs `ferry update approve`).
    pub approval_mode: crate::schedule::plan::ApprovalMode,
    pub image_bytes: u64,
    /// RFC 3339.
    pub accepted_at: String,
    pub verified: bool,
    pub approvals: Vec<crate::store::approvals::Approval>,
    /// One line for people: `automatic`, `approved`, `approved for flat-1`, `waiting for approval`.
    pub status: String,
}

/// The body of `POST /v1/updates/approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// The envelope digest (or a unique prefix of at least 8 hex digits), or the update id.
    pub update: String,
    /// Approve for this group only; default every group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approved {
    pub update: UpdateLine,
    /// False when it was already approved for that scope.
    pub added: bool,
}

/// `GET /v1/cache`: the verified blob cache of the running ferryd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheReport {
    /// Least recently used first, each with how many references pin it.
    pub blobs: Vec<crate::store::cache::BlobRow>,
    pub total_bytes: u64,
    /// `[store] cache_max_mib`, in bytes.
    pub max_bytes: u64,
}

/// `POST /v1/cache/verify`: every blob re-hashed; corrupt ones and rows without files are
/// dropped (their payloads are fetched again from their repositories).
pub type CacheVerifyReport = crate::repo::ScrubReport;

/// The body of `POST /v1/cache/gc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheGcRequest {
    /// Evict down to this many MiB instead of `[store] cache_max_mib`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mib: Option<u64>,
}

/// What `POST /v1/cache/gc` dropped and evicted; pinned blobs are never evicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheGcReport {
    pub scrub: crate::repo::ScrubReport,
    pub gc: crate::repo::GcReport,
}
