//! Property tests of the planner: random windows (three zones, across DST changes), blackouts
//! and trees; `now` steps forward, started sessions stay active for their estimated duration.
//!
//! Checked at every step: no session starts outside a permitted window unless its deferral
//! deadline is due; no router starts while a node of its subtree (or a node on its own path)
//! is updating; at most N sessions per parent; the air-time budget holds. At the end: every
//! security update started by its deadline.

use std::collections::BTreeMap;

use ferry::config::GroupPolicy;
use ferry::fleet::device::{Eui64, Lifecycle, LinkQuality, Parent};
use ferry::fleet::topology::{InMemoryTopology, Topology};
use ferry::schedule::plan::{
    parent_slots, plan, ActiveSession, ApprovalMode, GroupPlan, PanPolicy, Plan, PlanDevice, PlanState, SkipFrom,
    StartBasis, Update, Urgency,
};
use ferry::schedule::{Blackout, CronWindow, Length, Schedule, Window};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const ZONES: [&str; 3] = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"];
/// Starts a day before a DST change in one of the zones.
const STARTS: [&str; 4] =
    ["2026-03-28T00:00:00Z", "2026-10-24T00:00:00Z", "2026-10-31T00:00:00Z", "2026-10-03T00:00:00Z"];
const DAYS: [&str; 5] = ["Mon-Sun", "Mon-Fri", "Sat,Sun", "Tue", "Sun"];
const STEP: SignedDuration = SignedDuration::from_mins(10);
const SIM: SignedDuration = SignedDuration::from_hours(4 * 24);
const SECURITY: &str = "app@2";
const ROUTINE: &str = "fw@9";

#[derive(Debug, Clone)]
struct Case {
    zone: usize,
    start: usize,
    windows: Vec<(usize, u16, u16, bool)>,
    blackouts: Vec<(u16, u16)>,
    parents: Vec<usize>,
    deferral_h: u16,
    released_h: u16,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..ZONES.len(),
        0..STARTS.len(),
        prop::collection::vec((0..DAYS.len(), 0u16..48, 1u16..10, any::<bool>()), 1..3),
        prop::collection::vec((0u16..96, 1u16..30), 0..3),
        prop::collection::vec(0usize..100, 3..14),
        12u16..72,
        // Released at most 6 h before the start, so every deadline leaves the 6 h lead to act in.
        0u16..6,
    )
        .prop_map(|(zone, start, windows, blackouts, parents, deferral_h, released_h)| Case {
            zone,
            start,
            windows,
            blackouts,
            parents,
            deferral_h,
            released_h,
        })
}

fn eui(i: usize) -> Eui64 {
    Eui64([2, 0, 0, 0, 0, 0, 0, i as u8 + 1])
}

fn window((days, half_hour, length_half_hours, cron): (usize, u16, u16, bool)) -> Window {
    let start = half_hour * 30;
    let len = length_half_hours * 30;
    if cron {
        let expr = format!("{} {} * * *", start % 60, start / 60).parse().expect("cron");
        return Window::Cron(CronWindow::new(expr, Length::from_minutes(i64::from(len))).expect("duration"));
    }
    let end = (start + len) % 1440;
    let text = format!("{} {:02}:{:02}-{:02}:{:02}", DAYS[days], start / 60, start % 60, end / 60, end % 60);
    Window::Weekly(text.parse().expect("weekly span"))
}

struct World {
    state: PlanState,
    topology: InMemoryTopology,
    t0: Timestamp,
    deadline: Timestamp,
}

fn build(case: &Case) -> World {
    let t0: Timestamp = STARTS[case.start].parse().expect("time");
    let tz = TimeZone::get(ZONES[case.zone]).expect("zone");
    let windows: Vec<Window> = case.windows.iter().copied().map(window).collect();
    let hour = SignedDuration::from_hours(1);
    let blackouts = case.blackouts.iter().map(|&(from, len)| {
        let start = t0 + hour * i32::from(from);
        Blackout::new(start, start + hour * i32::from(len)).expect("ordered")
    });
    let policy = GroupPolicy {
        max_deferral: Length::from_minutes(i64::from(case.deferral_h) * 60),
        skip_windows_from: SkipFrom::Never,
        skip_blackouts_from: SkipFrom::Never,
        ..GroupPolicy::default()
    };
    let schedule = Schedule::new(tz, windows, blackouts.collect::<Vec<_>>());
    let group = GroupPlan::new("g", schedule, &policy);

    // Random tree at most three levels deep.
    let mut topology = InMemoryTopology::new();
    let mut depth = Vec::new();
    for (i, &pick) in case.parents.iter().enumerate() {
        let choice = pick % (i + 1);
        let parent = if choice == 0 || depth[choice - 1] >= 3 { None } else { Some(choice - 1) };
        depth.push(parent.map_or(1, |p| depth[p] + 1));
        topology.set_parent(eui(i), parent.map_or(Parent::BorderRouter, |p| Parent::Node(eui(p))));
    }
    let devices = (0..case.parents.len())
        .map(|i| PlanDevice {
            eui64: eui(i),
            name: None,
            group: "g".into(),
            lifecycle: Lifecycle::Active,
            vendor_id: Some("v".into()),
            class_id: Some("c".into()),
            installed: BTreeMap::from([("app".into(), 1), ("fw".into(), 8)]),
            mains_powered: i % 2 == 0,
            battery_percent: Some(80),
            free_storage_bytes: Some(100_000),
            link: Some(LinkQuality { rssi_dbm: -70, lqi: 200, etx: 1.0 + (i % 3) as f64 * 0.3 }),
            wake_period_ms: (i % 2 == 1).then_some(30_000),
        })
        .collect();
    let released = t0 - hour * i32::from(case.released_h);
    let update = |id: &str, component: &str, sequence, urgency| Update {
        id: id.into(),
        authority: "a".into(),
        vendor_id: "v".into(),
        class_id: "c".into(),
        component: component.into(),
        sequence,
        image_bytes: 20_000,
        urgency,
        verified: true,
        approved: false,
        approved_groups: Default::default(),
        paused: false,
        available_at: released,
    };
    let state = PlanState {
        devices,
        updates: vec![update(SECURITY, "app", 2, Urgency::Security), update(ROUTINE, "fw", 9, Urgency::Routine)],
        sessions: Vec::new(),
        groups: BTreeMap::from([("g".to_owned(), group)]),
        authorities: BTreeMap::from([("a".to_owned(), ApprovalMode::Automatic)]),
        pan: PanPolicy::default(),
        held: Default::default(),
        model: Default::default(),
    };
    let deadline = released + hour * i32::from(case.deferral_h);
    World { state, topology, t0, deadline }
}

fn check_step(world: &World, plan: &Plan, now: Timestamp) -> Result<(), TestCaseError> {
    let state = &world.state;
    let group = &state.groups["g"];
    let mut busy: Vec<Eui64> = state.sessions.iter().map(|s| s.device).collect();
    // The budget bounds contention: a one-hop session's responses are the border router's alone.
    let mut air: f64 = state.sessions.iter().map(|s| s.air_time_share - s.gateway_share).sum();
    let starts: Vec<_> = plan.starts().collect();
    busy.extend(starts.iter().map(|s| s.device));
    for start in &starts {
        prop_assert!((0.0..=start.estimate.air_time_share).contains(&start.estimate.gateway_share));
        air += start.estimate.air_time_share - start.estimate.gateway_share;
        match start.basis {
            StartBasis::Window => {
                prop_assert!(group.schedule.is_open(now), "{} started at {now} outside a window", start.update);
                if let Some(closes) = group.schedule.current_close(now) {
                    prop_assert!(now + start.estimate.total <= closes, "does not fit before {closes}");
                }
            }
            StartBasis::Deadline => {
                let due = world.deadline - state.pan.deadline_lead;
                prop_assert!(now >= due, "deadline start at {now} before it was due ({due})");
            }
            StartBasis::Urgency => prop_assert!(false, "no urgency override is configured"),
        }
        for below in world.topology.subtree(start.device) {
            prop_assert!(!busy.contains(&below), "router {} started while {below} updates", start.device);
        }
        for above in world.topology.ancestors(start.device) {
            prop_assert!(!busy.contains(&above), "{} started under updating router {above}", start.device);
        }
    }
    prop_assert!(air <= state.pan.air_time_budget + 1e-9, "air time {air} over budget at {now}");
    let mut per_parent: BTreeMap<String, f64> = BTreeMap::new();
    for d in &busy {
        let parent = world.topology.parent(*d);
        let device = state.devices.iter().find(|x| x.eui64 == *d);
        // The border router's awake children are bounded by its radio, not by slots.
        if parent == Some(Parent::BorderRouter) && device.is_some_and(|x| x.wake_period_ms.is_none()) {
            continue;
        }
        let parent = format!("{parent:?}");
        let slots = device.map_or(1.0, |x| parent_slots(state, &world.topology, x));
        prop_assert!((0.0..=1.0).contains(&slots), "a session takes at most one slot");
        let n = per_parent.entry(parent).or_default();
        *n += slots;
        prop_assert!(
            *n <= f64::from(state.pan.max_concurrent_per_parent) + 1e-9,
            "too many sessions under one parent at {now}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn plans_respect_windows_topology_air_time_and_deadlines(case in case()) {
        let mut world = build(&case);
        let mut started: BTreeMap<([u8; 8], String), Timestamp> = BTreeMap::new();
        let mut now = world.t0;
        while now < world.t0 + SIM {
            // Finished sessions install their update.
            let (done, running): (Vec<ActiveSession>, Vec<ActiveSession>) =
                world.state.sessions.drain(..).partition(|s| s.expected_end <= now);
            world.state.sessions = running;
            for s in done {
                let update = world.state.updates.iter().find(|u| u.id == s.update).expect("known update").clone();
                let device = world.state.devices.iter_mut().find(|d| d.eui64 == s.device).expect("known device");
                device.installed.insert(update.component, update.sequence);
            }
            let plan = plan(&world.state, &world.topology, now);
            check_step(&world, &plan, now)?;
            for start in plan.starts() {
                started.insert((start.device.0, start.update.clone()), now);
                world.state.sessions.push(Plan::session_for(start, now));
            }
            now += STEP;
        }
        prop_assert!(!started.is_empty(), "nothing ever started");
        if world.deadline <= world.t0 + SIM {
            for d in &world.state.devices {
                let at = started.get(&(d.eui64.0, SECURITY.to_owned()));
                prop_assert!(at.is_some_and(|t| *t <= world.deadline),
                    "security update of {} started {:?}, deadline {}", d.eui64, at, world.deadline);
            }
        }
    }
}
