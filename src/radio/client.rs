//! The host side of Spinel as a sans-IO machine: the otbr-agent start-up handshake, TID
//! matching, raw 802.15.4 TX/RX over `STREAM_RAW`, and recovery from RCP resets.
//!
//! Facts: `shared/reference/spinel.md` §4 (raw datapath, responses) and §5 (handshake), after
//! OpenThread `spinel_driver.cpp` / `radio_spinel.cpp`. The codec is `ferry-rcp-core`'s.
//!
//! # Call order
//!
//! 1. [`Client::new`] starts the handshake (it queues `CMD_RESET`).
//! 2. Bytes from the serial line: [`Client::handle_input`]. They may hold partial frames,
//!    several frames, or garbage; all of that is fine.
//! 3. After every input, timeout and API call, drain [`Client::poll_transmit`] (write each
//!    returned HDLC frame to the line) and [`Client::poll_event`].
//! 4. Sleep until [`Client::poll_timeout`], then call [`Client::handle_timeout`] (safe to call
//!    early). The deadline is the minimum of the [`Timer`] table.
//!
//! When the link itself was lost (device unplugged, program exited), call
//! [`Client::restart`] after reopening it: the handshake runs again and the configuration
//! (channel, PAN, addresses, source-match tables) is restored.
//!
//! # Requests in flight
//!
//! Like `RadioSpinel`, the client has at most one control request (GET/SET/INSERT/REMOVE or the
//! reset) and at most one transmission outstanding; both wait at most
//! [`Settings::response_timeout`] (2 s, OpenThread's `kMaxWaitTime`). TIDs count 1..=15 and
//! wrap; the first three handshake requests use TID 1, as `SpinelDriver` does.
//!
//! # When the RCP misbehaves
//!
//! * A `LAST_STATUS RESET_*` with TID 0 while Ready is an RCP that reset on its own:
//!   [`Event::RcpReset`], everything in flight ends ([`TxError::Aborted`]), and the handshake
//!   runs again from PROTOCOL_VERSION (the RCP is already fresh), restoring the configuration.
//!   During the handshake the same status is the twin of the one that ended the reset wait
//!   (boot announcement plus the answer to `CMD_RESET`) and only restarts the queries.
//! * No answer within 2 s, a refused step or an unparsable TX-done: the handshake starts over
//!   with `CMD_RESET`; after [`MAX_HANDSHAKE_ATTEMPTS`] failures in a row, or at once for an
//!   incompatible RCP ([`ClientError::is_incompatible`]), the state is [`LinkState::Failed`].
//! * A Ready RCP silent for [`Settings::keepalive`] gets a `CMD_NOOP`; no answer is a timeout.
//! * Undecodable bytes, frames for other interfaces and answers to nothing are counted in
//!   [`Stats`] and dropped.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use ferry_rcp_core::hdlc::{self, SpinelDecoder};
use ferry_rcp_core::spinel::data::{Reader, Writer};
use ferry_rcp_core::spinel::frame::emit_property;
use ferry_rcp_core::spinel::stream_raw::{self, TxDone, TxRequest, TxSecurity};
use ferry_rcp_core::spinel::{
    header, Capability, Command, Header, Property, RadioCaps, Repr, ResetType, Status, FRAME_MAX_LEN,
    MIN_HOST_RCP_API_VERSION, PROTOCOL_VERSION_MAJOR, PROTOCOL_VERSION_MINOR, RCP_API_VERSION,
};

/// Largest HDLC frame [`Client::poll_transmit`] writes: every byte escaped, plus FCS and flags.
pub const MAX_TRANSMIT_LEN: usize = 2 * (FRAME_MAX_LEN + 2) + 2;
/// OpenThread's `kMaxWaitTime`: how long the host waits for any answer.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest 802.15.4 PSDU (aMaxPhyPacketSize), FCS included.
pub const MAX_PSDU_LEN: usize = 127;
/// Handshake attempts in a row (each ending in a timeout or error) before the client gives up
/// and reports [`LinkState::Failed`]; the shell then reopens the device.
pub const MAX_HANDSHAKE_ATTEMPTS: u32 = 3;
/// Unconsumed events kept before the oldest received frames are dropped.
const MAX_EVENTS: usize = 1024;
/// Queued control operations (channel, src-match) before new ones are refused.
const MAX_OPS: usize = 256;
/// How long a Ready link may stay silent before the client checks the RCP with a NOOP.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// What the host configures on the RCP, and what the client restores after a reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// 802.15.4 channel, 11..=26.
    pub channel: u8,
    pub pan_id: u16,
    pub short_address: u16,
    /// Extended address in Spinel `E` order; `None` uses the RCP's factory HWADDR.
    pub ext_address: Option<[u8; 8]>,
    /// Frame Pending in auto-ACKs from the source-match tables (else every ACK sets it).
    pub src_match_enabled: bool,
    /// Transmissions waiting behind the one in flight before `transmit` refuses.
    pub tx_queue_len: usize,
    /// How long to wait for any answer; OpenThread uses 2 s.
    pub response_timeout: Duration,
    /// RADIO_CAPS bits the RCP must have (ferry's MAC relies on ACK wait, retries and CSMA).
    pub required_radio_caps: RadioCaps,
    /// After this long without a byte from a Ready RCP, send `CMD_NOOP` to check it still
    /// answers (a hung RCP on a UART gives no EOF); `None` disables the check.
    pub keepalive: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            channel: 11,
            pan_id: 0xFFFF,
            short_address: 0xFFFE,
            ext_address: None,
            src_match_enabled: true,
            tx_queue_len: 16,
            response_timeout: RESPONSE_TIMEOUT,
            required_radio_caps: RadioCaps(
                RadioCaps::ACK_TIMEOUT.0 | RadioCaps::TRANSMIT_RETRIES.0 | RadioCaps::CSMA_BACKOFF.0,
            ),
            keepalive: Some(KEEPALIVE_INTERVAL),
        }
    }
}

impl Settings {
    /// The defaults with the channel and PAN ID of `[network]`. The short address stays
    /// 0xFFFE (none) until the MAC layer sets one with [`Op::SetShortAddress`].
    pub fn for_network(network: &crate::config::NetworkConfig) -> Settings {
        Settings {
            channel: network.channel.into(),
            pan_id: network.pan_id.0,
            short_address: network.short_address,
            ..Settings::default()
        }
    }
}

/// What the RCP told us about itself during the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcpInfo {
    pub ncp_version: String,
    pub caps: Vec<Capability>,
    /// Factory EUI-64 (Spinel `E` order).
    pub hwaddr: [u8; 8],
    pub rcp_api_version: Option<u32>,
    pub rcp_min_host_api_version: Option<u32>,
    pub radio_caps: RadioCaps,
}

impl RcpInfo {
    /// How many transmissions the RCP takes at once: two when it holds the next frame while
    /// one is on air ([`Capability::FerryTxQueue`], ferry's RCP), else one (ot-rcp).
    pub fn tx_window(&self) -> usize {
        if self.caps.contains(&Capability::FerryTxQueue) {
            2
        } else {
            1
        }
    }
}

/// A source-match table entry: the address of a sleepy child whose data requests get Frame
/// Pending set in the RCP's auto-ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SrcAddr {
    Short(u16),
    /// Spinel `E` order (EUI-64 as written, most significant byte first).
    Extended([u8; 8]),
}

/// A configuration change, applied now if the RCP is up and restored after every reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    SetChannel(u8),
    SetPanId(u16),
    SetShortAddress(u16),
    SetExtAddress([u8; 8]),
    SrcMatchInsert(SrcAddr),
    SrcMatchRemove(SrcAddr),
}

/// Identifies a submitted [`Op`] in [`Event::OpDone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Identifies a submitted transmission in [`Event::TxDone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// Per-frame transmit metadata (the optional STREAM_RAW TX fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOptions {
    /// Channel to send on; `None` = the configured channel.
    pub channel: Option<u8>,
    pub csma_ca: bool,
    pub max_csma_backoffs: u8,
    pub max_frame_retries: u8,
    /// Timed TX: send at `base_time + delay` µs on the RCP clock (low 32 bits of the base).
    pub timed: Option<TimedTx>,
    /// Per-frame power in dBm; `None` = the configured power.
    pub tx_power: Option<i8>,
    /// Channel to listen on afterwards; `None` = the TX channel.
    pub rx_channel_after: Option<u8>,
}

/// A timed transmission (`txDelayBaseTime + txDelay` on the RCP's µs clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedTx {
    pub base_time_us: u32,
    pub delay_us: u32,
}

impl Default for TxOptions {
    fn default() -> Self {
        TxOptions {
            channel: None,
            csma_ca: true,
            max_csma_backoffs: stream_raw::DEFAULT_MAX_CSMA_BACKOFFS,
            // macMaxFrameRetries default of 802.15.4.
            max_frame_retries: 3,
            timed: None,
            tx_power: None,
            rx_channel_after: None,
        }
    }
}

/// A received 802.15.4 frame with its RX metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxFrame {
    /// MAC frame including its 2 FCS bytes.
    pub psdu: Vec<u8>,
    pub channel: u8,
    /// dBm.
    pub rssi: i8,
    /// dBm (ot-rcp always reports -128).
    pub noise_floor: i8,
    pub lqi: u8,
    /// RCP µs clock at the end of the SFD.
    pub timestamp_us: u64,
    /// The RCP's auto-ACK to this frame had Frame Pending set (source-match hit): an indirect
    /// frame for this sender should follow.
    pub acked_frame_pending: bool,
    /// The auto-ACK was secured.
    pub acked_secure: bool,
    /// Raw `SPINEL_MD_FLAG_*` bits.
    pub flags: u16,
}

impl RxFrame {
    fn from_wire(f: &stream_raw::RxFrame<'_>) -> RxFrame {
        RxFrame {
            psdu: f.psdu.to_vec(),
            channel: f.channel,
            rssi: f.rssi,
            noise_floor: f.noise_floor,
            lqi: f.lqi,
            timestamp_us: f.timestamp_us,
            acked_frame_pending: f.flags & stream_raw::FLAG_ACKED_FP != 0,
            acked_secure: f.flags & stream_raw::FLAG_ACKED_SEC != 0,
            flags: f.flags,
        }
    }
}

/// A successful transmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxAck {
    /// Frame Pending bit of the ACK we received.
    pub frame_pending: bool,
    /// The RCP filled in security fields / frame counter.
    pub header_updated: bool,
    /// The ACK frame, when the frame requested one.
    pub ack: Option<RxFrame>,
    pub security: Option<TxSecurity>,
}

/// Why a transmission did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("no ACK after all retries; the peer is out of range or asleep")]
    NoAck,
    #[error("channel busy through all CSMA-CA backoffs; try later or another channel")]
    ChannelAccessFailure,
    #[error("the RCP refused the transmission with status {0:?}")]
    Rejected(Status),
    #[error("the RCP did not report the end of the transmission in time; it is being reset")]
    Timeout,
    #[error("the RCP reset or the link went down before the transmission ended; send again when the radio is up")]
    Aborted,
    #[error("the radio is not up (handshake running or RCP unreachable); wait for the link state to be Ready")]
    NotReady,
    #[error("the transmit queue is full ({0} frames); slow down or wait for TX-done events")]
    QueueFull(usize),
    #[error("PSDU of {0} bytes is not 2..=127 bytes (FCS included)")]
    BadLength(usize),
    #[error("channel {0} is not a 2.4 GHz 802.15.4 channel (11-26)")]
    BadChannel(u8),
    #[error("the RCP's TX-done could not be parsed: {0}")]
    Malformed(String),
}

/// Errors of the client: the handshake, control operations, and what the RCP answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the RCP speaks Spinel protocol {major}.{minor}; ferry needs {}.{} — flash a current ot-rcp or ferry's firmware",
        PROTOCOL_VERSION_MAJOR,
        PROTOCOL_VERSION_MINOR
    )]
    ProtocolVersion { major: u32, minor: u32 },
    #[error(
        "the co-processor lacks the {missing} capability ({why}); it is not a radio co-processor ferry can drive — flash ot-rcp or ferry's RCP firmware"
    )]
    MissingCapability { missing: &'static str, why: &'static str },
    #[error(
        "the RCP implements RCP API version {rcp}; ferry needs at least {} — update the RCP firmware",
        MIN_HOST_RCP_API_VERSION
    )]
    RcpApiTooOld { rcp: u32 },
    #[error(
        "the RCP needs a host with RCP API version {required} or later; ferry implements {} — update ferry or flash an older RCP firmware",
        RCP_API_VERSION
    )]
    HostApiTooOld { required: u32 },
    #[error(
        "the RCP's radio lacks {missing} (RADIO_CAPS {have:#x}, ferry needs {need:#x}) — use a radio whose driver does ACK wait, retries and CSMA-CA"
    )]
    MissingRadioCaps { missing: String, have: u32, need: u32 },
    #[error(
        "the RCP did not answer {what} within {timeout_ms} ms — check the cable, the baud rate (uart-baudrate) and that the device runs RCP firmware"
    )]
    Timeout { what: &'static str, timeout_ms: u64 },
    #[error("the RCP refused {what} with status {status:?}")]
    Refused { what: &'static str, status: Status },
    #[error("the RCP answered {what} with a malformed or unexpected frame ({detail}); check the firmware")]
    Unexpected { what: &'static str, detail: String },
    #[error("channel {0} is not a 2.4 GHz 802.15.4 channel (11-26)")]
    BadChannel(u8),
    #[error("too many radio operations queued ({0}); slow down")]
    QueueFull(usize),
    #[error("the radio link task has stopped (ferryd is shutting down)")]
    Closed,
}

impl ClientError {
    /// Errors that retrying cannot fix: the firmware is of the wrong kind or version.
    pub fn is_incompatible(&self) -> bool {
        matches!(
            self,
            ClientError::ProtocolVersion { .. }
                | ClientError::MissingCapability { .. }
                | ClientError::RcpApiTooOld { .. }
                | ClientError::HostApiTooOld { .. }
                | ClientError::MissingRadioCaps { .. }
        )
    }
}

/// Where the link to the RCP stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Handshake or configuration running; `attempt` counts from 1.
    Initializing { attempt: u32 },
    /// Handshake done, configuration applied, raw frames flowing.
    Ready,
    /// Gave up: the RCP is incompatible, or did not answer [`MAX_HANDSHAKE_ATTEMPTS`] times in
    /// a row. Call [`Client::restart`] (after reopening the device) to try again.
    Failed(ClientError),
}

/// Something the client wants its user to know. Drain with [`Client::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    State(LinkState),
    /// A frame from the air.
    Received(RxFrame),
    TxDone {
        id: TxId,
        result: Result<TxAck, TxError>,
    },
    OpDone {
        id: OpId,
        result: Result<(), ClientError>,
    },
    /// The RCP reset on its own (TID-0 `LAST_STATUS RESET_*`); the client re-initialises it.
    RcpReset {
        reason: Status,
    },
    /// Restoring a source-match entry failed (e.g. the RCP's table is full); the link works
    /// but that sleepy child will not get Frame Pending.
    SrcMatchRestoreFailed {
        addr: SrcAddr,
        status: Status,
    },
}

/// The client's timers; the next deadline is the earliest armed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Answer to the outstanding control request (or the reset status).
    Response = 0,
    /// TX-done of the transmission in flight.
    Transmit = 1,
    /// The RCP has been silent for [`Settings::keepalive`]: check it with `CMD_NOOP`.
    Keepalive = 2,
}

const TIMER_COUNT: usize = 3;

#[derive(Debug, Clone, Copy, Default)]
struct TimerTable([Option<Instant>; TIMER_COUNT]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    fn expired(&self, t: Timer, now: Instant) -> bool {
        self.0[t as usize].is_some_and(|at| at <= now)
    }
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

/// Counters for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// HDLC frames with a bad FCS, aborted or over-long, and non-Spinel frames: line garbage.
    pub rx_garbage: u64,
    /// Frames received from the air and delivered.
    pub rx_frames: u64,
    /// STREAM_RAW notifications that could not be parsed or carried an RX error.
    pub rx_malformed: u64,
    /// Received frames dropped because events were not drained.
    pub rx_dropped: u64,
    /// Unsolicited RCP resets.
    pub rcp_resets: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Responses whose TID matched nothing outstanding.
    pub stray_responses: u64,
}

/// One step of start-up; the order is that of otbr-agent (§5) then `RadioSpinel::Enable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Reset,
    ProtocolVersion,
    NcpVersion,
    Caps,
    HwAddr,
    RcpApiVersion,
    RcpMinHostApiVersion,
    RadioCaps,
    PhyEnabled,
    PanId,
    ShortAddr,
    ExtAddr,
    Channel,
    RawStream,
    SrcMatchEnabled,
    SrcMatchShorts,
    SrcMatchExts,
}

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::Reset => "CMD_RESET",
            Step::ProtocolVersion => "GET PROTOCOL_VERSION",
            Step::NcpVersion => "GET NCP_VERSION",
            Step::Caps => "GET CAPS",
            Step::HwAddr => "GET HWADDR",
            Step::RcpApiVersion => "GET RCP_API_VERSION",
            Step::RcpMinHostApiVersion => "GET RCP_MIN_HOST_API_VERSION",
            Step::RadioCaps => "GET RADIO_CAPS",
            Step::PhyEnabled => "SET PHY_ENABLED",
            Step::PanId => "SET MAC_15_4_PANID",
            Step::ShortAddr => "SET MAC_15_4_SADDR",
            Step::ExtAddr => "SET MAC_15_4_LADDR",
            Step::Channel => "SET PHY_CHAN",
            Step::RawStream => "SET MAC_RAW_STREAM_ENABLED",
            Step::SrcMatchEnabled => "SET MAC_SRC_MATCH_ENABLED",
            Step::SrcMatchShorts => "SET MAC_SRC_MATCH_SHORT_ADDRESSES",
            Step::SrcMatchExts => "SET MAC_SRC_MATCH_EXTENDED_ADDRESSES",
        }
    }
}

/// The outstanding control request.
#[derive(Debug, Clone)]
struct Pending {
    tid: u8,
    kind: PendingKind,
}

#[derive(Debug, Clone, Copy)]
enum PendingKind {
    Step(Step),
    Op(OpId, Op),
    /// `CMD_NOOP`, answered by `LAST_STATUS OK`.
    Keepalive,
}

#[derive(Debug, Clone)]
struct TxJob {
    id: TxId,
    psdu: Vec<u8>,
    opts: TxOptions,
}

/// A transmission sent to the RCP under `tid`, whose TX-done is due by `deadline`.
#[derive(Debug, Clone)]
struct InFlight {
    tid: u8,
    job: TxJob,
    deadline: Instant,
}

/// The desired radio configuration, restored after every reset.
#[derive(Debug, Clone)]
struct Desired {
    channel: u8,
    pan_id: u16,
    short_address: u16,
    ext_address: Option<[u8; 8]>,
    src_match_enabled: bool,
    src_short: BTreeSet<u16>,
    src_ext: BTreeSet<[u8; 8]>,
}

impl Desired {
    fn apply(&mut self, op: Op) {
        match op {
            Op::SetChannel(c) => self.channel = c,
            Op::SetPanId(p) => self.pan_id = p,
            Op::SetShortAddress(a) => self.short_address = a,
            Op::SetExtAddress(a) => self.ext_address = Some(a),
            Op::SrcMatchInsert(SrcAddr::Short(a)) => {
                self.src_short.insert(a);
            }
            Op::SrcMatchInsert(SrcAddr::Extended(a)) => {
                self.src_ext.insert(a);
            }
            Op::SrcMatchRemove(SrcAddr::Short(a)) => {
                self.src_short.remove(&a);
            }
            Op::SrcMatchRemove(SrcAddr::Extended(a)) => {
                self.src_ext.remove(&a);
            }
        }
    }
}

/// The Spinel host client. See the module docs for the call order.
#[derive(Debug)]
pub struct Client {
    settings: Settings,
    desired: Desired,
    state: LinkState,
    /// What the current handshake learned; moved to `info` when it completes.
    learning: RcpInfo,
    info: Option<RcpInfo>,
    decoder: Box<SpinelDecoder>,
    /// Spinel frames (not yet HDLC-encoded) waiting for `poll_transmit`.
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    timers: TimerTable,
    last_tid: u8,
    pending: Option<Pending>,
    ops: VecDeque<(OpId, Op)>,
    tx_queue: VecDeque<TxJob>,
    /// Sent to the RCP, TX-done owed, oldest first (at most [`RcpInfo::tx_window`]).
    tx_inflight: VecDeque<InFlight>,
    next_id: u64,
    attempt: u32,
    stats: Stats,
}

impl Client {
    /// A client that starts the handshake at `now`.
    pub fn new(settings: Settings, now: Instant) -> Client {
        let desired = Desired {
            channel: settings.channel,
            pan_id: settings.pan_id,
            short_address: settings.short_address,
            ext_address: settings.ext_address,
            src_match_enabled: settings.src_match_enabled,
            src_short: BTreeSet::new(),
            src_ext: BTreeSet::new(),
        };
        let mut client = Client {
            settings,
            desired,
            state: LinkState::Initializing { attempt: 1 },
            learning: RcpInfo::default(),
            info: None,
            decoder: Box::new(SpinelDecoder::new()),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            timers: TimerTable::default(),
            last_tid: 0,
            pending: None,
            ops: VecDeque::new(),
            tx_queue: VecDeque::new(),
            tx_inflight: VecDeque::new(),
            next_id: 1,
            attempt: 1,
            stats: Stats::default(),
        };
        client.begin_handshake(now);
        client
    }

    /// Current link state.
    pub fn state(&self) -> &LinkState {
        &self.state
    }

    /// What the RCP reported in the last completed handshake.
    pub fn info(&self) -> Option<&RcpInfo> {
        self.info.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The configured channel (as last requested).
    pub fn channel(&self) -> u8 {
        self.desired.channel
    }

    /// Source-match entries the client keeps on the RCP.
    pub fn src_match_entries(&self) -> impl Iterator<Item = SrcAddr> + '_ {
        let shorts = self.desired.src_short.iter().map(|&a| SrcAddr::Short(a));
        shorts.chain(self.desired.src_ext.iter().map(|&a| SrcAddr::Extended(a)))
    }

    /// Starts over: forget whatever was in flight (transmissions end with
    /// [`TxError::Aborted`]), reset the RCP and run the handshake, then restore the
    /// configuration. Call after reopening the device.
    pub fn restart(&mut self, now: Instant) {
        self.attempt = 1;
        *self.decoder = SpinelDecoder::new();
        self.outbox.clear();
        self.begin_handshake(now);
    }

    /// Bytes from the line.
    pub fn handle_input(&mut self, now: Instant, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (used, frame) = self.decoder.feed(bytes);
            bytes = bytes.get(used..).unwrap_or_default();
            match frame {
                None => {}
                Some(Err(_)) => self.stats.rx_garbage += 1,
                Some(Ok(frame)) => {
                    // The frame borrows the decoder; copy it (≤ 1300 bytes) to handle it.
                    let frame = frame.to_vec();
                    self.handle_frame(now, &frame);
                }
            }
        }
        self.pump(now);
    }

    /// The next HDLC frame to write to the line, encoded into `buf` (which should hold
    /// [`MAX_TRANSMIT_LEN`] bytes); returns its length.
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<usize> {
        loop {
            let frame = self.outbox.pop_front()?;
            match hdlc::encode(&frame, buf) {
                Ok(n) => return Some(n),
                // Only a caller buffer smaller than documented gets here; drop the frame, its
                // timeout recovers.
                Err(e) => tracing::error!("radio: cannot encode a {}-byte Spinel frame: {e}", frame.len()),
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Handles expired timers; harmless when called early.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.expired(Timer::Transmit, now) {
            self.timers.stop(Timer::Transmit);
            // The oldest is overdue; the recovery below aborts any behind it.
            if let Some(f) = self.tx_inflight.pop_front() {
                self.events.push_back(Event::TxDone { id: f.job.id, result: Err(TxError::Timeout) });
            }
            let what = "STREAM_RAW transmit (TX-done)";
            self.fail_attempt(now, ClientError::Timeout { what, timeout_ms: self.timeout_ms() });
        }
        if self.timers.expired(Timer::Response, now) {
            self.timers.stop(Timer::Response);
            let what = match self.pending.take().map(|p| p.kind) {
                Some(PendingKind::Step(step)) => step.what(),
                Some(PendingKind::Op(id, op)) => {
                    // The op stays wanted; the re-initialisation restores it.
                    self.desired.apply(op);
                    self.events.push_back(Event::OpDone { id, result: Ok(()) });
                    "a configuration request"
                }
                Some(PendingKind::Keepalive) => "CMD_NOOP (keepalive)",
                None => "a request",
            };
            self.fail_attempt(now, ClientError::Timeout { what, timeout_ms: self.timeout_ms() });
        }
        if self.timers.expired(Timer::Keepalive, now) {
            self.timers.stop(Timer::Keepalive);
            if self.state == LinkState::Ready && self.pending.is_none() {
                let tid = self.alloc_tid();
                let h = Header::new(0, tid).unwrap_or(Header::UNSOLICITED);
                self.outbox.push_back(vec![h.to_byte(), u32::from(Command::Noop) as u8]);
                self.pending = Some(Pending { tid, kind: PendingKind::Keepalive });
                self.timers.set(Timer::Response, now + self.settings.response_timeout);
            } else {
                self.arm_keepalive(now);
            }
        }
        self.pump(now);
    }

    /// Queues a transmission; the outcome arrives as [`Event::TxDone`] with the returned id.
    pub fn transmit(&mut self, now: Instant, psdu: &[u8], opts: TxOptions) -> Result<TxId, TxError> {
        if self.state != LinkState::Ready {
            return Err(TxError::NotReady);
        }
        if !(2..=MAX_PSDU_LEN).contains(&psdu.len()) {
            return Err(TxError::BadLength(psdu.len()));
        }
        for ch in [opts.channel, opts.rx_channel_after].into_iter().flatten() {
            if !valid_channel(ch) {
                return Err(TxError::BadChannel(ch));
            }
        }
        if self.tx_queue.len() >= self.settings.tx_queue_len {
            return Err(TxError::QueueFull(self.settings.tx_queue_len));
        }
        let id = TxId(self.fresh_id());
        self.tx_queue.push_back(TxJob { id, psdu: psdu.to_vec(), opts });
        self.pump(now);
        Ok(id)
    }

    /// Submits a configuration change. It is recorded at once (and restored after every RCP
    /// reset); [`Event::OpDone`] reports whether the RCP took it. While the RCP is not up the
    /// change is only recorded and reported done right away.
    pub fn submit(&mut self, now: Instant, op: Op) -> Result<OpId, ClientError> {
        if let Op::SetChannel(ch) = op {
            if !valid_channel(ch) {
                return Err(ClientError::BadChannel(ch));
            }
        }
        if self.ops.len() >= MAX_OPS {
            return Err(ClientError::QueueFull(MAX_OPS));
        }
        let id = OpId(self.fresh_id());
        if self.state == LinkState::Ready {
            self.ops.push_back((id, op));
        } else {
            self.desired.apply(op);
            self.events.push_back(Event::OpDone { id, result: Ok(()) });
        }
        self.pump(now);
        Ok(id)
    }

    fn arm_keepalive(&mut self, now: Instant) {
        match self.settings.keepalive {
            Some(every) if self.state == LinkState::Ready => self.timers.set(Timer::Keepalive, now + every),
            _ => self.timers.stop(Timer::Keepalive),
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.settings.response_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    fn set_state(&mut self, state: LinkState) {
        if self.state != state {
            self.state = state.clone();
            self.events.push_back(Event::State(state));
        }
    }

    /// Aborts everything in flight and starts the handshake with `CMD_RESET`.
    fn begin_handshake(&mut self, now: Instant) {
        self.abort_in_flight();
        self.learning = RcpInfo::default();
        self.last_tid = 0;
        self.set_state(LinkState::Initializing { attempt: self.attempt });
        self.send_step(now, Step::Reset);
    }

    /// Ends every outstanding request: queued and in-flight transmissions fail, queued
    /// configuration changes are folded into the desired state (the handshake restores them).
    fn abort_in_flight(&mut self) {
        self.timers.stop(Timer::Transmit);
        self.timers.stop(Timer::Response);
        self.timers.stop(Timer::Keepalive);
        for f in self.tx_inflight.drain(..) {
            self.events.push_back(Event::TxDone { id: f.job.id, result: Err(TxError::Aborted) });
        }
        for job in self.tx_queue.drain(..) {
            self.events.push_back(Event::TxDone { id: job.id, result: Err(TxError::Aborted) });
        }
        let pending_op = match self.pending.take().map(|p| p.kind) {
            Some(PendingKind::Op(id, op)) => Some((id, op)),
            _ => None,
        };
        for (id, op) in pending_op.into_iter().chain(self.ops.drain(..)) {
            self.desired.apply(op);
            self.events.push_back(Event::OpDone { id, result: Ok(()) });
        }
    }

    /// A handshake or runtime failure: retry the handshake, or give up after too many tries or
    /// on an incompatible RCP.
    fn fail_attempt(&mut self, now: Instant, error: ClientError) {
        let was_ready = self.state == LinkState::Ready;
        tracing::warn!("radio: {error}");
        if error.is_incompatible() {
            self.abort_in_flight();
            self.set_state(LinkState::Failed(error));
            return;
        }
        self.attempt = if was_ready { 1 } else { self.attempt + 1 };
        if self.attempt > MAX_HANDSHAKE_ATTEMPTS {
            self.abort_in_flight();
            self.set_state(LinkState::Failed(error));
            return;
        }
        self.begin_handshake(now);
    }

    fn alloc_tid(&mut self) -> u8 {
        let busy = |t: u8| self.tx_inflight.iter().any(|f| f.tid == t);
        let mut tid = header::next_tid(self.last_tid);
        while busy(tid) {
            tid = header::next_tid(tid);
        }
        self.last_tid = tid;
        tid
    }

    fn queue_frame(&mut self, build: impl FnOnce(&mut [u8]) -> ferry_rcp_core::spinel::Result<usize>) {
        let mut buf = vec![0u8; FRAME_MAX_LEN];
        match build(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                self.outbox.push_back(buf);
            }
            Err(e) => tracing::error!("radio: cannot build a Spinel request: {e}"),
        }
    }

    fn send_step(&mut self, now: Instant, step: Step) {
        // SpinelDriver sends its first requests with TID 1; RadioSpinel then counts on.
        let tid = match step {
            Step::Reset => 0,
            Step::ProtocolVersion | Step::NcpVersion | Step::Caps => 1,
            _ => self.alloc_tid(),
        };
        if matches!(step, Step::Caps) {
            self.last_tid = 1;
        }
        let h = Header::new(0, tid).unwrap_or(Header::UNSOLICITED);
        let d = self.desired.clone();
        let hwaddr = self.learning.hwaddr;
        let get = |p: Property| move |b: &mut [u8]| emit_property(b, h, Command::PropValueGet, p, |_| Ok(()));
        let set = |p: Property, v: &dyn Fn(&mut Writer<'_>) -> ferry_rcp_core::spinel::Result<()>| {
            let mut buf = vec![0u8; FRAME_MAX_LEN];
            emit_property(&mut buf, h, Command::PropValueSet, p, v).map(|n| {
                buf.truncate(n);
                buf
            })
        };
        let frame = match step {
            Step::Reset => {
                let mut buf = vec![0u8; 3];
                buf.copy_from_slice(&[h.to_byte(), u32::from(Command::Reset) as u8, ResetType::Stack.into()]);
                Ok(buf)
            }
            Step::ProtocolVersion => collect(get(Property::ProtocolVersion)),
            Step::NcpVersion => collect(get(Property::NcpVersion)),
            Step::Caps => collect(get(Property::Caps)),
            Step::HwAddr => collect(get(Property::HwAddr)),
            Step::RcpApiVersion => collect(get(Property::RcpApiVersion)),
            Step::RcpMinHostApiVersion => collect(get(Property::RcpMinHostApiVersion)),
            Step::RadioCaps => collect(get(Property::RadioCaps)),
            Step::PhyEnabled => set(Property::PhyEnabled, &|w| w.bool(true)),
            Step::PanId => set(Property::Mac15_4Panid, &|w| w.u16(d.pan_id)),
            Step::ShortAddr => set(Property::Mac15_4Saddr, &|w| w.u16(d.short_address)),
            Step::ExtAddr => set(Property::Mac15_4Laddr, &|w| w.eui64(&d.ext_address.unwrap_or(hwaddr))),
            Step::Channel => set(Property::PhyChan, &|w| w.u8(d.channel)),
            Step::RawStream => set(Property::MacRawStreamEnabled, &|w| w.bool(true)),
            Step::SrcMatchEnabled => set(Property::MacSrcMatchEnabled, &|w| w.bool(d.src_match_enabled)),
            Step::SrcMatchShorts => {
                set(Property::MacSrcMatchShortAddresses, &|w| d.src_short.iter().try_for_each(|&a| w.u16(a)))
            }
            Step::SrcMatchExts => {
                set(Property::MacSrcMatchExtendedAddresses, &|w| d.src_ext.iter().try_for_each(|a| w.eui64(a)))
            }
        };
        match frame {
            Ok(frame) => self.outbox.push_back(frame),
            Err(e) => tracing::error!("radio: cannot build {}: {e}", step.what()),
        }
        self.pending = Some(Pending { tid, kind: PendingKind::Step(step) });
        self.timers.set(Timer::Response, now + self.settings.response_timeout);
    }

    /// The step after `step`, given what the RCP advertised; `None` when configuration is done.
    fn next_step(&self, step: Step) -> Option<Step> {
        let has = |c: Capability| self.learning.caps.contains(&c);
        Some(match step {
            Step::Reset => Step::ProtocolVersion,
            Step::ProtocolVersion => Step::NcpVersion,
            Step::NcpVersion => Step::Caps,
            Step::Caps => Step::HwAddr,
            Step::HwAddr if has(Capability::RcpApiVersion) => Step::RcpApiVersion,
            Step::HwAddr | Step::RcpApiVersion if has(Capability::RcpMinHostApiVersion) => Step::RcpMinHostApiVersion,
            Step::HwAddr | Step::RcpApiVersion | Step::RcpMinHostApiVersion => Step::RadioCaps,
            Step::RadioCaps => Step::PhyEnabled,
            Step::PhyEnabled => Step::PanId,
            Step::PanId => Step::ShortAddr,
            Step::ShortAddr => Step::ExtAddr,
            Step::ExtAddr => Step::Channel,
            Step::Channel => Step::RawStream,
            Step::RawStream => Step::SrcMatchEnabled,
            Step::SrcMatchEnabled => Step::SrcMatchShorts,
            Step::SrcMatchShorts => Step::SrcMatchExts,
            Step::SrcMatchExts => return None,
        })
    }

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        let Ok(repr) = Repr::parse(frame) else {
            self.stats.rx_garbage += 1;
            return;
        };
        // Anything in Spinel from the RCP shows it is alive.
        self.arm_keepalive(now);
        if repr.header.iid() != 0 {
            return;
        }
        let tid = repr.header.tid();
        let waiting_for_reset = matches!(self.pending, Some(Pending { kind: PendingKind::Step(Step::Reset), .. }));
        // A reset status: the answer to our CMD_RESET (ot-rcp uses the request's TID 0), or an
        // RCP that reset on its own.
        if let Some(reason) = reset_reason(&repr) {
            if waiting_for_reset {
                self.pending = None;
                self.timers.stop(Timer::Response);
                self.advance(now, Step::Reset);
            } else if tid == 0 {
                // While initialising, this is the late twin of the status that ended the reset
                // wait (boot announcement plus the answer to our CMD_RESET): not a new reset
                // worth counting, but whatever was configured since is gone, so start over.
                if self.state == LinkState::Ready {
                    self.stats.rcp_resets += 1;
                    tracing::warn!("radio: the RCP reset on its own ({reason:?}); re-initialising it");
                    self.events.push_back(Event::RcpReset { reason });
                    self.attempt = 1;
                }
                // The RCP has just reset, so no CMD_RESET is needed (and none is sent, which
                // would only produce another reset status).
                self.abort_in_flight();
                self.learning = RcpInfo::default();
                self.last_tid = 0;
                self.set_state(LinkState::Initializing { attempt: self.attempt });
                self.send_step(now, Step::ProtocolVersion);
            }
            return;
        }
        if waiting_for_reset {
            return; // like SpinelDriver: everything but a reset status is ignored meanwhile
        }
        if tid == 0 {
            self.handle_unsolicited(&repr);
            return;
        }
        if let Some(at) = self.tx_inflight.iter().position(|f| f.tid == tid) {
            self.handle_tx_done(now, at, &repr);
            return;
        }
        match self.pending.take() {
            Some(p) if p.tid == tid => {
                self.timers.stop(Timer::Response);
                match p.kind {
                    PendingKind::Step(step) => match self.check_step(step, &repr) {
                        Ok(()) => self.advance(now, step),
                        Err(e) => self.fail_attempt(now, e),
                    },
                    PendingKind::Op(id, op) => {
                        let result = check_op(op, &repr);
                        if result.is_ok() {
                            self.desired.apply(op);
                        }
                        self.events.push_back(Event::OpDone { id, result });
                    }
                    // Any answer will do: the RCP is alive.
                    PendingKind::Keepalive => {}
                }
            }
            other => {
                self.pending = other;
                self.stats.stray_responses += 1;
            }
        }
    }

    fn handle_unsolicited(&mut self, repr: &Repr<'_>) {
        if repr.command != Command::PropValueIs || repr.prop() != Some(Property::StreamRaw) {
            return; // energy-scan results, logs, …: not used by ferry
        }
        // Frames are delivered whenever they come, also while the configuration after a reset
        // is still running: the RCP sends them from the moment the raw stream is on.
        match stream_raw::RxFrame::parse(repr.value()) {
            Ok(f) if f.rx_error == 0 && !f.psdu.is_empty() => {
                if self.events.len() >= MAX_EVENTS {
                    self.stats.rx_dropped += 1;
                    return;
                }
                self.stats.rx_frames += 1;
                self.events.push_back(Event::Received(RxFrame::from_wire(&f)));
            }
            _ => self.stats.rx_malformed += 1,
        }
    }

    fn handle_tx_done(&mut self, now: Instant, at: usize, repr: &Repr<'_>) {
        let Some(InFlight { job, .. }) = self.tx_inflight.remove(at) else { return };
        self.arm_tx_timer();
        let result = tx_result(repr);
        let malformed = matches!(result, Err(TxError::Malformed(_)));
        self.events.push_back(Event::TxDone { id: job.id, result });
        if malformed {
            // RadioSpinel recovers the RCP when a TX-done does not parse.
            self.fail_attempt(
                now,
                ClientError::Unexpected { what: "STREAM_RAW transmit", detail: "bad TX-done".into() },
            );
        }
    }

    fn advance(&mut self, now: Instant, step: Step) {
        match self.next_step(step) {
            Some(next) => self.send_step(now, next),
            None => {
                self.info = Some(std::mem::take(&mut self.learning));
                self.attempt = 1;
                self.stats.handshakes += 1;
                self.set_state(LinkState::Ready);
                self.arm_keepalive(now);
            }
        }
    }

    /// Validates the answer to a handshake step and records what it says.
    fn check_step(&mut self, step: Step, repr: &Repr<'_>) -> Result<(), ClientError> {
        let what = step.what();
        let unexpected = |detail: String| ClientError::Unexpected { what, detail };
        let prop = match step {
            Step::Reset => return Ok(()),
            Step::ProtocolVersion => Property::ProtocolVersion,
            Step::NcpVersion => Property::NcpVersion,
            Step::Caps => Property::Caps,
            Step::HwAddr => Property::HwAddr,
            Step::RcpApiVersion => Property::RcpApiVersion,
            Step::RcpMinHostApiVersion => Property::RcpMinHostApiVersion,
            Step::RadioCaps => Property::RadioCaps,
            Step::PhyEnabled => Property::PhyEnabled,
            Step::PanId => Property::Mac15_4Panid,
            Step::ShortAddr => Property::Mac15_4Saddr,
            Step::ExtAddr => Property::Mac15_4Laddr,
            Step::Channel => Property::PhyChan,
            Step::RawStream => Property::MacRawStreamEnabled,
            Step::SrcMatchEnabled => Property::MacSrcMatchEnabled,
            Step::SrcMatchShorts => Property::MacSrcMatchShortAddresses,
            Step::SrcMatchExts => Property::MacSrcMatchExtendedAddresses,
        };
        let is_set = matches!(
            step,
            Step::PhyEnabled
                | Step::PanId
                | Step::ShortAddr
                | Step::ExtAddr
                | Step::Channel
                | Step::RawStream
                | Step::SrcMatchEnabled
                | Step::SrcMatchShorts
                | Step::SrcMatchExts
        );
        if is_set {
            return match check_set_reply(prop, repr) {
                Ok(()) => Ok(()),
                // A source-match table the RCP cannot hold is not worth losing the radio over.
                Err(ClientError::Refused { status, .. })
                    if matches!(step, Step::SrcMatchShorts | Step::SrcMatchExts) =>
                {
                    let entries: Vec<SrcAddr> = if step == Step::SrcMatchShorts {
                        self.desired.src_short.iter().map(|&a| SrcAddr::Short(a)).collect()
                    } else {
                        self.desired.src_ext.iter().map(|&a| SrcAddr::Extended(a)).collect()
                    };
                    for addr in entries {
                        self.events.push_back(Event::SrcMatchRestoreFailed { addr, status });
                    }
                    Ok(())
                }
                Err(ClientError::Refused { status, .. }) => Err(ClientError::Refused { what, status }),
                Err(e) => Err(e),
            };
        }
        let value = expect_value_is(what, prop, repr)?;
        let mut r = Reader::new(value);
        let bad = |e: ferry_rcp_core::spinel::Error| unexpected(e.to_string());
        match step {
            Step::ProtocolVersion => {
                let (major, minor) = (r.packed().map_err(bad)?, r.packed().map_err(bad)?);
                if (major, minor) != (PROTOCOL_VERSION_MAJOR, PROTOCOL_VERSION_MINOR) {
                    return Err(ClientError::ProtocolVersion { major, minor });
                }
            }
            Step::NcpVersion => self.learning.ncp_version = r.utf8().map_err(bad)?.to_owned(),
            Step::Caps => {
                let mut caps = Vec::new();
                while !r.is_empty() {
                    caps.push(Capability::from(r.packed().map_err(bad)?));
                }
                if !caps.contains(&Capability::ConfigRadio) {
                    return Err(ClientError::MissingCapability {
                        missing: "CONFIG_RADIO (34)",
                        why: "it reports itself as an NCP or unknown co-processor",
                    });
                }
                if !caps.contains(&Capability::MacRaw) {
                    return Err(ClientError::MissingCapability {
                        missing: "MAC_RAW (513)",
                        why: "it cannot pass raw 802.15.4 frames over STREAM_RAW",
                    });
                }
                self.learning.caps = caps;
            }
            Step::HwAddr => self.learning.hwaddr = r.eui64().map_err(bad)?,
            Step::RcpApiVersion => {
                let v = r.packed().map_err(bad)?;
                self.learning.rcp_api_version = Some(v);
                if v < MIN_HOST_RCP_API_VERSION {
                    return Err(ClientError::RcpApiTooOld { rcp: v });
                }
            }
            Step::RcpMinHostApiVersion => {
                let v = r.packed().map_err(bad)?;
                self.learning.rcp_min_host_api_version = Some(v);
                if v > RCP_API_VERSION {
                    return Err(ClientError::HostApiTooOld { required: v });
                }
            }
            Step::RadioCaps => {
                let caps = RadioCaps(r.packed().map_err(bad)?);
                self.learning.radio_caps = caps;
                let need = self.settings.required_radio_caps;
                if !caps.contains(need) {
                    return Err(ClientError::MissingRadioCaps {
                        missing: radio_caps_names(RadioCaps(need.0 & !caps.0)),
                        have: caps.0,
                        need: need.0,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends what can be sent: the next transmission, the next configuration change.
    fn pump(&mut self, now: Instant) {
        if self.state != LinkState::Ready {
            return;
        }
        let window = self.info.as_ref().map_or(1, RcpInfo::tx_window);
        while self.tx_inflight.len() < window {
            let Some(job) = self.tx_queue.pop_front() else { break };
            self.send_tx(now, job);
        }
        if self.pending.is_none() {
            if let Some((id, op)) = self.ops.pop_front() {
                self.send_op(now, id, op);
            }
        }
    }

    fn send_tx(&mut self, now: Instant, job: TxJob) {
        let tid = self.alloc_tid();
        let h = Header::new(0, tid).unwrap_or(Header::UNSOLICITED);
        let channel = job.opts.channel.unwrap_or(self.desired.channel);
        let mut req = TxRequest::new(&job.psdu, channel);
        req.max_csma_backoffs = job.opts.max_csma_backoffs;
        req.max_frame_retries = job.opts.max_frame_retries;
        req.csma_ca_enabled = job.opts.csma_ca;
        if let Some(t) = job.opts.timed {
            req.tx_delay = t.delay_us;
            req.tx_delay_base_time = t.base_time_us;
        }
        req.rx_channel_after_tx_done = job.opts.rx_channel_after.unwrap_or(channel);
        req.tx_power = job.opts.tx_power.unwrap_or(stream_raw::TX_POWER_INVALID);
        self.queue_frame(|b| emit_property(b, h, Command::PropValueSet, Property::StreamRaw, |w| req.emit(w)));
        let delay = job.opts.timed.map_or(Duration::ZERO, |t| Duration::from_micros(t.delay_us.into()));
        // One held behind another waits for it too: its time counts from the first's deadline.
        let start = self.tx_inflight.back().map_or(now, |f| f.deadline.max(now));
        let deadline = start + self.settings.response_timeout + delay;
        self.tx_inflight.push_back(InFlight { tid, job, deadline });
        self.arm_tx_timer();
    }

    /// The transmit timer follows the oldest transmission in flight.
    fn arm_tx_timer(&mut self) {
        match self.tx_inflight.front() {
            Some(f) => self.timers.set(Timer::Transmit, f.deadline),
            None => self.timers.stop(Timer::Transmit),
        }
    }

    fn send_op(&mut self, now: Instant, id: OpId, op: Op) {
        let tid = self.alloc_tid();
        let h = Header::new(0, tid).unwrap_or(Header::UNSOLICITED);
        let (cmd, prop) = op_command(op);
        self.queue_frame(|b| {
            emit_property(b, h, cmd, prop, |w| match op {
                Op::SetChannel(c) => w.u8(c),
                Op::SetPanId(p) | Op::SetShortAddress(p) => w.u16(p),
                Op::SetExtAddress(a) => w.eui64(&a),
                Op::SrcMatchInsert(SrcAddr::Short(a)) | Op::SrcMatchRemove(SrcAddr::Short(a)) => w.u16(a),
                Op::SrcMatchInsert(SrcAddr::Extended(a)) | Op::SrcMatchRemove(SrcAddr::Extended(a)) => w.eui64(&a),
            })
        });
        self.pending = Some(Pending { tid, kind: PendingKind::Op(id, op) });
        self.timers.set(Timer::Response, now + self.settings.response_timeout);
    }
}

fn collect(
    f: impl FnOnce(&mut [u8]) -> ferry_rcp_core::spinel::Result<usize>,
) -> ferry_rcp_core::spinel::Result<Vec<u8>> {
    let mut buf = vec![0u8; FRAME_MAX_LEN];
    let n = f(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn valid_channel(ch: u8) -> bool {
    (11..=26).contains(&ch)
}

fn op_command(op: Op) -> (Command, Property) {
    match op {
        Op::SetChannel(_) => (Command::PropValueSet, Property::PhyChan),
        Op::SetPanId(_) => (Command::PropValueSet, Property::Mac15_4Panid),
        Op::SetShortAddress(_) => (Command::PropValueSet, Property::Mac15_4Saddr),
        Op::SetExtAddress(_) => (Command::PropValueSet, Property::Mac15_4Laddr),
        Op::SrcMatchInsert(SrcAddr::Short(_)) => (Command::PropValueInsert, Property::MacSrcMatchShortAddresses),
        Op::SrcMatchInsert(SrcAddr::Extended(_)) => (Command::PropValueInsert, Property::MacSrcMatchExtendedAddresses),
        Op::SrcMatchRemove(SrcAddr::Short(_)) => (Command::PropValueRemove, Property::MacSrcMatchShortAddresses),
        Op::SrcMatchRemove(SrcAddr::Extended(_)) => (Command::PropValueRemove, Property::MacSrcMatchExtendedAddresses),
    }
}

fn op_what(op: Op) -> &'static str {
    match op {
        Op::SetChannel(_) => "SET PHY_CHAN",
        Op::SetPanId(_) => "SET MAC_15_4_PANID",
        Op::SetShortAddress(_) => "SET MAC_15_4_SADDR",
        Op::SetExtAddress(_) => "SET MAC_15_4_LADDR",
        Op::SrcMatchInsert(_) => "INSERT MAC_SRC_MATCH_*",
        Op::SrcMatchRemove(_) => "REMOVE MAC_SRC_MATCH_*",
    }
}

/// The reset reason of a `VALUE_IS LAST_STATUS RESET_*` frame.
fn reset_reason(repr: &Repr<'_>) -> Option<Status> {
    if repr.command != Command::PropValueIs || repr.prop() != Some(Property::LastStatus) {
        return None;
    }
    let status = Status::read(&mut Reader::new(repr.value())).ok()?;
    status.is_reset().then_some(status)
}

/// The LAST_STATUS carried by a frame, if it is one.
fn last_status(repr: &Repr<'_>) -> Option<Status> {
    (repr.command == Command::PropValueIs && repr.prop() == Some(Property::LastStatus))
        .then(|| Status::read(&mut Reader::new(repr.value())).ok())
        .flatten()
}

fn expect_value_is<'a>(what: &'static str, prop: Property, repr: &Repr<'a>) -> Result<&'a [u8], ClientError> {
    if let Some(status) = last_status(repr) {
        return Err(ClientError::Refused { what, status });
    }
    if repr.command == Command::PropValueIs && repr.prop() == Some(prop) {
        return Ok(repr.value());
    }
    Err(ClientError::Unexpected { what, detail: format!("{:?} {:?}", repr.command, repr.prop()) })
}

/// SET succeeded if the RCP echoes the property or answers `LAST_STATUS OK` (no getter).
fn check_set_reply(prop: Property, repr: &Repr<'_>) -> Result<(), ClientError> {
    let what = "SET";
    match last_status(repr) {
        Some(Status::Ok) => Ok(()),
        Some(status) => Err(ClientError::Refused { what, status }),
        None if repr.command == Command::PropValueIs && repr.prop() == Some(prop) => Ok(()),
        None => Err(ClientError::Unexpected { what, detail: format!("{:?} {:?}", repr.command, repr.prop()) }),
    }
}

fn check_op(op: Op, repr: &Repr<'_>) -> Result<(), ClientError> {
    let what = op_what(op);
    let (cmd, prop) = op_command(op);
    let echo = match cmd {
        Command::PropValueInsert => Command::PropValueInserted,
        Command::PropValueRemove => Command::PropValueRemoved,
        _ => Command::PropValueIs,
    };
    match last_status(repr) {
        Some(Status::Ok) => Ok(()),
        // Idempotent table edits: already there / already gone is what was wanted.
        Some(Status::Already) if cmd == Command::PropValueInsert => Ok(()),
        Some(Status::ItemNotFound) if cmd == Command::PropValueRemove => Ok(()),
        Some(status) => Err(ClientError::Refused { what, status }),
        None if repr.command == echo && repr.prop() == Some(prop) => Ok(()),
        None => Err(ClientError::Unexpected { what, detail: format!("{:?} {:?}", repr.command, repr.prop()) }),
    }
}

/// The outcome carried by the answer to a STREAM_RAW SET.
fn tx_result(repr: &Repr<'_>) -> Result<TxAck, TxError> {
    let Some(status) = last_status(repr) else {
        return Err(TxError::Malformed(format!("{:?} {:?} instead of LAST_STATUS", repr.command, repr.prop())));
    };
    // An RCP that cannot start the transmission answers a bare `LAST_STATUS <err>`.
    let done = match TxDone::parse(repr.value()) {
        Ok(done) => done,
        Err(_) if status != Status::Ok && repr.value().len() <= 3 => TxDone::status(status),
        Err(e) => return Err(TxError::Malformed(e.to_string())),
    };
    match done.status {
        Status::Ok => Ok(TxAck {
            frame_pending: done.frame_pending,
            header_updated: done.header_updated,
            ack: done.ack.filter(|a| !a.psdu.is_empty()).map(|a| RxFrame::from_wire(&a)),
            security: done.security,
        }),
        Status::NoAck => Err(TxError::NoAck),
        Status::CcaFailure => Err(TxError::ChannelAccessFailure),
        other => Err(TxError::Rejected(other)),
    }
}

fn radio_caps_names(caps: RadioCaps) -> String {
    const NAMES: [(RadioCaps, &str); 11] = [
        (RadioCaps::ACK_TIMEOUT, "ACK_TIMEOUT"),
        (RadioCaps::ENERGY_SCAN, "ENERGY_SCAN"),
        (RadioCaps::TRANSMIT_RETRIES, "TRANSMIT_RETRIES"),
        (RadioCaps::CSMA_BACKOFF, "CSMA_BACKOFF"),
        (RadioCaps::SLEEP_TO_TX, "SLEEP_TO_TX"),
        (RadioCaps::TRANSMIT_SEC, "TRANSMIT_SEC"),
        (RadioCaps::TRANSMIT_TIMING, "TRANSMIT_TIMING"),
        (RadioCaps::RECEIVE_TIMING, "RECEIVE_TIMING"),
        (RadioCaps::RX_ON_WHEN_IDLE, "RX_ON_WHEN_IDLE"),
        (RadioCaps::TRANSMIT_FRAME_POWER, "TRANSMIT_FRAME_POWER"),
        (RadioCaps::ALT_SHORT_ADDR, "ALT_SHORT_ADDR"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(c, _)| caps.contains(*c)).map(|(_, n)| *n).collect();
    if names.is_empty() {
        format!("{:#x}", caps.0)
    } else {
        names.join("|")
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Initializing { attempt } => write!(f, "initialising the RCP (attempt {attempt})"),
            LinkState::Ready => f.write_str("ready"),
            LinkState::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}
