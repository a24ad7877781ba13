//! Pure helpers over IEEE 802.15.4 MAC frames and nRF52840 facts, free of hardware so that
//! `build.sh` can run their tests on the host (`rustc --test src/mac_frame.rs`): this file must
//! not use anything outside `core`.
//!
//! Frame layout: IEEE 802.15.4-2015 §7.2 (frame control, addressing fields, PAN ID
//! compression table 7-2) and §9.4 (auxiliary security header).

/// nRF52840 TX power steps in dBm (product specification, RADIO TXPOWER).
const TX_POWER_STEPS: [i8; 14] = [-40, -20, -16, -12, -8, -4, 0, 2, 3, 4, 5, 6, 7, 8];

/// The power the radio will actually use for a request of `dbm`: the highest step not above
/// it, or the lowest step.
pub fn tx_power_step(dbm: i8) -> i8 {
    TX_POWER_STEPS.iter().rev().copied().find(|&s| s <= dbm).unwrap_or(TX_POWER_STEPS[0])
}

const FRAME_TYPE_DATA: u16 = 1;
const FRAME_TYPE_COMMAND: u16 = 3;
const FCF_SECURITY: u16 = 1 << 3;
const FCF_ACK_REQUEST: u16 = 1 << 5;
const FCF_PAN_ID_COMPRESSION: u16 = 1 << 6;
const FCF_SEQ_SUPPRESSION: u16 = 1 << 8;
const VERSION_2015: u16 = 2;
const ADDR_NONE: u16 = 0;
const ADDR_SHORT: u16 = 2;
const ADDR_EXT: u16 = 3;
/// MAC command "Data Request".
const CMD_DATA_REQUEST: u8 = 0x04;

/// A frame's source address, extended ones in Spinel `E` order (as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Short(u16),
    Extended([u8; 8]),
}

/// Whether the radio's auto-ACK to `psdu` carried Frame Pending, deciding as Nordic's driver does
/// with its Thread matching method: only frames that asked for an ACK; in 2003/2006 frames only
/// Data Request commands, in 2015 frames any data or command frame; and then the source
/// address must be pending (`short`/`ext` say so; they answer true for everyone when source
/// matching is disabled). Malformed frames give false. The fallback for when the driver's own
/// bit was not noted (see [`AckNotes`]).
pub fn ack_frame_pending(psdu: &[u8], short: impl Fn(u16) -> bool, ext: impl Fn([u8; 8]) -> bool) -> bool {
    let Some(parsed) = parse(psdu) else { return false };
    if parsed.fcf & FCF_ACK_REQUEST == 0 {
        return false;
    }
    let frame_type = parsed.fcf & 0x7;
    let eligible = if parsed.version == VERSION_2015 {
        frame_type == FRAME_TYPE_DATA || frame_type == FRAME_TYPE_COMMAND
    } else {
        frame_type == FRAME_TYPE_COMMAND && parsed.command_id == Some(CMD_DATA_REQUEST)
    };
    match parsed.source {
        Some(Source::Short(a)) if eligible => short(a),
        Some(Source::Extended(a)) if eligible => ext(a),
        _ => false,
    }
}

struct Parsed {
    fcf: u16,
    version: u16,
    source: Option<Source>,
    /// For 2003/2006 command frames: the (unencrypted) command identifier.
    command_id: Option<u8>,
}

fn addr_len(mode: u16) -> Option<usize> {
    match mode {
        ADDR_NONE => Some(0),
        ADDR_SHORT => Some(2),
        ADDR_EXT => Some(8),
        _ => None, // reserved
    }
}

/// Which PAN IDs are present: (destination, source).
fn pan_ids_present(version: u16, dst_mode: u16, src_mode: u16, compressed: bool) -> (bool, bool) {
    if version != VERSION_2015 {
        return (dst_mode != ADDR_NONE, src_mode != ADDR_NONE && !compressed);
    }
    // IEEE 802.15.4-2015 table 7-2.
    match (dst_mode, src_mode) {
        (ADDR_NONE, ADDR_NONE) => (compressed, false),
        (_, ADDR_NONE) => (!compressed, false),
        (ADDR_NONE, _) => (false, !compressed),
        (ADDR_EXT, ADDR_EXT) => (!compressed, false),
        _ => (true, !compressed),
    }
}

fn parse(psdu: &[u8]) -> Option<Parsed> {
    let fcf = u16::from_le_bytes([*psdu.first()?, *psdu.get(1)?]);
    let version = (fcf >> 12) & 0x3;
    let dst_mode = (fcf >> 10) & 0x3;
    let src_mode = (fcf >> 14) & 0x3;
    let compressed = fcf & FCF_PAN_ID_COMPRESSION != 0;
    let mut i = 2;
    if !(version == VERSION_2015 && fcf & FCF_SEQ_SUPPRESSION != 0) {
        i += 1;
    }
    let (dst_pan, src_pan) = pan_ids_present(version, dst_mode, src_mode, compressed);
    i += if dst_pan { 2 } else { 0 } + addr_len(dst_mode)?;
    i += if src_pan { 2 } else { 0 };
    let src_len = addr_len(src_mode)?;
    let src = psdu.get(i..i + src_len)?;
    let source = match src_mode {
        ADDR_SHORT => Some(Source::Short(u16::from_le_bytes([src[0], src[1]]))),
        ADDR_EXT => {
            let mut a = [0u8; 8];
            a.copy_from_slice(src);
            a.reverse(); // frame order is little-endian
            Some(Source::Extended(a))
        }
        _ => None,
    };
    i += src_len;
    let mut command_id = None;
    if fcf & 0x7 == FRAME_TYPE_COMMAND && version != VERSION_2015 {
        if fcf & FCF_SECURITY != 0 {
            let control = *psdu.get(i)?;
            let key_id_len = [0, 1, 5, 9][usize::from((control >> 3) & 0x3)];
            i += 1 + 4 + key_id_len;
        }
        command_id = psdu.get(i).copied();
    }
    Some(Parsed { fcf, version, source, command_id })
}

/// Frame Pending bit in the first octet of the frame control field.
pub const FCF_FRAME_PENDING: u8 = 1 << 4;

/// Notes of the Frame Pending bit our auto-ACK carried, one per received frame, taken when the
/// driver reports the frame and looked up when the frame reaches the RCP loop, which may be a
/// few frames later. Frames are matched by length and FCS, so notes of frames that were dropped
/// on the way are skipped. Holds the newest `N`.
#[derive(Debug)]
pub struct AckNotes<const N: usize> {
    /// (PSDU length without FCS, FCS, Frame Pending), oldest first from `head`.
    notes: [(u8, u16, bool); N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for AckNotes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> AckNotes<N> {
    pub const fn new() -> Self {
        AckNotes { notes: [(0, 0, false); N], head: 0, len: 0 }
    }

    /// Notes a received frame; when full, the oldest note goes.
    pub fn push(&mut self, len: u8, fcs: u16, frame_pending: bool) {
        if N == 0 {
            return;
        }
        if self.len == N {
            self.head = (self.head + 1) % N;
            self.len -= 1;
        }
        self.notes[(self.head + self.len) % N] = (len, fcs, frame_pending);
        self.len += 1;
    }

    /// The note of the oldest frame with this length and FCS, dropping it and every older note
    /// (their frames will not come). `None`, and nothing dropped, if there is none.
    pub fn take(&mut self, len: u8, fcs: u16) -> Option<bool> {
        let i = (0..self.len).find(|&i| {
            let (l, f, _) = self.notes[(self.head + i) % N];
            l == len && f == fcs
        })?;
        let (_, _, frame_pending) = self.notes[(self.head + i) % N];
        self.head = (self.head + i + 1) % N;
        self.len -= i + 1;
        Some(frame_pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD_SHORT: u16 = 0x0401;
    const CHILD_EXT: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

    fn pending(psdu: &[u8]) -> bool {
        ack_frame_pending(psdu, |a| a == CHILD_SHORT, |a| a == CHILD_EXT)
    }

    #[test]
    fn data_request_2003_short() {
        let frame = [
            0x63, 0x88, // FCF: command, AR, PAN ID compression, dst short, src short, 2003
            0x17, // sequence number
            0xCD, 0xAB, // dst PAN
            0x00, 0x00, // dst short
            0x01, 0x04, // src short 0x0401
            0x04, // Data Request
            0x00, 0x00, // FCS
        ];
        assert!(pending(&frame));
        let mut other = frame;
        other[7] = 0x02; // src 0x0402, not pending
        assert!(!pending(&other));
        let mut no_ar = frame;
        no_ar[0] &= !0x20;
        assert!(!pending(&no_ar));
        let mut not_data_request = frame;
        not_data_request[9] = 0x07; // beacon request
        assert!(!pending(&not_data_request));
    }

    #[test]
    fn data_request_2003_extended_secured() {
        let frame = [
            0x6B, 0xC8, // FCF: command, security, AR, PAN ID compression, dst short, src ext, 2003
            0x2A, // sequence number
            0xCD, 0xAB, // dst PAN
            0x00, 0x00, // dst short
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // src ext, little-endian
            0x0D, // security control: level 5, key id mode 1
            0x01, 0x00, 0x00, 0x00, // frame counter
            0x01, // key index
            0x04, // Data Request (not encrypted before 2015)
            0xDE, 0xAD, 0xBE, 0xEF, // MIC-32
            0x00, 0x00, // FCS
        ];
        assert!(pending(&frame));
    }

    #[test]
    fn data_frame_2003_never_pending_but_2015_is() {
        let data_2003 = [
            0x61, 0x88, // FCF: data, AR, PAN ID compression, dst short, src short, 2003
            0x01, 0xCD, 0xAB, 0x00, 0x00, 0x01, 0x04, 0xAA, 0x00, 0x00,
        ];
        assert!(!pending(&data_2003));
        let data_2015 = [
            0x61, 0xA8, // FCF: data, AR, PAN ID compression, dst short, src short, 2015
            0x01, 0xCD, 0xAB, 0x00, 0x00, 0x01, 0x04, 0xAA, 0x00, 0x00,
        ];
        assert!(pending(&data_2015));
    }

    #[test]
    fn source_matching_disabled_means_everyone() {
        let frame = [0x63, 0x88, 0x17, 0xCD, 0xAB, 0x00, 0x00, 0x99, 0x99, 0x04, 0x00, 0x00];
        assert!(ack_frame_pending(&frame, |_| true, |_| true));
    }

    #[test]
    fn malformed_frames_are_not_pending() {
        assert!(!pending(&[]));
        assert!(!pending(&[0x63]));
        assert!(!pending(&[0x63, 0x88, 0x17, 0xCD]));
        // Reserved source address mode.
        assert!(!pending(&[0x63, 0x48, 0x17, 0xCD, 0xAB, 0x00, 0x00, 0x01, 0x04, 0x04]));
    }

    #[test]
    fn ack_notes_match_in_order_and_skip_dropped_frames() {
        let mut notes = AckNotes::<3>::new();
        assert_eq!(notes.take(10, 0x1234), None);
        notes.push(10, 0x1111, true);
        notes.push(20, 0x2222, false); // this frame will be dropped before the RCP loop
        notes.push(10, 0x3333, true);
        assert_eq!(notes.take(10, 0x1111), Some(true));
        // Unknown frame: nothing is consumed.
        assert_eq!(notes.take(99, 0x9999), None);
        // The dropped frame's note is skipped on the way to the next match.
        assert_eq!(notes.take(10, 0x3333), Some(true));
        assert_eq!(notes.take(20, 0x2222), None);
    }

    #[test]
    fn ack_notes_keep_the_newest() {
        let mut notes = AckNotes::<2>::new();
        notes.push(1, 1, true);
        notes.push(2, 2, false);
        notes.push(3, 3, true); // pushes out (1, 1)
        assert_eq!(notes.take(1, 1), None);
        assert_eq!(notes.take(2, 2), Some(false));
        assert_eq!(notes.take(3, 3), Some(true));
        // Wrap-around after emptying.
        for i in 0..5u8 {
            notes.push(i, u16::from(i), i % 2 == 0);
        }
        assert_eq!(notes.take(4, 4), Some(true));
        assert_eq!(notes.take(3, 3), None);
    }

    #[test]
    fn tx_power_steps() {
        assert_eq!(tx_power_step(127), 8);
        assert_eq!(tx_power_step(8), 8);
        assert_eq!(tx_power_step(1), 0);
        assert_eq!(tx_power_step(-5), -8);
        assert_eq!(tx_power_step(-30), -40);
        assert_eq!(tx_power_step(-128), -40);
    }
}
