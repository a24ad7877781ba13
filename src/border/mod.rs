//! The border router as one sans-IO machine: the LoWPAN [`Interface`] (MAC, 6LoWPAN, IPv6, RPL
//! root) with the CoAP [`Endpoint`] on UDP port 5683 on top, so the daemon, the virtual-time
//! driver (`sim::host`) and tests wire the same thing the same way.
//!
//! It owns what sits between the two machines and the radio: datagrams for port 5683 go to the
//! endpoint and its answers back through the interface; one radio transmission at a time (the
//! RCP holds one in flight) with per-neighbour delivery counts from the TX results; the
//! topology read model ([`NetTopology`]) from the RPL root's table and the neighbours heard.
//!
//! Call order (every call takes `now`, nothing reads a clock):
//! 1. `handle_frame(now, psdu, meta)` for every received PSDU;
//! 2. drain `poll_radio(now)`: send each [`RadioCommand::Transmit`] and report its outcome with
//!    `handle_tx_done(now, result)` (no further transmit is handed out before that); apply
//!    source-match changes to the RCP;
//! 3. drain `poll_event()` (client responses, deferred requests);
//! 4. call `handle_timeout(now)` at `poll_timeout()` (early calls are harmless).
//!
//! CoAP calls through [`BorderRouter::endpoint_mut`] are flushed to the interface by the next
//! `poll_radio(now)`.

pub mod topology;

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use crate::coap::{self, Endpoint, Event, FetchOptions, Request, RequestId, Router, StartError};
use crate::config::NetworkConfig;
use crate::fleet::duty_cycle::{self, DutyCycle};
use crate::net::iface::RxError;
use crate::net::ipv6;
use crate::net::mac::{FrameKind, MacFrame, CMD_DATA_REQUEST};
use crate::net::rpl_root::RplRootConfig;
use crate::net::{Interface, InterfaceConfig, MacAddr, RxMeta, SourceMatch, Transmit};
use crate::radio::{RxFrame, SrcAddr, TxAck, TxError};

pub use topology::{NeighborInfo, NeighborLink, NetTopology, RegisteredNode, TopologyNode};

/// The CoAP port on the LoWPAN side.
pub const COAP_PORT: u16 = 5683;

/// A CoAP peer on the LoWPAN: its IPv6 address and UDP port.
pub type Peer = SocketAddrV6;

/// Everything the border router is built from.
#[derive(Debug, Clone)]
pub struct BorderConfig {
    pub iface: InterfaceConfig,
    /// `None` leaves the RPL root off (no DIOs, no source routes).
    pub rpl: Option<RplRootConfig>,
    pub coap: coap::Config,
}

impl BorderConfig {
    /// From `[network]` and the RCP's extended address (canonical EUI-64 order): the configured
    /// PAN, short address and prefix, RPL root on with our prefix address as DODAG ID, children
    /// that poll learnt as sleepy.
    pub fn new(network: &NetworkConfig, ext_addr: [u8; 8]) -> BorderConfig {
        let prefix = network.prefix.network();
        let mut iface = InterfaceConfig::new(network.pan_id.0, ext_addr, Some(prefix));
        // 0xfffe means "no short address" (IEEE 802.15.4 macShortAddress).
        iface.mac.short_addr = (network.short_address < 0xfffe).then_some(network.short_address);
        // Children that poll are asleep between polls; hold their frames without being told.
        iface.mac.learn_sleepy = true;
        let global = ipv6::with_iid(prefix, ipv6::iid_from_mac(MacAddr::Ext(ext_addr)));
        BorderConfig { iface, rpl: Some(RplRootConfig::new(global, prefix)), coap: coap::Config::default() }
    }
}

/// What the radio shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum RadioCommand {
    /// Send this PSDU (FCS included) with CSMA-CA; report the outcome with
    /// [`BorderRouter::handle_tx_done`].
    Transmit { psdu: Vec<u8>, ack_request: bool },
    /// Put a sleepy child in the RCP's source-match table (`radio::Op::SrcMatchInsert`).
    SrcMatchInsert(SrcAddr),
    /// Take it out again (`radio::Op::SrcMatchRemove`).
    SrcMatchRemove(SrcAddr),
}

/// Counters of the border router itself (the interface and endpoint keep their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BorderStats {
    pub frames_rx: u64,
    pub frames_rx_errors: u64,
    pub frames_tx: u64,
    /// Unicast frames not ACKed after all retries, CSMA failures and RCP errors.
    pub tx_failures: u64,
    /// UDP datagrams for ports nobody listens on.
    pub udp_unclaimed: u64,
    /// CoAP messages the interface could not send (no route, queue full, too long).
    pub coap_send_errors: u64,
}

/// Transmissions to one neighbour and how many were ACKed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub tx_acked: u64,
    pub tx_failed: u64,
}

impl LinkStats {
    /// Share of unicast frames ACKed, `None` before the first.
    pub fn delivery_ratio(&self) -> Option<f64> {
        let all = self.tx_acked + self.tx_failed;
        (all > 0).then(|| self.tx_acked as f64 / all as f64)
    }
}

/// Bounds the per-neighbour TX table like the MAC's neighbour table.
const MAX_LINKS: usize = 512;
/// Poll timestamps kept per sleepy child: enough wakes for the duty-cycle fit (it needs 10
/// for a good prediction) with room for missed ones.
const MAX_POLLS_KEPT: usize = 64;
/// A poll this soon after the previous one belongs to the same wake (fast polling: 50 ms).
const SAME_WAKE_US: u64 = 250_000;
/// Longest sleep frames are held through (a child that sleeps longer loses them).
const MAX_HOLD: Duration = Duration::from_secs(3600);
/// Margin on a sleepy child's period for its poll's jitter and our own delays.
const HOLD_SLACK: Duration = Duration::from_secs(2);

/// The border router. See the module docs for the call order.
pub struct BorderRouter {
    iface: Interface,
    coap: Endpoint<Peer>,
    /// Destination and ACK request of each transmission the radio holds, oldest first.
    in_flight: VecDeque<(MacAddr, bool)>,
    /// How many the radio takes at once ([`set_tx_window`](Self::set_tx_window)).
    tx_window: usize,
    /// A frame for a router, kept back until the radio has nothing in flight.
    held: Option<Transmit>,
    links: BTreeMap<MacAddr, LinkStats>,
    /// The radio metadata of the last frame that completed a CoAP datagram, by its IPv6 source:
    /// a node that registered no route (no DAO) is still known by its own address this way.
    heard_from: BTreeMap<Ipv6Addr, (RxMeta, Instant)>,
    /// The radio's µs timestamps of each child's wakes (the first MAC Data Request of each),
    /// newest last, from which its duty cycle is learned.
    polls: BTreeMap<MacAddr, VecDeque<u64>>,
    /// The longest gap between two polls of each child, µs: how long it may sleep.
    poll_gaps: BTreeMap<MacAddr, u64>,
    /// The radio timestamp of each child's last poll, µs.
    last_poll: BTreeMap<MacAddr, u64>,
    /// Wake periods the delivery planner knows of devices ferry does not hear poll (behind
    /// a router), by address.
    expected_wakes: BTreeMap<Ipv6Addr, Duration>,
    stats: BorderStats,
}

/// RX metadata of a frame from the radio, for [`BorderRouter::handle_frame`].
pub fn rx_meta(frame: &RxFrame) -> RxMeta {
    RxMeta { rssi: frame.rssi, lqi: frame.lqi, timestamp_us: frame.timestamp_us }
}

/// The RCP's name for a MAC address.
pub fn src_addr(mac: MacAddr) -> SrcAddr {
    match mac {
        MacAddr::Short(s) => SrcAddr::Short(s),
        MacAddr::Ext(e) => SrcAddr::Extended(e),
    }
}

impl BorderRouter {
    pub fn new(cfg: BorderConfig, router: Router, now: Instant) -> BorderRouter {
        let mut iface = Interface::new(cfg.iface);
        if let Some(rpl) = cfg.rpl {
            iface.enable_rpl_root(now, rpl);
        }
        BorderRouter {
            iface,
            coap: Endpoint::new(cfg.coap, router),
            in_flight: VecDeque::new(),
            tx_window: 1,
            held: None,
            links: BTreeMap::new(),
            heard_from: BTreeMap::new(),
            polls: BTreeMap::new(),
            poll_gaps: BTreeMap::new(),
            last_poll: BTreeMap::new(),
            expected_wakes: BTreeMap::new(),
            stats: BorderStats::default(),
        }
    }

    /// Our address under the prefix (the DODAG ID), or the link-local one without a prefix.
    pub fn address(&self) -> Ipv6Addr {
        self.iface.global().unwrap_or_else(|| self.iface.link_local())
    }

    pub fn stats(&self) -> BorderStats {
        self.stats
    }

    /// RSSI/LQI of the last frame that brought a CoAP datagram from `addr` (for a node on the
    /// link, its own link; for one further away, the last hop's), and when.
    pub fn heard_from(&self, addr: &Ipv6Addr) -> Option<(RxMeta, Instant)> {
        self.heard_from.get(addr).copied()
    }

    /// The radio timestamps (µs) of the Data Requests heard from `child`, oldest first.
    pub fn polls(&self, child: &MacAddr) -> Vec<u64> {
        self.polls.get(child).map(|p| p.iter().copied().collect()).unwrap_or_default()
    }

    /// The duty cycle learned from a sleepy child's polls, once enough wakes were heard.
    pub fn duty_cycle(&self, child: &MacAddr) -> Option<DutyCycle> {
        duty_cycle::estimate(&self.polls(child), &duty_cycle::Params::default()).ok()
    }

    /// Every child heard polling, with its learned duty cycle where there is one.
    pub fn duty_cycles(&self) -> Vec<(MacAddr, DutyCycle)> {
        self.polls.keys().filter_map(|m| Some((*m, self.duty_cycle(m)?))).collect()
    }

    fn note_poll(&mut self, psdu: &[u8], meta: RxMeta) {
        let Ok((frame, _)) = MacFrame::parse(psdu) else { return };
        let (FrameKind::Command(CMD_DATA_REQUEST), Some(src)) = (frame.kind, frame.src) else { return };
        if !self.polls.contains_key(&src) && self.polls.len() >= MAX_LINKS {
            return;
        }
        let gap = self.last_poll.insert(src, meta.timestamp_us).map(|last| meta.timestamp_us.saturating_sub(last));
        let polls = self.polls.entry(src).or_default();
        // Polls in quick succession are one wake (the child polls for an answer it expects):
        // only a wake's first poll tells its duty cycle.
        if gap.is_none_or(|g| g > SAME_WAKE_US) {
            if polls.len() == MAX_POLLS_KEPT {
                polls.pop_front();
            }
            polls.push_back(meta.timestamp_us);
        }
        let Some(gap) = gap.filter(|g| *g > self.poll_gaps.get(&src).copied().unwrap_or(0)) else { return };
        self.poll_gaps.insert(src, gap);
        // Hold its frames for a whole sleep and a half (a poll may be late or lost), when that
        // is longer than the MAC's default.
        let hold = Duration::from_micros(gap.saturating_mul(3) / 2).min(MAX_HOLD) + HOLD_SLACK;
        if hold > self.iface.mac().config().indirect_timeout {
            self.iface.mac_mut().set_hold_time(src, Some(hold));
        }
    }

    /// The longest time a child was heard sleeping between two polls.
    pub fn poll_gap(&self, child: &MacAddr) -> Option<Duration> {
        self.poll_gaps.get(child).map(|us| Duration::from_micros(*us))
    }

    /// How long a sleepy node reached at `addr` may take to hear a frame: for our own sleepy
    /// children, their learned wake period or the longest gap between their polls; for any
    /// node, the wake period the planner expects of it ([`Self::expect_wake_period`]); the
    /// longest of these. `None` for nodes ferry knows no sleep of (always listening).
    pub fn wake_period(&self, addr: &Ipv6Addr) -> Option<Duration> {
        let child = self.iface.resolve(addr).filter(|mac| self.iface.mac().is_sleepy(mac));
        let learned =
            child.and_then(|mac| self.duty_cycle(&mac)).map(|d| Duration::from_secs_f64(d.period_us.max(0.0) / 1e6));
        let gap = child.and_then(|mac| self.poll_gap(&mac));
        [learned, gap, self.expected_wakes.get(addr).copied()].into_iter().flatten().reduce(Duration::max)
    }

    /// Tells the border router how long the node at `addr` may sleep between wakes, when ferry
    /// knows it other than from the node's polls (a sleepy leaf behind a router polls that
    /// router, not us): requests to it wait that long before their first retransmission.
    /// `None` forgets it.
    pub fn expect_wake_period(&mut self, addr: Ipv6Addr, period: Option<Duration>) {
        match period {
            Some(p) if self.expected_wakes.len() < MAX_LINKS || self.expected_wakes.contains_key(&addr) => {
                self.expected_wakes.insert(addr, p);
            }
            Some(_) => {}
            None => {
                self.expected_wakes.remove(&addr);
            }
        }
    }

    /// Requests to a sleepy node wait for its next poll: their first retransmission comes a
    /// wake period later, not after CoAP's 2 s (which would only queue copies behind it).
    fn pace_requests_to(&mut self, peer: Peer) {
        let timeout = self.wake_period(peer.ip()).map(|w| w.min(MAX_HOLD) + HOLD_SLACK);
        self.coap.set_peer_ack_timeout(peer, timeout);
    }

    /// TX outcomes towards one neighbour.
    pub fn link_stats(&self, mac: &MacAddr) -> Option<LinkStats> {
        self.links.get(mac).copied()
    }

    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    pub fn interface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    pub fn endpoint(&self) -> &Endpoint<Peer> {
        &self.coap
    }

    /// The CoAP endpoint; what it queues goes out with the next `poll_radio(now)`.
    pub fn endpoint_mut(&mut self) -> &mut Endpoint<Peer> {
        &mut self.coap
    }

    pub fn router_mut(&mut self) -> &mut Router {
        self.coap.router_mut()
    }

    /// Marks a child as sleepy (frames held until its Data Request) or awake.
    pub fn set_sleepy(&mut self, child: MacAddr, sleepy: bool) {
        self.iface.set_sleepy(child, sleepy);
    }

    /// Starts a CoAP request to a node.
    pub fn start_request(&mut self, now: Instant, peer: Peer, request: Request) -> Result<RequestId, StartError> {
        self.pace_requests_to(peer);
        self.coap.start_request(now, peer, request)
    }

    /// Starts a block-wise GET of a node's resource.
    pub fn start_fetch(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Request,
        opts: FetchOptions,
    ) -> Result<RequestId, StartError> {
        self.pace_requests_to(peer);
        self.coap.start_fetch(now, peer, request, opts)
    }

    /// Notifies the observers of `path`; returns how many.
    pub fn notify(&mut self, now: Instant, path: &str) -> usize {
        self.coap.notify(now, path)
    }

    /// The next CoAP event (responses to our requests, deferred requests).
    pub fn poll_event(&mut self) -> Option<Event<Peer>> {
        self.coap.poll_event()
    }

    /// Handles one received PSDU (FCS included). The error says why a frame was dropped; it is
    /// also counted.
    pub fn handle_frame(&mut self, now: Instant, psdu: &[u8], meta: RxMeta) -> Result<(), RxError> {
        self.stats.frames_rx += 1;
        self.note_poll(psdu, meta);
        let r = self.iface.handle_frame(now, psdu, meta);
        if r.is_err() {
            self.stats.frames_rx_errors += 1;
        }
        while let Some(d) = self.iface.poll_udp() {
            if d.dst.1 != COAP_PORT {
                self.stats.udp_unclaimed += 1;
                continue;
            }
            if self.heard_from.contains_key(&d.src.0) || self.heard_from.len() < MAX_LINKS {
                self.heard_from.insert(d.src.0, (meta, now));
            }
            self.coap.handle_datagram(now, SocketAddrV6::new(d.src.0, d.src.1, 0, 0), &d.payload);
        }
        self.flush_coap(now);
        r
    }

    /// Moves the endpoint's datagrams into the interface.
    fn flush_coap(&mut self, now: Instant) {
        while let Some(t) = self.coap.poll_transmit(now) {
            if let Err(e) = self.iface.send_udp(now, COAP_PORT, (*t.peer.ip(), t.peer.port()), &t.bytes) {
                tracing::debug!(peer = %t.peer, "CoAP message not sent: {e}");
                self.stats.coap_send_errors += 1;
            }
        }
    }

    /// The next thing for the radio: source-match changes first (so a held frame's child gets
    /// Frame Pending before it polls), then a frame if none is in flight.
    pub fn poll_radio(&mut self, now: Instant) -> Option<RadioCommand> {
        self.flush_coap(now);
        if let Some(sm) = self.iface.poll_source_match() {
            return Some(match sm {
                SourceMatch::Insert(m) => RadioCommand::SrcMatchInsert(src_addr(m)),
                SourceMatch::Remove(m) => RadioCommand::SrcMatchRemove(src_addr(m)),
            });
        }
        if self.in_flight.len() >= self.tx_window {
            return None;
        }
        let t = match self.held.take() {
            Some(t) => t,
            None => self.iface.poll_transmit(now)?,
        };
        // A router forwards what it receives on the same channel, and cannot hear us while it
        // does: a frame for one goes out only after the last one is done, never right behind it.
        if !self.in_flight.is_empty() && self.forwards_for_others(&t.dst) {
            self.held = Some(t);
            return None;
        }
        self.in_flight.push_back((t.dst, t.ack_request));
        self.stats.frames_tx += 1;
        Some(RadioCommand::Transmit { psdu: t.psdu, ack_request: t.ack_request })
    }

    /// Whether `mac` is the parent of some node in the DODAG.
    fn forwards_for_others(&self, mac: &MacAddr) -> bool {
        let Some(rpl) = self.iface.rpl() else { return false };
        let root = rpl.dodag_id();
        rpl.routes().any(|(_, route)| route.parent != root && self.iface.resolve(&route.parent).as_ref() == Some(mac))
    }

    /// Whether a transmission is waiting for its outcome.
    pub fn tx_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// How many transmissions the radio takes at once (the RCP's
    /// [`tx_window`](crate::radio::RcpInfo::tx_window)); 1 until the shell says otherwise.
    /// With 2, the next frame crosses the UART while the current one is on air.
    pub fn set_tx_window(&mut self, window: usize) {
        self.tx_window = window.clamp(1, 2);
    }

    /// The outcome of the oldest [`RadioCommand::Transmit`] in flight (the radio reports them
    /// in order); frees its place for the next one.
    pub fn handle_tx_done(&mut self, _now: Instant, result: &Result<TxAck, TxError>) {
        let Some(sent) = self.in_flight.pop_front() else { return };
        self.count_tx_outcome(sent, result);
    }

    /// The newest [`RadioCommand::Transmit`] could not be handed to the radio at all.
    pub fn handle_tx_refused(&mut self, _now: Instant, error: TxError) {
        let Some(sent) = self.in_flight.pop_back() else { return };
        self.count_tx_outcome(sent, &Err(error));
    }

    fn count_tx_outcome(&mut self, (dst, ack_request): (MacAddr, bool), result: &Result<TxAck, TxError>) {
        if result.is_err() {
            self.stats.tx_failures += 1;
        }
        if !ack_request {
            return;
        }
        if !self.links.contains_key(&dst) && self.links.len() >= MAX_LINKS {
            return;
        }
        let link = self.links.entry(dst).or_default();
        match result {
            Ok(_) => link.tx_acked += 1,
            Err(_) => link.tx_failed += 1,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.iface.poll_timeout(), self.coap.poll_timeout()].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.iface.handle_timeout(now);
        self.coap.handle_timeout(now);
        self.flush_coap(now);
    }

    /// The DODAG as the root knows it, and the neighbours heard.
    pub fn topology(&self, now: Instant) -> NetTopology {
        topology::build(self, now)
    }
}
