//! Owners' windows over a simulated week in Europe/Berlin that spans the end of summer time
//! (Sunday 2026-10-25, 03:00 CEST → 02:00 CET), on ground truth: the real planner, the real
//! delivery engine and simulated RIOT nodes (`sim::bench::rollout`), owners' windows and a
//! tenant's blackout written as `owners.d` files.
//!
//! Two flats: `flat-a` (tenant alice: `Mon-Sun 01:00-02:30`, a weekly span whose end falls in
//! the repeated hour that night) and `flat-b` (tenant bob: cron `30 2 * * *` for 1 h, which
//! starts in the repeated hour). Updates arrive outside windows, inside the repeated hour, and
//! after the windows closed on that night; mid-week alice adds a blackout while an update is
//! rolling out.

use std::collections::BTreeMap;
use std::path::Path;

use ferry::config::Config;
use ferry::sim::bench::rollout::{self, Outcome, OwnerFileChange, RolloutSpec};
use ferry::sim::{Scenario, UpdateOutcome};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

const SCENARIO: &str = r#"
seed = 8
[bench]
image_bytes = 2048
[gateway]
eui64 = "f0:0d:77:1d:00:00:00:01"
position = [0.0, 0.0]
[[node]]
name = "a-plug"
eui64 = "02:00:77:1d:00:00:0a:01"
short = 0x0a01
position = [3.0, 0.0]
board = { vendor = "riot-os.org", class = "nrf52840dk" }
firmware = { sequence = 5 }
coap_block_size = 256
[[node]]
name = "a-bulb"
eui64 = "02:00:77:1d:00:00:0a:02"
short = 0x0a02
position = [0.0, 3.0]
board = { vendor = "riot-os.org", class = "nrf52840dk" }
firmware = { sequence = 5 }
coap_block_size = 256
[[node]]
name = "a-sensor"
eui64 = "02:00:77:1d:00:00:0a:03"
short = 0x0a03
position = [-3.0, 0.0]
duty_cycle = { mode = "sleepy", poll_period_s = 20.0, jitter_s = 0.5, drift_ppm = 25.0, listen_window_ms = 20.0 }
board = { vendor = "riot-os.org", class = "samr21-xpro" }
firmware = { sequence = 5 }
coap_block_size = 256
[[node]]
name = "b-plug"
eui64 = "02:00:77:1d:00:00:0b:01"
short = 0x0b01
position = [0.0, -3.0]
board = { vendor = "riot-os.org", class = "nrf52840dk" }
firmware = { sequence = 5 }
coap_block_size = 256
[[node]]
name = "b-bulb"
eui64 = "02:00:77:1d:00:00:0b:02"
short = 0x0b02
position = [2.0, 2.0]
board = { vendor = "riot-os.org", class = "nrf52840dk" }
firmware = { sequence = 5 }
coap_block_size = 256
[[node]]
name = "b-sensor"
eui64 = "02:00:77:1d:00:00:0b:03"
short = 0x0b03
position = [-2.0, -2.0]
duty_cycle = { mode = "sleepy", poll_period_s = 20.0, jitter_s = 0.5, drift_ppm = 25.0, listen_window_ms = 20.0 }
board = { vendor = "riot-os.org", class = "samr21-xpro" }
firmware = { sequence = 5 }
coap_block_size = 256
"#;

const FERRY_TOML: &str = r#"
[radio]
url = "sim:windows.toml"
[[owner]]
name = "landlord"
uid = 0
[[owner]]
name = "alice"
uid = 1001
[[owner]]
name = "bob"
uid = 1002
[[group]]
name = "flat-a"
admin = "landlord"
occupant = "alice"
timezone = "Europe/Berlin"
devices = ["02:00:77:1d:00:00:0a:01", "02:00:77:1d:00:00:0a:02", "02:00:77:1d:00:00:0a:03"]
[[group]]
name = "flat-b"
admin = "landlord"
occupant = "bob"
timezone = "Europe/Berlin"
devices = ["02:00:77:1d:00:00:0b:01", "02:00:77:1d:00:00:0b:02", "02:00:77:1d:00:00:0b:03"]
"#;

const ALICE: &str = "[group.flat-a]\nwindows = [\"Mon-Sun 01:00-02:30\"]\n";
const BOB: &str = "[group.flat-b]\nwindows = [{ cron = \"30 2 * * *\", duration = \"1h\" }]\n";
/// Saved Tuesday 18:00 while update 4 waits for the night: no installs Tuesday 20:00 to
/// Thursday noon, so the Wednesday and Thursday windows are lost.
const ALICE_BLACKOUT: &str = "[group.flat-a]\nwindows = [\"Mon-Sun 01:00-02:30\"]\n\
    blackouts = [{ start = 2026-10-27T20:00:00+01:00, end = 2026-10-29T12:00:00+01:00, reason = \"guests\" }]\n";
/// When alice saves a blackout from now to 02:00, in the middle of flat-a's updates.
const BLACKOUT_SAVED: &str = "2026-11-02T01:00:12+01:00";
/// A typo saved Wednesday evening: refused, bob's windows stay as they were.
const BOB_TYPO: &str = "[group.flat-b]\nwindow = [\"Mon-Sun 12:00-13:00\"]\n";

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

/// The arrivals, in order: update 1 Saturday afternoon (outside windows); update 2 on Sunday at
/// 02:10 CET, the second pass of the repeated hour; update 3 at 02:40 CET, after both windows
/// closed that night; update 4 on Tuesday noon; update 5 on Thursday noon.
fn arrivals() -> Vec<Timestamp> {
    [
        "2026-10-24T14:00:00+02:00",
        "2026-10-25T02:10:00+01:00",
        "2026-10-25T02:40:00+01:00",
        "2026-10-27T12:00:00+01:00",
        "2026-10-29T12:00:00+01:00",
    ]
    .into_iter()
    .map(t)
    .collect()
}

fn spec() -> RolloutSpec {
    let start = t("2026-10-24T12:00:00+02:00");
    let change =
        |at: &str, owner: &str, text: &str| OwnerFileChange { at: t(at), owner: owner.into(), text: Some(text.into()) };
    RolloutSpec {
        config: Config::parse(Path::new("ferry.toml"), FERRY_TOML).unwrap(),
        start,
        owner_files: vec![
            OwnerFileChange { at: start, owner: "alice".into(), text: Some(ALICE.into()) },
            OwnerFileChange { at: start, owner: "bob".into(), text: Some(BOB.into()) },
            change("2026-10-27T18:00:00+01:00", "alice", ALICE_BLACKOUT),
            change("2026-10-28T19:00:00+01:00", "bob", BOB_TYPO),
        ],
        arrivals: arrivals(),
        end: t("2026-10-31T12:00:00+01:00"),
        plan_every_s: 60.0,
    }
}

/// One install on a device's ground truth: triggered and running the new image, wall clock.
#[derive(Debug, Clone)]
struct Install {
    device: String,
    group: String,
    sequence: u64,
    triggered: Timestamp,
    running: Timestamp,
}

fn installs(outcome: &Outcome) -> Vec<Install> {
    let mut out = Vec::new();
    for (device, truth) in &outcome.truth {
        for r in &truth.history {
            if matches!(r.outcome, UpdateOutcome::Installed { .. }) {
                out.push(Install {
                    device: device.clone(),
                    group: outcome.groups[device].clone(),
                    sequence: r.sequence.unwrap(),
                    triggered: outcome.wall(r.triggered_us),
                    running: outcome.wall(r.finished_us),
                });
            }
        }
    }
    out.sort_by_key(|i| i.triggered);
    out
}

fn local(at: Timestamp) -> String {
    at.to_zoned_datetime(berlin()).strftime("%a %d %H:%M:%S %z").to_string()
}

/// Prints what happened and returns the installs, after checking that every one of them, from
/// the trigger to the new image running, lies in one open interval of the device's group: its
/// windows minus its blackouts, as the owners' files stood when it was triggered.
fn installs_inside_windows(outcome: &Outcome, config: &Config, what: &str) -> Vec<Install> {
    eprintln!(
        "{what}: {} ms wall, {} planner passes, {} rejections",
        outcome.wall_ms,
        outcome.plans,
        outcome.rejections.len()
    );
    for (device, truth) in &outcome.truth {
        for r in truth.history.iter().filter(|r| !matches!(r.outcome, UpdateOutcome::Installed { .. })) {
            eprintln!("{device}: {:?} at {}", r.outcome, local(outcome.wall(r.triggered_us)));
        }
    }
    for (at, device, why) in &outcome.failed_sessions {
        eprintln!("{device}: session failed at {}: {why}", local(*at));
    }
    let installs = installs(outcome);
    for i in &installs {
        eprintln!(
            "{:<9} {} seq {}: triggered {}, running {}",
            i.device,
            i.group,
            i.sequence,
            local(i.triggered),
            local(i.running)
        );
    }
    for i in &installs {
        let schedule = outcome.schedule_at(config, &i.group, i.triggered).unwrap();
        let open = schedule.open_intervals(i.triggered, i.running + SignedDuration::from_secs(1));
        assert!(
            open.iter().any(|iv| iv.start <= i.triggered && i.running < iv.end),
            "{i:?} is not inside a window of {}: {open:?}",
            i.group
        );
    }
    installs
}

#[test]
fn a_week_across_the_dst_change_installs_only_inside_windows_and_a_blackout_pauses_one_flat() {
    let spec = spec();
    let scenario = Scenario::parse(Path::new("windows.toml"), SCENARIO).unwrap();
    let outcome = rollout::run(&scenario, &spec).unwrap();
    let installs = installs_inside_windows(&outcome, &spec.config, "a simulated week");
    let base = scenario.nodes[0].firmware.sequence;
    assert_eq!(outcome.arrivals.len(), 5);
    for (n, a) in outcome.arrivals.iter().enumerate() {
        assert!(a.sequences.values().all(|&s| s == base + 1 + n as u64), "{a:?}");
    }

    // Each update reaches the always-on devices of each flat in the window the module doc
    // predicts. (The sleepy ones are held to the check above and to the end state below: after
    // its reboot a sleepy node only registers its address again once it has heard a DIO, so the
    // border router can lose it for hours or days; its sessions fail and are retried.)
    let when = |group: &str, sequence: u64| -> Vec<&Install> {
        installs.iter().filter(|i| i.group == group && i.sequence == sequence).collect()
    };
    let within = |group: &str, sequence: u64, from: &str, to: &str| {
        let (from, to) = (t(from), t(to));
        let got: Vec<&Install> = when(group, sequence).into_iter().filter(|i| !i.device.ends_with("sensor")).collect();
        assert_eq!(got.len(), 2, "{group} seq {sequence}: {got:?}");
        for i in got {
            assert!(from <= i.triggered && i.running < to, "{group} seq {sequence}: {i:?} not in [{from}, {to})");
        }
    };
    // 1: Saturday afternoon is outside both; alice's window opens Sunday 01:00 CEST, bob's cron
    // at the first 02:30 (CEST, rule 2).
    within("flat-a", base + 1, "2026-10-25T01:00:00+02:00", "2026-10-25T01:30:00+02:00");
    within("flat-b", base + 1, "2026-10-25T02:30:00+02:00", "2026-10-25T03:00:00+02:00");
    // 2: 02:10 CET, the repeated hour: alice's span closes at the later 02:30 (rule 3) and
    // bob's lasts one real hour from 02:30 CEST, i.e. until 02:30 CET (rule 4): both install.
    within("flat-a", base + 2, "2026-10-25T02:10:00+01:00", "2026-10-25T02:30:00+01:00");
    within("flat-b", base + 2, "2026-10-25T02:10:00+01:00", "2026-10-25T02:30:00+01:00");
    for i in when("flat-a", base + 2) {
        let (wall, offset) = (berlin().to_datetime(i.running), berlin().to_offset(i.running));
        assert_eq!((wall.hour(), offset.seconds()), (2, 3600), "in the repeated hour: {i:?}");
    }
    // 3: 02:40 CET reads inside bob's 02:30-03:30, but his window closed (rule 4) and alice's
    // too; both wait for Monday.
    within("flat-a", base + 3, "2026-10-26T01:00:00+01:00", "2026-10-26T01:30:00+01:00");
    within("flat-b", base + 3, "2026-10-26T02:30:00+01:00", "2026-10-26T03:00:00+01:00");
    // 4: arrives Tuesday noon; alice's blackout (saved Tuesday 18:00) takes Wednesday's and
    // Thursday's windows: flat-b carries on Wednesday 02:30, flat-a gets nothing until the
    // blackout ends (Thursday noon).
    within("flat-b", base + 4, "2026-10-28T02:30:00+01:00", "2026-10-28T03:00:00+01:00");
    let blackout = (t("2026-10-27T20:00:00+01:00"), t("2026-10-29T12:00:00+01:00"));
    let in_blackout: Vec<&Install> =
        installs.iter().filter(|i| i.running > blackout.0 && i.triggered < blackout.1).collect();
    assert!(in_blackout.iter().all(|i| i.group == "flat-b"), "{in_blackout:?}");
    assert!(in_blackout.len() >= 2, "flat-b carries on during flat-a's blackout: {in_blackout:?}");
    // 5: arrives Thursday noon, as the blackout ends. flat-a resumes in Friday's window with
    // the newest update (4 is superseded, never installed there); bob's typo (Wednesday
    // evening) was refused and his cron window stayed: Friday 02:30.
    assert!(when("flat-a", base + 4).is_empty(), "{:?}", when("flat-a", base + 4));
    within("flat-a", base + 5, "2026-10-30T01:00:00+01:00", "2026-10-30T01:30:00+01:00");
    assert!(
        outcome.rejections.iter().any(|(_, why)| why.contains("bob.toml") && why.contains("previous settings stay")),
        "{:?}",
        outcome.rejections
    );
    within("flat-b", base + 5, "2026-10-30T02:30:00+01:00", "2026-10-30T03:00:00+01:00");

    // Every always-on device ends on the last update, on its own ground truth; a sleepy one that
    // does not (see above) is one whose sessions ferry recorded as failed, never silently.
    let last = base + 5;
    let mut finals = BTreeMap::new();
    for (device, truth) in &outcome.truth {
        finals.insert(device.clone(), truth.installed_sequence);
    }
    for (device, &sequence) in &finals {
        let failed = outcome.failed_sessions.iter().any(|(_, d, _)| d == device);
        assert!(sequence == last || (device.ends_with("sensor") && failed), "{finals:?}");
    }
}

#[test]
fn a_blackout_saved_while_a_flat_updates_stops_its_new_sessions_and_the_other_flat_carries_on() {
    // One session at a time on the PAN, both flats open 01:00-03:00; the update arrives before.
    let config = format!("{FERRY_TOML}[plan]\nmax_concurrent_per_parent = 1\n");
    let window = |group: &str| format!("[group.{group}]\nwindows = [\"Mon-Sun 01:00-03:00\"]\n");
    let saved = t(BLACKOUT_SAVED);
    let blackout = format!(
        "{}blackouts = [{{ start = {BLACKOUT_SAVED}, end = 2026-11-02T02:00:00+01:00, reason = \"asleep\" }}]\n",
        window("flat-a")
    );
    let start = t("2026-11-02T00:50:00+01:00");
    let file = |at: Timestamp, owner: &str, text: String| OwnerFileChange { at, owner: owner.into(), text: Some(text) };
    let spec = RolloutSpec {
        config: Config::parse(Path::new("ferry.toml"), &config).unwrap(),
        start,
        owner_files: vec![
            file(start, "alice", window("flat-a")),
            file(start, "bob", window("flat-b")),
            file(saved, "alice", blackout),
        ],
        arrivals: vec![t("2026-11-02T00:55:00+01:00")],
        end: t("2026-11-02T03:10:00+01:00"),
        plan_every_s: 60.0,
    };
    let scenario = Scenario::parse(Path::new("windows.toml"), SCENARIO).unwrap();
    let outcome = rollout::run(&scenario, &spec).unwrap();
    let installs = installs_inside_windows(&outcome, &spec.config, "one night");
    let resumes = t("2026-11-02T02:00:00+01:00");
    let a: Vec<&Install> = installs.iter().filter(|i| i.group == "flat-a").collect();
    let b: Vec<&Install> = installs.iter().filter(|i| i.group == "flat-b").collect();
    assert_eq!((a.len(), b.len()), (3, 3), "every device updates once: {installs:?}");
    // The blackout came in the middle of flat-a's turn: some of it was done, some not.
    assert!(a.iter().any(|i| i.triggered < saved), "{a:?}");
    assert!(a.iter().any(|i| i.triggered >= saved), "{a:?}");
    // No flat-a device is triggered during the blackout; the rest follow once it ends.
    for i in a.iter().filter(|i| i.triggered >= saved) {
        assert!(i.triggered >= resumes, "triggered in the blackout: {i:?}");
    }
    // flat-b carries on meanwhile.
    assert!(b.iter().all(|i| i.triggered < resumes), "{b:?}");
    assert!(b.iter().any(|i| i.triggered >= saved), "{b:?}");
}
