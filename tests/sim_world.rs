//! The world runner: shipped scenarios, virtual-time runs of the building (speed and sane
//! accounting), determinism, sleepy ground truth, indirect frames through a router.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use ferry::sim::device::{RxMeta, Upper};
use ferry::sim::frame::{Address, Header};
use ferry::sim::scenario::{DutyCycle, Role};
use ferry::sim::{NodeId, Scenario, World};

const SEC: u64 = 1_000_000;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sim").join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn world(name: &str) -> World {
    let mut w = World::new(&scenario(name)).unwrap();
    w.configure_gateway();
    w.set_discard_host_output(true);
    w
}

/// Hops from the gateway over links that work both ways.
fn hops(w: &World) -> HashMap<NodeId, usize> {
    let m = w.medium();
    let gw = w.gateway().node();
    let mut dist = HashMap::from([(gw, 0)]);
    let mut queue = VecDeque::from([gw]);
    while let Some(a) = queue.pop_front() {
        for b in (0..m.node_count()).map(NodeId) {
            if !dist.contains_key(&b) && m.link(a, b).is_some() && m.link(b, a).is_some() {
                dist.insert(b, dist[&a] + 1);
                queue.push_back(b);
            }
        }
    }
    dist
}

#[test]
fn shipped_scenarios_have_the_promised_shape() {
    let home = world("home.toml");
    assert_eq!(home.devices().len(), 12);
    let h = hops(&home);
    assert!(home.devices().iter().all(|d| h.get(&d.node()) == Some(&1)), "one hop: {h:?}");
    assert!(home.devices().iter().filter(|d| d.is_sleepy()).count() >= 6);

    let b = world("building.toml");
    assert!((95..=105).contains(&b.devices().len()));
    let h = hops(&b);
    let max = b.devices().iter().map(|d| h.get(&d.node()).copied().unwrap_or(usize::MAX)).max();
    assert_eq!(max, Some(4), "leaves of the last routers are four hops out");
    let m = b.medium();
    let node_of = |name: &str| b.device(name).map(|d| d.node()).unwrap_or(b.gateway().node());
    for d in b.devices().iter().filter(|d| d.params().role == Role::Leaf) {
        let spec = b.scenario().node(&d.params().name).unwrap();
        let parent = node_of(&spec.parent);
        let siblings: Vec<_> = b
            .devices()
            .iter()
            .filter(|o| b.scenario().node(&o.params().name).is_some_and(|s| s.parent == spec.parent))
            .map(|o| o.node())
            .collect();
        let reach: Vec<_> = (0..m.node_count()).map(NodeId).filter(|&o| m.link(d.node(), o).is_some()).collect();
        assert!(reach.contains(&parent), "{} reaches its router", spec.name);
        assert!(
            reach.iter().all(|o| *o == parent || siblings.contains(o)),
            "{} reaches only its router and its siblings: {reach:?}",
            spec.name
        );
    }
}

#[test]
fn ten_minutes_of_the_building_add_up() {
    let mut w = world("building.toml");
    let cpu = Instant::now();
    let duration = 600 * SEC;
    w.run_until(duration);
    let took = cpu.elapsed();
    let r = w.report();
    println!("building.toml: 10 min simulated in {:.3} s wall clock ({} nodes)", took.as_secs_f64(), r.nodes.len());
    assert_eq!(r.duration_us, duration);
    let mut polls = 0;
    for n in &r.nodes {
        assert!(n.radio.radio_on_us <= duration, "{}: radio on longer than the run", n.name);
        assert!(n.radio.air_time_us <= n.radio.radio_on_us, "{}", n.name);
        assert!(n.radio.tx_ok <= n.radio.frames_sent, "{}", n.name);
        let spec = w.scenario().node(&n.name);
        match spec.map(|s| s.duty_cycle) {
            Some(DutyCycle::Sleepy { poll_period_s, drift_ppm, .. }) => {
                let expected = 600.0 / poll_period_s * (1.0 + drift_ppm * 1e-6);
                let wakes = n.mac.wakes as f64;
                assert!((wakes - expected).abs() <= 2.0, "{}: {wakes} wakes, expected ~{expected}", n.name);
                assert!(n.mac.polls_acked as f64 >= 0.9 * wakes, "{}: {:?}", n.name, n.mac);
                // Only the answers to its own solicitations (RA, NA, DIO, DAO-ACK) are queued
                // for it, fetched in the wakes it polls for them.
                let answers = n.mac.polls_frame_pending;
                assert!(answers <= 4 * n.mac.extra_wakes, "{}: {answers} frames pending: {:?}", n.name, n.mac);
                // Each wake: CSMA + poll + ACK + listen window, a few ms. No router answers the
                // node's solicitations (RS, DIS) here: each keeps it polling for its answer wait
                // besides, which is not its duty cycle's.
                let soliciting = n.mac.extra_wakes as f64 * ferry::net::iface::ANSWER_WAIT.as_secs_f64() * 1e6;
                let on = (n.radio.radio_on_us as f64 - soliciting).max(0.0);
                let per_wake = on / wakes.max(1.0);
                assert!(per_wake < 100_000.0, "{}: {per_wake} µs per wake", n.name);
                assert!(100.0 * on / (duration as f64) < 1.0, "{}", n.name);
                // Every Data Request: its wakes' and those it fast-polls with for answers.
                polls += n.mac.polls_acked + n.mac.polls_failed;
            }
            _ => assert_eq!(n.radio.radio_on_us, duration, "{} is always on", n.name),
        }
    }
    let acks: u64 = r.nodes.iter().filter(|n| n.role != "leaf").map(|n| n.radio.acks_sent).sum();
    // Besides the polls, parents ACK what the devices' network stacks send them (RPL DIS
    // while no root answers).
    let stack_frames: u64 = r.nodes.iter().map(|n| n.mac.upper_frames_sent).sum();
    assert!(acks >= polls * 9 / 10 && acks <= polls + stack_frames, "parents ACK the polls: {acks} of {polls}");
}

/// The figure the brief asks for: an hour of the 100-node building.
#[test]
fn an_hour_of_the_building_is_fast() {
    let mut w = world("building.toml");
    let cpu = Instant::now();
    w.run_until(3600 * SEC);
    let took = cpu.elapsed().as_secs_f64();
    let frames: u64 = w.report().nodes.iter().map(|n| n.radio.frames_sent + n.radio.acks_sent).sum();
    println!(
        "building.toml: 1 h simulated in {took:.3} s wall clock, {frames} frames on air ({:.0}× real time)",
        3600.0 / took
    );
    assert!(took < 30.0, "{took} s");
}

#[test]
fn a_seed_is_a_run() {
    let run = |seed| {
        let mut s = scenario("home.toml");
        s.seed = seed;
        let mut w = World::new(&s).unwrap();
        w.configure_gateway();
        w.set_discard_host_output(true);
        w.run_until(300 * SEC);
        (w.report(), w.wakes("motion-living").unwrap())
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).1, run(2).1);
}

#[test]
fn wake_log_is_ground_truth_with_drift_and_jitter() {
    let mut w = world("home.toml");
    w.run_until(600 * SEC);
    // motion-living: 5 s ± 0.1 s of its own clock, which runs 50 ppm slow.
    // The wakes of its duty cycle (no router answers its solicitations in between here).
    let wakes: Vec<_> = w.wakes("motion-living").unwrap().into_iter().filter(|w| w.scheduled).collect();
    assert!(wakes.len() >= 118, "{}", wakes.len());
    let mean = (wakes[wakes.len() - 1].wake_us - wakes[0].wake_us) as f64 / (wakes.len() - 1) as f64;
    let expected = 5.0e6 / (1.0 - 50e-6);
    assert!((mean - expected).abs() < 20_000.0, "mean period {mean} vs {expected}");
    let all = w.wakes("motion-living").unwrap();
    // A wake due while the node polled for an answer comes when that ends: not a gap to judge.
    let soliciting =
        |a: u64, b: u64| all.iter().any(|x| !x.scheduled && x.wake_us > a.saturating_sub(10 * SEC) && x.wake_us < b);
    for pair in wakes.windows(2).filter(|p| !soliciting(p[0].wake_us, p[1].wake_us)) {
        let gap = (pair[1].wake_us - pair[0].wake_us) as f64;
        assert!((gap - expected).abs() <= 0.1e6 + 1_000.0, "gap {gap}");
    }
    assert!(wakes.iter().all(|r| r.poll_acked && r.awake_us > 0 && r.awake_us < 100_000), "{wakes:?}");
}

/// Frames an upper layer received, with their times.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(u64, Vec<u8>)>>>;

/// A test upper layer: sends the frames it is given, counts what it receives.
#[derive(Default)]
struct Script {
    out: Vec<Vec<u8>>,
    got: Received,
}

impl Upper for Script {
    fn on_frame(&mut self, now_us: u64, psdu: &[u8], _meta: &RxMeta) {
        if let Ok(mut g) = self.got.lock() {
            g.push((now_us, psdu.to_vec()));
        }
    }
    fn poll_transmit(&mut self, _now_us: u64) -> Option<Vec<u8>> {
        self.out.pop()
    }
}

#[test]
fn router_holds_frames_for_a_sleepy_child_until_it_polls() {
    let mut w = world("building.toml");
    let child = "r2-3-l5";
    let spec = w.scenario().node(child).unwrap().clone();
    let DutyCycle::Sleepy { poll_period_s, .. } = spec.duty_cycle else { panic!("{child} should be sleepy") };
    let router = spec.parent.clone();
    let router_short = w.scenario().node(&router).unwrap().short;
    // Past its boot's solicitations and their answers (RS, registration, DIS, DAO).
    w.run_until(20 * SEC);
    let (pending_before, sent_before) =
        (w.device(child).unwrap().stats().polls_frame_pending, w.device(&router).unwrap().stats().indirect_sent);
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (d, _) = w.device_mut(child).unwrap();
    d.set_upper(Box::new(Script { out: Vec::new(), got: got.clone() }));
    let frames = (0..2u8)
        .map(|i| {
            Header::data(i, 0xface, Address::Short(spec.short), Address::Short(router_short), true)
                .emit_frame(&[0xab, i])
                .unwrap()
                .as_slice()
                .to_vec()
        })
        .collect();
    let (r, m) = w.device_mut(&router).unwrap();
    r.set_upper(Box::new(Script { out: frames, got: Default::default() }));
    r.poll(m);
    let queued_at = w.now();
    w.run_until(queued_at + ((poll_period_s * 1.1 + 1.0) * 1e6) as u64);
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "both frames arrive in one wake: {got:?}");
    let d = w.device(child).unwrap();
    assert_eq!(d.stats().polls_frame_pending - pending_before, 2, "{:?}", d.stats());
    let wake = d.wakes().find(|r| r.frame_pending && r.wake_us >= queued_at).unwrap();
    assert_eq!(wake.frames_received, 2);
    assert!(got[1].0 - wake.wake_us < 100_000, "delivered in the wake that polled");
    assert_eq!(w.device(&router).unwrap().stats().indirect_sent - sent_before, 2);
    // The queue is empty again: later polls get no Frame Pending.
    w.run_until(w.now() + 3 * (poll_period_s * 1e6) as u64);
    assert_eq!(w.device(child).unwrap().stats().polls_frame_pending - pending_before, 2);
}

#[test]
fn explicit_links_need_no_positions() {
    let text = r#"
seed = 3
[gateway]
eui64 = "f0:0d:00:00:00:00:00:01"

[[node]]
name = "far"
eui64 = "02:00:00:00:00:00:00:02"
short = 2
duty_cycle = { mode = "sleepy", poll_period_s = 1.0, listen_window_ms = 0.0 }

[[link]]
from = "far"
to = "gateway"
prr = 0.5
rssi_dbm = -90
"#;
    let s = Scenario::parse(std::path::Path::new("links.toml"), text).unwrap();
    let mut w = World::new(&s).unwrap();
    w.configure_gateway();
    w.set_discard_host_output(true);
    let (far, gw) = (w.device("far").unwrap().node(), w.gateway().node());
    assert_eq!(w.medium().link(far, gw).map(|l| (l.prr, l.rssi_dbm)), Some((0.5, -90)));
    assert!(w.medium().link(gw, far).is_some(), "both ways by default");
    w.run_until(200 * SEC);
    let st = w.device("far").unwrap().stats();
    // A poll and its ACK each cross a 50 % link: with retries most polls still get through.
    assert!(st.wakes >= 195 && st.polls_failed > 0 && st.polls_acked > st.wakes / 2, "{st:?}");
    let r = w.report();
    let far_row = &r.nodes[1];
    assert!(far_row.radio.retries > 0 && far_row.radio.rx_lost > 0, "{far_row:?}");
    // Listen window 0: radio on only for CSMA, the poll and the ACK wait, ~2-10 ms per wake;
    // no router answers here, so each of its solicitations (RS, DIS) keeps it polling for
    // its answer wait besides.
    let soliciting = far_row.mac.extra_wakes as f64 * ferry::net::iface::ANSWER_WAIT.as_secs_f64() * 1e6;
    let scheduled_pct = 100.0 * (far_row.radio.radio_on_us as f64 - soliciting) / (200 * SEC) as f64;
    assert!(scheduled_pct < 1.5, "{} ({} extra wakes)", far_row.radio_on_pct, far_row.mac.extra_wakes);
}

/// ZEP peers the scenario lists are placed by the EUI-64 they announce: by position through
/// the path-loss model, or by explicit links; unlisted peers get the default link to all.
#[test]
fn external_nodes_are_placed_by_their_eui64() {
    let text = r#"
seed = 3
[gateway]
eui64 = "f0:0d:00:00:00:00:00:01"
position = [0.0, 0.0]
[[node]]
name = "near"
eui64 = "02:00:00:00:00:00:00:02"
short = 2
position = [2.0, 0.0]
[[node]]
name = "far"
eui64 = "02:00:00:00:00:00:00:03"
short = 3
position = [400.0, 0.0]
[[external]]
name = "native-1"
eui64 = "02:00:00:00:00:00:00:99"
position = [3.0, 0.0]
[[external]]
name = "native-2"
eui64 = "02:00:00:00:00:00:00:98"
[[link]]
from = "native-2"
to = "far"
prr = 0.5
rssi_dbm = -90
"#;
    let sc = Scenario::parse(std::path::Path::new("zep.toml"), text).unwrap();
    let mut w = World::new(&sc).unwrap();
    let gw = w.gateway().node();
    let (near, far) = (w.device("near").unwrap().node(), w.device("far").unwrap().node());

    let placed = w.add_external(Some([2, 0, 0, 0, 0, 0, 0, 0x99])).unwrap();
    let to_gw = w.medium().link(placed, gw).expect("3 m from the gateway is in range");
    let to_near = w.medium().link(placed, near).expect("1 m from `near`");
    assert!(to_near.rssi_dbm > to_gw.rssi_dbm, "closer is stronger: {to_near:?} vs {to_gw:?}");
    assert!(w.medium().link(placed, far).is_none() && w.medium().link(far, placed).is_none());

    let linked = w.add_external(Some([2, 0, 0, 0, 0, 0, 0, 0x98])).unwrap();
    let l = w.medium().link(linked, far).expect("its explicit link");
    assert_eq!((l.prr, l.rssi_dbm), (0.5, -90));
    assert!(w.medium().link(far, linked).is_some(), "both ways by default");
    assert!(w.medium().link(linked, gw).is_none(), "no position and no link: out of range");

    let unknown = w.add_external(Some([2, 0, 0, 0, 0, 0, 0, 0x42])).unwrap();
    assert!(w.medium().link(unknown, gw).is_some() && w.medium().link(unknown, far).is_some());
}
