//! Devices behind the kernel's IP stack (`[[kernel_device]]`), through a real ferryd: an
//! independent RIOT SUIT node (tests/peers/riot_native.py, aiocoap) on loopback UDP is triggered
//! over `[coap] listen`, fetches the manifest and payload from ferry block-wise at 64 bytes,
//! verifies and installs them. Without `/suit/slot/*` (RIOT native) the session ends
//! "delivered, unconfirmed"; with riotboot slots it is confirmed by the slot change, and with
//! `/ferry/status` by the sequence number the node reports. The simulator's RIOT node
//! (`sim::RiotNode`) rides a real UDP socket too, so the slot confirmation is checked against
//! its ground truth. The same
//! ferryd is ferry's caching forward proxy for libcoap's `coap-client -P`: signed URIs are
//! served from the cache, anything else gets 5.05. `[coap] discover` finds the node by its
//! `/.well-known/core` (asked at its unicast address: loopback carries no multicast).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ferry, have_tool, scrape, Ferryd};
use ferry::sim::riot::{riot_test_key, Costs, RiotConfig};
use ferry::sim::scenario::Failures;
use ferry::sim::stack::StackConfig;
use ferry::sim::{RiotNode, Upper};
use ferry::suit::policy;

const TEST_ONLY_PUBLIC: &str = "2eaf3e1decf7d8b376ee9692a11a9f834d1dd66c3c431ca5ae919ea6dbdf2471";
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/riot_native.py");
const BOARD: &str = "native64";
const DEVICE: &str = "02:00:00:00:00:00:00:0a";
const IMAGE: usize = 3000;

/// A free UDP port on [::1] (the signed URIs must name ferry's port before ferryd binds it).
fn free_port() -> u16 {
    let s = UdpSocket::bind("[::1]:0").expect("bind [::1]:0");
    s.local_addr().expect("local addr").port()
}

/// Whether python3 with aiocoap, cbor2 and cryptography is there (CI requires it).
fn have_peer() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiocoap, cbor2, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var("FERRY_REQUIRE_TOOLS").as_deref() != Ok("1"), "aiocoap, cbor2 and cryptography needed");
        eprintln!("SKIP: python3 with aiocoap, cbor2 and cryptography is not available");
    }
    ok
}

/// The RIOT node: its process and its event log.
struct Node {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Node {
    fn spawn(dir: &Path, seq: u64, flags: &[&str]) -> Node {
        let log = dir.join("node.log");
        let mut cmd = Command::new("python3");
        cmd.arg(PEER).args(["--key", TEST_ONLY_PUBLIC, "--seq", &seq.to_string(), "--board", BOARD]).args(flags);
        let out = std::fs::File::create(&log).expect("node log");
        let err = out.try_clone().expect("node log");
        let child = cmd.stdout(out).stderr(err).spawn().expect("spawn the RIOT node");
        let mut node = Node { child, log, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(30);
        while node.port == 0 {
            node.port =
                node.events().lines().find_map(|l| l.strip_prefix("listening ")?.trim().parse().ok()).unwrap_or(0);
            assert!(Instant::now() < deadline, "the node did not start:\n{}", node.events());
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn events(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes sequence `seq` for the board, its URIs on ferry's `[coap] listen` port; returns
/// the watch path and the folder.
fn publish(repo: &Path, seq: u64, ferry_port: u16) -> (String, PathBuf) {
    common::riot::publish_for(repo, BOARD, seq, IMAGE, &format!("coap://[::1]:{ferry_port}"))
}

/// ferryd with a radio PAN of its own gateway only, `[coap] listen` on [::1], and the node as
/// its one kernel device.
fn config(ferry_port: u16, node_port: u16, watch: &str) -> String {
    format!(
        "[radio]\nurl = \"sim:pan.toml\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n[coap]\nlisten = [\"[::1]:{ferry_port}\"]\n\
         [[repository]]\nname = \"local\"\nurl = \"repo\"\nwatch = [\"{watch}\"]\npoll_interval_s = 5\n\
         [[authority]]\nname = \"riot-test\"\nkeys = [\"{TEST_ONLY_PUBLIC}\"]\n\
         [authority.scope]\nvendor_ids = [\"riot-os.org\"]\nclass_ids = [\"*\"]\ncomponent_ids = [\"*\"]\n\
         [[owner]]\nname = \"root\"\nuid = 0\n\
         [[group]]\nname = \"lab\"\nadmin = \"root\"\ndevices = [\"{DEVICE}\"]\n\
         [[kernel_device]]\naddress = \"::1\"\nport = {node_port}\neui64 = \"{DEVICE}\"\nname = \"riot-native\"\n\
         mains_powered = true\nfree_storage_bytes = 1048576\ninstalled_sequence = 5\n"
    )
}

const PAN: &str = "seed = 7\nchannel = 26\npan_id = 0xface\n\n[gateway]\neui64 = \"f0:0d:fe:77:00:00:00:01\"\n\
                   short = 0x0000\nposition = [0.0, 0.0]\ntx_dbm = 0.0\n";

fn labelled(scrape: &str, name_and_labels: &str) -> f64 {
    scrape.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

fn wait_completed(d: &mut Ferryd, result: &str, node: &Node) -> String {
    let addr = d.wait_ready().metrics_listen;
    let deadline = Instant::now() + Duration::from_secs(120);
    let name = format!("ferry_updates_completed_total{{result=\"{result}\"}}");
    loop {
        let s = scrape(addr);
        if labelled(&s, &name) >= 1.0 {
            return s;
        }
        assert!(Instant::now() < deadline, "no {result} session; node:\n{}\nlog:\n{}", node.events(), d.log());
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

/// Runs one delivery to a node (started with `flags`) and returns ferryd, the node, the temp
/// dir, ferry's port and the published folder.
fn deliver(flags: &[&str], result: &str) -> (Ferryd, Node, tempfile::TempDir, u16, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pan.toml"), PAN).expect("pan");
    let ferry_port = free_port();
    let (watch, published) = publish(&dir.path().join("repo"), 6, ferry_port);
    let node = Node::spawn(dir.path(), 5, flags);
    let mut d = Ferryd::spawn(dir.path(), &config(ferry_port, node.port, &watch));
    let s = wait_completed(&mut d, result, &node);
    assert_eq!(labelled(&s, "ferry_updates_completed_total{result=\"failed\"}"), 0.0, "{s}");
    (d, node, dir, ferry_port, published)
}

#[test]
fn a_riot_native_node_behind_the_kernel_ends_delivered_unconfirmed() {
    if !have_peer() {
        return;
    }
    let (mut d, node, dir, ferry_port, published) = deliver(&[], "unconfirmed");
    let events = node.events();
    // One trigger; the manifest and the slot-0 image fetched whole at 64-byte blocks.
    assert_eq!(events.matches("triggered ").count(), 1, "{events}");
    assert!(events.contains(&format!("triggered coap://[::1]:{ferry_port}/fw/{BOARD}/6/manifest.suit")), "{events}");
    assert!(events.contains(&format!("/fw/{BOARD}/6/slot0.bin {IMAGE} 47")), "{events}");
    assert!(events.contains("installed 6 slot 0"), "{events}");
    let s = scrape(d.wait_ready().metrics_listen);
    assert_eq!(labelled(&s, "ferry_updates_completed_total{result=\"done\"}"), 0.0, "never a confirmed success");
    let h = history(dir.path());
    let hex = DEVICE.replace(':', "");
    assert!(h.contains(&format!("device {hex} sequence 6: unconfirmed")), "{h}");
    // ferry did not record a sequence number it could not see.
    let out = ferry(&d.socket(), &["device", "show", "--json", DEVICE]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_ne!(report["device"]["components"]["00"]["source"], "delivery", "{report}");
    // Not delivered again, by this ferryd or after a restart: the node saw one trigger.
    const NOT_AGAIN: &str = "delivered unconfirmed; not delivered again";
    d.wait_log(NOT_AGAIN);
    let config = std::fs::read_to_string(dir.path().join("ferry.toml")).expect("config");
    let before = d.log().matches(NOT_AGAIN).count();
    drop(d);
    let mut d = Ferryd::spawn(dir.path(), &config);
    d.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.log().matches(NOT_AGAIN).count() <= before {
        assert!(Instant::now() < deadline, "the restarted ferryd never planned the device:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(node.events().matches("triggered ").count(), 1, "{}", node.events());

    // /.well-known/core on [coap] listen lists what is served.
    if !have_tool("coap-client-notls") {
        return;
    }
    let coap = |args: &[&str]| {
        let out = Command::new("coap-client-notls").args(["-B", "20"]).args(args).output().expect("coap-client");
        (out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let origin = format!("coap://[::1]:{ferry_port}");
    let (links, _) = coap(&[&format!("{origin}/.well-known/core")]);
    let links = String::from_utf8_lossy(&links);
    for path in ["manifest.suit", "slot0.bin", "slot1.bin"] {
        assert!(links.contains(&format!("</fw/{BOARD}/6/{path}>;ct=42;sz=")), "{links}");
    }
    // The forward proxy: a signed URI comes from the cache, block-wise (64 and 1024 bytes).
    let slot1 = std::fs::read(published.join("slot1.bin")).expect("slot1");
    for block in ["64", "1024"] {
        let file = dir.path().join(format!("proxied-{block}.bin"));
        let out = file.to_str().expect("utf-8 path");
        let (_, err) = coap(&["-P", &origin, "-b", block, "-o", out, &format!("{origin}/fw/{BOARD}/6/slot1.bin")]);
        let body = std::fs::read(&file).unwrap_or_default();
        assert!(body == slot1, "proxied slot1.bin ({} bytes, {err})", body.len());
    }
    // Anything else, never forwarded: 5.05.
    for uri in [format!("{origin}/fw/{BOARD}/6/other.bin"), "coap://[::1]:9/fw/x".to_owned()] {
        let (body, err) = coap(&["-P", &origin, &uri]);
        assert!(body.is_empty() && err.contains("5.05"), "{uri}: {err}");
    }
    drop(d);
}

#[test]
fn a_kernel_device_is_updated_while_the_radio_is_unplugged() {
    if !have_peer() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry_port = free_port();
    let (watch, _) = publish(&dir.path().join("repo"), 6, ferry_port);
    let node = Node::spawn(dir.path(), 5, &["--slots"]);
    let unplugged = dir.path().join("no-such-rcp");
    let config = config(ferry_port, node.port, &watch).replace(
        "[radio]\nurl = \"sim:pan.toml\"\n",
        &format!("[radio]\nurl = \"spinel+hdlc+uart://{}\"\nready_timeout_s = 1\n", unplugged.display()),
    );
    let mut d = Ferryd::spawn(dir.path(), &config);
    wait_completed(&mut d, "done", &node);
    let status = common::status(&d.socket()).expect("status");
    assert!(!status.radio.up, "{:?}", status.radio);
    assert!(node.events().contains("installed 6 slot 1"), "{}", node.events());
}

#[test]
fn a_riotboot_node_behind_the_kernel_is_confirmed_by_its_slot() {
    if !have_peer() {
        return;
    }
    let (d, node, dir, _, _) = deliver(&["--slots"], "done");
    let events = node.events();
    assert_eq!(events.matches("triggered ").count(), 1, "{events}");
    // It runs slot 0 and installs into slot 1, at the slot-1 image's signed URI.
    assert!(events.contains(&format!("/fw/{BOARD}/6/slot1.bin {IMAGE} 47")), "{events}");
    assert!(events.contains("installed 6 slot 1"), "{events}");
    let h = history(dir.path());
    let hex = DEVICE.replace(':', "");
    assert!(h.contains(&format!("device {hex} sequence 6: done")), "{h}");
    assert!(h.contains("active slot moved from 0 to 1"), "{h}");
    let status = common::status(&d.socket()).expect("status");
    assert!(status.sessions.iter().any(|l| l.state == "done" && l.fetched == IMAGE as u64), "{:?}", status.sessions);
}

#[test]
fn a_node_that_lists_suit_trigger_is_discovered() {
    if !have_peer() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pan.toml"), PAN).expect("pan");
    let node = Node::spawn(dir.path(), 5, &[]);
    let config = format!(
        "[radio]\nurl = \"sim:pan.toml\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n[coap]\nlisten = [\"[::1]:0\"]\ndiscover = [\"[::1]:{}\"]\n",
        node.port
    );
    let mut d = Ferryd::spawn(dir.path(), &config);
    d.wait_ready();
    // ::1's interface ID, 0000:0000:0000:0001, with the U/L bit flipped back.
    d.wait_log("kernel device answered a discovery query");
    let out = ferry(&d.socket(), &["device", "show", "--json", "02:00:00:00:00:00:00:01"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["device"]["lifecycle"], "discovered", "{report}");
}

#[test]
fn a_native_node_with_ferry_status_is_confirmed_by_what_it_reports() {
    if !have_peer() {
        return;
    }
    let (_d, node, dir, _, _) = deliver(&["--ferry-status"], "done");
    let events = node.events();
    assert_eq!(events.matches("triggered ").count(), 1, "{events}");
    assert!(events.contains("installed 6 slot 0"), "{events}");
    let h = history(dir.path());
    let hex = DEVICE.replace(':', "");
    assert!(h.contains(&format!("device {hex} sequence 6: done — the device runs sequence number 6")), "{h}");
}

/// The simulator's RIOT node on a real UDP socket on [::1], in real time, on its own thread.
struct SimNode {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<RiotNode>>,
}

impl SimNode {
    fn spawn(installed: u64) -> SimNode {
        let socket = UdpSocket::bind("[::1]:0").expect("bind the node's socket");
        let port = socket.local_addr().expect("local addr").port();
        let vendor_id = policy::vendor_id("riot-os.org");
        let class_id = policy::class_id(&vendor_id, BOARD);
        let cfg = RiotConfig {
            name: "sim-native".into(),
            stack: StackConfig {
                pan_id: 0xface,
                eui64: [0x02, 0, 0, 0, 0, 0, 0, 0x0b],
                short: None,
                prefix: "fd00::".parse().expect("prefix"),
                default_router: None,
                rpl: None,
                // Its CoAP rides kernel UDP: no LoWPAN router to find.
                router: false,
                router_discovery: false,
                coap: ferry::coap::Config { rng_seed: 11, ..ferry::coap::Config::default() },
            },
            board: BOARD.into(),
            vendor_id,
            class_id,
            keys: riot_test_key().into_iter().collect(),
            installed_sequence: installed,
            block_size: 64,
            ferry_aware: false,
            costs: Costs::for_board(BOARD),
            failures: Failures::default(),
            seed: 11,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut node = RiotNode::new(cfg).over_udp();
            let start = Instant::now();
            let now_us = || u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            let mut buf = vec![0u8; 2048];
            while !stopped.load(Ordering::Relaxed) {
                node.handle_timeout(now_us());
                while let Some(((ip, port), bytes)) = node.stack_mut().take_udp() {
                    let _ = socket.send_to(&bytes, SocketAddr::from((ip, port)));
                }
                let now = now_us();
                let wait = node.poll_timeout().map_or(20_000, |t| t.saturating_sub(now)).clamp(200, 20_000);
                socket.set_read_timeout(Some(Duration::from_micros(wait))).expect("read timeout");
                if let Ok((n, SocketAddr::V6(from))) = socket.recv_from(&mut buf) {
                    // Booting: its network is down, what arrives is lost.
                    if !node.radio_silent() {
                        node.stack_mut().push_udp((*from.ip(), from.port()), buf[..n].to_vec());
                    }
                }
            }
            node
        });
        SimNode { port, stop, thread: Some(thread) }
    }

    fn stop(mut self) -> RiotNode {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("running").join().expect("the node's thread")
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn the_simulators_riot_node_on_kernel_udp_is_updated_and_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pan.toml"), PAN).expect("pan");
    let ferry_port = free_port();
    let (watch, _) = publish(&dir.path().join("repo"), 6, ferry_port);
    let node = SimNode::spawn(5);
    let mut d = Ferryd::spawn(dir.path(), &config(ferry_port, node.port, &watch));
    let addr = d.wait_ready().metrics_listen;
    let deadline = Instant::now() + Duration::from_secs(120);
    while labelled(&scrape(addr), "ferry_updates_completed_total{result=\"done\"}") < 1.0 {
        assert!(Instant::now() < deadline, "no done session; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    let node = node.stop();
    // Ground truth: it runs the update from its other slot, after one trigger and one reboot.
    let truth = node.truth();
    assert_eq!((truth.installed_sequence, truth.active_slot, truth.reboots), (6, 1, 1), "{truth:?}");
    assert_eq!(truth.history.len(), 1, "one trigger: {truth:?}");
    let h = history(dir.path());
    assert!(h.contains("active slot moved from 0 to 1") || h.contains("runs sequence number 6"), "{h}");
}
