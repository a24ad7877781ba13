//! Sleepy devices found and updated through ferry: the simulated nodes boot as RIOT 6LNs (router
//! solicitation, registration with ARO at the address they poll from, a DIS for the DODAG),
//! ferry discovers them from their registrations, learns how long they sleep, and paces its
//! requests to their polls.
//!
//! The first test runs ferry's stack in virtual time ([`SimHost`]); the others run a real
//! ferryd on the simulated flat and check the simulator's ground truth (`ferry sim --pty`
//! report).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ferry, scrape, Ferryd};

use ferry::coap::Router;
use ferry::net::MacAddr;
use ferry::sim::host::{HostConfig, SimHost};
use ferry::sim::scenario::DutyCycle;
use ferry::sim::{Scenario, World};

fn home() -> Scenario {
    Scenario::load(Path::new(common::HOME_SCENARIO)).expect("home.toml")
}

/// Every node of the flat registers with ferry (sleepy ones at the short address they poll
/// from), joins the DODAG, and ferry learns how long each sleepy one sleeps.
#[test]
fn every_node_of_the_flat_registers_and_joins_the_dodag() {
    let scenario = home();
    let world = World::new(&scenario).expect("world");
    let mut host = SimHost::new(world, HostConfig::for_scenario(&scenario), Router::new());
    // Ten minutes: two polls of even the 300 s sensor.
    host.run_until(10 * 60 * 1_000_000);
    let topology = host.border().topology(host.now());
    for n in &scenario.nodes {
        let r = topology
            .registered
            .iter()
            .find(|r| r.eui64.0 == n.eui64.0)
            .unwrap_or_else(|| panic!("{} never registered: {:#?}", n.name, topology.registered));
        let sleepy = matches!(n.duty_cycle, DutyCycle::Sleepy { .. });
        assert_eq!(r.sleepy, sleepy, "{}", n.name);
        if let DutyCycle::Sleepy { poll_period_s, .. } = n.duty_cycle {
            assert_eq!(r.mac, MacAddr::Short(n.short).to_string(), "{} is reached where it polls", n.name);
            // Extra wakes (solicitations) split some sleeps in the first minutes.
            let gap = r.poll_gap_ms.unwrap_or_else(|| panic!("{}: no sleep heard", n.name)) as f64 / 1e3;
            let least = if poll_period_s <= 60.0 { 0.8 } else { 0.5 };
            assert!(gap >= poll_period_s * least && gap <= poll_period_s * 2.2, "{}: slept {gap} s", n.name);
        }
        assert!(topology.node(r.eui64).is_some(), "{} not in the DODAG: {:#?}", n.name, topology.nodes);
    }
    let in_dodag: BTreeSet<_> = topology.nodes.iter().filter_map(|n| n.eui64.map(|e| e.0)).collect();
    assert_eq!(in_dodag.len(), scenario.nodes.len());
    // The flat as ferry sees it: a star, every device one hop from ferry.
    let fleet = topology.to_fleet();
    for n in &scenario.nodes {
        use ferry::fleet::topology::Topology as _;
        assert_eq!(fleet.hops(ferry::fleet::Eui64(n.eui64.0)), Some(1), "{}", n.name);
    }
}

// ---------------------------------------------------------------- through a real ferryd

/// ferry's address on the LoWPAN: the scenario's prefix and the gateway RCP's EUI-64.
const GATEWAY_URI: &str = "coap://[fd00:f3:e5::f20d:fe77:0:1]";
/// The community's OS build and a vendor's application build: each device type compiles in
/// the key of the authority that signs its updates.
const OS: (&str, &str) = ("riot-os.org", "nrf52840dk");
const APP: (&str, &str) = ("acme.example", "acme-window");

fn eui(i: usize) -> String {
    format!("02:00:fe:77:00:00:02:{i:02x}")
}

/// One star device: its board, its poll period if it sleeps, and when its low battery is
/// charged if it starts low.
struct Spec {
    board: (&'static str, &'static str),
    poll_s: Option<f64>,
    charged_at_s: Option<f64>,
}

/// The star: twelve ferry-aware RIOT nodes one hop from ferry, half of them sleepy
/// (short poll periods keep the test's wall time sane), six running the community's OS build
/// and six a vendor's application build; one sleepy one starts with a low battery.
fn star12(charged_at_s: f64) -> Vec<Spec> {
    (0..12)
        .map(|i| Spec {
            board: if i < 6 { OS } else { APP },
            poll_s: (i % 2 == 1).then_some(2.0 + (i % 4) as f64),
            charged_at_s: (i == 11).then_some(charged_at_s),
        })
        .collect()
}

fn scenario_text(devices: &[Spec], keys: &Path) -> String {
    let mut s = String::from(
        "seed = 8\nchannel = 26\npan_id = 0xface\n\n[gateway]\neui64 = \"f0:0d:fe:77:00:00:00:01\"\nshort = 0x0000\n\
         position = [0.0, 0.0]\ntx_dbm = 0.0\n",
    );
    for (i, d) in devices.iter().enumerate() {
        let angle = i as f64 * 2.0 * std::f64::consts::PI / devices.len() as f64;
        let duty = match d.poll_s {
            Some(p) => format!("{{ mode = \"sleepy\", poll_period_s = {p:.1}, jitter_s = 0.1, drift_ppm = 20.0 }}"),
            None => "{ mode = \"always-on\" }".into(),
        };
        let key = if d.board == OS { "community.pem.pub" } else { "acme.pem.pub" };
        let failure = match d.charged_at_s {
            Some(t) => format!("failure = {{ battery_percent = 12, charged_at_s = {t:.1} }}\n"),
            None => String::new(),
        };
        s += &format!(
            "\n[[node]]\nname = \"dev-{i}\"\neui64 = \"{}\"\nshort = 0x{:04x}\nposition = [{:.2}, {:.2}]\nrole = \"leaf\"\n\
             duty_cycle = {duty}\nboard = {{ vendor = \"{}\", class = \"{}\" }}\nkeys = [\"{}\"]\n\
             firmware = {{ version = \"1.0.0\", sequence = 5 }}\nferry_aware = true\ncoap_block_size = 256\n{failure}",
            eui(i),
            0x200 + i,
            3.0 * angle.cos(),
            3.0 * angle.sin(),
            d.board.0,
            d.board.1,
            keys.join(key).display(),
        );
    }
    s
}

fn ferry_cmd(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry")).args(args).output().expect("ferry");
    assert!(out.status.success(), "ferry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Publishes sequence `seq` for a board into `repo/CLASS-seq/`, signed with `key`; returns the
/// watch path.
fn publish(repo: &Path, key: &Path, board: (&str, &str), seq: u64, size: usize) -> String {
    let folder = format!("{}-{seq}", board.1);
    let dir = repo.join(&folder);
    std::fs::create_dir_all(&dir).expect("repository folder");
    for slot in 0..2 {
        let line = format!("{} {} sequence {seq} slot {slot}\n", board.0, board.1);
        std::fs::write(dir.join(format!("slot{slot}.bin")), &line.repeat(size / line.len() + 1).as_bytes()[..size])
            .expect("image");
    }
    let uri = format!("{GATEWAY_URI}/fw/{}/{seq}", board.1);
    let (s0, s1, out) = (dir.join("slot0.bin"), dir.join("slot1.bin"), dir.join("manifest.suit"));
    ferry_cmd(&[
        "publish",
        "--format",
        "riot",
        "--key",
        &key.display().to_string(),
        "--seq",
        &seq.to_string(),
        "--vendor",
        board.0,
        "--class",
        board.1,
        "--uri",
        &uri,
        "--slot",
        "0x2000",
        &s0.display().to_string(),
        "--slot",
        "0x42000",
        &s1.display().to_string(),
        "-o",
        &out.display().to_string(),
    ]);
    format!("{folder}/manifest.suit")
}

/// Two authorities, each scoped to its vendor: the community signs the OS, acme its
/// application.
fn config(radio_url: &str, watch: &[String], keys: &Path, devices: usize) -> String {
    let devices: Vec<String> = (0..devices).map(|i| format!("\"{}\"", eui(i))).collect();
    let watch: Vec<String> = watch.iter().map(|w| format!("\"{w}\"")).collect();
    format!(
        "[radio]\nurl = \"{radio_url}\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n[coap]\nlisten = [\"[::1]:0\"]\n\
         [plan]\nmax_concurrent_per_parent = 12\nair_time_budget = 1.0\n\
         [[repository]]\nname = \"local\"\nurl = \"repo\"\nwatch = [{}]\npoll_interval_s = 5\n\
         [[authority]]\nname = \"riot-community\"\nkeys = [\"{}\"]\n\
         [authority.scope]\nvendor_ids = [\"{}\"]\nclass_ids = [\"*\"]\ncomponent_ids = [\"*\"]\n\
         [[authority]]\nname = \"acme\"\nkeys = [\"{}\"]\n\
         [authority.scope]\nvendor_ids = [\"{}\"]\nclass_ids = [\"{}\"]\ncomponent_ids = [\"*\"]\n\
         [[owner]]\nname = \"root\"\nuid = 0\n\
         [[group]]\nname = \"star\"\nadmin = \"root\"\ndevices = [{}]\n",
        watch.join(", "),
        keys.join("community.pem.pub").display(),
        OS.0,
        keys.join("acme.pem.pub").display(),
        APP.0,
        APP.1,
        devices.join(", ")
    )
}

/// Kills the simulator when the test ends, however it ends, after asking it for its report.
struct Sim(Option<Child>);

impl Sim {
    fn spawn(scenario: &Path, link: &Path) -> Sim {
        let sim = Sim(Some(
            Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args(["sim", "--json", "--scenario"])
                .arg(scenario)
                .arg("--pty")
                .arg(link)
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
        sim
    }

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

/// `name{labels} value` from a scrape.
fn labelled(scrape: &str, name_and_labels: &str) -> f64 {
    scrape.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// The star through ferryd: twelve devices, six sleepy, an OS update signed by the
/// community and an application update signed by a vendor, each within its authority's
/// scope; the device with a low battery is held until it is charged, then updated. All of it
/// checked on the simulator's ground truth.
#[test]
fn a_star_with_sleepy_devices_and_two_authorities_all_update() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for name in ["community.pem", "acme.pem"] {
        ferry_cmd(&["keygen", "--out", &keys.join(name).display().to_string()]);
    }
    const CHARGED_AT_S: f64 = 45.0;
    let devices = star12(CHARGED_AT_S);
    std::fs::write(dir.path().join("star.toml"), scenario_text(&devices, &keys)).unwrap();
    let repo = dir.path().join("repo");
    let watch = vec![
        publish(&repo, &keys.join("community.pem"), OS, 6, 1024),
        publish(&repo, &keys.join("acme.pem"), APP, 6, 1024),
    ];
    let link = dir.path().join("ttySIM0");
    let sim = Sim::spawn(&dir.path().join("star.toml"), &link);
    let url = format!("spinel+hdlc+uart://{}", link.display());
    let mut d = Ferryd::spawn(dir.path(), &config(&url, &watch, &keys, devices.len()));
    d.wait_radio_up();
    let addr = d.wait_ready().metrics_listen;

    // The low-battery device is held by the plan while its battery is low.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let plan = String::from_utf8_lossy(&ferry(&d.socket(), &["plan"]).stdout).into_owned();
        if plan.contains("battery 12 % < 30 %") {
            break;
        }
        assert!(Instant::now() < deadline, "the low battery never held the device:\n{plan}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    let held_at = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(240);
    let s = loop {
        let s = scrape(addr);
        if labelled(&s, "ferry_updates_completed_total{result=\"done\"}") >= 12.0 {
            break s;
        }
        if Instant::now() > deadline {
            let plan = String::from_utf8_lossy(&ferry(&d.socket(), &["plan"]).stdout).into_owned();
            let topology = String::from_utf8_lossy(&ferry(&d.socket(), &["topology"]).stdout).into_owned();
            panic!("not all updated in time:\n{plan}\n{topology}\n{s}\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let wall = started.elapsed();
    assert_eq!(labelled(&s, "ferry_updates_completed_total{result=\"failed\"}"), 0.0, "{s}");
    let topology = String::from_utf8_lossy(&ferry(&d.socket(), &["topology"]).stdout).into_owned();
    assert!(topology.contains("sleepy, wakes every"), "duty cycles shown:\n{topology}");
    let log = d.log();
    drop(d);

    // The simulator's truth: every device runs sequence 6, installed by exactly one trigger,
    // and the low-battery one refused nothing (ferry never triggered it before its charge).
    let report = sim.report();
    let nodes = report["nodes"].as_array().expect("nodes");
    let (mut frames, mut bytes, mut air_us) = (0u64, 0u64, 0u64);
    for n in nodes {
        frames += n["radio"]["frames_sent"].as_u64().unwrap_or(0);
        bytes += n["radio"]["bytes_sent"].as_u64().unwrap_or(0);
        air_us += n["radio"]["air_time_us"].as_u64().unwrap_or(0);
    }
    for (i, spec) in devices.iter().enumerate() {
        let name = format!("dev-{i}");
        let node = nodes.iter().find(|n| n["name"] == name.as_str()).expect("node in the report");
        let fw = &node["firmware"];
        assert_eq!(fw["installed_sequence"], 6, "{name}: {fw}");
        let history = fw["history"].as_array().expect("history");
        assert_eq!(history.len(), 1, "{name}: one trigger, no refusal: {fw}\n{log}");
        if spec.charged_at_s.is_some() {
            let triggered_s = history[0]["triggered_us"].as_u64().unwrap_or(0) as f64 / 1e6;
            assert!(triggered_s >= CHARGED_AT_S, "{name} triggered at {triggered_s} s, before its charge");
        }
    }
    let sim_s = report["duration_us"].as_u64().unwrap_or(0) as f64 / 1e6;
    eprintln!(
        "star of 12 (6 sleepy, 2 authorities): all updated in {wall:?} wall ({sim_s:.1} s simulated), \
         battery hold seen at {held_at:?}; air: {frames} frames, {bytes} bytes, {:.2} s",
        air_us as f64 / 1e6
    );
}
