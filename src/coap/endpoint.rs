//! The sans-IO CoAP endpoint: RFC 7252 message layer (reliability, deduplication, token
//! matching, NSTART), RFC 7959 block-wise transfers and RFC 7641 Observe, client and server.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

use super::block::{size_of_szx, BlockOpt, MAX_SZX};
use super::error::{RequestError, RespondError, StartError};
use super::metrics::Metrics;
use super::msg::{split_path, Request, Response};
use super::resource::{Outcome, Router};
use crate::seeded::SplitMix64;

/// What identifies a peer: a socket address over kernel UDP, a (link, IPv6, port) over 6LoWPAN.
/// `'static` so resources can learn the requesting peer through
/// [`Resource::handle_from`](super::Resource::handle_from).
pub trait PeerKey: Copy + Eq + Hash + Debug + Send + 'static {}
impl<T: Copy + Eq + Hash + Debug + Send + 'static> PeerKey for T {}

/// Transmission parameters and bounds. Defaults are RFC 7252 §4.8 and RIOT-friendly sizes.
#[derive(Debug, Clone)]
pub struct Config {
    /// The first retransmission timeout to a peer whose round trips are not known yet, and the
    /// longest one learned from them.
    pub ack_timeout: Duration,
    /// The shortest first retransmission timeout learned from a peer's round trips (RFC 6298's
    /// minimum RTO). Equal to `ack_timeout`: RFC 7252's fixed timeout for every peer.
    pub min_ack_timeout: Duration,
    pub ack_random_factor: f64,
    pub max_retransmit: u32,
    /// How long a message ID is remembered for deduplication (EXCHANGE_LIFETIME, 247 s).
    pub exchange_lifetime: Duration,
    /// How long a client waits for a separate response after an empty ACK, or for the answer to
    /// a NON request.
    pub response_timeout: Duration,
    /// Block size a server uses when the client gave no Block2 and the body does not fit.
    pub default_szx: u8,
    /// Largest Block1 upload reassembled (4.13 beyond it).
    pub max_upload: usize,
    pub max_reassemblies: usize,
    pub dedup_capacity: usize,
    /// Client requests in flight or queued, all peers.
    pub max_requests: usize,
    /// Requests queued behind the one in flight to a peer (NSTART = 1).
    pub max_queue_per_peer: usize,
    pub max_observers: usize,
    /// Every n-th notification to an observer is confirmable (RFC 7641 §4.5: check liveness).
    pub observe_con_every: u32,
    pub max_deferred: usize,
    pub max_transmit_queue: usize,
    pub max_events: usize,
    /// A block-wise fetch re-requests a block this many times after an exchange times out.
    pub block_retries: u32,
    /// Seed of the endpoint's own RNG (retransmission jitter, message IDs, tokens).
    pub rng_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(2),
            min_ack_timeout: Duration::from_secs(1),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            exchange_lifetime: Duration::from_secs(247),
            response_timeout: Duration::from_secs(93),
            default_szx: 2,
            max_upload: 64 * 1024,
            max_reassemblies: 16,
            dedup_capacity: 4096,
            max_requests: 256,
            max_queue_per_peer: 32,
            max_observers: 64,
            observe_con_every: 8,
            max_deferred: 64,
            max_transmit_queue: 1024,
            max_events: 1024,
            block_retries: 4,
            rng_seed: 0x5eed_f022,
        }
    }
}

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transmit<P> {
    pub peer: P,
    pub bytes: Vec<u8>,
}

/// A client request started with [`Endpoint::start_request`] or [`Endpoint::start_fetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A server request whose resource deferred its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeferredId(pub u64);

/// Options of a block-wise fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Block size exponent to ask for (2 = 64 bytes, 6 = 1024 bytes).
    pub szx: u8,
    /// Fail with [`RequestError::TooLarge`] beyond this many body bytes.
    pub max_size: usize,
}

/// What the endpoint tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<P> {
    /// A request completed. For a fetch the payload is the whole body; an Observe request
    /// raises this once per accepted notification until it is cancelled or the server stops.
    Response {
        id: RequestId,
        peer: P,
        response: Response,
    },
    Failed {
        id: RequestId,
        peer: P,
        error: RequestError,
    },
    /// A resource deferred: answer with [`Endpoint::respond`].
    Deferred {
        id: DeferredId,
        peer: P,
        request: Request,
    },
}

/// The endpoint's timers; the table keeps the earliest deadline of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A CON of ours waits for its ACK.
    Retransmit,
    /// A client request waits for a separate or NON response.
    ResponseDeadline,
    /// A remembered message ID expires (EXCHANGE_LIFETIME).
    DedupExpiry,
    /// A Block1 reassembly or a deferred request expires.
    StateExpiry,
}

impl Timer {
    const ALL: [Timer; 4] = [Timer::Retransmit, Timer::ResponseDeadline, Timer::DedupExpiry, Timer::StateExpiry];
}

#[derive(Debug, Default, Clone)]
struct TimerTable([Option<Instant>; 4]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.0[t as usize] = at;
    }
    fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    fn expired(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| at <= now)
    }
}

type Token = Vec<u8>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose<P> {
    Request(RequestId),
    Notification((P, Token)),
    Separate,
}

#[derive(Debug)]
struct Pending<P> {
    bytes: Vec<u8>,
    retransmits: u32,
    timeout: Duration,
    next: Instant,
    purpose: Purpose<P>,
}

#[derive(Debug)]
struct Dedup {
    expires: Instant,
    /// What we answered (piggybacked response, empty ACK or RST), replayed on a duplicate.
    reply: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExState {
    Queued,
    AwaitingAck { mid: u16 },
    AwaitingResponse { mid: u16, deadline: Instant },
    Observing,
}

#[derive(Debug)]
struct Fetch {
    body: Vec<u8>,
    /// ETag of block 0: a different one later means the representation changed under us.
    etag: Option<Vec<u8>>,
    szx: u8,
    max: usize,
    retries_left: u32,
}

#[derive(Debug)]
struct Exchange<P> {
    peer: P,
    token: Token,
    request: Request,
    state: ExState,
    fetch: Option<Fetch>,
    observe: bool,
    last_observe: Option<(u32, Instant)>,
    /// When the current message of the exchange was first sent.
    sent_at: Option<Instant>,
    /// Whether it had to be retransmitted.
    retransmitted: bool,
}

/// A request message we stopped retransmitting: its answer may still come, from a peer that
/// sleeps longer than our retransmissions last (a router held the first copy for it).
#[derive(Debug, Clone)]
struct GivenUp<P> {
    peer: P,
    mid: u16,
    token: Token,
    sent_at: Instant,
}

/// RFC 6298's smoothed round-trip time and its variation, of one peer.
#[derive(Debug, Clone, Copy)]
struct RoundTrip {
    srtt: Duration,
    rttvar: Duration,
    /// When the last sample came (the least recent entry makes room when the table is full).
    at: Instant,
}

impl RoundTrip {
    fn first(sample: Duration, at: Instant) -> Self {
        RoundTrip { srtt: sample, rttvar: sample / 2, at }
    }

    fn update(&mut self, sample: Duration, at: Instant) {
        let err = self.srtt.abs_diff(sample);
        self.rttvar = (self.rttvar * 3 + err) / 4;
        self.srtt = (self.srtt * 7 + sample) / 8;
        self.at = at;
    }

    /// SRTT + 4 × RTTVAR.
    fn timeout(&self) -> Duration {
        self.srtt.saturating_add(self.rttvar.saturating_mul(4))
    }
}

/// Given-up request messages remembered for late answers.
const GIVEN_UP_CAPACITY: usize = 64;
/// A late answer is learned from only within this (a sleepy child's longest hold).
const LATE_ANSWER_HORIZON: Duration = Duration::from_secs(3600);

#[derive(Debug)]
struct Observer {
    path: String,
    szx: Option<u8>,
    sent: u32,
    pending_mid: Option<u16>,
    last_mid: Option<u16>,
}

#[derive(Debug)]
struct Reassembly {
    buf: Vec<u8>,
    expires: Instant,
}

#[derive(Debug)]
struct Deferred<P> {
    peer: P,
    token: Token,
    confirmable: bool,
    block2: Option<BlockOpt>,
    expires: Instant,
}

/// A CoAP endpoint (client and server) over any datagram transport, without I/O.
///
/// Call order, from one task:
/// 1. feed every received datagram to [`handle_datagram`](Self::handle_datagram);
/// 2. start client work with [`start_request`](Self::start_request) /
///    [`start_fetch`](Self::start_fetch), answer deferred requests with
///    [`respond`](Self::respond), announce resource changes with [`notify`](Self::notify);
/// 3. drain [`poll_transmit`](Self::poll_transmit) until `None` and send each datagram;
/// 4. drain [`poll_event`](Self::poll_event);
/// 5. sleep until [`poll_timeout`](Self::poll_timeout) (or the next datagram), then call
///    [`handle_timeout`](Self::handle_timeout) (calling it early is harmless) and go to 3.
///
/// `now` must not go backwards. Every table is bounded by [`Config`].
pub struct Endpoint<P: PeerKey> {
    cfg: Config,
    rng: SplitMix64,
    router: Router,
    next_mid: u16,
    next_token: u32,
    next_id: u64,
    out: VecDeque<Transmit<P>>,
    events: VecDeque<Event<P>>,
    pending: HashMap<(P, u16), Pending<P>>,
    dedup: HashMap<(P, u16), Dedup>,
    dedup_order: VecDeque<(Instant, P, u16)>,
    requests: HashMap<RequestId, Exchange<P>>,
    by_token: HashMap<(P, Token), RequestId>,
    active: HashMap<P, RequestId>,
    queues: HashMap<P, VecDeque<RequestId>>,
    observers: HashMap<(P, Token), Observer>,
    observe_seq: u32,
    reassembly: HashMap<(P, String), Reassembly>,
    deferred: HashMap<DeferredId, Deferred<P>>,
    timers: TimerTable,
    metrics: Metrics,
    /// ACK timeouts of peers that answer late (sleepy devices).
    peer_ack_timeouts: HashMap<P, Duration>,
    /// How long each peer that answered late took, from the first copy of a request.
    answer_latency: HashMap<P, Duration>,
    /// Round trips of peers that acknowledged the first copy of a request.
    round_trips: HashMap<P, RoundTrip>,
    given_up: VecDeque<GivenUp<P>>,
    /// Until then, requests no resource takes go unanswered (see [`Endpoint::hold_unknown_until`]).
    hold_unknown_until: Option<Instant>,
}

/// Whether a response code is 2.xx.
pub fn is_success(code: ResponseType) -> bool {
    u8::from(MessageClass::Response(code)) >> 5 == 2
}

impl<P: PeerKey> Endpoint<P> {
    pub fn new(cfg: Config, router: Router) -> Self {
        let mut rng = SplitMix64::new(cfg.rng_seed);
        let next_mid = rng.next_u64() as u16;
        let next_token = rng.next_u64() as u32;
        Self {
            cfg,
            rng,
            router,
            next_mid,
            next_token,
            next_id: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            pending: HashMap::new(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            requests: HashMap::new(),
            by_token: HashMap::new(),
            active: HashMap::new(),
            queues: HashMap::new(),
            observers: HashMap::new(),
            observe_seq: 1,
            reassembly: HashMap::new(),
            deferred: HashMap::new(),
            timers: TimerTable::default(),
            metrics: Metrics::default(),
            peer_ack_timeouts: HashMap::new(),
            answer_latency: HashMap::new(),
            round_trips: HashMap::new(),
            given_up: VecDeque::new(),
            hold_unknown_until: None,
        }
    }

    /// How long `peer` took to answer a request it answered late: from the first copy of the
    /// request to an answer that came after we gave up on it. A device behind a router that
    /// holds frames until it polls answers at its next wake, so this is its wake period as
    /// ferry can see it; requests to it then wait this long before the first retransmission.
    /// `None` for peers that answer promptly.
    pub fn answer_latency(&self, peer: &P) -> Option<Duration> {
        self.answer_latency.get(peer).copied()
    }

    /// Learns from an answer `latency` after the first copy of a request: `late` for one we
    /// had given up on (the wait grows to it), else one to the first copy (the wait halves,
    /// down to `latency`).
    fn learn_latency(&mut self, peer: P, latency: Duration, late: bool) {
        if late && latency > self.cfg.ack_timeout {
            let known = self.answer_latency.get(&peer).copied().unwrap_or_default();
            if self.answer_latency.len() < self.cfg.max_requests || self.answer_latency.contains_key(&peer) {
                self.answer_latency.insert(peer, known.max(latency));
            }
        } else if let Some(known) = self.answer_latency.get_mut(&peer) {
            // An answer to the first copy: the peer is awake now (or woke sooner); forget the
            // wait gradually, never below what this answer took.
            *known = (*known / 2).max(latency);
            if *known <= self.cfg.ack_timeout {
                self.answer_latency.remove(&peer);
            }
        }
    }

    /// The first retransmission timeout learned from `peer`'s round trips: RFC 6298's
    /// SRTT + 4 × RTTVAR, within `min_ack_timeout..=ack_timeout`. An always-on neighbour
    /// answers in tens of milliseconds, so a request lost on a busy channel is sent again after
    /// 1-1.5 s instead of 2-3 s; a peer whose answers slow down gets its longer wait back.
    /// `None` until the peer acknowledged the first copy of a request.
    pub fn learned_ack_timeout(&self, peer: &P) -> Option<Duration> {
        let floor = self.cfg.min_ack_timeout.min(self.cfg.ack_timeout);
        self.round_trips.get(peer).map(|rt| rt.timeout().clamp(floor, self.cfg.ack_timeout))
    }

    /// Learns a round trip from the acknowledgement of request `id`'s current message, unless
    /// that was retransmitted (Karn: the ACK may answer either copy).
    fn learn_round_trip(&mut self, now: Instant, id: RequestId) {
        let Some(ex) = self.requests.get(&id) else { return };
        let (peer, Some(sent)) = (ex.peer, ex.sent_at.filter(|_| !ex.retransmitted)) else { return };
        let sample = now.saturating_duration_since(sent);
        if let Some(rt) = self.round_trips.get_mut(&peer) {
            rt.update(sample, now);
            return;
        }
        if self.round_trips.len() >= self.cfg.max_requests {
            let stalest = self.round_trips.iter().min_by_key(|(_, rt)| rt.at).map(|(p, _)| *p);
            if let Some(stalest) = stalest {
                self.round_trips.remove(&stalest);
            }
        }
        self.round_trips.insert(peer, RoundTrip::first(sample, now));
    }

    /// The ACK timeout of requests to `peer`, instead of `ack_timeout` (`None`: back to it).
    /// A peer that sleeps answers only after its next wake, so its requests wait at least a
    /// wake period before the first retransmission; the RFC 7252 backoff doubles from there.
    /// Kept for as many peers as requests may be in flight.
    pub fn set_peer_ack_timeout(&mut self, peer: P, timeout: Option<Duration>) {
        match timeout {
            Some(t)
                if self.peer_ack_timeouts.len() < self.cfg.max_requests
                    || self.peer_ack_timeouts.contains_key(&peer) =>
            {
                self.peer_ack_timeouts.insert(peer, t);
            }
            Some(_) => {}
            None => {
                self.peer_ack_timeouts.remove(&peer);
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Until `deadline` (or [`answer_unknown`](Self::answer_unknown)), a request that no
    /// resource takes gets no answer and is not remembered, so the client's retransmission is
    /// served afresh. For a server whose resources are still being added: a restarted ferryd
    /// must not answer 4.04 to a device fetching an update it is about to serve again, since
    /// the device gives up on a 4.04 but retransmits into silence.
    pub fn hold_unknown_until(&mut self, deadline: Instant) {
        self.hold_unknown_until = Some(deadline);
    }

    /// Ends [`hold_unknown_until`](Self::hold_unknown_until): unknown paths get 4.04 again.
    pub fn answer_unknown(&mut self) {
        self.hold_unknown_until = None;
    }

    /// Whether requests no resource takes are held unanswered at `now`.
    pub fn holds_unknown(&self, now: Instant) -> bool {
        self.hold_unknown_until.is_some_and(|deadline| now < deadline)
    }

    pub fn router(&self) -> &Router {
        &self.router
    }
    /// Change resources; call [`notify`](Self::notify) if observers should hear of it.
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub fn observer_count(&self) -> usize {
        self.observers.len()
    }

    /// Replaces a static resource's body and notifies its observers; false if no such resource.
    pub fn set_static(&mut self, now: Instant, path: &str, body: impl Into<Bytes>) -> bool {
        let ok = self.router.set_static(path, body);
        if ok {
            self.notify(now, path);
        }
        ok
    }

    // ---------------------------------------------------------------- I/O interface

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit<P>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event<P>> {
        self.events.pop_front()
    }

    /// The earliest timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.expired(Timer::Retransmit, now) {
            self.retransmit_due(now);
        }
        if self.timers.expired(Timer::ResponseDeadline, now) {
            let due: Vec<RequestId> = self
                .requests
                .iter()
                .filter(|(_, ex)| matches!(ex.state, ExState::AwaitingResponse { deadline, .. } if deadline <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                self.request_timed_out(now, id, RequestError::ResponseTimeout);
            }
        }
        if self.timers.expired(Timer::DedupExpiry, now) {
            while let Some((at, peer, mid)) = self.dedup_order.front().copied() {
                if at > now {
                    break;
                }
                self.dedup_order.pop_front();
                if self.dedup.get(&(peer, mid)).is_some_and(|d| d.expires == at) {
                    self.dedup.remove(&(peer, mid));
                }
            }
        }
        if self.timers.expired(Timer::StateExpiry, now) {
            self.reassembly.retain(|_, r| r.expires > now);
            self.deferred.retain(|_, d| d.expires > now);
        }
        self.update_timers();
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, peer: P, bytes: &[u8]) {
        let pkt = match Packet::from_bytes(bytes) {
            Ok(p) if p.header.get_version() == 1 => p,
            Ok(_) => {
                // Unknown versions are silently ignored (RFC 7252 §3).
                self.metrics.rx_malformed += 1;
                return;
            }
            Err(_) => {
                self.metrics.rx_malformed += 1;
                // A malformed CON is rejected with a Reset carrying its message ID (§4.2).
                if bytes.len() >= 4 && bytes[0] >> 6 == 1 && (bytes[0] >> 4) & 3 == 0 {
                    let mid = u16::from_be_bytes([bytes[2], bytes[3]]);
                    self.send_empty(peer, MessageType::Reset, mid);
                    self.update_timers();
                }
                return;
            }
        };
        let t = pkt.header.get_type();
        self.metrics.rx.count(t, u8::from(pkt.header.code), bytes.len());
        let mid = pkt.header.message_id;
        match (t, pkt.header.code) {
            (MessageType::Reset, _) => self.on_reset(now, peer, mid),
            (MessageType::Acknowledgement, MessageClass::Empty) => self.on_ack(now, peer, mid),
            // CoAP ping: answer with a Reset.
            (MessageType::Confirmable, MessageClass::Empty) => {
                self.send_empty(peer, MessageType::Reset, mid);
            }
            (MessageType::NonConfirmable, MessageClass::Empty) => {}
            (MessageType::Confirmable | MessageType::NonConfirmable, MessageClass::Request(_)) => {
                self.on_request(now, peer, &pkt)
            }
            (_, MessageClass::Response(_)) => self.on_response(now, peer, &pkt),
            (MessageType::Confirmable, _) => {
                self.send_empty(peer, MessageType::Reset, mid);
            }
            _ => {}
        }
        self.update_timers();
    }

    // ---------------------------------------------------------------- client API

    /// Starts a request; the outcome arrives as an [`Event`]. Requests to a peer that already
    /// has one in flight wait in its queue (NSTART = 1).
    pub fn start_request(&mut self, now: Instant, peer: P, request: Request) -> Result<RequestId, StartError> {
        self.start(now, peer, request, None)
    }

    /// Fetches a whole resource block-wise (Block2 from block 0 with `opts.szx`, adopting a
    /// smaller size if the server picks one). The event carries the whole body.
    pub fn start_fetch(
        &mut self,
        now: Instant,
        peer: P,
        mut request: Request,
        opts: FetchOptions,
    ) -> Result<RequestId, StartError> {
        let szx = opts.szx.min(MAX_SZX);
        request.block2 = Some(BlockOpt { num: 0, more: false, szx });
        let fetch =
            Fetch { body: Vec::new(), etag: None, szx, max: opts.max_size, retries_left: self.cfg.block_retries };
        self.start(now, peer, request, Some(fetch))
    }

    /// Forgets a request (an Observe registration is then cancelled by the Reset we send to its
    /// next notification). True if it existed.
    pub fn cancel(&mut self, now: Instant, id: RequestId) -> bool {
        let removed = self.remove_request(id);
        if let Some(ex) = &removed {
            // Hand its NSTART slot on, or the peer's queue would stall.
            self.release(now, ex.peer, id);
        }
        self.update_timers();
        removed.is_some()
    }

    fn start(
        &mut self,
        now: Instant,
        peer: P,
        request: Request,
        fetch: Option<Fetch>,
    ) -> Result<RequestId, StartError> {
        if self.requests.len() >= self.cfg.max_requests {
            return Err(StartError::TooManyRequests(self.cfg.max_requests));
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let observe = request.observe == Some(0);
        let ex = Exchange {
            peer,
            token: Vec::new(),
            request,
            state: ExState::Queued,
            fetch,
            observe,
            last_observe: None,
            sent_at: None,
            retransmitted: false,
        };
        if self.active.contains_key(&peer) {
            let q = self.queues.entry(peer).or_default();
            if q.len() >= self.cfg.max_queue_per_peer {
                return Err(StartError::PeerQueueFull(self.cfg.max_queue_per_peer));
            }
            q.push_back(id);
            self.requests.insert(id, ex);
        } else {
            self.requests.insert(id, ex);
            self.active.insert(peer, id);
            self.transmit_request(now, id);
        }
        self.update_timers();
        Ok(id)
    }

    /// Sends the request of `id` as a new exchange (fresh message ID and token).
    fn transmit_request(&mut self, now: Instant, id: RequestId) {
        let token = self.fresh_token();
        let mid = self.fresh_mid();
        let Some(peer) = self.requests.get(&id).map(|ex| ex.peer) else {
            return;
        };
        let base = [self.peer_ack_timeouts.get(&peer), self.answer_latency.get(&peer)].into_iter().flatten().max();
        let base = base.copied().or_else(|| self.learned_ack_timeout(&peer));
        let timeout = match base {
            Some(base) => base.mul_f64(1.0 + (self.cfg.ack_random_factor - 1.0).max(0.0) * self.rng.next_f64()),
            None => self.initial_timeout(),
        };
        let deadline = now + self.cfg.response_timeout.max(timeout);
        let Some(ex) = self.requests.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut ex.token, token.clone());
        ex.sent_at = Some(now);
        ex.retransmitted = false;
        let con = ex.request.confirmable;
        ex.state = if con { ExState::AwaitingAck { mid } } else { ExState::AwaitingResponse { mid, deadline } };
        let mut pkt = Packet::new();
        pkt.header.set_version(1);
        pkt.header.set_type(if con { MessageType::Confirmable } else { MessageType::NonConfirmable });
        pkt.header.message_id = mid;
        pkt.set_token(token.clone());
        ex.request.write_into(&mut pkt);
        if !old.is_empty() {
            self.by_token.remove(&(peer, old));
        }
        self.by_token.insert((peer, token), id);
        match self.emit(peer, &pkt) {
            Ok(bytes) => {
                if con {
                    self.pending.insert(
                        (peer, mid),
                        Pending { bytes, retransmits: 0, timeout, next: now + timeout, purpose: Purpose::Request(id) },
                    );
                }
            }
            Err(e) => self.finish(now, id, Err(RequestError::Encode(e))),
        }
    }

    /// Removes a request and its bookkeeping; frees its NSTART slot and starts the next queued.
    fn remove_request(&mut self, id: RequestId) -> Option<Exchange<P>> {
        let ex = self.requests.remove(&id)?;
        self.by_token.remove(&(ex.peer, ex.token.clone()));
        if let ExState::AwaitingAck { mid } = ex.state {
            self.pending.remove(&(ex.peer, mid));
        }
        if let Some(q) = self.queues.get_mut(&ex.peer) {
            q.retain(|q| *q != id);
        }
        Some(ex)
    }

    /// Gives the peer's NSTART slot to its next queued request, if `id` held it.
    fn release(&mut self, now: Instant, peer: P, id: RequestId) {
        if self.active.get(&peer) != Some(&id) {
            return;
        }
        self.active.remove(&peer);
        let next = self.queues.get_mut(&peer).and_then(VecDeque::pop_front);
        if self.queues.get(&peer).is_some_and(VecDeque::is_empty) {
            self.queues.remove(&peer);
        }
        if let Some(next) = next {
            self.active.insert(peer, next);
            self.transmit_request(now, next);
        }
    }

    /// Completes a request with a response or an error event.
    fn finish(&mut self, now: Instant, id: RequestId, result: Result<Response, RequestError>) {
        let Some(ex) = self.remove_request(id) else {
            return;
        };
        if ex.fetch.is_some() {
            match &result {
                Ok(r) if is_success(r.code) => self.metrics.fetches_completed += 1,
                _ => self.metrics.fetches_failed += 1,
            }
        }
        let peer = ex.peer;
        self.push_event(match result {
            Ok(response) => Event::Response { id, peer, response },
            Err(error) => Event::Failed { id, peer, error },
        });
        self.release(now, peer, id);
    }

    fn request_timed_out(&mut self, now: Instant, id: RequestId, error: RequestError) {
        let retry = self.requests.get_mut(&id).and_then(|ex| ex.fetch.as_mut()).is_some_and(|f| {
            let r = f.retries_left > 0;
            f.retries_left = f.retries_left.saturating_sub(1);
            r
        });
        if retry {
            self.transmit_request(now, id);
        } else {
            self.finish(now, id, Err(error));
        }
    }

    // ---------------------------------------------------------------- server API

    /// Sends the response to a deferred request as a separate response (RFC 7252 §5.2.2).
    pub fn respond(&mut self, now: Instant, id: DeferredId, response: Response) -> Result<(), RespondError> {
        let d = self.deferred.remove(&id).ok_or(RespondError::Unknown)?;
        let (resp, body) = self.slice_block2(response, d.block2);
        let mid = self.fresh_mid();
        let mut pkt = Packet::new();
        pkt.header.set_version(1);
        pkt.header.set_type(if d.confirmable { MessageType::Confirmable } else { MessageType::NonConfirmable });
        pkt.header.message_id = mid;
        pkt.set_token(d.token);
        resp.write_into(&mut pkt, &body);
        if let Ok(bytes) = self.emit(d.peer, &pkt) {
            if d.confirmable {
                let timeout = self.initial_timeout();
                self.pending.insert(
                    (d.peer, mid),
                    Pending { bytes, retransmits: 0, timeout, next: now + timeout, purpose: Purpose::Separate },
                );
            }
        }
        self.update_timers();
        Ok(())
    }

    /// Sends a notification to every observer of `path` (RFC 7641 §4.2); returns how many.
    pub fn notify(&mut self, now: Instant, path: &str) -> usize {
        let path = split_path(path).join("/");
        let keys: Vec<(P, Token)> =
            self.observers.iter().filter(|(_, o)| o.path == path).map(|(k, _)| k.clone()).collect();
        for key in &keys {
            self.send_notification(now, key);
        }
        self.update_timers();
        keys.len()
    }

    fn send_notification(&mut self, now: Instant, key: &(P, Token)) {
        let Some(obs) = self.observers.get(key) else {
            return;
        };
        let mut req = Request::get(&obs.path);
        req.block2 = obs.szx.map(|szx| BlockOpt { num: 0, more: false, szx });
        let resp = match self.router.handle(&req) {
            Outcome::Respond(r) => r,
            // A resource that defers cannot be observed synchronously; skip this change.
            Outcome::Defer => return,
        };
        let still = is_success(resp.code);
        let (mut resp, body) = self.slice_block2(resp, req.block2);
        if still {
            resp.observe = Some(self.next_observe());
        }
        let mid = self.fresh_mid();
        let fresh_timeout = self.initial_timeout();
        let every = self.cfg.observe_con_every.max(1);
        let Some(obs) = self.observers.get_mut(key) else {
            return;
        };
        obs.sent = obs.sent.wrapping_add(1);
        // RFC 7641 §4.5.2: a newer notification replaces one still being retransmitted and
        // keeps its retransmission state.
        let carried = obs.pending_mid.take().and_then(|m| self.pending.remove(&(key.0, m)));
        let con = !still || carried.is_some() || obs.sent % every == 0;
        obs.last_mid = Some(mid);
        if con {
            obs.pending_mid = Some(mid);
        }
        let mut pkt = Packet::new();
        pkt.header.set_version(1);
        pkt.header.set_type(if con { MessageType::Confirmable } else { MessageType::NonConfirmable });
        pkt.header.message_id = mid;
        pkt.set_token(key.1.clone());
        resp.write_into(&mut pkt, &body);
        self.metrics.notifications_sent += 1;
        if let Ok(bytes) = self.emit(key.0, &pkt) {
            if con {
                let (retransmits, timeout, next) = match carried {
                    Some(p) => (p.retransmits, p.timeout, p.next),
                    None => (0, fresh_timeout, now + fresh_timeout),
                };
                self.pending.insert(
                    (key.0, mid),
                    Pending { bytes, retransmits, timeout, next, purpose: Purpose::Notification(key.clone()) },
                );
            }
        }
        if !still {
            // An error notification ends the observation (RFC 7641 §4.2).
            self.observers.remove(key);
        }
    }

    // ---------------------------------------------------------------- message layer

    fn on_ack(&mut self, now: Instant, peer: P, mid: u16) {
        let Some(p) = self.pending.remove(&(peer, mid)) else {
            return;
        };
        match p.purpose {
            Purpose::Request(id) => {
                self.learn_round_trip(now, id);
                let deadline = now + self.cfg.response_timeout;
                if let Some(ex) = self.requests.get_mut(&id) {
                    ex.state = ExState::AwaitingResponse { mid, deadline };
                }
            }
            Purpose::Notification(key) => {
                if let Some(o) = self.observers.get_mut(&key) {
                    o.pending_mid = None;
                }
            }
            Purpose::Separate => {}
        }
    }

    fn on_reset(&mut self, now: Instant, peer: P, mid: u16) {
        if let Some(p) = self.pending.remove(&(peer, mid)) {
            match p.purpose {
                Purpose::Request(id) => self.finish(now, id, Err(RequestError::Reset)),
                Purpose::Notification(key) => {
                    self.observers.remove(&key);
                }
                Purpose::Separate => {}
            }
            return;
        }
        // A Reset to a NON: a NON request of ours or a NON notification.
        let req = self
            .requests
            .iter()
            .find(|(_, ex)| ex.peer == peer && matches!(ex.state, ExState::AwaitingResponse { mid: m, .. } if m == mid))
            .map(|(id, _)| *id);
        if let Some(id) = req {
            self.finish(now, id, Err(RequestError::Reset));
            return;
        }
        self.observers.retain(|(p, _), o| !(*p == peer && o.last_mid == Some(mid)));
    }

    fn on_request(&mut self, now: Instant, peer: P, pkt: &Packet) {
        let mid = pkt.header.message_id;
        if let Some(d) = self.dedup.get(&(peer, mid)) {
            // Duplicate: replay what we answered (§4.5); nothing if we answered nothing yet.
            self.metrics.rx_duplicates += 1;
            if let Some(bytes) = d.reply.clone() {
                self.push(peer, bytes);
            }
            return;
        }
        let con = pkt.header.get_type() == MessageType::Confirmable;
        let token = pkt.get_token().to_vec();
        let served = match check_options(pkt) {
            Some(resp) => Served::Respond(resp, None),
            None => match Request::from_packet(pkt) {
                Ok(req) => self.serve(now, peer, &token, req),
                Err(e) => {
                    let mut r = Response::new(ResponseType::BadRequest);
                    r.payload = Bytes::from(e.to_string());
                    Served::Respond(r, None)
                }
            },
        };
        let reply = match served {
            Served::Respond(resp, block2) => {
                let (resp, body) = self.slice_block2(resp, block2);
                let mut out = Packet::new();
                out.header.set_version(1);
                if con {
                    // Piggybacked on the ACK, same message ID.
                    out.header.set_type(MessageType::Acknowledgement);
                    out.header.message_id = mid;
                } else {
                    out.header.set_type(MessageType::NonConfirmable);
                    out.header.message_id = self.fresh_mid();
                }
                out.set_token(token);
                resp.write_into(&mut out, &body);
                // Encoded once: these bytes are sent and kept for a duplicate.
                match out.to_bytes() {
                    Ok(bytes) => {
                        self.push(peer, bytes.clone());
                        Some(bytes)
                    }
                    Err(_) => {
                        // Too large to encode (an oversized error body, or options): say so
                        // rather than leave the client retransmitting into silence.
                        out.clear_all_options();
                        out.header.code = MessageClass::Response(ResponseType::InternalServerError);
                        out.payload.clear();
                        self.emit(peer, &out).ok()
                    }
                }
            }
            Served::Deferred if con => Some(self.send_empty(peer, MessageType::Acknowledgement, mid)),
            Served::Deferred => None,
            Served::Held => {
                self.metrics.rx_held += 1;
                return;
            }
        };
        self.remember(now, peer, mid, reply);
    }

    /// Serves a decoded request: Block1 reassembly, Observe bookkeeping, dispatch.
    fn serve(&mut self, now: Instant, peer: P, token: &[u8], mut req: Request) -> Served {
        if self.holds_unknown(now) && !self.router.takes(&req) {
            return Served::Held;
        }
        if let Some(b1) = req.block1 {
            if let Some(resp) = self.reassemble(now, peer, &mut req, b1) {
                return Served::Respond(resp, None);
            }
        }
        let path = req.path_string();
        let key = (peer, token.to_vec());
        let register =
            req.method == RequestType::Get && req.observe == Some(0) && req.block2.is_none_or(|b| b.num == 0);
        if req.method == RequestType::Get && req.observe == Some(1) {
            self.observers.remove(&key);
        }
        match self.router.handle_from(&peer, &req) {
            Outcome::Defer => {
                if self.deferred.len() >= self.cfg.max_deferred {
                    return Served::Respond(Response::new(ResponseType::ServiceUnavailable), None);
                }
                let id = DeferredId(self.next_id);
                self.next_id += 1;
                self.deferred.insert(
                    id,
                    Deferred {
                        peer,
                        token: token.to_vec(),
                        confirmable: req.confirmable,
                        block2: req.block2,
                        expires: now + self.cfg.exchange_lifetime,
                    },
                );
                self.push_event(Event::Deferred { id, peer, request: req });
                Served::Deferred
            }
            Outcome::Respond(mut resp) => {
                if let Some(b1) = req.block1 {
                    resp.block1 = Some(BlockOpt { more: false, ..b1 });
                }
                if register && is_success(resp.code) && self.router.observable(&path) {
                    if self.observers.len() < self.cfg.max_observers || self.observers.contains_key(&key) {
                        let szx = req.block2.map(|b| b.szx);
                        self.observers.insert(key, Observer { path, szx, sent: 0, pending_mid: None, last_mid: None });
                        resp.observe = Some(self.next_observe());
                    }
                } else if register {
                    // Not observable or failed: answer without Observe, the client then knows.
                    self.observers.remove(&key);
                }
                Served::Respond(resp, req.block2)
            }
        }
    }

    /// Block1 (RFC 7959 §2.5): returns a response to send now, or None when `req.payload` now
    /// holds the whole upload.
    fn reassemble(&mut self, now: Instant, peer: P, req: &mut Request, b1: BlockOpt) -> Option<Response> {
        let key = (peer, req.path_string());
        let max = self.cfg.max_upload;
        let too_large = |max: usize| {
            let mut r = Response::new(ResponseType::RequestEntityTooLarge);
            r.size1 = u32::try_from(max).ok();
            r
        };
        if req.size1.is_some_and(|s| s as usize > max) || b1.offset().saturating_add(req.payload.len()) > max {
            self.reassembly.remove(&key);
            return Some(too_large(max));
        }
        if b1.num == 0 {
            if !self.reassembly.contains_key(&key) && self.reassembly.len() >= self.cfg.max_reassemblies {
                return Some(Response::new(ResponseType::ServiceUnavailable));
            }
            self.reassembly.insert(key.clone(), Reassembly { buf: Vec::new(), expires: now });
        }
        let expires = now + self.cfg.exchange_lifetime;
        let Some(r) = self.reassembly.get_mut(&key) else {
            return Some(Response::new(ResponseType::RequestEntityIncomplete));
        };
        if b1.offset() != r.buf.len() {
            return Some(Response::new(ResponseType::RequestEntityIncomplete));
        }
        if b1.more && req.payload.len() != b1.size() {
            self.reassembly.remove(&key);
            return Some(Response::new(ResponseType::BadRequest));
        }
        r.buf.extend_from_slice(&req.payload);
        r.expires = expires;
        if b1.more {
            let mut resp = Response::new(ResponseType::Continue);
            resp.block1 = Some(b1);
            return Some(resp);
        }
        let whole = self.reassembly.remove(&key).map(|r| r.buf).unwrap_or_default();
        req.payload = Bytes::from(whole);
        self.metrics.block1_transfers_completed += 1;
        None
    }

    /// Cuts a response to the block the client asked for (RFC 7959 §2.4). Never larger than the
    /// client's SZX; the configured SZX when the client gave none and the body does not fit.
    fn slice_block2(&mut self, mut resp: Response, asked: Option<BlockOpt>) -> (Response, Bytes) {
        let body = resp.payload.clone();
        if !is_success(resp.code) {
            return (resp, body);
        }
        let len = body.len();
        let (num, szx) = match asked {
            Some(b) => (b.num, b.szx.min(MAX_SZX)),
            None if len > size_of_szx(self.cfg.default_szx) => (0, self.cfg.default_szx.min(MAX_SZX)),
            None => return (resp, body),
        };
        let size = size_of_szx(szx);
        let offset = num as usize * size;
        if offset > len || (offset == len && len > 0) {
            let mut r = Response::new(ResponseType::BadOption);
            r.payload = Bytes::from_static(b"block number beyond the end of the body");
            let payload = r.payload.clone();
            return (r, payload);
        }
        let end = (offset + size).min(len);
        resp.block2 = Some(BlockOpt { num, more: end < len, szx });
        if num == 0 {
            resp.size2 = u32::try_from(len).ok();
            self.metrics.block2_transfers_started += 1;
        } else {
            // Observe applies to the first block only (RFC 7959 §2.6).
            resp.observe = None;
        }
        self.metrics.block2_blocks_served += 1;
        (resp, body.slice(offset..end))
    }

    fn on_response(&mut self, now: Instant, peer: P, pkt: &Packet) {
        let mid = pkt.header.message_id;
        let token = pkt.get_token().to_vec();
        if pkt.header.get_type() == MessageType::Acknowledgement {
            // Piggybacked: must answer our CON with this message ID and carry its token.
            let id = match self.pending.get(&(peer, mid)).map(|p| &p.purpose) {
                Some(Purpose::Request(id)) => *id,
                Some(_) => return self.on_ack(now, peer, mid),
                None => return self.on_late_answer(now, peer, |g| g.mid == mid && g.token == token),
            };
            if self.requests.get(&id).is_some_and(|ex| ex.token == token) {
                self.pending.remove(&(peer, mid));
                self.learn_round_trip(now, id);
                self.deliver(now, id, pkt);
            }
            return;
        }
        let con = pkt.header.get_type() == MessageType::Confirmable;
        if con {
            if let Some(d) = self.dedup.get(&(peer, mid)) {
                self.metrics.rx_duplicates += 1;
                if let Some(bytes) = d.reply.clone() {
                    self.push(peer, bytes);
                }
                return;
            }
        }
        let key = (peer, token);
        match self.by_token.get(&key).copied() {
            Some(id) => {
                if con {
                    let ack = self.send_empty(peer, MessageType::Acknowledgement, mid);
                    self.remember(now, peer, mid, Some(ack));
                }
                // A separate response also acknowledges our request (its ACK may be lost).
                if let Some(ExState::AwaitingAck { mid: ours }) = self.requests.get(&id).map(|ex| ex.state) {
                    self.pending.remove(&(peer, ours));
                }
                self.deliver(now, id, pkt);
            }
            None => {
                self.on_late_answer(now, peer, |g| g.token == key.1);
                // Unknown token: reject so the server forgets us (RFC 7641 §3.6).
                let rst = self.send_empty(peer, MessageType::Reset, mid);
                if con {
                    self.remember(now, peer, mid, Some(rst));
                }
            }
        }
    }

    /// A response matched request `id`.
    fn deliver(&mut self, now: Instant, id: RequestId, pkt: &Packet) {
        let resp = match Response::from_packet(pkt) {
            Ok(r) => r,
            Err(e) => return self.finish(now, id, Err(RequestError::BadResponse(e))),
        };
        let Some(ex) = self.requests.get_mut(&id) else {
            return;
        };
        let peer = ex.peer;
        // Karn: an answer after a retransmission says nothing of which copy it answers (a
        // lossy link looks like a slow one); only an answer to the first copy teaches, shortening
        // the wait. A peer's long wait is learned from answers after we gave up.
        if let Some(sent) = ex.sent_at.take().filter(|_| !ex.retransmitted) {
            self.learn_latency(peer, now.saturating_duration_since(sent), false);
        }
        let Some(ex) = self.requests.get_mut(&id) else {
            return;
        };
        if ex.state == ExState::Observing {
            if let (Some(seq), Some((last, at))) = (resp.observe, ex.last_observe) {
                if !observe_fresher(last, at, seq, now) {
                    return;
                }
            }
            let ended = resp.observe.is_none() || !is_success(resp.code);
            ex.last_observe = resp.observe.map(|s| (s, now));
            self.push_event(Event::Response { id, peer, response: resp });
            if ended {
                self.remove_request(id);
            }
            return;
        }
        if ex.fetch.is_some() && is_success(resp.code) {
            return self.continue_fetch(now, id, resp);
        }
        if ex.observe && resp.observe.is_some() && is_success(resp.code) {
            ex.state = ExState::Observing;
            ex.last_observe = resp.observe.map(|s| (s, now));
            self.push_event(Event::Response { id, peer, response: resp });
            // The registration stays, but the exchange is over: free the NSTART slot.
            self.release(now, peer, id);
            return;
        }
        self.finish(now, id, Ok(resp));
    }

    fn continue_fetch(&mut self, now: Instant, id: RequestId, mut resp: Response) {
        let retries = self.cfg.block_retries;
        let Some(ex) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(fetch) = ex.fetch.as_mut() else {
            return;
        };
        let Some(b) = resp.block2 else {
            // No Block2: the whole body, valid only as the first answer.
            return if fetch.body.is_empty() {
                if resp.payload.len() > fetch.max {
                    let max = fetch.max;
                    self.finish(now, id, Err(RequestError::TooLarge(max)))
                } else {
                    self.finish(now, id, Ok(resp))
                }
            } else {
                self.finish(now, id, Err(RequestError::BadBlock("response without Block2 mid-transfer")))
            };
        };
        if b.offset() != fetch.body.len() {
            // Wrong block (a stale answer): ask again, like RIOT does.
            if fetch.retries_left == 0 {
                return self.finish(now, id, Err(RequestError::BadBlock("unexpected block offset")));
            }
            fetch.retries_left -= 1;
            return self.transmit_request(now, id);
        }
        if b.num == 0 {
            fetch.etag = resp.etag.clone();
        } else if fetch.etag.is_some() && resp.etag != fetch.etag {
            return self.finish(
                now,
                id,
                Err(RequestError::BadBlock("representation changed during the transfer (ETag)")),
            );
        }
        if b.more && resp.payload.len() != b.size() {
            return self.finish(now, id, Err(RequestError::BadBlock("short block with more to follow")));
        }
        let announced = resp.size2.map_or(0, |s| s as usize);
        if fetch.body.len() + resp.payload.len() > fetch.max || announced > fetch.max {
            let max = fetch.max;
            return self.finish(now, id, Err(RequestError::TooLarge(max)));
        }
        fetch.body.extend_from_slice(&resp.payload);
        if b.more {
            fetch.szx = fetch.szx.min(b.szx);
            fetch.retries_left = retries;
            let num = u32::try_from(fetch.body.len() / size_of_szx(fetch.szx)).unwrap_or(u32::MAX);
            match BlockOpt::new(num, false, fetch.szx) {
                Ok(next) => {
                    ex.request.block2 = Some(next);
                    self.transmit_request(now, id);
                }
                Err(_) => self.finish(now, id, Err(RequestError::BadBlock("body needs more than 2^20 blocks"))),
            }
            return;
        }
        resp.payload = Bytes::from(std::mem::take(&mut fetch.body));
        self.finish(now, id, Ok(resp));
    }

    fn retransmit_due(&mut self, now: Instant) {
        let due: Vec<(P, u16)> = self.pending.iter().filter(|(_, p)| p.next <= now).map(|(k, _)| *k).collect();
        for key in due {
            let Some(p) = self.pending.get_mut(&key) else {
                continue;
            };
            if p.retransmits < self.cfg.max_retransmit {
                p.retransmits += 1;
                p.timeout = p.timeout.saturating_mul(2);
                p.next = now.checked_add(p.timeout).unwrap_or(now);
                let bytes = p.bytes.clone();
                if let Purpose::Request(id) = p.purpose {
                    if let Some(ex) = self.requests.get_mut(&id) {
                        ex.retransmitted = true;
                    }
                }
                self.metrics.retransmissions += 1;
                self.push(key.0, bytes);
                continue;
            }
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            self.metrics.transmit_timeouts += 1;
            match p.purpose {
                Purpose::Request(id) => {
                    self.remember_given_up(key.0, key.1, id);
                    self.request_timed_out(now, id, RequestError::Timeout(self.cfg.max_retransmit + 1))
                }
                Purpose::Notification(k) => {
                    // The observer is gone (RFC 7641 §4.5).
                    self.observers.remove(&k);
                }
                Purpose::Separate => {}
            }
        }
    }

    /// Keeps a request message we stop retransmitting, for its late answer.
    fn remember_given_up(&mut self, peer: P, mid: u16, id: RequestId) {
        let Some(ex) = self.requests.get(&id) else { return };
        let Some(sent_at) = ex.sent_at else { return };
        if self.given_up.len() >= GIVEN_UP_CAPACITY {
            self.given_up.pop_front();
        }
        self.given_up.push_back(GivenUp { peer, mid, token: ex.token.clone(), sent_at });
    }

    /// An answer to no live request: if it answers one we gave up on, learn how late it came.
    fn on_late_answer(&mut self, now: Instant, peer: P, answers: impl Fn(&GivenUp<P>) -> bool) {
        self.given_up.retain(|g| now.saturating_duration_since(g.sent_at) <= LATE_ANSWER_HORIZON);
        let Some(i) = self.given_up.iter().position(|g| g.peer == peer && answers(g)) else { return };
        let Some(g) = self.given_up.remove(i) else { return };
        self.metrics.late_answers += 1;
        self.learn_latency(peer, now.saturating_duration_since(g.sent_at), true);
    }

    // ---------------------------------------------------------------- helpers

    fn update_timers(&mut self) {
        let retransmit = self.pending.values().map(|p| p.next).min();
        let response = self
            .requests
            .values()
            .filter_map(|ex| match ex.state {
                ExState::AwaitingResponse { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min();
        let dedup = self.dedup_order.front().map(|(at, _, _)| *at);
        let state = self.reassembly.values().map(|r| r.expires).chain(self.deferred.values().map(|d| d.expires)).min();
        for (t, at) in Timer::ALL.into_iter().zip([retransmit, response, dedup, state]) {
            self.timers.set(t, at);
        }
    }

    /// The first retransmission timeout: ACK_TIMEOUT × [1, ACK_RANDOM_FACTOR).
    fn initial_timeout(&mut self) -> Duration {
        let spread = (self.cfg.ack_random_factor - 1.0).max(0.0);
        self.cfg.ack_timeout.mul_f64(1.0 + spread * self.rng.next_f64())
    }

    fn fresh_mid(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn fresh_token(&mut self) -> Token {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token.to_be_bytes().to_vec()
    }

    fn next_observe(&mut self) -> u32 {
        self.observe_seq = (self.observe_seq + 1) & 0x00ff_ffff;
        self.observe_seq
    }

    fn remember(&mut self, now: Instant, peer: P, mid: u16, reply: Option<Vec<u8>>) {
        while self.dedup.len() >= self.cfg.dedup_capacity.max(1) {
            let Some((at, p, m)) = self.dedup_order.pop_front() else {
                break;
            };
            if self.dedup.get(&(p, m)).is_some_and(|d| d.expires == at) {
                self.dedup.remove(&(p, m));
            }
        }
        let expires = now + self.cfg.exchange_lifetime;
        self.dedup.insert((peer, mid), Dedup { expires, reply });
        self.dedup_order.push_back((expires, peer, mid));
    }

    fn send_empty(&mut self, peer: P, t: MessageType, mid: u16) -> Vec<u8> {
        let mut pkt = Packet::new();
        pkt.header.set_version(1);
        pkt.header.set_type(t);
        pkt.header.message_id = mid;
        pkt.header.code = MessageClass::Empty;
        // An empty message always encodes (4 bytes).
        self.emit(peer, &pkt).unwrap_or_default()
    }

    /// Encodes and queues a packet; returns the bytes for caching or retransmission.
    fn emit(&mut self, peer: P, pkt: &Packet) -> Result<Vec<u8>, String> {
        match pkt.to_bytes() {
            Ok(bytes) => {
                self.push(peer, bytes.clone());
                Ok(bytes)
            }
            Err(e) => Err(format!("{e:?}")),
        }
    }

    fn push(&mut self, peer: P, bytes: Vec<u8>) {
        if self.out.len() >= self.cfg.max_transmit_queue {
            self.metrics.transmits_dropped += 1;
            return;
        }
        if bytes.len() >= 4 {
            let t = match (bytes[0] >> 4) & 3 {
                0 => MessageType::Confirmable,
                1 => MessageType::NonConfirmable,
                2 => MessageType::Acknowledgement,
                _ => MessageType::Reset,
            };
            self.metrics.tx.count(t, bytes[1], bytes.len());
        }
        self.out.push_back(Transmit { peer, bytes });
    }

    fn push_event(&mut self, e: Event<P>) {
        if self.events.len() >= self.cfg.max_events {
            self.metrics.events_dropped += 1;
            return;
        }
        self.events.push_back(e);
    }
}

enum Served {
    Respond(Response, Option<BlockOpt>),
    Deferred,
    /// Not answered (a resource it may be for is not there yet).
    Held,
}

/// Critical options we do not implement get 4.02 (RFC 7252 §5.4.1). Proxy-Uri and Proxy-Scheme
/// go to the router's proxy, which answers 5.05 for what it does not serve (§5.7).
fn check_options(pkt: &Packet) -> Option<Response> {
    for (number, _) in pkt.options() {
        match CoapOption::from(*number) {
            CoapOption::ProxyUri | CoapOption::ProxyScheme => {}
            CoapOption::IfMatch
            | CoapOption::UriHost
            | CoapOption::IfNoneMatch
            | CoapOption::UriPort
            | CoapOption::UriPath
            | CoapOption::UriQuery
            | CoapOption::Accept
            | CoapOption::Block1
            | CoapOption::Block2 => {}
            _ if number % 2 == 1 => {
                let mut r = Response::new(ResponseType::BadOption);
                r.payload = Bytes::from(format!("unsupported critical option {number}"));
                return Some(r);
            }
            _ => {}
        }
    }
    None
}

/// RFC 7641 §3.4: is notification `seq` newer than the last one (`last` received at `at`)?
fn observe_fresher(last: u32, at: Instant, seq: u32, now: Instant) -> bool {
    const HALF: u32 = 1 << 23;
    (last < seq && seq - last < HALF) || (last > seq && last - seq > HALF) || now > at + Duration::from_secs(128)
}
