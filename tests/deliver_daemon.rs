//! Delivery end to end through a real ferryd: a repository folder with updates published by
//! `ferry publish --format riot` (TEST-ONLY key), simulated RIOT nodes that verify and install
//! them, and what ferry records (`ferry history`, `ferry device show`, `/metrics`). The restart
//! test runs the simulator as its own process (`ferry sim --pty`), so the devices outlive a
//! killed ferryd and their ground truth (every trigger) is read from its report.

mod common;

use std::time::{Duration, Instant};

use common::riot::{config, eui, eui_hex, firmware, history, installed, labelled, publish, star, wait_metrics, Sim};
use common::{ferry, scrape, Ferryd};

fn metrics_addr(d: &mut Ferryd) -> std::net::SocketAddr {
    d.wait_ready().metrics_listen
}

#[test]
fn a_star_of_riot_devices_all_update() {
    // ferryd's radio is a real pty, served by the simulator in its own process.
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(3, 5, 1024)).unwrap();
    let sim = Sim::spawn(dir.path(), &dir.path().join("star.toml"));
    let watch = publish(&dir.path().join("repo"), 6, 2048);
    let mut d = Ferryd::spawn(dir.path(), &config(&sim.url, &watch, 3, ""));
    d.wait_radio_up();
    let s = wait_metrics(&mut d, Duration::from_secs(90), "three updates done", |s| {
        labelled(s, "ferry_updates_completed_total{result=\"done\"}") >= 3.0
    });
    assert!(labelled(&s, "ferry_delivery_bytes_total") >= 3.0 * 2048.0, "{s}");
    assert_eq!(labelled(&s, "ferry_updates_completed_total{result=\"failed\"}"), 0.0);
    assert_eq!(labelled(&s, "ferry_sessions{state=\"done\"}"), 3.0);
    // Air time: at least the payload and manifest bytes at 250 kbit/s (32 µs a byte), and the
    // frames' headers and ACKs on top.
    let airtime = labelled(&s, "ferry_delivery_airtime_seconds_total");
    let bytes = labelled(&s, "ferry_delivery_bytes_total");
    assert!(airtime > bytes * 32e-6 && airtime < 10.0 * bytes * 32e-6, "air time {airtime} s for {bytes} B\n{s}");
    // Two 1024-byte blocks per device: each device's second request is one measured wait.
    let waits = labelled(&s, "ferry_delivery_block_wait_seconds_count");
    assert!(waits >= 3.0, "{waits} block waits\n{s}");
    assert_eq!(labelled(&s, "ferry_delivery_block_wait_seconds_bucket{le=\"+Inf\"}"), waits);
    for i in 0..3 {
        let when = labelled(
            &s,
            &format!("ferry_device_last_update_timestamp_seconds{{device=\"{}\",result=\"done\"}}", eui(i)),
        );
        assert!((when - jiff::Timestamp::now().as_second() as f64).abs() < 120.0, "{when}\n{s}");
    }
    common::promtool_check(&s);

    let h = history(dir.path());
    for i in 0..3 {
        assert!(
            h.contains(&format!("device {} sequence 6: done — the device runs sequence number 6", eui_hex(i))),
            "{h}"
        );
        // Recorded when the session ended (then read again from the device's own report).
        let (seq, source) = installed(&d.socket(), &eui(i));
        assert_eq!(seq, Some(6));
        assert!(["delivery", "device-report"].contains(&source.as_str()), "{source}");
    }
    assert_eq!(h.matches("planned → triggered").count(), 3, "one trigger per device:\n{h}");
    // Everything is served on [coap] listen too and listed there.
    let status = common::status(&d.socket()).unwrap();
    assert_eq!(status.sessions.len(), 3);
    assert!(status.sessions.iter().all(|l| l.state == "done" && l.fetched == 2048), "{:?}", status.sessions);
    drop(d);
    let report = sim.report();
    for i in 0..3 {
        let fw = firmware(&report, &format!("bulb-{i}"));
        assert_eq!((fw["installed_sequence"].as_u64(), fw["active_slot"].as_u64()), (Some(6), Some(1)), "{fw}");
    }
    eprintln!(
        "star of 3 over a pty: {:?} wall, {:.3} s simulated, air time {airtime:.3} s for {bytes} B served",
        started.elapsed(),
        report["duration_us"].as_f64().unwrap_or(0.0) / 1e6
    );
}

#[test]
fn a_manifest_not_newer_than_installed_is_refused_before_any_trigger() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(2, 9, 1024)).unwrap();
    let watch = publish(&dir.path().join("repo"), 9, 1024);
    let mut d = Ferryd::spawn(dir.path(), &config("sim:star.toml", &watch, 2, ""));
    d.wait_radio_up();
    // Wait until ferry knows what both devices run (they report 9 on /ferry/status).
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..2).any(|i| installed(&d.socket(), &eui(i)).0 != Some(9)) {
        assert!(Instant::now() < deadline, "facts never learned; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ferry(&d.socket(), &["plan"]);
        let plan = String::from_utf8_lossy(&out.stdout).into_owned();
        if plan.contains("sequence 9 not higher than installed 9") {
            break;
        }
        assert!(Instant::now() < deadline, "{plan}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // A few plans later still nothing was started or triggered, and an update no device takes
    // is not even served (serving would pin its blobs).
    std::thread::sleep(Duration::from_secs(3));
    let s = scrape(metrics_addr(&mut d));
    assert_eq!(labelled(&s, "ferry_delivery_bytes_total"), 0.0, "{s}");
    assert!(!history(dir.path()).contains("triggered"));
    let log = d.log();
    assert!(!log.contains("delivery session started") && !log.contains("serving the update"), "{log}");
}

#[test]
fn an_operator_cancels_a_running_session() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(1, 5, 64)).unwrap();
    let watch = publish(&dir.path().join("repo"), 6, 16 * 1024);
    let mut d = Ferryd::spawn(dir.path(), &config("sim:star.toml", &watch, 1, ""));
    d.wait_radio_up();
    // A manifest admitted after the last replan is offered at the next heartbeat (30 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::status(&d.socket()).unwrap().sessions.iter().any(|l| l.state == "streaming") {
        assert!(Instant::now() < deadline, "never streaming; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ferry(&d.socket(), &["update", "cancel", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "session 1: cancelled");
    let again = ferry(&d.socket(), &["update", "cancel", "1"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already ended (cancelled)"));
    // The plan does not start it again behind the operator's back.
    std::thread::sleep(Duration::from_secs(3));
    let s = scrape(metrics_addr(&mut d));
    assert_eq!(labelled(&s, "ferry_updates_completed_total{result=\"cancelled\"}"), 1.0, "{s}");
    let status = common::status(&d.socket()).unwrap();
    assert_eq!(status.sessions.len(), 1, "{:?}", status.sessions);
    assert!(history(dir.path()).contains("→ cancelled: cancelled"));
}

/// Kills ferryd once a session is in `state` (and has served `fetched` payload bytes at least),
/// starts it again, and waits until the update is done. Returns ferry's history and the
/// device's own firmware record (every trigger it got).
fn kill_and_resume(state: &str, fetched: u64, size: usize) -> (String, serde_json::Value) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(1, 5, 64)).unwrap();
    let sim = Sim::spawn(dir.path(), &dir.path().join("star.toml"));
    let watch = publish(&dir.path().join("repo"), 6, size);
    let cfg = config(&sim.url, &watch, 1, "");
    let mut d = Ferryd::spawn(dir.path(), &cfg);
    d.wait_radio_up();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = common::status(&d.socket()).unwrap();
        if status.sessions.iter().any(|l| l.state == state && l.fetched >= fetched) {
            break;
        }
        assert!(Instant::now() < deadline, "never {state}: {:?}\n{}", status.sessions, d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    d.child.kill().expect("SIGKILL");
    d.child.wait().expect("reaped");

    let mut d = Ferryd::spawn(dir.path(), &cfg);
    d.wait_radio_up();
    wait_metrics(&mut d, Duration::from_secs(120), "the resumed session done", |s| {
        labelled(s, "ferry_updates_completed_total{result=\"done\"}") >= 1.0
    });
    let h = history(dir.path());
    assert_eq!(installed(&d.socket(), &eui(0)).0, Some(6));
    drop(d);

    let report = sim.report();
    let fw = firmware(&report, "bulb-0").clone();
    assert_eq!(fw["installed_sequence"], 6, "{fw}");
    // The device's record agrees with ferry's: one trigger each.
    let triggers = fw["history"].as_array().expect("history").len();
    assert_eq!(h.matches("planned → triggered").count(), triggers, "{h}\n{fw}");
    eprintln!(
        "ferryd killed while {state}: done after {:?} wall, {:.3} s simulated, {triggers} trigger(s)",
        started.elapsed(),
        report["duration_us"].as_f64().unwrap_or(0.0) / 1e6
    );
    (h, fw)
}

#[test]
fn ferryd_killed_mid_delivery_resumes_without_a_second_trigger() {
    // Killed once the payload was served whole: the device installs while ferry is gone.
    let (h, fw) = kill_and_resume("rebooting", 0, 4096);
    assert!(h.contains("resumed while rebooting"), "{h}");
    assert_eq!(fw["history"].as_array().map(Vec::len), Some(1), "exactly one trigger: {fw}");
}

#[test]
fn ferryd_killed_while_streaming_follows_the_device_still_fetching() {
    // Killed a quarter into the payload: the device keeps asking for its next block (CoAP
    // retransmits it), the restarted ferryd serves it and follows the transfer to the end.
    let (h, fw) = kill_and_resume("streaming", 4096, 16 * 1024);
    assert!(h.contains("streaming → planned: ferry restarted"), "{h}");
    // Never a trigger for an update the device already has or is still fetching: a trigger
    // after the first only once the device's own transfer ended failed (it gave up on the
    // blocks while ferry was gone), and none refused as busy.
    let outcomes: Vec<&str> = fw["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| r["outcome"]["outcome"].as_str().unwrap_or_default())
        .collect();
    let (last, earlier) = outcomes.split_last().expect("a trigger");
    assert_eq!(*last, "installed", "{fw}");
    assert!(earlier.iter().all(|o| *o == "failed"), "{fw}");
    if earlier.is_empty() {
        assert!(h.contains("planned → streaming"), "followed again, not triggered again:\n{h}");
    }
}

/// `ferry plan` until `done` holds for it, at most `limit`.
fn wait_plan(d: &Ferryd, limit: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = ferry(&d.socket(), &["plan"]);
        let plan = String::from_utf8_lossy(&out.stdout).into_owned();
        if done(&plan) {
            return plan;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in {limit:?}:\n{plan}\nlog:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_refused_owner_file_keeps_the_blackout_and_a_good_one_lifts_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(2, 5, 1024)).unwrap();
    let watch = publish(&dir.path().join("repo"), 6, 1024);
    let owners = dir.path().join("owners.d");
    std::fs::create_dir(&owners).unwrap();
    let now = jiff::Timestamp::now();
    let (start, end) = (
        now.checked_sub(jiff::SignedDuration::from_hours(1)).unwrap(),
        now.checked_add(jiff::SignedDuration::from_hours(48)).unwrap(),
    );
    let blackout =
        format!("[group.star]\nblackouts = [{{ start = \"{start}\", end = \"{end}\", reason = \"move-in\" }}]\n");
    let file = owners.join("root.toml");
    std::fs::write(&file, &blackout).unwrap();
    let mut d = Ferryd::spawn(dir.path(), &config("sim:star.toml", &watch, 2, ""));
    d.wait_radio_up();
    let in_blackout = |plan: &str| plan.matches("blackout; installs resume").count() == 2;
    wait_plan(&d, Duration::from_secs(60), "both devices wait for the blackout", in_blackout);

    // A typo'd key: refused, and the blackout stays in force.
    std::fs::write(&file, blackout.replace("blackouts", "blackout")).unwrap();
    d.signal("HUP");
    d.wait_log("(the previous settings stay in force)");
    assert!(d.log().contains("unknown field `blackout`"), "the log names the bad key:\n{}", d.log());
    std::thread::sleep(Duration::from_secs(2));
    wait_plan(&d, Duration::from_secs(1), "the blackout still in force", in_blackout);
    let s = scrape(metrics_addr(&mut d));
    assert_eq!(labelled(&s, "ferry_delivery_bytes_total"), 0.0, "{s}");
    assert!(!history(dir.path()).contains("triggered"));

    // The fixed file lifts the blackout: the planner starts both devices.
    std::fs::write(&file, "[group.star]\nblackouts = []\n").unwrap();
    d.signal("HUP");
    wait_metrics(&mut d, Duration::from_secs(90), "both updates done after the blackout was lifted", |s| {
        labelled(s, "ferry_updates_completed_total{result=\"done\"}") >= 2.0
    });
}
