//! Delivery end to end through a real ferryd: a repository folder with updates published by
//! `ferry publish --format riot` (TEST-ONLY key), simulated RIOT nodes that verify and install
//! them, and what ferry records (`ferry history`, `ferry device show`, `/metrics`). The restart
//! test runs the simulator as its own process (`ferry sim --pty`), so the devices outlive a
//! killed ferryd and their ground truth (every trigger) is read from its report.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ferry, scrape, Ferryd};

/// RIOT's test-only signing key (shared/vectors/suit); the nodes compile in its public half.
const TEST_ONLY_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/suit/testdata/test_ed25519_private_TESTONLY.pem");
const TEST_ONLY_PUBLIC: &str = "2eaf3e1decf7d8b376ee9692a11a9f834d1dd66c3c431ca5ae919ea6dbdf2471";
/// ferry's address on the LoWPAN: the scenario's prefix and the gateway RCP's EUI-64.
const GATEWAY_URI: &str = "coap://[fd00:f3:e5::f20d:fe77:0:1]";
const BOARD: &str = "nrf52840dk";

fn eui(n: usize) -> String {
    format!("02:00:fe:77:00:00:01:{n:02x}")
}

/// A star of `n` always-on ferry-aware RIOT nodes running sequence `installed`.
fn star(n: usize, installed: u64, block_size: u16) -> String {
    let mut s = String::from(
        "seed = 7\nchannel = 26\npan_id = 0xface\n\n[gateway]\neui64 = \"f0:0d:fe:77:00:00:00:01\"\nshort = 0x0000\n\
         position = [0.0, 0.0]\ntx_dbm = 0.0\n",
    );
    for i in 0..n {
        let angle = i as f64 * 2.0 * std::f64::consts::PI / n as f64;
        s += &format!(
            "\n[[node]]\nname = \"bulb-{i}\"\neui64 = \"{}\"\nshort = 0x{:04x}\nposition = [{:.2}, {:.2}]\nrole = \"leaf\"\n\
             tx_dbm = 0.0\nduty_cycle = {{ mode = \"always-on\" }}\nboard = {{ vendor = \"riot-os.org\", class = \"{BOARD}\" }}\n\
             firmware = {{ version = \"1.0.0\", sequence = {installed} }}\nferry_aware = true\ncoap_block_size = {block_size}\n",
            eui(i),
            0x100 + i,
            3.0 * angle.cos(),
            3.0 * angle.sin(),
        );
    }
    s
}

/// Publishes sequence `seq` for the board into `repo/BOARD-seq/` with two slot images of `size`
/// bytes; returns the watch path.
fn publish(repo: &Path, seq: u64, size: usize) -> String {
    let folder = format!("{BOARD}-{seq}");
    let dir = repo.join(&folder);
    std::fs::create_dir_all(&dir).expect("repository folder");
    for slot in 0..2 {
        let line = format!("test firmware {BOARD} sequence {seq} slot {slot}\n");
        let image: Vec<u8> = line.bytes().cycle().take(size).collect();
        std::fs::write(dir.join(format!("slot{slot}.bin")), image).expect("image");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["publish", "--format", "riot", "--key"])
        .arg(TEST_ONLY_KEY)
        .args(["--seq", &seq.to_string(), "--vendor", "riot-os.org", "--class", BOARD])
        .args(["--uri", &format!("{GATEWAY_URI}/fw/{BOARD}/{seq}")])
        .arg("--slot")
        .arg("0x2000")
        .arg(dir.join("slot0.bin"))
        .arg("--slot")
        .arg("0x42000")
        .arg(dir.join("slot1.bin"))
        .arg("-o")
        .arg(dir.join("manifest.suit"))
        .output()
        .expect("ferry publish");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    format!("{folder}/manifest.suit")
}

fn config(radio_url: &str, watch: &str, devices: usize) -> String {
    let devices: Vec<String> = (0..devices).map(|i| format!("\"{}\"", eui(i))).collect();
    format!(
        "[radio]\nurl = \"{radio_url}\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n[coap]\nlisten = [\"[::1]:0\"]\n\
         [plan]\nmax_concurrent_per_parent = 8\nair_time_budget = 1.0\n\
         [[repository]]\nname = \"local\"\nurl = \"repo\"\nwatch = [\"{watch}\"]\npoll_interval_s = 5\n\
         [[authority]]\nname = \"riot-test\"\nkeys = [\"{TEST_ONLY_PUBLIC}\"]\n\
         [authority.scope]\nvendor_ids = [\"riot-os.org\"]\nclass_ids = [\"*\"]\ncomponent_ids = [\"*\"]\n\
         [[owner]]\nname = \"root\"\nuid = 0\n\
         [[group]]\nname = \"star\"\nadmin = \"root\"\ndevices = [{}]\n",
        devices.join(", ")
    )
}

/// `name{labels} value` from a scrape.
fn labelled(scrape: &str, name_and_labels: &str) -> f64 {
    scrape.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

fn metrics_addr(d: &mut Ferryd) -> std::net::SocketAddr {
    d.wait_ready().metrics_listen
}

/// Waits until `done` holds for the metrics, at most `limit`.
fn wait_metrics(d: &mut Ferryd, limit: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
    let addr = metrics_addr(d);
    let deadline = Instant::now() + limit;
    loop {
        let s = scrape(addr);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in {limit:?}; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn history(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("history")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("ferry history");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The installed sequence number ferry records for a device's RIOT component, and its source.
fn installed(socket: &Path, device: &str) -> (Option<u64>, String) {
    let out = ferry(socket, &["device", "show", "--json", device]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let c = &report["device"]["components"]["00"];
    (c["value"].as_u64(), c["source"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn a_star_of_riot_devices_all_update() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(3, 5, 1024)).unwrap();
    let watch = publish(&dir.path().join("repo"), 6, 2048);
    let mut d = Ferryd::spawn(dir.path(), &config("sim:star.toml", &watch, 3));
    d.wait_radio_up();
    let s = wait_metrics(&mut d, Duration::from_secs(90), "three updates done", |s| {
        labelled(s, "ferry_updates_completed_total{result=\"done\"}") >= 3.0
    });
    assert!(labelled(&s, "ferry_delivery_bytes_total") >= 3.0 * 2048.0, "{s}");
    assert_eq!(labelled(&s, "ferry_updates_completed_total{result=\"failed\"}"), 0.0);
    assert_eq!(labelled(&s, "ferry_sessions{state=\"done\"}"), 3.0);

    let h = history(dir.path());
    for i in 0..3 {
        let hex = eui(i).replace(':', "");
        assert!(h.contains(&format!("device {hex} sequence 6: done — the device runs sequence number 6")), "{h}");
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
    eprintln!("star of 3: {:?} wall", started.elapsed());
}

#[test]
fn a_manifest_not_newer_than_installed_is_refused_before_any_trigger() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(2, 9, 1024)).unwrap();
    let watch = publish(&dir.path().join("repo"), 9, 1024);
    let mut d = Ferryd::spawn(dir.path(), &config("sim:star.toml", &watch, 2));
    d.wait_radio_up();
    // Wait until ferry knows what both devices run (they report 9 on /ferry/status).
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..2).any(|i| installed(&d.socket(), &eui(i)).0 != Some(9)) {
        assert!(Instant::now() < deadline, "facts never learned; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    d.wait_log("serving the update to devices");
    let out = ferry(&d.socket(), &["plan"]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("sequence 9 not higher than installed 9"), "{plan}");
    // A few plans later still nothing was started or triggered.
    std::thread::sleep(Duration::from_secs(3));
    let s = scrape(metrics_addr(&mut d));
    assert_eq!(labelled(&s, "ferry_delivery_bytes_total"), 0.0, "{s}");
    assert!(!history(dir.path()).contains("triggered"));
    assert!(!d.log().contains("delivery session started"), "{}", d.log());
}

#[test]
fn an_operator_cancels_a_running_session() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(1, 5, 64)).unwrap();
    let watch = publish(&dir.path().join("repo"), 6, 16 * 1024);
    let mut d = Ferryd::spawn(dir.path(), &config("sim:star.toml", &watch, 1));
    d.wait_radio_up();
    let deadline = Instant::now() + Duration::from_secs(30);
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

/// Kills the simulator when the test ends, however it ends, after asking it for its report.
struct Sim(Option<Child>);

impl Sim {
    /// SIGTERM, then its JSON report (every node's ground truth).
    fn report(mut self) -> serde_json::Value {
        let child = self.0.take().expect("running");
        let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
        assert!(ok.success());
        let out = child.wait_with_output().expect("sim exits");
        serde_json::from_slice(&out.stdout).expect("the simulator's JSON report")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn ferryd_killed_mid_delivery_resumes_without_a_second_trigger() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("star.toml"), star(1, 5, 64)).unwrap();
    let link = dir.path().join("ttySIM0");
    let sim = Sim(Some(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["sim", "--json", "--scenario"])
            .arg(dir.path().join("star.toml"))
            .arg("--pty")
            .arg(&link)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ferry sim"),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !link.exists() {
        assert!(Instant::now() < deadline, "the simulator's pty never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let watch = publish(&dir.path().join("repo"), 6, 4096);
    let url = format!("spinel+hdlc+uart://{}", link.display());
    let cfg = config(&url, &watch, 1);
    let mut d = Ferryd::spawn(dir.path(), &cfg);
    d.wait_radio_up();
    // Kill ferryd once the payload was served whole: the device installs while ferry is gone.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let status = common::status(&d.socket()).unwrap();
        if status.sessions.iter().any(|l| l.state == "rebooting") {
            break;
        }
        assert!(Instant::now() < deadline, "never rebooting: {:?}\n{}", status.sessions, d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    d.child.kill().expect("SIGKILL");
    d.child.wait().expect("reaped");

    let mut d = Ferryd::spawn(dir.path(), &cfg);
    d.wait_radio_up();
    wait_metrics(&mut d, Duration::from_secs(90), "the resumed session done", |s| {
        labelled(s, "ferry_updates_completed_total{result=\"done\"}") >= 1.0
    });
    let h = history(dir.path());
    assert!(h.contains("resumed while rebooting"), "{h}");
    assert_eq!(h.matches("planned → triggered").count(), 1, "{h}");
    assert_eq!(installed(&d.socket(), &eui(0)).0, Some(6));
    drop(d);

    // The device's own record: one trigger, one install.
    let report = sim.report();
    let node = report["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "bulb-0").unwrap().clone();
    let fw = &node["firmware"];
    assert_eq!(fw["installed_sequence"], 6, "{fw}");
    assert_eq!(fw["history"].as_array().unwrap().len(), 1, "exactly one trigger: {fw}");
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
    let mut d = Ferryd::spawn(dir.path(), &config("sim:star.toml", &watch, 2));
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
