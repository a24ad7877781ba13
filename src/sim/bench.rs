//! `ferry bench`: one fleet update run several ways on the same simulated PAN, in virtual time,
//! and measured against what the radio allows.
//!
//! Every strategy starts from a fresh [`World`] with the same seed and the real host stack
//! ([`SimHost`]: Spinel over the modelled UART, [`BorderRouter`](crate::border::BorderRouter)
//! with the RPL root). The gateway serves one signed RIOT envelope per board class (RIOT's
//! test-only key, as the devices' default keys are), with an image of `[bench] image_bytes`
//! per riotboot slot, from a [`Catalog`] on the border router's CoAP router. Devices are
//! triggered with `POST /suit/trigger`; a device is finished when its ground truth
//! ([`RiotNode::truth`](super::riot::RiotNode::truth)) runs the new sequence number, or when its
//! update failed (or the run's `limit_s` passed).
//!
//! | strategy | what starts a device |
//! |---|---|
//! | `trigger-all` | all at once at the start (RIOT's `make suit/notify` loop); one trigger each |
//! | `sequential` | the next device once the previous one runs the new image or failed (read from ground truth, the best case for an operator) |
//! | `ferry` | [`schedule::plan`](crate::schedule::plan::plan) with the `[bench]` PAN policy, re-planned every second and whenever a session ends; each start is a [`deliver::Engine`](crate::deliver::Engine) session (records go to memory) |
//!
//! Sleepy devices are marked sleepy on the border router in every strategy (ferryd learns it),
//! so their frames wait for their polls. The planner is fed the engine's live sessions; one
//! past `streaming` (installing, rebooting, read back) keeps its device busy but no air-time
//! share. A device whose session ends other than `done` is not planned again. What the planner
//! knows of a device's sleep (its wake period) also paces ferry's requests to it
//! ([`BorderRouter::expect_wake_period`](crate::border::BorderRouter::expect_wake_period)),
//! as ferryd does; the baselines use CoAP's default timers.
//!
//! With `FERRY_BENCH_PCAP=<file>` in the environment every frame on air of each strategy's
//! run is written to that file (the last strategy's run stays), for Wireshark or tshark.
//!
//! # Columns
//!
//! From the start `t0` (the Spinel link up) to the last device finishing: makespan; aggregate
//! goodput = payload bytes of updated devices / makespan; per-device goodput = mean of image
//! bytes / (its trigger → new image running); channel utilisation = Σ air time of every node
//! (frames and ACKs, [`World::report`]) / makespan; MAC retransmissions, CCA failures and
//! collisions summed over all nodes; failed devices; device radio-on time (mean, max).
//!
//! # The bound
//!
//! `efficiency = bound / makespan`. The bound is a lower bound on any makespan for the same
//! transfers. Per device `d`, with `blocks(x) = ⌈x / block⌉`:
//!
//! - `exchange_d`: the trigger (POST and its piggybacked 2.01) and, per block of the manifest and
//!   the image, the GET and its response, each cut into frames by ferry's own 6LoWPAN stack
//!   (the exact PSDUs of these messages), every frame costing radio.md's minimal exchange:
//!   mean first backoff 1.12 ms + CCA 0.128 + turnaround 0.192 + (PSDU + 6) · 32 µs +
//!   turnaround 0.192 + ACK 0.352 + IFS (SIFS/LIFS); no retries, no contention;
//! - `work_d`: what the simulator's device model spends on the CPU: per block `block_ms`, flash
//!   erase per new page and write per byte, manifest SHA-256 and Ed25519 check, image SHA-256,
//!   and the reboot `boot_ms`; `tail_d` is the part after the last block (image SHA-256 + boot);
//! - `wake_d`: a sleepy device's wait for its first poll after `t0` (ground truth of the run).
//!
//! One device cannot go faster than its own serial path (every hop of it: `hops_d · exchange_d`),
//! and the gateway's channel carries every device's first hop one frame at a time, after which
//! the last device still has its tail (frames one hop further out may share the air in
//! parallel, so only the gateway's hop is summed):
//!
//! `bound = max( max_d (wake_d + hops_d · exchange_d + work_d),  Σ_d exchange_d + min_d tail_d )`.
//!
//! Devices behind routers are reached once their DAOs made it to the root (the run waits up
//! to 600 s of virtual time for that before `t0`).
//!
//! The header's bound is over every device; a row's is over the devices that strategy updated,
//! so a strategy that loses devices is not credited with transfers it never made.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coap_lite::{MessageType, Packet};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::host::{HostConfig, SimHost};
use super::riot::{riot_test_key, Costs, RiotNode, UpdateOutcome};
use super::scenario::{DutyCycle, NodeSpec, Scenario};
use super::timing::Timing;
use super::world::{Report, World, WorldError};
use crate::border::COAP_PORT;
use crate::coap::{self, content_format, BlockOpt, Event, Method, Request, RequestId, Response, Router};
use crate::config::GroupPolicy;
use crate::deliver::{
    Action, Catalog, DeviceTiming, Engine, EngineConfig, Next, Offer, RequestTag, RetryPolicy, SessionId, SessionPlan,
};
use crate::fleet::device::{Eui64, Lifecycle, LinkQuality, Parent};
use crate::fleet::topology::InMemoryTopology;
use crate::net::{Interface, InterfaceConfig, MacAddr};
use crate::repo::BlobDigest;
use crate::schedule::plan::{self, ApprovalMode, GroupPlan, PanPolicy, PlanDevice, PlanState, Update, Urgency};
use crate::schedule::{Schedule, Window};
use crate::suit::emit::{ImageSpec, ManifestSpec};
use crate::suit::{policy, CoseAlg, Digest, Envelope, Format, SigningKey};

/// RIOT's test-only signing key (src/suit/testdata): the key every bench device trusts.
const TEST_KEY: &str = include_str!("../suit/testdata/test_ed25519_private_TESTONLY.pem");
/// riotboot slot offsets of the envelopes (RIOT picks the image at the inactive slot's index).
const SLOT_OFFSETS: [u64; 2] = [0x1000, 0x80000];
/// How long the Spinel handshake may take before the run is called broken.
const READY_LIMIT_US: u64 = 5_000_000;
/// How long devices behind routers may take to join the DODAG before the update starts.
const JOIN_LIMIT_US: u64 = 600_000_000;
/// ferry re-plans at least this often.
const PLAN_EVERY_US: u64 = 1_000_000;
/// The component every bench device has (the planner's key for installed versions).
const COMPONENT: &str = "0";
/// The wall clock of medium µs 0 in a bench run (the planner's windows are always open there).
const BENCH_EPOCH: &str = "2026-11-23T10:00:00Z";

pub mod rollout;

/// How a fleet update is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Ferry,
    Sequential,
    TriggerAll,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Ferry, Strategy::Sequential, Strategy::TriggerAll];
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Ferry => "ferry",
            Strategy::Sequential => "sequential",
            Strategy::TriggerAll => "trigger-all",
        })
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ferry" => Ok(Strategy::Ferry),
            "sequential" => Ok(Strategy::Sequential),
            "trigger-all" => Ok(Strategy::TriggerAll),
            other => Err(format!("unknown strategy `{other}`; use ferry, sequential or trigger-all")),
        }
    }
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    World(#[from] WorldError),
    #[error("the scenario has no devices")]
    NoDevices,
    #[error("the Spinel link to the simulated RCP did not come up")]
    NotReady,
    #[error("building the update for class `{class}`: {why}")]
    Update { class: String, why: String },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub strategies: Vec<Strategy>,
    /// Every device's SUIT block size (else the scenario's `coap_block_size`).
    pub block_size: Option<u16>,
    /// Every device's macMaxCSMABackoffs (else the scenario's `csma_backoffs`).
    pub csma_backoffs: Option<u8>,
    pub seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options { strategies: Strategy::ALL.to_vec(), block_size: None, csma_backoffs: None, seed: None }
    }
}

/// One strategy's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub strategy: Strategy,
    pub devices: usize,
    pub updated: usize,
    /// Devices that did not run the new image at the end (failed, rolled back or out of time).
    pub failed: usize,
    pub makespan_s: f64,
    /// Payload bytes of updated devices per second of makespan, kB (1000 B) per second.
    pub goodput_kb_s: f64,
    pub per_device_goodput_kb_s: f64,
    /// Share of the makespan the channel carried a frame or an ACK (sums overlapping frames).
    pub channel_utilisation: f64,
    pub mac_retries: u64,
    pub cca_failures: u64,
    /// Frames the devices dropped because every CCA of their CSMA-CA found the channel busy;
    /// a dropped CoAP request costs its device a CoAP retransmission timeout (2-3 s).
    pub device_channel_access_failures: u64,
    /// The same for the border router's radio.
    pub border_channel_access_failures: u64,
    pub collisions: u64,
    pub radio_on_mean_s: f64,
    pub radio_on_max_s: f64,
    /// The bound for the devices this strategy updated (all of them when none failed).
    pub bound_s: f64,
    pub efficiency: f64,
    /// Wall-clock time of this run.
    pub wall_ms: u64,
    /// The devices that failed, with why.
    pub failures: Vec<String>,
    /// ferry only: device-seconds in each phase, summed over devices (`queued` is t0 until the
    /// planner started the device's session; the rest are the sessions' states).
    pub phases: BTreeMap<String, f64>,
    /// ferry only: payload blocks a device asked for after the previous one was served, those
    /// that came 2 s (CoAP's ACK_TIMEOUT) or more later, and the seconds those waited
    /// ([`crate::deliver::EngineStats`]).
    pub block_waits: u64,
    pub long_block_waits: u64,
    pub long_block_wait_s: f64,
    /// When each updated device ran the new image, s after the start, in order; and the MAC
    /// retries counted by then. Strategies that update different numbers of devices compare
    /// at the same count.
    pub updates_s: Vec<f64>,
    pub retries_by_update: Vec<u64>,
}

impl Row {
    /// When the `n`-th device (1-based) was updated and the MAC retries by then.
    pub fn at_update(&self, n: usize) -> Option<(f64, u64)> {
        let i = n.checked_sub(1)?;
        Some((*self.updates_s.get(i)?, *self.retries_by_update.get(i)?))
    }
}

/// A whole bench: the setup and one row per strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bench {
    pub seed: u64,
    pub devices: usize,
    pub sleepy: usize,
    pub image_bytes: u64,
    pub block_sizes: Vec<u16>,
    pub bound: Bound,
    pub rows: Vec<Row>,
}

impl Bench {
    /// Whether the rows are consistent: every device updated (per ground truth), makespans
    /// positive, efficiency in (0, 1], and no strategy faster than the bound.
    pub fn check(&self) -> Result<(), String> {
        if self.bound.bound_s <= 0.0 {
            return Err(format!("bound {:.3} s is not positive", self.bound.bound_s));
        }
        for r in &self.rows {
            let s = r.strategy;
            if r.updated != r.devices {
                return Err(format!("{s}: {} of {} devices updated: {:?}", r.updated, r.devices, r.failures));
            }
            if r.makespan_s <= 0.0 {
                return Err(format!("{s}: makespan {:.3} s", r.makespan_s));
            }
            if !(r.efficiency > 0.0 && r.efficiency <= 1.0) {
                return Err(format!("{s}: efficiency {:.3} is outside (0, 1]", r.efficiency));
            }
        }
        Ok(())
    }
}

/// The parts of the bound, s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    /// Σ exchange_d + min tail_d.
    pub channel_s: f64,
    /// max_d (wake_d + exchange_d + work_d).
    pub device_s: f64,
    pub bound_s: f64,
}

/// Runs every strategy of `opts` on `scenario`.
pub fn run(scenario: &Scenario, opts: &Options) -> Result<Bench, BenchError> {
    let mut scenario = scenario.clone();
    if let Some(seed) = opts.seed {
        scenario.seed = seed;
    }
    for n in &mut scenario.nodes {
        if let Some(b) = opts.block_size {
            n.coap_block_size = b;
        }
        if let Some(nb) = opts.csma_backoffs {
            n.csma_backoffs = nb;
        }
    }
    if scenario.nodes.is_empty() {
        return Err(BenchError::NoDevices);
    }
    let mut rows = Vec::new();
    let mut bound = None;
    for &strategy in &opts.strategies {
        let (row, b) = run_one(&scenario, strategy)?;
        bound = Some(b);
        rows.push(row);
    }
    let mut block_sizes: Vec<u16> = scenario.nodes.iter().map(|n| n.coap_block_size).collect();
    block_sizes.sort_unstable();
    block_sizes.dedup();
    Ok(Bench {
        seed: scenario.seed,
        devices: scenario.nodes.len(),
        sleepy: scenario.nodes.iter().filter(|n| matches!(n.duty_cycle, DutyCycle::Sleepy { .. })).count(),
        image_bytes: scenario.bench.image_bytes,
        block_sizes,
        bound: bound.unwrap_or(Bound { channel_s: 0.0, device_s: 0.0, bound_s: 0.0 }),
        rows,
    })
}

/// One device the update goes to.
struct Target {
    name: String,
    /// Its index in `World::devices`: ground truth is read on every step, and finding a device
    /// by name there was most of a 99-node run's wall time.
    device: Option<usize>,
    eui: [u8; 8],
    /// The router it hangs off; `None` for the gateway.
    parent: Option<[u8; 8]>,
    hops: u32,
    peer: SocketAddrV6,
    /// Index into the offers.
    offer: usize,
    wake_period: Option<Duration>,
    /// Its battery is charged during the run (`failure.charged_at_s`).
    charged_later: bool,
    block_size: u16,
    /// Medium µs it was first triggered.
    started: Option<u64>,
    end: Option<End>,
}

#[derive(Debug, Clone)]
enum End {
    Installed { at: u64, triggered: u64 },
    Failed { at: u64, why: String },
}

impl End {
    fn at(&self) -> u64 {
        match self {
            End::Installed { at, .. } | End::Failed { at, .. } => *at,
        }
    }
}

/// The update served for one board class.
struct Served {
    offer: Offer,
    /// The planner's vendor and class ID strings.
    vendor: String,
    class: String,
}

impl Served {
    /// The planner's name for this update.
    fn update_id(&self) -> String {
        format!("{}@{}", self.offer.manifest_path, self.offer.sequence)
    }
}

/// The common part of every strategy: the host stack and the fleet it updates.
struct Run {
    host: SimHost,
    fleet: Fleet,
}

/// What is served and to whom, and how far each device got.
struct Fleet {
    catalog: Catalog<SocketAddrV6>,
    served: Vec<Served>,
    targets: Vec<Target>,
    image_bytes: u64,
    t0: u64,
    /// Every install as it was read: when it finished (µs) and the PAN's MAC retries then.
    installs: Vec<(u64, u64)>,
}

impl Run {
    fn new(scenario: &Scenario) -> Result<Run, BenchError> {
        let mut world = World::new(scenario)?;
        if let Some(path) = std::env::var_os("FERRY_BENCH_PCAP") {
            let opened =
                std::fs::File::create(&path).and_then(|f| world.set_pcap(Box::new(std::io::BufWriter::new(f))));
            if let Err(e) = opened {
                // Asked for by whoever runs the bench, who reads stderr (`ferry` logs nothing).
                eprintln!(
                    "FERRY_BENCH_PCAP: cannot write {}: {e}; the run goes on without a capture",
                    path.to_string_lossy()
                );
            }
        }
        let cfg = HostConfig { uart_baud: scenario.bench.uart_baud, ..HostConfig::for_scenario(scenario) };
        let catalog = Catalog::new(cfg.border.coap.default_szx);
        let mut host = SimHost::new(world, cfg, Router::new());
        if !host.run_until_with(READY_LIMIT_US, |h| h.is_ready()) {
            return Err(BenchError::NotReady);
        }
        let gateway = host.border().address();
        let image_bytes = scenario.bench.image_bytes;
        let mut served: Vec<Served> = Vec::new();
        let mut by_board: HashMap<(String, String), usize> = HashMap::new();
        let mut targets = Vec::new();
        let now = host.now();
        for n in &scenario.nodes {
            let board = (n.board.vendor.clone(), n.board.class.clone());
            let offer = match by_board.get(&board) {
                Some(&i) => i,
                None => {
                    let sequence =
                        scenario.nodes.iter().filter(|m| m.board == n.board).map(|m| m.firmware.sequence).max();
                    let s = serve_update(&mut host, &catalog, gateway, n, sequence.unwrap_or(0) + 1, image_bytes)?;
                    served.push(s);
                    by_board.insert(board, served.len() - 1);
                    served.len() - 1
                }
            };
            let address = host.world().riot(&n.name).map(|r| r.address()).unwrap_or(Ipv6Addr::UNSPECIFIED);
            let wake_period = match n.duty_cycle {
                DutyCycle::Sleepy { poll_period_s, .. } => {
                    // ferryd learns this from the polls; the bench tells it. A router holds
                    // the frames of its own sleepy children.
                    if scenario.node(&n.parent).is_none() {
                        let mac = MacAddr::Short(n.short);
                        host.border_mut().interface_mut().add_neighbor(now, address, mac);
                        host.border_mut().set_sleepy(mac, true);
                    }
                    Some(Duration::from_secs_f64(poll_period_s))
                }
                DutyCycle::AlwaysOn => None,
            };
            targets.push(Target {
                name: n.name.clone(),
                device: host.world().devices().iter().position(|d| d.params().name == n.name),
                eui: n.eui64.0,
                parent: scenario.node(&n.parent).map(|p| p.eui64.0),
                hops: hops(scenario, n),
                peer: SocketAddrV6::new(address, COAP_PORT, 0, 0),
                offer,
                wake_period,
                charged_later: n.failure.charged_at_s.is_some(),
                block_size: n.coap_block_size,
                started: None,
                end: None,
            });
        }
        if targets.iter().any(|t| t.hops > 1) {
            // Devices behind routers are reachable once their DAOs reached the root.
            let want = targets.len();
            let limit = host.now_us() + JOIN_LIMIT_US;
            host.run_until_with(limit, |h| h.border().topology(h.now()).nodes.len() >= want);
        }
        let t0 = host.now_us();
        Ok(Run { host, fleet: Fleet { catalog, served, targets, image_bytes, t0, installs: Vec::new() } })
    }
}

impl Fleet {
    fn all_ended(&self) -> bool {
        self.targets.iter().all(|t| t.end.is_some())
    }

    /// Reads every unfinished device's ground truth: installed, or (if `failures_end`) failed.
    fn read_truth(&mut self, world: &World, failures_end: bool) {
        // The PAN's retries, read once per call and only when a device installed.
        let mut retries: Option<u64> = None;
        for t in self.targets.iter_mut().filter(|t| t.end.is_none()) {
            let Some(riot) = t.device.and_then(|i| world.devices().get(i)?.upper_as::<RiotNode>()) else { continue };
            let sequence = self.served[t.offer].offer.sequence;
            let truth = riot.truth();
            if truth.installed_sequence >= sequence {
                let rec = truth.history.iter().rev().find(|r| matches!(r.outcome, UpdateOutcome::Installed { .. }));
                let (at, triggered) = rec.map_or((world.now(), world.now()), |r| (r.finished_us, r.triggered_us));
                t.end = Some(End::Installed { at, triggered });
                let retries =
                    *retries.get_or_insert_with(|| world.report().nodes.iter().map(|n| n.radio.retries).sum());
                self.installs.push((at, retries));
            } else if failures_end {
                if let Some(r) = truth.history.last() {
                    match &r.outcome {
                        UpdateOutcome::Failed { error } => {
                            t.end = Some(End::Failed { at: r.finished_us, why: error.to_string() })
                        }
                        UpdateOutcome::Refused { reason } => {
                            t.end = Some(End::Failed { at: r.finished_us, why: format!("refused: {reason:?}") })
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn trigger_request(&self, t: &Target) -> Request {
        let mut request = Request::new(Method::Post, "suit/trigger");
        let mut payload = self.served[t.offer].offer.manifest_uri.as_bytes().to_vec();
        payload.push(0);
        request.payload = Bytes::from(payload);
        request.content_format = Some(content_format::TEXT_PLAIN);
        request
    }
}

/// Hops from the gateway to `n` along the scenario's parents.
fn hops(scenario: &Scenario, n: &NodeSpec) -> u32 {
    let mut hops = 1;
    let mut at = n;
    while let Some(p) = scenario.node(&at.parent) {
        hops += 1;
        at = p;
        if hops as usize > scenario.nodes.len() {
            break; // a parent cycle; the scenario check refuses those
        }
    }
    hops
}

/// Builds, signs, checks and serves the update for `n`'s board class.
fn serve_update(
    host: &mut SimHost,
    catalog: &Catalog<SocketAddrV6>,
    gateway: Ipv6Addr,
    n: &NodeSpec,
    sequence: u64,
    image_bytes: u64,
) -> Result<Served, BenchError> {
    let bad = |why: String| BenchError::Update { class: n.board.class.clone(), why };
    let images: Vec<Vec<u8>> = (0u8..2)
        .map(|slot| (0..image_bytes).map(|i| (i as u8).wrapping_mul(31) ^ slot.wrapping_add(0x5a)).collect())
        .collect();
    let vendor = policy::vendor_id(&n.board.vendor);
    let class = policy::class_id(&vendor, &n.board.class);
    let folder = format!("fw/{}", if n.board.class.is_empty() { "board" } else { &n.board.class });
    let spec = ManifestSpec {
        sequence_number: sequence,
        component: crate::suit::ComponentId(vec![vec![0]]),
        class_id: class.clone(),
        vendor_id: vendor.clone(),
        images: SLOT_OFFSETS
            .iter()
            .zip(&images)
            .enumerate()
            .map(|(i, (&offset, img))| ImageSpec {
                slot: Some(offset),
                digest: Digest::sha256(img),
                size: img.len() as u64,
                uri: format!("coap://[{gateway}]/{folder}/slot{i}.bin"),
            })
            .collect(),
    };
    let key = SigningKey::from_pkcs8_pem(TEST_KEY).map_err(|e| bad(e.to_string()))?;
    let envelope = spec.build(Format::Riot, &[(&key, CoseAlg::EdDsa)]).map_err(|e| bad(e.to_string()))?;
    let public = riot_test_key().ok_or_else(|| bad("no test key".into()))?;
    let parsed = Envelope::parse(&envelope).map_err(|e| bad(e.to_string()))?;
    let manifest = parsed.authenticate(&[public]).map_err(|e| bad(e.to_string()))?.into_manifest();
    let payloads: Vec<(BlobDigest, Bytes)> =
        images.into_iter().map(|img| (BlobDigest::of(&img), Bytes::from(img))).collect();
    let repo_path = format!("{folder}/riot.suit.{sequence}.bin");
    let offer = catalog
        .add_manifest(host.border_mut().router_mut(), &repo_path, Bytes::from(envelope), &manifest, &payloads)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Served { offer, vendor: vendor.to_string(), class: class.to_string() })
}

/// What decides when each device starts.
trait Driver {
    /// Handles everything due at the host's current time.
    fn step(&mut self, host: &mut SimHost, fleet: &mut Fleet);
    /// The next medium µs the driver must run at, if any.
    fn next_wake(&self, host: &SimHost) -> Option<u64>;
}

/// Runs `driver` until every device ended or `limit` medium µs.
fn drive(run: &mut Run, driver: &mut dyn Driver, limit: u64) {
    let Run { host, fleet } = run;
    loop {
        driver.step(host, fleet);
        if fleet.all_ended() {
            return;
        }
        let now = host.now_us();
        if now >= limit {
            return;
        }
        let wake = driver.next_wake(host).unwrap_or(limit).clamp(now + 1, limit);
        host.run_until_with(wake, |h| {
            driver.step(h, fleet);
            fleet.all_ended() || driver.next_wake(h).is_some_and(|w| w < wake)
        });
    }
}

/// Baselines: RIOT's own way, all at once or one after the other.
struct Baseline {
    one_at_a_time: bool,
    triggers: HashMap<RequestId, usize>,
}

impl Driver for Baseline {
    fn step(&mut self, host: &mut SimHost, fleet: &mut Fleet) {
        let now = host.now();
        let now_us = host.now_us();
        while let Some(ev) = host.border_mut().poll_event() {
            let (id, failure) = match ev {
                Event::Response { id, response, .. } => {
                    let ok = coap::is_success(response.code);
                    (id, (!ok).then(|| format!("trigger answered {:?}", response.code)))
                }
                Event::Failed { id, error, .. } => (id, Some(format!("trigger: {error}"))),
                Event::Deferred { .. } => continue,
            };
            if let (Some(i), Some(why)) = (self.triggers.remove(&id), failure) {
                fleet.targets[i].end.get_or_insert(End::Failed { at: now_us, why });
            }
        }
        let _ = fleet.catalog.drain_served();
        fleet.read_truth(host.world(), true);
        let busy = fleet.targets.iter().any(|t| t.started.is_some() && t.end.is_none());
        for i in 0..fleet.targets.len() {
            if self.one_at_a_time && busy {
                break;
            }
            if fleet.targets[i].started.is_some() {
                continue;
            }
            let request = fleet.trigger_request(&fleet.targets[i]);
            let peer = fleet.targets[i].peer;
            fleet.targets[i].started = Some(now_us);
            match host.border_mut().start_request(now, peer, request) {
                Ok(id) => {
                    self.triggers.insert(id, i);
                }
                Err(e) => fleet.targets[i].end = Some(End::Failed { at: now_us, why: e.to_string() }),
            }
            if self.one_at_a_time {
                break;
            }
        }
    }

    fn next_wake(&self, _host: &SimHost) -> Option<u64> {
        None
    }
}

/// ferry: the planner decides the starts, the delivery engine runs the sessions.
struct Ferry {
    engine: Engine<SocketAddrV6>,
    state: PlanState,
    topology: InMemoryTopology,
    /// Medium µs ↔ the planner's clock.
    epoch: Timestamp,
    requests: HashMap<RequestId, (SessionId, RequestTag)>,
    /// Live session per target.
    sessions: BTreeMap<usize, SessionId>,
    /// Failed sessions per target (the planner gives up on a device after its session fails).
    next_plan_us: u64,
    /// How often the planner runs when nothing else asks for it, µs.
    plan_every_us: u64,
    /// Whether a failed session ends its device's run (the bench) or the planner may start it
    /// again under ferryd's `[delivery]` retry policy (a rollout).
    give_up_on_failure: bool,
    retry: RetryPolicy,
    /// Failed or rolled-back sessions per device and update, for the retry policy.
    attempts: HashMap<(Eui64, String), u32>,
    /// Sessions that ended other than `done`: medium µs, device, why.
    failures: Vec<(u64, String, String)>,
    replan: bool,
    /// Per session: its state and since when (medium µs).
    in_state: HashMap<SessionId, (crate::deliver::State, u64)>,
    phases: BTreeMap<String, f64>,
}

impl Ferry {
    fn new(host: &SimHost, fleet: &Fleet, scenario: &Scenario) -> Ferry {
        Ferry::with_epoch(host, fleet, scenario, BENCH_EPOCH.parse().unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// The ferry driver whose planner reads medium µs 0 as the wall-clock instant `epoch`.
    fn with_epoch(host: &SimHost, fleet: &Fleet, scenario: &Scenario, epoch: Timestamp) -> Ferry {
        let start = epoch.saturating_add(SignedDuration::from_micros(fleet.t0 as i64)).unwrap_or(epoch);
        let devices = fleet
            .targets
            .iter()
            .zip(&scenario.nodes)
            .map(|(t, n)| PlanDevice {
                eui64: Eui64(t.eui),
                name: Some(t.name.clone()),
                group: "bench".into(),
                lifecycle: Lifecycle::Active,
                vendor_id: Some(fleet.served[t.offer].vendor.clone()),
                class_id: Some(fleet.served[t.offer].class.clone()),
                installed: BTreeMap::from([(COMPONENT.to_owned(), n.firmware.sequence)]),
                mains_powered: t.wake_period.is_none(),
                battery_percent: Some(n.failure.battery_percent),
                free_storage_bytes: Some(u64::from(Costs::for_board(&n.board.class).with(&n.processing).slot_bytes)),
                link: Some(LinkQuality { rssi_dbm: -60, lqi: 230, etx: 1.0 }),
                wake_period_ms: t.wake_period.map(|w| w.as_millis() as u64),
            })
            .collect();
        let updates = fleet
            .served
            .iter()
            .map(|s| Update {
                id: s.update_id(),
                authority: "riot-test".into(),
                vendor_id: s.vendor.clone(),
                class_id: s.class.clone(),
                component: COMPONENT.into(),
                sequence: s.offer.sequence,
                image_bytes: s.offer.payload_size,
                urgency: Urgency::Routine,
                verified: true,
                approved: false,
                approved_groups: Default::default(),
                paused: false,
                available_at: start,
            })
            .collect();
        let always = Schedule::new(TimeZone::UTC, vec![Window::always()], vec![]);
        let group = GroupPlan::new("bench", always, &GroupPolicy::default());
        let bench = scenario.bench;
        let pan = PanPolicy {
            air_time_budget: bench.air_time_budget,
            max_concurrent_per_parent: bench.max_concurrent_per_parent,
            block_size: fleet.targets.first().map_or(64, |t| t.block_size),
            ..PanPolicy::default()
        };
        let state = PlanState {
            devices,
            updates,
            sessions: Vec::new(),
            groups: BTreeMap::from([("bench".to_owned(), group)]),
            authorities: BTreeMap::from([("riot-test".to_owned(), ApprovalMode::Automatic)]),
            pan,
            held: Default::default(),
            model: crate::schedule::estimate::Model {
                install_fixed: bench
                    .install_fixed_s
                    .map_or(crate::schedule::estimate::Model::default().install_fixed, SignedDuration::from_secs_f64),
                uart_baud: f64::from(bench.uart_baud),
                rcp_tx_window: host.client().info().map_or(1, |i| u8::try_from(i.tx_window()).unwrap_or(u8::MAX)),
                ..Default::default()
            },
        };
        let topology = InMemoryTopology::from_parents(
            fleet
                .targets
                .iter()
                .map(|t| (Eui64(t.eui), t.parent.map_or(Parent::BorderRouter, |p| Parent::Node(Eui64(p))))),
        );
        let engine = Engine::new(EngineConfig::default(), host.now(), start.as_millisecond(), 0);
        Ferry {
            engine,
            state,
            topology,
            epoch,
            requests: HashMap::new(),
            sessions: BTreeMap::new(),
            next_plan_us: fleet.t0,
            plan_every_us: PLAN_EVERY_US,
            give_up_on_failure: true,
            retry: RetryPolicy::default(),
            attempts: HashMap::new(),
            failures: Vec::new(),
            replan: true,
            in_state: HashMap::new(),
            phases: BTreeMap::new(),
        }
    }

    fn timestamp(&self, us: u64) -> Timestamp {
        self.epoch.saturating_add(SignedDuration::from_micros(us as i64)).unwrap_or(self.epoch)
    }

    fn add_phase(&mut self, phase: &str, us: u64) {
        *self.phases.entry(phase.to_owned()).or_default() += us as f64 / 1e6;
    }

    /// Ends the current state of `session` at `now_us` and enters `to` (if any).
    fn enter(&mut self, session: SessionId, to: Option<crate::deliver::State>, now_us: u64) {
        if let Some((state, since)) = self.in_state.remove(&session) {
            self.add_phase(state.as_str(), now_us.saturating_sub(since));
        }
        if let Some(to) = to.filter(|s| !s.is_terminal()) {
            self.in_state.insert(session, (to, now_us));
        }
    }

    fn perform_actions(&mut self, host: &mut SimHost, now: Instant) {
        let now_us = host.now_us();
        while let Some(action) = self.engine.poll_action() {
            match action {
                // The in-memory sink: the record is "committed" at once.
                Action::Persist(record) => {
                    if record.transition.is_some() {
                        self.enter(record.id, Some(record.state), now_us);
                    }
                }
                Action::Request { session, tag, peer, request } => {
                    match host.border_mut().start_request(now, peer, request) {
                        Ok(id) => {
                            self.requests.insert(id, (session, tag));
                        }
                        Err(e) => self.engine.handle_response(
                            now,
                            session,
                            tag,
                            Err(coap::RequestError::Encode(e.to_string())),
                        ),
                    }
                }
            }
        }
        // As ferryd does: a request its session stopped waiting for is not sent again.
        let engine = &self.engine;
        let mut stale = Vec::new();
        self.requests.retain(|&id, &mut (session, tag)| {
            let awaited = engine.awaits(session, tag);
            if !awaited {
                stale.push(id);
            }
            awaited
        });
        for id in stale {
            host.border_mut().endpoint_mut().cancel(now, id);
        }
    }

    /// What the planner is told of running sessions: a session whose device installs, reboots
    /// or is read back uses no air ([`crate::deliver::State::uses_air`]), so its share drops to
    /// zero (it still counts as busy).
    fn feed_sessions(&mut self, fleet: &Fleet) {
        for (&i, &id) in &self.sessions {
            let off_air = self.engine.state(id).is_some_and(|s| !s.uses_air());
            let eui = Eui64(fleet.targets[i].eui);
            if let Some(s) = self.state.sessions.iter_mut().find(|s| s.device == eui) {
                if off_air {
                    s.air_time_share = 0.0;
                    s.gateway_share = 0.0;
                }
            }
        }
    }

    /// Ends the sessions the engine finished and feeds the plan state.
    fn collect_ended(&mut self, fleet: &mut Fleet, now_us: u64) {
        let ended: Vec<(usize, SessionId)> = self
            .sessions
            .iter()
            .filter(|(_, id)| self.engine.state(**id).is_none_or(|s| s.is_terminal()))
            .map(|(&i, &id)| (i, id))
            .collect();
        for (i, id) in ended {
            self.sessions.remove(&i);
            self.enter(id, None, now_us);
            self.replan = true;
            let eui = Eui64(fleet.targets[i].eui);
            let update = self.state.sessions.iter().find(|s| s.device == eui).map(|s| s.update.clone());
            self.state.sessions.retain(|s| s.device != eui);
            let state = self.engine.state(id);
            if state == Some(crate::deliver::State::Done) {
                let offered = fleet.served[fleet.targets[i].offer].offer.sequence;
                let seq = self.engine.record(id).map_or(offered, |r| r.plan.sequence);
                if let Some(d) = self.state.devices.iter_mut().find(|d| d.eui64 == eui) {
                    d.installed.insert(COMPONENT.to_owned(), seq);
                }
            } else {
                let why = self.engine.record(id).and_then(|r| r.reason.as_ref()).map(|r| r.to_string());
                let why = format!("session {}: {}", state.map_or("gone", |s| s.as_str()), why.unwrap_or_default());
                self.failures.push((now_us, fleet.targets[i].name.clone(), why.clone()));
                if self.give_up_on_failure {
                    // ferry gave up on the device (its retries are spent): no new session.
                    self.state.devices.retain(|d| d.eui64 != eui);
                    fleet.targets[i].end.get_or_insert(End::Failed { at: now_us, why });
                } else if let (Some(update), Some(state)) = (update, state) {
                    // As ferryd: the next session of this update waits out the backoff, and
                    // none starts once the attempts are spent.
                    let key = (eui, update);
                    let attempts = self.attempts.entry(key.clone()).or_default();
                    let next = self.retry.after(state, attempts.saturating_add(1));
                    if !matches!(next, Next::NotCounted) {
                        *attempts += 1;
                    }
                    let attempts = *attempts;
                    let at = self.timestamp(now_us);
                    let until = match next {
                        Next::RetryAfter(wait) => {
                            let wait = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
                            Some(Some(at.saturating_add(wait).unwrap_or(at)))
                        }
                        Next::GiveUp => Some(None),
                        Next::Finished | Next::NotCounted => None,
                    };
                    if let Some(until) = until {
                        self.state.held.insert(key, plan::Held { attempts, until });
                    }
                }
            }
        }
    }

    /// A device the planner holds for its battery, which nothing in the run will charge, ends
    /// there (the baselines' triggers fail on it): the makespan is that of the devices ferry
    /// may update, not the run's limit.
    fn end_held_for_battery(&mut self, p: &plan::Plan, fleet: &mut Fleet, now_us: u64) {
        for e in &p.entries {
            let plan::Action::Wait { reasons, .. } = &e.action else { continue };
            let [plan::WaitReason::BatteryLow { percent, min }] = reasons.as_slice() else { continue };
            let Some(t) = fleet.targets.iter_mut().find(|t| Eui64(t.eui) == e.device) else { continue };
            if t.charged_later || t.end.is_some() {
                continue;
            }
            t.end =
                Some(End::Failed { at: now_us, why: format!("held: battery {percent} % below the group's {min} %") });
            self.state.devices.retain(|d| d.eui64 != e.device);
        }
    }

    fn start_planned(&mut self, host: &mut SimHost, fleet: &mut Fleet, now: Instant, now_us: u64) {
        let at = self.timestamp(now_us);
        let p = plan::plan(&self.state, &self.topology, at);
        if self.give_up_on_failure {
            self.end_held_for_battery(&p, fleet, now_us);
        }
        for start in p.starts() {
            let Some(i) = fleet.targets.iter().position(|t| Eui64(t.eui) == start.device) else { continue };
            let t = &fleet.targets[i];
            // The update the planner chose (a rollout serves several over time).
            let served = fleet.served.iter().find(|s| s.update_id() == start.update);
            let offer = &served.unwrap_or(&fleet.served[t.offer]).offer;
            let session_plan = SessionPlan {
                device: start.device,
                peer: t.peer,
                manifest_uri: offer.manifest_uri.clone(),
                manifest_path: offer.manifest_path.clone(),
                manifest_digest: offer.manifest_digest.clone(),
                payload_paths: offer.payload_paths.clone(),
                sequence: offer.sequence,
                manifest_size: offer.manifest_size,
                payload_size: offer.payload_size,
                timing: DeviceTiming::from_estimate(&start.estimate, u32::from(t.block_size)),
                authority: "riot-test".into(),
                approval: "bench".into(),
                not_before: None,
                window_closes: start.must_end_by(),
                air_time_share: start.estimate.air_time_share,
                gateway_share: start.estimate.gateway_share,
            };
            // What the planner knows of the device's sleep paces the requests to it (the border
            // router hears only its own children poll).
            host.border_mut().expect_wake_period(*t.peer.ip(), session_plan.timing.wake_period);
            if let Ok(id) = self.engine.start(now, session_plan) {
                self.sessions.insert(i, id);
                self.in_state.entry(id).or_insert((crate::deliver::State::Planned, now_us));
                let queued = now_us.saturating_sub(fleet.t0);
                if fleet.targets[i].started.is_none() {
                    self.add_phase("queued", queued);
                }
                fleet.targets[i].started.get_or_insert(now_us);
                self.state.sessions.push(plan::Plan::session_for(start, at));
            }
        }
    }
}

impl Driver for Ferry {
    fn step(&mut self, host: &mut SimHost, fleet: &mut Fleet) {
        let now = host.now();
        let now_us = host.now_us();
        while let Some(ev) = host.border_mut().poll_event() {
            let (id, outcome) = match ev {
                Event::Response { id, response, .. } => (id, Ok(response)),
                Event::Failed { id, error, .. } => (id, Err(error)),
                Event::Deferred { .. } => continue,
            };
            if let Some((session, tag)) = self.requests.remove(&id) {
                self.engine.handle_response(now, session, tag, outcome);
            }
        }
        for s in fleet.catalog.drain_served() {
            if let Some(peer) = s.peer {
                self.engine.handle_served(now, peer, &s.path, s.offset, s.len, s.total);
            }
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.perform_actions(host, now);
        self.collect_ended(fleet, now_us);
        self.feed_sessions(fleet);
        // Installed devices end when they run the new image; failures end with their session.
        fleet.read_truth(host.world(), false);
        if self.replan || now_us >= self.next_plan_us {
            self.replan = false;
            self.next_plan_us = now_us + self.plan_every_us;
            self.start_planned(host, fleet, now, now_us);
            self.perform_actions(host, now);
        }
    }

    fn next_wake(&self, host: &SimHost) -> Option<u64> {
        let engine = self.engine.poll_timeout().map(|t| host.micros(t));
        [engine, Some(self.next_plan_us)].into_iter().flatten().min()
    }
}

fn run_one(scenario: &Scenario, strategy: Strategy) -> Result<(Row, Bound), BenchError> {
    let wall = Instant::now();
    let mut run = Run::new(scenario)?;
    let before = run.host.world().report();
    let limit = run.fleet.t0 + (scenario.bench.limit_s * 1e6) as u64;
    let mut phases = BTreeMap::new();
    let mut waits = (0, 0, 0.0);
    match strategy {
        Strategy::Ferry => {
            let mut driver = Ferry::new(&run.host, &run.fleet, scenario);
            drive(&mut run, &mut driver, limit);
            let now_us = run.host.now_us();
            let live: Vec<SessionId> = driver.in_state.keys().copied().collect();
            for id in live {
                driver.enter(id, None, now_us);
            }
            phases = driver.phases;
            let stats = driver.engine.stats();
            waits = (stats.block_waits, stats.long_block_waits, stats.long_block_wait_total.as_secs_f64());
        }
        Strategy::Sequential | Strategy::TriggerAll => {
            let mut driver = Baseline { one_at_a_time: strategy == Strategy::Sequential, triggers: HashMap::new() };
            drive(&mut run, &mut driver, limit);
        }
    }
    let end_us = run.host.now_us();
    for t in run.fleet.targets.iter_mut().filter(|t| t.end.is_none()) {
        t.end = Some(End::Failed { at: end_us, why: "not finished within limit_s".into() });
    }
    let last = run.fleet.targets.iter().filter_map(|t| t.end.as_ref().map(End::at)).max().unwrap_or(end_us);
    let after = run.host.world().report();
    let _ = run.host.world_mut().finish_pcap();
    let all = bound(scenario, &run, |_| true);
    let delivered = bound(scenario, &run, |t| matches!(t.end, Some(End::Installed { .. })));
    let mut row = row(strategy, &run.fleet, &before, &after, last, delivered, wall.elapsed());
    row.phases = phases;
    (row.block_waits, row.long_block_waits, row.long_block_wait_s) = waits;
    Ok((row, all))
}

fn row(
    strategy: Strategy,
    run: &Fleet,
    before: &Report,
    after: &Report,
    last: u64,
    bound: Bound,
    wall: Duration,
) -> Row {
    let makespan_s = last.saturating_sub(run.t0) as f64 / 1e6;
    let mut updated = 0;
    let mut per_device = Vec::new();
    let mut failures = Vec::new();
    for t in &run.targets {
        match &t.end {
            Some(End::Installed { at, triggered }) => {
                updated += 1;
                let s = at.saturating_sub(*triggered) as f64 / 1e6;
                if s > 0.0 {
                    per_device.push(run.image_bytes as f64 / 1e3 / s);
                }
            }
            Some(End::Failed { why, .. }) => failures.push(format!("{}: {why}", t.name)),
            None => failures.push(format!("{}: unfinished", t.name)),
        }
    }
    let delta = |f: fn(&super::medium::NodeStats) -> u64| -> u64 {
        after.nodes.iter().zip(&before.nodes).map(|(a, b)| f(&a.radio).saturating_sub(f(&b.radio))).sum()
    };
    let radio_on: Vec<f64> = after
        .nodes
        .iter()
        .zip(&before.nodes)
        .skip(1)
        .map(|(a, b)| a.radio.radio_on_us.saturating_sub(b.radio.radio_on_us) as f64 / 1e6)
        .collect();
    let per = |x: f64| if makespan_s > 0.0 { x / makespan_s } else { 0.0 };
    let retries_before: u64 = before.nodes.iter().map(|n| n.radio.retries).sum();
    let mut installs = run.installs.clone();
    installs.sort_unstable();
    Row {
        strategy,
        devices: run.targets.len(),
        updated,
        failed: run.targets.len() - updated,
        makespan_s,
        goodput_kb_s: per(updated as f64 * run.image_bytes as f64 / 1e3),
        per_device_goodput_kb_s: mean(&per_device),
        channel_utilisation: per(delta(|s| s.air_time_us) as f64 / 1e6),
        mac_retries: delta(|s| s.retries),
        cca_failures: delta(|s| s.cca_failures),
        device_channel_access_failures: after
            .nodes
            .iter()
            .zip(&before.nodes)
            .skip(1)
            .map(|(a, b)| a.radio.channel_access_failures.saturating_sub(b.radio.channel_access_failures))
            .sum(),
        border_channel_access_failures: after
            .nodes
            .first()
            .zip(before.nodes.first())
            .map_or(0, |(a, b)| a.radio.channel_access_failures.saturating_sub(b.radio.channel_access_failures)),
        collisions: delta(|s| s.collisions),
        radio_on_mean_s: mean(&radio_on),
        radio_on_max_s: radio_on.iter().copied().fold(0.0, f64::max),
        bound_s: bound.bound_s,
        efficiency: if makespan_s > 0.0 { bound.bound_s / makespan_s } else { 0.0 },
        wall_ms: wall.as_millis() as u64,
        failures,
        phases: BTreeMap::new(),
        block_waits: 0,
        long_block_waits: 0,
        long_block_wait_s: 0.0,
        updates_s: installs.iter().map(|(at, _)| at.saturating_sub(run.t0) as f64 / 1e6).collect(),
        retries_by_update: installs.iter().map(|(_, r)| r.saturating_sub(retries_before)).collect(),
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// radio.md's minimal time of one frame with its ACK, µs.
fn frame_us(t: &Timing, psdu: usize) -> f64 {
    let backoff = ((1u64 << t.min_be) - 1) as f64 / 2.0 * t.backoff_unit_us as f64;
    backoff
        + (t.cca_us + t.cca_to_tx_us + t.air_time_us(psdu) + t.turnaround_us + t.air_time_us(5) + t.ifs_us(psdu)) as f64
}

/// The PSDUs ferry's 6LoWPAN stack makes of one UDP datagram from `from` to `to`.
fn psdus(from: &mut Interface, to: Ipv6Addr, payload: &[u8]) -> Vec<usize> {
    let now = Instant::now();
    if from.send_udp(now, COAP_PORT, (to, COAP_PORT), payload).is_err() {
        return Vec::new();
    }
    std::iter::from_fn(|| from.poll_transmit(now)).map(|t| t.psdu.len()).collect()
}

fn coap_bytes(write: impl FnOnce(&mut Packet)) -> Vec<u8> {
    let mut pkt = Packet::new();
    pkt.header.set_type(MessageType::Confirmable);
    pkt.header.message_id = 0x1234;
    // The endpoint's tokens are 4 bytes.
    pkt.set_token(vec![1, 2, 3, 4]);
    write(&mut pkt);
    pkt.to_bytes().unwrap_or_default()
}

/// Minimal channel time of one device's exchanges, µs: trigger, manifest blocks, image blocks.
fn exchange_us(scenario: &Scenario, n: &NodeSpec, offer: &Offer, gateway: &mut Interface, gw_addr: Ipv6Addr) -> f64 {
    let timing = Timing::STANDARD;
    let prefix = scenario.prefix.network();
    let mut icfg = InterfaceConfig::new(scenario.pan_id, n.eui64.0, Some(prefix));
    icfg.mac.short_addr = Some(n.short);
    icfg.router = false;
    let mut node = Interface::new(icfg);
    node.set_default_router(Some(MacAddr::Ext(scenario.gateway.eui64.0)));
    let Some(addr) = node.global() else { return 0.0 };
    if matches!(n.duty_cycle, DutyCycle::Sleepy { .. }) {
        gateway.add_neighbor(Instant::now(), addr, MacAddr::Short(n.short));
    }
    let cost = |sizes: Vec<usize>| sizes.into_iter().map(|p| frame_us(&timing, p)).sum::<f64>();
    let mut trigger_payload = offer.manifest_uri.as_bytes().to_vec();
    trigger_payload.push(0);
    let mut trigger = Request::new(Method::Post, "suit/trigger");
    trigger.payload = Bytes::from(trigger_payload);
    trigger.content_format = Some(content_format::TEXT_PLAIN);
    let mut total = cost(psdus(gateway, addr, &coap_bytes(|p| trigger.write_into(p))));
    total += cost(psdus(&mut node, gw_addr, &coap_bytes(|p| Response::new(coap::Code::Created).write_into(p, &[]))));
    let block = usize::from(n.coap_block_size.max(16));
    let szx = (block.trailing_zeros() as u8).saturating_sub(4);
    let transfer = |path: &str, size: u64, node: &mut Interface, gateway: &mut Interface| -> f64 {
        let blocks = size.div_ceil(block as u64);
        let mut t = 0.0;
        for num in 0..blocks {
            let more = num + 1 < blocks;
            let len = if more { block } else { (size - num * block as u64) as usize };
            let mut get = Request::get(path);
            get.block2 = BlockOpt::new(num as u32, false, szx).ok();
            t += cost(psdus(node, gw_addr, &coap_bytes(|p| get.write_into(p))));
            let mut resp = Response::content(content_format::OCTET_STREAM, vec![0u8; len]);
            resp.etag = Some(vec![0; 8]);
            resp.block2 = BlockOpt::new(num as u32, more, szx).ok();
            resp.size2 = (num == 0).then_some(size as u32);
            let body = vec![0u8; len];
            t += cost(psdus(gateway, addr, &coap_bytes(|p| resp.write_into(p, &body))));
        }
        t
    };
    total += transfer(&offer.manifest_path, offer.manifest_size, &mut node, gateway);
    let payload = offer.payload_paths.first().map_or("", String::as_str);
    total += transfer(payload, offer.payload_size, &mut node, gateway);
    total
}

/// The device model's CPU time for one update, split into (whole, after the last block), µs.
fn work_us(n: &NodeSpec, offer: &Offer) -> (f64, f64) {
    let c = Costs::for_board(&n.board.class).with(&n.processing);
    let block = u64::from(n.coap_block_size.max(16));
    let manifest_blocks = offer.manifest_size.div_ceil(block) as f64;
    let image_blocks = offer.payload_size.div_ceil(block) as f64;
    let pages = offer.payload_size.div_ceil(u64::from(c.flash_page_bytes.max(1))) as f64;
    let manifest =
        c.block_ms * manifest_blocks + c.ed25519_verify_ms + c.sha256_ms_per_kb * offer.manifest_size as f64 / 1024.0;
    let image = c.block_ms * image_blocks
        + c.flash_erase_ms_per_page * pages
        + c.flash_write_us_per_byte * offer.payload_size as f64 / 1e3;
    let tail = c.sha256_ms_per_kb * offer.payload_size as f64 / 1024.0 + c.boot_ms;
    ((manifest + image + tail) * 1e3, tail * 1e3)
}

/// The bound over the targets `include` accepts (all of them for the header; the updated ones
/// for a row, so a strategy that loses devices is measured on what it delivered).
fn bound(scenario: &Scenario, run: &Run, include: impl Fn(&Target) -> bool) -> Bound {
    let cfg = HostConfig::for_scenario(scenario);
    let gw_addr = run.host.border().address();
    let (host, run) = (&run.host, &run.fleet);
    let mut gateway = Interface::new(cfg.border.iface.clone());
    let mut channel = 0.0;
    let mut device: f64 = 0.0;
    let mut min_tail = f64::INFINITY;
    for (t, n) in run.targets.iter().zip(&scenario.nodes).filter(|(t, _)| include(t)) {
        let offer = &run.served[t.offer].offer;
        let exchange = exchange_us(scenario, n, offer, &mut gateway, gw_addr);
        let (work, tail) = work_us(n, offer);
        let wake = match t.wake_period {
            Some(_) => host
                .world()
                .wakes(&t.name)
                .and_then(|w| w.iter().map(|r| r.wake_us).find(|&at| at >= run.t0))
                .map_or(0.0, |at| (at - run.t0) as f64),
            None => 0.0,
        };
        // Every frame crosses the gateway's own hop, so that hop alone bounds the channel; the
        // device's serial path crosses every hop.
        channel += exchange;
        min_tail = min_tail.min(tail);
        device = device.max(wake + f64::from(t.hops) * exchange + work);
    }
    let channel_s = (channel + if min_tail.is_finite() { min_tail } else { 0.0 }) / 1e6;
    let device_s = device / 1e6;
    Bound { channel_s, device_s, bound_s: channel_s.max(device_s) }
}

/// The rows as a table, with the setup on top.
pub fn table(b: &Bench) -> String {
    let mut out = String::new();
    let sizes: Vec<String> = b.block_sizes.iter().map(u16::to_string).collect();
    let _ = writeln!(
        out,
        "{} devices ({} sleepy), {} B image, {} B blocks, seed {}; bound {:.1} s (channel {:.1} s, slowest device {:.1} s)",
        b.devices,
        b.sleepy,
        b.image_bytes,
        sizes.join("/"),
        b.seed,
        b.bound.bound_s,
        b.bound.channel_s,
        b.bound.device_s
    );
    let _ = writeln!(
        out,
        "{:<12} {:>7} {:>9} {:>8} {:>8} {:>6} {:>7} {:>6} {:>7} {:>7} {:>8} {:>8} {:>6} {:>8}",
        "strategy",
        "updated",
        "makespan",
        "kB/s",
        "dev kB/s",
        "chan",
        "retries",
        "CCA",
        "collis",
        "failed",
        "on mean",
        "on max",
        "eff",
        "wall"
    );
    for r in &b.rows {
        let _ = writeln!(
            out,
            "{:<12} {:>3}/{:<3} {:>8.1}s {:>8.2} {:>8.2} {:>5.0}% {:>7} {:>6} {:>7} {:>7} {:>7.1}s {:>7.1}s {:>6.2} {:>6.1}s",
            r.strategy.to_string(),
            r.updated,
            r.devices,
            r.makespan_s,
            r.goodput_kb_s,
            r.per_device_goodput_kb_s,
            r.channel_utilisation * 100.0,
            r.mac_retries,
            r.cca_failures,
            r.collisions,
            r.failed,
            r.radio_on_mean_s,
            r.radio_on_max_s,
            r.efficiency,
            r.wall_ms as f64 / 1e3
        );
    }
    // Strategies that updated different numbers of devices, compared at each one's count.
    let most = b.rows.iter().map(|r| r.updated).max().unwrap_or(0);
    let mut counts: Vec<usize> = b.rows.iter().map(|r| r.updated).filter(|&n| n > 0 && n < most).collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    counts.dedup();
    for n in counts {
        let parts: Vec<String> = b
            .rows
            .iter()
            .filter_map(|r| {
                let (at, retries) = r.at_update(n)?;
                Some(format!("{} {at:.1} s, {retries} retries", r.strategy))
            })
            .collect();
        let _ = writeln!(out, "  by the time {n} of them ran the update: {}", parts.join("; "));
    }
    let dropped: Vec<String> = b
        .rows
        .iter()
        .map(|r| format!("{} {}/{}", r.strategy, r.device_channel_access_failures, r.border_channel_access_failures))
        .collect();
    let _ = writeln!(out, "  frames dropped at channel access (devices/border router): {}", dropped.join(", "));
    for r in b.rows.iter().filter(|r| !r.phases.is_empty()) {
        let total: f64 = r.phases.values().sum();
        let parts: Vec<String> =
            r.phases.iter().map(|(k, v)| format!("{k} {v:.0} ({:.0}%)", 100.0 * v / total.max(1e-9))).collect();
        let _ = writeln!(out, "  {} device-seconds by phase: {}", r.strategy, parts.join(", "));
    }
    for r in b.rows.iter().filter(|r| r.block_waits > 0) {
        let _ = writeln!(
            out,
            "  {} block requests 2 s or more after the previous block: {} of {} ({:.0} device-seconds)",
            r.strategy, r.long_block_waits, r.block_waits, r.long_block_wait_s
        );
    }
    for r in &b.rows {
        for f in r.failures.iter().take(5) {
            let _ = writeln!(out, "  {} failed: {f}", r.strategy);
        }
    }
    out
}
