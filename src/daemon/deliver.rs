//! The daemon's delivery room: the shell around the sans-IO [`Engine`](crate::deliver::Engine).
//!
//! One tokio task owns the engine and the serving [`Catalog`]s and joins them to the rest:
//!
//! - **Serving.** Every verified manifest the planner offers is added to the LoWPAN catalog (in
//!   the border router's CoAP router, through [`NetHandle::with`]) and to the `[coap] listen`
//!   one, at the paths of its signed URIs; its envelope and payloads stay pinned in the cache
//!   while served (`serve:<digest>`).
//! - **Sessions.** Every `Start` of a plan ([`DeliverHandle::plan`], sent by each replan)
//!   becomes [`Engine::start`]; engine requests go out as CoAP requests on the border router,
//!   their outcomes and the catalog's served blocks come back into the engine; each
//!   [`Action::Persist`] is committed before the request after it. Running sessions are fed to
//!   the planner; a session that ends done records the installed sequence number as a device
//!   fact (source: delivery), and every ending is written to the audit log.
//! - **Discovery.** Nodes in the DODAG are `discovered`; commissioned and active ones are asked
//!   `/riot/board`, `/suit/version` and `/ferry/status` and what they answer is `learned`,
//!   with their link and position from the border router's topology. The topology is fed to
//!   the planner as its [`MeshView`].
//!
//! - **Kernel devices.** Devices behind the kernel's IP stack (`[[kernel_device]]`, see
//!   [`super::kernel`]) run in the same engine; their requests go out over `[coap] listen` and
//!   what that endpoint serves them counts as their progress.
//!
//! Cancellation and the sessions' progress go through [`DeliverHandle`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::kernel::{KernelSide, Route};
use super::net::NetHandle;
use super::plan::{MeshView, OfferedUpdate};
use super::status::Shared;
use crate::border::{NetTopology, Peer, COAP_PORT};
use crate::coap::udp::{ShellHandle, UdpPeer};
use crate::coap::{self, content_format, Event, RequestId};
use crate::deliver::record::device_hex;
use crate::deliver::{
    load_unfinished, persist, Action, Catalog, DeliverMetrics, DeviceTiming, Engine, Next, Offer, Progress, RequestTag,
    RetryPolicy, Servable, SessionId, SessionPlan, SessionRecord, State,
};
use crate::fleet::commission::{self, Heard};
use crate::fleet::device::{Eui64, Known, Lifecycle, LinkQuality, Parent, Position, Source};
use crate::fleet::topology::Topology as _;
use crate::repo::{BlobCache, BlobDigest};
use crate::schedule::plan::{Action as PlanAction, ActiveSession, Plan, WaitReason};
use crate::store::attempts::{self, AttemptRow};
use crate::store::audit::{self, AuditEntry};
use crate::suit::policy::{self, Policy};
use crate::suit::Envelope;

/// How often served blocks are drained into the engine (progress granularity).
const SERVED_PERIOD: Duration = Duration::from_millis(100);
/// How often the topology is read for new devices, links and positions.
const MESH_PERIOD: Duration = Duration::from_secs(2);
/// Facts a device answered are asked again after this.
const RELEARN_AFTER: Duration = Duration::from_secs(10 * 60);
/// A device the plan holds for its battery is asked again this soon (it may have been
/// charged), and so is one that did not answer (it may have been asleep longer than ferry knew).
const RELEARN_HELD: Duration = Duration::from_secs(30);
/// Block size sessions' timeouts are derived with (RIOT's SUIT worker asks for 64 bytes).
const BLOCK_SIZE: u32 = 64;
/// What ferry reads from a device to learn its facts, in this order.
const FACT_PATHS: [&str; 3] = ["riot/board", "suit/version", "ferry/status"];
/// Largest answer ferry reads from a device's read-back and fact resources.
const READ_BACK_MAX: usize = 1024;
/// RIOT's single SUIT component, `[h'00']`, as `plan::component_name` writes it.
const RIOT_COMPONENT: &str = "00";

/// What the plan gives the delivery room.
#[derive(Clone)]
pub(super) struct PlanFeed {
    pub plan: Arc<Plan>,
    pub offered: Arc<Vec<OfferedUpdate>>,
    /// Devices whose group closed under a running session (`plan::closed_sessions`): a session
    /// that has not triggered its device yet is held back until the group opens again.
    pub closed: Arc<Vec<Eui64>>,
}

/// A request to the room from the control socket.
enum Command {
    Cancel { id: SessionId, reply: oneshot::Sender<Result<State, String>> },
}

/// Other rooms' handle on the delivery room. Cheap to clone.
#[derive(Clone)]
pub(super) struct DeliverHandle {
    plans: watch::Sender<Option<PlanFeed>>,
    commands: mpsc::Sender<Command>,
    progress: Arc<Mutex<Vec<Progress>>>,
    /// Rung by the room when something changed that the plan should see at once.
    pub replan_wanted: Arc<Notify>,
}

/// What [`DeliverRoom::run`] consumes.
pub(super) struct DeliverInputs {
    plans: watch::Receiver<Option<PlanFeed>>,
    commands: mpsc::Receiver<Command>,
    progress: Arc<Mutex<Vec<Progress>>>,
    replan_wanted: Arc<Notify>,
}

pub(super) fn channels() -> (DeliverHandle, DeliverInputs) {
    let (plans, plans_rx) = watch::channel(None);
    let (commands, commands_rx) = mpsc::channel(16);
    let progress = Arc::new(Mutex::new(Vec::new()));
    let replan_wanted = Arc::new(Notify::new());
    let handle = DeliverHandle { plans, commands, progress: progress.clone(), replan_wanted: replan_wanted.clone() };
    (handle, DeliverInputs { plans: plans_rx, commands: commands_rx, progress, replan_wanted })
}

impl DeliverHandle {
    /// The plan just computed for now; its starts are started.
    pub(super) fn plan(&self, plan: Plan, offered: Vec<OfferedUpdate>, closed: Vec<Eui64>) {
        let feed = PlanFeed { plan: Arc::new(plan), offered: Arc::new(offered), closed: Arc::new(closed) };
        self.plans.send_replace(Some(feed));
    }

    /// Cancels a live session; the state it ends in, or why not.
    pub(super) async fn cancel(&self, id: SessionId) -> Result<State, String> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Cancel { id, reply }).await.map_err(|_| "the delivery room has stopped")?;
        answer.await.map_err(|_| "the delivery room has stopped".to_owned())?
    }

    /// The sessions the engine holds now (live and recently finished).
    pub(super) fn progress(&self) -> Vec<Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a request in flight on the LoWPAN is for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Engine { session: SessionId, tag: RequestTag },
    Fact { device: Eui64, index: usize },
}

/// Answers collected while learning a device's facts.
#[derive(Default)]
struct Learning {
    answers: [Option<Result<coap::Response, ()>>; FACT_PATHS.len()],
}

/// A manifest being served, by envelope digest.
struct Served {
    offer: Offer,
}

pub(super) struct DeliverRoom {
    shared: Arc<Shared>,
    net: NetHandle,
    udp: Option<ShellHandle>,
    cache: BlobCache,
    policy: Arc<Policy>,
    engine: Engine<Peer>,
    metrics: DeliverMetrics,
    lowpan: Catalog<Peer>,
    kernel: Catalog<UdpPeer>,
    served: HashMap<String, Served>,
    /// Digests that failed to load (not retried until they change).
    unservable: HashSet<String>,
    in_flight: HashMap<RequestId, Purpose>,
    learning: HashMap<Eui64, Learning>,
    learned_at: HashMap<Eui64, Instant>,
    active: BTreeMap<SessionId, ActiveSession>,
    /// The update id of each session, for the fact recorded when it ends.
    updates: HashMap<SessionId, String>,
    /// Device and manifest digest of sessions an operator cancelled: not started again by this
    /// ferryd (a restart, or a newer update, lets the plan start them again).
    cancelled: HashSet<(Eui64, String)>,
    /// Device and manifest digest of sessions that ended delivered but unconfirmed: the device
    /// cannot say what it runs, so this ferryd does not deliver the same update to it again.
    unconfirmed: HashSet<(Eui64, String)>,
    /// Devices reached over `[coap] listen`, and the requests in flight to them.
    kernel_side: KernelSide,
    kernel_in_flight: HashMap<RequestId, Purpose>,
    kernel_events: Option<mpsc::Receiver<Event<UdpPeer>>>,
    offered: Arc<Vec<OfferedUpdate>>,
    /// Ended sessions per device and update digest, for the retry policy (`store::attempts`).
    attempts: HashMap<(Eui64, String), AttemptRow>,
    /// Each device's group in the last plan, for its retry policy (`Config::retry_policy_for`).
    groups: HashMap<Eui64, String>,
    /// The earliest retry not yet offered to the planner (Unix ms).
    next_retry_ms: Option<i64>,
    /// The net room's air-time total when last read.
    air_us_seen: u64,
    /// Devices the last plan holds because their battery is low, and devices that did not
    /// answer when last asked: both are asked again soon.
    battery_held: HashSet<Eui64>,
    unanswered: HashSet<Eui64>,
    topology: Option<NetTopology>,
    prefix: Ipv6Addr,
    progress: Arc<Mutex<Vec<Progress>>>,
    replan_wanted: Arc<Notify>,
    /// LoWPAN requests made before the radio's first handshake, sent once it is done.
    parked: Vec<(Peer, coap::Request, Purpose)>,
    /// Both endpoints leave requests for unknown paths unanswered until the first plan's
    /// updates are served (see `UNKNOWN_PATHS_HELD_AT_START`).
    unknown_paths_held: bool,
}

impl DeliverRoom {
    pub(super) async fn start(
        shared: Arc<Shared>,
        cache: BlobCache,
        policy: Arc<Policy>,
        udp: Option<ShellHandle>,
        kernel_events: Option<mpsc::Receiver<Event<UdpPeer>>>,
        inputs: &DeliverInputs,
    ) -> anyhow::Result<DeliverRoom> {
        let metrics = DeliverMetrics::register(shared.metrics.registry())?;
        let net = shared.radio.net().clone();
        // Frames before this room runs belong to no session.
        let air_us_at_start = net.air_time_us();
        let prefix = shared.config.borrow().network.prefix.network();
        let (last_id, records, errors) = load_unfinished::<Peer>(&shared.store).await?;
        for e in errors {
            tracing::error!("a stored session cannot be resumed: {e}");
        }
        let delivery = shared.config.borrow().delivery.clone();
        let stored = shared.store.call(|c| attempts::list(c, None)).await?;
        let attempts: HashMap<_, _> = stored
            .into_iter()
            .filter_map(|row| {
                let eui = crate::fleet::device::parse_eui64(&row.device).ok()?;
                Some(((eui, row.manifest_digest.clone()), row))
            })
            .collect();
        let next_retry_ms = attempts.values().filter_map(|a| a.next_unix_ms).min();
        metrics.given_up.set(attempts.values().filter(|a| a.gave_up).count() as i64);
        let now = Instant::now();
        let mut engine = Engine::new(delivery.engine_config(), now, super::now_ms(), last_id);
        let resumed = records.len();
        engine.resume(now, records);
        let unconfirmed = delivered_unconfirmed(&shared.store).await;
        if resumed > 0 {
            tracing::info!(sessions = resumed, "resuming unfinished delivery sessions");
        }
        Ok(DeliverRoom {
            shared,
            net,
            kernel_side: KernelSide::new(udp.clone()),
            kernel_in_flight: HashMap::new(),
            kernel_events,
            unconfirmed,
            udp,
            cache,
            policy,
            engine,
            metrics,
            lowpan: Catalog::new(coap::Config::default().default_szx),
            kernel: Catalog::new(coap::Config::default().default_szx),
            served: HashMap::new(),
            unservable: HashSet::new(),
            in_flight: HashMap::new(),
            learning: HashMap::new(),
            learned_at: HashMap::new(),
            active: BTreeMap::new(),
            updates: HashMap::new(),
            cancelled: HashSet::new(),
            offered: Arc::default(),
            attempts,
            groups: HashMap::new(),
            next_retry_ms,
            air_us_seen: air_us_at_start,
            battery_held: HashSet::new(),
            unanswered: HashSet::new(),
            topology: None,
            prefix,
            progress: inputs.progress.clone(),
            replan_wanted: inputs.replan_wanted.clone(),
            unknown_paths_held: true,
            parked: Vec::new(),
        })
    }

    pub(super) async fn run(mut self, inputs: DeliverInputs, shutdown: CancellationToken) {
        let DeliverInputs { mut plans, mut commands, .. } = inputs;
        let Some(mut events) = self.shared.radio.take_coap_events() else {
            tracing::error!("the LoWPAN's CoAP events are taken by another room; nothing is delivered");
            return;
        };
        let mut served_tick = tokio::time::interval(SERVED_PERIOD);
        served_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut mesh_tick = tokio::time::interval(MESH_PERIOD);
        mesh_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut kernel_events = self.kernel_events.take();
        self.on_kernel_tick().await;
        // Resumed sessions act at once (probe before any trigger).
        self.drain().await;
        loop {
            let deadline = self.engine.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = plans.changed() => {
                    if changed.is_err() { break }
                    let feed = plans.borrow_and_update().clone();
                    if let Some(feed) = feed {
                        self.on_plan(feed).await;
                    }
                }
                Some(event) = events.recv() => self.on_event(event).await,
                Some(event) = next_kernel_event(&mut kernel_events) => self.on_kernel_event(event).await,
                Some(command) = commands.recv() => self.on_command(command).await,
                _ = served_tick.tick() => {
                    self.on_served().await;
                    self.publish();
                }
                _ = mesh_tick.tick() => {
                    self.send_parked().await;
                    self.on_kernel_tick().await;
                    self.on_mesh().await;
                }
                _ = sleep_until(deadline) => {
                    self.engine.handle_timeout(Instant::now());
                    self.drain().await;
                }
            }
        }
    }

    /// Serves what is offered and newly verified, then starts the plan's starts.
    async fn on_plan(&mut self, feed: PlanFeed) {
        self.offered = feed.offered.clone();
        self.groups = feed.plan.entries.iter().map(|e| (e.device, e.group.clone())).collect();
        self.battery_held = feed
            .plan
            .entries
            .iter()
            .filter(|e| match &e.action {
                PlanAction::Wait { reasons, .. } => reasons.iter().any(|r| matches!(r, WaitReason::BatteryLow { .. })),
                _ => false,
            })
            .map(|e| e.device)
            .collect();
        self.serve_offered(&feed.plan).await;
        if std::mem::take(&mut self.unknown_paths_held) {
            self.answer_unknown_paths().await;
        }
        let now = Instant::now();
        let mut started = self.hold_closed(now, &feed.closed);
        for start in feed.plan.starts() {
            let Some(update) = self.offered.iter().find(|u| u.id == start.update) else { continue };
            if self.cancelled.contains(&(start.device, update.digest.clone())) {
                tracing::debug!(device = %start.device, update = update.id, "cancelled by an operator; not started again");
                continue;
            }
            if self.unconfirmed.contains(&(start.device, update.digest.clone())) {
                tracing::debug!(device = %start.device, update = update.id, "delivered unconfirmed; not delivered again");
                continue;
            }
            // The planner holds these back too; a plan computed before the attempt was written
            // may not.
            if let Some(a) = self.attempts.get(&(start.device, update.digest.clone())) {
                if a.gave_up {
                    tracing::debug!(device = %start.device, update = update.id, attempts = a.attempts, "attempts spent; not started again");
                    continue;
                }
                if a.next_unix_ms.is_some_and(|t| t > super::now_ms()) {
                    tracing::debug!(device = %start.device, update = update.id, "waiting out the retry backoff");
                    continue;
                }
            }
            let Some(served) = self.served.get(&update.digest) else {
                tracing::warn!(update = update.id, "planned, but not served (its blobs did not load)");
                continue;
            };
            let Some(peer) = self.peer_of(start.device) else {
                tracing::debug!(device = %start.device, "no address for the device yet");
                continue;
            };
            let offer = &served.offer;
            let plan = SessionPlan {
                device: start.device,
                peer,
                manifest_uri: offer.manifest_uri.clone(),
                manifest_path: offer.manifest_path.clone(),
                manifest_digest: offer.manifest_digest.clone(),
                payload_paths: offer.payload_paths.clone(),
                sequence: offer.sequence,
                manifest_size: offer.manifest_size,
                payload_size: offer.payload_size,
                timing: DeviceTiming::from_estimate(&start.estimate, BLOCK_SIZE),
                authority: update.authority.clone(),
                approval: approval_text(&self.shared, update),
                not_before: None,
                window_closes: start.must_end_by(),
                air_time_share: start.estimate.air_time_share,
                gateway_share: start.estimate.gateway_share,
            };
            // What the planner knows of the device's sleep paces the requests to it (ferry hears
            // only its own children poll).
            let (address, wake) = (*peer.ip(), plan.timing.wake_period);
            if self.kernel_side.peer_of(start.device).is_none() {
                // The planner may start a LoWPAN device from its stored position before the
                // radio came up; the border router then has nothing to send with.
                if !self.lowpan_up() {
                    tracing::debug!(device = %start.device, "the radio has not come up yet");
                    continue;
                }
                if self.net.with(move |border, _| border.expect_wake_period(address, wake)).await.is_err() {
                    return;
                }
            }
            match self.engine.start(now, plan) {
                Ok(id) => {
                    tracing::info!(session = id, device = %start.device, update = start.update, "delivery session started");
                    self.active.insert(id, Plan::session_for(start, Timestamp::now()));
                    self.updates.insert(id, start.update.clone());
                    started = true;
                }
                // The planner had not seen the live session yet.
                Err(busy) => tracing::debug!(device = %start.device, "{busy}"),
            }
        }
        if started {
            self.drain().await;
        }
    }

    /// Cancels the sessions of `closed` devices that have not triggered their device yet: an
    /// owner's blackout saved (or a window ended) after the session started. Unlike an
    /// operator's cancel, the planner starts them again when the group opens. True if any was.
    fn hold_closed(&mut self, now: Instant, closed: &[Eui64]) -> bool {
        let held: Vec<SessionId> = self
            .engine
            .progress()
            .filter(|p| p.state == State::Planned)
            .map(|p| p.id)
            .filter(|&id| self.engine.record(id).is_some_and(|r| closed.contains(&r.plan.device)))
            .collect();
        let mut any = false;
        for id in held {
            if self.engine.cancel(now, id) {
                tracing::info!(session = id, "held: the device's group closed before it was triggered");
                any = true;
            }
        }
        any
    }

    /// Adds every verified offered manifest not served yet to both catalogs.
    /// Only updates the plan names for a device (to start, to wait for, or in progress) are
    /// served: serving pins their blobs, and an update no device of the fleet takes should not
    /// keep `ferry cache gc` from reclaiming it.
    async fn serve_offered(&mut self, plan: &Plan) {
        let named: HashSet<&str> = plan
            .entries
            .iter()
            .filter_map(|e| match &e.action {
                PlanAction::Start(start) => Some(start.update.as_str()),
                PlanAction::Wait { update, .. } | PlanAction::InProgress { update, .. } => Some(update.as_str()),
                PlanAction::UpToDate { .. } => None,
            })
            .collect();
        // And what unfinished sessions deliver: resumed before any plan named it, a device may
        // be fetching it right now.
        let live: HashSet<String> = self
            .engine
            .progress()
            .filter(|p| !p.state.is_terminal())
            .filter_map(|p| Some(self.engine.record(p.id)?.plan.manifest_digest.clone()))
            .collect();
        let wanted: Vec<OfferedUpdate> = self
            .offered
            .iter()
            .filter(|u| named.contains(u.id.as_str()) || live.contains(&u.digest))
            .filter(|u| u.verified && !self.served.contains_key(&u.digest) && !self.unservable.contains(&u.digest))
            .cloned()
            .collect();
        let mut seen = HashSet::new();
        for update in wanted {
            if !seen.insert(update.digest.clone()) {
                continue;
            }
            match self.load(&update).await {
                Ok(offer) => {
                    tracing::info!(
                        update = update.id,
                        uri = offer.manifest_uri,
                        payloads = offer.payload_paths.len(),
                        "serving the update to devices"
                    );
                    self.served.insert(update.digest.clone(), Served { offer });
                }
                Err(e) => {
                    tracing::error!(update = update.id, "cannot serve the update: {e:#}");
                    self.unservable.insert(update.digest.clone());
                }
            }
        }
    }

    /// Both endpoints answer 4.04 for what they do not serve from now on: every update a
    /// device may have been fetching before a restart is back in the catalogs.
    async fn answer_unknown_paths(&self) {
        // Queued behind the catalog's jobs: it runs after them, also when the radio comes up later.
        // A stopped room or endpoint has nothing to answer.
        let _ = self.net.post(|border, _| border.endpoint_mut().answer_unknown());
        if let Some(udp) = &self.udp {
            let _ = udp.with(|endpoint, _| endpoint.answer_unknown()).await;
        }
        tracing::debug!("the catalogs are loaded; unknown paths get 4.04");
    }

    async fn load(&mut self, update: &OfferedUpdate) -> anyhow::Result<Offer> {
        let digest: BlobDigest = update.digest.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let rows = self
            .shared
            .store
            .call(|c| crate::store::cache::manifests(c, None))
            .await?
            .into_iter()
            .find(|r| r.digest == update.digest)
            .ok_or_else(|| anyhow::anyhow!("no accepted manifest sha256:{}", update.digest))?;
        let reference = format!("serve:{}", update.digest);
        self.cache.pin(&reference, &digest).await?;
        let envelope = Bytes::from(self.cache.read_small(&digest, 64 * 1024).await?);
        let mut payloads = Vec::new();
        for (_, hex, _) in &rows.payloads {
            let d: BlobDigest = hex.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            self.cache.pin(&reference, &d).await?;
            payloads.push((d, Bytes::from(self.cache.read_small(&d, crate::repo::plan::MAX_PAYLOAD_SIZE).await?)));
        }
        // Checked again by the policy in force: only what it accepts is served.
        let manifest =
            self.policy.evaluate(&Envelope::parse(&envelope)?, std::time::SystemTime::now())?.manifest().clone();
        let servable = Servable::prepare(&rows.path, envelope, &manifest, &payloads)?;
        let offer = servable.offer.clone();
        if let Some(udp) = &self.udp {
            let (kernel, servable) = (self.kernel.clone(), servable.clone());
            if udp.with(move |endpoint, _| kernel.add(endpoint.router_mut(), servable)).await.is_err() {
                tracing::warn!("cannot serve {} on [coap] listen: the endpoint has stopped", update.id);
            }
        }
        // Not waited for: with the radio down, kernel devices are still served and the LoWPAN
        // catalog fills once it is up.
        let lowpan = self.lowpan.clone();
        if self.net.post(move |border, _| drop(lowpan.add(border.router_mut(), servable))).is_err() {
            tracing::warn!("cannot serve {} on the LoWPAN: its room has stopped", update.id);
        }
        Ok(offer)
    }

    /// The device's address on the LoWPAN: the one it announced in the DODAG, else the one it
    /// registered with ferry (RFC 6775), else the prefix and the IID of its EUI-64.
    fn peer_of(&self, device: Eui64) -> Option<Peer> {
        if let Some(peer) = self.kernel_side.peer_of(device) {
            return Some(peer);
        }
        let routed = self.topology.as_ref().and_then(|t| t.node(device)).map(|n| n.address);
        let registered = || {
            self.topology
                .as_ref()
                .and_then(|t| t.registration(device))
                .map(|r| r.address)
                .filter(|a| !crate::net::ipv6::is_link_local(a))
        };
        let address = routed.or_else(registered).unwrap_or_else(|| {
            crate::net::ipv6::with_iid(self.prefix, crate::net::ipv6::iid_from_mac(crate::net::MacAddr::Ext(device.0)))
        });
        Some(SocketAddrV6::new(address, COAP_PORT, 0, 0))
    }

    async fn on_event(&mut self, event: Event<Peer>) {
        let (id, outcome) = match event {
            Event::Response { id, response, .. } => (id, Ok(response)),
            Event::Failed { id, error, .. } => (id, Err(error)),
            Event::Deferred { .. } => return,
        };
        let purpose = self.in_flight.remove(&id);
        self.on_outcome(purpose, outcome).await;
    }

    /// An answer (or failure) from a kernel device over `[coap] listen`.
    async fn on_kernel_event(&mut self, event: Event<UdpPeer>) {
        let (id, outcome) = match event {
            Event::Response { id, response, .. } => (id, Ok(response)),
            Event::Failed { id, error, .. } => (id, Err(error)),
            Event::Deferred { .. } => return,
        };
        let purpose = self.kernel_in_flight.remove(&id);
        self.on_outcome(purpose, outcome).await;
    }

    /// Takes the kernel devices the configuration lists now and asks those due for their facts
    /// (on_mesh reads the LoWPAN's topology, which has none of them).
    async fn on_kernel_tick(&mut self) {
        let config = self.shared.config.borrow().clone();
        if self.kernel_side.refresh(&config, &self.shared.store).await {
            self.replan_wanted.notify_one();
        }
        let mut due = Vec::new();
        for k in self.kernel_side.devices().to_vec() {
            let eui = k.eui64;
            let stored = self.shared.store.call(move |c| Ok(crate::store::devices::load(c, eui))).await;
            let Ok(Ok(Some(device))) = stored else { continue };
            if !matches!(device.lifecycle, Lifecycle::Commissioned | Lifecycle::Active) {
                continue;
            }
            let stale = self.learned_at.get(&eui).is_none_or(|t| t.elapsed() > RELEARN_AFTER);
            let busy = self
                .engine
                .progress()
                .any(|p| !p.state.is_terminal() && self.engine.record(p.id).is_some_and(|r| r.plan.device == eui));
            if stale && !busy && !self.learning.contains_key(&eui) {
                due.push((eui, k.peer));
            }
        }
        for (eui, peer) in due {
            self.ask_facts(eui, peer).await;
        }
    }

    async fn on_outcome(&mut self, purpose: Option<Purpose>, outcome: Result<coap::Response, coap::RequestError>) {
        match purpose {
            Some(Purpose::Engine { session, tag }) => {
                self.on_served().await;
                self.engine.handle_response(Instant::now(), session, tag, outcome);
                self.drain().await;
            }
            Some(Purpose::Fact { device, index }) => {
                let learning = self.learning.entry(device).or_default();
                learning.answers[index] = Some(outcome.map_err(|_| ()));
                if learning.answers.iter().all(Option::is_some) {
                    let learning = self.learning.remove(&device).unwrap_or_default();
                    self.learned(device, learning).await;
                }
            }
            None => {}
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Cancel { id, reply } => {
                if let Some(r) = self.engine.record(id).filter(|r| !r.state.is_terminal()) {
                    self.cancelled.insert((r.plan.device, r.plan.manifest_digest.clone()));
                }
                let result = if self.engine.cancel(Instant::now(), id) {
                    self.drain().await;
                    Ok(self.engine.state(id).unwrap_or(State::Cancelled))
                } else {
                    match self.engine.state(id) {
                        Some(state) => Err(format!("session {id} already ended ({state})")),
                        None => {
                            Err(format!("session {id} is not running in this ferryd; `ferry history` lists sessions"))
                        }
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    async fn on_served(&mut self) {
        let served = self.lowpan.drain_served();
        let kernel = self.kernel.drain_served();
        if served.is_empty() && kernel.is_empty() {
            return;
        }
        // Each block at the time it was answered: the queue is drained every SERVED_PERIOD.
        let now = Instant::now();
        for s in served {
            if let Some(peer) = s.peer {
                self.engine.handle_served(s.at.min(now), peer, &s.path, s.offset, s.len, s.total);
            }
        }
        // Blocks served on [coap] listen count for the kernel device they went to.
        for s in kernel {
            if let Some(peer) = s.peer.and_then(|p| self.kernel_side.device_at(&p.addr)) {
                self.engine.handle_served(s.at.min(now), peer, &s.path, s.offset, s.len, s.total);
            }
        }
        self.drain().await;
    }

    /// Starts `request` to `peer`: over `[coap] listen` for a kernel device, else on the LoWPAN.
    async fn start_request(&mut self, peer: Peer, request: coap::Request, purpose: Purpose) -> Started {
        match self.kernel_side.route(&peer) {
            Route::Lowpan => {}
            Route::Kernel(udp_peer) => {
                return match self.kernel_side.start_request(udp_peer, request).await {
                    Ok(Ok(id)) => {
                        self.kernel_in_flight.insert(id, purpose);
                        Started::Yes
                    }
                    Ok(Err(e)) => Started::No(e.to_string()),
                    // [coap] listen stopped (shutdown); the LoWPAN side may still run.
                    Err(e) => Started::No(e.to_string()),
                };
            }
            Route::Unreachable => return Started::No("a kernel device needs an IPv6 address in [coap] listen".into()),
        }
        // Not before the radio's first handshake: the job would wait for it, and the room with
        // it (kernel devices too). Sent once it is done.
        if !self.lowpan_up() {
            self.parked.push((peer, request, purpose));
            return Started::Parked;
        }
        match self.net.with(move |border, now| start(border, now, peer, request)).await {
            Ok(Ok(id)) => {
                self.in_flight.insert(id, purpose);
                Started::Yes
            }
            Ok(Err(e)) => Started::No(e.to_string()),
            Err(_) => Started::Stopped,
        }
    }

    /// Sends the LoWPAN requests held while the radio had not come up, once it has.
    async fn send_parked(&mut self) {
        if self.parked.is_empty() || !self.lowpan_up() {
            return;
        }
        for (peer, request, purpose) in std::mem::take(&mut self.parked) {
            if let Started::No(e) = self.start_request(peer, request, purpose).await {
                tracing::warn!(%peer, "request not started: {e}");
            }
        }
    }

    /// Whether the LoWPAN has come up (the radio's first handshake is done): before, jobs that
    /// wait for an answer from the border router would wait for the radio.
    fn lowpan_up(&self) -> bool {
        self.net.topology().is_some()
    }

    /// Performs the engine's actions in order: each record committed before the request after it.
    async fn drain(&mut self) {
        let mut unpersisted: HashSet<SessionId> = HashSet::new();
        let mut ended = Vec::new();
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Persist(record) => {
                    if let Err(e) = persist(&self.shared.store, &record).await {
                        tracing::error!(session = record.id, "cannot persist the session; holding its requests: {e}");
                        unpersisted.insert(record.id);
                        continue;
                    }
                    if record.transition.is_some() && record.state.is_terminal() {
                        ended.push(record);
                    }
                }
                Action::Request { session, tag, peer, request } => {
                    if unpersisted.contains(&session) {
                        continue;
                    }
                    let what = format!("{:?} /{}", request.method, request.path_string());
                    match self.start_request(peer, request, Purpose::Engine { session, tag }).await {
                        Started::Yes => tracing::debug!(session, %peer, what, "request to the device"),
                        Started::Parked => tracing::debug!(session, %peer, what, "request waits for the radio"),
                        // The session's state deadline retries it.
                        Started::No(e) => tracing::warn!(session, %peer, what, "request not started: {e}"),
                        Started::Stopped => return,
                    }
                }
            }
        }
        for record in ended {
            self.ended(*record).await;
        }
        self.cancel_stale_requests().await;
        self.publish();
    }

    /// Stops the CoAP retransmissions of a trigger (or probe) its session no longer waits for
    /// ([`Engine::awaits`]): the device fetched, which proves the trigger arrived even if its
    /// answer was lost, or the session's deadline passed and it will probe afresh.
    async fn cancel_stale_requests(&mut self) {
        let stale: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter_map(|(id, purpose)| match purpose {
                Purpose::Engine { session, tag } => (!self.engine.awaits(*session, *tag)).then_some(*id),
                Purpose::Fact { .. } => None,
            })
            .collect();
        for id in stale {
            self.in_flight.remove(&id);
            if self.net.with(move |border, now| border.endpoint_mut().cancel(now, id)).await.is_err() {
                return;
            }
        }
    }

    /// A session ended: facts, audit, planner.
    async fn ended(&mut self, record: SessionRecord<Peer>) {
        let id = record.id;
        self.active.remove(&id);
        let update = self.updates.remove(&id);
        let device = record.plan.device;
        let reason = record.reason.as_ref().map(ToString::to_string).unwrap_or_default();
        tracing::info!(session = id, device = %device, state = %record.state, reason, "delivery session ended");
        let component = self
            .offered
            .iter()
            .find(|u| Some(&u.id) == update.as_ref() || u.digest == record.plan.manifest_digest)
            .map_or_else(|| RIOT_COMPONENT.to_owned(), |u| u.component.clone());
        let now = Timestamp::now();
        if record.state == State::Unconfirmed {
            self.unconfirmed.insert((device, record.plan.manifest_digest.clone()));
        }
        if record.state == State::Done {
            // The device is the truth: what it reported wins over what ferry sent.
            let installed = record.seq_reported.unwrap_or(record.plan.sequence);
            let learned = commission::learned(&self.shared.store, device, now, move |d| {
                d.components.insert(component, Known::new(installed, Source::Delivery, now));
            })
            .await;
            if let Err(e) = learned {
                tracing::warn!(device = %device, "cannot record the installed sequence number: {e}");
            }
        }
        self.metrics.ended(&device, record.state, now.as_millisecond());
        self.count_attempt(&record, now.as_millisecond()).await;
        let entry = AuditEntry {
            at_unix_ms: now.as_millisecond(),
            actor: "deliver".into(),
            action: format!("update {}", record.state),
            detail: format!(
                "{device}: session {id}, sequence {} signed by {} ({}), {} bytes served, {} trigger(s): {reason}",
                record.plan.sequence, record.plan.authority, record.plan.approval, record.bytes_served, record.attempts
            ),
        };
        if let Err(e) = self.shared.store.call(move |c| audit::record(c, &entry)).await {
            tracing::error!("cannot write the audit log: {e}");
        }
        // What the device runs and has free changed: ask it again.
        self.learned_at.remove(&device);
        self.replan_wanted.notify_one();
    }

    /// The retry policy between sessions for `device`: its group's, read from the configuration
    /// in force (a reload changes it between sessions; the policy inside a session is fixed when
    /// ferryd starts). Before the first plan, the group that lists the device.
    fn retry_policy(&self, device: Eui64) -> RetryPolicy {
        let config = self.shared.config.borrow();
        let group = match self.groups.get(&device) {
            Some(name) => Some(name.as_str()),
            None => config.group_listing(device).map(|g| g.name.as_str()),
        };
        config.retry_policy_for(group)
    }

    /// Counts an ended session against its device and update, and decides with the retry
    /// policy whether and when the next one may start.
    async fn count_attempt(&mut self, record: &SessionRecord<Peer>, now_ms: i64) {
        let key = (record.plan.device, record.plan.manifest_digest.clone());
        let before = self.attempts.get(&key).map_or(0, |a| a.attempts);
        let attempts = before + 1;
        let retry = self.retry_policy(record.plan.device);
        let next = retry.after(record.state, attempts);
        let next_unix_ms = match next {
            Next::NotCounted => return,
            Next::RetryAfter(wait) => {
                self.metrics.retries.inc();
                Some(now_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)))
            }
            Next::Finished | Next::GiveUp => None,
        };
        let mut reason = record.reason.as_ref().map(ToString::to_string);
        if next == Next::GiveUp {
            reason = Some(format!(
                "gave up after {attempts} attempt(s) (max_attempts {}): {}",
                retry.max_attempts,
                reason.unwrap_or_default()
            ));
        }
        let row = AttemptRow {
            device: device_hex(&record.plan.device),
            manifest_digest: record.plan.manifest_digest.clone(),
            sequence: record.plan.sequence,
            attempts,
            last_session: i64::try_from(record.id).unwrap_or(i64::MAX),
            last_result: record.state.as_str().to_owned(),
            last_reason: reason,
            last_unix_ms: now_ms,
            next_unix_ms,
            gave_up: next == Next::GiveUp,
        };
        match next {
            Next::RetryAfter(wait) => {
                tracing::info!(device = %record.plan.device, attempts, wait_s = wait.as_secs(), "delivery will be tried again")
            }
            Next::GiveUp => {
                tracing::warn!(device = %record.plan.device, attempts, "delivery attempts spent; ferry gives up on this update")
            }
            _ => {}
        }
        let stored = row.clone();
        if let Err(e) = self.shared.store.call(move |c| attempts::write(c, &stored)).await {
            tracing::error!("cannot record the delivery attempt: {e}");
        }
        self.attempts.insert(key, row);
        self.next_retry_ms = self.attempts.values().filter_map(|a| a.next_unix_ms).filter(|t| *t > now_ms).min();
        self.metrics.given_up.set(self.attempts.values().filter(|a| a.gave_up).count() as i64);
    }

    /// A retry came due: the planner starts it again.
    fn retry_due(&mut self) {
        let now_ms = super::now_ms();
        if self.next_retry_ms.is_some_and(|t| t <= now_ms) {
            self.next_retry_ms = self.attempts.values().filter_map(|a| a.next_unix_ms).filter(|t| *t > now_ms).min();
            self.replan_wanted.notify_one();
        }
    }

    /// Metrics, the progress view and the planner's running sessions.
    fn publish(&mut self) {
        self.metrics.export(&mut self.engine);
        // Air time counts for delivery while a session moves blocks.
        let air_us = self.net.air_time_us();
        if self.engine.progress().any(|p| p.state.uses_air()) {
            self.metrics.airtime.inc_by(air_us.saturating_sub(self.air_us_seen) as f64 / 1e6);
        }
        self.air_us_seen = air_us;
        let progress: Vec<Progress> = self.engine.progress().collect();
        let now = Timestamp::now();
        for p in progress.iter().filter(|p| !p.state.is_terminal()) {
            if let Some(active) = self.active.get_mut(&p.id) {
                // Resumed before the first plan named its update: named by digest until then.
                if let Some(digest) = active.update.strip_prefix("sha256:") {
                    if let Some(u) = self.offered.iter().find(|u| u.digest == digest) {
                        active.update = u.id.clone();
                    }
                }
                continue;
            }
            // Resumed from the store: the planner must still count it as running.
            if let Some(record) = self.engine.record(p.id) {
                let plan = &record.plan;
                let update = self
                    .offered
                    .iter()
                    .find(|u| u.digest == plan.manifest_digest)
                    .map_or_else(|| format!("sha256:{}", plan.manifest_digest), |u| u.id.clone());
                let expected = crate::deliver::expected_duration(&plan.timing, plan.manifest_size, plan.payload_size);
                let end = now.checked_add(jiff::SignedDuration::try_from(expected).unwrap_or_default()).unwrap_or(now);
                self.active.insert(
                    p.id,
                    ActiveSession {
                        device: plan.device,
                        update,
                        started_at: now,
                        expected_end: end,
                        air_time_share: plan.air_time_share,
                        gateway_share: plan.gateway_share,
                        window_closes: plan.window_closes,
                    },
                );
            }
        }
        self.active.retain(|id, _| progress.iter().any(|p| p.id == *id && !p.state.is_terminal()));
        // Sessions past streaming (rebooting, confirming) keep their place in the topology rules
        // but use no air.
        let sessions = self
            .active
            .iter()
            .map(|(id, s)| {
                // A kernel device's blocks never take ferry's air.
                let uses_air = progress.iter().any(|p| p.id == *id && p.state.uses_air())
                    && self.kernel_side.peer_of(s.device).is_none();
                if uses_air {
                    s.clone()
                } else {
                    ActiveSession { air_time_share: 0.0, gateway_share: 0.0, ..s.clone() }
                }
            })
            .collect();
        self.shared.plan.feed_sessions(sessions);
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = progress;
    }

    /// Reads the topology: new devices are discovered, links and positions learned, the mesh
    /// fed to the planner, and devices whose facts are stale asked again.
    async fn on_mesh(&mut self) {
        self.retry_due();
        let Some(topology) = self.net.topology() else { return };
        let now = Timestamp::now();
        // Duty cycles learned from polls, for children that poll from their EUI-64 (a short
        // address cannot be tied to a device yet).
        // A child that polls from its short address is tied to its EUI-64 by its registration.
        let duty_cycles = topology
            .neighbors
            .iter()
            .filter_map(|n| Some((crate::fleet::device::parse_eui64(&n.mac).ok()?.0, n.duty_cycle?)))
            .chain(topology.registered.iter().filter_map(|r| Some((r.eui64.0, planning_duty_cycle(r)?))))
            .collect();
        let answer_waits_ms = topology.nodes.iter().filter_map(|n| Some((n.eui64?.0, n.answer_wait_ms?))).collect();
        self.shared.plan.feed_mesh(MeshView { topology: topology.to_fleet(), duty_cycles, answer_waits_ms });
        let fleet = topology.to_fleet();
        let mut nodes: Vec<_> = topology.nodes.iter().filter_map(|n| Some((n.eui64?, n.clone()))).collect();
        // Nodes registered with ferry but not in the DODAG (sleepy children that never hear a
        // DIO) are discovered too, as ferry's own children.
        for r in topology.registered.iter().filter(|r| !crate::net::ipv6::is_link_local(&r.address)) {
            if nodes.iter().any(|(e, _)| *e == r.eui64) {
                continue;
            }
            let node = crate::border::TopologyNode {
                address: r.address,
                eui64: Some(r.eui64),
                parent: topology.root,
                rank: None,
                hops: Some(1),
                path_lifetime_s: r.lifetime_s,
                link: r.link,
                answer_wait_ms: None,
            };
            nodes.push((r.eui64, node));
        }
        self.topology = Some(topology);
        let mut changed = false;
        for (eui, node) in nodes {
            let source = if topology_has_route(self.topology.as_ref(), eui) { Source::Rpl } else { Source::Radio };
            let heard = commission::discovered(&self.shared.store, eui, now, source).await;
            let device = match heard {
                Ok(Heard::New(d)) | Ok(Heard::Rediscovered(d)) => {
                    tracing::info!(device = %eui, address = %node.address, "device heard on the LoWPAN");
                    changed = true;
                    d
                }
                Ok(Heard::Known(d)) => d,
                Err(e) => {
                    tracing::warn!(device = %eui, "cannot record the device: {e}");
                    continue;
                }
            };
            if !matches!(device.lifecycle, Lifecycle::Commissioned | Lifecycle::Active) {
                continue;
            }
            // Link and position from the root's view, when they changed.
            let link = node.link.map(|l| LinkQuality {
                rssi_dbm: i16::from(l.rssi_dbm),
                lqi: l.lqi,
                etx: l.delivery_ratio.filter(|r| *r > 0.0).map_or(1.0, |r| (1.0 / r).min(16.0)),
            });
            let position = node.hops.and_then(|hops| Some(Position { parent: fleet.parent(eui)?, hops }));
            let stale_link = link.is_some_and(|l| device.link.as_ref().is_none_or(|k| differs(&k.value, &l)));
            let stale_position = position.is_some_and(|p| device.position.as_ref().is_none_or(|k| k.value != p));
            if stale_link || stale_position {
                let saved = commission::learned(&self.shared.store, eui, now, move |d| {
                    if let Some(l) = link {
                        d.link = Some(Known::new(l, Source::Radio, now));
                    }
                    if let Some(p) = position {
                        d.position = Some(Known::new(p, Source::Rpl, now));
                    }
                })
                .await;
                if saved.is_ok() && (device.link.is_none() || device.position.is_none()) {
                    changed = true;
                }
            }
        }
        // Every commissioned device is asked what it runs, in the DODAG or not: a node that
        // registered no route is on the link, at the prefix and its EUI-64's IID.
        let fleet = match self.shared.store.call(|c| Ok(crate::store::devices::load_all(c))).await {
            Ok(Ok(fleet)) => fleet,
            Ok(Err(e)) => return tracing::warn!("cannot read the fleet: {e}"),
            Err(e) => return tracing::warn!("cannot read the fleet: {e}"),
        };
        for device in fleet {
            let eui = device.eui64;
            if !matches!(device.lifecycle, Lifecycle::Commissioned | Lifecycle::Active) {
                continue;
            }
            let soon = self.battery_held.contains(&eui) || self.unanswered.contains(&eui);
            let relearn = if soon { RELEARN_HELD } else { RELEARN_AFTER };
            let due = self.learned_at.get(&eui).is_none_or(|t| t.elapsed() > relearn);
            if !self.reachable(eui) {
                continue;
            }
            let busy = self
                .engine
                .progress()
                .any(|p| !p.state.is_terminal() && self.engine.record(p.id).is_some_and(|r| r.plan.device == eui));
            if due && !busy && !self.learning.contains_key(&eui) {
                if let Some(peer) = self.peer_of(eui) {
                    self.ask_facts(eui, peer).await;
                }
            }
        }
        if changed {
            self.replan_wanted.notify_one();
        }
    }

    /// Whether a request to the device can reach it: it is in the DODAG, or registered with
    /// ferry and, if it sleeps, polled often enough that ferry knows how long it sleeps (its
    /// requests then wait for its polls). Before the first topology, every device is tried.
    fn reachable(&self, device: Eui64) -> bool {
        let Some(t) = self.topology.as_ref() else { return true };
        if let Some(r) = t.registration(device) {
            // A gap of a second or more is a sleep, not a burst of polls for an answer.
            return !r.sleepy || r.poll_gap_ms.is_some_and(|g| g >= 1000) || r.duty_cycle.is_some();
        }
        t.node(device).is_some()
    }

    async fn ask_facts(&mut self, device: Eui64, peer: Peer) {
        tracing::debug!(device = %device, %peer, "asking the device for its facts");
        self.learned_at.insert(device, Instant::now());
        self.learning.insert(device, Learning::default());
        for (index, path) in FACT_PATHS.iter().enumerate() {
            let mut request = coap::Request::get(path);
            if *path == "ferry/status" {
                request.accept = Some(content_format::CBOR);
            }
            match self.start_request(peer, request, Purpose::Fact { device, index }).await {
                Started::Yes | Started::Parked => {}
                Started::No(e) => {
                    tracing::debug!(device = %device, path, "cannot ask the device: {e}");
                    if let Some(l) = self.learning.get_mut(&device) {
                        l.answers[index] = Some(Err(()));
                    }
                }
                Started::Stopped => return,
            }
        }
        // Nothing could be asked (no way to reach it): what is known is saved now, and the
        // device is asked again after RELEARN_AFTER.
        if self.learning.get(&device).is_some_and(|l| l.answers.iter().all(Option::is_some)) {
            let learning = self.learning.remove(&device).unwrap_or_default();
            self.learned(device, learning).await;
        }
    }

    /// Saves what a device answered.
    async fn learned(&mut self, device: Eui64, learning: Learning) {
        let ok = |i: usize| match &learning.answers[i] {
            Some(Ok(r)) if r.code == coap::Code::Content => Some(r.payload.clone()),
            _ => None,
        };
        let board = ok(0).and_then(|b| String::from_utf8(b.to_vec()).ok()).map(|b| b.trim().to_owned());
        let version = ok(1).and_then(|b| crate::deliver::session::parse_version(&b));
        let status = ok(2).and_then(|b| parse_ferry_status(&b));
        let Some(board) = board.filter(|b| !b.is_empty()) else {
            tracing::debug!(device = %device, "no /riot/board answer; its identity stays unknown");
            self.unanswered.insert(device);
            return;
        };
        self.unanswered.remove(&device);
        let (vendor, class) = identity_for_board(&board, &self.offered);
        // It answered without a route in the DODAG: ferry reached it on the link, one hop away
        // (a kernel device is on no LoWPAN link).
        let on_lowpan = self.kernel_side.peer_of(device).is_none();
        let on_link = match (self.peer_of(device), self.topology.as_ref().and_then(|t| t.node(device))) {
            (Some(peer), None) if on_lowpan => {
                let address = *peer.ip();
                let mac = crate::net::MacAddr::Ext(device.0);
                self.net.with(move |b, _| (b.heard_from(&address), b.link_stats(&mac))).await.ok()
            }
            _ => None,
        };
        let link = on_link.and_then(|(heard, tx)| {
            let (meta, _) = heard?;
            let etx = tx.and_then(|t| t.delivery_ratio()).filter(|r| *r > 0.0).map_or(1.0, |r| (1.0 / r).min(16.0));
            Some(LinkQuality { rssi_dbm: i16::from(meta.rssi), lqi: meta.lqi, etx })
        });
        let installed = status.as_ref().and_then(|s| s.installed).or(version);
        let now = Timestamp::now();
        tracing::info!(device = %device, board, installed, "device facts learned");
        let result = commission::learned(&self.shared.store, device, now, move |d| {
            let report = |v| Known::new(v, Source::DeviceReport, now);
            d.board = Some(report(board));
            d.vendor_id = Some(report(vendor));
            d.class_id = Some(report(class));
            if let Some(l) = link {
                d.link = Some(Known::new(l, Source::Radio, now));
                d.position = Some(Known::new(Position { parent: Parent::BorderRouter, hops: 1 }, Source::Radio, now));
            }
            if let Some(seq) = installed {
                d.components.insert(RIOT_COMPONENT.to_owned(), Known::new(seq, Source::DeviceReport, now));
            }
            if let Some(s) = status {
                if let Some(b) = s.battery {
                    d.battery_percent = Some(Known::new(b, Source::DeviceReport, now));
                }
                if let Some(f) = s.free_storage {
                    d.free_storage_bytes = Some(Known::new(f, Source::DeviceReport, now));
                }
            }
        })
        .await;
        match result {
            Ok(_) => self.replan_wanted.notify_one(),
            Err(e) => tracing::warn!(device = %device, "cannot record the device's facts: {e}"),
        }
    }
}

/// Fits below this confidence are not trusted for the plan (wakes for answers and transfers
/// between a device's own confuse the fit).
const MIN_DUTY_CYCLE_CONFIDENCE: f64 = 0.3;

/// The duty cycle the planner sees for a registered sleepy child: its wake period is the
/// longer of the learned one (when trusted) and the longest sleep heard, so that sessions wait
/// long enough for it.
fn planning_duty_cycle(r: &crate::border::RegisteredNode) -> Option<crate::fleet::DutyCycle> {
    let learned = r.duty_cycle.filter(|d| d.confidence >= MIN_DUTY_CYCLE_CONFIDENCE);
    let gap_us = r.poll_gap_ms.filter(|g| *g >= 1000).map(|g| g as f64 * 1e3);
    match (learned, gap_us) {
        (Some(d), Some(gap)) => Some(crate::fleet::DutyCycle { period_us: d.period_us.max(gap), ..d }),
        (Some(d), None) => Some(d),
        (None, Some(gap)) => Some(crate::fleet::DutyCycle {
            period_us: gap,
            anchor_us: 0.0,
            awake_us: 0,
            confidence: 0.0,
            residual_rms_us: 0.0,
            wakes_used: 0,
        }),
        (None, None) => None,
    }
}

fn topology_has_route(topology: Option<&NetTopology>, device: Eui64) -> bool {
    topology.is_some_and(|t| t.node(device).is_some())
}

fn differs(a: &LinkQuality, b: &LinkQuality) -> bool {
    a.rssi_dbm.abs_diff(b.rssi_dbm) > 3 || a.lqi.abs_diff(b.lqi) > 10 || (a.etx - b.etx).abs() > 0.2
}

/// Which policy or approval lets `update` run, for the audit trail.
fn approval_text(shared: &Shared, update: &OfferedUpdate) -> String {
    let config = shared.config.borrow().clone();
    let mode = config.authorities.iter().find(|a| a.name == update.authority).map(|a| a.approval);
    match mode {
        Some(crate::schedule::plan::ApprovalMode::Automatic) => format!("authority {} (automatic)", update.authority),
        _ => format!("approved ({})", update.id),
    }
}

/// Vendor and class IDs (UUID text) of a RIOT board: the vendor of an offered update whose
/// class is this board under it (RIOT's SUIT_CLASS is the board name), else riot-os.org.
fn identity_for_board(board: &str, offered: &[OfferedUpdate]) -> (String, String) {
    for u in offered.iter().filter(|u| u.verified) {
        let vendor = policy::vendor_id(&u.vendor_id);
        if policy::class_id(&vendor, board).to_string() == u.class_id {
            return (u.vendor_id.clone(), u.class_id.clone());
        }
    }
    let vendor = policy::vendor_id("riot-os.org");
    let class = policy::class_id(&vendor, board);
    (vendor.to_string(), class.to_string())
}

/// What a ferry-aware device's `/ferry/status` says.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct FerryStatus {
    battery: Option<u8>,
    free_storage: Option<u64>,
    installed: Option<u64>,
}

/// `{"battery": %, "free_storage": bytes, "installed": [seq, …]}` (the running image first);
/// unknown keys are skipped, a malformed map says nothing.
fn parse_ferry_status(bytes: &[u8]) -> Option<FerryStatus> {
    let mut d = minicbor::Decoder::new(bytes);
    let len = d.map().ok()??;
    let mut s = FerryStatus::default();
    for _ in 0..len.min(64) {
        match d.str().ok()? {
            "battery" => s.battery = Some(d.u8().ok()?),
            "free_storage" => s.free_storage = Some(d.u64().ok()?),
            "installed" => {
                let n = d.array().ok()??;
                if n > 16 {
                    return None;
                }
                for i in 0..n {
                    let seq = d.u64().ok()?;
                    if i == 0 {
                        s.installed = Some(seq);
                    }
                }
            }
            _ => d.skip().ok()?,
        }
    }
    Some(s)
}

/// Device and manifest digest of every stored session that ended unconfirmed: a restarted
/// ferryd does not deliver them again either.
async fn delivered_unconfirmed(store: &crate::store::Store) -> HashSet<(Eui64, String)> {
    let rows = match store.call(|c| crate::store::sessions::list(c, None)).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("cannot read the stored sessions: {e}");
            return HashSet::new();
        }
    };
    rows.into_iter()
        .filter(|r| State::parse(&r.state) == Some(State::Unconfirmed))
        .filter_map(|r| Some((crate::fleet::device::parse_eui64(&r.device).ok()?, r.manifest_digest)))
        .collect()
}

/// Whether [`DeliverRoom::start_request`] started the request.
enum Started {
    Yes,
    /// Held until the radio's first handshake ([`DeliverRoom::send_parked`]).
    Parked,
    No(String),
    /// The border router's task is gone: the room stops.
    Stopped,
}

/// The next answer from `[coap] listen`; never, without it.
async fn next_kernel_event(events: &mut Option<mpsc::Receiver<Event<UdpPeer>>>) -> Option<Event<UdpPeer>> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Starts a request to a device: a GET block-wise (a device answers in its block size, and
/// a `/ferry/status` may be longer than one block), anything else as it is.
fn start(
    border: &mut crate::border::BorderRouter,
    now: std::time::Instant,
    peer: Peer,
    request: coap::Request,
) -> Result<RequestId, coap::StartError> {
    if request.method == coap::Method::Get {
        let opts = coap::FetchOptions { szx: 6, max_size: READ_BACK_MAX };
        border.start_fetch(now, peer, request, opts)
    } else {
        border.start_request(now, peer, request)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Sessions for `ferry status`, live first.
pub(super) fn session_lines(progress: &[Progress]) -> Vec<crate::control::api::SessionLine> {
    let mut lines: Vec<_> = progress
        .iter()
        .map(|p| crate::control::api::SessionLine {
            id: p.id,
            state: p.state.as_str().to_owned(),
            bytes_served: p.bytes_served,
            fetched: p.fetched,
            total: p.total,
            attempts: p.attempts,
        })
        .collect();
    lines.sort_by_key(|l| (State::parse(&l.state).is_some_and(State::is_terminal), l.id));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferry_status_of_a_ferry_aware_riot_node() {
        let mut buf = Vec::new();
        let mut e = minicbor::Encoder::new(&mut buf);
        e.map(3)
            .and_then(|e| {
                e.str("battery")?.u8(80)?.str("free_storage")?.u32(4096)?.str("installed")?.array(2)?.u64(9)?.u64(7)
            })
            .ok();
        assert_eq!(
            parse_ferry_status(&buf),
            Some(FerryStatus { battery: Some(80), free_storage: Some(4096), installed: Some(9) })
        );
        assert_eq!(parse_ferry_status(&buf[..buf.len() - 1]), None);
    }

    #[test]
    fn a_board_takes_the_vendor_of_the_update_made_for_it() {
        let vendor = policy::vendor_id("example.com");
        let update = OfferedUpdate {
            id: "r/m@1".into(),
            digest: "00".repeat(32),
            repository: "r".into(),
            path: "m".into(),
            sequence: 1,
            component: "00".into(),
            vendor_id: vendor.to_string(),
            class_id: policy::class_id(&vendor, "samr21-xpro").to_string(),
            authority: "a".into(),
            image_bytes: 1,
            accepted_at: Timestamp::UNIX_EPOCH,
            verified: true,
        };
        assert_eq!(identity_for_board("samr21-xpro", std::slice::from_ref(&update)).0, vendor.to_string());
        let riot = policy::vendor_id("riot-os.org");
        assert_eq!(
            identity_for_board("nrf52840dk", &[update]),
            (riot.to_string(), policy::class_id(&riot, "nrf52840dk").to_string())
        );
    }
}
