//! The multi-hop building (`config/sim/building.toml`: 99 devices, 9 routers in three
//! corridors, up to 4 hops, 72 sleepy leaves polling every 10 s to 5 min) updated by ferry's
//! planner and delivery engine in virtual time, through the host stack and the Spinel link of
//! `sim::bench::rollout`. Checked on the simulator's ground truth, not on ferry's belief:
//! every device runs the new image (but the one whose battery is below the group's minimum,
//! which is never triggered), and no router reboots while a device below it is between its
//! trigger and running its new image.

use std::collections::BTreeMap;
use std::path::Path;

use ferry::config::{Config, GroupPolicy};
use ferry::sim::bench::rollout::{self, RolloutSpec};
use ferry::sim::{Scenario, UpdateOutcome};
use jiff::{SignedDuration, Timestamp};

/// Small enough to keep the debug-build test quick; `ferry bench` moves the full 100 kB.
const IMAGE_BYTES: u64 = 4096;

fn building() -> Scenario {
    let mut scenario = Scenario::load(Path::new("config/sim/building.toml")).unwrap();
    scenario.bench.image_bytes = IMAGE_BYTES;
    scenario
}

/// One group holding every device, with no windows set: installs may happen at any time.
fn config(scenario: &Scenario) -> Config {
    let devices: Vec<String> = scenario.nodes.iter().map(|n| format!("\"{}\"", n.eui64)).collect();
    let text = format!(
        "[radio]\nurl = \"sim:building.toml\"\n[[owner]]\nname = \"landlord\"\nuid = 0\n\
         [[group]]\nname = \"building\"\nadmin = \"landlord\"\ntimezone = \"Europe/Berlin\"\ndevices = [{}]\n",
        devices.join(", ")
    );
    Config::parse(Path::new("ferry.toml"), &text).unwrap()
}

/// Each node's routers, nearest first, by name.
fn routers_above(scenario: &Scenario) -> BTreeMap<String, Vec<String>> {
    let parent: BTreeMap<&str, &str> = scenario.nodes.iter().map(|n| (n.name.as_str(), n.parent.as_str())).collect();
    scenario
        .nodes
        .iter()
        .map(|n| {
            let mut chain = Vec::new();
            let mut at = n.name.as_str();
            while let Some(p) = parent.get(at).copied().filter(|p| *p != "gateway") {
                chain.push(p.to_owned());
                at = p;
            }
            (n.name.clone(), chain)
        })
        .collect()
}

#[test]
fn every_device_of_the_building_updates_and_no_router_reboots_under_an_active_subtree() {
    let scenario = building();
    let start: Timestamp = "2026-11-02T09:00:00+01:00".parse().unwrap();
    let spec = RolloutSpec {
        config: config(&scenario),
        start,
        owner_files: Vec::new(),
        arrivals: vec![start + SignedDuration::from_secs(60)],
        end: start + SignedDuration::from_hours(8),
        plan_every_s: 30.0,
    };
    let outcome = rollout::run(&scenario, &spec).unwrap();

    let min_battery = GroupPolicy::default().min_battery_percent;
    let mut not_updated = Vec::new();
    let mut last_running = 0;
    let mut held = Vec::new();
    for n in &scenario.nodes {
        let truth = &outcome.truth[&n.name];
        if n.failure.battery_percent < min_battery {
            assert!(
                truth.history.is_empty(),
                "{} has {} % battery and was triggered",
                n.name,
                n.failure.battery_percent
            );
            held.push(&n.name);
            continue;
        }
        let installed = truth.history.iter().find(|r| matches!(r.outcome, UpdateOutcome::Installed { .. }));
        match installed {
            Some(r) if truth.installed_sequence > n.firmware.sequence => last_running = last_running.max(r.finished_us),
            _ => not_updated.push(&n.name),
        }
    }
    let arrived = outcome.arrivals.first().map(|a| a.at).unwrap();
    let makespan = outcome.wall(last_running).duration_since(arrived);
    eprintln!(
        "building, {IMAGE_BYTES} B images: last device running its new image {:.1} s after the update arrived; \
         {} sessions ended other than done; {} ms wall",
        makespan.as_secs_f64(),
        outcome.failed_sessions.len(),
        outcome.wall_ms
    );
    for (at, device, why) in &outcome.failed_sessions {
        eprintln!("  {at} {device}: {why}");
    }
    assert!(not_updated.is_empty(), "not updated on ground truth: {not_updated:?}");
    assert_eq!(held, ["r1-3-l9"], "the one device with a battery below {min_battery} % waits");

    // A router's reboot cuts off everything below it: none may fall between a device's trigger
    // and its new image running.
    let above = routers_above(&scenario);
    let mut checked = 0;
    for (device, routers) in &above {
        for r in &outcome.truth[device].history {
            for router in routers {
                for &(down, up) in &outcome.truth[router].boots {
                    checked += 1;
                    assert!(
                        up <= r.triggered_us || down >= r.finished_us,
                        "{router} rebooted ({} to {}) while {device} below it was updating ({} to {})",
                        outcome.wall(down),
                        outcome.wall(up),
                        outcome.wall(r.triggered_us),
                        outcome.wall(r.finished_us),
                    );
                }
            }
        }
    }
    let routers = scenario.nodes.iter().filter(|n| above.values().any(|chain| chain.contains(&n.name))).count();
    assert_eq!(routers, 9, "the building has three corridors of three routers");
    eprintln!("{checked} (router reboot, update below it) pairs checked");
    assert!(checked >= 90, "every leaf's update was checked against its routers' reboots ({checked})");
}
