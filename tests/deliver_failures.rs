//! Delivery failures through a real ferryd and the retry policy: simulated RIOT nodes (their own
//! process, on a pty) that lose power mid-transfer, write corrupt flash or cannot boot the new
//! image. What ferry records (`ferry history`, `ferry device show`, `/metrics`) is checked
//! against each node's ground truth from the simulator's report.

mod common;

use std::time::{Duration, Instant};

use common::riot::{
    config, device_show, eui, eui_hex, firmware, history, labelled, publish, star_with_failures, wait_metrics, Sim,
};
use common::Ferryd;

/// A stalled transfer ends its session at once. Three sessions per device and update, ten
/// minutes apart, for every group; this test's group sets two, 2 s apart (what it checks).
const RETRY_POLICY: &str =
    "[delivery]\nmax_attempts = 3\nretry_backoff_s = 600\nsession_retries = 0\nsession_backoff_s = 1\n";
const GROUP_RETRY_POLICY: &str = "[group.policy]\nmax_attempts = 2\nretry_backoff_s = 2\n";

fn outcomes(fw: &serde_json::Value) -> Vec<String> {
    fw["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| {
            let outcome = &r["outcome"];
            let name = outcome["outcome"].as_str().unwrap_or_default();
            match outcome["error"]["error"].as_str() {
                Some(e) => format!("{name}:{e}"),
                None => name.to_owned(),
            }
        })
        .collect()
}

#[test]
fn failed_and_rolled_back_updates_are_retried_by_the_policy_until_it_gives_up() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let failures = [
        "power_loss_at_byte = 1024",
        "corrupt_write = true",
        "boot_failure = true",
        "power_loss_at_byte = 1024, failing_updates = 1",
    ];
    std::fs::write(dir.path().join("star.toml"), star_with_failures(4, 5, 64, &failures)).unwrap();
    let sim = Sim::spawn(dir.path(), &dir.path().join("star.toml"));
    let watch = publish(&dir.path().join("repo"), 6, 2048);
    // The group comes last in the file: its policy follows it.
    let cfg = config(&sim.url, &watch, 4, RETRY_POLICY) + GROUP_RETRY_POLICY;
    let mut d = Ferryd::spawn(dir.path(), &cfg);
    d.wait_radio_up();
    let s = wait_metrics(&mut d, Duration::from_secs(240), "three give-ups and one update", |s| {
        labelled(s, "ferry_delivery_given_up") >= 3.0
            && labelled(s, "ferry_updates_completed_total{result=\"done\"}") >= 1.0
    });
    let took = started.elapsed();
    let h = history(dir.path());
    let completed = |r: &str| labelled(&s, &format!("ferry_updates_completed_total{{result=\"{r}\"}}"));
    assert_eq!((completed("failed"), completed("rolled-back"), completed("done")), (5.0, 2.0, 1.0), "{h}");
    assert_eq!(labelled(&s, "ferry_delivery_retries_total"), 4.0, "{s}");
    let last = |i: usize, r: &str| {
        labelled(&s, &format!("ferry_device_last_update_timestamp_seconds{{device=\"{}\",result=\"{r}\"}}", eui(i)))
    };
    let now = jiff::Timestamp::now().as_second() as f64;
    for (i, result) in [(0, "failed"), (1, "failed"), (2, "rolled-back"), (3, "done"), (3, "failed")] {
        assert!((now - last(i, result)).abs() < 300.0, "bulb-{i} {result}: {}\n{s}", last(i, result));
    }
    assert_eq!(last(2, "done"), 0.0);
    common::promtool_check(&s);

    // What ferry recorded, per device: two sessions each.
    let line = |i: usize, rest: &str| format!("device {} sequence 6: {rest}", eui_hex(i));
    let count = |i: usize, rest: &str| h.matches(&line(i, rest)).count();
    assert_eq!(count(0, "failed — no progress while streaming"), 2, "{h}");
    assert_eq!(
        count(1, "failed — the device reports its update to sequence number 6 failed (digest-mismatch); it runs sequence number 5"),
        2,
        "{h}"
    );
    assert_eq!(
        count(2, "rolled-back — the device reports its update to sequence number 6 failed (boot-failure); it runs sequence number 5"),
        2,
        "{h}"
    );
    assert_eq!(count(3, "failed — no progress while streaming"), 1, "{h}");
    assert_eq!(count(3, "done — the device runs sequence number 6"), 1, "{h}");
    assert_eq!(h.matches("planned → triggered").count(), 8, "one trigger per session:\n{h}");

    // `ferry device show`: the attempts, the last result, and that ferry gave up.
    for (i, result, gave_up) in [(0, "failed", true), (1, "failed", true), (2, "rolled-back", true), (3, "done", false)]
    {
        let report = device_show(&d.socket(), &eui(i));
        let a = &report["deliveries"][0];
        assert_eq!((a["attempts"].as_u64(), a["last_result"].as_str()), (Some(2), Some(result)), "bulb-{i}: {report}");
        assert_eq!(a["gave_up"].as_bool(), Some(gave_up), "bulb-{i}: {a}");
        if gave_up {
            assert!(a["last_reason"].as_str().unwrap_or_default().starts_with("gave up after 2 attempt(s)"), "{a}");
        }
    }
    let plan = String::from_utf8_lossy(&common::ferry(&d.socket(), &["plan"]).stdout).into_owned();
    assert_eq!(
        plan.matches("gave up after 2 failed attempt(s) (max_attempts: the group's policy, else [delivery])").count(),
        3,
        "{plan}"
    );
    let out = common::ferry(&d.socket(), &["device", "show", &eui(2)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sequence 6: 2 attempt(s), last rolled-back") && text.contains("; gave up"), "{text}");

    // The attempts survive a restart: nothing is tried again.
    d.child.kill().expect("SIGKILL");
    d.child.wait().expect("reaped");
    let mut d = Ferryd::spawn(dir.path(), &cfg);
    d.wait_radio_up();
    d.wait_log("serving the update to devices");
    std::thread::sleep(Duration::from_secs(5));
    let s = wait_metrics(&mut d, Duration::from_secs(5), "the attempts loaded", |s| {
        labelled(s, "ferry_delivery_given_up") == 3.0
    });
    assert_eq!(labelled(&s, "ferry_sessions{state=\"planned\"}"), 0.0, "{s}");
    assert_eq!(history(dir.path()).matches("planned → triggered").count(), 8);
    drop(d);

    // Each device's own record: the old slot runs where ferry gave up.
    let report = sim.report();
    let truth = |i: usize| firmware(&report, &format!("bulb-{i}")).clone();
    for i in 0..3 {
        let fw = truth(i);
        assert_eq!((fw["installed_sequence"].as_u64(), fw["active_slot"].as_u64()), (Some(5), Some(0)), "{fw}");
    }
    assert_eq!(outcomes(&truth(0)), ["failed:power_loss", "failed:power_loss"]);
    assert_eq!(outcomes(&truth(1)), ["failed:digest_mismatch", "failed:digest_mismatch"]);
    assert_eq!(outcomes(&truth(2)), ["failed:boot_failure", "failed:boot_failure"]);
    // Booted into the new image and fell back, twice; power losses reboot too.
    assert_eq!(truth(2)["reboots"].as_u64(), Some(4), "{}", truth(2));
    let fw = truth(3);
    assert_eq!((fw["installed_sequence"].as_u64(), fw["active_slot"].as_u64()), (Some(6), Some(1)), "{fw}");
    assert_eq!(outcomes(&fw), ["failed:power_loss", "installed"]);
    eprintln!(
        "failures star of 4: settled after {took:?} wall ({:.1} s simulated in all)",
        report["duration_us"].as_f64().unwrap_or(0.0) / 1e6
    );
}
