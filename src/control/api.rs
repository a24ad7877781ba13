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
