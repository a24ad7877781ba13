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
        use crate::schedule::plan::{Action, StartBasis};
        let entries = plan
            .entries
            .iter()
            .map(|e| {
                let mut line = PlanLine {
                    device: e.device.to_string(),
                    label: e.label.clone(),
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
                            Some(r) => format!("up to date: {r}"),
                            None => "up to date".to_owned(),
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
