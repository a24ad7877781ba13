//! A sans-IO, discrete-event IEEE 802.15.4 medium (2.4 GHz O-QPSK) in virtual time.
//!
//! Each node is a radio with the MAC functions that run below a host round trip (clauses of
//! IEEE 802.15.4-2006): unslotted CSMA-CA (§7.5.1.4 CSMA-CA algorithm), immediate ACKs sent
//! aTurnaroundTime after the frame with Frame Pending for Data Requests from a source-match
//! table (§7.5.6.3 extracting pending data, §7.5.6.4 use of acknowledgments and
//! retransmissions: macAckWaitDuration, macMaxFrameRetries), interframe spacing (§7.5.1.3),
//! third-level address filtering (§7.5.6.2 reception and rejection) and CCA mode 1, energy
//! above threshold (§6.9.9). Numbers come from [`Timing`] (`shared/reference/radio.md`).
//!
//! The air: a frame occupies its channel for (PSDU + 6)·32 µs. A node hears a transmitter when a
//! directed [`Link`] exists from it; that link's RSSI feeds CCA and energy scans and its packet
//! reception ratio decides, once per frame, whether a frame that did not collide arrives. A
//! receiver that hears two overlapping transmissions receives neither, so hidden terminals
//! follow from which links exist.
//!
//! # Driving it
//!
//! Time is a `u64` of µs and only moves in [`Medium::advance`]. Calls that act on a node
//! ([`Medium::transmit`], [`Medium::receive`], ...) take effect at [`Medium::now`]. The loop:
//!
//! 1. set up nodes and links, start operations;
//! 2. `let t = medium.next_event_time()`; `medium.advance(t)` returns what each node's
//!    driver must see ([`Delivery`]), in time order;
//! 3. react to those (start the next transmission, ...) and repeat.
//!
//! Advancing to each event time in turn keeps reactions exact; advancing further in one step is
//! allowed, the reactions then happen late.
//!
//! ```
//! use ferry::sim::frame::{Address, Header};
//! use ferry::sim::medium::{Medium, NodeConfig, NodeEvent, TxRequest};
//! use ferry::sim::{Link, Timing};
//!
//! let mut m = Medium::new(42, Timing::STANDARD);
//! let cfg = |short| NodeConfig { pan_id: 0xface, short_addr: short, ..NodeConfig::default() };
//! let (a, b) = (m.add_node(cfg(1)).unwrap(), m.add_node(cfg(2)).unwrap());
//! m.set_link_both(a, b, Some(Link::perfect())).unwrap();
//! m.receive(b, 15).unwrap();
//! let frame = Header::data(1, 0xface, Address::Short(2), Address::Short(1), true).emit_frame(b"hi").unwrap();
//! m.transmit(a, TxRequest::new(frame, 15)).unwrap();
//! let mut acked = false;
//! while let Some(t) = m.next_event_time() {
//!     for d in m.advance(t) {
//!         acked |= d.node == a && matches!(d.event, NodeEvent::TxDone(Ok(Some(_))));
//!     }
//! }
//! assert!(acked);
//! ```
//!
//! Queues are bounded by the work in flight: each node has at most one transmission, one
//! scan, one pending ACK and [`MAX_TIMERS_PER_NODE`] timers, so one `advance` returns at most a
//! few deliveries per node and frame; the capture log is capped at [`AIR_LOG_CAPACITY`].
//!
//! Randomness (backoffs, losses) comes from one seeded [`Rng`]: a seed is a run.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use ferry_rcp_core::radio::{SrcMatchTable, TxError};

use super::frame::{is_data_request, Address, FrameType, Header, Psdu, BROADCAST};
use super::link::{Link, PathLoss};
use super::rng::Rng;
use super::timing::Timing;

/// Upper bound on nodes; keeps the link matrix and event queue bounded.
pub const MAX_NODES: usize = 512;
/// Frames kept for [`Medium::take_air_frames`] between drains; older ones are dropped first.
pub const AIR_LOG_CAPACITY: usize = 16_384;
/// Source-match table sizes per node (ot-rcp builds on nRF52840 use similar sizes).
pub const SRC_MATCH_SHORT: usize = 32;
pub const SRC_MATCH_EXTENDED: usize = 32;
/// Driver timers a node may have pending at once ([`Medium::schedule_timer`]).
pub const MAX_TIMERS_PER_NODE: usize = 64;
/// The energy a radio measures on a quiet channel.
pub const NOISE_FLOOR_DBM: i8 = -100;
/// 2.4 GHz O-QPSK channels.
pub const CHANNELS: std::ops::RangeInclusive<u8> = 11..=26;

/// A node's index in its medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// Why a medium call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediumError {
    NoSuchNode,
    TooManyNodes,
    /// A transmission or scan is already running on the node.
    Busy,
    InvalidChannel,
    /// [`MAX_TIMERS_PER_NODE`] timers are already pending.
    TooManyTimers,
}

impl fmt::Display for MediumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MediumError::NoSuchNode => "no such node",
            MediumError::TooManyNodes => "too many nodes",
            MediumError::Busy => "node busy with a transmission or scan",
            MediumError::InvalidChannel => "channel outside 11..=26",
            MediumError::TooManyTimers => "too many pending timers on the node",
        })
    }
}

impl std::error::Error for MediumError {}

/// The MAC configuration of a node's radio (the MAC PIB attributes a radio filters with).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub pan_id: u16,
    pub short_addr: u16,
    /// Spinel `E` order (see [`Address`]).
    pub ext_addr: [u8; 8],
    /// Deliver every frame, without filtering or ACKs.
    pub promiscuous: bool,
    /// Accept frames without a destination address from our PAN (§7.5.6.2 rule for coordinators).
    pub pan_coordinator: bool,
    /// Send ACKs to frames that request them (every radio does; off only to model a dead peer).
    pub auto_ack: bool,
    pub cca_threshold_dbm: i8,
    pub rx_sensitivity_dbm: i8,
    pub src_match: SrcMatchTable<SRC_MATCH_SHORT, SRC_MATCH_EXTENDED>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            pan_id: BROADCAST,
            short_addr: 0xFFFE,
            ext_addr: [0; 8],
            promiscuous: false,
            pan_coordinator: false,
            auto_ack: true,
            cca_threshold_dbm: -75,
            rx_sensitivity_dbm: NOISE_FLOOR_DBM,
            src_match: SrcMatchTable::new(),
        }
    }
}

/// A transmission to make: what a radio driver hands its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRequest {
    /// The frame; its FCS bytes are overwritten on transmit. ACK Request comes from its header.
    pub psdu: Psdu,
    pub channel: u8,
    pub csma_ca: bool,
    /// macMaxCSMABackoffs.
    pub max_csma_backoffs: u8,
    /// macMaxFrameRetries.
    pub max_frame_retries: u8,
    /// Timed TX: with CSMA-CA, the backoff starts then; without, the frame goes on air then.
    pub start_at_us: Option<u64>,
    pub rx_channel_after: u8,
}

impl TxRequest {
    /// CSMA-CA with macMaxCSMABackoffs 4 and macMaxFrameRetries 3.
    pub fn new(psdu: Psdu, channel: u8) -> Self {
        TxRequest {
            psdu,
            channel,
            csma_ca: true,
            max_csma_backoffs: 4,
            max_frame_retries: 3,
            start_at_us: None,
            rx_channel_after: channel,
        }
    }
}

/// A frame as a receiver got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxInfo {
    pub psdu: Psdu,
    pub channel: u8,
    pub rssi_dbm: i8,
    pub lqi: u8,
    /// Virtual µs at the end of the SFD.
    pub timestamp_us: u64,
    /// This node's auto-ACK to the frame had Frame Pending set.
    pub acked_with_frame_pending: bool,
}

/// What a node's driver learns from the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// A frame passed the address filter (any intact frame when promiscuous).
    Received(RxInfo),
    /// The transmission ended: the ACK if one was requested, or why it failed.
    TxDone(Result<Option<RxInfo>, TxError>),
    EnergyScanDone {
        channel: u8,
        max_rssi_dbm: i8,
    },
    /// A timer the node's driver set with [`Medium::schedule_timer`] fired.
    Timer {
        token: u64,
    },
}

/// One node event at its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub node: NodeId,
    pub time_us: u64,
    pub event: NodeEvent,
}

/// A frame as it went on air, for capture files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AirFrame {
    pub start_us: u64,
    pub end_us: u64,
    pub channel: u8,
    pub sender: NodeId,
    pub psdu: Psdu,
}

/// Per-node counters. Frames and bytes count PSDUs; ACKs sent are counted apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Data/command/beacon frames put on air, retransmissions included.
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub acks_sent: u64,
    /// Intact frames decoded (ACKs included), before address filtering.
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Time this node's transmitter was on air (frames and ACKs).
    pub air_time_us: u64,
    /// CCAs that found the channel busy.
    pub cca_failures: u64,
    pub channel_access_failures: u64,
    /// Receptions lost because another transmission overlapped.
    pub collisions: u64,
    /// Receptions lost to the link's packet reception ratio.
    pub rx_lost: u64,
    /// Retransmissions after a missing ACK.
    pub retries: u64,
    pub no_acks: u64,
    /// Transmissions that ended successfully.
    pub tx_ok: u64,
    /// Radio on (listening, receiving, in CSMA, transmitting); off only while asleep.
    pub radio_on_us: u64,
}

#[derive(Debug, Clone, Copy)]
struct RxLock {
    tx: u64,
    corrupted: bool,
}

#[derive(Debug, Clone, Copy)]
struct Scan {
    channel: u8,
    max_rssi: i8,
    back_to: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the start time or the IFS before the first backoff.
    Wait,
    Backoff,
    Cca {
        start: u64,
    },
    /// RX→TX switch; the frame goes on air when it ends.
    Turnaround,
    OnAir,
    AckWait {
        deadline: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct TxProc {
    req: TxRequest,
    seq: Option<u8>,
    ack_request: bool,
    nb: u8,
    be: u8,
    retries: u8,
    phase: Phase,
}

#[derive(Debug)]
struct Node {
    cfg: NodeConfig,
    channel: u8,
    /// Receive when not busy (`receive`); false after `sleep`.
    rx_on_when_idle: bool,
    /// Id of our own transmission on air.
    transmitting: Option<u64>,
    rx: Option<RxLock>,
    /// When the last transmission this node could sense on its channel ended (for CCA).
    energy_until: u64,
    tx: Option<TxProc>,
    tx_gen: u64,
    ack_out: Option<Psdu>,
    ack_gen: u64,
    scan: Option<Scan>,
    scan_gen: u64,
    /// No new CSMA before this (IFS after our last transmission).
    ifs_until: u64,
    stats: NodeStats,
    on_mark: u64,
    timers: usize,
}

impl Node {
    fn radio_on(&self) -> bool {
        self.rx_on_when_idle
            || self.tx.is_some()
            || self.transmitting.is_some()
            || self.ack_out.is_some()
            || self.scan.is_some()
    }

    /// Can synchronise to a new frame on `channel` now.
    fn listening_on(&self, channel: u8) -> bool {
        self.radio_on()
            && self.channel == channel
            && self.transmitting.is_none()
            && self.ack_out.is_none()
            && self.scan.is_none()
            && !matches!(self.tx, Some(TxProc { phase: Phase::Turnaround, .. }))
    }
}

#[derive(Debug, Clone, Copy)]
struct Transmission {
    id: u64,
    sender: NodeId,
    channel: u8,
    psdu: Psdu,
    start: u64,
    is_ack: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    TxEnd(u64),
    AckSend(NodeId, u64),
    Mac(NodeId, u64),
    ScanEnd(NodeId, u64),
    Timer(NodeId, u64),
}

impl Ev {
    /// At equal times frames leave the air first, so back-to-back frames do not overlap.
    fn priority(&self) -> u8 {
        match self {
            Ev::TxEnd(_) => 0,
            Ev::AckSend(..) => 1,
            Ev::Mac(..) => 2,
            Ev::ScanEnd(..) => 3,
            Ev::Timer(..) => 4,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Scheduled {
    time: u64,
    seq: u64,
    ev: Ev,
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.time, other.ev.priority(), other.seq).cmp(&(self.time, self.ev.priority(), self.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The shared air and every node's radio MAC. See the module docs for the driving loop.
#[derive(Debug)]
pub struct Medium {
    timing: Timing,
    now: u64,
    rng: Rng,
    nodes: Vec<Node>,
    /// `links[from][to]`.
    links: Vec<Vec<Option<Link>>>,
    on_air: Vec<Transmission>,
    next_tx_id: u64,
    queue: BinaryHeap<Scheduled>,
    next_seq: u64,
    out: Vec<Delivery>,
    capture: bool,
    air_log: VecDeque<AirFrame>,
    air_log_dropped: u64,
}

impl Medium {
    pub fn new(seed: u64, timing: Timing) -> Self {
        Medium {
            timing,
            now: 0,
            rng: Rng::new(seed),
            nodes: Vec::new(),
            links: Vec::new(),
            on_air: Vec::new(),
            next_tx_id: 0,
            queue: BinaryHeap::new(),
            next_seq: 0,
            out: Vec::new(),
            capture: false,
            air_log: VecDeque::new(),
            air_log_dropped: 0,
        }
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Virtual time in µs.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Adds a sleeping node on channel 11 with no links.
    pub fn add_node(&mut self, cfg: NodeConfig) -> Result<NodeId, MediumError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(MediumError::TooManyNodes);
        }
        self.nodes.push(Node {
            cfg,
            channel: 11,
            rx_on_when_idle: false,
            transmitting: None,
            rx: None,
            energy_until: 0,
            tx: None,
            tx_gen: 0,
            ack_out: None,
            ack_gen: 0,
            scan: None,
            scan_gen: 0,
            ifs_until: 0,
            stats: NodeStats::default(),
            on_mark: self.now,
            timers: 0,
        });
        for row in &mut self.links {
            row.push(None);
        }
        self.links.push(vec![None; self.nodes.len()]);
        Ok(NodeId(self.nodes.len() - 1))
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sets (or with `None` removes) the directed link `from → to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, link: Option<Link>) -> Result<(), MediumError> {
        self.check(from)?;
        self.check(to)?;
        if from != to {
            self.links[from.0][to.0] = link;
        }
        Ok(())
    }

    /// Sets every link between the `placed` nodes from their positions (metres) with a
    /// path-loss model, both ways; pairs out of range get no link. `psdu_len` is the frame
    /// length the packet reception ratio is computed for.
    pub fn place(
        &mut self,
        placed: &[(NodeId, (f64, f64))],
        model: &PathLoss,
        tx_dbm: f64,
        psdu_len: usize,
    ) -> Result<(), MediumError> {
        for &(a, (ax, ay)) in placed {
            for &(b, (bx, by)) in placed {
                if a != b {
                    let d = ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt();
                    self.set_link(a, b, model.link(d, tx_dbm, psdu_len))?;
                }
            }
        }
        Ok(())
    }

    /// Sets the same link both ways.
    pub fn set_link_both(&mut self, a: NodeId, b: NodeId, link: Option<Link>) -> Result<(), MediumError> {
        self.set_link(a, b, link)?;
        self.set_link(b, a, link)
    }

    pub fn link(&self, from: NodeId, to: NodeId) -> Option<Link> {
        self.links.get(from.0)?.get(to.0).copied().flatten()
    }

    pub fn config(&self, id: NodeId) -> Option<&NodeConfig> {
        self.nodes.get(id.0).map(|n| &n.cfg)
    }

    /// The node's MAC configuration; changes apply to frames that end from now on.
    pub fn config_mut(&mut self, id: NodeId) -> Option<&mut NodeConfig> {
        self.nodes.get_mut(id.0).map(|n| &mut n.cfg)
    }

    /// The node's counters up to now.
    pub fn stats(&self, id: NodeId) -> Option<NodeStats> {
        let n = self.nodes.get(id.0)?;
        let mut s = n.stats;
        if n.radio_on() {
            s.radio_on_us += self.now - n.on_mark;
        }
        Some(s)
    }

    /// Records every frame put on air for [`take_air_frames`](Self::take_air_frames).
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }

    /// Frames put on air since the last call, oldest first, and how many were dropped because
    /// the log was full.
    pub fn take_air_frames(&mut self) -> (Vec<AirFrame>, u64) {
        let dropped = std::mem::take(&mut self.air_log_dropped);
        (self.air_log.drain(..).collect(), dropped)
    }

    /// The channel the node is tuned to.
    pub fn channel(&self, id: NodeId) -> Option<u8> {
        self.nodes.get(id.0).map(|n| n.channel)
    }

    /// Energy the node's radio measures now on its channel: the strongest transmission it can
    /// hear, or the noise floor.
    pub fn energy_dbm(&self, id: NodeId) -> Option<i8> {
        let n = self.nodes.get(id.0)?;
        Some(self.energy_on(id, n.channel))
    }

    fn energy_on(&self, id: NodeId, channel: u8) -> i8 {
        self.on_air
            .iter()
            .filter(|t| t.channel == channel && t.sender != id)
            .filter_map(|t| self.link(t.sender, id))
            .map(|l| l.rssi_dbm)
            .fold(NOISE_FLOOR_DBM, i8::max)
    }

    /// Radio on, receiving on `channel` whenever not transmitting. During a transmission or
    /// scan the new channel applies once that ends.
    pub fn receive(&mut self, id: NodeId, channel: u8) -> Result<(), MediumError> {
        self.check(id)?;
        check_channel(channel)?;
        self.account(id);
        let n = &mut self.nodes[id.0];
        n.rx_on_when_idle = true;
        if let Some(scan) = n.scan.as_mut() {
            scan.back_to = channel;
            return Ok(());
        }
        if let Some(p) = n.tx.as_mut() {
            p.req.rx_channel_after = channel;
            return Ok(());
        }
        if n.channel != channel {
            n.rx = None; // retuning loses a frame in progress
            n.energy_until = 0;
        }
        n.channel = channel;
        Ok(())
    }

    /// Radio off once idle: a transmission or scan in progress finishes first.
    pub fn sleep(&mut self, id: NodeId) -> Result<(), MediumError> {
        self.check(id)?;
        self.account(id);
        let n = &mut self.nodes[id.0];
        n.rx_on_when_idle = false;
        if !n.radio_on() {
            n.rx = None;
        }
        Ok(())
    }

    /// Aborts the node's transmission (reported as [`TxError::Abort`]) and ends its scan early
    /// (reported with the peak so far), and sleeps.
    pub fn disable(&mut self, id: NodeId) -> Result<(), MediumError> {
        self.check(id)?;
        self.account(id);
        if self.nodes[id.0].tx.is_some() {
            // A frame already on air still finishes; nobody waits for its outcome.
            self.finish_tx(id, Err(TxError::Abort));
        }
        if let Some(gen) = self.nodes[id.0].scan.map(|_| self.nodes[id.0].scan_gen) {
            // Ends now with what it measured so far, so whoever waits for it is not left hanging.
            self.on_scan_end(id, gen);
        }
        let n = &mut self.nodes[id.0];
        n.scan_gen += 1;
        n.ack_out = None;
        n.ack_gen += 1;
        n.rx = None;
        n.rx_on_when_idle = false;
        Ok(())
    }

    /// Starts a transmission; the outcome comes as [`NodeEvent::TxDone`].
    pub fn transmit(&mut self, id: NodeId, req: TxRequest) -> Result<(), MediumError> {
        self.check(id)?;
        check_channel(req.channel)?;
        check_channel(req.rx_channel_after)?;
        let n = &self.nodes[id.0];
        if n.tx.is_some() || n.scan.is_some() {
            return Err(MediumError::Busy);
        }
        self.account(id);
        let mut psdu = req.psdu;
        psdu.fill_fcs();
        let header = Header::parse(psdu.as_slice()).ok();
        let ack_request = header.is_some_and(|h| h.ack_request && !h.dst.is_broadcast());
        let n = &mut self.nodes[id.0];
        if n.channel != req.channel {
            n.rx = None;
            n.energy_until = 0;
            n.channel = req.channel;
        }
        n.tx_gen += 1;
        let gen = n.tx_gen;
        n.tx = Some(TxProc {
            req: TxRequest { psdu, ..req },
            seq: header.and_then(|h| h.seq),
            ack_request,
            nb: 0,
            be: self.timing.min_be,
            retries: 0,
            phase: Phase::Wait,
        });
        // Without CSMA-CA the frame itself starts at the requested time; the wait ends one RX→TX
        // switch earlier.
        let start = match (req.csma_ca, req.start_at_us) {
            (true, at) => at.unwrap_or(0).max(n.ifs_until).max(self.now),
            (false, Some(at)) => at.saturating_sub(self.timing.turnaround_us).max(self.now),
            (false, None) => n.ifs_until.max(self.now),
        };
        self.schedule(start, Ev::Mac(id, gen));
        Ok(())
    }

    /// Measures the peak energy on `channel` for `duration_us`, then returns to the node's
    /// channel; the result comes as [`NodeEvent::EnergyScanDone`].
    pub fn energy_scan(&mut self, id: NodeId, channel: u8, duration_us: u64) -> Result<(), MediumError> {
        self.check(id)?;
        check_channel(channel)?;
        if self.nodes[id.0].tx.is_some() || self.nodes[id.0].scan.is_some() {
            return Err(MediumError::Busy);
        }
        self.account(id);
        let max_rssi = self.energy_on(id, channel);
        let n = &mut self.nodes[id.0];
        n.rx = None;
        n.scan = Some(Scan { channel, max_rssi, back_to: n.channel });
        n.channel = channel;
        n.scan_gen += 1;
        let gen = n.scan_gen;
        self.schedule(self.now + duration_us, Ev::ScanEnd(id, gen));
        Ok(())
    }

    /// Wakes the node's driver at `at_us` (or now, if that has passed) with
    /// [`NodeEvent::Timer`], so devices built on the medium share its clock. Timers cannot be
    /// cancelled: drivers ignore tokens they no longer want.
    pub fn schedule_timer(&mut self, id: NodeId, at_us: u64, token: u64) -> Result<(), MediumError> {
        self.check(id)?;
        let n = &mut self.nodes[id.0];
        if n.timers >= MAX_TIMERS_PER_NODE {
            return Err(MediumError::TooManyTimers);
        }
        n.timers += 1;
        self.schedule(at_us.max(self.now), Ev::Timer(id, token));
        Ok(())
    }

    /// When the next event happens, if any.
    pub fn next_event_time(&self) -> Option<u64> {
        self.queue.peek().map(|s| s.time)
    }

    /// Runs every event up to and including `until`, then sets the clock to `until` (never
    /// backwards). Returns what the nodes' drivers must see, in time order.
    pub fn advance(&mut self, until: u64) -> Vec<Delivery> {
        while let Some(top) = self.queue.peek() {
            if top.time > until {
                break;
            }
            let Some(s) = self.queue.pop() else { break };
            self.now = self.now.max(s.time);
            match s.ev {
                Ev::TxEnd(tx) => self.on_tx_end(tx),
                Ev::AckSend(id, gen) => self.on_ack_send(id, gen),
                Ev::Mac(id, gen) => self.on_mac(id, gen),
                Ev::ScanEnd(id, gen) => self.on_scan_end(id, gen),
                Ev::Timer(id, token) => {
                    self.nodes[id.0].timers -= 1;
                    self.deliver(id, NodeEvent::Timer { token });
                }
            }
        }
        self.now = self.now.max(until);
        std::mem::take(&mut self.out)
    }

    fn check(&self, id: NodeId) -> Result<(), MediumError> {
        if id.0 < self.nodes.len() {
            Ok(())
        } else {
            Err(MediumError::NoSuchNode)
        }
    }

    fn schedule(&mut self, time: u64, ev: Ev) {
        self.next_seq += 1;
        self.queue.push(Scheduled { time, seq: self.next_seq, ev });
    }

    fn deliver(&mut self, node: NodeId, event: NodeEvent) {
        self.out.push(Delivery { node, time_us: self.now, event });
    }

    /// Adds radio-on time up to now; call before changing anything `radio_on` depends on.
    fn account(&mut self, id: NodeId) {
        let now = self.now;
        let n = &mut self.nodes[id.0];
        if n.radio_on() {
            n.stats.radio_on_us += now - n.on_mark;
        }
        n.on_mark = now;
    }

    fn on_mac(&mut self, id: NodeId, gen: u64) {
        let n = &self.nodes[id.0];
        let Some(p) = n.tx else { return };
        if n.tx_gen != gen {
            return; // a timer of a finished or aborted transmission
        }
        self.account(id);
        match p.phase {
            Phase::Wait if p.req.csma_ca => self.start_backoff(id),
            Phase::Wait => {
                self.set_phase(id, Phase::Turnaround);
                self.nodes[id.0].rx = None;
                self.schedule(self.now + self.timing.turnaround_us, Ev::Mac(id, gen));
            }
            Phase::Backoff => {
                self.set_phase(id, Phase::Cca { start: self.now });
                self.schedule(self.now + self.timing.cca_us, Ev::Mac(id, gen));
            }
            Phase::Cca { start } => {
                if self.channel_busy(id, start) {
                    self.cca_busy(id);
                } else {
                    self.set_phase(id, Phase::Turnaround);
                    // The switch to TX drops a frame we were receiving.
                    self.nodes[id.0].rx = None;
                    self.schedule(self.now + self.timing.cca_to_tx_us, Ev::Mac(id, gen));
                }
            }
            Phase::Turnaround => {
                if self.nodes[id.0].transmitting.is_some() {
                    // Our own ACK is on air (it won the race for the transmitter): try again.
                    self.cca_busy(id);
                } else {
                    self.set_phase(id, Phase::OnAir);
                    let n = &mut self.nodes[id.0];
                    n.stats.frames_sent += 1;
                    n.stats.bytes_sent += p.req.psdu.len() as u64;
                    self.start_air(id, p.req.psdu, false);
                }
            }
            Phase::AckWait { .. } => {
                // macAckWaitDuration passed without our ACK.
                if p.retries < p.req.max_frame_retries {
                    let n = &mut self.nodes[id.0];
                    n.stats.retries += 1;
                    if let Some(p) = n.tx.as_mut() {
                        p.retries += 1;
                        p.nb = 0;
                        p.be = self.timing.min_be;
                    }
                    if p.req.csma_ca {
                        self.start_backoff(id);
                    } else {
                        self.set_phase(id, Phase::Turnaround);
                        self.schedule(self.now + self.timing.turnaround_us, Ev::Mac(id, gen));
                    }
                } else {
                    self.nodes[id.0].stats.no_acks += 1;
                    self.finish_tx(id, Err(TxError::NoAck));
                }
            }
            Phase::OnAir => {}
        }
    }

    fn set_phase(&mut self, id: NodeId, phase: Phase) {
        if let Some(p) = self.nodes[id.0].tx.as_mut() {
            p.phase = phase;
        }
    }

    /// Unslotted CSMA-CA step (2): wait random(2^BE − 1) backoff periods.
    fn start_backoff(&mut self, id: NodeId) {
        let Some(p) = self.nodes[id.0].tx else { return };
        let units = self.rng.up_to((1u32 << p.be.min(31)) - 1);
        self.set_phase(id, Phase::Backoff);
        let gen = self.nodes[id.0].tx_gen;
        self.schedule(self.now + u64::from(units) * self.timing.backoff_unit_us, Ev::Mac(id, gen));
    }

    /// Unslotted CSMA-CA step (5): NB += 1, BE = min(BE + 1, macMaxBE); give up after
    /// macMaxCSMABackoffs.
    fn cca_busy(&mut self, id: NodeId) {
        let max_be = self.timing.max_be;
        let n = &mut self.nodes[id.0];
        n.stats.cca_failures += 1;
        let Some(p) = n.tx.as_mut() else { return };
        p.nb += 1;
        p.be = (p.be + 1).min(max_be);
        if p.nb > p.req.max_csma_backoffs {
            n.stats.channel_access_failures += 1;
            self.finish_tx(id, Err(TxError::ChannelAccessFailure));
        } else {
            self.start_backoff(id);
        }
    }

    /// CCA mode 1 over [start, now]: busy when anything we hear above the threshold was on air
    /// during the window, or we were transmitting ourselves.
    fn channel_busy(&self, id: NodeId, start: u64) -> bool {
        let n = &self.nodes[id.0];
        if n.transmitting.is_some() || n.ack_out.is_some() || n.energy_until > start {
            return true;
        }
        self.energy_on(id, n.channel) >= n.cfg.cca_threshold_dbm
    }

    fn start_air(&mut self, id: NodeId, psdu: Psdu, is_ack: bool) {
        self.next_tx_id += 1;
        let tx_id = self.next_tx_id;
        let channel = self.nodes[id.0].channel;
        let duration = self.timing.air_time_us(psdu.len());
        let start = self.now;
        {
            let n = &mut self.nodes[id.0];
            n.transmitting = Some(tx_id);
            n.rx = None;
            n.stats.air_time_us += duration;
        }
        for r in 0..self.nodes.len() {
            let Some(link) = self.links[id.0][r] else { continue };
            let busy_before = self
                .on_air
                .iter()
                .any(|t| t.channel == channel && t.sender.0 != r && self.links[t.sender.0][r].is_some());
            let rn = &mut self.nodes[r];
            if let Some(scan) = rn.scan.as_mut() {
                if scan.channel == channel {
                    scan.max_rssi = scan.max_rssi.max(link.rssi_dbm);
                }
                continue;
            }
            if rn.channel != channel {
                continue;
            }
            let can_lock = rn.listening_on(channel) && link.rssi_dbm >= rn.cfg.rx_sensitivity_dbm;
            match rn.rx.as_mut() {
                // Two frames overlap at this receiver: it gets neither.
                Some(lock) if !lock.corrupted => {
                    lock.corrupted = true;
                    rn.stats.collisions += 1;
                }
                Some(_) => {}
                None if can_lock => {
                    // Another frame we could not lock onto is still on air: this one is lost too.
                    if busy_before {
                        rn.stats.collisions += 1;
                    }
                    rn.rx = Some(RxLock { tx: tx_id, corrupted: busy_before });
                }
                None => {}
            }
        }
        self.on_air.push(Transmission { id: tx_id, sender: id, channel, psdu, start, is_ack });
        if self.capture {
            if self.air_log.len() >= AIR_LOG_CAPACITY {
                self.air_log.pop_front();
                self.air_log_dropped += 1;
            }
            self.air_log.push_back(AirFrame { start_us: start, end_us: start + duration, channel, sender: id, psdu });
        }
        self.schedule(start + duration, Ev::TxEnd(tx_id));
    }

    fn on_tx_end(&mut self, tx_id: u64) {
        let Some(i) = self.on_air.iter().position(|t| t.id == tx_id) else { return };
        let tx = self.on_air.swap_remove(i);
        let sender = tx.sender;
        self.account(sender);
        {
            let n = &mut self.nodes[sender.0];
            n.transmitting = None;
            n.energy_until = self.now; // our own energy counts against a CCA overlapping it
        }
        for r in 0..self.nodes.len() {
            let Some(link) = self.links[sender.0][r] else { continue };
            let rn = &mut self.nodes[r];
            if rn.channel == tx.channel && link.rssi_dbm >= rn.cfg.cca_threshold_dbm {
                rn.energy_until = self.now;
            }
            let Some(lock) = rn.rx.filter(|l| l.tx == tx_id) else { continue };
            rn.rx = None;
            if lock.corrupted {
                continue;
            }
            if !self.rng.chance(link.prr) {
                self.nodes[r].stats.rx_lost += 1;
                continue;
            }
            self.receive_frame(NodeId(r), &tx, link);
        }
        if tx.is_ack {
            self.nodes[sender.0].ack_out = None;
            return;
        }
        let Some(p) = self.nodes[sender.0].tx else { return };
        if p.phase != Phase::OnAir {
            return;
        }
        if p.ack_request {
            let deadline = self.now + self.timing.ack_wait_us;
            self.set_phase(sender, Phase::AckWait { deadline });
            let gen = self.nodes[sender.0].tx_gen;
            self.schedule(deadline, Ev::Mac(sender, gen));
        } else {
            self.finish_tx(sender, Ok(None));
        }
    }

    /// An intact frame arrived at `r`: ACK matching, address filter, auto-ACK.
    fn receive_frame(&mut self, r: NodeId, tx: &Transmission, link: Link) {
        let now = self.now;
        let n = &mut self.nodes[r.0];
        n.stats.frames_received += 1;
        n.stats.bytes_received += tx.psdu.len() as u64;
        let mut info = RxInfo {
            psdu: tx.psdu,
            channel: tx.channel,
            rssi_dbm: link.rssi_dbm,
            lqi: lqi(link.rssi_dbm, n.cfg.rx_sensitivity_dbm),
            timestamp_us: tx.start + 5 * self.timing.byte_us,
            acked_with_frame_pending: false,
        };
        let header = Header::parse(tx.psdu.as_slice());
        let promiscuous = n.cfg.promiscuous;
        let Ok(h) = header else {
            if promiscuous {
                self.deliver(r, NodeEvent::Received(info));
            }
            return;
        };
        if h.frame_type == FrameType::Ack {
            let awaited = matches!(
                n.tx,
                Some(TxProc { phase: Phase::AckWait { deadline }, seq: Some(seq), .. })
                    if Some(seq) == h.seq && now <= deadline
            );
            if awaited {
                self.finish_tx(r, Ok(Some(info)));
            } else if promiscuous {
                self.deliver(r, NodeEvent::Received(info));
            }
            return;
        }
        if !promiscuous {
            if !passes_filter(&n.cfg, &h) {
                return;
            }
            if h.ack_request && n.cfg.auto_ack && !h.dst.is_broadcast() && h.dst != Address::None {
                let pending = is_data_request(tx.psdu.as_slice(), &h)
                    && match h.src {
                        Address::Short(a) => n.cfg.src_match.pending_for_short(a),
                        Address::Extended(e) => n.cfg.src_match.pending_for_extended(e),
                        Address::None => false,
                    };
                info.acked_with_frame_pending = pending;
                if let Ok(ack) = Header::ack(h.seq.unwrap_or(0), pending).emit_frame(&[]) {
                    n.ack_out = Some(ack);
                    n.ack_gen += 1;
                    let gen = n.ack_gen;
                    self.schedule(now + self.timing.turnaround_us, Ev::AckSend(r, gen));
                }
            }
        }
        self.deliver(r, NodeEvent::Received(info));
    }

    fn on_ack_send(&mut self, id: NodeId, gen: u64) {
        let n = &self.nodes[id.0];
        if n.ack_gen != gen {
            return;
        }
        let Some(ack) = n.ack_out else { return };
        if n.transmitting.is_some() {
            // The transmitter is taken (not reachable with standard timing): no ACK, and the
            // radio must not stay in "about to ACK".
            self.nodes[id.0].ack_out = None;
            return;
        }
        self.account(id);
        self.nodes[id.0].stats.acks_sent += 1;
        self.start_air(id, ack, true);
    }

    fn finish_tx(&mut self, id: NodeId, result: Result<Option<RxInfo>, TxError>) {
        self.account(id);
        let timing = self.timing;
        let now = self.now;
        let n = &mut self.nodes[id.0];
        let Some(p) = n.tx.take() else { return };
        n.tx_gen += 1;
        if result.is_ok() {
            n.stats.tx_ok += 1;
        }
        // §7.5.1.3: the next frame waits an IFS after this one (after its ACK, if any).
        n.ifs_until = now + timing.ifs_us(p.req.psdu.len());
        if n.channel != p.req.rx_channel_after {
            n.rx = None;
            n.energy_until = 0;
            n.channel = p.req.rx_channel_after;
        }
        self.deliver(id, NodeEvent::TxDone(result));
    }

    fn on_scan_end(&mut self, id: NodeId, gen: u64) {
        let n = &self.nodes[id.0];
        if n.scan_gen != gen {
            return;
        }
        let Some(scan) = n.scan else { return };
        self.account(id);
        let n = &mut self.nodes[id.0];
        n.scan = None;
        n.channel = scan.back_to;
        n.energy_until = 0;
        self.deliver(id, NodeEvent::EnergyScanDone { channel: scan.channel, max_rssi_dbm: scan.max_rssi });
    }
}

fn check_channel(channel: u8) -> Result<(), MediumError> {
    if CHANNELS.contains(&channel) {
        Ok(())
    } else {
        Err(MediumError::InvalidChannel)
    }
}

/// Third-level filtering (§7.5.6.2).
fn passes_filter(cfg: &NodeConfig, h: &Header) -> bool {
    if matches!(h.frame_type, FrameType::Unknown(_)) || h.version > 2 {
        return false;
    }
    if let Some(pan) = h.dst_pan {
        if pan != BROADCAST && pan != cfg.pan_id {
            return false;
        }
    }
    match h.dst {
        Address::Short(a) => a == BROADCAST || a == cfg.short_addr,
        Address::Extended(e) => e == cfg.ext_addr,
        Address::None => match h.frame_type {
            FrameType::Beacon => cfg.pan_id == BROADCAST || h.src_pan == Some(cfg.pan_id),
            // Data and commands without a destination are for the PAN coordinator.
            _ => cfg.pan_coordinator && h.src_pan.is_none_or(|p| p == cfg.pan_id),
        },
    }
}

/// LQI as a linear map of the margin above sensitivity (0 at sensitivity, 255 at 60 dB above),
/// close to what ED-based LQI on common radios reports.
fn lqi(rssi: i8, sensitivity: i8) -> u8 {
    let margin = (i32::from(rssi) - i32::from(sensitivity)).clamp(0, 60);
    (margin * 255 / 60) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u8, dst: u16, ack: bool, payload_len: usize) -> Psdu {
        let h = Header::data(seq, 0xface, Address::Short(dst), Address::Short(0x0001), ack);
        h.emit_frame(&vec![0x5a; payload_len]).unwrap()
    }

    fn pair() -> (Medium, NodeId, NodeId) {
        let mut m = Medium::new(1, Timing::STANDARD);
        let cfg = |short| NodeConfig { pan_id: 0xface, short_addr: short, ..NodeConfig::default() };
        let a = m.add_node(cfg(1)).unwrap();
        let b = m.add_node(cfg(2)).unwrap();
        m.set_link_both(a, b, Some(Link::perfect())).unwrap();
        m.receive(a, 15).unwrap();
        m.receive(b, 15).unwrap();
        (m, a, b)
    }

    fn run(m: &mut Medium) -> Vec<Delivery> {
        let mut all = Vec::new();
        while let Some(t) = m.next_event_time() {
            all.extend(m.advance(t));
        }
        all
    }

    #[test]
    fn ack_exchange_timing_without_csma() {
        let (mut m, a, b) = pair();
        let mut req = TxRequest::new(frame(9, 2, true, 116), 15);
        req.csma_ca = false;
        m.transmit(a, req).unwrap();
        let ev = run(&mut m);
        // Turnaround 192, frame 4256, turnaround 192, ACK 352.
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].node, b);
        assert_eq!(ev[0].time_us, 192 + 4256);
        let NodeEvent::TxDone(Ok(Some(ack))) = ev[1].event else { panic!("{ev:?}") };
        assert_eq!(ev[1].time_us, 192 + 4256 + 192 + 352);
        assert_eq!(ack.psdu.as_slice()[..3], [0x02, 0x00, 9]);
        assert_eq!(m.stats(b).unwrap().acks_sent, 1);
        assert_eq!(m.stats(a).unwrap().air_time_us, 4256);
    }

    #[test]
    fn address_filter_drops_other_destinations() {
        let (mut m, a, b) = pair();
        let mut req = TxRequest::new(frame(1, 7, true, 10), 15);
        req.max_frame_retries = 0;
        m.transmit(a, req).unwrap();
        let ev = run(&mut m);
        assert!(ev.iter().all(|d| d.node != b));
        assert!(matches!(ev.last().map(|d| d.event), Some(NodeEvent::TxDone(Err(TxError::NoAck)))));
        assert_eq!(m.stats(b).unwrap().frames_received, 1);
    }

    #[test]
    fn sleeping_radio_is_off_and_deaf() {
        let (mut m, a, b) = pair();
        m.sleep(b).unwrap();
        let mut req = TxRequest::new(frame(1, 2, false, 10), 15);
        req.csma_ca = false;
        m.transmit(a, req).unwrap();
        let ev = run(&mut m);
        assert!(ev.iter().all(|d| d.node != b));
        assert_eq!(m.stats(b).unwrap().radio_on_us, 0);
        m.advance(10_000);
        assert_eq!(m.stats(a).unwrap().radio_on_us, 10_000);
    }

    #[test]
    fn retuning_waits_for_the_transmission() {
        let (mut m, a, b) = pair();
        let mut req = TxRequest::new(frame(1, 2, true, 10), 15);
        req.csma_ca = false;
        m.transmit(a, req).unwrap();
        m.receive(a, 20).unwrap(); // mid-operation: applies after the TX-done
        assert_eq!(m.channel(a), Some(15));
        let ev = run(&mut m);
        assert!(matches!(ev.last().map(|d| d.event), Some(NodeEvent::TxDone(Ok(Some(_))))), "{ev:?}");
        assert_eq!(m.channel(a), Some(20));
        m.energy_scan(b, 11, 1_000).unwrap();
        m.receive(b, 26).unwrap();
        run(&mut m);
        assert_eq!(m.channel(b), Some(26));
    }

    #[test]
    fn timers_share_the_clock_and_are_bounded() {
        let (mut m, a, _) = pair();
        m.schedule_timer(a, 500, 7).unwrap();
        assert_eq!(m.next_event_time(), Some(500));
        let ev = m.advance(1_000);
        assert_eq!(ev, [Delivery { node: a, time_us: 500, event: NodeEvent::Timer { token: 7 } }]);
        for i in 0..MAX_TIMERS_PER_NODE as u64 {
            m.schedule_timer(a, 2_000, i).unwrap();
        }
        assert_eq!(m.schedule_timer(a, 2_000, 99), Err(MediumError::TooManyTimers));
        assert_eq!(m.schedule_timer(NodeId(9), 2_000, 0), Err(MediumError::NoSuchNode));
    }

    #[test]
    fn energy_scan_sees_a_transmission() {
        let (mut m, a, b) = pair();
        m.set_link(a, b, Some(Link::new(1.0, -42))).unwrap();
        let mut req = TxRequest::new(frame(1, 2, false, 100), 15);
        req.csma_ca = false;
        m.transmit(a, req).unwrap();
        m.energy_scan(b, 15, 2_000).unwrap();
        let ev = run(&mut m);
        assert!(ev.iter().any(|d| d.event == NodeEvent::EnergyScanDone { channel: 15, max_rssi_dbm: -42 }));
    }
}
