//! Live planning: the scheduler's input built from what ferryd knows now, and the plan it gives.
//!
//! [`plan_input`] is the one place the pieces meet: fleet devices and their facts (store),
//! accepted manifests (store + verified cache, resolved to [`OfferedUpdate`]s), approvals
//! (store), groups, windows and policy (ferry.toml and the accepted owners.d files), and the
//! mesh (a [`MeshView`] the radio/RPL side feeds through [`PlanRoom::feed_mesh`]; until it does,
//! the parents and duty cycles stored as device facts are used), and the running sessions (fed by
//! the delivery engine through [`PlanRoom::feed_sessions`]). [`PlanRoom`] recomputes the
//! plan on every heartbeat and after every change, and exports `ferry_plan_devices{decision}`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use jiff::Timestamp;
use prometheus::{IntGaugeVec, Opts, Registry};

use crate::config::Config;
use crate::control::api::{PlanAction, PlanReport, UpdateLine};
use crate::fleet::device::Device;
use crate::fleet::duty_cycle::DutyCycle;
use crate::fleet::owners::EffectiveSettings;
use crate::fleet::topology::{InMemoryTopology, Topology};
use crate::repo::{BlobCache, BlobDigest};
use crate::schedule::plan::{
    plan, ActiveSession, ApprovalMode, GroupPlan, Held, Plan, PlanDevice, PlanState, Update, Urgency,
};
use crate::store::approvals::Approval;
use crate::store::cache::ManifestRow;
use crate::suit::manifest::ComponentId;
use crate::suit::policy::Policy;
use crate::suit::Envelope;

/// What the radio/RPL side knows about the mesh right now. Empty until it feeds one.
#[derive(Debug, Clone, Default)]
pub struct MeshView {
    /// Each node's parent in the DODAG, as the RPL root sees it.
    pub topology: InMemoryTopology,
    /// Learned wake cycles of sleepy nodes.
    pub duty_cycles: BTreeMap<[u8; 8], DutyCycle>,
    /// How long nodes that answered late took (sleepy nodes behind routers, whose polls ferry
    /// does not hear), ms: their wake period when no duty cycle is known.
    pub answer_waits_ms: BTreeMap<[u8; 8], u64>,
}

/// One component of an accepted manifest, as the scheduler offers it.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedUpdate {
    /// `repository/path@sequence` (plus `#component` when the manifest has several).
    pub id: String,
    /// Hex SHA-256 of the envelope.
    pub digest: String,
    pub repository: String,
    pub path: String,
    pub sequence: u64,
    /// Component name as devices report it (see [`component_name`]).
    pub component: String,
    /// UUID text.
    pub vendor_id: String,
    pub class_id: String,
    pub authority: String,
    pub image_bytes: u64,
    pub accepted_at: Timestamp,
    /// The trust policy in force still accepts it.
    pub verified: bool,
}

/// A component ID as one word: printable segments as text, others as hex, joined by `/`
/// (RIOT's `[h'00']` is `00`).
pub fn component_name(id: &ComponentId) -> String {
    id.0.iter()
        .map(|seg| {
            if !seg.is_empty() && seg.iter().all(|b| b.is_ascii_graphic() && *b != b'/') {
                String::from_utf8_lossy(seg).into_owned()
            } else {
                seg.iter().map(|b| format!("{b:02x}")).collect()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Everything live the plan is built from.
pub struct LiveInputs<'a> {
    pub config: &'a Config,
    pub owners: &'a EffectiveSettings,
    pub devices: &'a [Device],
    pub updates: &'a [OfferedUpdate],
    pub approvals: &'a [Approval],
    /// Running delivery sessions (none until the delivery engine records them).
    pub sessions: &'a [ActiveSession],
    /// Delivery attempts per device and update (`store::attempts`), for the retry policy.
    pub attempts: &'a [crate::store::attempts::AttemptRow],
    pub mesh: &'a MeshView,
}

/// The scheduler's input and the mesh it plans over, from the live state at `now`.
pub fn plan_input(inputs: &LiveInputs<'_>, now: Timestamp) -> (PlanState, InMemoryTopology) {
    let config = inputs.config;
    // Parents stored as facts first, then what the RPL root sees now on top.
    let mut topology = InMemoryTopology::new();
    for device in inputs.devices {
        if let Some(position) = &device.position {
            topology.set_parent(device.eui64, position.value.parent);
        }
    }
    for (eui, parent) in inputs.mesh.topology.parents() {
        topology.set_parent(eui, parent);
    }

    let mut groups = BTreeMap::new();
    for group in &config.groups {
        match inputs.owners.group_schedule(config, &group.name, now) {
            Ok(schedule) => {
                groups.insert(group.name.clone(), GroupPlan::new(&group.name, schedule, &group.policy));
            }
            // Its devices then wait with "group is not configured".
            Err(e) => tracing::warn!(group = group.name, "no schedule for the group: {e}"),
        }
    }

    let mut devices: Vec<PlanDevice> = inputs
        .devices
        .iter()
        .map(|device| {
            let duty = inputs.mesh.duty_cycles.get(&device.eui64.0).or(device.duty_cycle.as_ref().map(|k| &k.value));
            PlanDevice {
                eui64: device.eui64,
                name: None,
                group: device.group.as_ref().map_or_else(String::new, |g| g.value.clone()),
                lifecycle: device.lifecycle,
                vendor_id: device.vendor_id.as_ref().map(|k| k.value.clone()),
                class_id: device.class_id.as_ref().map(|k| k.value.clone()),
                installed: device.components.iter().map(|(k, v)| (k.clone(), v.value)).collect(),
                // Routers forward for others, so they are on mains.
                mains_powered: topology.is_router(device.eui64),
                battery_percent: device.battery_percent.as_ref().map(|k| k.value),
                free_storage_bytes: device.free_storage_bytes.as_ref().map(|k| k.value),
                link: device.link.as_ref().map(|k| k.value),
                wake_period_ms: duty
                    .map(|d| (d.period_us / 1000.0).round() as u64)
                    .or_else(|| inputs.mesh.answer_waits_ms.get(&device.eui64.0).copied()),
            }
        })
        .collect();
    // Devices behind the kernel's IP stack: what ferry cannot see of them, from the config.
    super::kernel::complete_plan_view(config, &mut topology, &mut devices);

    let updates = inputs
        .updates
        .iter()
        .map(|u| {
            let approvals = inputs.approvals.iter().filter(|a| a.digest == u.digest);
            let (everywhere, groups): (Vec<&Approval>, Vec<&Approval>) = approvals.partition(|a| a.group.is_none());
            Update {
                id: u.id.clone(),
                authority: u.authority.clone(),
                vendor_id: u.vendor_id.clone(),
                class_id: u.class_id.clone(),
                component: u.component.clone(),
                sequence: u.sequence,
                image_bytes: u.image_bytes,
                // Manifests carry no urgency yet; every update is routine.
                urgency: Urgency::Routine,
                verified: u.verified,
                approved: !everywhere.is_empty(),
                approved_groups: groups.into_iter().filter_map(|a| a.group.clone()).collect::<BTreeSet<_>>(),
                paused: false,
                available_at: u.accepted_at,
            }
        })
        .collect();

    // Failed attempts hold an update back from a device until their backoff passed, or for good.
    let mut held = HashMap::new();
    for row in inputs.attempts.iter().filter(|a| a.gave_up || a.next_unix_ms.is_some()) {
        let Ok(eui) = crate::fleet::device::parse_eui64(&row.device) else { continue };
        let until = match row.next_unix_ms {
            _ if row.gave_up => None,
            Some(ms) => Some(Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)),
            None => continue,
        };
        for u in inputs.updates.iter().filter(|u| u.digest == row.manifest_digest) {
            held.insert((eui, u.id.clone()), Held { attempts: row.attempts, until });
        }
    }
    let state = PlanState {
        held,
        devices,
        updates,
        sessions: inputs.sessions.to_vec(),
        groups,
        authorities: config.authorities.iter().map(|a| (a.name.clone(), a.approval)).collect(),
        pan: config.plan.pan_policy(),
        model: Default::default(),
    };
    (state, topology)
}

/// The planner's `ferry update ls` line for an offered update.
pub fn update_line(config: &Config, update: &OfferedUpdate, approvals: &[Approval]) -> UpdateLine {
    let approvals: Vec<Approval> = approvals.iter().filter(|a| a.digest == update.digest).cloned().collect();
    let mode =
        config.authorities.iter().find(|a| a.name == update.authority).map_or(ApprovalMode::Manual, |a| a.approval);
    let status = if !update.verified {
        "not verified by the trust policy in force".to_owned()
    } else if mode == ApprovalMode::Automatic {
        "automatic".to_owned()
    } else if approvals.iter().any(|a| a.group.is_none()) {
        "approved".to_owned()
    } else if !approvals.is_empty() {
        let groups: Vec<&str> = approvals.iter().filter_map(|a| a.group.as_deref()).collect();
        format!("approved for {}", groups.join(", "))
    } else {
        "waiting for approval".to_owned()
    };
    UpdateLine {
        id: update.id.clone(),
        digest: update.digest.clone(),
        repository: update.repository.clone(),
        path: update.path.clone(),
        sequence: update.sequence,
        component: update.component.clone(),
        vendor_id: update.vendor_id.clone(),
        class_id: update.class_id.clone(),
        authority: update.authority.clone(),
        approval_mode: mode,
        image_bytes: update.image_bytes,
        accepted_at: update.accepted_at.to_string(),
        verified: update.verified,
        approvals,
        status,
    }
}

/// The daemon's planning state: resolved manifests, the mesh fed by the radio side, the gauge.
pub(super) struct PlanRoom {
    cache: BlobCache,
    policy: Arc<Policy>,
    /// Resolved manifests by envelope digest; an envelope never changes under its digest.
    resolved: Mutex<HashMap<String, Vec<OfferedUpdate>>>,
    mesh: Mutex<Arc<MeshView>>,
    /// Sessions the delivery engine reports running.
    sessions: Mutex<Arc<Vec<ActiveSession>>>,
    decisions: IntGaugeVec,
}

impl PlanRoom {
    pub(super) fn new(cache: BlobCache, policy: Arc<Policy>, registry: &Registry) -> prometheus::Result<PlanRoom> {
        let decisions = IntGaugeVec::new(
            Opts::new(
                "ferry_plan_devices",
                "Devices in the latest plan, by decision (start, wait, in-progress, up-to-date).",
            ),
            &["decision"],
        )?;
        registry.register(Box::new(decisions.clone()))?;
        Ok(PlanRoom {
            cache,
            policy,
            resolved: Mutex::new(HashMap::new()),
            mesh: Mutex::new(Arc::default()),
            sessions: Mutex::new(Arc::default()),
            decisions,
        })
    }

    /// The radio/RPL side's input: the mesh as it is now. Replaces the previous view.
    pub(super) fn feed_mesh(&self, view: MeshView) {
        *self.mesh.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
    }

    pub(super) fn mesh(&self) -> Arc<MeshView> {
        self.mesh.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The delivery engine's input: the sessions running now. Replaces the previous list. A
    /// session whose state does not [`crate::deliver::State::uses_air`] goes in with an air-time
    /// share of 0, as `ferry bench` feeds it.
    pub(super) fn feed_sessions(&self, sessions: Vec<ActiveSession>) {
        *self.sessions.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(sessions);
    }

    pub(super) fn sessions(&self) -> Arc<Vec<ActiveSession>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Accepted manifests as updates: each envelope is read from the verified cache and judged
    /// by the policy in force once, then remembered.
    pub(super) async fn offered(&self, rows: Vec<ManifestRow>) -> Vec<OfferedUpdate> {
        let mut out = Vec::new();
        for row in rows {
            let known = self.resolved.lock().unwrap_or_else(|p| p.into_inner()).get(&row.digest).cloned();
            let updates = match known {
                Some(updates) => updates,
                None => {
                    let updates = self.resolve(&row).await;
                    self.resolved.lock().unwrap_or_else(|p| p.into_inner()).insert(row.digest.clone(), updates.clone());
                    updates
                }
            };
            out.extend(updates);
        }
        out
    }

    async fn resolve(&self, row: &ManifestRow) -> Vec<OfferedUpdate> {
        let base = OfferedUpdate {
            id: format!("{}/{}@{}", row.repository, row.path, row.sequence_number),
            digest: row.digest.clone(),
            repository: row.repository.clone(),
            path: row.path.clone(),
            sequence: row.sequence_number,
            component: String::new(),
            vendor_id: String::new(),
            class_id: String::new(),
            authority: String::new(),
            image_bytes: row.payloads.iter().map(|p| p.2).max().unwrap_or(0),
            accepted_at: Timestamp::from_millisecond(row.accepted_unix_ms).unwrap_or(Timestamp::UNIX_EPOCH),
            verified: false,
        };
        let judged = async {
            let digest: BlobDigest = row.digest.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let bytes = self.cache.read_small(&digest, 64 * 1024).await?;
            let envelope = Envelope::parse(&bytes)?;
            Ok::<_, anyhow::Error>(self.policy.evaluate(&envelope, SystemTime::now())?)
        };
        let accepted = match judged.await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(manifest = base.id, "accepted manifest no longer verifies; not offered: {e:#}");
                return vec![base];
            }
        };
        let several = accepted.components().len() > 1;
        accepted
            .components()
            .iter()
            .map(|c| {
                let component = component_name(&c.id);
                let size =
                    accepted.manifest().component(&c.id).and_then(|m| m.images.iter().filter_map(|i| i.size).max());
                OfferedUpdate {
                    id: if several { format!("{}#{component}", base.id) } else { base.id.clone() },
                    component,
                    vendor_id: c.vendor_id.to_string(),
                    class_id: c.class_id.to_string(),
                    authority: c.authority.clone(),
                    image_bytes: size.unwrap_or(base.image_bytes),
                    verified: true,
                    ..base.clone()
                }
            })
            .collect()
    }

    /// Runs the planner and exports the decisions.
    pub(super) fn decide(&self, state: &PlanState, topology: &impl Topology, at: Timestamp) -> (Plan, PlanReport) {
        let plan = plan(state, topology, at);
        let report = PlanReport::from(&plan);
        (plan, report)
    }

    /// Sets `ferry_plan_devices{decision}` from the plan for now.
    pub(super) fn export(&self, report: &PlanReport) {
        for (action, label) in [
            (PlanAction::Start, "start"),
            (PlanAction::Wait, "wait"),
            (PlanAction::InProgress, "in-progress"),
            (PlanAction::UpToDate, "up-to-date"),
        ] {
            let n = report.entries.iter().filter(|e| e.action == action).count();
            self.decisions.with_label_values(&[label]).set(n as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::device::{Eui64, Known, Lifecycle, LinkQuality, Parent, Position, Source};
    use crate::schedule::plan::{Action, WaitReason};

    fn config() -> Config {
        Config::parse(
            std::path::Path::new("ferry.toml"),
            r#"
[radio]
url = "sim:home.toml"
[[authority]]
name = "vendor"
keys = ["2eaf3e1decf7d8b376ee9692a11a9f834d1dd66c3c431ca5ae919ea6dbdf2471"]
approval = "manual"
[[owner]]
name = "landlord"
uid = 1000
[[group]]
name = "flat-1"
admin = "landlord"
[[group]]
name = "flat-2"
admin = "landlord"
"#,
        )
        .unwrap()
    }

    fn device(n: u8, group: &str, parent: Parent, now: Timestamp) -> Device {
        let mut d = Device::discovered(Eui64([2, 0, 0, 0, 0, 0, 0, n]), now);
        d.transition(Lifecycle::Commissioned, now).unwrap();
        d.transition(Lifecycle::Active, now).unwrap();
        let known = |v: &str| Some(Known::new(v.to_owned(), Source::DeviceReport, now));
        d.group = Some(Known::new(group.to_owned(), Source::Config, now));
        d.vendor_id = known("v");
        d.class_id = known("c");
        d.components.insert("00".into(), Known::new(1, Source::DeviceReport, now));
        d.battery_percent = Some(Known::new(90, Source::DeviceReport, now));
        d.free_storage_bytes = Some(Known::new(100_000, Source::DeviceReport, now));
        d.link = Some(Known::new(LinkQuality { rssi_dbm: -60, lqi: 220, etx: 1.1 }, Source::Rpl, now));
        d.position = Some(Known::new(Position { parent, hops: 1 }, Source::Rpl, now));
        d
    }

    fn offered(now: Timestamp) -> OfferedUpdate {
        OfferedUpdate {
            id: "local/app.suit@2".into(),
            digest: "ab".repeat(32),
            repository: "local".into(),
            path: "app.suit".into(),
            sequence: 2,
            component: "00".into(),
            vendor_id: "v".into(),
            class_id: "c".into(),
            authority: "vendor".into(),
            image_bytes: 20_000,
            accepted_at: now,
            verified: true,
        }
    }

    fn codes(plan: &Plan, n: u8) -> Vec<&'static str> {
        let entry = plan.entries.iter().find(|e| e.device.0[7] == n).expect("planned");
        match &entry.action {
            Action::Wait { reasons, .. } => reasons.iter().map(WaitReason::code).collect(),
            Action::Start(_) => vec!["start"],
            _ => vec!["other"],
        }
    }

    #[test]
    fn group_approvals_stored_parents_and_the_fed_mesh_reach_the_planner() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let config = config();
        let owners = EffectiveSettings::default();
        let router = Eui64([2, 0, 0, 0, 0, 0, 0, 1]);
        let devices = vec![
            device(1, "flat-1", Parent::BorderRouter, now),
            device(2, "flat-1", Parent::Node(router), now),
            device(3, "flat-2", Parent::BorderRouter, now),
        ];
        let updates = vec![offered(now)];
        let approvals =
            vec![Approval { digest: "ab".repeat(32), group: Some("flat-1".into()), uid: 1000, approved_unix_ms: 0 }];
        let mesh = MeshView::default();
        let inputs = LiveInputs {
            config: &config,
            owners: &owners,
            devices: &devices,
            updates: &updates,
            approvals: &approvals,
            sessions: &[],
            attempts: &[],
            mesh: &mesh,
        };
        let (state, topology) = plan_input(&inputs, now);
        assert!(state.devices[0].mains_powered, "a router (from the stored parents) is on mains");
        let planned = plan(&state, &topology, now);
        assert_eq!(codes(&planned, 2), ["start"], "approved for its group; a leaf");
        assert_eq!(codes(&planned, 1), ["subtree-first"], "the router waits for its leaf");
        assert_eq!(codes(&planned, 3), ["awaiting-approval"], "approved for flat-1 only");

        // The radio side says device 2 now hangs under device 3, asleep most of the time.
        let mut fed = MeshView::default();
        fed.topology.set_parent(Eui64([2, 0, 0, 0, 0, 0, 0, 2]), Parent::Node(Eui64([2, 0, 0, 0, 0, 0, 0, 3])));
        let dc = DutyCycle {
            period_us: 60e6,
            anchor_us: 0.0,
            awake_us: 5000,
            confidence: 0.9,
            residual_rms_us: 100.0,
            wakes_used: 10,
        };
        fed.duty_cycles.insert([2, 0, 0, 0, 0, 0, 0, 2], dc);
        let (state, topology) = plan_input(&LiveInputs { mesh: &fed, ..inputs }, now);
        assert_eq!(
            topology.parent(Eui64([2, 0, 0, 0, 0, 0, 0, 2])),
            Some(Parent::Node(Eui64([2, 0, 0, 0, 0, 0, 0, 3])))
        );
        assert_eq!(state.devices[1].wake_period_ms, Some(60_000));
        assert!(!state.devices[0].mains_powered && state.devices[2].mains_powered);
    }

    #[test]
    fn component_names_read_like_devices_report_them() {
        assert_eq!(component_name(&ComponentId(vec![vec![0]])), "00");
        assert_eq!(component_name(&ComponentId(vec![b"riot".to_vec(), vec![1, 2]])), "riot/0102");
    }
}
