//! The raw radio datapath values, `shared/reference/spinel.md` §4 (OpenThread
//! `ncp_base_radio.cpp` `DecodeStreamRawTxRequest` / `PackRadioFrame` / `LinkRawTransmitDone`,
//! `radio_spinel.cpp` `Transmit` / `ParseRadioFrame`). The spinel.h comment on STREAM_RAW is
//! outdated; these follow what the code sends.
//!
//! * [`TxRequest`]: `SET STREAM_RAW` from the host, non-zero TID.
//! * [`RxFrame`]: `IS STREAM_RAW` from the RCP, TID 0; also the ACK inside [`TxDone`].
//! * [`TxDone`]: `IS LAST_STATUS` with the TX request's TID once the transmission ends.

use super::data::{Reader, Writer};
use super::{Error, Result, Status};

/// `OPENTHREAD_CONFIG_MAC_MAX_CSMA_BACKOFFS_DIRECT`, used when the host omits the field.
pub const DEFAULT_MAX_CSMA_BACKOFFS: u8 = 4;
/// `OPENTHREAD_CONFIG_MAC_DEFAULT_MAX_FRAME_RETRIES_DIRECT`.
pub const DEFAULT_MAX_FRAME_RETRIES: u8 = 15;
/// `OT_RADIO_POWER_INVALID`: "use the configured TX power".
pub const TX_POWER_INVALID: i8 = 127;
/// Noise floor ot-rcp always reports.
pub const NOISE_FLOOR_UNKNOWN: i8 = -128;
/// Number of optional fields after `channel` in a TX request that this crate knows.
pub const TX_OPTIONAL_FIELDS: u8 = 10;

/// RX/ACK metadata flag: the frame was one we sent (`SPINEL_MD_FLAG_TX`).
pub const FLAG_TX: u16 = 0x0001;
/// RX metadata flag: bad FCS.
pub const FLAG_BAD_FCS: u16 = 0x0004;
/// RX metadata flag: duplicate.
pub const FLAG_DUPE: u16 = 0x0008;
/// RX metadata flag: our auto-ACK to this frame had Frame Pending set.
pub const FLAG_ACKED_FP: u16 = 0x0010;
/// RX metadata flag: our auto-ACK to this frame was secured.
pub const FLAG_ACKED_SEC: u16 = 0x0020;

/// A transmit request (`SET STREAM_RAW`).
///
/// ```text
/// d PSDU (incl. 2 FCS bytes) | C channel | C maxCsmaBackoffs | C maxFrameRetries | b csmaCa |
/// b headerUpdated | b isARetx | b securityProcessed | L txDelay | L txDelayBaseTime |
/// C rxChannelAfterTxDone | c txPower
/// ```
///
/// Only the PSDU and channel are required; absent fields take their defaults.
/// `optional_fields` records how many came after the channel so the request re-emits exactly;
/// [`TxRequest::new`] sets all of them, as `RadioSpinel::Transmit` does. Bytes after the last
/// known field are ignored (future fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRequest<'a> {
    /// The MAC frame including its 2 FCS bytes (the radio computes the FCS).
    pub psdu: &'a [u8],
    pub channel: u8,
    pub max_csma_backoffs: u8,
    pub max_frame_retries: u8,
    pub csma_ca_enabled: bool,
    pub is_header_updated: bool,
    pub is_a_retx: bool,
    pub is_security_processed: bool,
    /// Timed TX: send at `tx_delay_base_time + tx_delay` on the radio µs clock; 0 = now.
    pub tx_delay: u32,
    /// Low 32 bits of the radio time the delay counts from.
    pub tx_delay_base_time: u32,
    pub rx_channel_after_tx_done: u8,
    /// dBm, or [`TX_POWER_INVALID`] for the configured power.
    pub tx_power: i8,
    /// How many of the 10 optional fields are on the wire (0..=10).
    pub optional_fields: u8,
}

impl<'a> TxRequest<'a> {
    /// A request with every field at its default and all of them on the wire.
    pub const fn new(psdu: &'a [u8], channel: u8) -> Self {
        TxRequest {
            psdu,
            channel,
            max_csma_backoffs: DEFAULT_MAX_CSMA_BACKOFFS,
            max_frame_retries: DEFAULT_MAX_FRAME_RETRIES,
            csma_ca_enabled: true,
            is_header_updated: false,
            is_a_retx: false,
            is_security_processed: false,
            tx_delay: 0,
            tx_delay_base_time: 0,
            rx_channel_after_tx_done: channel,
            tx_power: TX_POWER_INVALID,
            optional_fields: TX_OPTIONAL_FIELDS,
        }
    }

    /// Parses the STREAM_RAW value of a SET.
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(value);
        let psdu = r.data_with_len()?;
        let channel = r.u8()?;
        let mut req = TxRequest::new(psdu, channel);
        req.optional_fields = 0;
        // Each optional field is read only while bytes remain; stop at the first absent one.
        macro_rules! opt {
            ($field:ident, $read:ident) => {
                match r.optional(|r| r.$read())? {
                    Some(v) => {
                        req.$field = v;
                        req.optional_fields += 1;
                    }
                    None => return Ok(req),
                }
            };
        }
        opt!(max_csma_backoffs, u8);
        opt!(max_frame_retries, u8);
        opt!(csma_ca_enabled, bool);
        opt!(is_header_updated, bool);
        opt!(is_a_retx, bool);
        opt!(is_security_processed, bool);
        opt!(tx_delay, u32);
        opt!(tx_delay_base_time, u32);
        opt!(rx_channel_after_tx_done, u8);
        opt!(tx_power, i8);
        Ok(req)
    }

    /// Writes the STREAM_RAW value.
    pub fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        if self.optional_fields > TX_OPTIONAL_FIELDS {
            return Err(Error::InvalidValue("TxRequest::optional_fields"));
        }
        w.data_with_len(self.psdu)?;
        w.u8(self.channel)?;
        let n = self.optional_fields;
        // Field k (1-based) goes on the wire only if at least k optional fields are requested.
        let on = |k: u8| n >= k;
        if on(1) {
            w.u8(self.max_csma_backoffs)?;
        }
        if on(2) {
            w.u8(self.max_frame_retries)?;
        }
        if on(3) {
            w.bool(self.csma_ca_enabled)?;
        }
        if on(4) {
            w.bool(self.is_header_updated)?;
        }
        if on(5) {
            w.bool(self.is_a_retx)?;
        }
        if on(6) {
            w.bool(self.is_security_processed)?;
        }
        if on(7) {
            w.u32(self.tx_delay)?;
        }
        if on(8) {
            w.u32(self.tx_delay_base_time)?;
        }
        if on(9) {
            w.u8(self.rx_channel_after_tx_done)?;
        }
        if on(10) {
            w.i8(self.tx_power)?;
        }
        Ok(())
    }
}

/// A received frame with its metadata (`IS STREAM_RAW`, TID 0), or the ACK in a TX-done.
///
/// ```text
/// d PSDU (incl. FCS; empty on error) | c RSSI | c noise floor | S flags |
/// t( C channel | C LQI | X timestamp µs ) |
/// t( i receiveError ) |
/// t( C ackKeyId | L ackFrameCounter )
/// ```
///
/// Unknown trailing fields inside each `t()` are skipped. ot-rcp always sends all three structs,
/// so all three are required here; that keeps the ACK's end unambiguous inside [`TxDone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFrame<'a> {
    pub psdu: &'a [u8],
    /// dBm.
    pub rssi: i8,
    /// dBm; ot-rcp sends [`NOISE_FLOOR_UNKNOWN`].
    pub noise_floor: i8,
    /// `FLAG_*` bits.
    pub flags: u16,
    pub channel: u8,
    pub lqi: u8,
    /// Radio µs clock at the end of the SFD.
    pub timestamp_us: u64,
    /// Raw `otError`: 0 NONE, 11 ABORT, 17 FCS, 18 NO_FRAME_RECEIVED.
    pub rx_error: u32,
    /// Key id of the enhanced ACK we sent (security), else 0.
    pub ack_key_id: u8,
    /// Frame counter of the enhanced ACK we sent, else 0.
    pub ack_frame_counter: u32,
}

impl<'a> RxFrame<'a> {
    /// What ot-rcp's `PackRadioFrame` writes when it has no frame: the "ACK" in the TX-done of
    /// a successful transmission that did not request one (empty PSDU, RSSI 0, LQI none).
    pub const NONE: RxFrame<'static> = RxFrame {
        psdu: &[],
        rssi: 0,
        noise_floor: NOISE_FLOOR_UNKNOWN,
        flags: 0,
        channel: 0,
        lqi: 0,
        timestamp_us: 0,
        rx_error: 0,
        ack_key_id: 0,
        ack_frame_counter: 0,
    };

    /// Reads the frame from `r`, leaving anything after it unread.
    pub fn read(r: &mut Reader<'a>) -> Result<Self> {
        let psdu = r.data_with_len()?;
        let rssi = r.i8()?;
        let noise_floor = r.i8()?;
        let flags = r.u16()?;
        let mut phy = r.structure()?;
        let (channel, lqi, timestamp_us) = (phy.u8()?, phy.u8()?, phy.u64()?);
        let rx_error = r.structure()?.packed()?;
        let mut mac = r.structure()?;
        let (ack_key_id, ack_frame_counter) = (mac.u8()?, mac.u32()?);
        Ok(RxFrame {
            psdu,
            rssi,
            noise_floor,
            flags,
            channel,
            lqi,
            timestamp_us,
            rx_error,
            ack_key_id,
            ack_frame_counter,
        })
    }

    /// Parses a STREAM_RAW value; bytes after the known fields are ignored.
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        RxFrame::read(&mut Reader::new(value))
    }

    /// Writes the frame.
    pub fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.data_with_len(self.psdu)?;
        w.i8(self.rssi)?;
        w.i8(self.noise_floor)?;
        w.u16(self.flags)?;
        w.structure(|s| {
            s.u8(self.channel)?;
            s.u8(self.lqi)?;
            s.u64(self.timestamp_us)
        })?;
        w.structure(|s| s.packed(self.rx_error))?;
        w.structure(|s| {
            s.u8(self.ack_key_id)?;
            s.u32(self.ack_frame_counter)
        })
    }
}

/// Security the RCP applied to a transmitted frame (sent when it updated the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxSecurity {
    pub key_id: u8,
    pub frame_counter: u32,
}

/// The end of a transmission (`IS LAST_STATUS`, the request's TID).
///
/// ```text
/// i status | b framePending | b headerUpdated |
/// [ACK in RxFrame layout, only if status == OK] | [C keyId | L frameCounter, if secured]
/// ```
///
/// ot-rcp always sends the ACK part when the status is OK, using [`RxFrame::NONE`] when the
/// frame did not request an ACK; the host fails to parse a TX-done without it. On parse, an ACK
/// is read when the status is OK and more than the 5 security bytes remain (any ACK part is
/// longer than that); whatever follows is the security trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDone<'a> {
    /// OK, NO_ACK, CCA_FAILURE, or a stack-native error.
    pub status: Status,
    /// FP bit of the received ACK.
    pub frame_pending: bool,
    /// The RCP filled in security fields / frame counter.
    pub header_updated: bool,
    pub ack: Option<RxFrame<'a>>,
    pub security: Option<TxSecurity>,
}

/// Size of the security trailer (`C` + `L`).
const SECURITY_LEN: usize = 5;

impl<'a> TxDone<'a> {
    /// A bare status report with no ACK, e.g. NO_ACK or CCA_FAILURE.
    pub const fn status(status: Status) -> Self {
        TxDone { status, frame_pending: false, header_updated: false, ack: None, security: None }
    }

    /// Parses a LAST_STATUS value sent in answer to a TX request.
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(value);
        let status = Status::from(r.packed()?);
        let frame_pending = r.bool()?;
        let header_updated = r.bool()?;
        let ack = if status == Status::Ok && r.remaining().len() > SECURITY_LEN {
            Some(RxFrame::read(&mut r)?)
        } else {
            None
        };
        let security = r.optional(|r| Ok(TxSecurity { key_id: r.u8()?, frame_counter: r.u32()? }))?;
        r.finish()?;
        Ok(TxDone { status, frame_pending, header_updated, ack, security })
    }

    /// Writes the LAST_STATUS value.
    pub fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        if self.ack.is_some() && self.status != Status::Ok {
            return Err(Error::InvalidValue("TxDone ack with a non-OK status"));
        }
        w.packed(self.status.into())?;
        w.bool(self.frame_pending)?;
        w.bool(self.header_updated)?;
        if let Some(ack) = &self.ack {
            ack.emit(w)?;
        }
        if let Some(sec) = self.security {
            w.u8(sec.key_id)?;
            w.u32(sec.frame_counter)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit_with(f: impl FnOnce(&mut Writer<'_>) -> Result<()>) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        f(&mut w).unwrap();
        w.written().to_vec()
    }

    #[test]
    fn tx_request_annotated() {
        // spinel-frames.txt "SET STREAM_RAW (transmit)", value after "82 03 71"
        #[rustfmt::skip]
        let value = [
            0x14, 0x00,                                     // d: PSDU length 20
            0x41, 0xd8, 0x2a, 0x34, 0x12, 0xff, 0xff,       //   FCF, seq 0x2a, PAN 0x1234, dst ffff
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, //   src ext addr
            0x01, 0x02, 0x03,                               //   payload
            0x00, 0x00,                                     //   FCS placeholder
            0x0f,                                           // C channel 15
            0x04,                                           // C maxCsmaBackoffs
            0x03,                                           // C maxFrameRetries
            0x01, 0x00, 0x00, 0x00,                         // b csma, headerUpdated, isARetx, secProcessed
            0x00, 0x00, 0x00, 0x00,                         // L txDelay
            0x00, 0x00, 0x00, 0x00,                         // L txDelayBaseTime
            0x0f,                                           // C rxChannelAfterTxDone
            0x7f,                                           // c txPower = OT_RADIO_POWER_INVALID
        ];
        let req = TxRequest::parse(&value).unwrap();
        assert_eq!(req.psdu.len(), 20);
        assert_eq!(req, TxRequest { max_frame_retries: 3, ..TxRequest::new(req.psdu, 15) });
        assert_eq!(emit_with(|w| req.emit(w)), value);
    }

    #[test]
    fn tx_request_optional_fields() {
        // Only PSDU and channel: everything else defaults, and re-emits as the short form.
        let value = [0x02, 0x00, 0xaa, 0xbb, 0x0b];
        let req = TxRequest::parse(&value).unwrap();
        assert_eq!(req.optional_fields, 0);
        assert_eq!(req.max_csma_backoffs, DEFAULT_MAX_CSMA_BACKOFFS);
        assert_eq!(req.rx_channel_after_tx_done, 11);
        assert!(req.csma_ca_enabled);
        assert_eq!(emit_with(|w| req.emit(w)), value);
        // Three optional fields.
        let value = [0x02, 0x00, 0xaa, 0xbb, 0x0b, 0x05, 0x00, 0x00];
        let req = TxRequest::parse(&value).unwrap();
        assert_eq!((req.optional_fields, req.max_frame_retries, req.csma_ca_enabled), (3, 0, false));
        assert_eq!(emit_with(|w| req.emit(w)), value);
        // Truncated inside an optional field.
        assert_eq!(TxRequest::parse(&[0, 0, 0x0b, 1, 1, 1, 0, 0, 0, 0, 0x10]), Err(Error::Truncated));
        // Missing channel.
        assert_eq!(TxRequest::parse(&[0, 0]), Err(Error::Truncated));
    }

    #[test]
    fn rx_frame_annotated() {
        // spinel-frames.txt "VALUE_IS STREAM_RAW (received frame)", value after "80 06 71"
        #[rustfmt::skip]
        let value = [
            0x13, 0x00,                                     // d: PSDU length 19
            0x41, 0xd8, 0x2b, 0x34, 0x12, 0xfe, 0xff,       //   FCF, seq, PAN, dst 0xfffe
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, //   src ext addr
            0xaa, 0xbb, 0x12, 0x34,                         //   payload + FCS
            0xc4,                                           // c RSSI -60
            0x80,                                           // c noise floor -128
            0x10, 0x00,                                     // S flags ACKED_FP
            0x0a, 0x00, 0x0f, 0xe0,                         // t(len 10: C chan 15, C lqi 0xe0,
            0x15, 0xcd, 0x5b, 0x07, 0, 0, 0, 0,             //   X timestamp 123456789)
            0x01, 0x00, 0x00,                               // t(len 1: i rxError 0)
            0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,       // t(len 5: C ackKeyId, L ackFrameCounter)
        ];
        let rx = RxFrame::parse(&value).unwrap();
        assert_eq!(
            rx,
            RxFrame {
                psdu: &value[2..21],
                rssi: -60,
                noise_floor: NOISE_FLOOR_UNKNOWN,
                flags: FLAG_ACKED_FP,
                channel: 15,
                lqi: 0xe0,
                timestamp_us: 123_456_789,
                rx_error: 0,
                ack_key_id: 0,
                ack_frame_counter: 0,
            }
        );
        assert_eq!(emit_with(|w| rx.emit(w)), value);
    }

    #[test]
    fn tx_done_variants() {
        // NO_ACK: "i b b" only (spinel-frames.txt)
        let v = [0x11, 0x00, 0x00];
        let d = TxDone::parse(&v).unwrap();
        assert_eq!(d, TxDone::status(Status::NoAck));
        assert_eq!(emit_with(|w| d.emit(w)), v);
        // OK with a 5-byte ACK, then a security trailer.
        let ack = RxFrame {
            psdu: &[0x02, 0x10, 0x2a, 0, 0],
            rssi: -50,
            noise_floor: -128,
            flags: 0,
            channel: 15,
            lqi: 255,
            timestamp_us: 7,
            rx_error: 0,
            ack_key_id: 0,
            ack_frame_counter: 0,
        };
        let d = TxDone {
            status: Status::Ok,
            frame_pending: true,
            header_updated: true,
            ack: Some(ack),
            security: Some(TxSecurity { key_id: 2, frame_counter: 0x0102_0304 }),
        };
        let bytes = emit_with(|w| d.emit(w));
        assert_eq!(TxDone::parse(&bytes), Ok(d));
        // Stack-native status (OT_ERROR_ABORT) packs into 3 bytes.
        let d = TxDone::status(Status::stack_native(11));
        let bytes = emit_with(|w| d.emit(w));
        assert_eq!(bytes, [0x8b, 0x80, 0x01, 0x00, 0x00]);
        assert_eq!(TxDone::parse(&bytes), Ok(d));
        // Inconsistent: ACK with a failure status.
        let bad = TxDone { ack: Some(ack), ..TxDone::status(Status::NoAck) };
        let mut buf = [0u8; 64];
        assert!(bad.emit(&mut Writer::new(&mut buf)).is_err());
    }
}
