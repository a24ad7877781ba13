//! MAC-level behaviour of a simulated device, sans-IO, on one [`Medium`] node.
//!
//! * **Always-on** devices (routers, mains-powered leaves) receive all the time; the medium
//!   sends their ACKs. A router also keeps frames for its sleepy children (indirect
//!   transmission, IEEE 802.15.4-2006 §7.5.6.3): the child's address goes into the router's
//!   source-match table so the ACK to the child's Data Request carries Frame Pending, and the
//!   frame follows the ACK.
//! * **Sleepy** devices keep their radio off and wake every poll period of their *own* clock
//!   (period ± jitter, running fast or slow by the drift in ppm): radio on, MAC Data Request
//!   (command 0x04) to the parent, listen for the listen window — or, if the ACK had Frame
//!   Pending, until the queued frame arrives (bounded by the pending timeout) — then sleep.
//!   Every wake is logged with its true time ([`WakeRecord`]) so the duty-cycle learner can be
//!   scored against ground truth.
//!
//! Upper layers (6LoWPAN/IPv6/CoAP/SUIT) plug in through [`Upper`]; [`NoUpper`] does nothing.
//!
//! # Call order
//!
//! [`Device::start`] once; then for every [`Delivery`] of this node, [`Device::on_event`]. Both
//! leave the node's radio and the one timer it needs set on the medium. After feeding the upper
//! layer from outside (e.g. a test queueing a frame), call [`Device::poll`].

use std::collections::{HashMap, VecDeque};

use ferry_rcp_core::radio::TxError;
use serde::Serialize;

use super::frame::{is_data_request, Address, FrameType, Header, Psdu, CMD_DATA_REQUEST};
use super::medium::{Delivery, Medium, NodeEvent, NodeId, RxInfo, TxRequest};
use super::rng::Rng;
use super::scenario::{DutyCycle, Role};

/// Frames waiting for the transmitter; beyond this the upper layer's frames are dropped.
pub const TX_QUEUE_LEN: usize = 16;
/// Indirect frames held per sleepy child (OpenThread keeps a handful per child too).
pub const INDIRECT_PER_CHILD: usize = 8;
/// While the upper layer keeps a sleepy device awake it polls its parent this often (fast
/// polling, as Thread end devices do while they expect a response).
pub const FAST_POLL_US: u64 = 50_000;
/// Wake records kept per node; older ones are dropped first (and counted).
pub const WAKE_LOG_LEN: usize = 65_536;

/// Receive metadata handed to the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    pub rssi_dbm: i8,
    pub lqi: u8,
    /// True µs at the end of the SFD.
    pub timestamp_us: u64,
}

/// How a frame of the layers above left the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// ACKed, or needed no ACK.
    Acked,
    /// Sent, but the MAC's retries ran out without an ACK: the neighbour may be gone.
    NoAck,
    /// Never sent: the channel was busy through every CSMA-CA backoff (or the send was
    /// aborted). It says nothing of the neighbour.
    NotSent,
}

impl TxOutcome {
    fn of<T>(result: &Result<T, TxError>) -> TxOutcome {
        match result {
            Ok(_) => TxOutcome::Acked,
            Err(TxError::NoAck) => TxOutcome::NoAck,
            Err(_) => TxOutcome::NotSent,
        }
    }
}

/// The layers above the MAC, sans-IO: 6LoWPAN/IPv6/CoAP/SUIT on a device plug in here. Times
/// are the medium's µs. Every method has a no-op default so a device runs without one.
pub trait Upper: Send {
    /// A frame addressed to this device (or broadcast) arrived intact; FCS included.
    fn on_frame(&mut self, _now_us: u64, _psdu: &[u8], _meta: &RxMeta) {}
    /// A frame from [`poll_transmit`](Self::poll_transmit) (`psdu`) left the MAC.
    fn on_tx_done(&mut self, _now_us: u64, _psdu: &[u8], _outcome: TxOutcome) {}
    /// The next PSDU to send (MAC header, payload, 2 FCS placeholder bytes). Frames for a
    /// router's sleepy child are held for the child's next poll.
    fn poll_transmit(&mut self, _now_us: u64) -> Option<Vec<u8>> {
        None
    }
    /// When [`handle_timeout`](Self::handle_timeout) wants to be called next.
    fn poll_timeout(&self) -> Option<u64> {
        None
    }
    /// Called at or after the time `poll_timeout` named (early calls are harmless).
    fn handle_timeout(&mut self, _now_us: u64) {}
    /// A sleepy device stays awake and polls its parent back to back while this is true (a
    /// transfer is running); it returns to its duty cycle afterwards.
    fn keep_awake(&self) -> bool {
        false
    }
    /// The device is not running (rebooting): its radio is off until this turns false, which
    /// happens at a time `poll_timeout` names.
    fn radio_silent(&self) -> bool {
        false
    }
    /// The concrete upper layer, for ground-truth queries ([`Device::upper_as`]).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
}

/// The upper layer of a device with nothing above its MAC.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoUpper;

impl Upper for NoUpper {}

/// What a device is, as the world builds it from a scenario.
#[derive(Debug, Clone)]
pub struct DeviceParams {
    pub name: String,
    pub short: u16,
    pub pan_id: u16,
    pub channel: u8,
    pub parent_short: u16,
    pub role: Role,
    pub duty_cycle: DutyCycle,
    /// Short addresses of this router's sleepy children.
    pub sleepy_children: Vec<u16>,
    /// The same children's EUI-64s with their short addresses: frames addressed to a child's
    /// extended address wait for its poll (which comes from its short address) too.
    pub sleepy_children_ext: Vec<([u8; 8], u16)>,
    /// macMaxCSMABackoffs of this device's transmissions.
    pub csma_backoffs: u8,
    pub seed: u64,
}

/// One wake of a sleepy device, in true (medium) time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WakeRecord {
    pub wake_us: u64,
    /// Radio on time of this wake, filled in when the device sleeps again.
    pub awake_us: u64,
    /// The Data Request was ACKed.
    pub poll_acked: bool,
    /// The ACK had Frame Pending.
    pub frame_pending: bool,
    /// Frames received during the wake.
    pub frames_received: u32,
    /// A wake of the duty cycle; `false` for one the upper layer asked for between them (to
    /// poll for an answer it expects).
    pub scheduled: bool,
}

/// MAC-level counters of a device, beside the medium's radio counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStats {
    /// Wakes of the duty cycle.
    pub wakes: u64,
    /// Wakes the upper layer asked for between them (to poll for an answer it expects).
    pub extra_wakes: u64,
    pub polls_acked: u64,
    pub polls_failed: u64,
    pub polls_frame_pending: u64,
    /// Waits for a pending frame that ended without it.
    pub pending_timeouts: u64,
    pub frames_to_upper: u64,
    pub upper_frames_sent: u64,
    pub upper_frames_dropped: u64,
    pub indirect_sent: u64,
    pub indirect_dropped: u64,
    pub wake_log_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sleep {
    Asleep,
    /// Data Request in flight.
    Polling,
    /// Radio on until the time.
    Listening {
        until: u64,
    },
    /// ACK had Frame Pending: radio on until the frame comes or the time passes.
    AwaitPending {
        until: u64,
    },
    /// Kept awake by the upper layer: radio on, next poll at the time.
    FastPoll {
        next_poll: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    Poll,
    Upper,
    Indirect,
}

/// A simulated device's MAC. See the module docs for the call order.
pub struct Device {
    node: NodeId,
    p: DeviceParams,
    upper: Box<dyn Upper>,
    rng: Rng,
    sleep: Sleep,
    /// True time of the next wake (sleepy devices).
    next_wake: u64,
    /// Local-clock µs per true µs is `1 + drift`; we step true time by `local / (1 + drift)`.
    drift: f64,
    seq: u8,
    txq: VecDeque<(TxKind, Psdu)>,
    in_flight: Option<TxKind>,
    /// The upper layer's frame on air, told back to it with the outcome.
    in_flight_upper: Option<Psdu>,
    poll_wanted: bool,
    indirect: HashMap<u16, VecDeque<Psdu>>,
    /// Times of the medium timers still to fire (they cannot be cancelled).
    armed: Vec<u64>,
    wakes: VecDeque<WakeRecord>,
    awake_since: u64,
    /// The upper layer asked for radio silence (a reboot).
    silent: bool,
    stats: DeviceStats,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("node", &self.node).field("name", &self.p.name).finish_non_exhaustive()
    }
}

impl Device {
    pub fn new(node: NodeId, params: DeviceParams) -> Device {
        let drift = match params.duty_cycle {
            DutyCycle::Sleepy { drift_ppm, .. } => drift_ppm * 1e-6,
            DutyCycle::AlwaysOn => 0.0,
        };
        Device {
            node,
            rng: Rng::new(params.seed),
            p: params,
            upper: Box::new(NoUpper),
            sleep: Sleep::Asleep,
            next_wake: 0,
            drift,
            seq: 0,
            txq: VecDeque::new(),
            in_flight: None,
            in_flight_upper: None,
            poll_wanted: false,
            indirect: HashMap::new(),
            armed: Vec::new(),
            wakes: VecDeque::new(),
            awake_since: 0,
            silent: false,
            stats: DeviceStats::default(),
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn params(&self) -> &DeviceParams {
        &self.p
    }

    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// Ground truth: this device's wakes, oldest first.
    pub fn wakes(&self) -> impl Iterator<Item = &WakeRecord> {
        self.wakes.iter()
    }

    pub fn is_sleepy(&self) -> bool {
        matches!(self.p.duty_cycle, DutyCycle::Sleepy { .. })
    }

    /// Replaces the upper layer (before or during a run).
    pub fn set_upper(&mut self, upper: Box<dyn Upper>) {
        self.upper = upper;
    }

    pub fn upper_mut(&mut self) -> &mut dyn Upper {
        &mut *self.upper
    }

    /// The upper layer as its concrete type, if it is a `T`.
    pub fn upper_as<T: 'static>(&self) -> Option<&T> {
        self.upper.as_any()?.downcast_ref()
    }

    pub fn upper_as_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.upper.as_any_mut()?.downcast_mut()
    }

    /// Sets up the node's MAC and radio, and the first wake at a random phase.
    pub fn start(&mut self, m: &mut Medium) {
        if let Some(cfg) = m.config_mut(self.node) {
            cfg.pan_id = self.p.pan_id;
            cfg.short_addr = self.p.short;
            // Frame Pending only for children we hold frames for.
            cfg.src_match.set_enabled(true);
        }
        match self.p.duty_cycle {
            DutyCycle::AlwaysOn => {
                let _ = m.receive(self.node, self.p.channel);
            }
            DutyCycle::Sleepy { poll_period_s, .. } => {
                let _ = m.sleep(self.node);
                let phase_local = self.rng.unit() * poll_period_s * 1e6;
                self.next_wake = m.now() + self.to_true(phase_local);
            }
        }
        self.poll(m);
    }

    /// One medium event of this node (others are ignored).
    pub fn on_event(&mut self, m: &mut Medium, d: &Delivery) {
        if d.node != self.node {
            return;
        }
        let now = d.time_us;
        match d.event {
            NodeEvent::Timer { token } => {
                if let Some(i) = self.armed.iter().position(|&t| t == token) {
                    self.armed.swap_remove(i);
                }
                self.on_timeout(m, now);
            }
            NodeEvent::Received(info) => self.on_received(m, now, &info),
            NodeEvent::TxDone(result) => {
                let kind = self.in_flight.take();
                match kind {
                    Some(TxKind::Poll) => self.on_poll_done(m, now, result.ok().flatten()),
                    Some(TxKind::Upper) => {
                        self.stats.upper_frames_sent += 1;
                        if let Some(psdu) = self.in_flight_upper.take() {
                            self.upper.on_tx_done(now, psdu.as_slice(), TxOutcome::of(&result));
                        }
                    }
                    Some(TxKind::Indirect) => self.stats.indirect_sent += u64::from(result.is_ok()),
                    None => {}
                }
            }
            NodeEvent::EnergyScanDone { .. } => {}
        }
        self.poll(m);
    }

    /// Collects the upper layer's frames, starts the next transmission and arms the timer.
    pub fn poll(&mut self, m: &mut Medium) {
        let now = m.now();
        self.follow_upper_power(m, now);
        // Take only what fits: the upper layer keeps the rest queued.
        while self.txq.len() < TX_QUEUE_LEN {
            let Some(frame) = self.upper.poll_transmit(now) else { break };
            self.enqueue_upper(m, &frame);
        }
        if !self.silent {
            self.start_tx(m);
        }
        self.arm(m);
    }

    /// Radio off while the upper layer reboots; awake while it wants to be.
    fn follow_upper_power(&mut self, m: &mut Medium, now: u64) {
        let silent = self.upper.radio_silent();
        if silent && !self.silent {
            self.silent = true;
            self.poll_wanted = false;
            self.txq.clear();
            let _ = m.sleep(self.node);
            if self.is_sleepy() && self.sleep != Sleep::Asleep {
                self.go_to_sleep(m, now);
            }
            self.sleep = Sleep::Asleep;
        } else if !silent && self.silent {
            self.silent = false;
            match self.p.duty_cycle {
                DutyCycle::AlwaysOn => {
                    let _ = m.receive(self.node, self.p.channel);
                }
                // A booted sleepy node polls its parent first thing.
                DutyCycle::Sleepy { .. } => self.wake(m, now, true),
            }
        }
        if !self.silent && self.is_sleepy() && self.sleep == Sleep::Asleep && self.upper.keep_awake() {
            // Woken by the upper layer between two scheduled wakes: the schedule stays.
            self.wake(m, now, false);
        }
    }

    fn enqueue_upper(&mut self, m: &mut Medium, frame: &[u8]) {
        let Ok(psdu) = Psdu::new(frame) else {
            self.stats.upper_frames_dropped += 1;
            return;
        };
        // A frame for a sleepy child of ours waits for the child's poll.
        let child = match Header::parse(frame).map(|h| h.dst) {
            Ok(Address::Short(s)) => self.p.sleepy_children.contains(&s).then_some(s),
            Ok(Address::Extended(e)) => self.p.sleepy_children_ext.iter().find(|c| c.0 == e).map(|c| c.1),
            _ => None,
        };
        if let Some(dst) = child {
            if self.p.role == Role::Router {
                let q = self.indirect.entry(dst).or_default();
                if q.len() >= INDIRECT_PER_CHILD {
                    self.stats.indirect_dropped += 1;
                    return;
                }
                q.push_back(psdu);
                if let Some(cfg) = m.config_mut(self.node) {
                    let _ = cfg.src_match.add_short(dst);
                }
                return;
            }
        }
        if self.txq.len() >= TX_QUEUE_LEN {
            self.stats.upper_frames_dropped += 1;
            return;
        }
        self.txq.push_back((TxKind::Upper, psdu));
    }

    fn start_tx(&mut self, m: &mut Medium) {
        if self.in_flight.is_some() {
            return;
        }
        let next = if std::mem::take(&mut self.poll_wanted) {
            self.data_request().map(|p| (TxKind::Poll, p))
        } else {
            self.txq.pop_front()
        };
        let Some((kind, psdu)) = next else { return };
        let upper = (kind == TxKind::Upper).then_some(psdu);
        if m.transmit(
            self.node,
            TxRequest { max_csma_backoffs: self.p.csma_backoffs, ..TxRequest::new(psdu, self.p.channel) },
        )
        .is_ok()
        {
            self.in_flight = Some(kind);
            self.in_flight_upper = upper;
        } else if kind == TxKind::Poll {
            // The medium is busy with a transmission we did not start: poll after it.
            self.poll_wanted = true;
        }
    }

    fn data_request(&mut self) -> Option<Psdu> {
        self.seq = self.seq.wrapping_add(1);
        let mut h = Header::data(
            self.seq,
            self.p.pan_id,
            Address::Short(self.p.parent_short),
            Address::Short(self.p.short),
            true,
        );
        h.frame_type = FrameType::Command;
        h.emit_frame(&[CMD_DATA_REQUEST]).ok()
    }

    fn on_timeout(&mut self, m: &mut Medium, now: u64) {
        if let Some(t) = self.upper.poll_timeout() {
            if t <= now {
                self.upper.handle_timeout(now);
            }
        }
        match self.sleep {
            Sleep::Asleep if self.is_sleepy() && !self.silent && self.next_wake <= now => self.wake(m, now, true),
            Sleep::Listening { until } if until <= now => self.go_to_sleep(m, now),
            Sleep::AwaitPending { until } if until <= now => {
                self.stats.pending_timeouts += 1;
                self.go_to_sleep(m, now);
            }
            Sleep::FastPoll { next_poll } if next_poll <= now => {
                if self.upper.keep_awake() {
                    self.sleep = Sleep::Polling;
                    self.poll_wanted = true;
                } else {
                    self.go_to_sleep(m, now);
                }
            }
            _ => {}
        }
    }

    /// Radio on and a poll; a `scheduled` wake also draws the next one of the duty cycle.
    fn wake(&mut self, m: &mut Medium, now: u64, scheduled: bool) {
        let _ = m.receive(self.node, self.p.channel);
        self.awake_since = now;
        if scheduled {
            self.stats.wakes += 1;
        } else {
            self.stats.extra_wakes += 1;
        }
        if self.wakes.len() >= WAKE_LOG_LEN {
            self.wakes.pop_front();
            self.stats.wake_log_dropped += 1;
        }
        self.wakes.push_back(WakeRecord {
            wake_us: now,
            awake_us: 0,
            poll_acked: false,
            frame_pending: false,
            frames_received: 0,
            scheduled,
        });
        self.sleep = Sleep::Polling;
        self.poll_wanted = true;
        // The next wake is one local period after this one's scheduled time, so the schedule
        // does not creep with how long each wake took.
        if let (DutyCycle::Sleepy { poll_period_s, jitter_s, .. }, true) = (self.p.duty_cycle, scheduled) {
            let jitter = (self.rng.unit() * 2.0 - 1.0) * jitter_s;
            let local = ((poll_period_s + jitter) * 1e6).max(1.0);
            self.next_wake += self.to_true(local);
            if self.next_wake <= now {
                self.next_wake = now + 1;
            }
        }
    }

    fn on_poll_done(&mut self, m: &mut Medium, now: u64, ack: Option<RxInfo>) {
        let (listen, pending_timeout) = match self.p.duty_cycle {
            DutyCycle::Sleepy { listen_window_ms, pending_timeout_ms, .. } => {
                ((listen_window_ms * 1e3) as u64, (pending_timeout_ms * 1e3) as u64)
            }
            DutyCycle::AlwaysOn => (0, 0),
        };
        let Some(ack) = ack else {
            self.stats.polls_failed += 1;
            self.go_to_sleep(m, now);
            return;
        };
        let fp = Header::parse(ack.psdu.as_slice()).is_ok_and(|h| h.frame_pending);
        self.stats.polls_acked += 1;
        if let Some(w) = self.wakes.back_mut() {
            w.poll_acked = true;
            w.frame_pending |= fp;
        }
        self.sleep = if fp {
            self.stats.polls_frame_pending += 1;
            Sleep::AwaitPending { until: now + pending_timeout }
        } else {
            Sleep::Listening { until: now + listen }
        };
        if self.sleep == (Sleep::Listening { until: now }) {
            self.go_to_sleep(m, now);
        }
    }

    fn go_to_sleep(&mut self, m: &mut Medium, now: u64) {
        if !self.is_sleepy() {
            return;
        }
        if !self.silent && self.upper.keep_awake() {
            // A transfer is running: stay on and poll again soon instead of sleeping.
            self.sleep = Sleep::FastPoll { next_poll: now + FAST_POLL_US };
            return;
        }
        let _ = m.sleep(self.node);
        self.sleep = Sleep::Asleep;
        if let Some(w) = self.wakes.back_mut() {
            w.awake_us = now.saturating_sub(self.awake_since);
        }
    }

    fn on_received(&mut self, m: &mut Medium, now: u64, info: &RxInfo) {
        let psdu = info.psdu.as_slice();
        let Ok(h) = Header::parse(psdu) else { return };
        // A child's poll that our ACK answered with Frame Pending: its frame goes out now.
        if is_data_request(psdu, &h) {
            if let (true, Address::Short(child)) = (info.acked_with_frame_pending, h.src) {
                self.send_indirect(m, child);
            }
            return;
        }
        if h.frame_type != FrameType::Data {
            return;
        }
        self.stats.frames_to_upper += 1;
        let meta = RxMeta { rssi_dbm: info.rssi_dbm, lqi: info.lqi, timestamp_us: info.timestamp_us };
        self.upper.on_frame(now, psdu, &meta);
        if let Some(w) = self.wakes.back_mut().filter(|_| self.sleep != Sleep::Asleep) {
            w.frames_received += 1;
        }
        if let Sleep::AwaitPending { .. } = self.sleep {
            if h.frame_pending {
                // More is queued for us: poll again.
                self.sleep = Sleep::Polling;
                self.poll_wanted = true;
            } else {
                self.go_to_sleep(m, now);
            }
        }
    }

    fn send_indirect(&mut self, m: &mut Medium, child: u16) {
        let Some(q) = self.indirect.get_mut(&child) else { return };
        let Some(mut psdu) = q.pop_front() else { return };
        let more = !q.is_empty();
        if !more {
            self.indirect.remove(&child);
            if let Some(cfg) = m.config_mut(self.node) {
                let _ = cfg.src_match.remove_short(child);
            }
        }
        // Tell the child whether to poll again (Frame Pending in the data frame itself).
        if more {
            if let Ok(mut h) = Header::parse(psdu.as_slice()) {
                h.frame_pending = true;
                let body = psdu.as_slice();
                let payload = body.get(h.buffer_len()..body.len().saturating_sub(2)).unwrap_or(&[]);
                if h.aux_sec_len == 0 {
                    if let Ok(p) = h.emit_frame(payload) {
                        psdu = p;
                    }
                }
            }
        }
        // Ahead of other traffic: the child is awake only briefly.
        if self.txq.len() >= TX_QUEUE_LEN {
            self.txq.pop_back();
            self.stats.upper_frames_dropped += 1;
        }
        self.txq.push_front((TxKind::Indirect, psdu));
    }

    /// The next time this device must act.
    fn deadline(&self) -> Option<u64> {
        let mac = match self.sleep {
            Sleep::Asleep if self.is_sleepy() && !self.silent => Some(self.next_wake),
            Sleep::Listening { until } | Sleep::AwaitPending { until } => Some(until),
            Sleep::FastPoll { next_poll } => Some(next_poll),
            _ => None,
        };
        [mac, self.upper.poll_timeout()].into_iter().flatten().min()
    }

    /// Keeps one medium timer at or before the deadline (timers cannot be cancelled; late
    /// ones fire harmlessly).
    fn arm(&mut self, m: &mut Medium) {
        let Some(t) = self.deadline() else { return };
        let t = t.max(m.now());
        if self.armed.iter().any(|&a| a <= t) {
            return;
        }
        if m.schedule_timer(self.node, t, t).is_ok() {
            self.armed.push(t);
        }
    }

    /// True µs for `local_us` of this device's clock.
    fn to_true(&self, local_us: f64) -> u64 {
        (local_us / (1.0 + self.drift)).round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_ack_counts_against_the_neighbour() {
        assert_eq!(TxOutcome::of::<()>(&Ok(())), TxOutcome::Acked);
        assert_eq!(TxOutcome::of::<()>(&Err(TxError::NoAck)), TxOutcome::NoAck);
        // Dropped at channel access or aborted: the neighbour never saw the frame.
        assert_eq!(TxOutcome::of::<()>(&Err(TxError::ChannelAccessFailure)), TxOutcome::NotSent);
        assert_eq!(TxOutcome::of::<()>(&Err(TxError::Abort)), TxOutcome::NotSent);
    }
}
