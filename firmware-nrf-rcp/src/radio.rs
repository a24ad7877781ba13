//! The nRF52840 radio behind [`ferry_rcp_core::radio::Radio`], on Nordic's 802.15.4 driver
//! (`nrf-802154`, over MPSL).
//!
//! Split of work:
//! - [`NrfRadio`] is what the [`Rcp`](ferry_rcp_core::rcp::Rcp) machine owns. Configuration calls
//!   (channel, addresses, source match, CCA, power) go straight to the C driver, which applies
//!   them at once and uses them from its interrupt handlers: auto-ACK with Frame Pending, address
//!   filtering and CSMA-CA run in hardware/ISR time, not here.
//! - Operations with an outcome (transmit, energy scan) are posted to [`radio_task`], which owns
//!   the driver's async [`nrf_802154::Radio`] and reports back through [`EVENTS`].
//!
//! Both run in the thread-mode executor, so the driver is only ever called from one priority.
//!
//! Immediate transmissions (with CSMA-CA or not) go through the safe crate. Timed transmissions
//! (`nrf_802154_transmit_raw_at`) and energy detection (`nrf_802154_energy_detection`) are
//! called through the `-sys` bindings, and their outcomes come back through [`crate::callouts`].

use core::sync::atomic::{AtomicBool, AtomicI8, AtomicU8, Ordering};

use embassy_futures::select::{select, select3, Either, Either3};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::Timer;
use ferry_rcp_core::radio::{Radio, RadioError, RadioEvent, ReceivedFrame, SrcMatchTable, TxError, TxFrame};
use ferry_rcp_core::spinel::RadioCaps;
use nrf_802154::raw;

use crate::callouts::{self, Outcome};
use crate::mac_frame;

/// Largest PSDU, FCS included (aMaxPhyPacketSize).
pub const MAX_PSDU_LEN: usize = 127;
/// Entries in the source-match tables: the C driver's defaults
/// (`NRF_802154_PENDING_SHORT_ADDRESSES`, `NRF_802154_PENDING_EXTENDED_ADDRESSES`).
const SRC_MATCH_SHORT: usize = 16;
const SRC_MATCH_EXT: usize = 16;
/// nRF52840 receiver sensitivity (product specification, 802.15.4 mode).
const RX_SENSITIVITY_DBM: i8 = -100;
/// "No RSSI reading" in OpenThread (`OT_RADIO_RSSI_INVALID`).
const RSSI_INVALID: i8 = 127;

/// A PSDU copied between tasks (the driver's buffers cannot be borrowed across an `await`).
#[derive(Clone, Copy)]
pub struct Psdu {
    len: u8,
    bytes: [u8; MAX_PSDU_LEN],
}

impl Psdu {
    /// `None` if `data` is longer than [`MAX_PSDU_LEN`].
    fn new(data: &[u8]) -> Option<Psdu> {
        let mut bytes = [0; MAX_PSDU_LEN];
        bytes.get_mut(..data.len())?.copy_from_slice(data);
        Some(Psdu { len: data.len() as u8, bytes })
    }

    /// Frame without FCS plus the FCS the driver reported, as the host expects.
    fn with_fcs(frame: &[u8], fcs: u16) -> Option<Psdu> {
        let mut p = Psdu::new(frame)?;
        let end = usize::from(p.len);
        p.bytes.get_mut(end..end + 2)?.copy_from_slice(&fcs.to_le_bytes());
        p.len += 2;
        Some(p)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A received frame or ACK, owned.
#[derive(Clone, Copy)]
pub struct RxInfo {
    pub psdu: Psdu,
    pub channel: u8,
    pub rssi: i8,
    pub lqi: u8,
    pub timestamp_us: u64,
    /// Frame Pending of our auto-ACK to this frame, as the driver sent it, if known.
    pub acked_with_frame_pending: Option<bool>,
}

impl RxInfo {
    fn as_received(&self, acked_with_frame_pending: bool) -> ReceivedFrame<'_> {
        ReceivedFrame {
            psdu: self.psdu.as_slice(),
            channel: self.channel,
            rssi: self.rssi,
            lqi: self.lqi,
            timestamp_us: self.timestamp_us,
            acked_with_frame_pending,
        }
    }
}

/// What [`radio_task`] reports; [`Event::as_radio_event`] lends it to the RCP machine.
pub enum Event {
    Received(RxInfo),
    TransmitDone(Result<Option<RxInfo>, TxError>),
    EnergyScanDone { channel: u8, max_rssi: i8 },
}

impl Event {
    /// `frame_pending` decides `acked_with_frame_pending` of a received frame when the driver's
    /// own bit was not noted (see [`callouts::ACK_NOTES`]).
    pub fn as_radio_event(&self, frame_pending: impl Fn(&[u8]) -> bool) -> RadioEvent<'_> {
        match self {
            Event::Received(rx) => {
                let fp = rx.acked_with_frame_pending.unwrap_or_else(|| frame_pending(rx.psdu.as_slice()));
                RadioEvent::Received(rx.as_received(fp))
            }
            Event::TransmitDone(Ok(ack)) => RadioEvent::TransmitDone(Ok(ack.as_ref().map(|a| a.as_received(false)))),
            Event::TransmitDone(Err(e)) => RadioEvent::TransmitDone(Err(*e)),
            Event::EnergyScanDone { channel, max_rssi } => {
                RadioEvent::EnergyScanDone { channel: *channel, max_rssi: *max_rssi }
            }
        }
    }
}

struct TxRequest {
    psdu: Psdu,
    channel: u8,
    csma_ca: bool,
    max_csma_backoffs: u8,
    max_frame_retries: u8,
    start_at_us: Option<u64>,
    tx_power: Option<i8>,
}

enum Command {
    Transmit(TxRequest),
    EnergyScan { channel: u8, duration_ms: u16 },
}

/// One operation at a time (see [`OP_IN_FLIGHT`]), so one slot is enough.
static COMMANDS: Channel<CriticalSectionRawMutex, Command, 1> = Channel::new();
/// The receiver was switched on or off: the radio task re-checks [`RX_ON`]. A signal rather
/// than a command so that on/off flips never fill the command queue.
static RX_STATE_CHANGED: Signal<CriticalSectionRawMutex, ()> = Signal::new();
/// Radio outcomes for the RCP loop. Frames beyond this wait in the driver crate's own queue.
pub static EVENTS: Channel<CriticalSectionRawMutex, Event, 8> = Channel::new();
/// The host wants the receiver on (PHY enabled and not asleep).
static RX_ON: AtomicBool = AtomicBool::new(false);
/// Channel to listen on between operations.
static RX_CHANNEL: AtomicU8 = AtomicU8::new(11);
/// A transmission or scan was accepted and its outcome is not yet in [`EVENTS`].
static OP_IN_FLIGHT: AtomicBool = AtomicBool::new(false);
/// The host's TX power, restored after a frame sent with its own power.
static TX_POWER: AtomicI8 = AtomicI8::new(0);

fn busy() -> bool {
    OP_IN_FLIGHT.load(Ordering::Acquire)
}

/// The radio's µs clock, the time base of RX timestamps and timed TX.
pub fn now_us() -> u64 {
    // SAFETY: a plain read of the driver's time base, initialised by `nrf_802154_init`.
    unsafe { raw::nrf_802154_time_get() }
}

/// The handle the RCP machine drives.
pub struct NrfRadio {
    eui64: [u8; 8],
    promiscuous: bool,
    /// Mirror of the driver's pending-bit tables, for the `acked_with_frame_pending` fallback.
    src_match: SrcMatchTable<SRC_MATCH_SHORT, SRC_MATCH_EXT>,
}

impl NrfRadio {
    /// Call after [`nrf_802154::Radio::new`], which initialises the driver.
    pub fn new(eui64: [u8; 8]) -> NrfRadio {
        // SAFETY (all calls): the driver is initialised and only called from thread mode.
        unsafe {
            // Asleep until the host turns the receiver on (`receive` also sets rx-on-when-idle,
            // which brings the driver back to receive after each transmission).
            raw::nrf_802154_rx_on_when_idle_set(false);
            raw::nrf_802154_auto_ack_set(true);
            raw::nrf_802154_auto_pending_bit_set(false);
            raw::nrf_802154_sleep();
        }
        NrfRadio { eui64, promiscuous: false, src_match: SrcMatchTable::new() }
    }

    /// Whether our auto-ACK to `psdu` carried Frame Pending.
    pub fn acked_with_frame_pending(&self, psdu: &[u8]) -> bool {
        !self.promiscuous
            && mac_frame::ack_frame_pending(
                psdu,
                |a| self.src_match.pending_for_short(a),
                |a| self.src_match.pending_for_extended(a),
            )
    }

    fn post(&self, cmd: Command) -> Result<(), RadioError> {
        if OP_IN_FLIGHT.swap(true, Ordering::AcqRel) {
            return Err(RadioError::Busy);
        }
        COMMANDS.try_send(cmd).map_err(|_| {
            OP_IN_FLIGHT.store(false, Ordering::Release);
            RadioError::Busy
        })
    }
}

fn check_channel(channel: u8) -> Result<(), RadioError> {
    if (11..=26).contains(&channel) {
        Ok(())
    } else {
        Err(RadioError::InvalidArgument)
    }
}

/// Spinel `E` order (as written) to the little-endian order of the frame and the driver.
fn ext_to_le(addr: [u8; 8]) -> [u8; 8] {
    let mut le = addr;
    le.reverse();
    le
}

impl Radio for NrfRadio {
    fn eui64(&self) -> [u8; 8] {
        self.eui64
    }

    fn caps(&self) -> RadioCaps {
        RadioCaps::ACK_TIMEOUT
            .union(RadioCaps::ENERGY_SCAN)
            .union(RadioCaps::TRANSMIT_RETRIES)
            .union(RadioCaps::CSMA_BACKOFF)
            .union(RadioCaps::SLEEP_TO_TX)
            .union(RadioCaps::TRANSMIT_TIMING)
            .union(RadioCaps::TRANSMIT_FRAME_POWER)
    }

    fn rx_sensitivity(&self) -> i8 {
        RX_SENSITIVITY_DBM
    }

    fn rssi(&mut self) -> i8 {
        // SAFETY: driver calls from thread mode. Only valid while receiving.
        unsafe {
            if !RX_ON.load(Ordering::Acquire) || !raw::nrf_802154_rssi_measure_begin() {
                return RSSI_INVALID;
            }
            // One RSSI sample takes 0.25 µs; wait a little more for the RSSIEND event.
            cortex_m::asm::delay(64 * 2);
            raw::nrf_802154_rssi_last_get()
        }
    }

    fn set_enabled(&mut self, enabled: bool) -> Result<(), RadioError> {
        if !enabled {
            self.sleep()?;
        }
        Ok(())
    }

    fn set_channel(&mut self, channel: u8) -> Result<(), RadioError> {
        check_channel(channel)?;
        RX_CHANNEL.store(channel, Ordering::Release);
        // During an operation the radio task tunes to RX_CHANNEL when it is done.
        if !busy() {
            // SAFETY: driver call from thread mode; the driver retunes if receiving.
            unsafe { raw::nrf_802154_channel_set(channel) };
        }
        Ok(())
    }

    fn set_tx_power(&mut self, dbm: i8) -> Result<i8, RadioError> {
        let set = mac_frame::tx_power_step(dbm);
        TX_POWER.store(set, Ordering::Release);
        // During a transmission (maybe with its own power) the radio task applies it after.
        if !busy() {
            // SAFETY: driver call from thread mode; applies to the next transmission.
            unsafe { raw::nrf_802154_tx_power_set(set) };
        }
        Ok(set)
    }

    fn set_cca_threshold(&mut self, dbm: i8) -> Result<i8, RadioError> {
        // SAFETY: driver calls from thread mode; the config struct is read during the call.
        unsafe {
            let ed_threshold = raw::nrf_802154_ccaedthres_from_dbm_calculate(dbm);
            raw::nrf_802154_cca_cfg_set(&raw::nrf_802154_cca_cfg_t {
                mode: raw::NRF_RADIO_CCA_MODE_ED as _,
                ed_threshold: ed_threshold as _,
                // Unused in ED mode; the driver's defaults.
                corr_threshold: 0x14,
                corr_limit: 0x02,
            });
        }
        Ok(dbm)
    }

    fn set_pan_id(&mut self, pan_id: u16) {
        // SAFETY: the driver copies the 2 bytes during the call.
        unsafe { raw::nrf_802154_pan_id_set(pan_id.to_le_bytes().as_ptr()) };
    }

    fn set_short_address(&mut self, addr: u16) {
        // SAFETY: the driver copies the 2 bytes during the call.
        unsafe { raw::nrf_802154_short_address_set(addr.to_le_bytes().as_ptr()) };
    }

    fn set_extended_address(&mut self, addr: [u8; 8]) {
        // SAFETY: the driver copies the 8 bytes during the call.
        unsafe { raw::nrf_802154_extended_address_set(ext_to_le(addr).as_ptr()) };
    }

    fn set_promiscuous(&mut self, on: bool) {
        self.promiscuous = on;
        // SAFETY: driver calls from thread mode. A sniffer must not ACK what it overhears.
        unsafe {
            raw::nrf_802154_promiscuous_set(on);
            raw::nrf_802154_auto_ack_set(!on);
        }
    }

    fn receive(&mut self, channel: u8) -> Result<(), RadioError> {
        self.set_channel(channel)?;
        // SAFETY: driver calls from thread mode.
        unsafe { raw::nrf_802154_rx_on_when_idle_set(true) };
        RX_ON.store(true, Ordering::Release);
        // The driver's receive request would abort a running transmission or scan; the radio
        // task enters receive after it, as RX_ON is now set.
        if !busy() {
            // SAFETY: as above.
            let _ = unsafe { raw::nrf_802154_receive() };
        }
        RX_STATE_CHANGED.signal(());
        Ok(())
    }

    fn sleep(&mut self) -> Result<(), RadioError> {
        RX_ON.store(false, Ordering::Release);
        // SAFETY: driver calls from thread mode.
        unsafe { raw::nrf_802154_rx_on_when_idle_set(false) };
        // As with receive: never abort an operation; the radio task sleeps after it.
        if !busy() {
            // SAFETY: as above.
            let _ = unsafe { raw::nrf_802154_sleep() };
        }
        RX_STATE_CHANGED.signal(());
        Ok(())
    }

    fn transmit(&mut self, frame: &TxFrame<'_>) -> Result<(), RadioError> {
        check_channel(frame.channel)?;
        check_channel(frame.rx_channel_after)?;
        // The FCS is filled in by the radio, but must be counted in the PSDU.
        if frame.psdu.len() < 2 {
            return Err(RadioError::InvalidArgument);
        }
        let psdu = Psdu::new(frame.psdu).ok_or(RadioError::InvalidArgument)?;
        self.post(Command::Transmit(TxRequest {
            psdu,
            channel: frame.channel,
            csma_ca: frame.csma_ca,
            max_csma_backoffs: frame.max_csma_backoffs,
            max_frame_retries: frame.max_frame_retries,
            start_at_us: frame.start_at_us,
            tx_power: frame.tx_power.map(mac_frame::tx_power_step),
        }))?;
        // Where to listen afterwards, recorded now so that a later PHY_CHAN from the host wins.
        RX_CHANNEL.store(frame.rx_channel_after, Ordering::Release);
        Ok(())
    }

    fn energy_scan(&mut self, channel: u8, duration_ms: u16) -> Result<(), RadioError> {
        check_channel(channel)?;
        self.post(Command::EnergyScan { channel, duration_ms })
    }

    fn set_src_match_enabled(&mut self, enabled: bool) {
        self.src_match.set_enabled(enabled);
        // SAFETY: driver call from thread mode. Disabled means Frame Pending in every ACK.
        unsafe { raw::nrf_802154_auto_pending_bit_set(enabled) };
    }

    fn add_src_match_short(&mut self, addr: u16) -> Result<(), RadioError> {
        // SAFETY: the driver copies the address during the call.
        if !unsafe { raw::nrf_802154_pending_bit_for_addr_set(addr.to_le_bytes().as_ptr(), false) } {
            return Err(RadioError::NoBufs);
        }
        self.src_match.add_short(addr)
    }

    fn remove_src_match_short(&mut self, addr: u16) -> Result<(), RadioError> {
        // SAFETY: the driver reads the address during the call.
        let _ = unsafe { raw::nrf_802154_pending_bit_for_addr_clear(addr.to_le_bytes().as_ptr(), false) };
        self.src_match.remove_short(addr)
    }

    fn clear_src_match_short(&mut self) {
        // SAFETY: driver call from thread mode.
        unsafe { raw::nrf_802154_pending_bit_for_addr_reset(false) };
        self.src_match.clear_short();
    }

    fn add_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        // SAFETY: the driver copies the address during the call.
        if !unsafe { raw::nrf_802154_pending_bit_for_addr_set(ext_to_le(addr).as_ptr(), true) } {
            return Err(RadioError::NoBufs);
        }
        self.src_match.add_extended(addr)
    }

    fn remove_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        // SAFETY: the driver reads the address during the call.
        let _ = unsafe { raw::nrf_802154_pending_bit_for_addr_clear(ext_to_le(addr).as_ptr(), true) };
        self.src_match.remove_extended(addr)
    }

    fn clear_src_match_extended(&mut self) {
        // SAFETY: driver call from thread mode.
        unsafe { raw::nrf_802154_pending_bit_for_addr_reset(true) };
        self.src_match.clear_extended();
    }
}

/// Owns the driver's async half: receives while idle, runs one transmission or scan at a time.
#[embassy_executor::task]
pub async fn radio_task(mut radio: nrf_802154::Radio<'static>) -> ! {
    let mut buf = [0u8; MAX_PSDU_LEN];
    loop {
        let cmd = if RX_ON.load(Ordering::Acquire) {
            match select3(radio.receive(&mut buf), COMMANDS.receive(), RX_STATE_CHANGED.wait()).await {
                Either3::First(Ok(meta)) => {
                    if let Some(rx) = received(&buf, &meta) {
                        EVENTS.send(Event::Received(rx)).await;
                    }
                    continue;
                }
                // The driver would not enter receive (busy with an ACK or ramp-down): retry.
                Either3::First(Err(_)) => {
                    Timer::after_micros(100).await;
                    continue;
                }
                Either3::Second(cmd) => cmd,
                Either3::Third(()) => continue,
            }
        } else {
            match select(COMMANDS.receive(), RX_STATE_CHANGED.wait()).await {
                Either::First(cmd) => cmd,
                Either::Second(()) => continue,
            }
        };
        match cmd {
            Command::Transmit(req) => {
                let result = transmit(&mut radio, &req).await;
                after_operation(RX_CHANNEL.load(Ordering::Acquire));
                OP_IN_FLIGHT.store(false, Ordering::Release);
                EVENTS.send(Event::TransmitDone(result)).await;
            }
            Command::EnergyScan { channel, duration_ms } => {
                let max_rssi = energy_scan(channel, duration_ms).await;
                after_operation(RX_CHANNEL.load(Ordering::Acquire));
                OP_IN_FLIGHT.store(false, Ordering::Release);
                EVENTS.send(Event::EnergyScanDone { channel, max_rssi }).await;
            }
        }
    }
}

fn received(buf: &[u8], meta: &nrf_802154::PsduMeta) -> Option<RxInfo> {
    let frame = buf.get(..usize::from(meta.len))?;
    let psdu = Psdu::with_fcs(frame, meta.crc)?;
    let acked_with_frame_pending = callouts::ACK_NOTES.lock(|notes| notes.borrow_mut().take(meta.len, meta.crc));
    Some(RxInfo {
        timestamp_us: sfd_timestamp(meta.time, psdu.len),
        psdu,
        channel: RX_CHANNEL.load(Ordering::Acquire),
        rssi: meta.power,
        lqi: meta.lqi.unwrap_or(0),
        acked_with_frame_pending,
    })
}

/// Spinel wants the time at the end of the SFD (= start of the PHR); the driver stamps the end
/// of the frame. Without a stamp (`NRF_802154_NO_TIMESTAMP`, 0) the best we have is "now".
fn sfd_timestamp(end_us: Option<u64>, psdu_len: u8) -> u64 {
    match end_us {
        // SAFETY: pure arithmetic in the driver's utilities.
        Some(end) if end != 0 => unsafe { raw::nrf_802154_timestamp_end_to_phr_convert(end, psdu_len) },
        _ => now_us(),
    }
}

/// Back to what the host asked for: receiving on `channel`, or asleep.
fn after_operation(channel: u8) {
    // SAFETY: driver calls from thread mode.
    unsafe {
        raw::nrf_802154_channel_set(channel);
        if RX_ON.load(Ordering::Acquire) {
            let _ = raw::nrf_802154_receive();
        } else {
            let _ = raw::nrf_802154_sleep();
        }
    }
}

async fn transmit(radio: &mut nrf_802154::Radio<'static>, req: &TxRequest) -> Result<Option<RxInfo>, TxError> {
    if let Some(at) = req.start_at_us {
        return transmit_at(req, at).await;
    }
    let psdu = req.psdu.as_slice();
    // The driver appends the FCS itself.
    let frame = &psdu[..psdu.len() - 2];
    // SAFETY: driver calls from thread mode, between operations.
    unsafe {
        raw::nrf_802154_channel_set(req.channel);
        raw::nrf_802154_csma_ca_max_backoffs_set(req.max_csma_backoffs);
        if let Some(p) = req.tx_power {
            raw::nrf_802154_tx_power_set(p);
        }
    }
    let mut ack = [0u8; nrf_802154::MAX_PSDU_SIZE];
    let mut result = Err(TxError::Abort);
    for _attempt in 0..=req.max_frame_retries {
        let r = if req.csma_ca {
            radio.transmit_csma_ca(frame, Some(&mut ack)).await
        } else {
            radio.transmit(frame, false, Some(&mut ack)).await
        };
        result = match r {
            Ok(Some(meta)) => Ok(ack_info(&ack, &meta, req.channel)),
            Ok(None) => Ok(None),
            Err(e) => Err(tx_error(e)),
        };
        // Like OpenThread's SubMac: retry after a missing ACK or a busy channel, not after an
        // abort.
        match result {
            Err(TxError::NoAck | TxError::ChannelAccessFailure) => continue,
            _ => break,
        }
    }
    // SAFETY: driver call from thread mode.
    unsafe { raw::nrf_802154_tx_power_set(TX_POWER.load(Ordering::Acquire)) };
    result
}

/// Preamble and SFD: 5 octets at 32 µs each.
const SHR_DURATION_US: u64 = 160;

/// A timed frame, sent once by the driver's own scheduler (`nrf_802154_transmit_raw_at`) with at
/// most one CCA, as a backoff would move it off its slot. `sfd_end_us` is when the host wants the
/// end of the SFD on air (OpenThread's `mTxDelayBaseTime + mTxDelay`).
async fn transmit_at(req: &TxRequest, sfd_end_us: u64) -> Result<Option<RxInfo>, TxError> {
    let psdu = req.psdu.as_slice();
    let metadata = raw::nrf_802154_transmit_at_metadata_t {
        // We never claim TRANSMIT_SEC: the host has secured the frame already.
        frame_props: raw::nrf_802154_transmitted_frame_props_t { is_secured: true, dynamic_data_is_set: true },
        cca: req.csma_ca,
        channel: req.channel,
        tx_power: raw::nrf_802154_tx_power_metadata_t {
            use_metadata_value: req.tx_power.is_some(),
            power: req.tx_power.unwrap_or(0),
        },
        extra_cca_attempts: 0,
        tx_timestamp_encode: false,
    };
    callouts::DONE.reset();
    // SAFETY: one operation at a time, so no timed transmission holds the buffer; the driver
    // reads it (and the metadata, during the call) until it reports the outcome, which we await
    // below without ever being cancelled.
    let err = unsafe {
        let frame = callouts::TIMED_TX.fill(psdu);
        raw::nrf_802154_transmit_raw_at(frame, sfd_end_us.saturating_sub(SHR_DURATION_US), &metadata)
    };
    if u32::from(err) != raw::NRF_802154_TX_ERROR_NONE {
        // The time has passed or the driver is busy: no slot for this frame.
        return Err(TxError::ChannelAccessFailure);
    }
    match callouts::DONE.wait().await {
        Outcome::Transmitted(ack) => Ok(ack.and_then(|a| {
            let psdu = Psdu::new(a.psdu()?)?;
            Some(RxInfo {
                timestamp_us: sfd_timestamp(Some(a.end_us), psdu.len),
                psdu,
                channel: req.channel,
                rssi: a.power,
                lqi: a.lqi,
                acked_with_frame_pending: None,
            })
        })),
        Outcome::TransmitFailed(code) => Err(tx_error(nrf_802154::Error::Transmit(code.into()))),
        // Only one operation runs at a time, so nothing else can end here.
        Outcome::EnergyDetected(_) | Outcome::EnergyDetectionFailed => Err(TxError::Abort),
    }
}

fn ack_info(ack: &[u8], meta: &nrf_802154::PsduMeta, channel: u8) -> Option<RxInfo> {
    let frame = ack.get(..usize::from(meta.len))?;
    let psdu = Psdu::with_fcs(frame, meta.crc)?;
    Some(RxInfo {
        timestamp_us: sfd_timestamp(meta.time, psdu.len),
        psdu,
        channel,
        rssi: meta.power,
        lqi: meta.lqi.unwrap_or(0),
        acked_with_frame_pending: None,
    })
}

fn tx_error(e: nrf_802154::Error) -> TxError {
    use nrf_802154::TxError as Nrf;
    match e {
        nrf_802154::Error::Transmit(Nrf::NoAck | Nrf::InvalidAck) => TxError::NoAck,
        // No air time (busy channel, MPSL denied the slot, driver busy): the host retries later.
        nrf_802154::Error::Transmit(Nrf::BusyChannel | Nrf::TimeslotDenied | Nrf::TimeslotEnded)
        | nrf_802154::Error::ScheduleTransmit => TxError::ChannelAccessFailure,
        _ => TxError::Abort,
    }
}

/// Peak energy on `channel` over `duration_ms`, measured by the driver's energy detection.
async fn energy_scan(channel: u8, duration_ms: u16) -> i8 {
    callouts::DONE.reset();
    // SAFETY: driver calls from thread mode, between operations.
    let started = unsafe {
        raw::nrf_802154_channel_set(channel);
        raw::nrf_802154_energy_detection(u32::from(duration_ms) * 1000)
    };
    if !started {
        return RSSI_INVALID;
    }
    match callouts::DONE.wait().await {
        Outcome::EnergyDetected(dbm) => dbm,
        _ => RSSI_INVALID,
    }
}
