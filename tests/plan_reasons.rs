//! The planner's reasons on small hand-made fleets, and how they read.

use std::collections::BTreeMap;

use ferry::config::GroupPolicy;
use ferry::fleet::device::{Eui64, Lifecycle, LinkQuality, Parent};
use ferry::fleet::topology::InMemoryTopology;
use ferry::schedule::plan::{
    closed_sessions, parent_slots, plan, Action, ActiveSession, ApprovalMode, GroupPlan, Held, PlanDevice, PlanState,
    StartBasis, Update, Urgency, WaitReason,
};
use ferry::schedule::{Blackout, Length, Schedule, Window};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

fn e(n: u8) -> Eui64 {
    Eui64([2, 0, 0, 0, 0, 0, 0, n])
}

fn device(n: u8) -> PlanDevice {
    PlanDevice {
        eui64: e(n),
        name: Some(format!("d{n}")),
        group: "g".into(),
        lifecycle: Lifecycle::Active,
        vendor_id: Some("v".into()),
        class_id: Some("c".into()),
        installed: BTreeMap::from([("app".into(), 4)]),
        mains_powered: true,
        battery_percent: None,
        free_storage_bytes: Some(500_000),
        link: Some(LinkQuality { rssi_dbm: -60, lqi: 230, etx: 1.0 }),
        wake_period_ms: None,
    }
}

fn update(sequence: u64, urgency: Urgency, image_bytes: u64) -> Update {
    Update {
        id: format!("app@{sequence}"),
        authority: "riot".into(),
        vendor_id: "v".into(),
        class_id: "c".into(),
        component: "app".into(),
        sequence,
        image_bytes,
        urgency,
        verified: true,
        approved: false,
        approved_groups: Default::default(),
        paused: false,
        available_at: "2026-11-20T00:00:00Z".parse().unwrap(),
    }
}

fn state(windows: &[&str], blackouts: Vec<Blackout>, devices: Vec<PlanDevice>, updates: Vec<Update>) -> PlanState {
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let windows: Vec<Window> = windows.iter().map(|w| Window::Weekly(w.parse().unwrap())).collect();
    let policy = GroupPolicy { max_deferral: Length::from_minutes(30 * 24 * 60), ..GroupPolicy::default() };
    let group = GroupPlan::new("g", Schedule::new(tz, windows, blackouts), &policy);
    PlanState {
        devices,
        updates,
        sessions: Vec::new(),
        groups: BTreeMap::from([("g".to_owned(), group)]),
        authorities: BTreeMap::from([("riot".to_owned(), ApprovalMode::Automatic)]),
        pan: Default::default(),
        held: Default::default(),
        model: Default::default(),
    }
}

fn reasons(action: &Action) -> Vec<String> {
    match action {
        Action::Wait { reasons, .. } => reasons.iter().map(|r| r.to_string()).collect(),
        other => panic!("expected a wait, got {other:?}"),
    }
}

/// Monday 2026-11-23 12:00 in Berlin.
fn monday_noon() -> Timestamp {
    "2026-11-23T11:00:00Z".parse().unwrap()
}

#[test]
fn outside_window_names_the_local_opening() {
    let s = state(&["Tue 02:00-05:00"], vec![], vec![device(1)], vec![update(5, Urgency::Routine, 10_000)]);
    let topo = InMemoryTopology::from_parents([(e(1), Parent::BorderRouter)]);
    let p = plan(&s, &topo, monday_noon());
    assert_eq!(reasons(&p.entries[0].action), vec!["outside window until Tue 02:00 Europe/Berlin"]);
}

#[test]
fn a_session_that_would_not_fit_waits_and_critical_skips_windows() {
    // 12:00-12:01: too short for a 200 kB image.
    let s = state(&["Mon 12:00-12:01"], vec![], vec![device(1)], vec![update(5, Urgency::Routine, 200_000)]);
    let topo = InMemoryTopology::from_parents([(e(1), Parent::BorderRouter)]);
    let p = plan(&s, &topo, monday_noon());
    let text = reasons(&p.entries[0].action).join("; ");
    assert!(text.starts_with("needs ~") && text.ends_with("window closes Mon 12:01 Europe/Berlin"), "{text}");
    // Critical updates skip windows by default.
    let s = state(&["Tue 02:00-05:00"], vec![], vec![device(1)], vec![update(5, Urgency::Critical, 10_000)]);
    let p = plan(&s, &topo, monday_noon());
    assert!(matches!(&p.entries[0].action, Action::Start(st) if st.basis == StartBasis::Urgency));
}

#[test]
fn not_newer_and_blackouts() {
    let s = state(&["Mon-Sun 00:00-24:00"], vec![], vec![device(1)], vec![update(4, Urgency::Routine, 10_000)]);
    let topo = InMemoryTopology::from_parents([(e(1), Parent::BorderRouter)]);
    let p = plan(&s, &topo, monday_noon());
    match &p.entries[0].action {
        Action::UpToDate { reason: Some(r) } => assert_eq!(r.to_string(), "sequence 4 not higher than installed 4"),
        other => panic!("{other:?}"),
    }
    let start = monday_noon() - SignedDuration::from_hours(1);
    let blackout = Blackout::new(start, start + SignedDuration::from_hours(24)).unwrap();
    let s = state(&["Mon-Sun 00:00-24:00"], vec![blackout], vec![device(1)], vec![update(5, Urgency::Security, 1)]);
    let p = plan(&s, &topo, monday_noon());
    assert_eq!(reasons(&p.entries[0].action), vec!["blackout; installs resume Tue 11:00 Europe/Berlin"]);
}

#[test]
fn routers_wait_for_their_subtree_and_children_for_their_router() {
    let devices = vec![device(1), device(2), device(3), device(4), device(5)];
    let mut s = state(&["Mon-Sun 00:00-24:00"], vec![], devices, vec![update(5, Urgency::Routine, 10_000)]);
    let topo = InMemoryTopology::from_parents([
        (e(1), Parent::BorderRouter),
        (e(2), Parent::Node(e(1))),
        (e(3), Parent::Node(e(1))),
        (e(4), Parent::Node(e(1))),
        (e(5), Parent::BorderRouter),
    ]);
    let now = monday_noon();
    let end = now + SignedDuration::from_mins(20);
    for n in [2, 3, 4] {
        s.sessions.push(ActiveSession {
            device: e(n),
            update: "app@5".into(),
            started_at: now,
            expected_end: end,
            air_time_share: 0.05,
            gateway_share: 0.0,
            window_closes: None,
        });
    }
    let p = plan(&s, &topo, now);
    let router = p.entries.iter().find(|x| x.device == e(1)).unwrap();
    assert_eq!(reasons(&router.action), vec!["router: 3 children still updating"]);
    match &router.action {
        Action::Wait { retry_at, .. } => assert_eq!(*retry_at, Some(end)),
        _ => unreachable!(),
    }
    // The other root child is free, within the budget (0.15 + its share ≤ 0.6).
    assert!(matches!(p.entries.iter().find(|x| x.device == e(5)).unwrap().action, Action::Start(_)));

    // A child of a router that is updating waits for it.
    s.sessions = vec![ActiveSession {
        device: e(1),
        update: "app@5".into(),
        started_at: now,
        expected_end: end,
        air_time_share: 0.05,
        gateway_share: 0.0,
        window_closes: None,
    }];
    let p = plan(&s, &topo, now);
    let child = p.entries.iter().find(|x| x.device == e(2)).unwrap();
    assert_eq!(reasons(&child.action)[0], "router 02:00:00:00:00:00:00:01 on its path is updating");
}

#[test]
fn battery_approval_and_codes() {
    let mut d = device(1);
    d.mains_powered = false;
    d.battery_percent = Some(12);
    let mut s = state(&["Mon-Sun 00:00-24:00"], vec![], vec![d], vec![update(5, Urgency::Routine, 10_000)]);
    s.authorities.insert("riot".into(), ApprovalMode::Manual);
    let topo = InMemoryTopology::from_parents([(e(1), Parent::BorderRouter)]);
    let p = plan(&s, &topo, monday_noon());
    assert_eq!(
        reasons(&p.entries[0].action),
        vec!["awaiting approval (authority riot: ferry update approve app@5)", "battery 12 % < 30 %"]
    );
    let codes: Vec<&str> = match &p.entries[0].action {
        Action::Wait { reasons, .. } => reasons.iter().map(WaitReason::code).collect(),
        _ => unreachable!(),
    };
    assert_eq!(codes, ["awaiting-approval", "battery-low"]);
}

#[test]
fn sessions_whose_group_closed_since_they_started_are_named() {
    let now = monday_noon();
    let hour = SignedDuration::from_hours(1);
    let blackout = Blackout::new(now - hour, now + hour).unwrap();
    let session = |n: u8, update: &str| ActiveSession {
        device: e(n),
        update: update.into(),
        started_at: now - SignedDuration::from_mins(5),
        expected_end: now + SignedDuration::from_mins(5),
        air_time_share: 0.1,
        gateway_share: 0.0,
        window_closes: None,
    };
    let updates = vec![update(5, Urgency::Routine, 1000), update(6, Urgency::Critical, 1000)];
    let mut s = state(&["Mon-Sun 00:00-24:00"], vec![blackout], vec![device(1), device(2)], updates);
    // A routine update waits out the blackout; a critical one may not skip blackouts either
    // (skip_blackouts_from is `never` by default).
    s.sessions = vec![session(1, "app@5"), session(2, "app@6")];
    let closed = closed_sessions(&s, now);
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(matches!(closed[0], (d, WaitReason::Blackout { .. }) if d == e(1)), "{closed:?}");
    // Once the blackout ends, nothing is held.
    assert!(closed_sessions(&s, now + hour).is_empty());
    // Outside the windows, only what may not skip windows is held: critical skips by default.
    let mut s = state(&["Mon-Sun 01:00-02:00"], vec![], vec![device(1), device(2)], s.updates.clone());
    s.sessions = vec![session(1, "app@5"), session(2, "app@6")];
    let closed = closed_sessions(&s, now);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(matches!(closed[0], (d, WaitReason::OutsideWindow { .. }) if d == e(1)), "{closed:?}");
}

#[test]
fn the_retry_policy_holds_an_update_back_from_a_device() {
    let mut s = state(
        &["Mon-Sun 00:00-24:00"],
        vec![],
        vec![device(1), device(2), device(3)],
        vec![update(5, Urgency::Routine, 10_000)],
    );
    let now = monday_noon();
    let id = s.updates[0].id.clone();
    s.held.insert((e(1), id.clone()), Held { attempts: 2, until: None });
    s.held.insert((e(2), id.clone()), Held { attempts: 1, until: Some(now + SignedDuration::from_mins(5)) });
    s.held.insert((e(3), id), Held { attempts: 1, until: Some(now - SignedDuration::from_mins(5)) });
    let topo = InMemoryTopology::from_parents((1..=3).map(|n| (e(n), Parent::BorderRouter)));
    let p = plan(&s, &topo, now);
    let action = |n: u8| &p.entries.iter().find(|en| en.device == e(n)).expect("entry").action;
    assert_eq!(
        reasons(action(1)),
        ["gave up after 2 failed attempt(s) (max_attempts: the group's policy, else [delivery])"]
    );
    assert_eq!(reasons(action(2)), ["1 failed attempt(s); next try at 2026-11-23T11:05:00Z"]);
    assert!(matches!(action(3), Action::Start(_)), "the backoff passed: {:?}", action(3));
}

#[test]
fn sleepy_children_take_less_of_their_parents_slots() {
    // A star: every device hangs under the border router (2 slots per parent by default).
    let star_of = |count: u8, wake_period_ms: Option<u64>| {
        let devices: Vec<PlanDevice> = (1..=count)
            .map(|n| PlanDevice {
                mains_powered: wake_period_ms.is_none(),
                battery_percent: Some(90),
                wake_period_ms,
                ..device(n)
            })
            .collect();
        let topo = InMemoryTopology::from_parents(devices.iter().map(|d| (d.eui64, Parent::BorderRouter)));
        (state(&["Mon-Sun 00:00-24:00"], vec![], devices, vec![update(5, Urgency::Routine, 50_000)]), topo)
    };
    let star = |wake_period_ms: Option<u64>| star_of(6, wake_period_ms);
    // Awake children take none of the border router's slots: its radio bounds them. At 64-byte
    // blocks one session keeps it busy ~26 % of the time, and each of six still adds to what
    // it sends.
    let (awake, topo) = star(None);
    assert_eq!(plan(&awake, &topo, monday_noon()).starts().count(), 6);
    // At 1024-byte blocks one session alone keeps it busy ~60 % of the time. An always-on
    // device's radio is on anyway, on mains or on a battery: sessions that take longer side by
    // side cost it nothing, so all six start.
    let mut big = awake.clone();
    big.pan.block_size = 1024;
    assert_eq!(plan(&big, &topo, monday_noon()).starts().count(), 6);
    let mut on_batteries = big.clone();
    on_batteries.devices.iter_mut().for_each(|d| d.mains_powered = false);
    assert_eq!(plan(&on_batteries, &topo, monday_noon()).starts().count(), 6);
    // One sleepy device among them, and all are held: each more session would keep its radio
    // on longer. A fourth would mostly wait for the other three.
    let mut mixed = big.clone();
    mixed.devices[5].wake_period_ms = Some(2_000);
    mixed.devices[5].mains_powered = false;
    let p = plan(&mixed, &topo, monday_noon());
    assert_eq!(p.starts().count(), 3, "{:#?}", p.entries);
    let waiting = p.entries.iter().find(|e| matches!(e.action, Action::Wait { .. })).expect("a wait");
    assert!(
        reasons(&waiting.action).iter().any(|r| r.starts_with("border router's radio: ") && r.contains("mostly wait")),
        "{:?}",
        reasons(&waiting.action)
    );
    // Always-on, but forty of them: beyond a point each block would take longer than a
    // device waits before it asks again.
    let (mut crowd, crowd_topo) = star_of(40, None);
    crowd.pan.block_size = 1024;
    let p = plan(&crowd, &crowd_topo, monday_noon());
    let started = p.starts().count();
    assert!(started > 6 && started < 40, "{started}");
    let waiting = p.entries.iter().find(|e| matches!(e.action, Action::Wait { .. })).expect("a wait");
    assert!(
        reasons(&waiting.action)
            .iter()
            .any(|r| r.contains("each block would take") && r.contains("half the devices' CoAP ACK timeout")),
        "{:?}",
        reasons(&waiting.action)
    );
    // Sessions that share the radio take longer than alone: 600 kB fits a three-minute window
    // alone and beside one other session, not beside two. Started together, the second would
    // also slow the first past the window's end, so one starts.
    let mut tight = big.clone();
    tight.groups = state(&["Mon-Sun 12:00-12:03"], vec![], vec![], vec![]).groups;
    tight.updates = vec![update(5, Urgency::Routine, 600_000)];
    tight.devices.iter_mut().for_each(|d| d.free_storage_bytes = Some(1_000_000));
    let now = monday_noon();
    let p = plan(&tight, &topo, now);
    assert_eq!(p.starts().count(), 1, "{:#?}", p.entries);
    let alone = p.starts().next().expect("a start").clone();
    let waiting = p.entries.iter().find(|e| matches!(e.action, Action::Wait { .. })).expect("a wait");
    assert!(
        reasons(&waiting.action).iter().any(|r| r.starts_with("joining the border router's radio would slow")),
        "{:?}",
        reasons(&waiting.action)
    );
    // Beside sessions held to no window (started on a deadline), the candidate's own window
    // decides: it fits beside one, not beside two.
    let resumed = |n: u8| ActiveSession {
        device: e(n),
        window_closes: None,
        expected_end: now + SignedDuration::from_secs(60),
        ..ferry::schedule::plan::Plan::session_for(&alone, now)
    };
    tight.sessions = vec![resumed(1)];
    let p = plan(&tight, &topo, now);
    assert_eq!(p.starts().count(), 1, "{:#?}", p.entries);
    // The planner keeps the shared session's longer expected end.
    let shared = p.starts().next().expect("a start");
    assert!(shared.estimate.total > alone.estimate.total, "{:?} {:?}", shared.estimate, alone.estimate);
    let waiting = p.entries.iter().find(|e| matches!(e.action, Action::Wait { .. })).expect("a wait");
    assert!(
        reasons(&waiting.action).iter().any(|r| r.starts_with("sharing the border router's radio with 2 sessions")),
        "{:?}",
        reasons(&waiting.action)
    );

    // An RCP that takes one frame at a time: every session also waits for the UART, never more.
    mixed.model.rcp_tx_window = 1;
    assert!(plan(&mixed, &topo, monday_noon()).starts().count() <= 3);

    // A child polling every 2 s gets its blocks at its fast polls: its session holds the parent
    // for less of the time, so more of them run at once (within the air-time budget).
    let (sleepy, topo) = star(Some(2_000));
    let slots = parent_slots(&sleepy, &topo, &sleepy.devices[0]);
    assert!(slots > 0.2 && slots < 0.8, "{slots}");
    let p = plan(&sleepy, &topo, monday_noon());
    let started = p.starts().count();
    assert!(started > 2, "{started} sleepy sessions started");
    assert!(started as f64 * slots <= 2.0 + 1e-9, "{started} × {slots} slots");
    assert!(p.air_time_used <= p.air_time_budget + 1e-9);
}

#[test]
fn a_session_joining_the_radio_keeps_running_ones_inside_their_windows() {
    // Two mains-powered devices one hop away, 1024-byte blocks, 600 kB, a three-minute window:
    // each fits it alone and beside one other session.
    let devices: Vec<PlanDevice> =
        (1..=2).map(|n| PlanDevice { free_storage_bytes: Some(1_000_000), ..device(n) }).collect();
    let topo = InMemoryTopology::from_parents(devices.iter().map(|d| (d.eui64, Parent::BorderRouter)));
    let mut s = state(&["Mon-Sun 12:00-12:03"], vec![], devices, vec![update(5, Urgency::Routine, 600_000)]);
    s.pan.block_size = 1024;
    let now = monday_noon();
    let closes = now + SignedDuration::from_mins(3);
    // Device 1's session, as the planner starts it alone.
    let mut alone = s.clone();
    alone.devices.truncate(1);
    let p = plan(&alone, &topo, now);
    let first = p.starts().next().expect("device 1 starts alone");
    let running = ferry::schedule::plan::Plan::session_for(first, now);
    assert_eq!(running.window_closes, Some(closes));
    assert!(running.gateway_share > 0.0);

    // Far from its window's end, device 2 joins it.
    s.sessions = vec![ActiveSession { expected_end: now + SignedDuration::from_secs(60), ..running.clone() }];
    let p = plan(&s, &topo, now);
    assert_eq!(p.starts().map(|s| s.device).collect::<Vec<_>>(), [e(2)]);

    // 30 s before it, device 1 would finish 2.5 min on: sharing the radio would slow it past
    // the end, so device 2 waits.
    s.sessions = vec![ActiveSession { expected_end: closes - SignedDuration::from_secs(30), ..running.clone() }];
    let p = plan(&s, &topo, now);
    assert_eq!(p.starts().count(), 0);
    let waiting = p.entries.iter().find(|x| x.device == e(2)).expect("device 2");
    assert_eq!(
        reasons(&waiting.action),
        ["joining the border router's radio would slow 02:00:00:00:00:00:00:01's session past its window's end"]
    );
    let codes: Vec<&str> = match &waiting.action {
        Action::Wait { reasons, .. } => reasons.iter().map(WaitReason::code).collect(),
        _ => unreachable!(),
    };
    assert_eq!(codes, ["would-delay-running"]);

    // One already expected past its window's end is not held against every newcomer.
    s.sessions = vec![ActiveSession { expected_end: closes + SignedDuration::from_secs(10), ..running.clone() }];
    assert_eq!(plan(&s, &topo, now).starts().count(), 1);

    // A session held to no window (started on a deadline, outside any window) is not.
    s.sessions =
        vec![ActiveSession { expected_end: closes - SignedDuration::from_secs(30), window_closes: None, ..running }];
    assert_eq!(plan(&s, &topo, now).starts().count(), 1);
}
