//! One planning pass over a synthetic fleet of 10 000 devices (issue 9's scheduler target:
//! at most 20 ms per pass on this machine).
//!
//! The fleet: 100 routers under the border router, 99 leaves under each, 40 groups spread
//! over three time zones with weekly and cron windows, two updates (a security one and a
//! routine one) for every device, 1 % of the devices already updating, half of them sleepy.
//! The planner sees the same [`PlanState`] ferryd builds from its store.
//!
//! Printed after criterion's own figures, from interleaved rounds in the same process:
//! * `plan`: the full pass (`schedule::plan`), the figure the target is about;
//! * `baseline`: a walk that visits every device once, looks up its group's window state and
//!   its parent, and sorts the result — the least any planner over this fleet must do. The
//!   ratio plan/baseline shows what the planner's rules cost on top.
//!
//! `FERRY_BENCH_SMOKE=1` runs three passes, checks the plan explains every device, and exits
//! (CI runs that so the benchmark cannot rot).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use ferry::config::GroupPolicy;
use ferry::fleet::device::{Eui64, Lifecycle, LinkQuality, Parent};
use ferry::fleet::topology::{InMemoryTopology, Topology};
use ferry::schedule::plan::{
    plan, Action, ActiveSession, ApprovalMode, GroupPlan, PanPolicy, PlanDevice, PlanState, SkipFrom, Update, Urgency,
};
use ferry::schedule::{CronWindow, Length, Schedule, Window};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

const DEVICES: usize = 10_000;
const ROUTERS: usize = 100;
const GROUPS: usize = 40;
const ZONES: [&str; 3] = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"];
const TARGET_MS: f64 = 20.0;

struct Fixture {
    state: PlanState,
    topology: InMemoryTopology,
    now: Timestamp,
}

fn eui(i: usize) -> Eui64 {
    let b = (i as u32).to_be_bytes();
    Eui64([2, 0, 0x5e, 0xed, b[0], b[1], b[2], b[3]])
}

fn group_name(i: usize) -> String {
    format!("flat-{:02}", i % GROUPS)
}

impl Fixture {
    fn new() -> Fixture {
        let now: Timestamp = "2026-10-24T23:30:00Z".parse().expect("timestamp");
        let mut topology = InMemoryTopology::new();
        for i in 0..DEVICES {
            let parent = if i < ROUTERS { Parent::BorderRouter } else { Parent::Node(eui(i % ROUTERS)) };
            topology.set_parent(eui(i), parent);
        }
        let groups = (0..GROUPS)
            .map(|g| {
                let zone = TimeZone::get(ZONES[g % ZONES.len()]).expect("zone");
                let window = if g % 2 == 0 {
                    // Night windows: open at the bench's `now` in some zones, closed in others.
                    Window::Weekly(format!("Mon-Sun {:02}:00-08:00", 18 + g % 6).parse().expect("span"))
                } else {
                    let cron = format!("30 {} * * 1-5", g % 24).parse().expect("cron");
                    Window::Cron(CronWindow::new(cron, Length::from_minutes(180)).expect("length"))
                };
                let policy = GroupPolicy { skip_windows_from: SkipFrom::Never, ..GroupPolicy::default() };
                let name = group_name(g);
                (name.clone(), GroupPlan::new(&name, Schedule::new(zone, vec![window], []), &policy))
            })
            .collect();
        let devices = (0..DEVICES)
            .map(|i| PlanDevice {
                eui64: eui(i),
                name: None,
                group: group_name(i),
                lifecycle: Lifecycle::Active,
                vendor_id: Some("riot-os.org".into()),
                class_id: Some(if i % 3 == 0 { "samr21-xpro" } else { "nrf52840dk" }.into()),
                installed: BTreeMap::from([("os".into(), 20), ("app".into(), 7)]),
                mains_powered: i < ROUTERS || i % 2 == 0,
                battery_percent: Some((20 + i % 80) as u8),
                free_storage_bytes: Some(256 * 1024),
                link: Some(LinkQuality { rssi_dbm: -60 - (i % 35) as i16, lqi: 180, etx: 1.0 + (i % 4) as f64 * 0.2 }),
                wake_period_ms: (i >= ROUTERS && i % 2 == 1).then_some(30_000),
            })
            .collect();
        let update = |id: &str, class: &str, component: &str, sequence, urgency| Update {
            id: id.into(),
            authority: "riot".into(),
            vendor_id: "riot-os.org".into(),
            class_id: class.into(),
            component: component.into(),
            sequence,
            image_bytes: 100_000,
            urgency,
            verified: true,
            approved: false,
            approved_groups: Default::default(),
            paused: false,
            available_at: now - SignedDuration::from_hours(30),
        };
        let updates = vec![
            update("os-samr21@21", "samr21-xpro", "os", 21, Urgency::Security),
            update("os-nrf@21", "nrf52840dk", "os", 21, Urgency::Security),
            update("app-nrf@8", "nrf52840dk", "app", 8, Urgency::Routine),
        ];
        let sessions = (ROUTERS..DEVICES)
            .step_by(100)
            .map(|i| ActiveSession {
                device: eui(i),
                update: "app-nrf@8".into(),
                started_at: now - SignedDuration::from_mins(5),
                expected_end: now + SignedDuration::from_mins(10),
                air_time_share: 0.002,
                gateway_share: 0.0,
                window_closes: None,
            })
            .collect();
        let state = PlanState {
            devices,
            updates,
            sessions,
            groups,
            authorities: BTreeMap::from([("riot".to_owned(), ApprovalMode::Automatic)]),
            pan: PanPolicy::default(),
            held: Default::default(),
            model: Default::default(),
        };
        Fixture { state, topology, now }
    }

    fn plan_pass(&self) -> usize {
        plan(&self.state, &self.topology, self.now).entries.len()
    }

    /// Visit each device, read its group's window state and its parent, sort by both.
    fn baseline_pass(&self) -> usize {
        let open: BTreeMap<&str, bool> =
            self.state.groups.iter().map(|(name, g)| (name.as_str(), g.schedule.is_open(self.now))).collect();
        let mut rows: Vec<(bool, usize, Eui64)> = self
            .state
            .devices
            .iter()
            .map(|d| {
                let is_open = open.get(d.group.as_str()).copied().unwrap_or(false);
                let hops = self.topology.ancestors(d.eui64).len();
                (is_open, hops, d.eui64)
            })
            .collect();
        rows.sort_by(|a, b| (b.0, a.1, a.2 .0).cmp(&(a.0, b.1, b.2 .0)));
        rows.len()
    }
}

/// How many devices get each decision (first reason for waits), so the bench shows it plans
/// a realistic mix rather than a fleet where every device waits for the same thing.
fn summary(f: &Fixture) -> String {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for entry in plan(&f.state, &f.topology, f.now).entries {
        let key = match &entry.action {
            Action::Start(_) => "start",
            Action::InProgress { .. } => "in-progress",
            Action::UpToDate { .. } => "up-to-date",
            Action::Wait { reasons, .. } => reasons.first().map_or("wait", |r| r.code()),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let f = Fixture::new();
    let entries = f.plan_pass();
    assert_eq!(entries, DEVICES, "the plan must explain every device");

    println!("the plan at {}: {}", f.now, summary(&f));
    if std::env::var_os("FERRY_BENCH_SMOKE").is_some() {
        for _ in 0..3 {
            black_box(f.plan_pass());
        }
        println!("plan smoke: {entries} devices explained");
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("plan_10k_devices", |b| b.iter(|| black_box(f.plan_pass())));
    c.bench_function("baseline_walk_10k_devices", |b| b.iter(|| black_box(f.baseline_pass())));

    let (mut plan_ms, mut base_ms) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let t = Instant::now();
        black_box(f.plan_pass());
        plan_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        black_box(f.baseline_pass());
        base_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (p, b) = (median(&mut plan_ms), median(&mut base_ms));
    let starts = plan(&f.state, &f.topology, f.now).starts().count();
    println!("\nscheduler, one pass over {DEVICES} devices ({starts} starts), median of 30 interleaved rounds:");
    println!("  plan      {p:8.2} ms   {:.2} of the {TARGET_MS} ms target", p / TARGET_MS);
    println!("  baseline  {b:8.2} ms   plan/baseline = {:.1}", p / b);
}
