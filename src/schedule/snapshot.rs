//! A plan's whole input in one file (read by the caller: this room does no I/O), for `ferry plan --snapshot FILE` (offline) and for tests.
//!
//! JSON (`.json`) or TOML (anything else). Groups carry their time zone, `[group.policy]` as in
//! `ferry.toml` (windows, `max_deferral`, readiness thresholds, urgency overrides) and
//! blackouts as in an owner file; devices carry their parent in the DODAG:
//!
//! ```json
//! { "at": "2026-11-24T01:30:00Z",
//!   "plan": { "air_time_budget": 0.6, "max_concurrent_per_parent": 2 },
//!   "authorities": { "riot-community": "automatic", "acme": "manual" },
//!   "groups": [{ "name": "flat-1", "timezone": "Europe/Berlin",
//!                "policy": { "windows": ["Mon-Fri 02:00-05:00"], "max_deferral": "3d" },
//!                "blackouts": [{ "start": "2026-12-24T00:00:00+01:00", "end": "2026-12-27T00:00:00+01:00" }] }],
//!   "updates": [{ "id": "app@8", "authority": "riot-community", "vendor_id": "…", "class_id": "…",
//!                 "component": "app", "sequence": 8, "image_bytes": 60000, "urgency": "security",
//!                 "available_at": "2026-11-20T00:00:00Z" }],
//!   "devices": [{ "eui64": "02:00:00:00:00:00:00:01", "name": "hall-router", "group": "flat-1",
//!                 "parent": "border-router", "vendor_id": "…", "class_id": "…", "installed": { "app": 7 },
//!                 "mains_powered": true, "free_storage_bytes": 200000,
//!                 "link": { "rssi_dbm": -60, "lqi": 230, "etx": 1.1 } }],
//!   "sessions": [] }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

use super::plan::{ActiveSession, ApprovalMode, GroupPlan, PlanDevice, PlanState, Update};
use super::{Schedule, Window};
use crate::config::{GroupPolicy, PlanConfig};
use crate::fleet::device::Parent;
use crate::fleet::owners::BlackoutEntry;
use crate::fleet::topology::InMemoryTopology;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The instant to plan for when `--at` is not given.
    #[serde(default, with = "super::instant::rfc3339_opt")]
    pub at: Option<Timestamp>,
    #[serde(default)]
    pub plan: PlanConfig,
    #[serde(default)]
    pub authorities: BTreeMap<String, ApprovalMode>,
    pub groups: Vec<SnapshotGroup>,
    #[serde(default)]
    pub updates: Vec<Update>,
    pub devices: Vec<SnapshotDevice>,
    #[serde(default)]
    pub sessions: Vec<ActiveSession>,
}

/// A group: time zone, policy (with its windows) and blackouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotGroup {
    pub name: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub policy: GroupPolicy,
    #[serde(default)]
    pub blackouts: Vec<BlackoutEntry>,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// A device and its place in the DODAG.
#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotDevice {
    pub parent: Parent,
    #[serde(flatten)]
    pub device: PlanDevice,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {message}")]
    Parse { path: String, message: String },
    #[error("snapshot {path}: group `{group}` has time zone `{zone}`, which is not a known IANA zone")]
    TimeZone { path: String, group: String, zone: String },
    #[error("snapshot {path}: device {device} is listed twice")]
    DuplicateDevice { path: String, device: String },
    #[error("snapshot {path}: {message}")]
    Invalid { path: String, message: String },
}

/// A snapshot turned into the planner's input.
pub struct Loaded {
    pub at: Option<Timestamp>,
    pub state: PlanState,
    pub topology: InMemoryTopology,
}

impl Snapshot {
    pub fn parse(name: &str, text: &str, json: bool) -> Result<Snapshot, SnapshotError> {
        let parsed = if json {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))
        } else {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| SnapshotError::Parse { path: name.to_owned(), message })
    }

    /// Builds the groups' schedules and the topology.
    pub fn into_state(self, name: &str) -> Result<Loaded, SnapshotError> {
        let mut groups = BTreeMap::new();
        for group in &self.groups {
            let tz = TimeZone::get(&group.timezone).map_err(|_| SnapshotError::TimeZone {
                path: name.to_owned(),
                group: group.name.clone(),
                zone: group.timezone.clone(),
            })?;
            let windows =
                if group.policy.windows.is_empty() { vec![Window::always()] } else { group.policy.windows.clone() };
            let schedule = Schedule::new(tz, windows, group.blackouts.iter().map(|b| b.blackout));
            groups.insert(group.name.clone(), GroupPlan::new(&group.name, schedule, &group.policy));
        }
        let invalid = |message: String| SnapshotError::Invalid { path: name.to_owned(), message };
        if !(self.plan.air_time_budget > 0.0 && self.plan.air_time_budget <= 1.0) {
            return Err(invalid("plan.air_time_budget must be above 0 and at most 1".into()));
        }
        let mut seen = BTreeSet::new();
        let mut topology = InMemoryTopology::new();
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in self.devices {
            if !seen.insert(d.device.eui64.0) {
                return Err(SnapshotError::DuplicateDevice {
                    path: name.to_owned(),
                    device: d.device.eui64.to_string(),
                });
            }
            topology.set_parent(d.device.eui64, d.parent);
            devices.push(d.device);
        }
        let state = PlanState {
            devices,
            updates: self.updates,
            sessions: self.sessions,
            groups,
            authorities: self.authorities,
            pan: self.plan.pan_policy(),
            held: Default::default(),
            model: Default::default(),
        };
        Ok(Loaded { at: self.at, state, topology })
    }
}
