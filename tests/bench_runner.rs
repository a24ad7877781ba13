//! `ferry bench` end to end in virtual time: the built-in smoke scenario (three RIOT nodes, a
//! 4 kB image) run as ferry, sequential and trigger-all, every row checked against ground truth
//! and the bound; the same seed gives the same figures.

use std::path::Path;

use ferry::sim::bench::{self, Options, Strategy};
use ferry::sim::Scenario;

fn smoke() -> Scenario {
    Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sim/bench-smoke.toml")).unwrap()
}

#[test]
fn every_strategy_updates_every_device_within_the_bound() {
    let b = bench::run(&smoke(), &Options::default()).unwrap();
    b.check().unwrap();
    let strategies: Vec<Strategy> = b.rows.iter().map(|r| r.strategy).collect();
    assert_eq!(strategies, Strategy::ALL);
    assert!(b.bound.bound_s >= b.bound.device_s && b.bound.bound_s >= b.bound.channel_s, "{:?}", b.bound);
    for r in &b.rows {
        assert_eq!((r.devices, r.updated, r.failed), (3, 3, 0), "{r:?}");
        assert!(r.makespan_s >= r.bound_s, "{r:?}");
        // Three 4 kB images were delivered in the makespan.
        let kb_s = 3.0 * 4.096 / r.makespan_s;
        assert!((r.goodput_kb_s - kb_s).abs() < 1e-9, "{r:?}");
        assert!(r.per_device_goodput_kb_s > 0.0 && r.channel_utilisation > 0.0 && r.channel_utilisation < 1.0);
        assert!(r.radio_on_max_s >= r.radio_on_mean_s - 1e-9 && r.radio_on_mean_s > 0.0, "{r:?}");
        // Every update in order, the last one ending the makespan; retries never go back.
        assert_eq!(r.updates_s.len(), 3, "{r:?}");
        assert!(r.updates_s.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
        assert!((r.updates_s[2] - r.makespan_s).abs() < 1e-9, "{r:?}");
        assert!(r.retries_by_update.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
        assert!(r.retries_by_update[2] <= r.mac_retries, "{r:?}");
        assert_eq!(r.at_update(3), Some((r.updates_s[2], r.retries_by_update[2])));
        assert_eq!(r.at_update(0), None);
    }
    let row = |s: Strategy| b.rows.iter().find(|r| r.strategy == s).unwrap();
    // One at a time, each device waits for the ones before it: at least three devices' worth
    // of the slowest device's own serial path.
    let sequential = row(Strategy::Sequential);
    assert!(sequential.makespan_s >= b.bound.device_s, "{sequential:?}");
    // All at once, the devices contend: more CCA failures than one at a time.
    assert!(row(Strategy::TriggerAll).cca_failures >= sequential.cca_failures);
}

#[test]
fn same_seed_same_figures_and_the_block_size_option_applies() {
    let opts =
        Options { strategies: vec![Strategy::Sequential], block_size: Some(64), csma_backoffs: None, seed: Some(9) };
    let a = bench::run(&smoke(), &opts).unwrap();
    let mut b = bench::run(&smoke(), &opts).unwrap();
    assert_eq!(a.block_sizes, vec![64]);
    assert_eq!(a.seed, 9);
    b.rows[0].wall_ms = a.rows[0].wall_ms;
    assert_eq!(a, b);
    // 64-byte blocks take longer than the scenario's 256-byte ones.
    let big = bench::run(&smoke(), &Options { block_size: None, ..opts }).unwrap();
    assert!(a.rows[0].makespan_s > big.rows[0].makespan_s, "{:?} vs {:?}", a.rows[0], big.rows[0]);
    assert!(a.bound.channel_s > big.bound.channel_s);
}

#[test]
fn devices_that_give_up_on_a_busy_channel_sooner_drop_more_frames() {
    // All at once, the smoke PAN is busy: a device that drops a frame at its first busy CCA
    // (macMaxCSMABackoffs 0) loses more than one that tries five more times.
    let run = |nb| {
        let opts = Options {
            strategies: vec![Strategy::TriggerAll],
            block_size: None,
            csma_backoffs: Some(nb),
            seed: Some(5),
        };
        bench::run(&smoke(), &opts).unwrap().rows.remove(0)
    };
    let (eager, patient) = (run(0), run(5));
    assert!(
        eager.device_channel_access_failures > patient.device_channel_access_failures,
        "{} vs {}",
        eager.device_channel_access_failures,
        patient.device_channel_access_failures
    );
    let all = bench::run(&smoke(), &Options::default()).unwrap();
    let table = bench::table(&all);
    assert!(table.contains("dropped at channel access"), "{table}");
    // ferry's engine measures each device's wait before its next block.
    let ferry = all.rows.iter().find(|r| r.strategy == Strategy::Ferry).unwrap();
    assert!(ferry.block_waits > 0 && ferry.long_block_waits <= ferry.block_waits, "{ferry:?}");
    assert!(table.contains("ferry block requests 2 s or more after the previous block"), "{table}");
}

/// A router with one leaf behind it (no link from the leaf to the gateway).
const TWO_HOPS: &str = r#"
seed = 4
[bench]
image_bytes = 2048
limit_s = 600.0
[gateway]
eui64 = "f0:0d:be:4c:00:00:00:01"
[[node]]
name = "router"
eui64 = "02:00:be:4c:00:00:02:01"
short = 0x0201
role = "router"
board = { vendor = "riot-os.org", class = "nrf52840dk" }
firmware = { sequence = 3 }
coap_block_size = 128
[[node]]
name = "leaf"
eui64 = "02:00:be:4c:00:00:02:02"
short = 0x0202
parent = "router"
board = { vendor = "riot-os.org", class = "nrf52840dk" }
firmware = { sequence = 3 }
coap_block_size = 128
[[link]]
from = "router"
to = "gateway"
prr = 1.0
rssi_dbm = -60
[[link]]
from = "leaf"
to = "router"
prr = 1.0
rssi_dbm = -60
"#;

#[test]
fn a_device_behind_a_router_is_updated_by_every_strategy() {
    let scenario = Scenario::parse(Path::new("two-hops.toml"), TWO_HOPS).unwrap();
    let b = bench::run(&scenario, &Options::default()).unwrap();
    b.check().unwrap();
    // The leaf's serial path crosses both hops: the bound's device part is above the
    // router's alone.
    assert!(b.bound.device_s > 0.0 && b.rows.iter().all(|r| r.makespan_s >= b.bound.bound_s), "{b:?}");
    let ferry = b.rows.iter().find(|r| r.strategy == Strategy::Ferry).unwrap();
    // Leaves before routers: the planner never runs the two at once.
    assert!(ferry.phases.get("queued").copied().unwrap_or(0.0) > 0.0, "{ferry:?}");
}

#[test]
fn an_rcp_that_holds_the_next_frame_makes_fragmented_blocks_faster() {
    // 1024-byte blocks are nine frames each: with ferry's RCP each one after the first crosses
    // the UART while the one before it is on air; with ot-rcp each waits for the last TX-done.
    let opts =
        Options { strategies: vec![Strategy::Sequential], block_size: Some(1024), csma_backoffs: None, seed: Some(3) };
    let ferry_rcp = bench::run(&smoke(), &opts).unwrap();
    let mut stock = smoke();
    stock.gateway.rcp = ferry::sim::scenario::RcpFirmware::OtRcp;
    let ot_rcp = bench::run(&stock, &opts).unwrap();
    ferry_rcp.check().unwrap();
    ot_rcp.check().unwrap();
    let (fast, slow) = (&ferry_rcp.rows[0], &ot_rcp.rows[0]);
    assert_eq!((fast.updated, slow.updated), (3, 3));
    assert!(fast.makespan_s < slow.makespan_s * 0.95, "{fast:?} vs {slow:?}");
    // The same frames went on air (give or take the retries).
    assert_eq!(ferry_rcp.bound, ot_rcp.bound);
}
