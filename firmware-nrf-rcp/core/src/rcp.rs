//! The RCP side of Spinel: a sans-IO machine that answers an OpenThread-style host
//! (otbr-agent's `RadioSpinel`, or ferry's `src/radio`) and drives a [`Radio`].
//!
//! Behaviour follows ot-rcp as described in `shared/reference/spinel.md` §4 (raw radio
//! datapath, responses to GET/SET/INSERT/REMOVE) and §5 (start-up handshake).
//!
//! # Call order
//!
//! 1. [`Rcp::new`], then drain [`Rcp::poll_host`]: it yields the unsolicited boot
//!    `LAST_STATUS <reset reason>`.
//! 2. For each HDLC frame from the host: [`Rcp::handle_host_frame`]; send what it returns.
//! 3. For each radio completion: [`Rcp::handle_radio_event`]; send what it returns.
//! 4. After every input, drain [`Rcp::poll_host`] until it returns `None` (some events produce
//!    two notifications, e.g. the end of an energy scan).
//!
//! `out` buffers should hold [`FRAME_MAX_LEN`](crate::spinel::FRAME_MAX_LEN) bytes: the
//! only error these calls return is [`Error::BufferTooSmall`], and the input has then already
//! taken effect, so its reply is lost.
//!
//! Time is an argument (`now_us`, the radio's µs clock). The machine has no timers of its own:
//! every deadline (CSMA, ACK wait, timed TX, scan duration) runs in the radio.

use crate::radio::{Radio, RadioError, RadioEvent, ReceivedFrame, TxFrame};
use crate::spinel::data::{Reader, Writer};
use crate::spinel::frame::{emit_property, Payload};
use crate::spinel::stream_raw::{RxFrame, TxDone, TxRequest, FLAG_ACKED_FP, NOISE_FLOOR_UNKNOWN, TX_POWER_INVALID};
use crate::spinel::{
    Capability, Command, Error, Header, Property, Repr, ResetType, Result, Status, MIN_HOST_RCP_API_VERSION,
    PROTOCOL_VERSION_MAJOR, PROTOCOL_VERSION_MINOR, RCP_API_VERSION,
};

/// 2.4 GHz O-QPSK channels.
const CHANNELS: core::ops::RangeInclusive<u8> = 11..=26;
/// `INTERFACE_TYPE` THREAD.
const INTERFACE_TYPE_THREAD: u32 = 3;
/// Largest PSDU (aMaxPhyPacketSize).
const MAX_PSDU_LEN: usize = 127;
/// Frame Pending bit in the first FCF byte of an ACK.
const FCF_FRAME_PENDING: u8 = 0x10;
/// MAC_SCAN_STATE values.
const SCAN_IDLE: u8 = 0;
const SCAN_ENERGY: u8 = 2;

/// What ferry's RCP reports in PROP_CAPS: only what it implements. (ot-rcp also lists COUNTERS
/// and UNSOL_UPDATE_FILTER; the RCP host does not use them.) Without
/// [`Capability::FerryTxQueue`] the machine answers a second STREAM_RAW with BUSY, as ot-rcp.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::Ieee802154_2450MhzOqpsk,
    Capability::ConfigRadio,
    Capability::MacRaw,
    Capability::RcpApiVersion,
    Capability::RcpMinHostApiVersion,
    Capability::FerryTxQueue,
];

/// Fixed facts about this RCP build.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// PROP_NCP_VERSION, free-form.
    pub ncp_version: &'static str,
    /// PROP_CAPS.
    pub caps: &'static [Capability],
    /// Why the chip last reset; sent unsolicited at boot.
    pub boot_reason: Status,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ncp_version: concat!("FERRY-RCP/", env!("CARGO_PKG_VERSION")),
            caps: DEFAULT_CAPS,
            boot_reason: Status::ResetPowerOn,
        }
    }
}

/// What to send to the host after an input.
#[must_use = "the frame in the output buffer must be sent to the host"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToHost {
    /// Send the first `n` bytes of the output buffer as one Spinel frame.
    Send(usize),
    /// Nothing to send.
    Nothing,
}

/// Radio-facing state the host configures; reset by `CMD_RESET`.
#[derive(Debug, Clone, Copy)]
struct MacState {
    phy_enabled: bool,
    channel: u8,
    tx_power: i8,
    cca_threshold: i8,
    pan_id: u16,
    short_addr: u16,
    ext_addr: [u8; 8],
    raw_stream_enabled: bool,
    promiscuous_mode: u8,
    rx_on_when_idle: bool,
    src_match_enabled: bool,
    scan_channel: u8,
    scan_period_ms: u16,
    scan_state: u8,
}

impl MacState {
    const fn new() -> Self {
        MacState {
            phy_enabled: false,
            channel: 11,
            tx_power: 0,
            cca_threshold: -75,
            pan_id: 0xFFFF,
            short_addr: 0xFFFE,
            ext_addr: [0; 8],
            raw_stream_enabled: false,
            promiscuous_mode: 0,
            rx_on_when_idle: true,
            src_match_enabled: false,
            scan_channel: 11,
            scan_period_ms: 0,
            scan_state: SCAN_IDLE,
        }
    }
}

/// A STREAM_RAW SET taken while another transmission was on air ([`Capability::FerryTxQueue`]),
/// with its PSDU copied out of the host frame.
#[derive(Debug, Clone, Copy)]
struct QueuedTx {
    header: Header,
    psdu: [u8; MAX_PSDU_LEN],
    len: usize,
    /// The request's TX metadata; its `psdu` is empty (the copy above is the frame).
    meta: TxFrame<'static>,
}

impl QueuedTx {
    fn new(header: Header, frame: &TxFrame<'_>) -> Self {
        let mut psdu = [0u8; MAX_PSDU_LEN];
        let len = frame.psdu.len().min(MAX_PSDU_LEN);
        psdu[..len].copy_from_slice(&frame.psdu[..len]);
        QueuedTx { header, psdu, len, meta: TxFrame { psdu: &[], ..*frame } }
    }

    fn frame(&self) -> TxFrame<'_> {
        TxFrame { psdu: &self.psdu[..self.len], ..self.meta }
    }
}

/// The RCP state machine over a radio `R`. See the module docs for the call order.
#[derive(Debug)]
pub struct Rcp<R> {
    radio: R,
    config: Config,
    mac: MacState,
    /// Header (IID/TID) of the STREAM_RAW SET whose TX-done is owed.
    tx_pending: Option<Header>,
    /// The next transmission, started when the pending one is done.
    tx_queued: Option<QueuedTx>,
    /// A queued transmission the radio refused to start: its TX-done, still to send.
    tx_refused: Option<(Header, Status)>,
    /// Unsolicited LAST_STATUS still to send (boot reason).
    pending_reset: Option<Status>,
    /// MAC_SCAN_STATE = IDLE still to send after an energy-scan result.
    pending_scan_idle: bool,
}

/// What a request needs in reply, decided before anything is written.
enum Reply {
    /// `VALUE_IS LAST_STATUS <status>`.
    Status(Status),
    /// `VALUE_IS <prop> <current value>` (or `LAST_STATUS OK` if the property has no getter).
    Value(Property),
    /// `VALUE_INSERTED` / `VALUE_REMOVED` echoing the request's value.
    Echo(Command),
    /// Nothing now (a transmission whose TX-done comes later).
    Later,
}

impl<R: Radio> Rcp<R> {
    /// A freshly booted RCP; [`poll_host`](Self::poll_host) will report `config.boot_reason`.
    pub fn new(radio: R, config: Config) -> Self {
        Rcp {
            radio,
            config,
            mac: MacState::new(),
            tx_pending: None,
            tx_queued: None,
            tx_refused: None,
            pending_reset: Some(config.boot_reason),
            pending_scan_idle: false,
        }
    }

    /// The radio, for the shell and tests.
    pub fn radio(&self) -> &R {
        &self.radio
    }

    /// The radio, mutably (e.g. for the simulator to deliver medium state).
    pub fn radio_mut(&mut self) -> &mut R {
        &mut self.radio
    }

    /// Handles one Spinel frame from the host, writing any reply into `out`.
    ///
    /// Frames that are not Spinel are dropped silently (the host cannot be told which request
    /// they were). Errors only come from an `out` too small for the reply.
    pub fn handle_host_frame(&mut self, now_us: u64, frame: &[u8], out: &mut [u8]) -> Result<ToHost> {
        let repr = match Repr::parse(frame) {
            Ok(repr) => repr,
            // With a readable header the host can be told which request failed.
            Err(_) => {
                return match frame.first().map(|&b| Header::parse(b)) {
                    Some(Ok(h)) => self.write_status(out, h, Status::ParseError),
                    _ => Ok(ToHost::Nothing),
                };
            }
        };
        let header = repr.header;
        // Single-PAN: ot-rcp answers INVALID_INTERFACE to any IID other than 0.
        let reply =
            if header.iid() != 0 { Reply::Status(Status::InvalidInterface) } else { self.dispatch(now_us, &repr) };
        match reply {
            Reply::Status(s) => self.write_status(out, header, s),
            Reply::Value(prop) => self.write_value_or_ok(now_us, out, header, prop),
            Reply::Echo(cmd) => match repr.payload {
                Payload::Property { property, value } => {
                    let n = emit_property(out, header, cmd, property, |w| w.bytes(value))?;
                    Ok(ToHost::Send(n))
                }
                Payload::Raw(_) => self.write_status(out, header, Status::InternalError),
            },
            Reply::Later => Ok(ToHost::Nothing),
        }
    }

    /// Handles a radio completion, writing any notification into `out`.
    pub fn handle_radio_event(&mut self, event: &RadioEvent<'_>, out: &mut [u8]) -> Result<ToHost> {
        match *event {
            RadioEvent::Received(frame) => {
                // The host turned the raw stream off: it is not listening.
                if !self.mac.raw_stream_enabled {
                    return Ok(ToHost::Nothing);
                }
                let rx = rx_frame(&frame);
                let n =
                    emit_property(out, Header::UNSOLICITED, Command::PropValueIs, Property::StreamRaw, |w| rx.emit(w))?;
                Ok(ToHost::Send(n))
            }
            RadioEvent::TransmitDone(result) => {
                let Some(header) = self.tx_pending.take() else {
                    return Ok(ToHost::Nothing); // nobody is waiting (e.g. after a reset)
                };
                // The next frame goes on air before this one's TX-done crosses the UART.
                self.start_queued();
                // Like ot-rcp (`mCurTransmitTID`), a request sent with TID 0 gets no TX-done.
                if header.tid() == 0 {
                    return Ok(ToHost::Nothing);
                }
                let done = match result {
                    Ok(ack) => TxDone {
                        status: Status::Ok,
                        frame_pending: ack.and_then(|a| a.psdu.first()).is_some_and(|fcf| fcf & FCF_FRAME_PENDING != 0),
                        header_updated: false,
                        // Always present on OK: the host's parser expects it.
                        ack: Some(ack.as_ref().map_or(RxFrame::NONE, rx_frame)),
                        security: None,
                    },
                    Err(e) => TxDone::status(e.into()),
                };
                let n = emit_property(out, header, Command::PropValueIs, Property::LastStatus, |w| done.emit(w))?;
                Ok(ToHost::Send(n))
            }
            RadioEvent::EnergyScanDone { channel, max_rssi } => {
                if self.mac.scan_state != SCAN_ENERGY {
                    return Ok(ToHost::Nothing);
                }
                self.mac.scan_state = SCAN_IDLE;
                self.pending_scan_idle = true;
                // The scan may have left the receive channel; go back to it, as ot-rcp does.
                if self.mac.raw_stream_enabled {
                    let _ = self.radio.receive(self.mac.channel);
                }
                let n = emit_property(
                    out,
                    Header::UNSOLICITED,
                    Command::PropValueIs,
                    Property::MacEnergyScanResult,
                    |w| {
                        w.u8(channel)?;
                        w.i8(max_rssi)
                    },
                )?;
                Ok(ToHost::Send(n))
            }
        }
    }

    /// The next queued unsolicited frame, if any. Call until it returns `None`.
    pub fn poll_host(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        if let Some(reason) = self.pending_reset {
            let n = status_frame(out, Header::UNSOLICITED, reason)?;
            self.pending_reset = None;
            return Ok(Some(n));
        }
        if let Some((header, status)) = self.tx_refused {
            self.tx_refused = None;
            if header.tid() != 0 {
                return status_frame(out, header, status).map(Some);
            }
        }
        if self.pending_scan_idle {
            let n = emit_property(out, Header::UNSOLICITED, Command::PropValueIs, Property::MacScanState, |w| {
                w.u8(SCAN_IDLE)
            })?;
            self.pending_scan_idle = false;
            return Ok(Some(n));
        }
        Ok(None)
    }

    fn write_status(&self, out: &mut [u8], header: Header, status: Status) -> Result<ToHost> {
        status_frame(out, header, status).map(ToHost::Send)
    }

    fn write_value_or_ok(&mut self, now_us: u64, out: &mut [u8], header: Header, prop: Property) -> Result<ToHost> {
        if !self.has_getter(prop) {
            return self.write_status(out, header, Status::Ok);
        }
        let n = emit_property(out, header, Command::PropValueIs, prop, |w| self.write_value(now_us, prop, w))?;
        Ok(ToHost::Send(n))
    }

    fn dispatch(&mut self, now_us: u64, repr: &Repr<'_>) -> Reply {
        let value = repr.value();
        match (repr.command, repr.prop()) {
            (Command::Noop, _) => Reply::Status(Status::Ok),
            (Command::Reset, _) => self.reset(value),
            (Command::PropValueGet, Some(prop)) => {
                if self.has_getter(prop) {
                    Reply::Value(prop)
                } else {
                    Reply::Status(Status::PropNotFound)
                }
            }
            (Command::PropValueSet, Some(prop)) => self.set(now_us, repr.header, prop, value),
            (Command::PropValueInsert, Some(prop)) => self.insert_remove(prop, value, true),
            (Command::PropValueRemove, Some(prop)) => self.insert_remove(prop, value, false),
            _ => Reply::Status(Status::InvalidCommand),
        }
    }

    /// `CMD_RESET`: back to the boot configuration. ot-rcp answers a stack reset with
    /// `RESET_POWER_ON` under the request's header (`80 06 00 70` for the usual `80 01 02`).
    fn reset(&mut self, value: &[u8]) -> Reply {
        let kind = match Reader::new(value).optional(|r| r.u8()) {
            Ok(kind) => kind.map_or(ResetType::Stack, ResetType::from),
            Err(_) => return Reply::Status(Status::ParseError),
        };
        if !matches!(kind, ResetType::Stack | ResetType::Platform) {
            return Reply::Status(Status::Unimplemented);
        }
        // Best effort: a radio that refuses to sleep is still reset as far as the host knows.
        let _ = self.radio.sleep();
        let _ = self.radio.set_enabled(false);
        self.radio.clear_src_match_short();
        self.radio.clear_src_match_extended();
        self.radio.set_src_match_enabled(false);
        self.radio.set_promiscuous(false);
        self.mac = MacState::new();
        self.tx_pending = None;
        self.tx_queued = None;
        self.tx_refused = None;
        self.pending_scan_idle = false;
        self.pending_reset = None;
        Reply::Status(Status::ResetPowerOn)
    }

    fn has_getter(&self, prop: Property) -> bool {
        use Property as P;
        matches!(
            prop,
            P::LastStatus
                | P::ProtocolVersion
                | P::NcpVersion
                | P::InterfaceType
                | P::VendorId
                | P::Caps
                | P::HwAddr
                | P::PhyEnabled
                | P::PhyChan
                | P::PhyChanSupported
                | P::PhyCcaThreshold
                | P::PhyTxPower
                | P::PhyRssi
                | P::PhyRxSensitivity
                | P::MacScanState
                | P::MacScanMask
                | P::MacScanPeriod
                | P::Mac15_4Laddr
                | P::Mac15_4Saddr
                | P::Mac15_4Panid
                | P::MacRawStreamEnabled
                | P::MacPromiscuousMode
                | P::MacRxOnWhenIdleMode
                | P::MacSrcMatchEnabled
                | P::RcpApiVersion
                | P::RcpMinHostApiVersion
                | P::RcpTimestamp
                | P::RadioCaps
        )
    }

    /// Writes the current value of a property that [`has_getter`](Self::has_getter).
    fn write_value(&mut self, now_us: u64, prop: Property, w: &mut Writer<'_>) -> Result<()> {
        use Property as P;
        let m = &self.mac;
        match prop {
            P::LastStatus => w.packed(Status::Ok.into()),
            P::ProtocolVersion => {
                w.packed(PROTOCOL_VERSION_MAJOR)?;
                w.packed(PROTOCOL_VERSION_MINOR)
            }
            P::NcpVersion => w.utf8(self.config.ncp_version),
            P::InterfaceType => w.packed(INTERFACE_TYPE_THREAD),
            P::VendorId => w.packed(0),
            P::Caps => self.config.caps.iter().try_for_each(|&c| w.packed(c.into())),
            P::HwAddr => w.eui64(&self.radio.eui64()),
            P::PhyEnabled => w.bool(m.phy_enabled),
            P::PhyChan => w.u8(m.channel),
            P::PhyChanSupported => CHANNELS.clone().try_for_each(|c| w.u8(c)),
            P::PhyCcaThreshold => w.i8(m.cca_threshold),
            P::PhyTxPower => w.i8(m.tx_power),
            P::PhyRssi => w.i8(self.radio.rssi()),
            P::PhyRxSensitivity => w.i8(self.radio.rx_sensitivity()),
            P::MacScanState => w.u8(m.scan_state),
            P::MacScanMask => w.u8(m.scan_channel),
            P::MacScanPeriod => w.u16(m.scan_period_ms),
            P::Mac15_4Laddr => w.eui64(&m.ext_addr),
            P::Mac15_4Saddr => w.u16(m.short_addr),
            P::Mac15_4Panid => w.u16(m.pan_id),
            P::MacRawStreamEnabled => w.bool(m.raw_stream_enabled),
            P::MacPromiscuousMode => w.u8(m.promiscuous_mode),
            P::MacRxOnWhenIdleMode => w.bool(m.rx_on_when_idle),
            P::MacSrcMatchEnabled => w.bool(m.src_match_enabled),
            P::RcpApiVersion => w.packed(RCP_API_VERSION),
            P::RcpMinHostApiVersion => w.packed(MIN_HOST_RCP_API_VERSION),
            P::RcpTimestamp => w.u64(now_us),
            P::RadioCaps => w.packed(self.radio.caps().0),
            _ => Err(Error::InvalidValue("property without a getter")),
        }
    }

    fn set(&mut self, now_us: u64, header: Header, prop: Property, value: &[u8]) -> Reply {
        match self.try_set(now_us, header, prop, value) {
            Ok(reply) => reply,
            Err(SetError::Parse) => Reply::Status(Status::ParseError),
            Err(SetError::Status(s)) => Reply::Status(s),
        }
    }

    fn try_set(
        &mut self,
        now_us: u64,
        header: Header,
        prop: Property,
        value: &[u8],
    ) -> core::result::Result<Reply, SetError> {
        use Property as P;
        let mut r = Reader::new(value);
        let reply = match prop {
            P::PhyEnabled => {
                let on = r.bool()?;
                self.radio.set_enabled(on)?;
                self.mac.phy_enabled = on;
                Reply::Value(prop)
            }
            P::PhyChan => {
                let ch = r.u8()?;
                if !CHANNELS.contains(&ch) {
                    return Err(SetError::Status(Status::InvalidArgument));
                }
                self.radio.set_channel(ch)?;
                if self.mac.raw_stream_enabled {
                    self.radio.receive(ch)?;
                }
                self.mac.channel = ch;
                Reply::Value(prop)
            }
            P::PhyTxPower => {
                self.mac.tx_power = self.radio.set_tx_power(r.i8()?)?;
                Reply::Value(prop)
            }
            P::PhyCcaThreshold => {
                self.mac.cca_threshold = self.radio.set_cca_threshold(r.i8()?)?;
                Reply::Value(prop)
            }
            P::Mac15_4Panid => {
                self.mac.pan_id = r.u16()?;
                self.radio.set_pan_id(self.mac.pan_id);
                Reply::Value(prop)
            }
            P::Mac15_4Saddr => {
                self.mac.short_addr = r.u16()?;
                self.radio.set_short_address(self.mac.short_addr);
                Reply::Value(prop)
            }
            P::Mac15_4Laddr => {
                self.mac.ext_addr = r.eui64()?;
                self.radio.set_extended_address(self.mac.ext_addr);
                Reply::Value(prop)
            }
            P::MacRawStreamEnabled => {
                let on = r.bool()?;
                if on {
                    self.radio.receive(self.mac.channel)?;
                } else {
                    self.radio.sleep()?;
                }
                self.mac.raw_stream_enabled = on;
                // Our shared vectors (spinel-frames.txt) answer LAST_STATUS OK here; RadioSpinel
                // accepts either that or VALUE_IS.
                Reply::Status(Status::Ok)
            }
            P::MacPromiscuousMode => {
                let mode = r.u8()?;
                if mode > 2 {
                    return Err(SetError::Status(Status::InvalidArgument));
                }
                self.radio.set_promiscuous(mode != 0);
                self.mac.promiscuous_mode = mode;
                Reply::Value(prop)
            }
            P::MacRxOnWhenIdleMode => {
                self.mac.rx_on_when_idle = r.bool()?;
                Reply::Value(prop)
            }
            P::MacSrcMatchEnabled => {
                self.mac.src_match_enabled = r.bool()?;
                self.radio.set_src_match_enabled(self.mac.src_match_enabled);
                Reply::Value(prop)
            }
            P::MacSrcMatchShortAddresses => {
                // SET replaces the whole list; there is no getter, so the reply is LAST_STATUS.
                self.radio.clear_src_match_short();
                while !r.is_empty() {
                    self.radio.add_src_match_short(r.u16()?)?;
                }
                Reply::Status(Status::Ok)
            }
            P::MacSrcMatchExtendedAddresses => {
                self.radio.clear_src_match_extended();
                while !r.is_empty() {
                    self.radio.add_src_match_extended(r.eui64()?)?;
                }
                Reply::Status(Status::Ok)
            }
            P::MacScanMask => {
                // The RCP host sends one channel; a longer mask is accepted and its first used.
                let ch = r.u8()?;
                let _ = r.rest();
                if !CHANNELS.contains(&ch) {
                    return Err(SetError::Status(Status::InvalidArgument));
                }
                self.mac.scan_channel = ch;
                Reply::Value(prop)
            }
            P::MacScanPeriod => {
                self.mac.scan_period_ms = r.u16()?;
                Reply::Value(prop)
            }
            P::MacScanState => {
                match r.u8()? {
                    SCAN_ENERGY => {
                        self.radio.energy_scan(self.mac.scan_channel, self.mac.scan_period_ms)?;
                        self.mac.scan_state = SCAN_ENERGY;
                    }
                    SCAN_IDLE => self.mac.scan_state = SCAN_IDLE,
                    _ => return Err(SetError::Status(Status::InvalidArgument)),
                }
                Reply::Value(prop)
            }
            P::StreamRaw => return self.transmit(now_us, header, value),
            P::RcpMacKey => {
                let (mode, key_id) = (r.u8()?, r.u8()?);
                let mut keys = [[0u8; 16]; 3];
                for key in &mut keys {
                    let k = r.data_with_len()?;
                    *key = k.try_into().map_err(|_| SetError::Status(Status::InvalidArgument))?;
                }
                // ot-rcp only supports key id mode 1.
                if mode != 1 {
                    return Err(SetError::Status(Status::InvalidArgument));
                }
                self.radio.set_mac_keys(key_id, &keys[0], &keys[1], &keys[2]);
                Reply::Status(Status::Ok)
            }
            P::RcpMacFrameCounter => {
                let counter = r.u32()?;
                let only_if_larger = r.optional(|r| r.bool())?.unwrap_or(false);
                self.radio.set_mac_frame_counter(counter, only_if_larger);
                Reply::Status(Status::Ok)
            }
            _ => Reply::Status(Status::PropNotFound),
        };
        Ok(reply)
    }

    /// STREAM_RAW SET: start a transmission; the reply is the TX-done, later.
    fn transmit(&mut self, now_us: u64, header: Header, value: &[u8]) -> core::result::Result<Reply, SetError> {
        if !self.mac.raw_stream_enabled {
            return Err(SetError::Status(Status::InvalidState));
        }
        let req = TxRequest::parse(value)?;
        // ot-rcp treats an over-long PSDU as a parse error.
        if req.psdu.len() > MAX_PSDU_LEN {
            return Err(SetError::Parse);
        }
        if req.psdu.len() < 2 || !CHANNELS.contains(&req.channel) {
            return Err(SetError::Status(Status::InvalidArgument));
        }
        let frame = TxFrame {
            psdu: req.psdu,
            channel: req.channel,
            csma_ca: req.csma_ca_enabled,
            max_csma_backoffs: req.max_csma_backoffs,
            max_frame_retries: req.max_frame_retries,
            start_at_us: (req.tx_delay != 0).then(|| tx_time(now_us, req.tx_delay_base_time, req.tx_delay)),
            tx_power: (req.tx_power != TX_POWER_INVALID).then_some(req.tx_power),
            rx_channel_after: req.rx_channel_after_tx_done,
        };
        if self.tx_pending.is_some() {
            if self.tx_queued.is_some() || !self.config.caps.contains(&Capability::FerryTxQueue) {
                return Err(SetError::Status(Status::Busy));
            }
            self.tx_queued = Some(QueuedTx::new(header, &frame));
            return Ok(Reply::Later);
        }
        self.radio.transmit(&frame)?;
        self.tx_pending = Some(header);
        Ok(Reply::Later)
    }

    /// Starts the queued transmission, if any; a refusal is reported by `poll_host`.
    fn start_queued(&mut self) {
        let Some(next) = self.tx_queued.take() else { return };
        match self.radio.transmit(&next.frame()) {
            Ok(()) => self.tx_pending = Some(next.header),
            Err(e) => self.tx_refused = Some((next.header, e.into())),
        }
    }

    fn insert_remove(&mut self, prop: Property, value: &[u8], insert: bool) -> Reply {
        // Parse the whole value before touching the table.
        let mut r = Reader::new(value);
        let result = match prop {
            Property::MacSrcMatchShortAddresses => match (r.u16(), r.finish()) {
                (Ok(a), Ok(())) if insert => self.radio.add_src_match_short(a),
                (Ok(a), Ok(())) => self.radio.remove_src_match_short(a),
                _ => return Reply::Status(Status::ParseError),
            },
            Property::MacSrcMatchExtendedAddresses => match (r.eui64(), r.finish()) {
                (Ok(a), Ok(())) if insert => self.radio.add_src_match_extended(a),
                (Ok(a), Ok(())) => self.radio.remove_src_match_extended(a),
                _ => return Reply::Status(Status::ParseError),
            },
            _ => return Reply::Status(Status::PropNotFound),
        };
        match result {
            Ok(()) if insert => Reply::Echo(Command::PropValueInserted),
            Ok(()) => Reply::Echo(Command::PropValueRemoved),
            Err(e) => Reply::Status(e.into()),
        }
    }
}

/// Why a SET failed: a malformed value, or a status to report.
enum SetError {
    Parse,
    Status(Status),
}

impl From<Error> for SetError {
    fn from(_: Error) -> Self {
        SetError::Parse
    }
}

impl From<RadioError> for SetError {
    fn from(e: RadioError) -> Self {
        SetError::Status(e.into())
    }
}

fn status_frame(out: &mut [u8], header: Header, status: Status) -> Result<usize> {
    emit_property(out, header, Command::PropValueIs, Property::LastStatus, |w| status.write(w))
}

/// RX metadata for the host, as ot-rcp's `PackRadioFrame` fills it.
fn rx_frame<'a>(f: &ReceivedFrame<'a>) -> RxFrame<'a> {
    RxFrame {
        psdu: f.psdu,
        rssi: f.rssi,
        noise_floor: NOISE_FLOOR_UNKNOWN,
        flags: if f.acked_with_frame_pending { FLAG_ACKED_FP } else { 0 },
        channel: f.channel,
        lqi: f.lqi,
        timestamp_us: f.timestamp_us,
        rx_error: 0,
        ack_key_id: 0,
        ack_frame_counter: 0,
    }
}

/// Full radio time for a timed TX: the host sends only the low 32 bits of the base time, which
/// lies within ±35 minutes of `now_us`, so the signed 32-bit difference recovers its high bits.
fn tx_time(now_us: u64, base_low: u32, delay: u32) -> u64 {
    let behind = (now_us as u32).wrapping_sub(base_low) as i32;
    let base = now_us.wrapping_sub(i64::from(behind) as u64);
    base.wrapping_add(u64::from(delay))
}

#[cfg(test)]
mod tests;
