//! Simulated RIOT nodes update themselves over the medium, in virtual time, from a plain CoAP
//! server (no ferry logic): an external node with its own 6LoWPAN interface and CoAP endpoint
//! serving a signed RIOT (draft-09) envelope and two slot images as static resources. Then one
//! test per failure knob, each with RIOT's outcome, and a sleepy node.

use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use ferry::coap::{self, content_format, Event, Method, Request, Router, StaticResource};
use ferry::net::MacAddr;
use ferry::sim::medium::NodeId;
use ferry::sim::riot::{Refusal, UpdateError, UpdateOutcome};
use ferry::sim::stack::{NodeStack, StackConfig, COAP_PORT};
use ferry::sim::{NodeTruth, Scenario, World};
use ferry::suit::emit::{ImageSpec, ManifestSpec};
use ferry::suit::{policy, CoseAlg, Digest, Format, SigningKey};

const TEST_KEY: &str = include_str!("../src/suit/testdata/test_ed25519_private_TESTONLY.pem");
const PREFIX: &str = "fd00:f3:e5::";
const S: u64 = 1_000_000;

/// A scenario of one RIOT node (nrf52840dk, sequence 10) plus `extra` keys for it.
fn scenario(extra: &str) -> Scenario {
    let text = format!(
        r#"
seed = 5
[gateway]
eui64 = "f0:0d:00:00:00:00:00:01"
position = [0.0, 0.0]

[[node]]
name = "dev"
eui64 = "02:00:00:00:00:00:00:02"
short = 0x0002
position = [3.0, 0.0]
board = {{ vendor = "riot-os.org", class = "nrf52840dk" }}
firmware = {{ version = "1.0.0", sequence = 10 }}
{extra}
"#
    );
    Scenario::parse(Path::new("riot.toml"), &text).unwrap()
}

/// The images per slot, and the signed envelope naming them on the server.
fn update(sequence: u64, size: usize, class: &str) -> (Vec<u8>, [Vec<u8>; 2]) {
    update_from(server_address(GATEWAY_EUI), sequence, size, class)
}

fn update_from(server: Ipv6Addr, sequence: u64, size: usize, class: &str) -> (Vec<u8>, [Vec<u8>; 2]) {
    let images: [Vec<u8>; 2] =
        [0u8, 1].map(|slot| (0..size).map(|i| (i as u8).wrapping_mul(31) ^ slot.wrapping_add(0x5a)).collect());
    let vendor = policy::vendor_id("riot-os.org");
    let spec = ManifestSpec {
        sequence_number: sequence,
        component: ferry::suit::ComponentId(vec![vec![0]]),
        class_id: policy::class_id(&vendor, class),
        vendor_id: vendor,
        images: [0x1000u64, 0x80000]
            .iter()
            .zip(&images)
            .enumerate()
            .map(|(i, (&offset, img))| ImageSpec {
                slot: Some(offset),
                digest: Digest::sha256(img),
                size: img.len() as u64,
                uri: format!("coap://[{server}]/fw/slot{i}.bin"),
            })
            .collect(),
    };
    let key = SigningKey::from_pkcs8_pem(TEST_KEY).unwrap();
    (spec.build(Format::Riot, &[(&key, CoseAlg::EdDsa)]).unwrap(), images)
}

/// The EUI-64 of the gateway in the scenarios written here.
const GATEWAY_EUI: [u8; 8] = [0xf0, 0x0d, 0, 0, 0, 0, 0, 1];

fn server_address(eui: [u8; 8]) -> Ipv6Addr {
    let p: Ipv6Addr = PREFIX.parse().unwrap();
    ferry::net::ipv6::with_iid(p, ferry::net::ipv6::iid_from_mac(MacAddr::Ext(eui)))
}

/// A plain CoAP server on the medium in the border router's place (the gateway's addresses;
/// the simulated RCP stays off), outside the simulated devices.
struct Harness {
    world: World,
    server: NodeId,
    stack: NodeStack,
    device: Ipv6Addr,
    name: String,
    responses: Vec<coap::Response>,
}

impl Harness {
    fn new(scenario: &Scenario, envelope: Vec<u8>, images: [Vec<u8>; 2]) -> Harness {
        Harness::for_node(scenario, "dev", envelope, images)
    }

    fn for_node(scenario: &Scenario, name: &str, envelope: Vec<u8>, images: [Vec<u8>; 2]) -> Harness {
        let mut world = World::new(scenario).unwrap();
        let eui = scenario.gateway.eui64.0;
        let server = world.add_external(Some(eui)).unwrap();
        let mut router = Router::new();
        router.insert_static("/fw/riot.suit.latest.bin", StaticResource::new(envelope, content_format::OCTET_STREAM));
        for (i, img) in images.into_iter().enumerate() {
            router.insert_static(&format!("/fw/slot{i}.bin"), StaticResource::new(img, content_format::OCTET_STREAM));
        }
        let cfg = StackConfig {
            pan_id: scenario.pan_id,
            eui64: eui,
            // The devices' parent: their MAC polls go to this short address.
            short: Some(scenario.gateway.short),
            prefix: PREFIX.parse().unwrap(),
            default_router: None,
            rpl: None,
            // ferry's stand-in answers the nodes' router solicitations and registrations.
            router: true,
            router_discovery: false,
            coap: coap::Config::default(),
        };
        let stack = NodeStack::new(cfg, router);
        // The medium filters and ACKs for the server by the short address it will send from.
        world.device_mut(name).unwrap().1.config_mut(server).unwrap().short_addr = scenario.gateway.short;
        let device = world.riot(name).unwrap().address();
        Harness { world, server, stack, device, name: name.into(), responses: Vec::new() }
    }

    fn server_address(&self) -> Ipv6Addr {
        self.stack.address()
    }

    /// Holds the server's frames for the sleepy device until it polls (from its short address).
    fn device_is_sleepy(&mut self) {
        let short = self.world.scenario().node(&self.name).unwrap().short;
        let now = self.stack.instant(self.world.now());
        self.stack.iface_mut().add_neighbor(now, self.device, MacAddr::Short(short));
        self.stack.iface_mut().set_sleepy(MacAddr::Short(short), true);
    }

    fn request(&mut self, req: Request) {
        let now = self.stack.instant(self.world.now());
        self.stack.coap_mut().start_request(now, (self.device, COAP_PORT), req).unwrap();
        self.stack.flush(self.world.now());
    }

    /// POST /suit/trigger as `make suit/notify` does: the URL and one NUL byte.
    fn trigger(&mut self) {
        let mut req = Request::new(Method::Post, "/suit/trigger");
        req.payload = Bytes::from(format!("coap://[{}]/fw/riot.suit.latest.bin\0", self.server_address()));
        self.request(req);
    }

    fn truth(&self) -> NodeTruth {
        self.world.riot(&self.name).unwrap().truth().clone()
    }

    /// Runs world and server together until `until` µs or `done`.
    fn run(&mut self, until: u64, done: impl Fn(&Harness) -> bool) {
        let (mut last, mut same) = (u64::MAX, 0u32);
        loop {
            // Bounded: time must move on.
            same = if self.world.now() == last { same + 1 } else { 0 };
            last = self.world.now();
            assert!(
                same < 10_000,
                "stuck at {last} µs: {:?} {:?}",
                self.world.next_event_time(),
                self.stack.poll_timeout()
            );
            let tw = self.world.next_event_time();
            let ts = self.stack.poll_timeout();
            let Some(t) = [tw, ts].into_iter().flatten().min() else { break };
            let t = t.max(self.world.now());
            if t > until {
                break;
            }
            if tw == Some(t) {
                self.world.step(t);
            } else {
                self.world.run_until(t);
            }
            let now = self.world.now();
            for f in self.world.take_external_frames() {
                if f.node == self.server {
                    self.stack.handle_frame(now, &f.psdu, -60, f.lqi);
                }
            }
            if self.stack.poll_timeout().is_some_and(|t| t <= now) {
                self.stack.handle_timeout(now);
            }
            self.stack.run(now);
            self.sync_source_match();
            while let Some(psdu) = self.stack.poll_transmit(now) {
                assert!(self.world.external_transmit(self.server, &psdu), "server queue overflow");
            }
            while let Some(ev) = self.stack.coap_mut().poll_event() {
                if let Event::Response { response, .. } = ev {
                    self.responses.push(response);
                }
            }
            if done(self) {
                break;
            }
        }
    }

    /// The medium ACKs for the external server: Frame Pending follows its held frames.
    fn sync_source_match(&mut self) {
        let server = self.server;
        while let Some(change) = self.stack.iface_mut().poll_source_match() {
            let Some((_, medium)) = self.world.device_mut(&self.name) else { return };
            let Some(cfg) = medium.config_mut(server) else { return };
            match change {
                ferry::net::SourceMatch::Insert(MacAddr::Short(s)) => {
                    let _ = cfg.src_match.add_short(s);
                }
                ferry::net::SourceMatch::Remove(MacAddr::Short(s)) => {
                    let _ = cfg.src_match.remove_short(s);
                }
                _ => {}
            }
        }
    }

    fn finished(&self) -> bool {
        self.truth().history.last().is_some_and(|r| r.outcome != UpdateOutcome::InProgress)
            && !self.world.riot(&self.name).unwrap().is_updating()
    }

    fn get(&mut self, path: &str) -> coap::Response {
        self.fetch(path, 64)
    }

    /// A block-wise GET of the whole resource.
    fn fetch(&mut self, path: &str, max_size: usize) -> coap::Response {
        let before = self.responses.len();
        let now = self.stack.instant(self.world.now());
        let opts = coap::FetchOptions { szx: 2, max_size };
        self.stack.coap_mut().start_fetch(now, (self.device, COAP_PORT), Request::get(path), opts).unwrap();
        self.stack.flush(self.world.now());
        let deadline = self.world.now() + 30 * S;
        self.run(deadline, |h| h.responses.len() > before);
        self.responses.get(before).cloned().expect("an answer")
    }
}

/// Clemens (OVGU 2021): RIOT SUIT update of an 85 kB image over one 802.15.4 hop, seconds per
/// block size.
const CLEMENS_85K: [(u16, f64); 5] = [(32, 80.45), (64, 50.35), (128, 31.36), (256, 22.18), (512, 17.26)];

/// Simulated seconds from trigger to the new image running, for `config/sim/clemens-85k.toml`
/// at `block` bytes.
fn clemens_update_s(block: u16) -> f64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sim/clemens-85k.toml");
    let mut s = Scenario::load(&path).unwrap();
    s.nodes[0].coap_block_size = block;
    let (envelope, images) = update_from(server_address(s.gateway.eui64.0), 2, 85 * 1024, "nucleo-f767zi");
    let mut h = Harness::for_node(&s, "nucleo", envelope, images);
    h.trigger();
    h.run(600 * S, Harness::finished);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Installed { slot: 1 }, "{t:?}");
    (t.history[0].finished_us - t.history[0].triggered_us) as f64 / 1e6
}

#[test]
fn clemens_85k_update_times_within_20_percent() {
    let mut off = Vec::new();
    for (block, measured) in CLEMENS_85K {
        let simulated = clemens_update_s(block);
        println!("{block:>4} B blocks: simulated {simulated:6.2} s, measured {measured:6.2} s");
        if (simulated / measured - 1.0).abs() > 0.2 {
            off.push((block, simulated, measured));
        }
    }
    assert!(off.is_empty(), "outside ±20 %: {off:?}");
}

/// One update attempt of a node with `extra` scenario keys; returns the harness after it ended.
fn attempt(extra: &str, size: usize) -> Harness {
    let (envelope, images) = update(11, size, "nrf52840dk");
    let mut h = Harness::new(&scenario(extra), envelope, images);
    h.trigger();
    h.run(600 * S, Harness::finished);
    h
}

#[test]
fn device_updates_from_a_plain_coap_server() {
    let (envelope, images) = update(11, 4096, "nrf52840dk");
    let manifest_len = envelope.len() as u64;
    let mut h = Harness::new(&scenario(""), envelope, images);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("update.pcap");
    h.world.set_pcap(Box::new(std::fs::File::create(&pcap).unwrap())).unwrap();
    assert_eq!(&h.get("/suit/slot/active").payload[..], b"0");
    assert_eq!(&h.get("/riot/board").payload[..], b"nrf52840dk");
    let start = h.world.now();
    h.trigger();
    h.run(start + 600 * S, Harness::finished);

    let t = h.truth();
    let rec = &t.history[0];
    assert_eq!(rec.outcome, UpdateOutcome::Installed { slot: 1 }, "{t:?}");
    assert_eq!((t.installed_sequence, t.active_slot, t.reboots), (11, 1, 1));
    assert_eq!(rec.sequence, Some(11));
    assert_eq!(h.world.truths(), vec![("dev".to_string(), t.clone())]);
    assert_eq!(t.bytes_fetched, manifest_len + 4096);
    let took = rec.finished_us - rec.triggered_us;
    // 64 blocks of 64 bytes, a signature check (1.1 s) and a boot (1 s) on an nRF52840.
    assert!((2_500_000..10_000_000).contains(&took), "update took {took} µs");
    println!("4 KiB at 64-byte blocks: {:.2} s", took as f64 / 1e6);

    // After the reboot the node answers from its new slot.
    assert_eq!(&h.get("/suit/slot/active").payload[..], b"1");
    assert_eq!(&h.get("/suit/slot/inactive").payload[..], b"0");
    let wk = h.fetch("/.well-known/core", 1024);
    let links = String::from_utf8_lossy(&wk.payload).into_owned();
    for p in ["</suit/trigger>", "</suit/slot/active>", "</suit/version>", "</riot/board>"] {
        assert!(links.contains(p), "{links}");
    }
    assert!(!links.contains("/ferry/status"), "{links}");

    // The same manifest again: RIOT refuses a sequence number that is not higher.
    h.trigger();
    h.run(h.world.now() + 60 * S, |h| h.truth().history.len() == 2 && h.finished());
    let t = h.truth();
    assert_eq!(
        t.history[1].outcome,
        UpdateOutcome::Failed { error: UpdateError::SequenceNumber { offered: 11, installed: 11 } }
    );
    assert_eq!((t.installed_sequence, t.active_slot, t.reboots), (11, 1, 1));

    h.world.finish_pcap().unwrap();
    tshark_decodes(&pcap);
}

#[test]
fn flash_write_error_aborts_and_keeps_the_old_slot() {
    let h = attempt("failure = { flash_write_error_rate = 1.0 }", 8192);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Failed { error: UpdateError::FlashWrite { offset: 0 } });
    assert_eq!((t.installed_sequence, t.active_slot, t.reboots), (10, 0, 0));
}

#[test]
fn corrupt_write_fails_the_digest_and_erases_the_slot() {
    let mut h = attempt("failure = { corrupt_write = true }", 2048);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Failed { error: UpdateError::DigestMismatch });
    assert_eq!((t.installed_sequence, t.active_slot, t.reboots), (10, 0, 0));
    assert_eq!(t.bytes_fetched as usize, 2048 + update(11, 2048, "nrf52840dk").0.len());
    assert_eq!(&h.get("/suit/slot/active").payload[..], b"0");
}

#[test]
fn power_loss_mid_transfer_reboots_on_the_old_slot() {
    let h = attempt("failure = { power_loss_at_byte = 1000 }", 4096);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Failed { error: UpdateError::PowerLoss { written: 1024 } });
    assert_eq!((t.installed_sequence, t.active_slot, t.reboots), (10, 0, 1));
    assert!(t.bytes_fetched < 2048, "the transfer stopped at the power loss: {t:?}");
}

#[test]
fn boot_failure_falls_back_to_the_old_slot() {
    let mut h = attempt("failure = { boot_failure = true }", 1024);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Failed { error: UpdateError::BootFailure });
    // Into the new slot, which fails, and back.
    assert_eq!((t.installed_sequence, t.active_slot, t.reboots), (10, 0, 2));
    assert_eq!(&h.get("/suit/slot/active").payload[..], b"0");
}

#[test]
fn a_transient_failure_hits_the_first_update_only_and_is_reported() {
    let mut h = attempt("failure = { boot_failure = true, failing_updates = 1 }\nferry_aware = true", 1024);
    // `/ferry/status` says which update failed and how, after the fallback reboot.
    let status = h.get("/ferry/status");
    let parsed = ferry::deliver::session::parse_status(&status.payload).expect("a status");
    assert_eq!((parsed.seq, parsed.failed), (10, Some((11, "boot-failure".to_owned()))));
    h.trigger();
    h.run(h.world.now() + 600 * S, |h| h.truth().history.len() == 2 && h.finished());
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Failed { error: UpdateError::BootFailure });
    assert_eq!(t.history[1].outcome, UpdateOutcome::Installed { slot: 1 }, "{t:?}");
    assert_eq!((t.installed_sequence, t.active_slot), (11, 1));
    let parsed = ferry::deliver::session::parse_status(&h.get("/ferry/status").payload).expect("a status");
    assert_eq!((parsed.seq, parsed.failed), (11, None), "an accepted trigger clears the report");
}

#[test]
fn low_battery_refuses_the_trigger() {
    let mut h = attempt("failure = { battery_percent = 10 }\nferry_aware = true", 1024);
    h.run(h.world.now() + 5 * S, |h| !h.responses.is_empty());
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Refused { reason: Refusal::LowBattery });
    assert_eq!((t.installed_sequence, t.active_slot, t.reboots, t.bytes_fetched), (10, 0, 0, 0));
    assert_eq!(h.responses[0].code, coap::Code::ServiceUnavailable);
    // A ferry-aware node says why.
    let status = h.get("/ferry/status");
    assert_eq!(status.content_format, Some(content_format::CBOR));
    let mut d = minicbor::Decoder::new(&status.payload);
    assert_eq!(d.map().unwrap(), Some(3));
    assert_eq!((d.str().unwrap(), d.u8().unwrap()), ("battery", 10));
    assert_eq!(d.str().unwrap(), "free_storage");
    assert!(d.u32().unwrap() > 0);
    assert_eq!(d.str().unwrap(), "installed");
    assert_eq!(d.array().unwrap(), Some(1));
    assert_eq!(d.u64().unwrap(), 10);
}

#[test]
fn wrong_class_is_refused_before_any_download() {
    let (envelope, images) = update(11, 1024, "samr21-xpro");
    let mut h = Harness::new(&scenario(""), envelope.clone(), images);
    h.trigger();
    h.run(120 * S, Harness::finished);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Failed { error: UpdateError::Class });
    assert_eq!((t.installed_sequence, t.reboots, t.bytes_fetched), (10, 0, envelope.len() as u64));
}

#[test]
fn sleepy_device_stays_awake_for_the_transfer_then_sleeps_again() {
    let duty = r#"duty_cycle = { mode = "sleepy", poll_period_s = 5.0, listen_window_ms = 10.0 }"#;
    let (envelope, images) = update(11, 2048, "nrf52840dk");
    let mut h = Harness::new(&scenario(duty), envelope, images);
    h.device_is_sleepy();
    h.trigger();
    h.run(600 * S, Harness::finished);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Installed { slot: 1 }, "{t:?}");
    assert_eq!((t.installed_sequence, t.active_slot), (11, 1));
    let done = t.history[0].finished_us;
    println!("2 KiB to a sleepy device (5 s polls): {:.2} s", (done - t.history[0].triggered_us) as f64 / 1e6);

    // Back on its duty cycle: about one wake per 5 s, the radio mostly off.
    let on_before = h.world.medium().stats(h.world.device("dev").unwrap().node()).unwrap().radio_on_us;
    h.run(done + 60 * S, |_| false);
    h.world.run_until(done + 60 * S);
    let after: Vec<_> = h.world.wakes("dev").unwrap().into_iter().filter(|w| w.wake_us > done).collect();
    let wakes = after.iter().filter(|w| w.scheduled).count();
    // The rebooted node solicits its router and the DODAG (the stand-in has no RPL, so its
    // DISs go unanswered): each keeps it polling for its answer wait besides its duty cycle.
    let soliciting =
        after.iter().filter(|w| !w.scheduled).count() as u64 * ferry::net::iface::ANSWER_WAIT.as_micros() as u64;
    assert!((10..=14).contains(&wakes), "{wakes} wakes in 60 s");
    let on = h.world.medium().stats(h.world.device("dev").unwrap().node()).unwrap().radio_on_us - on_before;
    assert!(on.saturating_sub(soliciting) < 2 * S, "radio on {on} µs in the minute after the update");
}

fn tshark_decodes(pcap: &Path) {
    let output = match Command::new("tshark").arg("-r").arg(pcap).arg("-V").output() {
        Ok(o) => o,
        Err(e) => {
            if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("tshark is required (FERRY_REQUIRE_TOOLS=1) but cannot run: {e}");
            }
            println!("SKIPPED: tshark not available ({e}); install it with `apt-get install -y tshark`");
            return;
        }
    };
    assert!(output.status.success(), "tshark failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    for layer in ["6LoWPAN", "Internet Protocol Version 6", "Constrained Application Protocol", "Uri-Path: suit"] {
        assert!(text.contains(layer), "tshark output lacks {layer:?}");
    }
    for complaint in ["Malformed", "Expert Info (Error", "Bad FCS", "[incorrect"] {
        let line = text.lines().find(|l| l.contains(complaint));
        assert!(line.is_none(), "tshark complains: {line:?}");
    }
}

/// A device (with `dev_extra` keys) behind an RPL router, two hops from the server, which is
/// the DODAG root; the device updates once it has joined. Returns the harness and the pcap.
fn two_hop_update(dev_extra: &str) -> (Harness, tempfile::TempDir) {
    let text = format!(
        r#"
seed = 9
[gateway]
eui64 = "f0:0d:00:00:00:00:00:01"

[[node]]
name = "relay"
eui64 = "02:00:00:00:00:00:00:0a"
short = 0x000a
role = "router"
board = {{ vendor = "riot-os.org", class = "nrf52840dk" }}
firmware = {{ version = "1.0.0", sequence = 10 }}

[[node]]
name = "dev"
eui64 = "02:00:00:00:00:00:00:02"
short = 0x0002
parent = "relay"
board = {{ vendor = "riot-os.org", class = "nrf52840dk" }}
firmware = {{ version = "1.0.0", sequence = 10 }}
{dev_extra}

[[link]]
from = "relay"
to = "gateway"
prr = 1.0
rssi_dbm = -60

[[link]]
from = "dev"
to = "relay"
prr = 1.0
rssi_dbm = -60
"#
    );
    let s = Scenario::parse(Path::new("two-hops.toml"), &text).unwrap();
    let (envelope, images) = update(11, 2048, "nrf52840dk");
    let mut h = Harness::new(&s, envelope, images);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("two-hops.pcap");
    h.world.set_pcap(Box::new(std::fs::File::create(&pcap).unwrap())).unwrap();
    // The server is the DODAG root, and out of the device's range.
    let dev_node = h.world.device("dev").unwrap().node();
    let server = h.server;
    h.world.device_mut("dev").unwrap().1.set_link_both(server, dev_node, None).unwrap();
    let now = h.stack.instant(h.world.now());
    let root = h.server_address();
    h.stack.iface_mut().enable_rpl_root(now, ferry::net::rpl_root::RplRootConfig::new(root, PREFIX.parse().unwrap()));

    let dev = h.device;
    h.run(300 * S, |h| h.stack.iface().rpl().is_some_and(|r| r.route(&dev).is_some()));
    let relay = h.world.riot("relay").unwrap().address();
    assert_eq!(h.stack.iface().rpl().unwrap().route(&dev), Some(vec![relay, dev]));
    let joined = *h.world.riot("dev").unwrap().stack().iface().rpl_node().unwrap().joined().unwrap();
    assert_eq!(joined.parent_mac, MacAddr::Short(0x000a), "nodes send from their short address");

    h.trigger();
    h.run(h.world.now() + 900 * S, Harness::finished);
    let t = h.truth();
    assert_eq!(t.history[0].outcome, UpdateOutcome::Installed { slot: 1 }, "{t:?}");
    assert_eq!((t.installed_sequence, t.active_slot), (11, 1));
    let relay_stats = h.world.riot("relay").unwrap().stack().iface().stats();
    assert!(relay_stats.forwarded > 2 * 2048 / 64, "every block crossed the relay: {relay_stats:?}");
    h.world.finish_pcap().unwrap();
    tshark_decodes(&pcap);
    (h, dir)
}

#[test]
fn device_two_hops_away_updates_through_an_rpl_router() {
    let (h, _dir) = two_hop_update("");
    let r = &h.truth().history[0];
    println!("2 KiB two hops at 64-byte blocks: {:.2} s", (r.finished_us - r.triggered_us) as f64 / 1e6);
}

#[test]
fn sleepy_device_behind_a_router_joins_and_updates() {
    // The router holds the unicast DIO (answering the device's DIS) and every frame for it.
    let (h, _dir) = two_hop_update(r#"duty_cycle = { mode = "sleepy", poll_period_s = 5.0 }"#);
    let relay = h.world.device("relay").unwrap().stats();
    assert!(relay.indirect_sent > 2 * 2048 / 64, "{relay:?}");
    let r = &h.truth().history[0];
    println!("2 KiB two hops to a sleepy device: {:.2} s", (r.finished_us - r.triggered_us) as f64 / 1e6);
}
