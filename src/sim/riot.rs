//! A simulated RIOT OS node running the SUIT update example (`examples/advanced/suit_update`,
//! reference/suit.md §1), as the [`Upper`] layer of a [`Device`](super::device::Device).
//!
//! Its frames are real: the node-side [`net::Interface`](crate::net::Interface) and
//! [`coap::Endpoint`] ([`NodeStack`]) under these resources:
//!
//! | path | method | answer |
//! |---|---|---|
//! | `/suit/trigger` | POST/PUT | payload = manifest URL (up to the first NUL); 2.01 and the worker starts; empty 4.08, ≥ 128 bytes 4.13; busy or battery low 5.03 |
//! | `/suit/slot/active`, `/suit/slot/inactive` | GET | one ASCII digit |
//! | `/suit/version` | GET | `NONE`, as RIOT answers |
//! | `/riot/board` | GET | the board name (the scenario's class) |
//! | `/ferry/status` | GET | ferry-aware nodes only: CBOR `{"battery", "free_storage", "installed": [seq…]}` |
//!
//! The SUIT worker, as RIOT's `sys/suit/transport/worker.c`: fetch the manifest block-wise (at
//! most 640 bytes), check the signature with the compiled-in Ed25519 keys, the sequence number
//! (strictly higher than installed) and vendor/class; fetch the image for the inactive slot
//! block by block (one CON GET with Block2 per block, as nanocoap does), writing each block to
//! flash; check size and SHA-256 (a mismatch erases the slot); reboot (radio off for the boot
//! time) and run the new slot. The image of a manifest with several slots is the one at the
//! inactive slot's index (RIOT matches the flash offset instead).
//!
//! Processing takes time ([`Costs`]): while the CPU is busy, received datagrams wait and
//! nothing is sent. Failures come from the scenario ([`Failures`]).
//!
//! Ground truth for tests and benchmarks: [`RiotNode::truth`].

use std::any::Any;
use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::device::{RxMeta, TxOutcome, Upper};
use super::rng::Rng;
use super::scenario::{Failures, Processing};
use super::stack::{parse_coap_url, NodeStack, Peer, StackConfig};
use crate::coap::{
    self, content_format, is_success, BlockOpt, Code, Event, FetchOptions, Method, Outcome, Request, RequestId,
    Resource, Response, Router, StaticResource,
};
use crate::suit::{Digest, DigestAlg, Envelope, Identifier, PublicKey};

/// RIOT's SUIT_MANIFEST_BUFSIZE: larger manifests are refused.
pub const MANIFEST_MAX: usize = 640;
/// RIOT's CONFIG_SOCK_URLPATH_MAXLEN: a trigger URL must be shorter.
pub const URL_MAX: usize = 128;
/// Below this battery level a node refuses updates (ferry's devices report it; RIOT has no
/// such check, a product would).
pub const LOW_BATTERY_PERCENT: u8 = 20;
/// Datagrams a busy node keeps for later (GNRC's queue); more are dropped.
const INBOX_LEN: usize = 16;
/// After a CoAP message a sleepy node keeps polling its parent this long (as Thread's
/// sleepy end devices fast-poll after an exchange): a server's follow-up request (the trigger
/// after a status read, the next read-back) reaches it at once instead of a wake period later.
const LINGER_US: u64 = 2_000_000;

/// A device's processing times. Board defaults come from [`Costs::for_board`]; a scenario's
/// `processing` overrides single fields ([`Costs::with`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Costs {
    /// CPU time per received CoAP block: radio driver, GNRC, nanocoap, SUIT worker.
    pub block_ms: f64,
    pub flash_write_us_per_byte: f64,
    pub flash_erase_ms_per_page: f64,
    pub flash_page_bytes: u32,
    pub sha256_ms_per_kb: f64,
    pub ed25519_verify_ms: f64,
    /// From reset to the radio listening again (riotboot, RIOT boot, network up).
    pub boot_ms: f64,
    /// Size of one riotboot slot: the free storage a node reports.
    pub slot_bytes: u32,
}

impl Costs {
    /// Defaults per board (RIOT `BOARD`, the scenario's class). Flash timings are the MCU
    /// datasheets' typical figures; SHA-256 and Ed25519 are estimates for RIOT's software
    /// `hashes` and libcose's default c25519 backend at the core clock, scaled from the
    /// Cortex-M4 figure (signature checks of c25519 take about a second there). Unknown
    /// boards get the nRF52840's.
    pub fn for_board(board: &str) -> Costs {
        match board {
            // Cortex-M0+ 48 MHz, 256-byte rows, 64-byte pages written in ~2.5 ms.
            "samr21-xpro" => Costs {
                block_ms: 6.0,
                flash_write_us_per_byte: 39.0,
                flash_erase_ms_per_page: 6.0,
                flash_page_bytes: 256,
                sha256_ms_per_kb: 3.5,
                ed25519_verify_ms: 2600.0,
                boot_ms: 1500.0,
                slot_bytes: 120 * 1024,
            },
            // STM32F103 Cortex-M3 72 MHz, 2 KiB pages, 16-bit writes of ~52 µs.
            "iotlab-m3" => Costs {
                block_ms: 4.0,
                flash_write_us_per_byte: 26.0,
                flash_erase_ms_per_page: 20.0,
                flash_page_bytes: 2048,
                sha256_ms_per_kb: 1.5,
                ed25519_verify_ms: 1300.0,
                boot_ms: 1200.0,
                slot_bytes: 240 * 1024,
            },
            // STM32F767 Cortex-M7 216 MHz, 32-bit writes of ~16 µs, 128 KiB sectors.
            "nucleo-f767zi" => Costs {
                block_ms: 2.0,
                flash_write_us_per_byte: 4.0,
                flash_erase_ms_per_page: 1000.0,
                flash_page_bytes: 128 * 1024,
                sha256_ms_per_kb: 0.4,
                ed25519_verify_ms: 350.0,
                boot_ms: 800.0,
                slot_bytes: 960 * 1024,
            },
            // nRF52840: Cortex-M4F 64 MHz, 4 KiB pages erased in 85 ms, 41 µs per word.
            _ => Costs {
                block_ms: 3.0,
                flash_write_us_per_byte: 10.25,
                flash_erase_ms_per_page: 85.0,
                flash_page_bytes: 4096,
                sha256_ms_per_kb: 1.2,
                ed25519_verify_ms: 1100.0,
                boot_ms: 1000.0,
                slot_bytes: 480 * 1024,
            },
        }
    }

    /// These costs with the scenario's overrides.
    pub fn with(self, p: &Processing) -> Costs {
        Costs {
            block_ms: p.block_ms.unwrap_or(self.block_ms),
            flash_write_us_per_byte: p.flash_write_us_per_byte.unwrap_or(self.flash_write_us_per_byte),
            flash_erase_ms_per_page: p.flash_erase_ms_per_page.unwrap_or(self.flash_erase_ms_per_page),
            flash_page_bytes: p.flash_page_bytes.unwrap_or(self.flash_page_bytes).max(1),
            sha256_ms_per_kb: p.sha256_ms_per_kb.unwrap_or(self.sha256_ms_per_kb),
            ed25519_verify_ms: p.ed25519_verify_ms.unwrap_or(self.ed25519_verify_ms),
            boot_ms: p.boot_ms.unwrap_or(self.boot_ms),
            slot_bytes: p.slot_bytes.unwrap_or(self.slot_bytes),
        }
    }
}

fn us(ms: f64) -> u64 {
    (ms * 1e3).round().max(0.0) as u64
}

/// Everything a [`RiotNode`] is built from.
#[derive(Debug, Clone)]
pub struct RiotConfig {
    pub name: String,
    pub stack: StackConfig,
    /// The board name `/riot/board` answers (the scenario's class when it is a name).
    pub board: String,
    pub vendor_id: Identifier,
    pub class_id: Identifier,
    /// The Ed25519 keys compiled into the firmware.
    pub keys: Vec<PublicKey>,
    /// Sequence number of the image in slot 0, running at the start.
    pub installed_sequence: u64,
    /// Block size the SUIT worker asks for (16..=1024).
    pub block_size: u16,
    pub ferry_aware: bool,
    pub costs: Costs,
    pub failures: Failures,
    pub seed: u64,
}

/// Why an update did not install. The node's state afterwards is RIOT's: the old slot runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum UpdateError {
    #[error("URL is not coap://[address]/path")]
    BadUrl,
    #[error("manifest fetch failed: {0}")]
    ManifestFetch(String),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("signature check failed: {0}")]
    Signature(String),
    #[error("sequence number {offered} is not above the installed {installed}")]
    SequenceNumber { offered: u64, installed: u64 },
    #[error("vendor ID does not match")]
    Vendor,
    #[error("class ID does not match")]
    Class,
    #[error("payload fetch failed: {0}")]
    PayloadFetch(String),
    #[error("payload larger than the image size or the slot")]
    TooLarge,
    #[error("payload of {got} bytes, the manifest says {expected}")]
    SizeMismatch { got: u64, expected: u64 },
    #[error("flash write error at byte {offset}")]
    FlashWrite { offset: u64 },
    #[error("image digest mismatch; slot erased")]
    DigestMismatch,
    #[error("power lost after {written} bytes")]
    PowerLoss { written: u64 },
    #[error("new image failed to boot; back on the old slot")]
    BootFailure,
}

impl UpdateError {
    /// The short code a ferry-aware node reports in `/ferry/status` `"failed"`.
    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::BadUrl => "bad-url",
            UpdateError::ManifestFetch(_) => "manifest-fetch",
            UpdateError::ManifestInvalid(_) => "manifest-invalid",
            UpdateError::Signature(_) => "signature",
            UpdateError::SequenceNumber { .. } => "sequence-number",
            UpdateError::Vendor => "vendor",
            UpdateError::Class => "class",
            UpdateError::PayloadFetch(_) => "payload-fetch",
            UpdateError::TooLarge => "too-large",
            UpdateError::SizeMismatch { .. } => "size-mismatch",
            UpdateError::FlashWrite { .. } => "flash-write",
            UpdateError::DigestMismatch => "digest-mismatch",
            UpdateError::PowerLoss { .. } => "power-loss",
            UpdateError::BootFailure => "boot-failure",
        }
    }
}

/// Why a trigger was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    Busy,
    LowBattery,
}

/// How one trigger ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum UpdateOutcome {
    /// Still fetching, checking or rebooting.
    InProgress,
    /// The new image runs from `slot`.
    Installed {
        slot: u8,
    },
    Failed {
        error: UpdateError,
    },
    Refused {
        reason: Refusal,
    },
}

/// One trigger and what came of it, in medium µs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateRecord {
    pub url: String,
    pub triggered_us: u64,
    pub finished_us: u64,
    /// The manifest's sequence number, once it was read.
    pub sequence: Option<u64>,
    pub outcome: UpdateOutcome,
}

/// Reboots whose times [`NodeTruth::boots`] keeps.
pub const MAX_BOOTS_KEPT: usize = 256;

/// Ground truth of a node, for tests and benchmarks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeTruth {
    pub installed_sequence: u64,
    pub active_slot: u8,
    pub reboots: u64,
    /// Each reboot: when the radio went silent and when it listened again, medium µs (the
    /// first [`MAX_BOOTS_KEPT`]).
    pub boots: Vec<(u64, u64)>,
    /// CoAP payload bytes the SUIT worker received (manifests and images, repeats included).
    pub bytes_fetched: u64,
    pub history: Vec<UpdateRecord>,
}

/// What the trigger resource hands the node (resources are owned by the router).
#[derive(Debug, Default)]
struct TriggerBox {
    accepting: bool,
    low_battery: bool,
    triggers: Vec<(String, Option<Refusal>)>,
}

struct TriggerResource(Arc<Mutex<TriggerBox>>);

impl Resource for TriggerResource {
    fn handle(&mut self, req: &Request) -> Outcome {
        if !matches!(req.method, Method::Post | Method::Put) {
            return Outcome::Respond(Response::new(Code::MethodNotAllowed));
        }
        // RIOT reads a C string: the URL ends at the first NUL (`make suit/notify` sends one).
        let raw = req.payload.split(|&b| b == 0).next().unwrap_or(&[]);
        if raw.is_empty() {
            return Outcome::Respond(Response::new(Code::RequestEntityIncomplete));
        }
        if raw.len() >= URL_MAX {
            return Outcome::Respond(Response::new(Code::RequestEntityTooLarge));
        }
        let url = String::from_utf8_lossy(raw).into_owned();
        let Ok(mut b) = self.0.lock() else { return Outcome::Respond(Response::new(Code::InternalServerError)) };
        let refusal = if b.low_battery {
            Some(Refusal::LowBattery)
        } else if !b.accepting {
            Some(Refusal::Busy)
        } else {
            None
        };
        b.triggers.push((url, refusal));
        if refusal.is_some() {
            return Outcome::Respond(Response::new(Code::ServiceUnavailable));
        }
        b.accepting = false;
        Outcome::Respond(Response::new(Code::Created))
    }

    fn link_attributes(&self) -> String {
        "ct=0".into()
    }
}

/// The image an accepted manifest names for the inactive slot.
#[derive(Debug, Clone)]
struct Target {
    sequence: u64,
    peer: Peer,
    path: String,
    size: u64,
    digest: Digest,
}

// One per node, replaced rarely: boxing the payload state would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Job {
    Idle,
    Manifest { record: usize, request: RequestId },
    Payload(Box<Transfer>),
}

/// An image being fetched block by block into the inactive slot.
struct Transfer {
    record: usize,
    target: Target,
    /// The request for `block`.
    request: RequestId,
    block: u32,
    szx: u8,
    /// Bytes in the slot so far.
    written: u64,
    hasher: Sha256,
}

/// What happens when the current reboot ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boot {
    /// Back on the running slot (power loss, or after a failed new image).
    Same,
    /// Into the freshly written slot.
    New { record: usize, sequence: u64 },
}

/// A simulated RIOT node. See the module docs.
pub struct RiotNode {
    cfg: RiotConfig,
    stack: NodeStack,
    trigger: Arc<Mutex<TriggerBox>>,
    rng: Rng,
    /// The CPU is busy until then: datagrams wait, nothing is sent.
    cpu_free_at: u64,
    inbox: VecDeque<crate::net::UdpDatagram>,
    job: Job,
    /// A verified image waits for the CPU to finish its checks, then reboots into it.
    reboot_pending: Option<Boot>,
    /// Rebooting until then, then into what.
    booting: Option<(u64, Boot)>,
    /// Sequence number of the valid image per slot.
    slots: [Option<u64>; 2],
    active: usize,
    truth: NodeTruth,
    inbox_dropped: u64,
    /// Work waits for the CPU (datagrams, CoAP output, a reboot): wake at `cpu_free_at`.
    waiting: bool,
    /// Its stack rides kernel UDP ([`RiotNode::over_udp`]).
    over_udp: bool,
    /// Updates started since power-on (for `Failures::failing_updates`).
    updates_started: u32,
    /// The sequence number and error code of the last update that failed since the last
    /// accepted trigger, as a ferry-aware node reports it.
    last_failure: Option<(u64, &'static str)>,
    /// Battery level now (the scenario's, until it is charged).
    battery: u8,
    /// A CoAP exchange happened: a sleepy node keeps polling until then.
    linger_until: u64,
    /// The node wants its radio polling until then (an answer or a follow-up is expected).
    awake_until: u64,
    lingering: bool,
}

impl std::fmt::Debug for RiotNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiotNode").field("name", &self.cfg.name).field("truth", &self.truth).finish_non_exhaustive()
    }
}

impl RiotNode {
    pub fn new(mut cfg: RiotConfig) -> RiotNode {
        // gcoap retransmits after a fixed ACK_TIMEOUT: it learns nothing from round trips.
        cfg.stack.coap.min_ack_timeout = cfg.stack.coap.ack_timeout;
        let trigger = Arc::new(Mutex::new(TriggerBox::default()));
        let stack = NodeStack::new(cfg.stack.clone(), Router::new());
        let truth = NodeTruth {
            installed_sequence: cfg.installed_sequence,
            active_slot: 0,
            reboots: 0,
            boots: Vec::new(),
            bytes_fetched: 0,
            history: Vec::new(),
        };
        let mut node = RiotNode {
            rng: Rng::new(cfg.seed),
            slots: [Some(cfg.installed_sequence), None],
            cfg,
            stack,
            trigger,
            cpu_free_at: 0,
            inbox: VecDeque::new(),
            job: Job::Idle,
            reboot_pending: None,
            booting: None,
            active: 0,
            truth,
            inbox_dropped: 0,
            waiting: false,
            over_udp: false,
            updates_started: 0,
            last_failure: None,
            battery: 0,
            linger_until: 0,
            awake_until: 0,
            lingering: false,
        };
        node.battery = node.cfg.failures.battery_percent;
        node.start_firmware();
        node
    }

    pub fn config(&self) -> &RiotConfig {
        &self.cfg
    }

    /// Ground truth: installed sequence number, active slot, reboots, bytes, history.
    pub fn truth(&self) -> &NodeTruth {
        &self.truth
    }

    /// The node's global address.
    pub fn address(&self) -> Ipv6Addr {
        self.stack.address()
    }

    pub fn stack(&self) -> &NodeStack {
        &self.stack
    }

    /// The node rides kernel UDP from now on, across reboots, as RIOT `native` on a tap does:
    /// its shell feeds [`NodeStack::push_udp`] (unless [`Upper::radio_silent`]: it is booting)
    /// and sends [`NodeStack::take_udp`], calling [`Upper::handle_timeout`] after each and at
    /// [`Upper::poll_timeout`].
    pub fn over_udp(mut self) -> RiotNode {
        self.over_udp = true;
        self.stack.attach_udp();
        self
    }

    pub fn stack_mut(&mut self) -> &mut NodeStack {
        &mut self.stack
    }

    /// True while an update is being fetched, checked or installed.
    pub fn is_updating(&self) -> bool {
        !matches!(self.job, Job::Idle) || self.reboot_pending.is_some() || self.booting.is_some()
    }

    /// Datagrams dropped because the node was busy with a full queue.
    pub fn inbox_dropped(&self) -> u64 {
        self.inbox_dropped
    }

    /// Fresh firmware state after a (re)boot: a new stack and the resources of the image.
    fn start_firmware(&mut self) {
        let mut router = Router::new();
        router.insert("/suit/trigger", Box::new(TriggerResource(self.trigger.clone())));
        for path in ["/suit/slot/active", "/suit/slot/inactive", "/suit/version", "/riot/board"] {
            router.insert_static(path, StaticResource::new(Bytes::new(), content_format::TEXT_PLAIN));
        }
        if self.cfg.ferry_aware {
            router.insert_static("/ferry/status", StaticResource::new(Bytes::new(), content_format::CBOR));
        }
        let mut coap_cfg = self.cfg.stack.coap.clone();
        // Message IDs and tokens differ per boot, as on a device with a hardware RNG.
        coap_cfg.rng_seed = self.rng.next_u64();
        let mut stack_cfg = self.cfg.stack.clone();
        stack_cfg.coap = coap_cfg;
        self.stack = NodeStack::new(stack_cfg, router);
        if self.over_udp {
            self.stack.attach_udp();
        }
        self.inbox.clear();
        self.job = Job::Idle;
        if let Ok(mut b) = self.trigger.lock() {
            b.accepting = true;
            b.low_battery = self.battery < LOW_BATTERY_PERCENT;
            b.triggers.clear();
        }
        self.publish_state();
    }

    /// Refreshes the resources that show the node's state.
    fn publish_state(&mut self) {
        let active = self.active;
        let board = self.cfg.board.clone();
        let r = self.stack.coap_mut().router_mut();
        r.set_static("/suit/slot/active", active.to_string());
        r.set_static("/suit/slot/inactive", (1 - active).to_string());
        r.set_static("/suit/version", "NONE");
        r.set_static("/riot/board", board);
        if self.cfg.ferry_aware {
            let status = self.status_cbor();
            self.stack.coap_mut().router_mut().set_static("/ferry/status", status);
        }
    }

    /// `{"battery": %, "free_storage": bytes, "installed": [seq, …]}` (active slot first), and
    /// `"failed": [seq, code]` after an update failed.
    fn status_cbor(&self) -> Vec<u8> {
        let installed: Vec<u64> =
            [self.slots[self.active], self.slots[1 - self.active]].into_iter().flatten().collect();
        let free = if self.slots[1 - self.active].is_some() { 0 } else { self.cfg.costs.slot_bytes };
        let mut e = minicbor::Encoder::new(Vec::new());
        let entries = 3 + u64::from(self.last_failure.is_some());
        let _ = e.map(entries).and_then(|e| e.str("battery")?.u8(self.battery));
        let _ = e.str("free_storage").and_then(|e| e.u32(free));
        let _ = e.str("installed").and_then(|e| e.array(installed.len() as u64));
        for s in installed {
            let _ = e.u64(s);
        }
        if let Some((seq, code)) = self.last_failure {
            let _ = e.str("failed").and_then(|e| e.array(2)?.u64(seq)?.str(code));
        }
        e.into_writer()
    }

    /// The failure knobs in force for the update running now: all of them, or none but the
    /// battery once `failing_updates` updates have started.
    fn failures(&self) -> Failures {
        let f = self.cfg.failures;
        match f.failing_updates {
            Some(n) if self.updates_started > n => Failures {
                battery_percent: f.battery_percent,
                failing_updates: f.failing_updates,
                ..Failures::default()
            },
            _ => f,
        }
    }

    fn spend(&mut self, now: u64, ms: f64) {
        self.cpu_free_at = self.cpu_free_at.max(now) + us(ms);
    }

    /// When the scenario's charge happens, if it has not yet.
    fn charge_at(&self) -> Option<u64> {
        let at = self.cfg.failures.charged_at_s.map(|s| (s * 1e6).round() as u64)?;
        (self.battery < 100).then_some(at)
    }

    /// The battery is charged at the scenario's time: triggers are accepted from then on.
    fn charge(&mut self, now: u64) {
        if self.charge_at().is_some_and(|at| at <= now) {
            self.battery = 100;
            if let Ok(mut b) = self.trigger.lock() {
                b.low_battery = false;
            }
            self.publish_state();
        }
    }

    /// Runs what the CPU can do at `now`.
    fn step(&mut self, now: u64) {
        self.charge(now);
        self.step_cpu(now);
        let answer = self.stack.expecting_until().filter(|_| self.stack.expects_answer(now));
        self.awake_until = answer.map_or(self.linger_until, |t| t.max(self.linger_until));
        self.lingering = now < self.awake_until;
    }

    fn step_cpu(&mut self, now: u64) {
        if let Some((until, boot)) = self.booting {
            if now < until {
                return;
            }
            self.booting = None;
            self.finish_boot(now, boot);
        }
        if self.stack.poll_timeout().is_some_and(|t| t <= now) {
            self.stack.handle_timeout(now);
        }
        while let Some(d) = self.stack.poll_udp() {
            if self.inbox.len() >= INBOX_LEN {
                self.inbox_dropped += 1;
                continue;
            }
            self.inbox.push_back(d);
        }
        loop {
            self.take_triggers(now);
            self.take_events(now);
            if self.booting.is_some() {
                return;
            }
            if now < self.cpu_free_at {
                self.waiting = true;
                return;
            }
            if let Some(boot) = self.reboot_pending.take() {
                self.reboot(now, boot);
                return;
            }
            let Some(d) = self.inbox.pop_front() else { break };
            self.stack.deliver(now, &d);
            self.linger_until = now + LINGER_US;
        }
        self.stack.flush(now);
        self.waiting = false;
    }

    fn take_triggers(&mut self, now: u64) {
        let triggers = match self.trigger.lock() {
            Ok(mut b) => std::mem::take(&mut b.triggers),
            Err(_) => return,
        };
        for (url, refusal) in triggers {
            let record = UpdateRecord {
                url: url.clone(),
                triggered_us: now,
                finished_us: now,
                sequence: None,
                outcome: match refusal {
                    Some(reason) => UpdateOutcome::Refused { reason },
                    None => UpdateOutcome::InProgress,
                },
            };
            self.truth.history.push(record);
            if refusal.is_none() {
                self.updates_started = self.updates_started.saturating_add(1);
                self.last_failure = None;
                let i = self.truth.history.len() - 1;
                self.start_update(now, i, &url);
            }
        }
    }

    fn start_update(&mut self, now: u64, record: usize, url: &str) {
        let Some((peer, path)) = parse_coap_url(url) else {
            return self.fail(now, record, UpdateError::BadUrl);
        };
        let opts = FetchOptions { szx: self.szx(), max_size: MANIFEST_MAX };
        let at = self.stack.instant(now);
        match self.stack.coap_mut().start_fetch(at, peer, Request::get(&path), opts) {
            Ok(request) => self.job = Job::Manifest { record, request },
            Err(e) => self.fail(now, record, UpdateError::ManifestFetch(e.to_string())),
        }
    }

    fn szx(&self) -> u8 {
        coap::block::szx_of_size(usize::from(self.cfg.block_size)).unwrap_or(2)
    }

    fn take_events(&mut self, now: u64) {
        while let Some(ev) = self.stack.coap_mut().poll_event() {
            match ev {
                Event::Response { id, response, .. } => self.on_response(now, id, response),
                Event::Failed { id, error, .. } => self.on_failed(now, id, error.to_string()),
                Event::Deferred { .. } => {}
            }
        }
    }

    fn on_failed(&mut self, now: u64, id: RequestId, error: String) {
        match self.job {
            Job::Manifest { record, request } if request == id => {
                self.fail(now, record, UpdateError::ManifestFetch(error))
            }
            Job::Payload(ref t) if t.request == id => {
                let record = t.record;
                self.erase_inactive();
                self.fail(now, record, UpdateError::PayloadFetch(error))
            }
            _ => {}
        }
    }

    fn on_response(&mut self, now: u64, id: RequestId, response: Response) {
        match std::mem::replace(&mut self.job, Job::Idle) {
            Job::Manifest { record, request } if request == id => self.on_manifest(now, record, response),
            Job::Payload(t) if t.request == id => self.on_block(now, t, response),
            other => self.job = other,
        }
    }

    fn on_manifest(&mut self, now: u64, record: usize, response: Response) {
        let len = response.payload.len();
        self.truth.bytes_fetched += len as u64;
        let blocks = len.div_ceil(usize::from(self.cfg.block_size)).max(1);
        let c = self.cfg.costs;
        self.spend(now, c.block_ms * blocks as f64 + c.ed25519_verify_ms + c.sha256_ms_per_kb * len as f64 / 1024.0);
        if !is_success(response.code) {
            return self.fail(now, record, UpdateError::ManifestFetch(format!("{:?}", response.code)));
        }
        let target = match self.check_manifest(&response.payload) {
            Ok(t) => t,
            Err((seq, e)) => {
                self.truth.history[record].sequence = seq;
                return self.fail(now, record, e);
            }
        };
        self.truth.history[record].sequence = Some(target.sequence);
        if target.size > u64::from(self.cfg.costs.slot_bytes) {
            return self.fail(now, record, UpdateError::TooLarge);
        }
        // The old content of the inactive slot is gone from here on.
        self.slots[1 - self.active] = None;
        self.publish_state();
        let t = Transfer {
            record,
            target,
            request: RequestId(0),
            block: 0,
            szx: self.szx(),
            written: 0,
            hasher: Sha256::new(),
        };
        self.request_block(now, Box::new(t));
    }

    /// RIOT's checks, in its order: signature (and the manifest digest), sequence number,
    /// vendor, class. Returns the sequence number read so far with an error.
    fn check_manifest(&self, bytes: &[u8]) -> Result<Target, (Option<u64>, UpdateError)> {
        let env = Envelope::parse(bytes).map_err(|e| (None, UpdateError::ManifestInvalid(e.to_string())))?;
        let ok = env.authenticate(&self.cfg.keys).map_err(|e| (None, UpdateError::Signature(e.to_string())))?;
        let m = ok.manifest();
        let seq = Some(m.sequence_number);
        let installed = self.truth.installed_sequence;
        if m.sequence_number <= installed {
            return Err((seq, UpdateError::SequenceNumber { offered: m.sequence_number, installed }));
        }
        let invalid = |what: &str| (seq, UpdateError::ManifestInvalid(what.into()));
        let c = m.components.first().ok_or_else(|| invalid("no component"))?;
        if !c.checks_vendor || c.vendor_id.as_ref() != Some(&self.cfg.vendor_id) {
            return Err((seq, UpdateError::Vendor));
        }
        if !c.checks_class || c.class_id.as_ref() != Some(&self.cfg.class_id) {
            return Err((seq, UpdateError::Class));
        }
        let inactive = 1 - self.active;
        let image = if c.images.len() > 1 { c.images.get(inactive) } else { c.images.first() };
        let image = image.ok_or_else(|| invalid("no image for the inactive slot"))?;
        let uri = image.uri.as_deref().ok_or_else(|| invalid("image without URI"))?;
        let (peer, path) = parse_coap_url(uri).ok_or((seq, UpdateError::BadUrl))?;
        let size = image.size.ok_or_else(|| invalid("image without size"))?;
        let digest = image.digest.clone().ok_or_else(|| invalid("image without digest"))?;
        Ok(Target { sequence: m.sequence_number, peer, path, size, digest })
    }

    /// Asks for block `t.block` (one CON GET with Block2, as nanocoap does).
    fn request_block(&mut self, now: u64, mut t: Box<Transfer>) {
        let mut req = Request::get(&t.target.path);
        req.block2 = Some(BlockOpt { num: t.block, more: false, szx: t.szx });
        let at = self.stack.instant(now);
        match self.stack.coap_mut().start_request(at, t.target.peer, req) {
            Ok(request) => {
                t.request = request;
                self.job = Job::Payload(t);
            }
            Err(e) => {
                self.erase_inactive();
                self.fail(now, t.record, UpdateError::PayloadFetch(e.to_string()))
            }
        }
    }

    /// One block arrived: write it to flash (with the failure knobs), then ask for the next or
    /// check the image.
    fn on_block(&mut self, now: u64, mut t: Box<Transfer>, response: Response) {
        let (record, written) = (t.record, t.written);
        let abort = |node: &mut Self, e: UpdateError| {
            node.erase_inactive();
            node.fail(now, record, e)
        };
        if !is_success(response.code) {
            return abort(self, UpdateError::PayloadFetch(format!("{:?}", response.code)));
        }
        let (more, szx) = match response.block2 {
            // nanocoap fails on a larger block than asked, adopts a smaller one.
            Some(b) if b.szx > t.szx => {
                return abort(self, UpdateError::PayloadFetch("block larger than asked".into()))
            }
            Some(b) if b.offset() as u64 != written => {
                return abort(self, UpdateError::PayloadFetch("block at the wrong offset".into()))
            }
            Some(b) => (b.more, b.szx),
            None => (false, t.szx),
        };
        let mut data = response.payload.to_vec();
        self.truth.bytes_fetched += data.len() as u64;
        let end = written + data.len() as u64;
        if end > t.target.size {
            return abort(self, UpdateError::TooLarge);
        }
        // Flash: erase each page the block enters, then program it.
        let c = self.cfg.costs;
        let page = u64::from(c.flash_page_bytes);
        let new_pages = end.div_ceil(page) - written.div_ceil(page);
        self.spend(now, c.block_ms + c.flash_erase_ms_per_page * new_pages as f64);
        self.spend(now, c.flash_write_us_per_byte * data.len() as f64 / 1e3);
        let f = self.failures();
        // RIOT's flashwrite buffers a page and programs it whole: one chance of failure per page.
        for _ in 0..new_pages {
            if f.flash_write_error_rate > 0.0 && self.rng.chance(f.flash_write_error_rate) {
                return abort(self, UpdateError::FlashWrite { offset: written });
            }
        }
        if f.corrupt_write && written == 0 {
            if let Some(b) = data.first_mut() {
                *b ^= 0x01;
            }
        }
        t.hasher.update(&data);
        if f.power_loss_at_byte.is_some_and(|at| end >= at && at >= written) {
            self.erase_inactive();
            self.finish(now, record, UpdateOutcome::Failed { error: UpdateError::PowerLoss { written: end } });
            // Power is back at once; the node boots its old slot.
            self.reboot(now, Boot::Same);
            return;
        }
        if more {
            // The next block at the (possibly smaller) size the server chose.
            t.szx = szx;
            t.block = u32::try_from(end / (16u64 << szx)).unwrap_or(u32::MAX);
            t.written = end;
            return self.request_block(now, t);
        }
        // condition-image-match: size, then SHA-256 over the slot.
        self.spend(now, c.sha256_ms_per_kb * end as f64 / 1024.0);
        let Transfer { target, hasher, .. } = *t;
        if end != target.size {
            return abort(self, UpdateError::SizeMismatch { got: end, expected: target.size });
        }
        let ok = target.digest.alg == DigestAlg::Sha256 && target.digest.bytes[..] == hasher.finalize()[..];
        if !ok {
            return abort(self, UpdateError::DigestMismatch);
        }
        self.slots[1 - self.active] = Some(target.sequence);
        self.reboot_pending = Some(Boot::New { record, sequence: target.sequence });
    }

    fn erase_inactive(&mut self) {
        self.slots[1 - self.active] = None;
        self.publish_state();
    }

    fn fail(&mut self, now: u64, record: usize, error: UpdateError) {
        self.finish(now, record, UpdateOutcome::Failed { error });
    }

    fn finish(&mut self, now: u64, record: usize, outcome: UpdateOutcome) {
        self.job = Job::Idle;
        if let Some(r) = self.truth.history.get_mut(record) {
            if let (UpdateOutcome::Failed { error }, Some(seq)) = (&outcome, r.sequence) {
                self.last_failure = Some((seq, error.code()));
            }
            r.finished_us = self.cpu_free_at.max(now);
            r.outcome = outcome;
        }
        if self.last_failure.is_some() {
            self.publish_state();
        }
        if let Ok(mut b) = self.trigger.lock() {
            b.accepting = true;
        }
    }

    /// `pm_reboot()`: the radio goes silent for the boot time.
    fn reboot(&mut self, now: u64, boot: Boot) {
        self.truth.reboots += 1;
        let back = now + us(self.cfg.costs.boot_ms);
        if self.truth.boots.len() < MAX_BOOTS_KEPT {
            self.truth.boots.push((now, back));
        }
        self.job = Job::Idle;
        self.inbox.clear();
        self.waiting = false;
        self.cpu_free_at = now;
        if let Ok(mut b) = self.trigger.lock() {
            b.accepting = false;
        }
        self.booting = Some((back, boot));
    }

    fn finish_boot(&mut self, now: u64, boot: Boot) {
        if let Boot::New { record, sequence } = boot {
            if self.failures().boot_failure {
                // The new image crashes; riotboot falls back to the other valid slot.
                self.slots[1 - self.active] = None;
                self.finish(now, record, UpdateOutcome::Failed { error: UpdateError::BootFailure });
                self.reboot(now, Boot::Same);
                return;
            }
            self.active = 1 - self.active;
            self.truth.active_slot = self.active as u8;
            self.truth.installed_sequence = sequence;
            self.finish(now, record, UpdateOutcome::Installed { slot: self.active as u8 });
        }
        self.start_firmware();
    }
}

impl Upper for RiotNode {
    fn on_frame(&mut self, now_us: u64, psdu: &[u8], meta: &RxMeta) {
        if self.booting.is_some() {
            return;
        }
        self.stack.handle_frame(now_us, psdu, meta.rssi_dbm, meta.lqi);
        self.step(now_us);
    }

    fn on_tx_done(&mut self, now_us: u64, psdu: &[u8], outcome: TxOutcome) {
        // A frame that never went on air (a busy channel) says nothing of its neighbour: only
        // an ACK or its absence tells whether the parent is still there.
        let acked = match outcome {
            TxOutcome::Acked => true,
            TxOutcome::NoAck => false,
            TxOutcome::NotSent => return,
        };
        if self.booting.is_some() {
            return;
        }
        let dst = crate::net::mac::MacFrame::parse(psdu).ok().and_then(|(f, _)| f.dst);
        if let Some(dst) = dst {
            let now = self.stack.instant(now_us);
            self.stack.iface_mut().handle_tx_outcome(now, dst, acked);
        }
    }

    fn poll_transmit(&mut self, now_us: u64) -> Option<Vec<u8>> {
        if self.booting.is_some() {
            return None;
        }
        self.step(now_us);
        self.stack.poll_transmit(now_us)
    }

    fn poll_timeout(&self) -> Option<u64> {
        if let Some((until, _)) = self.booting {
            return Some(until);
        }
        let cpu = self.waiting.then_some(self.cpu_free_at);
        let linger = self.lingering.then_some(self.awake_until);
        [self.stack.poll_timeout(), cpu, linger, self.charge_at()].into_iter().flatten().min()
    }

    fn handle_timeout(&mut self, now_us: u64) {
        self.step(now_us);
    }

    fn keep_awake(&self) -> bool {
        self.is_updating() || self.lingering
    }

    fn radio_silent(&self) -> bool {
        self.booting.is_some()
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

/// The key of nodes whose scenario lists none: RIOT's test-only key (shared/vectors/suit), as
/// a RIOT build without `SUIT_KEY` uses its default key.
pub fn riot_test_key() -> Option<PublicKey> {
    PublicKey::from_pem(include_str!("../suit/testdata/test_ed25519_public.pem")).ok()
}
