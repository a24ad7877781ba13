//! The part of the IEEE 802.15.4 MAC frame the simulated MAC needs (clause numbers of
//! IEEE 802.15.4-2006 unless marked 2015): frame control, sequence number and addressing
//! (§7.2.1 General MAC frame format; for version-2 frames the PAN ID Compression rules of
//! 802.15.4-2015 Table 7-2), the auxiliary security header length (§7.6.2), the command
//! identifier of a Data Request (§7.3.4), the immediate ACK (§7.2.2.3), and the FCS (§7.2.1.9:
//! CRC-16/ITU-T, the "KERMIT" variant: polynomial 0x1021 reflected, initial value 0, no final
//! XOR, sent low byte first).
//!
//! ```text
//! octets: 2        1      0/2       0/2/8     0/2      0/2/8     0/5/6/10/14  ...      2
//!        +--------+------+---------+---------+--------+---------+------------+-------+-----+
//!        | Frame  | Seq  | Dst PAN | Dst     | Src PAN| Src     | Aux sec    | IEs,  | FCS |
//!        | Control| num  | ID      | address | ID     | address | header     | payld |     |
//!        +--------+------+---------+---------+--------+---------+------------+-------+-----+
//! ```
//!
//! Panic rules: [`Header::parse`] takes untrusted bytes and never panics; [`Header::emit`] needs
//! a buffer of at least [`Header::buffer_len`] bytes plus the payload and FCS, and reports a
//! short buffer as an error. Header IEs are not walked: a frame with IE Present is parsed up to
//! its addressing, and its command identifier (if any) is not looked for.

use std::fmt;

/// aMaxPhyPacketSize: the largest PSDU, FCS included.
pub const MAX_PSDU_LEN: usize = 127;
/// FCS length for the 2.4 GHz O-QPSK PHY.
pub const FCS_LEN: usize = 2;
/// Broadcast PAN ID and short address.
pub const BROADCAST: u16 = 0xFFFF;
/// MAC command identifier of a Data Request (§7.3.4).
pub const CMD_DATA_REQUEST: u8 = 0x04;

/// Frame control bit positions (§7.2.1).
mod fc {
    pub const TYPE_MASK: u16 = 0x0007;
    pub const SECURITY: u16 = 1 << 3;
    pub const FRAME_PENDING: u16 = 1 << 4;
    pub const ACK_REQUEST: u16 = 1 << 5;
    pub const PAN_ID_COMPRESSION: u16 = 1 << 6;
    pub const SEQ_SUPPRESSION: u16 = 1 << 8;
    pub const IE_PRESENT: u16 = 1 << 9;
    pub const DST_MODE_SHIFT: u16 = 10;
    pub const VERSION_SHIFT: u16 = 12;
    pub const SRC_MODE_SHIFT: u16 = 14;
}

/// Why bytes are not a usable MAC frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its frame control and fields say, or than the FCS.
    Truncated,
    /// Longer than aMaxPhyPacketSize.
    TooLong,
    /// The reserved addressing mode 1.
    ReservedAddressMode,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Truncated => "802.15.4 frame truncated",
            FrameError::TooLong => "802.15.4 frame longer than 127 bytes",
            FrameError::ReservedAddressMode => "802.15.4 frame uses reserved addressing mode",
            FrameError::BufferTooSmall => "buffer too small for 802.15.4 frame",
        })
    }
}

impl std::error::Error for FrameError {}

/// Frame type (§7.2.1.1). 2015 adds types 4–7; the simulator treats them as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Beacon,
    Data,
    Ack,
    Command,
    Unknown(u8),
}

impl From<u8> for FrameType {
    fn from(v: u8) -> Self {
        match v {
            0 => FrameType::Beacon,
            1 => FrameType::Data,
            2 => FrameType::Ack,
            3 => FrameType::Command,
            n => FrameType::Unknown(n),
        }
    }
}

impl From<FrameType> for u8 {
    fn from(t: FrameType) -> u8 {
        match t {
            FrameType::Beacon => 0,
            FrameType::Data => 1,
            FrameType::Ack => 2,
            FrameType::Command => 3,
            FrameType::Unknown(n) => n & 0x07,
        }
    }
}

/// A MAC address. Extended addresses are held in Spinel `E` order (most significant byte
/// first), the reverse of their little-endian order inside a frame, to match
/// [`ferry_rcp_core::radio::SrcMatchTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    None,
    Short(u16),
    Extended([u8; 8]),
}

impl Address {
    fn mode(&self) -> u16 {
        match self {
            Address::None => 0,
            Address::Short(_) => 2,
            Address::Extended(_) => 3,
        }
    }

    fn len(&self) -> usize {
        match self {
            Address::None => 0,
            Address::Short(_) => 2,
            Address::Extended(_) => 8,
        }
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Address::Short(BROADCAST)
    }
}

/// The MAC header fields the simulator reads, parsed once from a PSDU (or built to emit one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub frame_type: FrameType,
    pub security: bool,
    pub frame_pending: bool,
    pub ack_request: bool,
    pub pan_id_compression: bool,
    pub ie_present: bool,
    /// Frame version: 0 (2003), 1 (2006), 2 (2015).
    pub version: u8,
    /// `None` when suppressed (2015 frames only).
    pub seq: Option<u8>,
    pub dst_pan: Option<u16>,
    pub dst: Address,
    pub src_pan: Option<u16>,
    pub src: Address,
    /// Bytes of the auxiliary security header (0 without security).
    pub aux_sec_len: usize,
}

impl Header {
    /// A data frame from `src` to `dst` in `pan`, with PAN ID compression, version 2006.
    pub fn data(seq: u8, pan: u16, dst: Address, src: Address, ack_request: bool) -> Self {
        let both = dst != Address::None && src != Address::None;
        Header {
            frame_type: FrameType::Data,
            security: false,
            frame_pending: false,
            ack_request,
            pan_id_compression: both,
            ie_present: false,
            version: 1,
            seq: Some(seq),
            dst_pan: (dst != Address::None).then_some(pan),
            dst,
            src_pan: (src != Address::None && !both).then_some(pan),
            src,
            aux_sec_len: 0,
        }
    }

    /// An immediate ACK (§7.3.3): frame control, sequence number, FCS.
    pub fn ack(seq: u8, frame_pending: bool) -> Self {
        Header {
            frame_type: FrameType::Ack,
            security: false,
            frame_pending,
            ack_request: false,
            pan_id_compression: false,
            ie_present: false,
            version: 0,
            seq: Some(seq),
            dst_pan: None,
            dst: Address::None,
            src_pan: None,
            src: Address::None,
            aux_sec_len: 0,
        }
    }

    /// Parses the header of `psdu` (FCS included). Never panics.
    pub fn parse(psdu: &[u8]) -> Result<Header, FrameError> {
        if psdu.len() > MAX_PSDU_LEN {
            return Err(FrameError::TooLong);
        }
        let mut r = Cursor { buf: psdu.get(..psdu.len().saturating_sub(FCS_LEN)).unwrap_or(&[]), pos: 0 };
        let fcf = r.u16()?;
        let version = ((fcf >> fc::VERSION_SHIFT) & 0x3) as u8;
        let dst_mode = (fcf >> fc::DST_MODE_SHIFT) & 0x3;
        let src_mode = (fcf >> fc::SRC_MODE_SHIFT) & 0x3;
        if dst_mode == 1 || src_mode == 1 {
            return Err(FrameError::ReservedAddressMode);
        }
        let compression = fcf & fc::PAN_ID_COMPRESSION != 0;
        let seq_suppressed = version == 2 && fcf & fc::SEQ_SUPPRESSION != 0;
        let seq = if seq_suppressed { None } else { Some(r.u8()?) };
        let (dst_pan_present, src_pan_present) = pan_ids_present(version, dst_mode, src_mode, compression);
        let dst_pan = if dst_pan_present { Some(r.u16()?) } else { None };
        let dst = r.address(dst_mode)?;
        let src_pan = if src_pan_present { Some(r.u16()?) } else { None };
        let src = r.address(src_mode)?;
        let security = fcf & fc::SECURITY != 0;
        let aux_sec_len = if security {
            let sc = r.u8()?;
            let counter = if version == 2 && sc & 0x20 != 0 { 0 } else { 4 };
            let key_id = [0, 1, 5, 9][usize::from((sc >> 3) & 0x3)];
            let len = 1 + counter + key_id;
            r.skip(len - 1)?;
            len
        } else {
            0
        };
        Ok(Header {
            frame_type: FrameType::from((fcf & fc::TYPE_MASK) as u8),
            security,
            frame_pending: fcf & fc::FRAME_PENDING != 0,
            ack_request: fcf & fc::ACK_REQUEST != 0,
            pan_id_compression: compression,
            ie_present: fcf & fc::IE_PRESENT != 0,
            version,
            seq,
            dst_pan,
            dst,
            src_pan,
            src,
            aux_sec_len,
        })
    }

    /// Header length in bytes, auxiliary security header included.
    pub fn buffer_len(&self) -> usize {
        2 + usize::from(self.seq.is_some())
            + self.dst_pan.map_or(0, |_| 2)
            + self.dst.len()
            + self.src_pan.map_or(0, |_| 2)
            + self.src.len()
            + self.aux_sec_len
    }

    fn frame_control(&self) -> u16 {
        let mut v = u16::from(u8::from(self.frame_type));
        for (on, bit) in [
            (self.security, fc::SECURITY),
            (self.frame_pending, fc::FRAME_PENDING),
            (self.ack_request, fc::ACK_REQUEST),
            (self.pan_id_compression, fc::PAN_ID_COMPRESSION),
            (self.seq.is_none(), fc::SEQ_SUPPRESSION),
            (self.ie_present, fc::IE_PRESENT),
        ] {
            if on {
                v |= bit;
            }
        }
        v | self.dst.mode() << fc::DST_MODE_SHIFT
            | u16::from(self.version & 0x3) << fc::VERSION_SHIFT
            | self.src.mode() << fc::SRC_MODE_SHIFT
    }

    /// Builds a whole PSDU: this header (without security: `aux_sec_len` must be 0), `payload`,
    /// and the FCS.
    pub fn emit_frame(&self, payload: &[u8]) -> Result<Psdu, FrameError> {
        let mut buf = [0u8; MAX_PSDU_LEN];
        let hlen = self.buffer_len() - self.aux_sec_len;
        let len = hlen + payload.len() + FCS_LEN;
        if len > MAX_PSDU_LEN {
            return Err(FrameError::TooLong);
        }
        let mut w = 0;
        let mut put = |bytes: &[u8]| {
            buf[w..w + bytes.len()].copy_from_slice(bytes);
            w += bytes.len();
        };
        put(&self.frame_control().to_le_bytes());
        if let Some(seq) = self.seq {
            put(&[seq]);
        }
        if let Some(pan) = self.dst_pan {
            put(&pan.to_le_bytes());
        }
        put_address(&mut put, self.dst);
        if let Some(pan) = self.src_pan {
            put(&pan.to_le_bytes());
        }
        put_address(&mut put, self.src);
        put(payload);
        let mut psdu = Psdu { buf, len: len as u8 };
        psdu.fill_fcs();
        Ok(psdu)
    }
}

fn put_address(put: &mut impl FnMut(&[u8]), a: Address) {
    match a {
        Address::None => {}
        Address::Short(s) => put(&s.to_le_bytes()),
        Address::Extended(mut e) => {
            e.reverse(); // E order → over-the-air little-endian
            put(&e)
        }
    }
}

/// Which PAN IDs are present: 2003/2006 rules (§7.2.1.1.5) for versions 0–1, 2015 Table 7-2 for 2.
fn pan_ids_present(version: u8, dst_mode: u16, src_mode: u16, compression: bool) -> (bool, bool) {
    if version < 2 {
        return (dst_mode != 0, src_mode != 0 && !(compression && dst_mode != 0));
    }
    match (dst_mode != 0, src_mode != 0) {
        (false, false) => (compression, false),
        (true, false) => (!compression, false),
        (false, true) => (false, !compression),
        // Both extended: one PAN ID at most, the destination's.
        (true, true) if dst_mode == 3 && src_mode == 3 => (!compression, false),
        (true, true) => (true, !compression),
    }
}

/// A bounds-checked reader over the MHR.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FrameError> {
        let s = self.buf.get(self.pos..self.pos + n).ok_or(FrameError::Truncated)?;
        self.pos += n;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> Result<(), FrameError> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn address(&mut self, mode: u16) -> Result<Address, FrameError> {
        Ok(match mode {
            2 => Address::Short(self.u16()?),
            3 => {
                let mut e = [0u8; 8];
                e.copy_from_slice(self.take(8)?);
                e.reverse();
                Address::Extended(e)
            }
            _ => Address::None,
        })
    }
}

/// True when `psdu`, whose header is `h`, is a MAC Data Request command.
pub fn is_data_request(psdu: &[u8], h: &Header) -> bool {
    // With IEs present the command identifier sits after them; not walked (module docs).
    h.frame_type == FrameType::Command
        && !h.ie_present
        && psdu.get(h.buffer_len()) == Some(&CMD_DATA_REQUEST)
        && psdu.len() >= h.buffer_len() + 1 + FCS_LEN
}

/// CRC-16/KERMIT over `data`, the 802.15.4 FCS.
pub fn crc16_kermit(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x8408 } else { crc >> 1 };
        }
    }
    crc
}

/// A PSDU of at most 127 bytes held inline, so frames move through the simulator without
/// allocating. Always at least [`FCS_LEN`] bytes long.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Psdu {
    buf: [u8; MAX_PSDU_LEN],
    len: u8,
}

impl Psdu {
    /// Copies `bytes` (FCS included, possibly stale) into a PSDU.
    pub fn new(bytes: &[u8]) -> Result<Psdu, FrameError> {
        if bytes.len() > MAX_PSDU_LEN {
            return Err(FrameError::TooLong);
        }
        if bytes.len() < FCS_LEN {
            return Err(FrameError::Truncated);
        }
        let mut buf = [0u8; MAX_PSDU_LEN];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(Psdu { buf, len: bytes.len() as u8 })
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    #[allow(clippy::len_without_is_empty)] // never empty: the FCS is always there
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Writes the FCS over the last two bytes, as a radio does on transmit.
    pub fn fill_fcs(&mut self) {
        let n = self.len();
        let crc = crc16_kermit(&self.buf[..n - FCS_LEN]);
        self.buf[n - FCS_LEN..n].copy_from_slice(&crc.to_le_bytes());
    }

    /// True when the FCS matches the contents.
    pub fn fcs_ok(&self) -> bool {
        let n = self.len();
        crc16_kermit(&self.buf[..n - FCS_LEN]).to_le_bytes() == self.buf[n - FCS_LEN..n]
    }
}

impl fmt::Debug for Psdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psdu(")?;
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_kermit_check_value() {
        // The catalogue check value of CRC-16/KERMIT over "123456789".
        assert_eq!(crc16_kermit(b"123456789"), 0x2189);
    }

    #[test]
    fn ack_vector() {
        // Imm-ACK, seq 0x2a: FC 02 00, seq 2a, FCS (KERMIT of 02 00 2a, low byte first).
        let ack = Header::ack(0x2a, false).emit_frame(&[]).unwrap();
        assert_eq!(&ack.as_slice()[..3], &[0x02, 0x00, 0x2a]);
        assert!(ack.fcs_ok());
        let h = Header::parse(ack.as_slice()).unwrap();
        assert_eq!((h.frame_type, h.seq, h.frame_pending), (FrameType::Ack, Some(0x2a), false));
        // Frame pending is FC bit 4.
        assert_eq!(Header::ack(1, true).emit_frame(&[]).unwrap().as_slice()[0], 0x12);
    }

    #[test]
    fn data_frame_short_addresses() {
        let h = Header::data(7, 0x1234, Address::Short(0x0001), Address::Short(0x0002), true);
        let f = h.emit_frame(&[0xaa, 0xbb]).unwrap();
        assert_eq!(
            f.as_slice()[..11],
            [
                0x61, 0x98, // FC: data, AR, PAN ID compression, short dst, version 2006, short src
                0x07, // seq
                0x34, 0x12, // dst PAN
                0x01, 0x00, // dst
                0x02, 0x00, // src
                0xaa, 0xbb, // payload
            ]
        );
        assert_eq!(f.len(), 13);
        assert!(f.fcs_ok());
        assert_eq!(Header::parse(f.as_slice()).unwrap(), h);
        assert_eq!(h.buffer_len(), 9);
    }

    #[test]
    fn extended_addresses_and_data_request() {
        let ext = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        let mut h = Header::data(1, 0xabcd, Address::Short(0x0000), Address::Extended(ext), true);
        h.frame_type = FrameType::Command;
        let f = h.emit_frame(&[CMD_DATA_REQUEST]).unwrap();
        // Source address goes on air little-endian.
        assert_eq!(f.as_slice()[7..15], [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        let p = Header::parse(f.as_slice()).unwrap();
        assert_eq!(p.src, Address::Extended(ext));
        assert!(is_data_request(f.as_slice(), &p));
    }

    #[test]
    fn untrusted_bytes_never_panic() {
        assert_eq!(Header::parse(&[]), Err(FrameError::Truncated));
        assert_eq!(Header::parse(&[0x41, 0xd8, 0x00]), Err(FrameError::Truncated));
        assert_eq!(Header::parse(&[0x41, 0x04, 0, 0, 0]), Err(FrameError::ReservedAddressMode));
        assert_eq!(Header::parse(&[0; 128]), Err(FrameError::TooLong));
        // Security header cut short.
        assert_eq!(Header::parse(&[0x09, 0x00, 0x01, 0x0d, 0, 0, 0, 0]), Err(FrameError::Truncated));
        for len in 0..40 {
            for seed in 0..64u32 {
                let bytes: Vec<u8> =
                    (0..len).map(|i| (seed.wrapping_mul(2654435761).rotate_left(i) >> 7) as u8).collect();
                let _ = Header::parse(&bytes).map(|h| is_data_request(&bytes, &h));
            }
        }
    }

    #[test]
    fn pan_id_table_2015() {
        // Version 2, both short, compression: dst PAN only.
        assert_eq!(pan_ids_present(2, 2, 2, true), (true, false));
        assert_eq!(pan_ids_present(2, 3, 3, false), (true, false));
        assert_eq!(pan_ids_present(2, 0, 0, true), (true, false));
        assert_eq!(pan_ids_present(1, 2, 3, false), (true, true));
    }
}
