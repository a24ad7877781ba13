//! The sans-IO MAC layer above the RCP: sequence numbers, duplicate detection, per-neighbour
//! RX metadata and the indirect queue for sleepy children (IEEE 802.15.4-2006 §7.5.6.3).
//!
//! The RCP sends ACKs itself and sets frame-pending in the ACK of a Data Request when the
//! poller's address is in its source-match table. This layer therefore only tells the caller
//! which addresses to insert or remove ([`SourceMatch`]) and releases a child's held frames to
//! the transmit queue as soon as its Data Request arrives.
//!
//! Call order: `handle_rx(now, psdu, meta)` per received frame; `enqueue(now, dst, psdu)` for
//! frames to send; drain `poll_source_match()` and `poll_transmit()`; `handle_timeout(now)` at
//! `poll_timeout()`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::mac::{self, FrameKind, MacAddr, MacError, MacFrame, CMD_DATA_REQUEST};

/// Receive metadata from the radio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxMeta {
    pub rssi: i8,
    pub lqi: u8,
    /// The radio's µs timestamp of the frame.
    pub timestamp_us: u64,
}

/// What we know of a neighbour from the frames we heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    pub rssi: i8,
    pub lqi: u8,
    pub timestamp_us: u64,
    pub last_heard: Instant,
    pub frames: u64,
    /// Last sequence number accepted from it (duplicate detection).
    last_seq: Option<u8>,
}

/// A source-match table change for the RCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMatch {
    /// Frames are held for this child: ACK its Data Requests with frame pending.
    Insert(MacAddr),
    /// Nothing held any more.
    Remove(MacAddr),
}

/// A frame for the radio.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// The PSDU with a valid FCS.
    pub psdu: Vec<u8>,
    pub dst: MacAddr,
    /// Unicast frames want an ACK (and CSMA retries from the radio).
    pub ack_request: bool,
}

/// Outcome of one received frame.
#[derive(Debug, PartialEq, Eq)]
pub enum RxEvent<'a> {
    /// A new data frame for us (or broadcast).
    Data { src: MacAddr, dst: MacAddr, payload: &'a [u8] },
    /// A sleepy child polled; its held frames (if any) are now in the transmit queue.
    DataRequest { src: MacAddr, released: usize },
    /// Same (source, sequence) as the previous frame from that source: a retransmission whose
    /// ACK was lost.
    Duplicate,
    /// Not addressed to us, not in our PAN, or a kind we ignore (ACK, beacon, other commands).
    Ignored,
}

/// Frames of a whole IPv6-MTU datagram (1280 bytes) fragmented for the worst-case MAC header
/// (extended addresses: 23 bytes, so 96 bytes of fragment payload per frame): 14. A sleepy
/// child must be able to hold all fragments of one datagram until it polls, or a 1024-byte CoAP
/// block (11 fragments) never arrives; 16 leaves room for a poll's worth of other frames.
pub const INDIRECT_PER_NODE: usize = 16;
/// Eight children holding a whole datagram each (~16 KiB of frames at most).
pub const INDIRECT_TOTAL: usize = 8 * INDIRECT_PER_NODE;

#[derive(Debug, Clone)]
pub struct MacConfig {
    pub pan: u16,
    pub ext_addr: [u8; 8],
    pub short_addr: Option<u16>,
    /// Neighbours remembered (oldest evicted).
    pub max_neighbors: usize,
    /// Frames held for one sleepy child: by default [`INDIRECT_PER_NODE`], a whole datagram.
    pub indirect_per_node: usize,
    /// Frames held for all children together (by default [`INDIRECT_TOTAL`]).
    pub indirect_total: usize,
    /// A held frame is dropped after this long without a poll (macTransactionPersistenceTime).
    pub indirect_timeout: Duration,
    /// Bound on the direct transmit queue.
    pub tx_queue: usize,
    /// Treat a child that sends a Data Request as sleepy from then on: only devices whose
    /// receiver is off when idle poll (IEEE 802.15.4-2006 §7.5.6.3), so frames for it must wait
    /// for its next poll. The child is known by the address it polls with.
    pub learn_sleepy: bool,
}

impl MacConfig {
    pub fn new(pan: u16, ext_addr: [u8; 8]) -> MacConfig {
        MacConfig {
            pan,
            ext_addr,
            short_addr: None,
            max_neighbors: 256,
            indirect_per_node: INDIRECT_PER_NODE,
            indirect_total: INDIRECT_TOTAL,
            indirect_timeout: Duration::from_secs(30),
            tx_queue: 256,
            learn_sleepy: false,
        }
    }
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MacStats {
    pub rx_frames: u64,
    pub rx_malformed: u64,
    pub rx_duplicates: u64,
    pub rx_ignored: u64,
    pub rx_data_requests: u64,
    pub tx_frames: u64,
    pub tx_queue_full: u64,
    pub indirect_queued: u64,
    pub indirect_delivered: u64,
    pub indirect_timed_out: u64,
    pub indirect_dropped_full: u64,
    /// Children marked sleepy because they polled (`learn_sleepy`).
    pub sleepy_learned: u64,
}

struct Held {
    psdu: Vec<u8>,
    expires: Instant,
}

pub struct MacLayer {
    cfg: MacConfig,
    seq: u8,
    neighbors: BTreeMap<MacAddr, Neighbor>,
    sleepy: BTreeMap<MacAddr, VecDeque<Held>>,
    /// Children marked sleepy by the caller ([`MacLayer::set_sleepy`]), not learned from their
    /// polls: never forgotten to make room.
    pinned: BTreeSet<MacAddr>,
    /// Hold times of children that poll less often than `indirect_timeout`.
    hold: BTreeMap<MacAddr, Duration>,
    held_total: usize,
    tx: VecDeque<Transmit>,
    src_match: VecDeque<SourceMatch>,
    stats: MacStats,
}

impl MacLayer {
    pub fn new(cfg: MacConfig) -> MacLayer {
        MacLayer {
            cfg,
            seq: 0,
            neighbors: BTreeMap::new(),
            sleepy: BTreeMap::new(),
            pinned: BTreeSet::new(),
            hold: BTreeMap::new(),
            held_total: 0,
            tx: VecDeque::new(),
            src_match: VecDeque::new(),
            stats: MacStats::default(),
        }
    }

    pub fn config(&self) -> &MacConfig {
        &self.cfg
    }

    /// Our source address for outgoing frames: the short one when configured.
    pub fn own_addr(&self) -> MacAddr {
        match self.cfg.short_addr {
            Some(s) => MacAddr::Short(s),
            None => MacAddr::Ext(self.cfg.ext_addr),
        }
    }

    fn is_ours(&self, a: MacAddr) -> bool {
        match a {
            MacAddr::Ext(e) => e == self.cfg.ext_addr,
            MacAddr::Short(s) => s == mac::BROADCAST || Some(s) == self.cfg.short_addr,
        }
    }

    pub fn stats(&self) -> MacStats {
        self.stats
    }

    pub fn neighbor(&self, a: &MacAddr) -> Option<&Neighbor> {
        self.neighbors.get(a)
    }

    pub fn neighbors(&self) -> impl Iterator<Item = (&MacAddr, &Neighbor)> {
        self.neighbors.iter()
    }

    /// Next data sequence number (macDSN).
    pub fn next_seq(&mut self) -> u8 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    /// Builds a data frame from us to `dst`.
    pub fn build_data(&mut self, dst: MacAddr, payload: &[u8]) -> Result<Vec<u8>, MacError> {
        let seq = self.next_seq();
        MacFrame::data(seq, self.cfg.pan, dst, self.own_addr()).emit(payload)
    }

    /// MAC payload room for a data frame to `dst`.
    pub fn max_payload(&self, dst: MacAddr) -> usize {
        MacFrame::data(0, self.cfg.pan, dst, self.own_addr()).max_payload()
    }

    /// Marks a child as sleepy (its unicast frames are held until it polls) or awake (held
    /// frames are released now).
    pub fn set_sleepy(&mut self, child: MacAddr, sleepy: bool) {
        if sleepy {
            self.sleepy.entry(child).or_default();
            self.pinned.insert(child);
            return;
        }
        self.pinned.remove(&child);
        if let Some(q) = self.sleepy.remove(&child) {
            if !q.is_empty() {
                self.src_match.push_back(SourceMatch::Remove(child));
            }
            self.held_total -= q.len();
            for h in q {
                self.push_tx(Transmit { psdu: h.psdu, dst: child, ack_request: true });
            }
        }
    }

    /// How long frames for `child` are held for its poll: a child that polls less often than
    /// the default `indirect_timeout` needs its frames kept for a whole period. `None` restores
    /// the default.
    pub fn set_hold_time(&mut self, child: MacAddr, hold: Option<Duration>) {
        match hold {
            Some(h) if self.hold.len() < self.cfg.max_neighbors || self.hold.contains_key(&child) => {
                self.hold.insert(child, h);
            }
            Some(_) => {}
            None => {
                self.hold.remove(&child);
            }
        }
    }

    /// How long frames for `child` are held.
    pub fn hold_time(&self, child: &MacAddr) -> Duration {
        self.hold.get(child).copied().unwrap_or(self.cfg.indirect_timeout)
    }

    pub fn is_sleepy(&self, a: &MacAddr) -> bool {
        self.sleepy.contains_key(a)
    }

    /// Frames held for all sleepy children together.
    pub fn held_total(&self) -> usize {
        self.held_total
    }

    /// Frames currently held for `child`.
    pub fn held(&self, child: &MacAddr) -> usize {
        self.sleepy.get(child).map_or(0, VecDeque::len)
    }

    fn push_tx(&mut self, t: Transmit) {
        if self.tx.len() >= self.cfg.tx_queue {
            self.stats.tx_queue_full += 1;
            return;
        }
        self.tx.push_back(t);
    }

    /// Queues an emitted PSDU for `dst`: held if `dst` is a sleepy child, else sent directly.
    /// Returns false if it was dropped because a bound was reached.
    pub fn enqueue(&mut self, now: Instant, dst: MacAddr, psdu: Vec<u8>) -> bool {
        if let Some(q) = self.sleepy.get_mut(&dst) {
            if q.len() >= self.cfg.indirect_per_node || self.held_total >= self.cfg.indirect_total {
                self.stats.indirect_dropped_full += 1;
                return false;
            }
            if q.is_empty() {
                self.src_match.push_back(SourceMatch::Insert(dst));
            }
            let hold = self.hold.get(&dst).copied().unwrap_or(self.cfg.indirect_timeout);
            q.push_back(Held { psdu, expires: now + hold });
            self.held_total += 1;
            self.stats.indirect_queued += 1;
            return true;
        }
        let before = self.stats.tx_queue_full;
        self.push_tx(Transmit { psdu, dst, ack_request: !dst.is_broadcast() });
        self.stats.tx_queue_full == before
    }

    /// Handles one received PSDU (FCS included).
    pub fn handle_rx<'a>(&mut self, now: Instant, psdu: &'a [u8], meta: RxMeta) -> Result<RxEvent<'a>, MacError> {
        self.stats.rx_frames += 1;
        let (f, payload) = match MacFrame::parse(psdu) {
            Ok(x) => x,
            Err(e) => {
                self.stats.rx_malformed += 1;
                return Err(e);
            }
        };
        let for_us = f.dst.is_some_and(|d| self.is_ours(d)) && f.pan.is_none_or(|p| p == self.cfg.pan || p == 0xffff);
        let Some(src) = f.src.filter(|_| for_us) else {
            self.stats.rx_ignored += 1;
            return Ok(RxEvent::Ignored);
        };
        if !matches!(f.kind, FrameKind::Data | FrameKind::Command(CMD_DATA_REQUEST)) {
            self.stats.rx_ignored += 1;
            return Ok(RxEvent::Ignored);
        }
        if !self.neighbors.contains_key(&src) && self.neighbors.len() >= self.cfg.max_neighbors {
            // Forget the neighbour heard least recently.
            if let Some(old) = self.neighbors.iter().min_by_key(|(_, n)| n.last_heard).map(|(a, _)| *a) {
                self.neighbors.remove(&old);
            }
        }
        let n = self.neighbors.entry(src).or_insert(Neighbor {
            rssi: meta.rssi,
            lqi: meta.lqi,
            timestamp_us: meta.timestamp_us,
            last_heard: now,
            frames: 0,
            last_seq: None,
        });
        n.rssi = meta.rssi;
        n.lqi = meta.lqi;
        n.timestamp_us = meta.timestamp_us;
        n.last_heard = now;
        n.frames += 1;
        // A retransmission repeats the sequence number; a new frame never does back to back.
        if f.seq.is_some() && n.last_seq == f.seq {
            self.stats.rx_duplicates += 1;
            return Ok(RxEvent::Duplicate);
        }
        n.last_seq = f.seq;
        match f.kind {
            FrameKind::Command(_) => {
                self.stats.rx_data_requests += 1;
                if self.cfg.learn_sleepy && !self.sleepy.contains_key(&src) && self.room_for_sleepy() {
                    self.sleepy.insert(src, VecDeque::new());
                    self.stats.sleepy_learned += 1;
                }
                let released = self.release(src);
                Ok(RxEvent::DataRequest { src, released })
            }
            _ => Ok(RxEvent::Data { src, dst: f.dst.unwrap_or(MacAddr::BROADCAST), payload }),
        }
    }

    /// Whether one more child may be learned as sleepy: at most `max_neighbors` are learned
    /// (anyone in range can send Data Requests from made-up addresses). When full, the learned
    /// child with nothing held that was heard least recently is forgotten; it is learned again
    /// at its next poll. Children the caller marked sleepy are neither counted nor forgotten.
    fn room_for_sleepy(&mut self) -> bool {
        if self.sleepy.len().saturating_sub(self.pinned.len()) < self.cfg.max_neighbors {
            return true;
        }
        let heard = |a: &MacAddr| self.neighbors.get(a).map(|n| n.last_heard);
        let idle = self
            .sleepy
            .iter()
            .filter(|(a, q)| q.is_empty() && !self.pinned.contains(a))
            .map(|(a, _)| *a)
            .min_by_key(|a| heard(a));
        match idle {
            Some(old) => {
                self.sleepy.remove(&old);
                true
            }
            None => false,
        }
    }

    /// Moves a polled child's held frames to the front of the transmit queue, in order, with
    /// frame pending set on all but the last so the child keeps listening.
    fn release(&mut self, child: MacAddr) -> usize {
        let Some(q) = self.sleepy.get_mut(&child) else { return 0 };
        let frames: Vec<Held> = q.drain(..).collect();
        let n = frames.len();
        if n == 0 {
            return 0;
        }
        self.held_total -= n;
        self.src_match.push_back(SourceMatch::Remove(child));
        for (i, mut h) in frames.into_iter().enumerate().rev() {
            mac::set_frame_pending(&mut h.psdu, i + 1 < n);
            self.tx.push_front(Transmit { psdu: h.psdu, dst: child, ack_request: true });
        }
        self.stats.indirect_delivered += n as u64;
        n
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.tx.pop_front()?;
        self.stats.tx_frames += 1;
        Some(t)
    }

    pub fn poll_source_match(&mut self) -> Option<SourceMatch> {
        self.src_match.pop_front()
    }

    /// Earliest held-frame expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sleepy.values().filter_map(|q| q.front().map(|h| h.expires)).min()
    }

    /// Drops held frames whose child did not poll in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (child, q) in self.sleepy.iter_mut() {
            let before = q.len();
            q.retain(|h| h.expires > now);
            let gone = before - q.len();
            if gone > 0 {
                self.held_total -= gone;
                self.stats.indirect_timed_out += gone as u64;
                if q.is_empty() {
                    self.src_match.push_back(SourceMatch::Remove(*child));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: [u8; 8] = [0x02, 0, 0, 0, 0, 0, 0, 1];
    const CHILD: MacAddr = MacAddr::Short(0x0002);

    fn frame_from(src: MacAddr, seq: u8, payload: &[u8]) -> Vec<u8> {
        MacFrame::data(seq, 0x23, MacAddr::Ext(ME), src).emit(payload).unwrap()
    }

    #[test]
    fn duplicates_are_dropped_per_source() {
        let now = Instant::now();
        let mut m = MacLayer::new(MacConfig::new(0x23, ME));
        let f = frame_from(CHILD, 9, b"x");
        assert!(matches!(m.handle_rx(now, &f, RxMeta::default()), Ok(RxEvent::Data { .. })));
        assert_eq!(m.handle_rx(now, &f, RxMeta::default()), Ok(RxEvent::Duplicate));
        // Same seq from another source is new.
        let g = frame_from(MacAddr::Short(3), 9, b"x");
        assert!(matches!(m.handle_rx(now, &g, RxMeta::default()), Ok(RxEvent::Data { .. })));
        assert_eq!(m.stats().rx_duplicates, 1);
    }

    #[test]
    fn neighbor_metadata_is_recorded() {
        let now = Instant::now();
        let mut m = MacLayer::new(MacConfig::new(0x23, ME));
        let meta = RxMeta { rssi: -61, lqi: 200, timestamp_us: 1234 };
        let _ = m.handle_rx(now, &frame_from(CHILD, 1, b""), meta).unwrap();
        let n = m.neighbor(&CHILD).unwrap();
        assert_eq!((n.rssi, n.lqi, n.timestamp_us, n.frames), (-61, 200, 1234, 1));
    }

    #[test]
    fn foreign_pan_and_address_are_ignored() {
        let now = Instant::now();
        let mut m = MacLayer::new(MacConfig::new(0x23, ME));
        let other = MacFrame::data(1, 0x99, MacAddr::Ext(ME), CHILD).emit(b"").unwrap();
        assert_eq!(m.handle_rx(now, &other, RxMeta::default()), Ok(RxEvent::Ignored));
        let not_me = MacFrame::data(1, 0x23, MacAddr::Short(7), CHILD).emit(b"").unwrap();
        assert_eq!(m.handle_rx(now, &not_me, RxMeta::default()), Ok(RxEvent::Ignored));
    }

    #[test]
    fn a_child_that_sleeps_long_has_its_frames_held_through_its_sleep() {
        let now = Instant::now();
        let mut m = MacLayer::new(MacConfig::new(0x23, ME));
        let default = m.config().indirect_timeout;
        m.set_sleepy(CHILD, true);
        m.set_hold_time(CHILD, Some(Duration::from_secs(300)));
        assert_eq!(m.hold_time(&CHILD), Duration::from_secs(300));
        let p = m.build_data(CHILD, &[1]).unwrap();
        assert!(m.enqueue(now, CHILD, p));
        m.handle_timeout(now + default + Duration::from_secs(1));
        assert_eq!(m.held(&CHILD), 1, "kept past the default");
        m.handle_timeout(now + Duration::from_secs(301));
        assert_eq!((m.held(&CHILD), m.stats().indirect_timed_out), (0, 1));
        m.set_hold_time(CHILD, None);
        assert_eq!(m.hold_time(&CHILD), default);
    }

    #[test]
    fn indirect_frames_wait_for_the_poll() {
        let now = Instant::now();
        let mut m = MacLayer::new(MacConfig::new(0x23, ME));
        m.set_sleepy(CHILD, true);
        for i in 0..3u8 {
            let p = m.build_data(CHILD, &[i]).unwrap();
            assert!(m.enqueue(now, CHILD, p));
        }
        assert_eq!(m.poll_transmit(), None);
        assert_eq!(m.poll_source_match(), Some(SourceMatch::Insert(CHILD)));
        assert_eq!(m.poll_source_match(), None);
        let poll = MacFrame::data_request(77, 0x23, MacAddr::Ext(ME), CHILD).emit(&[]).unwrap();
        assert_eq!(m.handle_rx(now, &poll, RxMeta::default()), Ok(RxEvent::DataRequest { src: CHILD, released: 3 }));
        assert_eq!(m.poll_source_match(), Some(SourceMatch::Remove(CHILD)));
        for i in 0..3u8 {
            let t = m.poll_transmit().unwrap();
            let (f, p) = MacFrame::parse(&t.psdu).unwrap();
            assert_eq!(p, &[i]);
            assert_eq!(f.frame_pending, i < 2, "frame pending on all but the last");
            assert!(mac::fcs_ok(&t.psdu));
        }
        assert_eq!(m.stats().indirect_delivered, 3);
    }

    #[test]
    fn a_child_that_polls_is_learnt_as_sleepy_when_asked() {
        let now = Instant::now();
        let poll = MacFrame::data_request(5, 0x23, MacAddr::Ext(ME), CHILD).emit(&[]).unwrap();
        let mut plain = MacLayer::new(MacConfig::new(0x23, ME));
        let _ = plain.handle_rx(now, &poll, RxMeta::default()).unwrap();
        assert!(!plain.is_sleepy(&CHILD));

        let mut cfg = MacConfig::new(0x23, ME);
        cfg.learn_sleepy = true;
        let mut m = MacLayer::new(cfg);
        let _ = m.handle_rx(now, &poll, RxMeta::default()).unwrap();
        assert!(m.is_sleepy(&CHILD));
        assert_eq!(m.stats().sleepy_learned, 1);
        let p = m.build_data(CHILD, b"later").unwrap();
        assert!(m.enqueue(now, CHILD, p));
        assert_eq!(m.poll_transmit(), None, "held until the next poll");
        assert_eq!(m.held(&CHILD), 1);
    }

    #[test]
    fn polls_from_made_up_addresses_learn_at_most_max_neighbors_sleepy_children() {
        let now = Instant::now();
        let mut cfg = MacConfig::new(0x23, ME);
        cfg.learn_sleepy = true;
        cfg.max_neighbors = 4;
        let mut m = MacLayer::new(cfg);
        let poll = MacFrame::data_request(5, 0x23, MacAddr::Ext(ME), CHILD).emit(&[]).unwrap();
        let _ = m.handle_rx(now, &poll, RxMeta::default()).unwrap();
        let p = m.build_data(CHILD, b"held").unwrap();
        assert!(m.enqueue(now, CHILD, p));
        for short in 0x100..0x200u16 {
            let poll = MacFrame::data_request(5, 0x23, MacAddr::Ext(ME), MacAddr::Short(short)).emit(&[]).unwrap();
            let _ = m.handle_rx(now, &poll, RxMeta::default()).unwrap();
        }
        let learned = (0x100..0x200u16).filter(|s| m.is_sleepy(&MacAddr::Short(*s))).count();
        assert_eq!(learned, 3, "the table stays at max_neighbors");
        // The child with a frame held is never the one forgotten.
        assert!(m.is_sleepy(&CHILD));
        assert_eq!(m.held(&CHILD), 1);
        // Nor one the caller marked sleepy, and it takes no learned child's place.
        let known = MacAddr::Short(0x0777);
        m.set_sleepy(known, true);
        for short in 0x200..0x300u16 {
            let poll = MacFrame::data_request(5, 0x23, MacAddr::Ext(ME), MacAddr::Short(short)).emit(&[]).unwrap();
            let _ = m.handle_rx(now, &poll, RxMeta::default()).unwrap();
        }
        assert!(m.is_sleepy(&known));
        assert_eq!((0x200..0x300u16).filter(|s| m.is_sleepy(&MacAddr::Short(*s))).count(), 3);
    }

    #[test]
    fn a_sleepy_child_holds_every_fragment_of_an_mtu_datagram() {
        let now = Instant::now();
        let mut m = MacLayer::new(MacConfig::new(0x23, ME));
        m.set_sleepy(CHILD, true);
        // 1280 bytes at the worst-case fragment payload of 96 bytes per frame.
        let frames = 1280usize.div_ceil(96);
        for i in 0..frames {
            let p = m.build_data(CHILD, &[i as u8; 100]).unwrap();
            assert!(m.enqueue(now, CHILD, p), "fragment {i} of {frames} held");
        }
        assert_eq!(m.held(&CHILD), frames);
        assert_eq!(m.stats().indirect_dropped_full, 0);
    }

    #[test]
    fn indirect_queue_is_bounded_and_times_out() {
        let now = Instant::now();
        let mut cfg = MacConfig::new(0x23, ME);
        cfg.indirect_per_node = 2;
        cfg.indirect_total = 3;
        let mut m = MacLayer::new(cfg);
        let other = MacAddr::Short(9);
        m.set_sleepy(CHILD, true);
        m.set_sleepy(other, true);
        assert!(m.enqueue(now, CHILD, vec![0; 5]));
        assert!(m.enqueue(now, CHILD, vec![0; 5]));
        assert!(!m.enqueue(now, CHILD, vec![0; 5]), "per-node bound");
        assert!(m.enqueue(now, other, vec![0; 5]));
        assert!(!m.enqueue(now, other, vec![0; 5]), "total bound");
        assert_eq!(m.stats().indirect_dropped_full, 2);
        let t = m.poll_timeout().unwrap();
        m.handle_timeout(t - Duration::from_millis(1));
        assert_eq!(m.held(&CHILD), 2);
        m.handle_timeout(t);
        assert_eq!((m.held(&CHILD), m.held(&other)), (0, 0));
        assert_eq!(m.stats().indirect_timed_out, 3);
        let changes: Vec<_> = std::iter::from_fn(|| m.poll_source_match()).collect();
        assert!(changes.contains(&SourceMatch::Remove(CHILD)) && changes.contains(&SourceMatch::Remove(other)));
    }
}
