//! The delivery engine against a RIOT-like device: two CoAP endpoints back to back in memory
//! (ferry with the catalog's serving resources, the device with `/suit/*`), a virtual clock
//! that jumps to the next deadline, and every record written to SQLite in a temp dir before the
//! action it causes, as the daemon does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry::coap::{
    self, content_format, Code, Config, Endpoint, Event, FetchOptions, Outcome, Request, RequestId, Resource, Response,
    Router, StaticResource,
};
use ferry::deliver::{
    Action, Catalog, DeviceTiming, Engine, EngineConfig, Offer, RequestTag, SessionId, SessionPlan, SessionRecord,
    State,
};
use ferry::fleet::Eui64;
use ferry::repo::BlobDigest;
use ferry::seeded::SplitMix64;
use ferry::store::sessions;
use ferry::suit::{Envelope, PublicKey};
use rusqlite::Connection;

const FERRY: u8 = 0;
const DEVICE: u8 = 1;
const ENVELOPE: &[u8] = include_bytes!("../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
const SLOT0: &[u8] = include_bytes!("../src/suit/testdata/riot_payload_slot0.bin");
const SLOT1: &[u8] = include_bytes!("../src/suit/testdata/riot_payload_slot1.bin");
const PUBLIC_KEY: &str = include_str!("../src/suit/testdata/test_ed25519_public.pem");
const NEW_SEQ: u64 = 2;

/// What the device offers to read back, and how its install ends.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Behaviour {
    /// `/suit/slot/active` (riotboot).
    slots: bool,
    /// `/ferry/status` with this sequence number after a successful install.
    status_seq_after: Option<u64>,
    /// The new image boots (else the bootloader falls back to the old slot).
    boots: bool,
    /// The device answers triggers but never fetches.
    fetches: bool,
}

const RIOT_BOARD: Behaviour = Behaviour { slots: true, status_seq_after: None, boots: true, fetches: true };

/// `/suit/trigger`: answers 2.01 and remembers the URL (RIOT's handler).
struct Trigger(Arc<Mutex<Vec<Bytes>>>);

impl Resource for Trigger {
    fn handle(&mut self, req: &Request) -> Outcome {
        self.0.lock().expect("lock").push(req.payload.clone());
        Outcome::Respond(Response::new(Code::Created))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    Manifest(RequestId),
    Payload(RequestId),
    Booting(Instant),
}

fn status_cbor(seq: u64, slot: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    minicbor::Encoder::new(&mut buf).map(2).and_then(|e| e.str("seq")?.u64(seq)?.str("slot")?.u8(slot)).expect("cbor");
    buf
}

struct Device {
    ep: Endpoint<u8>,
    behaviour: Behaviour,
    triggers: Arc<Mutex<Vec<Bytes>>>,
    handled_triggers: usize,
    phase: Phase,
    slot: u8,
    seq: u64,
    boot_time: Duration,
    /// Payload bytes the device received whole.
    installed_bytes: Option<usize>,
}

impl Device {
    fn new(behaviour: Behaviour, boot_time: Duration) -> Self {
        let triggers = Arc::new(Mutex::new(Vec::new()));
        let mut router = Router::new();
        router.insert("suit/trigger", Box::new(Trigger(triggers.clone())));
        router.insert_static("suit/version", StaticResource::new("NONE", content_format::TEXT_PLAIN));
        router.insert_static("riot/board", StaticResource::new("samr21-xpro", content_format::TEXT_PLAIN));
        if behaviour.slots {
            router.insert_static("suit/slot/active", StaticResource::new("0", content_format::TEXT_PLAIN));
        }
        if behaviour.status_seq_after.is_some() {
            router.insert_static("ferry/status", StaticResource::new(status_cbor(1, 0), content_format::CBOR));
        }
        let cfg = Config { rng_seed: 7, ..Config::default() };
        Device {
            ep: Endpoint::new(cfg, router),
            behaviour,
            triggers,
            handled_triggers: 0,
            phase: Phase::Idle,
            slot: 0,
            seq: 1,
            boot_time,
            installed_bytes: None,
        }
    }

    fn trigger_count(&self) -> usize {
        self.triggers.lock().expect("lock").len()
    }

    fn online(&self) -> bool {
        !matches!(self.phase, Phase::Booting(_))
    }

    fn step(&mut self, now: Instant) -> bool {
        let mut moved = false;
        if let Phase::Booting(until) = self.phase {
            if now >= until {
                if self.behaviour.boots {
                    self.slot = 1 - self.slot;
                    self.seq = self.behaviour.status_seq_after.unwrap_or(NEW_SEQ);
                }
                // The CoAP state of the old image is gone.
                let mut router = Router::new();
                std::mem::swap(self.ep.router_mut(), &mut router);
                self.ep = Endpoint::new(Config { rng_seed: 8, ..Config::default() }, router);
                self.ep.set_static(now, "suit/slot/active", self.slot.to_string());
                self.ep.set_static(now, "ferry/status", status_cbor(self.seq, self.slot));
                self.phase = Phase::Idle;
                moved = true;
            }
            return moved;
        }
        let triggers: Vec<Bytes> = self.triggers.lock().expect("lock").clone();
        if triggers.len() > self.handled_triggers && self.phase == Phase::Idle {
            self.handled_triggers = triggers.len();
            let url = triggers.last().expect("trigger");
            assert_eq!(url.last(), Some(&0), "RIOT's trigger payload ends in one NUL");
            let url = std::str::from_utf8(&url[..url.len() - 1]).expect("utf-8 URL");
            let path = url.strip_prefix("coap://[2001:db8::1]/").expect("URL names the gateway");
            if self.behaviour.fetches {
                let id = self.fetch(now, path);
                self.phase = Phase::Manifest(id);
            }
            moved = true;
        }
        while let Some(ev) = self.ep.poll_event() {
            moved = true;
            match (ev, self.phase) {
                (Event::Response { id, response, .. }, Phase::Manifest(m)) if id == m => {
                    assert_eq!(&response.payload[..], ENVELOPE);
                    let id = self.fetch(now, &format!("fw/suit_update/samr21-xpro/slot{}.bin", 1 - self.slot));
                    self.phase = Phase::Payload(id);
                }
                (Event::Response { id, response, .. }, Phase::Payload(p)) if id == p => {
                    self.installed_bytes = Some(response.payload.len());
                    self.phase = Phase::Booting(now + self.boot_time);
                }
                (Event::Failed { .. }, _) => self.phase = Phase::Idle,
                _ => {}
            }
        }
        moved
    }

    fn fetch(&mut self, now: Instant, path: &str) -> RequestId {
        self.ep
            .start_fetch(now, FERRY, Request::get(path), FetchOptions { szx: 2, max_size: 4096 })
            .expect("fetch starts")
    }

    fn deadline(&self) -> Option<Instant> {
        let boot = match self.phase {
            Phase::Booting(t) => Some(t),
            _ => None,
        };
        [self.ep.poll_timeout(), boot].into_iter().flatten().min()
    }
}

struct World {
    now: Instant,
    ferry: Endpoint<u8>,
    catalog: Catalog<u8>,
    offer: Offer,
    engine: Engine<u8>,
    conn: Connection,
    device: Device,
    requests: HashMap<RequestId, (SessionId, RequestTag)>,
    /// When set, persist actions are lost from then on (a crash before the write).
    crashed: bool,
    /// Datagrams (and their bytes) ferry → device and device → ferry.
    to_device: (u64, u64),
    to_ferry: (u64, u64),
    /// Seeded loss: (generator, probability) applied to every datagram.
    loss: Option<(SplitMix64, f64)>,
    /// Once the device holds the whole image, nothing ferry sends reaches it (its read-backs
    /// are lost on the way).
    deaf_after_install: bool,
    _dir: tempfile::TempDir,
}

/// ferry's endpoint; a restarted ferry has a new seed (fresh message IDs and tokens).
fn ferry_endpoint(catalog: &Catalog<u8>, offer: &Offer, seed: u64) -> Endpoint<u8> {
    let mut router = Router::new();
    let manifest = Envelope::parse(ENVELOPE)
        .expect("parse")
        .authenticate(&[PublicKey::from_pem(PUBLIC_KEY).expect("key")])
        .expect("verifies")
        .into_manifest();
    let payloads =
        [(BlobDigest::of(SLOT0), Bytes::from_static(SLOT0)), (BlobDigest::of(SLOT1), Bytes::from_static(SLOT1))];
    let again = catalog
        .add_manifest(&mut router, "samr21-xpro/riot.suit.2.bin", Bytes::from_static(ENVELOPE), &manifest, &payloads)
        .expect("catalog takes the verified manifest");
    assert_eq!(&again, offer);
    Endpoint::new(Config { rng_seed: seed, ..Config::default() }, router)
}

fn offer() -> (Catalog<u8>, Offer, Endpoint<u8>) {
    let catalog = Catalog::new(2);
    let manifest = Envelope::parse(ENVELOPE)
        .expect("parse")
        .authenticate(&[PublicKey::from_pem(PUBLIC_KEY).expect("key")])
        .expect("verifies")
        .into_manifest();
    let payloads =
        [(BlobDigest::of(SLOT0), Bytes::from_static(SLOT0)), (BlobDigest::of(SLOT1), Bytes::from_static(SLOT1))];
    let mut scratch = Router::new();
    let offer = catalog
        .add_manifest(&mut scratch, "samr21-xpro/riot.suit.2.bin", Bytes::from_static(ENVELOPE), &manifest, &payloads)
        .expect("catalog");
    let ep = ferry_endpoint(&catalog, &offer, 1);
    (catalog, offer, ep)
}

fn timing() -> DeviceTiming {
    DeviceTiming { boot_time: Duration::from_secs(5), ..DeviceTiming::default() }
}

fn plan(offer: &Offer) -> SessionPlan<u8> {
    plan_for(offer, DEVICE)
}

fn plan_for<P>(offer: &Offer, peer: P) -> SessionPlan<P> {
    SessionPlan {
        device: Eui64([0x02, 0, 0, 0, 0, 0, 0, 0x11]),
        peer,
        manifest_uri: offer.manifest_uri.clone(),
        manifest_path: offer.manifest_path.clone(),
        manifest_digest: offer.manifest_digest.clone(),
        payload_paths: offer.payload_paths.clone(),
        sequence: offer.sequence,
        manifest_size: offer.manifest_size,
        payload_size: offer.payload_size,
        timing: timing(),
        authority: "riot-test".into(),
        approval: "policy:auto (window home-evenings)".into(),
        not_before: None,
        window_closes: None,
        air_time_share: 0.0,
        gateway_share: 0.0,
    }
}

impl World {
    fn new(behaviour: Behaviour, cfg: EngineConfig) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = Connection::open(dir.path().join("ferry.db")).expect("db");
        ferry::store::migrate(&mut conn).expect("migrate");
        let (catalog, offer, ferry) = offer();
        let now = Instant::now();
        World {
            now,
            ferry,
            catalog,
            offer,
            engine: Engine::new(cfg, now, 1_800_000_000_000, 0),
            conn,
            device: Device::new(behaviour, timing().boot_time),
            requests: HashMap::new(),
            crashed: false,
            to_device: (0, 0),
            to_ferry: (0, 0),
            loss: None,
            deaf_after_install: false,
            _dir: dir,
        }
    }

    fn row(&self, id: SessionId) -> sessions::SessionRow {
        sessions::get(&self.conn, id as i64).expect("query").expect("row")
    }

    fn events(&self, id: SessionId) -> Vec<(Option<String>, String)> {
        sessions::events(&self.conn, id as i64)
            .expect("events")
            .into_iter()
            .map(|e| (e.from_state, e.to_state))
            .collect()
    }

    /// Performs the engine's actions in order, as the daemon shell does.
    fn perform(&mut self) -> bool {
        let mut moved = false;
        while let Some(action) = self.engine.poll_action() {
            moved = true;
            match action {
                Action::Persist(record) => {
                    if self.crashed {
                        continue;
                    }
                    let (row, event) = record.to_rows();
                    sessions::write(&mut self.conn, &row, event.as_ref()).expect("write");
                }
                Action::Request { session, tag, peer, request } => {
                    if request.path_string() == "suit/trigger" && !self.crashed {
                        assert_eq!(self.row(session).state, "triggered", "the trigger is recorded before it is sent");
                    }
                    let id = self.ferry.start_request(self.now, peer, request).expect("request starts");
                    self.requests.insert(id, (session, tag));
                }
            }
        }
        moved
    }

    /// Whether the next datagram is lost (seeded, so every run loses the same ones).
    fn lost(&mut self) -> bool {
        let Some((rng, p)) = &mut self.loss else { return false };
        rng.next_f64() <= *p
    }

    /// One round of moving datagrams and events; false when nothing moved.
    fn step(&mut self) -> bool {
        let mut moved = self.perform();
        let now = self.now;
        while let Some(t) = self.ferry.poll_transmit(now) {
            moved = true;
            self.to_device.0 += 1;
            self.to_device.1 += t.bytes.len() as u64;
            let deaf = self.deaf_after_install && self.device.installed_bytes.is_some();
            if self.device.online() && !self.lost() && !deaf {
                self.device.ep.handle_datagram(now, FERRY, &t.bytes);
            }
        }
        while let Some(t) = self.device.ep.poll_transmit(now) {
            moved = true;
            self.to_ferry.0 += 1;
            self.to_ferry.1 += t.bytes.len() as u64;
            if !self.lost() {
                self.ferry.handle_datagram(now, DEVICE, &t.bytes);
            }
        }
        while let Some(ev) = self.ferry.poll_event() {
            moved = true;
            let (id, outcome) = match ev {
                Event::Response { id, response, .. } => (id, Ok(response)),
                Event::Failed { id, error, .. } => (id, Err(error)),
                Event::Deferred { .. } => continue,
            };
            if let Some((session, tag)) = self.requests.remove(&id) {
                self.engine.handle_response(now, session, tag, outcome);
            }
        }
        for s in self.catalog.drain_served() {
            moved = true;
            let peer = s.peer.expect("the endpoint names the peer");
            self.engine.handle_served(now, peer, &s.path, s.offset, s.len, s.total);
        }
        moved |= self.device.step(now);
        moved | self.perform()
    }

    fn advance(&mut self) -> bool {
        let next =
            [self.ferry.poll_timeout(), self.device.deadline(), self.engine.poll_timeout()].into_iter().flatten().min();
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        let now = self.now;
        self.ferry.handle_timeout(now);
        self.device.ep.handle_timeout(now);
        self.engine.handle_timeout(now);
        self.perform();
        true
    }

    /// Runs until `stop` holds or nothing is left to do (bounded).
    fn run_until(&mut self, mut stop: impl FnMut(&World) -> bool) {
        for _ in 0..200_000 {
            if stop(self) {
                return;
            }
            if !self.step() && !self.advance() {
                return;
            }
        }
        panic!("the world did not settle");
    }

    fn run_to_end(&mut self, id: SessionId) -> State {
        self.run_until(|w| w.engine.state(id).is_some_and(State::is_terminal));
        self.engine.state(id).expect("session")
    }

    /// Drops the engine and ferry's endpoint (a crash) and rebuilds them from the store. With
    /// `device_gives_up`, the device's fetch fails during the outage (a long one).
    fn restart(&mut self, device_gives_up: bool) {
        if device_gives_up {
            if let Phase::Manifest(id) | Phase::Payload(id) = self.device.phase {
                self.device.ep.cancel(self.now, id);
                self.device.phase = Phase::Idle;
            }
        }
        let last = sessions::max_id(&self.conn).expect("max id") as u64;
        let records: Vec<SessionRecord<u8>> = sessions::unfinished(&self.conn)
            .expect("unfinished")
            .iter()
            .map(|r| SessionRecord::from_row(r).expect("record decodes"))
            .collect();
        self.now += Duration::from_secs(3);
        self.engine = Engine::new(EngineConfig::default(), self.now, 1_800_000_100_000, last);
        self.ferry = ferry_endpoint(&self.catalog, &self.offer, 0xfe44);
        self.requests.clear();
        self.crashed = false;
        self.engine.resume(self.now, records);
    }
}

fn states(events: &[(Option<String>, String)]) -> Vec<&str> {
    events.iter().map(|(_, to)| to.as_str()).collect()
}

#[test]
fn riot_device_with_slots_is_updated_and_confirmed_by_its_slot() {
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let start = w.now;
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(id), State::Done);
    eprintln!(
        "figures: 457 B manifest + 1024 B payload at 64 B blocks, no loss: {:?} virtual, {} datagrams / {} B to the \
         device, {} datagrams / {} B to ferry",
        w.now - start,
        w.to_device.0,
        w.to_device.1,
        w.to_ferry.0,
        w.to_ferry.1
    );
    // 3 probes + trigger + 8 manifest blocks + 16 payload blocks + one read-back after reboot
    // (the slot, which settled the probe before the trigger), sent twice: the first leaves as
    // the boot time passes and finds the device still booting.
    assert_eq!(w.to_device.0, 3 + 1 + 8 + 16 + 1 + 1);
    assert_eq!(w.device.trigger_count(), 1);
    assert_eq!(w.device.installed_bytes, Some(1024));
    let row = w.row(id);
    assert_eq!(row.state, "done");
    assert_eq!(row.reason.as_deref(), Some("the device's active slot moved from 0 to 1"));
    assert_eq!(row.bytes, ENVELOPE.len() as u64 + 1024, "manifest and one slot's payload");
    assert_eq!((row.authority.as_str(), row.attempts), ("riot-test", 1));
    assert_eq!(
        states(&w.events(id)),
        ["planned", "triggered", "manifest-served", "streaming", "rebooting", "confirming", "done"]
    );
    assert_eq!(w.engine.stats().completed.get(&State::Done), Some(&1));
    assert_eq!(w.engine.stats().bytes_served, row.bytes);
    let registry = prometheus::Registry::new();
    let mut metrics = ferry::deliver::DeliverMetrics::register(&registry).expect("metrics");
    metrics.export(&mut w.engine);
    assert_eq!(metrics.completed.with_label_values(&["done"]).get(), 1);
    assert_eq!(metrics.sessions.with_label_values(&["done"]).get(), 1);
    assert_eq!(metrics.bytes.get(), row.bytes);

    // `ferry history` reads the same rows from the state dir.
    let ferry = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .arg("--state-dir")
            .arg(w._dir.path())
            .output()
            .expect("ferry runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let text = ferry(&["history", "02:00:00:00:00:00:00:11"]);
    assert!(text.contains("session 1 device 0200000000000011 sequence 2: done"), "{text}");
    assert!(text.contains("signed by riot-test, allowed by policy:auto (window home-evenings)"), "{text}");
    assert!(text.contains("rebooting → confirming"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&ferry(&["history", "--json"])).expect("json");
    assert_eq!(json[0]["state"], "done");
    assert_eq!(json[0]["events"].as_array().map(Vec::len), Some(7));
    assert_eq!(ferry(&["history", "00:00:00:00:00:00:00:99"]), "no delivery sessions\n");
}

#[test]
fn device_back_on_its_old_slot_is_rolled_back() {
    let mut w = World::new(Behaviour { boots: false, ..RIOT_BOARD }, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(id), State::RolledBack);
    assert_eq!(w.row(id).reason.as_deref(), Some("the device came back on its old slot 0"));
    assert_eq!(w.device.trigger_count(), 1);
}

#[test]
fn riot_native_without_slots_ends_delivered_unconfirmed() {
    let mut w = World::new(Behaviour { slots: false, ..RIOT_BOARD }, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(id), State::Unconfirmed);
    assert_eq!(w.device.installed_bytes, Some(1024));
    assert!(w.row(id).reason.is_some_and(|r| r.starts_with("delivered, unconfirmed")));
}

#[test]
fn device_reporting_a_different_sequence_number_is_believed() {
    let newer = Behaviour { slots: false, status_seq_after: Some(NEW_SEQ + 5), ..RIOT_BOARD };
    let mut w = World::new(newer, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(id), State::Done);
    assert_eq!(w.engine.record(id).and_then(|r| r.seq_reported), Some(NEW_SEQ + 5));
    assert_eq!(w.row(id).reason.as_deref(), Some("the device runs sequence number 7"));

    let old = Behaviour { slots: false, status_seq_after: Some(1), boots: false, ..RIOT_BOARD };
    let mut w = World::new(old, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(id), State::RolledBack);
    assert_eq!(w.row(id).reason.as_deref(), Some("the device came back on sequence number 1"));
}

#[test]
fn device_already_running_the_update_is_not_triggered() {
    let mut w = World::new(Behaviour { status_seq_after: Some(NEW_SEQ), ..RIOT_BOARD }, EngineConfig::default());
    w.device.ep.set_static(w.now, "ferry/status", status_cbor(NEW_SEQ, 1));
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(id), State::Done);
    assert_eq!(w.device.trigger_count(), 0);
    assert_eq!(states(&w.events(id)), ["planned", "done"]);
}

#[test]
fn a_device_that_never_fetches_is_retried_with_backoff_then_fails() {
    let cfg = EngineConfig { max_failures: 3, backoff: Duration::from_secs(30), ..EngineConfig::default() };
    let mut w = World::new(Behaviour { fetches: false, ..RIOT_BOARD }, cfg);
    let start = w.now;
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(id), State::Failed);
    assert_eq!(w.device.trigger_count(), 3, "one trigger per attempt");
    let row = w.row(id);
    assert_eq!(row.attempts, 3);
    assert_eq!(row.reason.as_deref(), Some("no progress while triggered"));
    // Trigger deadlines (1.6 s of blocks + 10 s slack) and backoffs of 30 s and 60 s.
    let timeout = ferry::deliver::Timeouts::derive(&timing(), w.offer.manifest_size).trigger;
    let took = w.now - start;
    assert!(took >= timeout * 3 + Duration::from_secs(90), "{took:?}");
    assert!(took < timeout * 3 + Duration::from_secs(100), "{took:?}");
    let retries: Vec<_> = sessions::events(&w.conn, id as i64)
        .expect("events")
        .into_iter()
        .filter(|e| e.from_state.as_deref() == Some("triggered"))
        .map(|e| e.detail)
        .collect();
    assert_eq!(retries.len(), 3);
    assert!(retries[0].ends_with("retrying in 30 s") && retries[1].ends_with("retrying in 60 s"), "{retries:?}");
    assert!(retries[2].contains("giving up after 3 failures"), "{retries:?}");
}

#[test]
fn cancel_stops_a_streaming_session() {
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    w.run_until(|w| w.engine.state(id) == Some(State::Streaming));
    assert!(w.engine.cancel(w.now, id));
    assert!(!w.engine.cancel(w.now, id), "a finished session cannot be cancelled again");
    w.run_until(|_| false);
    assert_eq!(w.engine.state(id), Some(State::Cancelled));
    assert_eq!(w.row(id).state, "cancelled");
    assert_eq!(w.device.trigger_count(), 1);
}

#[test]
fn resume_while_rebooting_confirms_without_a_second_trigger() {
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    w.run_until(|w| w.engine.state(id) == Some(State::Rebooting));
    w.restart(false);
    assert_eq!(w.run_to_end(id), State::Done);
    assert_eq!(w.device.trigger_count(), 1);
    let events = states(&w.events(id)).join(" ");
    assert!(events.ends_with("rebooting confirming done"), "{events}");
}

#[test]
fn resume_of_a_session_stored_as_streaming_probes_before_any_trigger() {
    // ferry crashes after serving the last block but before writing `rebooting`: the store says
    // streaming while the device installs the update.
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    w.run_until(|w| w.engine.state(id) == Some(State::Streaming));
    w.crashed = true;
    w.run_until(|w| w.device.phase == Phase::Idle && w.device.slot == 1);
    assert_eq!(w.row(id).state, "streaming");
    w.restart(false);
    assert_eq!(w.run_to_end(id), State::Done);
    assert_eq!(w.device.trigger_count(), 1, "no second trigger for an update the device has");
    assert_eq!(w.row(id).reason.as_deref(), Some("the device's active slot moved from 0 to 1"));
}

#[test]
fn resume_follows_a_device_still_fetching_without_a_second_trigger() {
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    w.run_until(|w| w.engine.record(id).is_some_and(|r| r.progress >= 512));
    w.restart(false);
    assert_eq!(w.run_to_end(id), State::Done);
    assert_eq!(w.device.trigger_count(), 1, "the device kept fetching from the restarted ferry");
    let events = states(&w.events(id)).join(" ");
    assert!(events.ends_with("streaming planned streaming rebooting confirming done"), "{events}");
}

#[test]
fn resume_of_an_abandoned_transfer_triggers_again_and_completes() {
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    w.run_until(|w| w.engine.record(id).is_some_and(|r| r.progress >= 512));
    w.restart(true);
    assert_eq!(w.run_to_end(id), State::Done);
    let events = sessions::events(&w.conn, id as i64).expect("events");
    assert_eq!(w.device.trigger_count(), 2, "the device had not got the update: {events:#?}");
    assert_eq!(w.row(id).attempts, 2, "{events:#?}");
}

#[test]
fn serving_refuses_unknown_paths_and_honours_the_clients_block_size() {
    let (catalog, offer, mut ferry) = offer();
    let mut client: Endpoint<u8> = Endpoint::new(Config { rng_seed: 3, ..Config::default() }, Router::new());
    let now = Instant::now();
    let exchange = |client: &mut Endpoint<u8>, ferry: &mut Endpoint<u8>| loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now) {
            ferry.handle_datagram(now, DEVICE, &t.bytes);
            moved = true;
        }
        while let Some(t) = ferry.poll_transmit(now) {
            client.handle_datagram(now, FERRY, &t.bytes);
            moved = true;
        }
        if !moved {
            break client.poll_event();
        }
    };
    for (szx, block) in [(2u8, 64u64), (6, 1024), (0, 16)] {
        let path = &offer.payload_paths[0];
        client.start_fetch(now, FERRY, Request::get(path), FetchOptions { szx, max_size: 4096 }).expect("fetch");
        let Some(Event::Response { response, .. }) = exchange(&mut client, &mut ferry) else { panic!("no answer") };
        assert_eq!(&response.payload[..], SLOT0);
        let served = catalog.drain_served();
        assert_eq!(served.len() as u64, 1024 / block);
        assert!(served.iter().all(|s| s.len == block && s.peer == Some(DEVICE) && s.total == 1024), "{served:?}");
        assert_eq!(served.last().map(|s| s.offset), Some(1024 - block));
    }
    for unknown in ["fw/suit_update/samr21-xpro/other.bin", "etc/passwd", "fw"] {
        client.start_request(now, FERRY, Request::get(unknown)).expect("request");
        let Some(Event::Response { response, .. }) = exchange(&mut client, &mut ferry) else { panic!("no answer") };
        assert_eq!(response.code, Code::NotFound, "{unknown}");
    }
    let mut post = Request::new(coap::Method::Post, &offer.manifest_path);
    post.payload = Bytes::from_static(b"x");
    client.start_request(now, FERRY, post).expect("request");
    let Some(Event::Response { response, .. }) = exchange(&mut client, &mut ferry) else { panic!("no answer") };
    assert_eq!(response.code, Code::MethodNotAllowed);
    assert!(catalog.drain_served().is_empty());
    client
        .start_fetch(now, FERRY, Request::get(".well-known/core"), FetchOptions { szx: 2, max_size: 4096 })
        .expect("fetch");
    let Some(Event::Response { response, .. }) = exchange(&mut client, &mut ferry) else { panic!("no answer") };
    let links = String::from_utf8(response.payload.to_vec()).expect("utf-8");
    assert_eq!(
        links,
        format!(
            "</fw/suit_update/samr21-xpro/riot.suit.2.bin>;ct=42;sz={},</fw/suit_update/samr21-xpro/slot0.bin>;ct=42;sz=1024,</fw/suit_update/samr21-xpro/slot1.bin>;ct=42;sz=1024",
            ENVELOPE.len()
        )
    );
    assert_eq!(offer.manifest_uri, "coap://[2001:db8::1]/fw/suit_update/samr21-xpro/riot.suit.2.bin");
    assert_eq!(offer.sequence, NEW_SEQ);
}

#[test]
fn the_engine_keeps_up_with_many_devices() {
    let now = Instant::now();
    let mut engine: Engine<u16> = Engine::new(EngineConfig::default(), now, 0, 0);
    let (_, offer, _) = offer();
    let sessions: u16 = 200;
    let blocks: u64 = 1600; // 100 KiB at 64-byte blocks
    let ids: Vec<SessionId> = (0..sessions)
        .map(|peer| {
            let p = plan_for(&offer, peer);
            engine
                .start(now, SessionPlan { payload_size: blocks * 64, device: Eui64([peer as u8; 8]), ..p })
                .expect("one session per device")
        })
        .collect();
    let mut requests = Vec::new();
    while let Some(a) = engine.poll_action() {
        if let Action::Request { session, tag, request, .. } = a {
            requests.push((session, tag, request));
        }
    }
    // Every device has no read-back: its probes end on a 4.04 each, then it is triggered.
    while let Some((session, tag, request)) = requests.pop() {
        let code = if request.method == coap::Method::Post { Code::Created } else { Code::NotFound };
        engine.handle_response(now, session, tag, Ok(Response::new(code)));
        while let Some(a) = engine.poll_action() {
            if let Action::Request { session, tag, request, .. } = a {
                requests.push((session, tag, request));
            }
        }
    }
    let started = std::time::Instant::now();
    let path = offer.payload_paths[0].clone();
    for block in 0..blocks {
        for peer in 0..sessions {
            engine.handle_served(now, peer, &path, block * 64, 64, blocks * 64);
        }
        while engine.poll_action().is_some() {}
    }
    let took = started.elapsed();
    eprintln!(
        "figures: {} served blocks over {sessions} sessions handled in {took:?} ({:?} per block, debug build)",
        u64::from(sessions) * blocks,
        took / (u32::from(sessions) * blocks as u32)
    );
    assert!(ids.iter().all(|id| engine.state(*id) == Some(State::Rebooting)));
    assert_eq!(engine.stats().bytes_served, u64::from(sessions) * blocks * 64);
}

#[test]
fn a_lossy_link_still_ends_confirmed_with_one_trigger() {
    for seed in 1..=8u64 {
        let mut w = World::new(RIOT_BOARD, EngineConfig::default());
        w.loss = Some((SplitMix64::new(seed), 0.15));
        let start = w.now;
        let id = w.engine.start(w.now, plan(&w.offer)).expect("starts");
        let end = w.run_to_end(id);
        let events = sessions::events(&w.conn, id as i64).expect("events");
        assert_eq!(end, State::Done, "seed {seed}: {events:#?}");
        assert_eq!(w.device.trigger_count(), 1, "seed {seed}: CoAP deduplication keeps retransmitted triggers single");
        eprintln!(
            "figures: 15% loss, seed {seed}: done in {:?} virtual, {} datagrams to the device",
            w.now - start,
            w.to_device.0
        );
    }
}

#[test]
fn a_device_back_early_is_confirmed_at_its_class_boot_time_not_the_planners_install_time() {
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let mut p = plan(&w.offer);
    // The planner assumes a minute; the device (like this class) is back after 5 s.
    p.timing = DeviceTiming { boot_time: Duration::from_secs(60), first_read_back: timing().boot_time, ..timing() };
    let id = w.engine.start(w.now, p).expect("starts");
    w.run_until(|w| w.engine.state(id) == Some(State::Rebooting));
    let rebooting_at = w.now;
    assert_eq!(w.run_to_end(id), State::Done);
    let waited = w.now - rebooting_at;
    assert!(waited < Duration::from_secs(15), "confirmed {waited:?} after the last block");
    assert_eq!(w.device.trigger_count(), 1);
}

#[test]
fn a_device_that_installed_while_its_read_back_was_lost_is_not_triggered_again() {
    let mut w = World::new(RIOT_BOARD, EngineConfig::default());
    let first = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    // Every read-back is lost: ferry cannot confirm what the device did.
    w.deaf_after_install = true;
    assert_eq!(w.run_to_end(first), State::Failed);
    w.deaf_after_install = false;
    assert_eq!(w.device.trigger_count(), 1);
    assert_eq!(w.device.slot, 1, "the device did install and boot the new slot");

    // The retry reads the slot first: it moved since the first session's trigger, so the
    // device runs the update. RIOT would refuse a second trigger of it as not newer.
    let again = w.engine.start(w.now, plan(&w.offer)).expect("starts");
    assert_eq!(w.run_to_end(again), State::Done);
    assert_eq!(w.device.trigger_count(), 1, "no second trigger");
    let events = sessions::events(&w.conn, again as i64).expect("events");
    assert!(events.iter().any(|e| e.detail.contains("installed by an earlier trigger")), "{events:#?}");
}
