//! The plan: which (device, update) sessions may start now, and why every other one waits.
//!
//! [`plan`] is pure: `(PlanState, topology, now) → Plan`. The daemon calls it on every tick and
//! when something changes, starts the sessions in [`Plan::starts`], and records them as active.
//!
//! # Rules, in the order they are checked
//!
//! 1. **Which update.** Per device, the updates whose vendor and class IDs match the device and
//!    that touch a component it has; of those, per component the highest sequence number, which
//!    must be above the installed one. One session per device: the most urgent goes first.
//! 2. **Allowed.** Verified; not paused; approved (automatically for an authority whose approval
//!    mode is automatic, else by `ferry update approve`); the device is active.
//! 3. **When.** Inside a window of the device's group and not in a blackout, unless the group's
//!    policy lets this urgency skip windows (or blackouts), or the update's **deferral
//!    deadline** (`available_at + max_deferral`, for security and critical updates) is within
//!    [`PanPolicy::deadline_lead`]: then it starts regardless, so it starts by its deadline.
//! 4. **Ready.** Battery (unless mains powered), free storage for the image, link quality.
//! 5. **Fits.** The estimated session (see [`super::estimate`]) ends before the window closes.
//! 6. **Topology and air.** Candidates are taken in order (urgency, earliest window end, fewest
//!    hops); each must have no session on its path to the border router (a rebooting router
//!    cuts its subtree off), no active or startable session in its own subtree (leaves before
//!    routers), room among its parent's `max_concurrent_per_parent` slots (a sleepy child's
//!    session takes less than one: [`parent_slots`]; the border router's awake children take
//!    none, its radio bounds them instead, below), and its air-time share must fit the PAN's
//!    remaining budget. The budget bounds contention, so the border router's own frames are
//!    not in it: they are sent by one radio, one after the other, and never collide with each
//!    other. They count against that radio's capacity instead
//!    ([`estimate::gateway_capacity`]): sessions fill each other's gaps (a device writing
//!    flash, a request on its way), and one more starts while it would still add at least
//!    [`MIN_GATEWAY_GAIN`] of what it would send alone ([`estimate::gateway_utilisation`]).
//!    That bound is for sleepy devices, whose radio stays on the longer their session shares
//!    the radio. An always-on device's radio is on anyway: while no sleepy device shares the
//!    radio or waits for it, a longer session costs nothing, and more sessions fill the gaps
//!    the model does not see (manifests, reboots, the first and last blocks), so they start
//!    while the radio gains anything at all and each block would still be answered within
//!    [`MAX_SHARED_BLOCK_S`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::estimate::{self, Model, SessionEstimate};
use super::{Schedule, WindowState};
use crate::config::GroupPolicy;
use crate::fleet::device::{eui64_text, Eui64, Lifecycle, LinkQuality, Parent};
use crate::fleet::topology::Topology;

/// Another session through the border router's radio starts only if the radio would send at
/// least this much more, as a fraction of what the session would send alone: beyond it,
/// sessions mostly wait for each other (3 at 1024-byte blocks, 6 at 64-byte ones). Applies
/// while a sleepy device shares the radio or waits for it (see the module doc).
pub const MIN_GATEWAY_GAIN: f64 = 0.15;

/// The longest a block may take while sessions share the border router's radio, s: half of
/// RFC 7252's ACK_TIMEOUT (2 s, which RIOT keeps), so a device's request is answered before it
/// sends it again and the duplicates add to the queue.
pub const MAX_SHARED_BLOCK_S: f64 = 1.0;

/// How pressing an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    Routine,
    Security,
    Critical,
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Urgency::Routine => "routine",
            Urgency::Security => "security",
            Urgency::Critical => "critical",
        })
    }
}

/// From which urgency on a group's windows (or blackouts) give way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipFrom {
    Never,
    Security,
    Critical,
}

impl SkipFrom {
    pub fn allows(self, urgency: Urgency) -> bool {
        match self {
            SkipFrom::Never => false,
            SkipFrom::Security => urgency >= Urgency::Security,
            SkipFrom::Critical => urgency >= Urgency::Critical,
        }
    }
}

/// Whether an authority's updates need an operator's `ferry update approve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    #[default]
    Automatic,
    Manual,
}

/// A verified (or not yet verified) update ferry could deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub id: String,
    pub authority: String,
    pub vendor_id: String,
    pub class_id: String,
    pub component: String,
    pub sequence: u64,
    pub image_bytes: u64,
    pub urgency: Urgency,
    #[serde(default = "yes")]
    pub verified: bool,
    /// An operator approved it for every group (`ferry update approve`).
    #[serde(default)]
    pub approved: bool,
    /// Groups an operator approved it for (`ferry update approve --group G`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub approved_groups: BTreeSet<String>,
    #[serde(default)]
    pub paused: bool,
    /// When ferry accepted it; the deferral deadline counts from here.
    #[serde(with = "super::instant::rfc3339")]
    pub available_at: Timestamp,
}

fn yes() -> bool {
    true
}

/// The planner's view of a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDevice {
    #[serde(with = "eui64_text")]
    pub eui64: Eui64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub group: String,
    #[serde(default = "active")]
    pub lifecycle: Lifecycle,
    pub vendor_id: Option<String>,
    pub class_id: Option<String>,
    /// Installed sequence number per component.
    #[serde(default)]
    pub installed: BTreeMap<String, u64>,
    #[serde(default)]
    pub mains_powered: bool,
    #[serde(default)]
    pub battery_percent: Option<u8>,
    #[serde(default)]
    pub free_storage_bytes: Option<u64>,
    #[serde(default)]
    pub link: Option<LinkQuality>,
    /// The learned wake period of a sleepy device, ms; absent for always-on ones.
    #[serde(default)]
    pub wake_period_ms: Option<u64>,
}

fn active() -> Lifecycle {
    Lifecycle::Active
}

impl PlanDevice {
    /// The planner's view of a stored device; `None` without a group (nothing to plan for).
    pub fn from_device(device: &crate::fleet::Device, mains_powered: bool) -> Option<PlanDevice> {
        Some(PlanDevice {
            eui64: device.eui64,
            name: device.board.as_ref().map(|b| b.value.clone()),
            group: device.group.as_ref()?.value.clone(),
            lifecycle: device.lifecycle,
            vendor_id: device.vendor_id.as_ref().map(|k| k.value.clone()),
            class_id: device.class_id.as_ref().map(|k| k.value.clone()),
            installed: device.components.iter().map(|(k, v)| (k.clone(), v.value)).collect(),
            mains_powered,
            battery_percent: device.battery_percent.as_ref().map(|k| k.value),
            free_storage_bytes: device.free_storage_bytes.as_ref().map(|k| k.value),
            link: device.link.as_ref().map(|k| k.value),
            wake_period_ms: device.duty_cycle.as_ref().map(|k| (k.value.period_us / 1000.0).round() as u64),
        })
    }
}

/// A session that is running (the delivery room's record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveSession {
    #[serde(with = "eui64_text")]
    pub device: Eui64,
    pub update: String,
    #[serde(with = "super::instant::rfc3339")]
    pub started_at: Timestamp,
    #[serde(with = "super::instant::rfc3339")]
    pub expected_end: Timestamp,
    pub air_time_share: f64,
    /// The part of `air_time_share` the border router sends ([`SessionEstimate::gateway_share`]).
    #[serde(default)]
    pub gateway_share: f64,
    /// When the window it started in closes, if it must end inside one: a session that joins
    /// it on the border router's radio must not push it past.
    #[serde(default, with = "super::instant::rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub window_closes: Option<Timestamp>,
}

/// Readiness thresholds of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readiness {
    pub min_battery_percent: u8,
    pub min_rssi_dbm: i16,
    pub min_lqi: u8,
    pub max_etx: f64,
}

/// A group as the planner needs it.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub name: String,
    /// Windows minus blackouts.
    pub schedule: Schedule,
    /// Windows alone, to tell "closed" from "in a blackout".
    pub windows_only: Schedule,
    pub readiness: Readiness,
    pub max_deferral: SignedDuration,
    pub skip_windows_from: SkipFrom,
    pub skip_blackouts_from: SkipFrom,
}

impl GroupPlan {
    /// `schedule` is the group's schedule in force (e.g. `EffectiveSettings::group_schedule`).
    pub fn new(name: &str, schedule: Schedule, policy: &GroupPolicy) -> GroupPlan {
        let windows_only = Schedule::new(schedule.time_zone().clone(), schedule.windows().to_vec(), []);
        GroupPlan {
            name: name.to_owned(),
            schedule,
            windows_only,
            readiness: Readiness {
                min_battery_percent: policy.min_battery_percent,
                min_rssi_dbm: policy.min_rssi_dbm,
                min_lqi: policy.min_lqi,
                max_etx: policy.max_etx,
            },
            max_deferral: policy.max_deferral.duration(),
            skip_windows_from: policy.skip_windows_from,
            skip_blackouts_from: policy.skip_blackouts_from,
        }
    }

    fn zone(&self) -> Arc<str> {
        self.schedule.time_zone().iana_name().unwrap_or("UTC").into()
    }
}

/// PAN-wide limits (`[plan]` in ferry.toml).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanPolicy {
    /// Largest share of the channel's time ferry's sessions may use together, 0..=1.
    pub air_time_budget: f64,
    /// Session slots per parent: an awake child's session takes one, a sleepy child's the
    /// share of the time its polls let it use ([`parent_slots`]).
    pub max_concurrent_per_parent: u8,
    /// CoAP Block2 size the devices fetch with.
    pub block_size: u16,
    /// How long before a deferral deadline an update starts regardless of windows.
    pub deadline_lead: SignedDuration,
}

impl Default for PanPolicy {
    fn default() -> Self {
        PanPolicy {
            air_time_budget: 0.6,
            max_concurrent_per_parent: 2,
            block_size: 64,
            deadline_lead: SignedDuration::from_hours(6),
        }
    }
}

/// Everything the planner looks at.
#[derive(Debug, Clone, Default)]
pub struct PlanState {
    pub devices: Vec<PlanDevice>,
    pub updates: Vec<Update>,
    pub sessions: Vec<ActiveSession>,
    pub groups: BTreeMap<String, GroupPlan>,
    /// Approval mode per authority name; authorities not listed need manual approval.
    pub authorities: BTreeMap<String, ApprovalMode>,
    pub pan: PanPolicy,
    pub model: Model,
    /// Updates held back from devices by the delivery retry policy, by device and update id.
    pub held: std::collections::HashMap<(Eui64, String), Held>,
}

/// An update held back from a device after failed sessions (`[delivery]` retry policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Sessions of it that ended failed or rolled back.
    pub attempts: u32,
    /// The next session may start then; `None`: the attempts are spent.
    pub until: Option<Timestamp>,
}

/// An instant shown in a group's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTime {
    pub at: Timestamp,
    /// Shared by every reason of the group's devices in one plan.
    pub zone: Arc<str>,
    /// Within a week of the plan's `now`, so the weekday alone is clear.
    pub soon: bool,
}

impl LocalTime {
    fn new(at: Timestamp, zone: &Arc<str>, now: Timestamp) -> LocalTime {
        let soon = at.duration_since(now) < SignedDuration::from_hours(6 * 24);
        LocalTime { at, zone: Arc::clone(zone), soon }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tz = jiff::tz::TimeZone::get(&self.zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let local = tz.to_datetime(self.at);
        let pattern = if self.soon { "%a %H:%M" } else { "%a %-d %b %Y %H:%M" };
        write!(f, "{} {}", local.strftime(pattern), self.zone)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.at)
    }
}

/// A fact the planner needs but does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fact {
    Battery,
    Storage,
    Link,
    Route,
    Identity,
}

/// Which link threshold failed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "metric")]
pub enum LinkProblem {
    Rssi { dbm: i16, min: i16 },
    Lqi { lqi: u8, min: u8 },
    Etx { etx: f64, max: f64 },
}

/// Why a (device, update) session does not start now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "code")]
pub enum WaitReason {
    NotNewer {
        sequence: u64,
        installed: u64,
    },
    NotVerified,
    Paused,
    AwaitingApproval {
        authority: String,
        update: String,
    },
    NotActive {
        lifecycle: Lifecycle,
    },
    UnknownGroup {
        group: String,
    },
    OutsideWindow {
        opens: Option<LocalTime>,
    },
    Blackout {
        resumes: Option<LocalTime>,
    },
    BatteryLow {
        percent: u8,
        min: u8,
    },
    StorageLow {
        free: u64,
        need: u64,
    },
    LinkWeak(LinkProblem),
    Unknown {
        fact: Fact,
    },
    WouldNotFit {
        needs_s: i64,
        closes: LocalTime,
    },
    OtherUpdateFirst {
        update: String,
    },
    PathBusy {
        #[serde(with = "eui64_text")]
        router: Eui64,
    },
    SubtreeBusy {
        active: usize,
    },
    SubtreeFirst {
        pending: usize,
    },
    ParentLimit {
        parent: String,
        active: usize,
        max: u8,
    },
    AirTimeBudget {
        used: f64,
        need: f64,
        budget: f64,
    },
    /// The border router's radio sends for other sessions nearly back to back.
    GatewayBusy {
        used: f64,
        need: f64,
        capacity: f64,
    },
    /// Sharing the border router's radio, each block would take so long that the device
    /// would ask again before it is answered.
    GatewayQueue {
        block_s: f64,
        sessions: usize,
    },
    /// A session already sharing the border router's radio would be slowed past its window's end.
    WouldDelayRunning {
        #[serde(with = "eui64_text")]
        device: Eui64,
    },
    /// Alone it would fit its window, but not while it shares the border router's radio.
    SharedRadioWouldNotFit {
        needs_s: i64,
        sessions: usize,
    },
    /// The last session failed or rolled back; the next waits out the retry backoff.
    RetryBackoff {
        attempts: u32,
        #[serde(with = "super::instant::rfc3339")]
        until: Timestamp,
    },
    /// Every attempt the retry policy allows failed.
    AttemptsSpent {
        attempts: u32,
    },
}

impl WaitReason {
    /// A stable machine-readable name (the `code` of the JSON form).
    pub fn code(&self) -> &'static str {
        match self {
            WaitReason::NotNewer { .. } => "not-newer",
            WaitReason::NotVerified => "not-verified",
            WaitReason::Paused => "paused",
            WaitReason::AwaitingApproval { .. } => "awaiting-approval",
            WaitReason::NotActive { .. } => "not-active",
            WaitReason::UnknownGroup { .. } => "unknown-group",
            WaitReason::OutsideWindow { .. } => "outside-window",
            WaitReason::Blackout { .. } => "blackout",
            WaitReason::BatteryLow { .. } => "battery-low",
            WaitReason::StorageLow { .. } => "storage-low",
            WaitReason::LinkWeak(_) => "link-weak",
            WaitReason::Unknown { .. } => "unknown",
            WaitReason::WouldNotFit { .. } => "would-not-fit",
            WaitReason::OtherUpdateFirst { .. } => "other-update-first",
            WaitReason::PathBusy { .. } => "path-busy",
            WaitReason::SubtreeBusy { .. } => "subtree-busy",
            WaitReason::SubtreeFirst { .. } => "subtree-first",
            WaitReason::ParentLimit { .. } => "parent-limit",
            WaitReason::AirTimeBudget { .. } => "air-time-budget",
            WaitReason::GatewayBusy { .. } => "gateway-busy",
            WaitReason::GatewayQueue { .. } => "gateway-queue",
            WaitReason::WouldDelayRunning { .. } => "would-delay-running",
            WaitReason::SharedRadioWouldNotFit { .. } => "shared-radio-would-not-fit",
            WaitReason::RetryBackoff { .. } => "retry-backoff",
            WaitReason::AttemptsSpent { .. } => "attempts-spent",
        }
    }
}

fn kib(bytes: u64) -> String {
    format!("{} kB", bytes.div_ceil(1000))
}

fn minutes(seconds: i64) -> String {
    if seconds < 90 {
        format!("{seconds} s")
    } else {
        format!("{} min", (seconds + 59) / 60)
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::NotNewer { sequence, installed } => {
                write!(f, "sequence {sequence} not higher than installed {installed}")
            }
            WaitReason::NotVerified => f.write_str("update not verified"),
            WaitReason::Paused => f.write_str("paused by an operator"),
            WaitReason::AwaitingApproval { authority, update } => {
                write!(f, "awaiting approval (authority {authority}: ferry update approve {update})")
            }
            WaitReason::NotActive { lifecycle: Lifecycle::Discovered } => {
                f.write_str("device is discovered, not admitted (ferry device admit)")
            }
            WaitReason::NotActive { lifecycle } => write!(f, "device is {lifecycle}, not active"),
            WaitReason::UnknownGroup { group } => write!(f, "group `{group}` is not configured"),
            WaitReason::OutsideWindow { opens: Some(t) } => write!(f, "outside window until {t}"),
            WaitReason::OutsideWindow { opens: None } => f.write_str("outside window; no window ever opens"),
            WaitReason::Blackout { resumes: Some(t) } => write!(f, "blackout; installs resume {t}"),
            WaitReason::Blackout { resumes: None } => f.write_str("blackout; no window opens after it"),
            WaitReason::BatteryLow { percent, min } => write!(f, "battery {percent} % < {min} %"),
            WaitReason::StorageLow { free, need } => {
                write!(f, "free storage {} < image {}", kib(*free), kib(*need))
            }
            WaitReason::LinkWeak(LinkProblem::Rssi { dbm, min }) => write!(f, "link RSSI {dbm} dBm < {min} dBm"),
            WaitReason::LinkWeak(LinkProblem::Lqi { lqi, min }) => write!(f, "link LQI {lqi} < {min}"),
            WaitReason::LinkWeak(LinkProblem::Etx { etx, max }) => write!(f, "link ETX {etx:.1} > {max:.1}"),
            WaitReason::Unknown { fact } => f.write_str(match fact {
                Fact::Battery => "battery level unknown",
                Fact::Storage => "free storage unknown",
                Fact::Link => "link quality unknown",
                Fact::Route => "no route to the device in the DODAG",
                Fact::Identity => "vendor/class IDs unknown",
            }),
            WaitReason::WouldNotFit { needs_s, closes } => {
                write!(f, "needs ~{}, window closes {closes}", minutes(*needs_s))
            }
            WaitReason::OtherUpdateFirst { update } => write!(f, "update {update} goes first"),
            WaitReason::PathBusy { router } => write!(f, "router {router} on its path is updating"),
            WaitReason::SubtreeBusy { active } => {
                write!(f, "router: {active} {} still updating", if *active == 1 { "child" } else { "children" })
            }
            WaitReason::SubtreeFirst { pending } => {
                write!(f, "router: {pending} {} behind it update first", if *pending == 1 { "node" } else { "nodes" })
            }
            WaitReason::ParentLimit { parent, active, max } => {
                write!(f, "parent {parent}: {active} sessions take its {max} slots (a sleepy child's takes less)")
            }
            WaitReason::AirTimeBudget { used, need, budget } => write!(
                f,
                "air time: {:.0} % in use + {:.0} % > {:.0} % budget",
                used * 100.0,
                need * 100.0,
                budget * 100.0
            ),
            WaitReason::GatewayBusy { used, need, capacity } => write!(
                f,
                "border router's radio: {:.0} % asked of it already, {:.0} % more would mostly wait ({:.0} % back to back)",
                used * 100.0,
                need * 100.0,
                capacity * 100.0
            ),
            WaitReason::GatewayQueue { block_s, sessions } => write!(
                f,
                "border router's radio: beside {sessions} {} each block would take ~{block_s:.2} s \
                 (at most {MAX_SHARED_BLOCK_S:.0} s: half the devices' CoAP ACK timeout)",
                if *sessions == 1 { "session" } else { "sessions" },
            ),
            WaitReason::WouldDelayRunning { device } => {
                write!(f, "joining the border router's radio would slow {device}'s session past its window's end")
            }
            WaitReason::SharedRadioWouldNotFit { needs_s, sessions } => write!(
                f,
                "sharing the border router's radio with {sessions} {} it needs ~{}, past the window's end",
                if *sessions == 1 { "session" } else { "sessions" },
                minutes(*needs_s)
            ),
            WaitReason::RetryBackoff { attempts, until } => {
                write!(f, "{attempts} failed attempt(s); next try at {}", until.strftime("%Y-%m-%dT%H:%M:%SZ"))
            }
            WaitReason::AttemptsSpent { attempts } => {
                write!(f, "gave up after {attempts} failed attempt(s) (max_attempts: the group's policy, else [delivery])")
            }
        }
    }
}

/// Why a session may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartBasis {
    /// Inside a window, no blackout.
    Window,
    /// Outside a window or in a blackout, which the group lets this urgency skip.
    Urgency,
    /// The deferral deadline is near or past.
    Deadline,
}

/// A session to start now.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub device: Eui64,
    pub update: String,
    pub urgency: Urgency,
    pub basis: StartBasis,
    pub estimate: SessionEstimate,
    /// When the window closes (`None`: started on urgency/deadline, or it never closes).
    pub window_closes: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
}

impl Start {
    /// When the window the session starts in closes, if it must end inside one (not when it
    /// starts on a deadline, outside any window).
    pub fn must_end_by(&self) -> Option<Timestamp> {
        self.window_closes.filter(|_| self.basis == StartBasis::Window)
    }

    /// What it must finish or start by: the window's end, or for a deadline start the deadline
    /// (earliest first, so an overdue security update goes before in-window ones).
    fn due(&self) -> Timestamp {
        match self.basis {
            StartBasis::Deadline => self.deadline,
            _ => self.window_closes,
        }
        .unwrap_or(Timestamp::MAX)
    }
}

/// What happens with one device.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Start(Start),
    Wait { update: String, reasons: Vec<WaitReason>, retry_at: Option<Timestamp> },
    InProgress { update: String, expected_end: Timestamp },
    UpToDate { reason: Option<WaitReason> },
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub device: Eui64,
    /// The device's name, if it has one ([`Entry::label`] falls back to the EUI-64).
    pub name: Option<String>,
    pub group: String,
    pub action: Action,
}

impl Entry {
    /// How the device is shown: its name, else its EUI-64 (formatted on demand, not for every
    /// device of every pass).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.device.to_string())
    }
}

/// The scheduler's decisions for `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub at: Timestamp,
    pub entries: Vec<Entry>,
    /// Air-time share in use after the starts (without the border router's own frames, which
    /// its radio serialises), and the budget.
    pub air_time_used: f64,
    pub air_time_budget: f64,
}

impl Plan {
    pub fn starts(&self) -> impl Iterator<Item = &Start> {
        self.entries.iter().filter_map(|e| match &e.action {
            Action::Start(s) => Some(s),
            _ => None,
        })
    }

    /// The session record to keep once `start` has been started at `now`.
    pub fn session_for(start: &Start, now: Timestamp) -> ActiveSession {
        ActiveSession {
            device: start.device,
            update: start.update.clone(),
            started_at: now,
            expected_end: now.saturating_add(start.estimate.total).unwrap_or(Timestamp::MAX),
            air_time_share: start.estimate.air_time_share,
            gateway_share: start.estimate.gateway_share,
            window_closes: start.must_end_by(),
        }
    }
}

/// A candidate that passed the device-level checks (rules 1–5).
struct Candidate {
    index: usize,
    start: Start,
    hops: u8,
}

/// Decides what starts at `now`. See the module doc for the rules.
pub fn plan(state: &PlanState, topology: &impl Topology, now: Timestamp) -> Plan {
    let busy_devices: HashMap<u64, &ActiveSession> = state.sessions.iter().map(|s| (key(s.device), s)).collect();
    let mut entries: Vec<Entry> = Vec::with_capacity(state.devices.len());
    let mut candidates: Vec<Candidate> = Vec::new();
    let pass = Pass::new(state, now);

    // Parent slots taken by running sessions, per device (a device not in the fleet: 1).
    let mut busy_slots: HashMap<u64, f64> = HashMap::new();
    let mut sleepy_session_on_radio = false;
    for (index, device) in state.devices.iter().enumerate() {
        let action = if let Some(session) = busy_devices.get(&key(device.eui64)) {
            busy_slots.insert(key(device.eui64), slots_taken(state, topology, device));
            sleepy_session_on_radio |= session.gateway_share > 0.0 && device.wake_period_ms.is_some();
            Action::InProgress { update: session.update.clone(), expected_end: session.expected_end }
        } else {
            match check_device(state, topology, &pass, device, now) {
                DeviceCheck::Nothing(reason) => Action::UpToDate { reason },
                DeviceCheck::Wait { update, reasons, retry_at } => Action::Wait { update, reasons, retry_at },
                DeviceCheck::Ready { start, hops } => {
                    candidates.push(Candidate { index, start, hops });
                    // Replaced by the candidate's start or wait below.
                    Action::UpToDate { reason: None }
                }
            }
        };
        entries.push(Entry { device: device.eui64, name: device.name.clone(), group: device.group.clone(), action });
    }

    // Rule 6, in order: urgency, earliest window end (or deadline), fewest hops, then EUI-64.
    candidates.sort_by(|a, b| {
        b.start
            .urgency
            .cmp(&a.start.urgency)
            .then_with(|| a.start.due().cmp(&b.start.due()))
            .then_with(|| a.hops.cmp(&b.hops))
            .then_with(|| a.start.device.0.cmp(&b.start.device.0))
    });
    let pending: HashSet<u64> = candidates.iter().map(|c| key(c.start.device)).collect();
    let mut busy: HashSet<u64> = busy_devices.keys().copied().collect();
    // A fold from +0.0: an empty f64 sum is -0.0, which prints as "-0 %".
    let contending = |share: f64, gateway: f64| (share - gateway.clamp(0.0, share)).max(0.0);
    let mut used: f64 =
        state.sessions.iter().map(|s| contending(s.air_time_share, s.gateway_share)).fold(0.0, |a, b| a + b);
    let mut gateway_used: f64 = state.sessions.iter().map(|s| s.gateway_share.max(0.0)).fold(0.0, |a, b| a + b);
    let mut gateway_sessions = state.sessions.iter().filter(|s| s.gateway_share > 0.0).count();
    // Sessions on the border router's radio that must end inside a window: (device, expected
    // end, window close).
    let mut windowed_on_radio: Vec<(Eui64, Timestamp, Timestamp)> = state
        .sessions
        .iter()
        .filter(|s| s.gateway_share > 0.0)
        .filter_map(|s| Some((s.device, s.expected_end, s.window_closes?)))
        .collect();
    let gateway_capacity = estimate::gateway_capacity(state.pan.block_size, &state.model);
    // Whether a sleepy device shares the border router's radio, or waits for it: then every
    // session is held to MIN_GATEWAY_GAIN, since each one more lengthens its radio-on time.
    let sleepy_on_radio = sleepy_session_on_radio
        || candidates
            .iter()
            .any(|c| c.start.estimate.gateway_share > 0.0 && state.devices[c.index].wake_period_ms.is_some());
    let budget = state.pan.air_time_budget;
    let session_ends: HashMap<u64, Timestamp> =
        state.sessions.iter().map(|s| (key(s.device), s.expected_end)).collect();
    // Sessions and the parent slots they take, per parent, kept up to date as sessions are
    // admitted (counting them per candidate was quadratic in a large fleet).
    let mut busy_under: HashMap<Option<Parent>, ParentLoad> = HashMap::new();
    for d in &busy {
        let load = busy_under.entry(topology.parent(Eui64(d.to_be_bytes()))).or_default();
        load.add(busy_slots.get(d).copied().unwrap_or(1.0));
    }
    let max_slots = f64::from(state.pan.max_concurrent_per_parent);

    for candidate in candidates {
        let device = &state.devices[candidate.index];
        let eui = device.eui64;
        let mut reasons = Vec::new();
        let mut retry_at: Option<Timestamp> = None;
        let wait_for = |d: &Eui64, retry: &mut Option<Timestamp>| {
            if let Some(end) = session_ends.get(&key(*d)) {
                *retry = Some(retry.map_or(*end, |r: Timestamp| r.min(*end)));
            }
        };
        if let Some(router) = topology.ancestors(eui).into_iter().find(|a| busy.contains(&key(*a))) {
            wait_for(&router, &mut retry_at);
            reasons.push(WaitReason::PathBusy { router });
        }
        let subtree = topology.subtree(eui);
        let active_below: Vec<&Eui64> = subtree.iter().filter(|d| busy.contains(&key(**d))).collect();
        if !active_below.is_empty() {
            for d in &active_below {
                wait_for(d, &mut retry_at);
            }
            reasons.push(WaitReason::SubtreeBusy { active: active_below.len() });
        } else {
            let pending_below = subtree.iter().filter(|d| pending.contains(&key(**d))).count();
            if pending_below > 0 {
                reasons.push(WaitReason::SubtreeFirst { pending: pending_below });
            }
        }
        let parent = topology.parent(eui);
        let siblings = busy_under.get(&parent).copied().unwrap_or_default();
        let slots = slots_taken(state, topology, device);
        if slots > 0.0 && siblings.slots + slots > max_slots + 1e-9 {
            reasons.push(WaitReason::ParentLimit {
                parent: parent.map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
                active: siblings.sessions,
                max: state.pan.max_concurrent_per_parent,
            });
        }
        let estimate = &candidate.start.estimate;
        let need = contending(estimate.air_time_share, estimate.gateway_share);
        // A small epsilon so rounding never refuses what exactly fits, nor admits an excess.
        if used + need > budget + 1e-9 {
            reasons.push(WaitReason::AirTimeBudget { used, need, budget });
        }
        let gateway_need = estimate.gateway_share.max(0.0);
        // How much longer its transfer takes while it shares the radio (1: not at all), and
        // how much longer what is left of those already on it takes once it joins.
        let mut stretch = 1.0;
        let mut slower = 1.0;
        if gateway_need > 0.0 && gateway_capacity > 0.0 {
            // Sessions alike: each alone would keep the radio busy their mean share of the time.
            let sharing = gateway_sessions + 1;
            let alone = ((gateway_used + gateway_need) / sharing as f64 / gateway_capacity).min(1.0);
            let busy_with = estimate::gateway_utilisation(sharing, alone);
            let gain = busy_with - estimate::gateway_utilisation(gateway_sessions, alone);
            stretch = estimate::gateway_stretch(sharing, alone);
            // Those already on the radio slow down too, from the stretch of `gateway_sessions`
            // to that of `sharing`. All that is left of each is stretched, reboot included, to be
            // safe.
            if gateway_sessions > 0 {
                slower = stretch / estimate::gateway_stretch(gateway_sessions, alone);
                // Only one that would still end in time: one already expected past its window's
                // end is not held against every newcomer.
                let pushed = windowed_on_radio
                    .iter()
                    .find(|(_, end, closes)| end <= closes && stretched_end(now, *end, slower) > *closes);
                if let Some((device, _, _)) = pushed {
                    reasons.push(WaitReason::WouldDelayRunning { device: *device });
                }
            }
            let min_gain = if sleepy_on_radio { MIN_GATEWAY_GAIN } else { 0.0 };
            if gain <= min_gain * alone {
                let (used, need, capacity) = (gateway_used, gateway_need, gateway_capacity);
                reasons.push(WaitReason::GatewayBusy { used, need, capacity });
            } else if !sleepy_on_radio && gateway_sessions > 0 {
                // Alone, a block takes what the device and its link take; beside others, the
                // radio's queue adds to it.
                let block_s = estimate.transfer.as_secs_f64() / estimate.blocks.max(1) as f64 * stretch;
                if block_s > MAX_SHARED_BLOCK_S {
                    reasons.push(WaitReason::GatewayQueue { block_s, sessions: gateway_sessions });
                }
            }
        }
        // The window-fit check (rule 5) took the session alone; sharing the radio must fit too.
        let shared_total = estimate.total
            + SignedDuration::from_secs_f64(
                estimate.transfer.as_secs_f64() * (stretch - 1.0) * state.model.safety_factor.max(1.0),
            );
        if let (StartBasis::Window, Some(closes)) = (candidate.start.basis, candidate.start.window_closes) {
            if stretch > 1.0 && now.saturating_add(shared_total).unwrap_or(Timestamp::MAX) > closes {
                reasons.push(WaitReason::SharedRadioWouldNotFit {
                    needs_s: shared_total.as_secs(),
                    sessions: gateway_sessions,
                });
            }
        }
        entries[candidate.index].action = if reasons.is_empty() {
            let mut start = candidate.start;
            // Its expected end, as the planner keeps it, counts the sharing.
            start.estimate.transfer = SignedDuration::from_secs_f64(start.estimate.transfer.as_secs_f64() * stretch);
            start.estimate.total = shared_total;
            busy.insert(key(eui));
            busy_under.entry(parent).or_default().add(slots);
            used += need;
            gateway_used += gateway_need;
            gateway_sessions += usize::from(gateway_need > 0.0);
            if gateway_need > 0.0 {
                // Those already on the radio now take longer.
                for (_, end, _) in &mut windowed_on_radio {
                    *end = stretched_end(now, *end, slower);
                }
            }
            if let Some(closes) = start.must_end_by().filter(|_| gateway_need > 0.0) {
                let end = now.saturating_add(start.estimate.total).unwrap_or(Timestamp::MAX);
                windowed_on_radio.push((eui, end, closes));
            }
            Action::Start(start)
        } else {
            let update = candidate.start.update.clone();
            Action::Wait { update, reasons, retry_at }
        };
    }

    Plan { at: now, entries, air_time_used: used, air_time_budget: budget }
}

/// When a session expected to end at `end` ends if what is left of it from `now` takes
/// `slower` times as long.
fn stretched_end(now: Timestamp, end: Timestamp, slower: f64) -> Timestamp {
    let left = end.duration_since(now).max(SignedDuration::ZERO).as_secs_f64();
    now.saturating_add(SignedDuration::from_secs_f64(left * slower)).unwrap_or(Timestamp::MAX)
}

enum DeviceCheck {
    Nothing(Option<WaitReason>),
    Wait { update: String, reasons: Vec<WaitReason>, retry_at: Option<Timestamp> },
    Ready { start: Start, hops: u8 },
}

/// The sessions running under one parent and the parent slots they take.
#[derive(Debug, Clone, Copy, Default)]
struct ParentLoad {
    sessions: usize,
    slots: f64,
}

impl ParentLoad {
    fn add(&mut self, slots: f64) {
        self.sessions += 1;
        self.slots += slots;
    }
}

/// The parent slots a session of `device` takes: [`parent_slots`], except that the border
/// router holds frames only for its sleepy children; its radio bounds its awake children's
/// sessions instead ([`MIN_GATEWAY_GAIN`]).
fn slots_taken(state: &PlanState, topology: &impl Topology, device: &PlanDevice) -> f64 {
    if device.wake_period_ms.is_none() && topology.parent(device.eui64) == Some(Parent::BorderRouter) {
        0.0
    } else {
        parent_slots(state, topology, device)
    }
}

/// How many of its parent's `max_concurrent_per_parent` slots a session of `device` takes.
/// A child that listens all the time takes one. A sleepy child's blocks wait at the parent for
/// its polls, so its session occupies the parent (and the air) for a smaller share of the time:
/// it takes its air-time share over the share the same transfer has awake.
pub fn parent_slots(state: &PlanState, topology: &impl Topology, device: &PlanDevice) -> f64 {
    let Some(ms) = device.wake_period_ms else { return 1.0 };
    let path = estimate::Path {
        image_bytes: u64::from(state.pan.block_size).max(1) * 64,
        block_size: state.pan.block_size,
        hops: topology.hops(device.eui64).unwrap_or(1),
        etx: device.link.map_or(1.0, |l| l.etx),
        wake_period: Some(SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))),
    };
    let asleep = estimate::session(path, &state.model, 1.0).air_time_share;
    let awake = estimate::session(estimate::Path { wake_period: None, ..path }, &state.model, 1.0).air_time_share;
    if awake > 0.0 && asleep.is_finite() {
        (asleep / awake).clamp(0.05, 1.0)
    } else {
        1.0
    }
}

/// An EUI-64 as a big-endian integer: the planner's sets hash it in one step.
fn key(device: Eui64) -> u64 {
    u64::from_be_bytes(device.0)
}

/// What one pass looks up for every device, computed once.
struct Pass<'a> {
    /// Per group, its plan and what its windows say at `now` (the window state depends on the
    /// group and `now` only; time-zone arithmetic per device dominated a pass over a large fleet).
    groups: HashMap<&'a str, (&'a GroupPlan, GroupNow)>,
    /// Per (vendor ID, class ID), the newest update of each component, in component order.
    newest: HashMap<(&'a str, &'a str), Vec<(&'a str, &'a Update)>>,
}

impl<'a> Pass<'a> {
    fn new(state: &'a PlanState, now: Timestamp) -> Pass<'a> {
        let groups =
            state.groups.iter().map(|(name, group)| (name.as_str(), (group, GroupNow::new(group, now)))).collect();
        let mut by_class: HashMap<(&str, &str), BTreeMap<&str, &Update>> = HashMap::new();
        for update in &state.updates {
            let components = by_class.entry((update.vendor_id.as_str(), update.class_id.as_str())).or_default();
            let slot = components.entry(update.component.as_str()).or_insert(update);
            // The first listed wins a tie.
            if update.sequence > slot.sequence {
                *slot = update;
            }
        }
        let newest =
            by_class.into_iter().map(|(class, components)| (class, components.into_iter().collect())).collect();
        Pass { groups, newest }
    }
}

/// The order in which a device's pending updates go: the most urgent, then the oldest, first.
fn goes_first(a: &Update, b: &Update) -> bool {
    b.urgency.cmp(&a.urgency).then(a.available_at.cmp(&b.available_at)).then(a.id.cmp(&b.id)).is_lt()
}

/// What a group's windows say at the plan's `now`.
struct GroupNow {
    zone: Arc<str>,
    /// A window is open, blackouts aside.
    window_open: bool,
    state: WindowState,
    /// When the schedule opens again after the current stretch closes (asked only when a
    /// session would not fit, so computed on first use).
    reopens: std::cell::OnceCell<Option<Timestamp>>,
}

impl GroupNow {
    fn new(group: &GroupPlan, now: Timestamp) -> GroupNow {
        GroupNow {
            zone: group.zone(),
            window_open: group.windows_only.is_open(now),
            state: group.schedule.state(now),
            reopens: std::cell::OnceCell::new(),
        }
    }
}

/// Rules 1–5 for one device.
fn check_device(
    state: &PlanState,
    topology: &impl Topology,
    pass: &Pass<'_>,
    device: &PlanDevice,
    now: Timestamp,
) -> DeviceCheck {
    // Unknown and retired devices get no updates, whatever else is known about them.
    if matches!(device.lifecycle, Lifecycle::Discovered | Lifecycle::Decommissioned) {
        return DeviceCheck::Nothing(Some(WaitReason::NotActive { lifecycle: device.lifecycle }));
    }
    let (Some(vendor), Some(class)) = (&device.vendor_id, &device.class_id) else {
        return DeviceCheck::Nothing(Some(WaitReason::Unknown { fact: Fact::Identity }));
    };
    // Rule 1: per component the device has, the newest matching update.
    let newest = pass.newest.get(&(vendor.as_str(), class.as_str())).map_or(&[][..], Vec::as_slice);
    let mut first: Option<&Update> = None;
    let mut not_newer = None;
    for &(component, update) in newest {
        let Some(&installed) = device.installed.get(component) else { continue };
        if update.sequence <= installed {
            not_newer = Some(WaitReason::NotNewer { sequence: update.sequence, installed });
        } else if first.is_none_or(|f| goes_first(update, f)) {
            // One session per device: the most urgent, then the oldest, first.
            first = Some(update);
        }
    }
    let Some(update) = first else { return DeviceCheck::Nothing(not_newer) };
    let mut reasons = Vec::new();
    let mut retry_at = None;

    // Rule 2.
    if !update.verified {
        reasons.push(WaitReason::NotVerified);
    }
    if update.paused {
        reasons.push(WaitReason::Paused);
    }
    match state.held.get(&(device.eui64, update.id.clone())) {
        Some(Held { attempts, until: None }) => reasons.push(WaitReason::AttemptsSpent { attempts: *attempts }),
        Some(Held { attempts, until: Some(until) }) if *until > now => {
            reasons.push(WaitReason::RetryBackoff { attempts: *attempts, until: *until });
            retry_at = Some(*until);
        }
        _ => {}
    }
    let mode = state.authorities.get(&update.authority).copied().unwrap_or(ApprovalMode::Manual);
    if mode == ApprovalMode::Manual && !update.approved && !update.approved_groups.contains(&device.group) {
        reasons.push(WaitReason::AwaitingApproval { authority: update.authority.clone(), update: update.id.clone() });
    }
    if device.lifecycle != Lifecycle::Active {
        reasons.push(WaitReason::NotActive { lifecycle: device.lifecycle });
    }
    let Some((group, at_now)) = pass.groups.get(device.group.as_str()) else {
        reasons.push(WaitReason::UnknownGroup { group: device.group.clone() });
        return DeviceCheck::Wait { update: update.id.clone(), reasons, retry_at };
    };

    // Rule 3.
    let zone = &at_now.zone;
    let (basis, window_closes, deadline) = rule_when(state, group, at_now, update, now, &mut reasons, &mut retry_at);

    // Rule 4.
    let ready = &group.readiness;
    if !device.mains_powered {
        match device.battery_percent {
            None => reasons.push(WaitReason::Unknown { fact: Fact::Battery }),
            Some(p) if p < ready.min_battery_percent => {
                reasons.push(WaitReason::BatteryLow { percent: p, min: ready.min_battery_percent })
            }
            Some(_) => {}
        }
    }
    match device.free_storage_bytes {
        None => reasons.push(WaitReason::Unknown { fact: Fact::Storage }),
        Some(free) if free < update.image_bytes => {
            reasons.push(WaitReason::StorageLow { free, need: update.image_bytes })
        }
        Some(_) => {}
    }
    match device.link {
        None => reasons.push(WaitReason::Unknown { fact: Fact::Link }),
        Some(link) => {
            if link.rssi_dbm < ready.min_rssi_dbm {
                reasons.push(WaitReason::LinkWeak(LinkProblem::Rssi { dbm: link.rssi_dbm, min: ready.min_rssi_dbm }));
            }
            if link.lqi < ready.min_lqi {
                reasons.push(WaitReason::LinkWeak(LinkProblem::Lqi { lqi: link.lqi, min: ready.min_lqi }));
            }
            if link.etx.is_nan() || link.etx > ready.max_etx {
                reasons.push(WaitReason::LinkWeak(LinkProblem::Etx { etx: link.etx, max: ready.max_etx }));
            }
        }
    }
    let hops = topology.hops(device.eui64);
    if hops.is_none() {
        reasons.push(WaitReason::Unknown { fact: Fact::Route });
    }

    // Rule 5. A device that waits anyway needs the estimate only to tell whether it would fit
    // its window: without a window end to fit, it is not computed.
    let must_fit_window = basis == StartBasis::Window && window_closes.is_some();
    if !(reasons.is_empty() || must_fit_window) {
        return DeviceCheck::Wait { update: update.id.clone(), reasons, retry_at };
    }
    let path = estimate::Path {
        image_bytes: update.image_bytes,
        block_size: state.pan.block_size,
        hops: hops.unwrap_or(1),
        etx: device.link.map_or(1.0, |l| l.etx),
        wake_period: device.wake_period_ms.map(|ms| SignedDuration::from_millis(ms as i64)),
    };
    let estimate = estimate::session(path, &state.model, state.pan.air_time_budget);
    if basis == StartBasis::Window {
        if let Some(closes) = window_closes {
            if now.saturating_add(estimate.total).unwrap_or(Timestamp::MAX) > closes {
                reasons.push(WaitReason::WouldNotFit {
                    needs_s: estimate.total.as_secs(),
                    closes: LocalTime::new(closes, zone, now),
                });
                // Try again when the next stretch opens.
                retry_at = *at_now.reopens.get_or_init(|| group.schedule.next_open(closes));
            }
        }
    }
    if !reasons.is_empty() {
        return DeviceCheck::Wait { update: update.id.clone(), reasons, retry_at };
    }
    let start = Start {
        device: device.eui64,
        update: update.id.clone(),
        urgency: update.urgency,
        basis,
        estimate,
        window_closes: if basis == StartBasis::Window { window_closes } else { None },
        deadline,
    };
    DeviceCheck::Ready { start, hops: hops.unwrap_or(u8::MAX) }
}

/// Rule 3 for `update` in `group` at `now`: pushes why it may not start yet (outside a window,
/// in a blackout) and when to look again; returns on what basis it would start, when its window
/// closes and its deferral deadline.
fn rule_when(
    state: &PlanState,
    group: &GroupPlan,
    at_now: &GroupNow,
    update: &Update,
    now: Timestamp,
    reasons: &mut Vec<WaitReason>,
    retry_at: &mut Option<Timestamp>,
) -> (StartBasis, Option<Timestamp>, Option<Timestamp>) {
    let zone = &at_now.zone;
    let deadline = (update.urgency >= Urgency::Security)
        .then(|| update.available_at.saturating_add(group.max_deferral).unwrap_or(Timestamp::MAX));
    let deadline_due =
        deadline.is_some_and(|d| now >= d.saturating_sub(state.pan.deadline_lead).unwrap_or(Timestamp::MIN));
    let mut basis = StartBasis::Window;
    let mut window_closes = None;
    if deadline_due {
        basis = StartBasis::Deadline;
    } else {
        let window_open = at_now.window_open;
        let state_now = at_now.state;
        let in_blackout = window_open && matches!(state_now, WindowState::Closed { .. });
        let next_open = match state_now {
            WindowState::Open { .. } => None,
            WindowState::Closed { opens } => opens,
        };
        let windows_ok = window_open || group.skip_windows_from.allows(update.urgency);
        let blackouts_ok = !in_blackout || group.skip_blackouts_from.allows(update.urgency);
        if !windows_ok {
            reasons.push(WaitReason::OutsideWindow { opens: next_open.map(|t| LocalTime::new(t, zone, now)) });
            *retry_at = next_open;
        } else if !blackouts_ok {
            reasons.push(WaitReason::Blackout { resumes: next_open.map(|t| LocalTime::new(t, zone, now)) });
            *retry_at = next_open;
        }
        match state_now {
            WindowState::Open { closes } => window_closes = closes,
            WindowState::Closed { .. } => basis = StartBasis::Urgency,
        }
        // The deadline-lead moment is also worth retrying at.
        if let Some(d) = deadline {
            let due = d.saturating_sub(state.pan.deadline_lead).unwrap_or(d);
            if retry_at.is_none_or(|r| due < r) && !reasons.is_empty() {
                *retry_at = Some(due);
            }
        }
    }
    (basis, window_closes, deadline)
}

/// Running sessions whose device may not be taken down now, with why: the group closed since
/// the session started (its window ended, or an owner saved a blackout) and the update's
/// urgency does not let it through. A session that has triggered its device cannot be held
/// back (the device installs on its own); one that has not should wait for the group to open.
pub fn closed_sessions(state: &PlanState, now: Timestamp) -> Vec<(Eui64, WaitReason)> {
    let mut closed = Vec::new();
    for session in &state.sessions {
        let Some(device) = state.devices.iter().find(|d| d.eui64 == session.device) else { continue };
        let Some(update) = state.updates.iter().find(|u| u.id == session.update) else { continue };
        let Some(group) = state.groups.get(&device.group) else { continue };
        let (mut reasons, mut retry_at) = (Vec::new(), None);
        rule_when(state, group, &GroupNow::new(group, now), update, now, &mut reasons, &mut retry_at);
        if let Some(reason) = reasons.into_iter().next() {
            closed.push((session.device, reason));
        }
    }
    closed
}

/// The parent a device hangs under, for display.
pub fn parent_label(topology: &impl Topology, device: Eui64) -> String {
    match topology.parent(device) {
        Some(Parent::BorderRouter) => "border-router".into(),
        Some(Parent::Node(p)) => p.to_string(),
        None => "unknown".into(),
    }
}
