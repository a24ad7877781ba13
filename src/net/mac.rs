//! IEEE 802.15.4 MAC frames (IEEE 802.15.4-2006 §7.2): data, ACK, MAC command (Data Request),
//! with short or extended addresses and PAN ID compression.
//!
//! ```text
//!  octets: 2          1        0/2       0/2/8     0/2      0/2/8     n         2
//!        +----------+--------+---------+---------+--------+---------+---------+-----+
//!        | frame    | seq    | dst PAN | dst     | src PAN| src     | payload | FCS |
//!        | control  | number |         | address |        | address |         |     |
//!        +----------+--------+---------+---------+--------+---------+---------+-----+
//! ```
//!
//! Parsing and emitting the header is delegated to `smoltcp::wire::ieee802154`; this file adds
//! the FCS (CRC-16/KERMIT, little-endian on air), the command identifier, and a `Repr` in the
//! form the rest of `net` uses (addresses as integers / EUI-64 in canonical order).
//!
//! Panic rules: `MacFrame::parse` takes untrusted bytes and never panics; `emit` sizes its own
//! buffer.

use smoltcp::wire::{
    Ieee802154Address, Ieee802154Frame, Ieee802154FrameType, Ieee802154FrameVersion, Ieee802154Pan, Ieee802154Repr,
};

/// Largest PSDU, FCS included (aMaxPHYPacketSize).
pub const MAX_PSDU: usize = 127;
/// FCS length.
pub const FCS_LEN: usize = 2;
/// The broadcast short address.
pub const BROADCAST: u16 = 0xffff;
/// MAC command identifier of a Data Request (IEEE 802.15.4-2006 Table 82).
pub const CMD_DATA_REQUEST: u8 = 0x04;

/// A MAC address. Extended addresses are kept in canonical EUI-64 order (the frame carries them
/// reversed, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MacAddr {
    Short(u16),
    Ext([u8; 8]),
}

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr::Short(BROADCAST);

    pub fn is_broadcast(&self) -> bool {
        *self == MacAddr::BROADCAST
    }

    fn to_smoltcp(self) -> Ieee802154Address {
        match self {
            MacAddr::Short(s) => Ieee802154Address::Short(s.to_be_bytes()),
            MacAddr::Ext(e) => Ieee802154Address::Extended(e),
        }
    }

    fn from_smoltcp(a: Ieee802154Address) -> Option<MacAddr> {
        match a {
            Ieee802154Address::Absent => None,
            Ieee802154Address::Short(s) => Some(MacAddr::Short(u16::from_be_bytes(s))),
            Ieee802154Address::Extended(e) => Some(MacAddr::Ext(e)),
        }
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MacAddr::Short(s) => write!(f, "{s:04x}"),
            MacAddr::Ext(e) => {
                for (i, b) in e.iter().enumerate() {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// What the frame is. Command frames carry their command identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Beacon,
    Data,
    Ack,
    /// A MAC command; `CMD_DATA_REQUEST` is the only one the MAC layer acts on.
    Command(u8),
    /// Reserved frame types (multipurpose, fragment, extended) kept for logging.
    Unknown(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("802.15.4 frame too short or too long ({0} bytes)")]
    Length(usize),
    #[error("malformed 802.15.4 header")]
    Malformed,
    #[error("secured 802.15.4 frames are not supported")]
    Secured,
    #[error("MAC payload of {0} bytes does not fit one frame")]
    TooLong(usize),
    #[error("only frames with a PAN and both addresses are emitted")]
    Unsupported,
}

/// A parsed MAC header (the payload is returned beside it, borrowed from the PSDU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacFrame {
    pub kind: FrameKind,
    pub seq: Option<u8>,
    pub frame_pending: bool,
    pub ack_request: bool,
    /// Destination PAN (the source PAN when the destination is absent).
    pub pan: Option<u16>,
    pub dst: Option<MacAddr>,
    pub src: Option<MacAddr>,
}

impl MacFrame {
    /// A data frame within one PAN (PAN ID compressed when both addresses are present). ACK is
    /// requested for unicast only: broadcasts are never acknowledged.
    pub fn data(seq: u8, pan: u16, dst: MacAddr, src: MacAddr) -> MacFrame {
        MacFrame {
            kind: FrameKind::Data,
            seq: Some(seq),
            frame_pending: false,
            ack_request: !dst.is_broadcast(),
            pan: Some(pan),
            dst: Some(dst),
            src: Some(src),
        }
    }

    /// A Data Request command, as a sleepy child polls its parent.
    pub fn data_request(seq: u8, pan: u16, dst: MacAddr, src: MacAddr) -> MacFrame {
        MacFrame { kind: FrameKind::Command(CMD_DATA_REQUEST), ..MacFrame::data(seq, pan, dst, src) }
    }

    fn to_smoltcp(self) -> Ieee802154Repr {
        let frame_type = match self.kind {
            FrameKind::Beacon => Ieee802154FrameType::Beacon,
            FrameKind::Data => Ieee802154FrameType::Data,
            FrameKind::Ack => Ieee802154FrameType::Acknowledgement,
            FrameKind::Command(_) => Ieee802154FrameType::MacCommand,
            FrameKind::Unknown(n) => Ieee802154FrameType::Unknown(n),
        };
        let both = self.dst.is_some() && self.src.is_some();
        Ieee802154Repr {
            frame_type,
            security_enabled: false,
            frame_pending: self.frame_pending,
            ack_request: self.ack_request,
            sequence_number: self.seq,
            // One PAN only: with both addresses present the source PAN is always elided.
            pan_id_compression: both,
            frame_version: Ieee802154FrameVersion::Ieee802154_2006,
            dst_pan_id: self.dst.and(self.pan).map(Ieee802154Pan),
            dst_addr: self.dst.map(MacAddr::to_smoltcp),
            src_pan_id: if self.dst.is_none() { self.pan.map(Ieee802154Pan) } else { None },
            src_addr: self.src.map(MacAddr::to_smoltcp),
        }
    }

    /// Header length without the command identifier.
    fn mhr_len(&self) -> usize {
        let addr = |a: Option<MacAddr>| match a {
            None => 0,
            Some(MacAddr::Short(_)) => 2,
            Some(MacAddr::Ext(_)) => 8,
        };
        let pans = match (self.dst, self.src, self.pan) {
            (_, _, None) => 0,
            (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => 2,
            (None, None, Some(_)) => 0,
        };
        3 + pans + addr(self.dst) + addr(self.src)
    }

    /// PSDU length for `payload_len` bytes of MAC payload, FCS included.
    pub fn psdu_len(&self, payload_len: usize) -> usize {
        let cmd = usize::from(matches!(self.kind, FrameKind::Command(_)));
        self.mhr_len() + cmd + payload_len + FCS_LEN
    }

    /// Largest MAC payload a frame with this header can carry.
    pub fn max_payload(&self) -> usize {
        MAX_PSDU.saturating_sub(self.psdu_len(0))
    }

    /// Emits header, command identifier, payload and FCS. Frames without a PAN or without
    /// both addresses are refused: the border router never sends them.
    pub fn emit(&self, payload: &[u8]) -> Result<Vec<u8>, MacError> {
        if self.pan.is_none() || self.dst.is_none() || self.src.is_none() {
            return Err(MacError::Unsupported);
        }
        let len = self.psdu_len(payload.len());
        if len > MAX_PSDU {
            return Err(MacError::TooLong(payload.len()));
        }
        let mut buf = vec![0u8; len];
        let mhr = self.mhr_len();
        {
            let mut frame = Ieee802154Frame::new_unchecked(&mut buf[..mhr]);
            self.to_smoltcp().emit(&mut frame);
        }
        let mut at = mhr;
        if let FrameKind::Command(id) = self.kind {
            buf[at] = id;
            at += 1;
        }
        buf[at..at + payload.len()].copy_from_slice(payload);
        fill_fcs(&mut buf);
        Ok(buf)
    }

    /// Parses a PSDU whose last two bytes are the FCS. The FCS is not checked here: the radio
    /// (RCP) drops frames with a bad CRC and some report other bytes in its place; use
    /// [`fcs_ok`] where the bytes are known to be the real FCS (simulator, pcap).
    pub fn parse(psdu: &[u8]) -> Result<(MacFrame, &[u8]), MacError> {
        if psdu.len() < 3 + FCS_LEN || psdu.len() > MAX_PSDU {
            return Err(MacError::Length(psdu.len()));
        }
        let body = &psdu[..psdu.len() - FCS_LEN];
        let frame = Ieee802154Frame::new_checked(body).map_err(|_| MacError::Malformed)?;
        if frame.security_enabled() {
            return Err(MacError::Secured);
        }
        // 2015 frames (sequence suppression, IEs) are not what 6LoWPAN nodes send us.
        if !matches!(
            frame.frame_version(),
            Ieee802154FrameVersion::Ieee802154_2003 | Ieee802154FrameVersion::Ieee802154_2006
        ) {
            return Err(MacError::Malformed);
        }
        let repr = Ieee802154Repr::parse(&frame).map_err(|_| MacError::Malformed)?;
        let mhr = header_len_2006(u16::from_le_bytes([body[0], body[1]]));
        let mut payload = body.get(mhr..).ok_or(MacError::Malformed)?;
        let kind = match repr.frame_type {
            Ieee802154FrameType::Beacon => FrameKind::Beacon,
            Ieee802154FrameType::Data => FrameKind::Data,
            Ieee802154FrameType::Acknowledgement => FrameKind::Ack,
            Ieee802154FrameType::MacCommand => {
                let (&id, rest) = payload.split_first().ok_or(MacError::Malformed)?;
                payload = rest;
                FrameKind::Command(id)
            }
            Ieee802154FrameType::Multipurpose => FrameKind::Unknown(0b101),
            Ieee802154FrameType::FragmentOrFrak => FrameKind::Unknown(0b110),
            Ieee802154FrameType::Extended => FrameKind::Unknown(0b111),
            Ieee802154FrameType::Unknown(n) => FrameKind::Unknown(n),
        };
        let pan = repr.dst_pan_id.or(repr.src_pan_id).map(|p| p.0);
        let mac = MacFrame {
            kind,
            seq: repr.sequence_number,
            frame_pending: repr.frame_pending,
            ack_request: repr.ack_request,
            pan,
            dst: repr.dst_addr.and_then(MacAddr::from_smoltcp),
            src: repr.src_addr.and_then(MacAddr::from_smoltcp),
        };
        Ok((mac, payload))
    }
}

/// MAC header length of a 2003/2006 frame from its frame control field: the source PAN is
/// elided when PAN ID compression is set and a destination is present.
fn header_len_2006(fc: u16) -> usize {
    let size = |mode: u16| match mode {
        2 => 2,
        3 => 8,
        _ => 0,
    };
    let (dst, src, pan_comp) = ((fc >> 10) & 3, (fc >> 14) & 3, fc & 0x40 != 0);
    let mut len = 3;
    if dst != 0 {
        len += 2 + size(dst);
    }
    if src != 0 {
        len += if pan_comp && dst != 0 { 0 } else { 2 };
        len += size(src);
    }
    len
}

/// CRC-16/KERMIT (poly 0x1021 reflected, init 0), the 802.15.4 FCS.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x8408 } else { crc >> 1 };
        }
    }
    crc
}

/// Writes the FCS into the last two bytes. No-op on buffers shorter than the FCS.
pub fn fill_fcs(psdu: &mut [u8]) {
    if let Some(n) = psdu.len().checked_sub(FCS_LEN) {
        let crc = crc16(&psdu[..n]).to_le_bytes();
        psdu[n..].copy_from_slice(&crc);
    }
}

/// Whether the last two bytes are the FCS of the rest.
pub fn fcs_ok(psdu: &[u8]) -> bool {
    match psdu.len().checked_sub(FCS_LEN) {
        Some(n) => crc16(&psdu[..n]).to_le_bytes() == psdu[n..],
        None => false,
    }
}

/// Sets or clears the frame-pending bit of an emitted PSDU and refreshes its FCS.
pub fn set_frame_pending(psdu: &mut [u8], pending: bool) {
    if psdu.len() < 3 + FCS_LEN {
        return;
    }
    if pending {
        psdu[0] |= 0x10;
    } else {
        psdu[0] &= !0x10;
    }
    fill_fcs(psdu);
}

#[cfg(test)]
mod tests {
    use super::*;

    // A data frame as RIOT sends it to its parent: short addresses, PAN compression, ACK.
    const DATA_SHORT: [u8; 14] = [
        0x61, 0x98, // FC: data, ack request, PAN ID compression; dst+src short, version 2006
        0x2a, // sequence number 42
        0x23, 0x00, // dst PAN 0x0023
        0x01, 0x00, // dst short 0x0001
        0x34, 0x12, // src short 0x1234
        0xde, 0xad, 0xbe, // payload
        0x00, 0x00, // FCS (filled below)
    ];

    #[test]
    fn data_short_vector_round_trips() {
        let mut v = DATA_SHORT;
        fill_fcs(&mut v);
        let (f, payload) = MacFrame::parse(&v).unwrap();
        assert_eq!(f, MacFrame::data(42, 0x23, MacAddr::Short(1), MacAddr::Short(0x1234)));
        assert_eq!(payload, &[0xde, 0xad, 0xbe]);
        assert_eq!(f.emit(payload).unwrap(), v);
        assert!(fcs_ok(&v));
    }

    #[test]
    fn extended_addresses_are_reversed_on_air() {
        let dst = MacAddr::Ext([0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
        let src = MacAddr::Ext([0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11]);
        let psdu = MacFrame::data(1, 0xabcd, dst, src).emit(&[9]).unwrap();
        #[rustfmt::skip]
        let want = [
            0x61, 0xdc, // FC: data, AR, PAN comp; dst+src extended, version 2006
            0x01, // seq
            0xcd, 0xab, // dst PAN
            0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x02, // dst, little-endian
            0x11, 0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, // src, little-endian
            0x09, // payload
        ];
        assert_eq!(&psdu[..psdu.len() - 2], &want);
        assert_eq!(psdu.len(), 21 + 1 + 2);
        let (f, p) = MacFrame::parse(&psdu).unwrap();
        assert_eq!((f.dst, f.src, p), (Some(dst), Some(src), &[9u8][..]));
    }

    #[test]
    fn broadcast_has_no_ack_request() {
        let f = MacFrame::data(7, 0x23, MacAddr::BROADCAST, MacAddr::Short(1));
        assert!(!f.ack_request);
        let psdu = f.emit(&[]).unwrap();
        assert_eq!(psdu[0] & 0x20, 0);
        assert_eq!(&psdu[5..7], &[0xff, 0xff]);
    }

    #[test]
    fn data_request_vector() {
        #[rustfmt::skip]
        let mut v = [
            0x63, 0x98, // FC: MAC command, AR, PAN comp; short/short
            0x05, // seq
            0x23, 0x00, // PAN
            0x01, 0x00, // dst 0x0001 (parent)
            0x02, 0x00, // src 0x0002 (sleepy child)
            0x04, // command: Data Request
            0x00, 0x00, // FCS
        ];
        fill_fcs(&mut v);
        let (f, p) = MacFrame::parse(&v).unwrap();
        assert_eq!(f.kind, FrameKind::Command(CMD_DATA_REQUEST));
        assert!(p.is_empty());
        let want = MacFrame::data_request(5, 0x23, MacAddr::Short(1), MacAddr::Short(2));
        assert_eq!(want.emit(&[]).unwrap(), v);
    }

    #[test]
    fn max_payload_and_limits() {
        let f = MacFrame::data(0, 1, MacAddr::Short(1), MacAddr::Short(2));
        assert_eq!(f.max_payload(), 127 - 9 - 2);
        assert!(f.emit(&[0; 116]).is_ok());
        assert_eq!(f.emit(&[0; 117]), Err(MacError::TooLong(117)));
        assert_eq!(MacFrame::parse(&[0; 4]), Err(MacError::Length(4)));
        assert_eq!(MacFrame::parse(&[0; 128]), Err(MacError::Length(128)));
    }

    #[test]
    fn frame_pending_patch_keeps_fcs_valid() {
        let mut p = MacFrame::data(0, 1, MacAddr::Short(1), MacAddr::Short(2)).emit(&[1, 2]).unwrap();
        set_frame_pending(&mut p, true);
        assert!(fcs_ok(&p));
        assert!(MacFrame::parse(&p).unwrap().0.frame_pending);
    }

    #[test]
    fn uncompressed_pans_and_2015_frames() {
        #[rustfmt::skip]
        let mut v = [
            0x21, 0x98, // FC: data, AR, no PAN compression; short/short, version 2006
            0x01,       // seq
            0x23, 0x00, 0x01, 0x00, // dst PAN, dst
            0x23, 0x00, 0x02, 0x00, // src PAN, src
            0xaa,       // payload
            0, 0,
        ];
        fill_fcs(&mut v);
        let (f, p) = MacFrame::parse(&v).unwrap();
        assert_eq!((f.dst, f.src, p), (Some(MacAddr::Short(1)), Some(MacAddr::Short(2)), &[0xaa][..]));
        v[1] = 0xa8; // frame version 2 (802.15.4-2015)
        fill_fcs(&mut v);
        assert_eq!(MacFrame::parse(&v), Err(MacError::Malformed));
    }

    #[test]
    fn crc_check_value() {
        // CRC-16/KERMIT check value over "123456789".
        assert_eq!(crc16(b"123456789"), 0x2189);
    }
}
