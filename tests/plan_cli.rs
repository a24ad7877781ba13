//! `ferry plan --snapshot` on the shipped example building: key lines of its output.

use std::process::Command;

fn ferry_plan(extra: &[&str]) -> String {
    let snapshot = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim/building-plan.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["plan", "--snapshot", snapshot])
        .args(extra)
        .output()
        .expect("runs ferry");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn building_plan_prints_the_next_action_and_why_each_device_waits() {
    let text = ferry_plan(&[]);
    let expected = [
        "plan at 2026-11-24T01:30:00Z: 3 start, 15 wait, 1 updating, 1 up to date; air time 72 % of 80 %",
        "f2-lock          flat-2  start acme-lock-fw@4 (critical update, urgency, ~2 min, 22 % air time)",
        "garage-door      common  start riot-app@8 (security update, deadline, ~3 min, 22 % air time)",
        "hall-router      flat-2  wait acme-plug-fw@12: outside window until Sat 10:00 Europe/Berlin",
        "stair-router     common  wait acme-plug-fw@12: blackout; installs resume Thu 00:00 Europe/Berlin",
        "f1-kitchen-plug  flat-1  wait acme-plug-fw@12: router: 1 child still updating;",
        "f1-living-plug   flat-1  wait acme-plug-fw@12: router: 1 node behind it update first;",
        "f1-fridge-temp   flat-1  wait riot-app@8: battery 12 % < 30 %",
        "f1-window        flat-1  wait riot-app@8: link RSSI -95 dBm < -90 dBm",
        "f1-door          flat-1  wait riot-app@8: free storage 40 kB < image 60 kB",
        "f1-bath-temp     flat-1  start riot-app@8 (security update, window, ~3 min, 22 % air time)",
        "f1-living-temp   flat-1  wait riot-app@8: air time: 72 % in use + 26 % > 80 % budget",
        "garage-light     common  wait acme-light-fw@3: awaiting approval (authority acme: ferry update approve acme-light-fw@3)",
        "attic-temp       common  up to date: sequence 8 not higher than installed 8",
        "f1-kitchen-temp  flat-1  updating riot-app@8 (expected to end 2026-11-24T01:45:00Z)",
        "mailbox          flat-1  wait riot-app@8: device is commissioned, not active",
    ];
    for line in expected {
        assert!(text.contains(line), "missing line:\n{line}\nin:\n{text}");
    }
}

#[test]
fn json_and_at_override() {
    let json = ferry_plan(&["--json"]);
    let report: ferry::control::api::PlanReport = serde_json::from_str(&json).expect("a PlanReport");
    assert_eq!(report.entries.len(), 20);
    let lock = report.entries.iter().find(|e| e.label == "f2-lock").expect("f2-lock");
    assert_eq!(lock.basis.as_deref(), Some("urgency"));
    let fridge = report.entries.iter().find(|e| e.label == "f1-fridge-temp").expect("fridge");
    assert_eq!(fridge.reasons[0].code, "battery-low");
    // Saturday 10:30 in Berlin: flat-2's window is open.
    let text = ferry_plan(&["--at", "2026-11-28T09:30:00Z"]);
    assert!(!text.contains("f2-hall-temp     flat-2  wait riot-app@8: outside window"), "{text}");
}
