//! Our side of the 802.15.4 driver's completion callouts, for the driver functions the safe
//! `nrf-802154` crate does not offer: timed transmission (`nrf_802154_transmit_raw_at`) and
//! energy detection (`nrf_802154_energy_detection`), plus RX timestamps.
//!
//! The crate defines the driver's callouts itself and keeps what they report private. The
//! linker's `--wrap` (set in `build.rs`) sends the driver's calls of six callouts here instead;
//! each `__wrap_X` takes what is ours and hands the rest to the crate (its `X` is reachable as
//! `__real_X`; the crate's energy-detection and ACK-started callouts are unused or empty, so
//! those are not forwarded). They are called from `nrf_802154_co.c`: five in the driver's
//! notification interrupt (EGU0_SWI0), which the MPSL critical section masks, so `Signal` and
//! the blocking mutex are safe there; `nrf_802154_tx_ack_started` straight from the radio
//! interrupt, above that critical section, so it only stores an atomic.
//!
//! Ours are: a transmission from [`TIMED_TX`] (only [`crate::radio`] starts those), any energy
//! detection (the crate never starts one), the time and the ACK's Frame Pending bit of each
//! received frame.

use core::cell::{RefCell, UnsafeCell};
use core::sync::atomic::{AtomicBool, Ordering};

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use nrf_802154::raw;

use crate::mac_frame::{AckNotes, FCF_FRAME_PENDING};

/// What a driver operation we started ended with.
#[derive(Clone, Copy)]
pub enum Outcome {
    /// Sent; the ACK as `[PHR, PSDU…]` (FCS included), RSSI, LQI and the time of its last symbol.
    Transmitted(Option<Ack>),
    /// The driver's `nrf_802154_tx_error_t`.
    TransmitFailed(u8),
    /// Peak energy in dBm.
    EnergyDetected(i8),
    EnergyDetectionFailed,
}

#[derive(Clone, Copy)]
pub struct Ack {
    pub frame: [u8; 128],
    pub power: i8,
    pub lqi: u8,
    pub end_us: u64,
}

impl Ack {
    /// The PSDU (FCS included), or `None` for a malformed PHR.
    pub fn psdu(&self) -> Option<&[u8]> {
        let len = usize::from(self.frame[0]);
        self.frame.get(1..1 + len).filter(|p| p.len() >= 3)
    }
}

pub static DONE: Signal<CriticalSectionRawMutex, Outcome> = Signal::new();

/// The buffer of a timed transmission, `[PHR, PSDU…]`; the driver reads it until it reports
/// the outcome. Its address tells our transmissions from the crate's. Word-aligned like the
/// driver's own buffers, as the radio's EasyDMA reads it.
#[repr(C, align(4))]
pub struct TxBuffer(UnsafeCell<[u8; 128]>);

// SAFETY: written only by the radio task while no timed transmission is in flight, then read only
// by the driver until `DONE` fires.
unsafe impl Sync for TxBuffer {}

impl TxBuffer {
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.0.get().cast()
    }

    /// Writes `[PHR, psdu…]` (the PHR counts the FCS, which `psdu` includes) and returns the
    /// pointer to hand to the driver.
    ///
    /// # Safety
    /// No transmission from this buffer may be in flight.
    pub unsafe fn fill(&self, psdu: &[u8]) -> *mut u8 {
        // SAFETY: the caller guarantees the driver does not hold the buffer.
        let buf = unsafe { &mut *self.0.get() };
        let len = psdu.len().min(buf.len() - 1);
        buf[0] = len as u8;
        buf[1..1 + len].copy_from_slice(&psdu[..len]);
        self.as_mut_ptr()
    }
}

pub static TIMED_TX: TxBuffer = TxBuffer(UnsafeCell::new([0; 128]));

unsafe extern "C" {
    fn __real_nrf_802154_transmitted_raw(p_frame: *mut u8, p_metadata: *const raw::nrf_802154_transmit_done_metadata_t);
    fn __real_nrf_802154_transmit_failed(
        p_frame: *mut u8,
        error: raw::nrf_802154_tx_error_t,
        p_metadata: *const raw::nrf_802154_transmit_done_metadata_t,
    );
}

#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_nrf_802154_transmitted_raw(
    p_frame: *mut u8,
    p_metadata: *const raw::nrf_802154_transmit_done_metadata_t,
) {
    if p_frame != TIMED_TX.as_mut_ptr() {
        // SAFETY: forwarding the driver's own arguments to the crate's callout.
        unsafe { __real_nrf_802154_transmitted_raw(p_frame, p_metadata) };
        return;
    }
    // SAFETY: the driver passes valid metadata; `p_ack` is null or a buffer of PHR + PSDU,
    // which we must hand back with `nrf_802154_buffer_free_raw`.
    let ack = unsafe {
        let done = &(*p_metadata).data.transmitted;
        if done.p_ack.is_null() {
            None
        } else {
            let mut frame = [0u8; 128];
            let total = (usize::from(*done.p_ack) + 1).min(frame.len());
            frame[..total].copy_from_slice(core::slice::from_raw_parts(done.p_ack, total));
            raw::nrf_802154_buffer_free_raw(done.p_ack);
            Some(Ack { frame, power: done.power, lqi: done.lqi, end_us: done.time })
        }
    };
    DONE.signal(Outcome::Transmitted(ack));
}

#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_nrf_802154_transmit_failed(
    p_frame: *mut u8,
    error: raw::nrf_802154_tx_error_t,
    p_metadata: *const raw::nrf_802154_transmit_done_metadata_t,
) {
    if p_frame != TIMED_TX.as_mut_ptr() {
        // SAFETY: forwarding the driver's own arguments to the crate's callout.
        unsafe { __real_nrf_802154_transmit_failed(p_frame, error, p_metadata) };
        return;
    }
    DONE.signal(Outcome::TransmitFailed(error));
}

#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_nrf_802154_energy_detected(p_result: *const raw::nrf_802154_energy_detected_t) {
    // SAFETY: the driver passes a valid result for the duration of the call.
    let dbm = unsafe { p_result.as_ref() }.map_or(i8::MIN, |r| r.ed_dbm);
    DONE.signal(Outcome::EnergyDetected(dbm));
}

#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_nrf_802154_energy_detection_failed(_error: raw::nrf_802154_ed_error_t) {
    DONE.signal(Outcome::EnergyDetectionFailed);
}

/// Frame Pending of the ACK we last started sending; the driver calls
/// `nrf_802154_tx_ack_started` before it reports the frame that ACK answers.
static ACK_FRAME_PENDING: AtomicBool = AtomicBool::new(false);

/// Frame Pending of our ACK to each received frame, until the RCP loop asks for it (the crate's
/// RX queue has no room for it). As deep as that queue.
pub static ACK_NOTES: Mutex<CriticalSectionRawMutex, RefCell<AckNotes<16>>> = Mutex::new(RefCell::new(AckNotes::new()));

#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_nrf_802154_tx_ack_started(p_data: *const u8) {
    // `p_data` is the ACK as PHR then PSDU, so the frame control field starts at index 1.
    // SAFETY: the driver passes its ACK buffer, at least PHR + FCF long, for the call.
    let pending = !p_data.is_null() && unsafe { *p_data.add(1) } & FCF_FRAME_PENDING != 0;
    ACK_FRAME_PENDING.store(pending, Ordering::Release);
}

/// The crate's `nrf_802154_received_raw` queues frames without a time; its
/// `nrf_802154_received_timestamp_raw` does the same with one. Give it the time the driver
/// recorded for the end of this frame, and note the Frame Pending bit of our ACK to it.
#[unsafe(no_mangle)]
unsafe extern "C" fn __wrap_nrf_802154_received_raw(p_data: *mut u8, power: i8, lqi: u8) {
    // Cleared, so that a later frame we did not ACK does not inherit it.
    let pending = ACK_FRAME_PENDING.swap(false, Ordering::AcqRel);
    // SAFETY: `p_data` is PHR then PSDU (FCS included), valid until the crate frees it below.
    let phr = unsafe { *p_data };
    if (3..=127).contains(&phr) {
        // SAFETY: as above; the FCS is the last two of the `phr` bytes after the PHR.
        let fcs = unsafe { u16::from_le_bytes([*p_data.add(usize::from(phr) - 1), *p_data.add(usize::from(phr))]) };
        ACK_NOTES.lock(|notes| notes.borrow_mut().push(phr - 2, fcs, pending));
    }
    // SAFETY: plain-data struct filled by the driver; then the crate's callout with the driver's
    // own arguments (it frees the buffer).
    unsafe {
        let mut stamps = core::mem::zeroed::<raw::nrf_802154_stat_timestamps_t>();
        raw::nrf_802154_stat_timestamps_get(&mut stamps);
        raw::nrf_802154_received_timestamp_raw(p_data, power, lqi, stamps.last_rx_end_timestamp);
    }
}
