//! The unit file as systemd reads it.

mod common;

use std::process::Command;

/// `systemd-analyze verify` on our unit, with ExecStart pointing at the binary this build made
/// (verify insists that the executable exists). Returns everything it printed.
fn verify(unit_text: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("ferryd.service");
    std::fs::write(&unit, unit_text.replace("/usr/bin/ferryd", env!("CARGO_BIN_EXE_ferryd"))).expect("write unit");
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output().expect("systemd-analyze");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn systemd_analyze_verify_prints_nothing() {
    if !common::have_tool("systemd-analyze") {
        return;
    }
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/ferryd.service")).expect("unit");
    assert_eq!(verify(&unit), "", "systemd-analyze verify complained");
    // The check can fail: a misspelt directive is reported.
    let broken = unit.replace("WatchdogSec=", "WatchdogSek=");
    assert!(verify(&broken).contains("WatchdogSek"), "verify must report unknown keys");
}

#[test]
fn unit_declares_what_the_daemon_relies_on() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/ferryd.service")).expect("unit");
    for directive in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=ferry",
        "ConfigurationDirectory=ferry",
        "RuntimeDirectory=ferry",
        "SupplementaryGroups=dialout",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "DevicePolicy=closed",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive:?}");
    }
    // The paths in the unit are ferry's defaults, so the unit needs no flags beyond --config.
    assert!(unit.contains(ferry::config::DEFAULT_CONFIG_PATH));
    assert!(ferry::config::DEFAULT_CONTROL_SOCKET.starts_with("/run/ferry/"));
}
