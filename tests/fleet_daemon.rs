//! The fleet through a real ferryd: the building scenario's devices commissioned from
//! ferry.toml, `ferry plan` explaining every one of them, admit/retire with audit rows, rights by
//! uid, and an approval turning "awaiting approval" into a start.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ferry, scrape, Ferryd};
use ferry::control::api::{DeviceReport, PlanAction, PlanReport, UpdateList};
use ferry::fleet::commission::{discovered_in, learned_in};
use ferry::fleet::device::{parse_eui64, Eui64, Known, LinkQuality, Parent, Position, Source};
use ferry::store::Store;
use ferry::suit::policy::{class_uuid, vendor_id};
use jiff::Timestamp;

const BUILDING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sim/building.toml");
const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/repository");
/// The test-only key `config/repository`'s update is signed with (shared/vectors/suit).
const RIOT_TEST_KEY: &str = "2eaf3e1decf7d8b376ee9692a11a9f834d1dd66c3c431ca5ae919ea6dbdf2471";
/// Not in ferry.toml: heard on the air, then admitted and retired by the test.
const STRAY: &str = "02:00:b1:d0:00:00:ff:01";
/// A uid that is neither root nor an owner in the test's ferry.toml.
const NOBODY: u32 = 65534;

/// One `[[node]]` of the building scenario.
struct Node {
    name: String,
    eui64: Eui64,
    parent: String,
    router: bool,
    sleepy: bool,
    vendor: String,
    class: String,
    sequence: u64,
}

fn building() -> Vec<Node> {
    let text = std::fs::read_to_string(BUILDING).expect("building scenario");
    let scenario: toml::Value = toml::from_str(&text).expect("valid TOML");
    let nodes = scenario.get("node").and_then(|n| n.as_array()).expect("[[node]]s");
    nodes
        .iter()
        .map(|n| {
            let s = |k: &str| n.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let board = n.get("board").expect("board");
            let b = |k: &str| board.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let mode = n.get("duty_cycle").and_then(|d| d.get("mode")).and_then(|m| m.as_str()).unwrap_or("");
            Node {
                name: s("name"),
                eui64: parse_eui64(&s("eui64")).expect("EUI-64"),
                parent: s("parent"),
                router: s("role") == "router",
                sleepy: mode == "sleepy",
                vendor: b("vendor"),
                class: b("class"),
                sequence: n.get("firmware").and_then(|f| f.get("sequence")).and_then(|v| v.as_integer()).unwrap_or(0)
                    as u64,
            }
        })
        .collect()
}

/// Corridor 1, 2 or 3 from a node name like `r2-3-l4`.
fn corridor(name: &str) -> String {
    format!("corridor-{}", name.get(1..2).unwrap_or("1"))
}

fn config(nodes: &[Node], landlord_uid: u32) -> String {
    let mut groups = String::new();
    for c in ["corridor-1", "corridor-2", "corridor-3"] {
        let devices: Vec<String> =
            nodes.iter().filter(|n| corridor(&n.name) == c).map(|n| format!("\"{}\"", n.eui64)).collect();
        groups += &format!(
            "[[group]]\nname = \"{c}\"\nadmin = \"landlord\"\noccupant = \"tenant\"\ntimezone = \"Europe/Berlin\"\ndevices = [{}]\n",
            devices.join(", ")
        );
    }
    format!(
        "[radio]\nurl = \"sim:{BUILDING}\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n[coap]\nlisten = []\n\
         [[repository]]\nname = \"local\"\nurl = \"{REPOSITORY}\"\nwatch = [\"samr21-xpro/manifest.suit\"]\n\
         [[authority]]\nname = \"riot-test\"\nkeys = [\"{RIOT_TEST_KEY}\"]\napproval = \"manual\"\n\
         [authority.scope]\nvendor_ids = [\"riot-os.org\"]\nclass_ids = [\"*\"]\ncomponent_ids = [\"*\"]\n\
         [[owner]]\nname = \"landlord\"\nuid = {landlord_uid}\n[[owner]]\nname = \"tenant\"\nuid = 4242\n{groups}"
    )
}

/// What the radio and the devices would have told ferry: identity, installed firmware, link,
/// battery, place in the DODAG. The one signed update in `config/repository` is for
/// samr21-xpro boards, so corridor 1's leaves are given that board.
fn seed(state_dir: &Path, nodes: &[Node]) {
    let store = Store::open(state_dir).expect("store");
    let now = Timestamp::now();
    let by_name: std::collections::BTreeMap<&str, Eui64> = nodes.iter().map(|n| (n.name.as_str(), n.eui64)).collect();
    let facts: Vec<_> = nodes
        .iter()
        .map(|n| {
            let samr21 = corridor(&n.name) == "corridor-1" && !n.router;
            let class = if samr21 { "samr21-xpro" } else { n.class.as_str() };
            // The samr21-xpro update is at sequence 2: those leaves run 1.
            let installed = if samr21 { 1 } else { n.sequence };
            let vendor = vendor_id(&n.vendor);
            let parent = by_name.get(n.parent.as_str()).map_or(Parent::BorderRouter, |e| Parent::Node(*e));
            let hops = if n.router { n.name.get(3..4).and_then(|h| h.parse().ok()).unwrap_or(1) } else { 0 };
            (n.eui64, vendor.to_string(), class_uuid(&vendor, class).to_string(), parent, hops, n.sleepy, installed)
        })
        .collect();
    let stray = parse_eui64(STRAY).expect("EUI-64");
    let seeded = tokio::runtime::Runtime::new().expect("runtime").block_on(store.call(move |c| {
        for (eui, vendor, class, parent, hops, sleepy, installed) in facts {
            discovered_in(c, eui, now, Source::Rpl).expect("discovered");
            learned_in(c, eui, now, |d| {
                d.vendor_id = Some(Known::new(vendor, Source::DeviceReport, now));
                d.class_id = Some(Known::new(class, Source::DeviceReport, now));
                d.components.insert("00".into(), Known::new(installed, Source::DeviceReport, now));
                d.link = Some(Known::new(LinkQuality { rssi_dbm: -62, lqi: 210, etx: 1.2 }, Source::Rpl, now));
                d.position = Some(Known::new(Position { parent, hops: hops.max(1) }, Source::Rpl, now));
                d.free_storage_bytes = Some(Known::new(200_000, Source::DeviceReport, now));
                if sleepy {
                    d.battery_percent = Some(Known::new(80, Source::DeviceReport, now));
                }
            })
            .expect("learned");
        }
        discovered_in(c, stray, now, Source::Radio).expect("stray heard");
        Ok(())
    }));
    seeded.expect("seeded");
}

fn ferry_ok(socket: &Path, args: &[&str]) -> String {
    let out = ferry(socket, args);
    assert!(out.status.success(), "ferry {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn plan(socket: &Path) -> PlanReport {
    serde_json::from_str(&ferry_ok(socket, &["plan", "--json"])).expect("a PlanReport")
}

fn show(socket: &Path, eui: &str) -> DeviceReport {
    serde_json::from_str(&ferry_ok(socket, &["device", "show", eui, "--json"])).expect("a DeviceReport")
}

fn reasons(report: &PlanReport, group: &str) -> Vec<String> {
    report.entries.iter().filter(|e| e.group == group).flat_map(|e| e.reasons.iter().map(|r| r.code.clone())).collect()
}

#[test]
fn building_fleet_is_planned_admitted_retired_and_approved_through_ferryd() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Others (the refused uid below) must reach the control socket inside.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let me = std::fs::metadata(dir.path()).expect("metadata").uid();
    let nodes = building();
    assert_eq!(nodes.len(), 99);
    seed(&dir.path().join("state"), &nodes);
    let mut ferryd = Ferryd::spawn(dir.path(), &config(&nodes, me));
    let status = ferryd.wait_ready();
    let socket = ferryd.socket();

    // The repository poll lands the samr21-xpro update.
    let deadline = Instant::now() + Duration::from_secs(30);
    let update = loop {
        let list: UpdateList = serde_json::from_str(&ferry_ok(&socket, &["update", "ls", "--json"])).expect("list");
        if let Some(u) = list.updates.into_iter().next() {
            break u;
        }
        assert!(Instant::now() < deadline, "the update never arrived; log:\n{}", ferryd.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(update.status, "waiting for approval");
    assert_eq!(update.sequence, 2);
    assert!(ferry_ok(&socket, &["update", "ls"]).contains("waiting for approval"));

    // Every device is in the plan with a next action or a reason a person can read.
    let asked = Instant::now();
    let before = plan(&socket);
    eprintln!("ferry plan --json on 100 devices: {} ms end to end", asked.elapsed().as_millis());
    assert_eq!(before.entries.len(), 100, "99 commissioned + the stray");
    for e in &before.entries {
        let explained = match e.action {
            PlanAction::Start | PlanAction::InProgress => e.update.is_some(),
            PlanAction::Wait => !e.reasons.is_empty(),
            PlanAction::UpToDate => e.summary.starts_with("up to date") || !e.reasons.is_empty(),
        };
        assert!(explained && !e.summary.is_empty(), "{e:?}");
    }
    // Corridor 1's leaves with a riot-os.org board are offered the update; acme's are not.
    let c1_leaves =
        nodes.iter().filter(|n| corridor(&n.name) == "corridor-1" && !n.router && n.vendor == "riot-os.org").count();
    let waiting = reasons(&before, "corridor-1").iter().filter(|c| *c == "awaiting-approval").count();
    assert_eq!(waiting, c1_leaves, "{}", ferry_ok(&socket, &["plan"]));
    let stray_line = before.entries.iter().find(|e| e.device == STRAY).expect("stray planned");
    assert!(stray_line.summary.contains("device is discovered, not admitted"), "{}", stray_line.summary);
    let text = ferry_ok(&socket, &["plan"]);
    assert!(text.contains("awaiting approval (authority riot-test"), "{text}");

    // Listed devices were commissioned from ferry.toml, with an audit row.
    let router = show(&socket, &nodes[0].eui64.to_string());
    assert_eq!(router.device.lifecycle.as_str(), "active");
    assert!(router.audit.iter().any(|a| a.action == "device commissioned" && a.actor == "config"), "{router:?}");
    assert!(ferry_ok(&socket, &["device", "ls"]).contains("100 devices"));

    // A uid that administers nothing is refused, with who may instead.
    if me == 0 {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["--socket", socket.to_str().expect("utf-8"), "device", "retire", &nodes[0].eui64.to_string()])
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("ferry as nobody");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "nobody retired a device");
        assert!(stderr.contains("only its admin `landlord`"), "{stderr}");
        assert_eq!(show(&socket, &nodes[0].eui64.to_string()).device.lifecycle.as_str(), "active");
    } else {
        eprintln!("not root: the refusal of another uid is covered by fleet::rights unit tests");
    }

    // Admit the stray into corridor 2, then retire it: each step has its audit row.
    let admitted = ferry_ok(&socket, &["device", "admit", STRAY, "--group", "corridor-2"]);
    assert!(admitted.contains("admitted 02:00:b1:d0:00:00:ff:01 in group corridor-2"), "{admitted}");
    let shown = show(&socket, STRAY);
    assert_eq!(shown.device.lifecycle.as_str(), "commissioned");
    assert_eq!(shown.device.group.as_ref().map(|g| g.source), Some(Source::Operator));
    let retired = ferry_ok(&socket, &["device", "retire", STRAY]);
    assert!(retired.contains("retired"), "{retired}");
    let shown = show(&socket, STRAY);
    assert_eq!(shown.device.lifecycle.as_str(), "decommissioned");
    assert!(shown.device.group.is_none(), "owner link forgotten");
    let actions: Vec<&str> = shown.audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["device discovered", "device admitted", "device retired"]);
    let text = ferry_ok(&socket, &["device", "show", STRAY]);
    assert!(text.contains("decommissioned") && text.contains("device retired"), "{text}");
    let again = ferry(&socket, &["device", "retire", STRAY]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already retired"));

    // Approval. The occupant's uid may not approve; the landlord approves for corridor 1 only.
    if me == 0 {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["--socket", socket.to_str().expect("utf-8"), "update", "approve", &update.digest])
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("ferry as nobody");
        assert!(String::from_utf8_lossy(&out.stderr).contains("may not change group"), "{out:?}");
    }
    let approved = ferry_ok(&socket, &["update", "approve", &update.digest[..12], "--group", "corridor-1"]);
    let expected = "approved local/samr21-xpro/manifest.suit@2 for group corridor-1: approved for corridor-1";
    assert!(approved.contains(expected), "{approved}");
    let after = plan(&socket);
    assert!(!reasons(&after, "corridor-1").iter().any(|c| c == "awaiting-approval"), "{after:?}");
    // ferryd's delivery room starts what the plan allows at once, so a start may already show
    // as a running session.
    let starts =
        after.entries.iter().filter(|e| matches!(e.action, PlanAction::Start | PlanAction::InProgress)).count();
    assert!(starts >= 1, "{}", ferry_ok(&socket, &["plan"]));
    let listed: UpdateList = serde_json::from_str(&ferry_ok(&socket, &["update", "ls", "--json"])).expect("list");
    let approval = &listed.updates[0].approvals[0];
    assert_eq!((approval.uid, approval.group.as_deref()), (me, Some("corridor-1")));
    let again = ferry_ok(&socket, &["update", "approve", &update.id, "--group", "corridor-1"]);
    assert!(again.contains("was already approved"), "{again}");

    let metrics = scrape(status.metrics_listen);
    // Exported per decision; the split between start and in-progress moves as sessions begin.
    let exported: f64 = ["start", "in-progress"]
        .iter()
        .filter_map(|d| common::sample(&metrics, &format!("ferry_plan_devices{{decision=\"{d}\"}}")))
        .sum();
    assert!(exported >= 1.0, "{metrics}");

    // A device added to ferry.toml is commissioned on SIGHUP; the retired stray stays retired.
    let added = "02:00:b1:d0:00:00:ff:02";
    let text = config(&nodes, me).replacen("devices = [", &format!("devices = [\"{added}\", \"{STRAY}\", "), 1);
    std::fs::write(dir.path().join("ferry.toml"), text).expect("rewrite config");
    ferryd.signal("HUP");
    ferryd.wait_log("configuration reloaded");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ferry(&socket, &["device", "show", added]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "never commissioned; log:\n{}", ferryd.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(show(&socket, added).device.lifecycle.as_str(), "commissioned");
    assert_eq!(show(&socket, STRAY).device.lifecycle.as_str(), "decommissioned");
    ferryd.wait_log("listed in ferry.toml but retired");
}
