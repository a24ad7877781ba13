//! The 802.15.4 radio the RCP drives: implemented by the nRF52840 driver and by the simulator's
//! virtual medium. Capabilities follow OpenThread's `otPlatRadio*` contract
//! (`shared/reference/spinel.md` §4–§5; `OT_RADIO_CAPS_*`).
//!
//! Split of work: the radio does everything with a deadline shorter than a host round trip —
//! auto-ACK with Frame Pending from the source-match table (192 µs turnaround), CSMA-CA
//! backoffs, retries, ACK wait, timed TX, energy detection, address filtering, µs timestamps.
//! The [`Rcp`](crate::rcp::Rcp) machine only translates Spinel to calls on this trait, and
//! radio completions ([`RadioEvent`]) back to Spinel.
//!
//! Calls that start an operation ([`Radio::transmit`], [`Radio::energy_scan`]) return at once;
//! the outcome arrives later as a [`RadioEvent`] the shell passes to
//! [`Rcp::handle_radio_event`](crate::rcp::Rcp::handle_radio_event).
//!
//! Extended addresses are in Spinel's `E` order (EUI-64 as written, most significant byte
//! first), which is the reverse of the little-endian order they have inside an 802.15.4 frame.

use core::fmt;

use crate::spinel::{RadioCaps, Status};

/// Why a radio call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadioError {
    /// A table (source match) is full.
    NoBufs,
    /// The entry to remove is not in the table.
    NotFound,
    /// The radio is disabled or in a state that forbids the call.
    InvalidState,
    /// An operation (transmit, scan) is already running.
    Busy,
    /// A value is out of range (channel, power).
    InvalidArgument,
    /// The hardware cannot do this.
    NotCapable,
}

impl fmt::Display for RadioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RadioError::NoBufs => "radio table full",
            RadioError::NotFound => "radio table entry not found",
            RadioError::InvalidState => "radio in the wrong state for this call",
            RadioError::Busy => "radio busy with another operation",
            RadioError::InvalidArgument => "radio argument out of range",
            RadioError::NotCapable => "radio cannot do this",
        })
    }
}

impl From<RadioError> for Status {
    fn from(e: RadioError) -> Status {
        match e {
            RadioError::NoBufs => Status::Nomem,
            RadioError::NotFound => Status::ItemNotFound,
            RadioError::InvalidState => Status::InvalidState,
            RadioError::Busy => Status::Busy,
            RadioError::InvalidArgument => Status::InvalidArgument,
            RadioError::NotCapable => Status::NotCapable,
        }
    }
}

/// A frame to send, with what the host asked for in its STREAM_RAW TX metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxFrame<'a> {
    /// MAC frame including 2 FCS bytes, which the radio fills in.
    pub psdu: &'a [u8],
    pub channel: u8,
    /// Do CSMA-CA before each attempt; if false, send without CCA.
    pub csma_ca: bool,
    pub max_csma_backoffs: u8,
    /// Retries after the first attempt when an ACK was requested and none came.
    pub max_frame_retries: u8,
    /// Timed TX: start at this radio time (µs), else as soon as possible.
    pub start_at_us: Option<u64>,
    /// Per-frame power in dBm, else the configured power.
    pub tx_power: Option<i8>,
    /// Channel to listen on after the transmission.
    pub rx_channel_after: u8,
}

/// A frame the radio received (or the ACK to our transmission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedFrame<'a> {
    /// MAC frame including its 2 FCS bytes.
    pub psdu: &'a [u8],
    pub channel: u8,
    /// dBm.
    pub rssi: i8,
    pub lqi: u8,
    /// Radio µs clock at the end of the SFD.
    pub timestamp_us: u64,
    /// Our auto-ACK to this frame had Frame Pending set (source-match hit).
    pub acked_with_frame_pending: bool,
}

/// Why a transmission failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// ACK requested, none received after all retries.
    NoAck,
    /// Channel busy through all CSMA backoffs.
    ChannelAccessFailure,
    /// Aborted (e.g. by sleep or reset).
    Abort,
}

/// `OT_ERROR_ABORT`, reported to the host as a stack-native status.
const OT_ERROR_ABORT: u16 = 11;

impl From<TxError> for Status {
    fn from(e: TxError) -> Status {
        match e {
            TxError::NoAck => Status::NoAck,
            TxError::ChannelAccessFailure => Status::CcaFailure,
            TxError::Abort => Status::stack_native(OT_ERROR_ABORT),
        }
    }
}

/// Something the radio finished or received; the shell passes it to the RCP machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadioEvent<'a> {
    /// A frame passed the address filter (or any frame, when promiscuous).
    Received(ReceivedFrame<'a>),
    /// The transmission started by [`Radio::transmit`] ended: the ACK (if one was requested) or
    /// why it failed.
    TransmitDone(Result<Option<ReceivedFrame<'a>>, TxError>),
    /// The scan started by [`Radio::energy_scan`] ended.
    EnergyScanDone { channel: u8, max_rssi: i8 },
}

/// An IEEE 802.15.4 2.4 GHz O-QPSK radio with OpenThread-RCP-level features.
pub trait Radio {
    /// Factory EUI-64 (PROP_HWADDR).
    fn eui64(&self) -> [u8; 8];
    /// What the radio does in hardware/driver (PROP_RADIO_CAPS).
    fn caps(&self) -> RadioCaps;
    /// Receive sensitivity in dBm.
    fn rx_sensitivity(&self) -> i8;
    /// Current RSSI on the channel in dBm (PHY_RSSI).
    fn rssi(&mut self) -> i8;

    /// Power the radio up or down (PHY_ENABLED).
    fn set_enabled(&mut self, enabled: bool) -> Result<(), RadioError>;
    /// Tune to `channel` (11..=26).
    fn set_channel(&mut self, channel: u8) -> Result<(), RadioError>;
    /// Default TX power; returns the power actually set, as radios have discrete steps.
    fn set_tx_power(&mut self, dbm: i8) -> Result<i8, RadioError>;
    /// CCA energy threshold; returns the threshold actually set.
    fn set_cca_threshold(&mut self, dbm: i8) -> Result<i8, RadioError>;
    /// PAN id for the address filter and auto-ACK.
    fn set_pan_id(&mut self, pan_id: u16);
    /// Short address for the address filter.
    fn set_short_address(&mut self, addr: u16);
    /// Extended address for the address filter (Spinel `E` order).
    fn set_extended_address(&mut self, addr: [u8; 8]);
    /// Accept every frame, without filtering or auto-ACK.
    fn set_promiscuous(&mut self, on: bool);

    /// Receive on `channel` (leaves sleep).
    fn receive(&mut self, channel: u8) -> Result<(), RadioError>;
    /// Stop receiving to save power.
    fn sleep(&mut self) -> Result<(), RadioError>;
    /// Start a transmission with CSMA-CA, retries and ACK wait as `frame` says; the outcome
    /// comes back as [`RadioEvent::TransmitDone`]. One at a time.
    fn transmit(&mut self, frame: &TxFrame<'_>) -> Result<(), RadioError>;
    /// Start measuring the peak energy on `channel` for `duration_ms`; the result comes back
    /// as [`RadioEvent::EnergyScanDone`].
    fn energy_scan(&mut self, channel: u8, duration_ms: u16) -> Result<(), RadioError>;

    /// When disabled, every ACK to a data request has Frame Pending set (OpenThread's rule).
    fn set_src_match_enabled(&mut self, enabled: bool);
    fn add_src_match_short(&mut self, addr: u16) -> Result<(), RadioError>;
    fn remove_src_match_short(&mut self, addr: u16) -> Result<(), RadioError>;
    fn clear_src_match_short(&mut self);
    fn add_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError>;
    fn remove_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError>;
    fn clear_src_match_extended(&mut self);

    /// MAC keys for TX security (RCP_MAC_KEY); only radios claiming TRANSMIT_SEC use them.
    fn set_mac_keys(&mut self, _key_id: u8, _prev: &[u8; 16], _curr: &[u8; 16], _next: &[u8; 16]) {}
    /// MAC frame counter (RCP_MAC_FRAME_COUNTER); `only_if_larger` never lowers it.
    fn set_mac_frame_counter(&mut self, _counter: u32, _only_if_larger: bool) {}
}

/// Fixed-capacity source-match tables deciding Frame Pending in auto-ACKs, for radio
/// implementations to embed (the nRF driver reads it from its ACK path, the simulator from its
/// medium). `S` short and `E` extended entries.
#[derive(Debug, Clone)]
pub struct SrcMatchTable<const S: usize, const E: usize> {
    enabled: bool,
    short: [u16; S],
    short_len: usize,
    ext: [[u8; 8]; E],
    ext_len: usize,
}

impl<const S: usize, const E: usize> Default for SrcMatchTable<S, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const S: usize, const E: usize> SrcMatchTable<S, E> {
    /// Empty and disabled.
    pub const fn new() -> Self {
        SrcMatchTable { enabled: false, short: [0; S], short_len: 0, ext: [[0; 8]; E], ext_len: 0 }
    }

    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn shorts(&self) -> &[u16] {
        &self.short[..self.short_len]
    }

    pub fn extendeds(&self) -> &[[u8; 8]] {
        &self.ext[..self.ext_len]
    }

    /// Adds `addr`; adding one already present is a no-op.
    pub fn add_short(&mut self, addr: u16) -> Result<(), RadioError> {
        add(&mut self.short, &mut self.short_len, addr)
    }

    pub fn remove_short(&mut self, addr: u16) -> Result<(), RadioError> {
        remove(&mut self.short, &mut self.short_len, addr)
    }

    pub fn clear_short(&mut self) {
        self.short_len = 0;
    }

    /// Adds `addr` (Spinel `E` order); adding one already present is a no-op.
    pub fn add_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        add(&mut self.ext, &mut self.ext_len, addr)
    }

    pub fn remove_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        remove(&mut self.ext, &mut self.ext_len, addr)
    }

    pub fn clear_extended(&mut self) {
        self.ext_len = 0;
    }

    /// Frame Pending for an ACK to a frame from short address `addr`.
    pub fn pending_for_short(&self, addr: u16) -> bool {
        !self.enabled || self.shorts().contains(&addr)
    }

    /// Frame Pending for an ACK to a frame from extended address `addr` (Spinel `E` order).
    pub fn pending_for_extended(&self, addr: [u8; 8]) -> bool {
        !self.enabled || self.extendeds().contains(&addr)
    }
}

fn add<T: PartialEq + Copy>(slots: &mut [T], len: &mut usize, v: T) -> Result<(), RadioError> {
    if slots[..*len].contains(&v) {
        return Ok(());
    }
    let slot = slots.get_mut(*len).ok_or(RadioError::NoBufs)?;
    *slot = v;
    *len += 1;
    Ok(())
}

fn remove<T: PartialEq + Copy>(slots: &mut [T], len: &mut usize, v: T) -> Result<(), RadioError> {
    let i = slots[..*len].iter().position(|x| *x == v).ok_or(RadioError::NotFound)?;
    // Order does not matter: move the last entry into the hole.
    slots[i] = slots[*len - 1];
    *len -= 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn src_match_table() {
        let mut t = SrcMatchTable::<2, 1>::new();
        // Disabled: everyone gets Frame Pending.
        assert!(t.pending_for_short(0x1234));
        t.set_enabled(true);
        assert!(!t.pending_for_short(0x1234));
        t.add_short(0x1234).unwrap();
        t.add_short(0x1234).unwrap(); // duplicate is a no-op
        t.add_short(0x0401).unwrap();
        assert_eq!(t.add_short(0x9999), Err(RadioError::NoBufs));
        assert!(t.pending_for_short(0x0401));
        t.remove_short(0x1234).unwrap();
        assert_eq!(t.shorts(), [0x0401]);
        assert_eq!(t.remove_short(0x1234), Err(RadioError::NotFound));
        let ext = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        t.add_extended(ext).unwrap();
        assert!(t.pending_for_extended(ext));
        assert_eq!(t.add_extended([0; 8]), Err(RadioError::NoBufs));
        t.clear_extended();
        t.clear_short();
        assert!(!t.pending_for_extended(ext));
        assert!(t.shorts().is_empty());
    }

    #[test]
    fn error_statuses() {
        assert_eq!(Status::from(TxError::NoAck), Status::NoAck);
        assert_eq!(Status::from(TxError::ChannelAccessFailure), Status::CcaFailure);
        assert_eq!(u32::from(Status::from(TxError::Abort)), 16395);
        assert_eq!(Status::from(RadioError::NoBufs), Status::Nomem);
    }
}
