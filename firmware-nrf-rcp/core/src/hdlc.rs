//! HDLC-lite framing, as used between an OpenThread host and its RCP.
//!
//! Spec: `shared/reference/spinel.md` §1 (OpenThread `src/lib/hdlc/hdlc.cpp`, RFC 1662 §4 and
//! Appendix C for the FCS).
//!
//! ```text
//! 7E | escaped( payload | FCS-lo | FCS-hi ) | 7E
//! ```
//!
//! * Flag `0x7E` before and after every frame; one flag may both close a frame and open the next.
//! * The encoder escapes `7E 7D 11 13 F8` as `7D, byte ^ 0x20` (OpenThread's set).
//! * The decoder accepts *any* escaped byte (OpenThread does too; aiospinel is stricter).
//! * FCS is CRC-16/X-25 over the unescaped payload, sent low byte first, itself escaped.
//! * Payloads longer than [`MAX_FRAME_LEN`] (`SPINEL_FRAME_MAX_SIZE`) are rejected.

use core::fmt;

/// Frame delimiter.
pub const FLAG: u8 = 0x7E;
/// Control escape: the next byte is XORed with [`ESCAPE_XOR`].
pub const ESCAPE: u8 = 0x7D;
/// Value XORed into an escaped byte.
pub const ESCAPE_XOR: u8 = 0x20;
/// Largest Spinel frame (`SPINEL_FRAME_MAX_SIZE`), excluding the FCS.
pub const MAX_FRAME_LEN: usize = 1300;
/// Length of the frame check sequence.
pub const FCS_LEN: usize = 2;
/// Running FCS over payload + received FCS equals this when the frame is intact (`kGoodFcs`).
pub const GOOD_FCS: u16 = 0xF0B8;
const INIT_FCS: u16 = 0xFFFF;

/// True for the bytes OpenThread's encoder escapes (`HdlcByteNeedsEscape`): the flag, the escape,
/// XON, XOFF and `0xF8` (`kFlagSpecial`).
pub const fn needs_escape(byte: u8) -> bool {
    matches!(byte, 0x7E | 0x7D | 0x11 | 0x13 | 0xF8)
}

/// Reflected CRC-16 table for polynomial 0x1021 (0x8408 reflected), built at compile time.
const FCS_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x8408 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// One step of the running (un-inverted) FCS.
#[inline]
fn fcs_update(fcs: u16, byte: u8) -> u16 {
    (fcs >> 8) ^ FCS_TABLE[usize::from((fcs ^ u16::from(byte)) as u8)]
}

/// CRC-16/X-25 of `data`, i.e. the FCS value as sent (before splitting into low/high bytes).
pub fn fcs(data: &[u8]) -> u16 {
    data.iter().fold(INIT_FCS, |f, &b| fcs_update(f, b)) ^ 0xFFFF
}

/// Why [`encode`] could not write a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload is longer than [`MAX_FRAME_LEN`].
    TooLong { len: usize },
    /// `out` is shorter than the encoded frame; `needed` is the exact size required.
    BufferTooSmall { needed: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong { len } => {
                write!(f, "HDLC payload of {len} bytes exceeds the {MAX_FRAME_LEN}-byte Spinel maximum")
            }
            EncodeError::BufferTooSmall { needed } => {
                write!(f, "HDLC output buffer too small: {needed} bytes needed")
            }
        }
    }
}

/// Exact number of bytes [`encode`] writes for `payload` (flags, escapes and FCS included).
pub fn encoded_len(payload: &[u8]) -> usize {
    let escaped = |b: u8| if needs_escape(b) { 2 } else { 1 };
    let [lo, hi] = fcs(payload).to_le_bytes();
    2 + payload.iter().map(|&b| escaped(b)).sum::<usize>() + escaped(lo) + escaped(hi)
}

/// Encodes `payload` as one HDLC-lite frame (`7E … FCS 7E`) into `out`; returns the length.
pub fn encode(payload: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    if payload.len() > MAX_FRAME_LEN {
        return Err(EncodeError::TooLong { len: payload.len() });
    }
    let needed = encoded_len(payload);
    let Some(out) = out.get_mut(..needed) else {
        return Err(EncodeError::BufferTooSmall { needed });
    };
    let [lo, hi] = fcs(payload).to_le_bytes();
    out[0] = FLAG;
    let mut pos = 1;
    for &byte in payload.iter().chain([lo, hi].iter()) {
        // `out` has exactly `needed` bytes, which counts every escape, so indexing cannot fail.
        if needs_escape(byte) {
            out[pos] = ESCAPE;
            out[pos + 1] = byte ^ ESCAPE_XOR;
            pos += 2;
        } else {
            out[pos] = byte;
            pos += 1;
        }
    }
    out[pos] = FLAG;
    Ok(needed)
}

/// Why the [`Decoder`] dropped a frame. After any error it is already hunting for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The FCS did not check out (corruption, or a frame joined mid-stream).
    BadFcs,
    /// Fewer than the two FCS bytes between two flags.
    TooShort,
    /// The payload exceeded the decoder's capacity (at most [`MAX_FRAME_LEN`]); the rest of the
    /// frame up to the next flag is discarded.
    TooLong,
    /// A flag arrived right after an escape (`7D 7E`, the RFC 1662 abort sequence).
    Aborted,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::BadFcs => "HDLC frame dropped: bad FCS",
            DecodeError::TooShort => "HDLC frame dropped: shorter than its 2-byte FCS",
            DecodeError::TooLong => "HDLC frame dropped: longer than the receive buffer",
            DecodeError::Aborted => "HDLC frame dropped: aborted by escape followed by flag",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first flag, or after an over-long frame: drop everything up to a flag.
    Hunt,
    /// Inside a frame (or between frames after a flag).
    Data,
    /// The previous byte was [`ESCAPE`].
    Escaped,
}

/// Streaming HDLC-lite decoder with an `N`-byte payload buffer (FCS not counted).
///
/// Feed bytes with [`push`](Self::push) or [`feed`](Self::feed); each completed frame is
/// returned as a borrow of the internal buffer, valid until the next call. Bytes before the
/// first flag are ignored, so joining a stream mid-frame costs at most one frame. No input makes
/// it panic, and it never holds more than `N` payload bytes.
///
/// `N` must not exceed [`MAX_FRAME_LEN`] for Spinel; use [`SpinelDecoder`] for the standard size.
#[derive(Debug, Clone)]
pub struct Decoder<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// The last two unescaped bytes are held back here: they are the FCS if a flag follows.
    tail: [u8; FCS_LEN],
    tail_len: usize,
    fcs: u16,
    state: State,
}

/// A decoder sized for the largest Spinel frame.
pub type SpinelDecoder = Decoder<MAX_FRAME_LEN>;

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Decoder<N> {
    /// A decoder waiting for its first flag.
    pub const fn new() -> Self {
        Decoder { buf: [0; N], len: 0, tail: [0; FCS_LEN], tail_len: 0, fcs: INIT_FCS, state: State::Hunt }
    }

    fn reset_frame(&mut self) {
        self.len = 0;
        self.tail_len = 0;
        self.fcs = INIT_FCS;
    }

    /// Adds one unescaped byte; `Err` if the payload no longer fits.
    fn put(&mut self, byte: u8) -> Result<(), DecodeError> {
        self.fcs = fcs_update(self.fcs, byte);
        if self.tail_len < FCS_LEN {
            self.tail[self.tail_len] = byte;
            self.tail_len += 1;
            return Ok(());
        }
        // The oldest held-back byte is now known to be payload.
        let oldest = self.tail[0];
        self.tail = [self.tail[1], byte];
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = oldest;
                self.len += 1;
                Ok(())
            }
            None => Err(DecodeError::TooLong),
        }
    }

    /// Closes the current frame at a flag: `Some(Ok(len))`, `Some(Err)` or `None` if it was empty.
    fn close(&mut self) -> Option<Result<usize, DecodeError>> {
        let verdict = match (self.len, self.tail_len) {
            (0, 0) => None, // back-to-back flags delimit nothing
            (_, n) if n < FCS_LEN => Some(Err(DecodeError::TooShort)),
            _ if self.fcs != GOOD_FCS => Some(Err(DecodeError::BadFcs)),
            _ => Some(Ok(())),
        };
        let len = self.len;
        // The payload stays in `buf` for the caller; the next frame overwrites it from 0.
        self.reset_frame();
        verdict.map(|v| v.map(|()| len))
    }

    /// Core step: `Some(Ok(len))` when a frame of `len` bytes is complete in `buf`.
    fn step(&mut self, byte: u8) -> Option<Result<usize, DecodeError>> {
        match (self.state, byte) {
            (State::Hunt, FLAG) => {
                self.reset_frame();
                self.state = State::Data;
                None
            }
            (State::Hunt, _) => None,
            (State::Data, FLAG) => self.close(),
            (State::Data, ESCAPE) => {
                self.state = State::Escaped;
                None
            }
            (State::Escaped, FLAG) => {
                // The flag still opens the next frame, so we stay in sync.
                self.reset_frame();
                self.state = State::Data;
                Some(Err(DecodeError::Aborted))
            }
            (State::Data, b) | (State::Escaped, b) => {
                let b = if self.state == State::Escaped { b ^ ESCAPE_XOR } else { b };
                self.state = State::Data;
                match self.put(b) {
                    Ok(()) => None,
                    Err(e) => {
                        self.reset_frame();
                        self.state = State::Hunt;
                        Some(Err(e))
                    }
                }
            }
        }
    }

    /// Feeds one byte. Returns a completed frame's payload (FCS stripped) or why one was dropped.
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], DecodeError>> {
        match self.step(byte)? {
            Ok(len) => Some(Ok(&self.buf[..len.min(N)])),
            Err(e) => Some(Err(e)),
        }
    }

    /// Feeds bytes from `input` until one frame completes or fails, or the input runs out.
    ///
    /// Returns how many bytes were consumed and the event, if any; call again with
    /// `&input[consumed..]` to continue.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Result<&[u8], DecodeError>>) {
        let mut event = None;
        let mut consumed = input.len();
        for (i, &byte) in input.iter().enumerate() {
            if let Some(e) = self.step(byte) {
                event = Some(e);
                consumed = i + 1;
                break;
            }
        }
        let event = event.map(|e| e.map(|len| &self.buf[..len.min(N)]));
        (consumed, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn enc(payload: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; encoded_len(payload)];
        let n = encode(payload, &mut out).expect("encode");
        assert_eq!(n, out.len());
        out
    }

    /// Decodes a whole stream, collecting frames and errors in order.
    fn dec_all<const N: usize>(d: &mut Decoder<N>, mut input: &[u8]) -> Vec<Result<Vec<u8>, DecodeError>> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (n, ev) = d.feed(input);
            if let Some(ev) = ev {
                out.push(ev.map(|f| f.to_vec()));
            }
            input = &input[n..];
        }
        out
    }

    #[test]
    fn fcs_check_value() {
        // CRC-16/X-25 check value, wire order 6e 90 (spinel-primitives.txt).
        assert_eq!(fcs(b"123456789"), 0x906E);
        // Residue over data + FCS (kGoodFcs).
        let mut all = b"123456789".to_vec();
        all.extend_from_slice(&0x906Eu16.to_le_bytes());
        assert_eq!(all.iter().fold(INIT_FCS, |f, &b| fcs_update(f, b)), GOOD_FCS);
    }

    #[test]
    fn encode_escapes_all_five_specials() {
        // payload 81 06 11 11 f8 13, FCS 0x5d1f (spinel-primitives.txt "Escape-set difference")
        assert_eq!(
            enc(&[0x81, 0x06, 0x11, 0x11, 0xf8, 0x13]),
            [
                0x7e, // flag
                0x81, 0x06, // header, cmd
                0x7d, 0x31, 0x7d, 0x31, 0x7d, 0xd8, 0x7d, 0x33, // 11 11 f8 13 escaped
                0x1f, 0x5d, // FCS low, high
                0x7e, // flag
            ]
        );
    }

    #[test]
    fn decode_accepts_unescaped_xon_xoff_f8() {
        // pyspinel's encoding of the same payload leaves 11 13 f8 bare; we must accept it.
        let mut d = SpinelDecoder::new();
        let got = dec_all(&mut d, &[0x7e, 0x81, 0x06, 0x11, 0x11, 0xf8, 0x13, 0x1f, 0x5d, 0x7e]);
        assert_eq!(got, [Ok(std::vec![0x81, 0x06, 0x11, 0x11, 0xf8, 0x13])]);
    }

    #[test]
    fn decode_accepts_any_escaped_byte() {
        // 7D 61 is a needless escape of 0x41 ('A'); OpenThread accepts it.
        let frame = enc(&[0x81, 0x41]);
        let mut wire = std::vec![0x7e, 0x81, 0x7d, 0x61];
        wire.extend_from_slice(&frame[3..]);
        let mut d = SpinelDecoder::new();
        assert_eq!(dec_all(&mut d, &wire), [Ok(std::vec![0x81, 0x41])]);
    }

    #[test]
    fn escaped_fcs_bytes() {
        // 81 02 08 71 -> FCS low byte 0x7d is escaped (spinel-primitives.txt)
        let wire = [0x7e, 0x81, 0x02, 0x08, 0x71, 0x7d, 0x5d, 0xd4, 0x7e];
        assert_eq!(enc(&[0x81, 0x02, 0x08, 0x71]), wire);
        let mut d = SpinelDecoder::new();
        assert_eq!(dec_all(&mut d, &wire), [Ok(std::vec![0x81, 0x02, 0x08, 0x71])]);
        // 83 06 82 10 40 42 0f 00.. -> FCS high byte 0x11 is escaped (spinel-frames.txt)
        let payload = [0x83, 0x06, 0x82, 0x10, 0x40, 0x42, 0x0f, 0, 0, 0, 0, 0];
        let wire = enc(&payload);
        assert_eq!(&wire[wire.len() - 4..], [0x6e, 0x7d, 0x31, 0x7e]);
        assert_eq!(dec_all(&mut d, &wire), [Ok(payload.to_vec())]);
    }

    #[test]
    fn find_payloads_whose_fcs_needs_escaping_in_both_bytes() {
        // Search 2-byte payloads for ones where both FCS bytes are specials, then round-trip.
        let mut d = SpinelDecoder::new();
        let mut found = 0;
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let [lo, hi] = fcs(&[a, b]).to_le_bytes();
                if needs_escape(lo) && needs_escape(hi) {
                    found += 1;
                    let wire = enc(&[a, b]);
                    assert_eq!(wire.len(), 2 + 2 + 4 + usize::from(needs_escape(a)) + usize::from(needs_escape(b)));
                    assert_eq!(dec_all(&mut d, &wire), [Ok(std::vec![a, b])]);
                }
            }
        }
        assert!(found > 0);
    }

    #[test]
    fn garbage_before_first_flag_is_ignored() {
        let mut wire = std::vec![0x00, 0x81, 0x55, 0xff, 0x7d];
        wire.extend(enc(&[0x81, 0x02, 0x01]));
        let mut d = SpinelDecoder::new();
        assert_eq!(dec_all(&mut d, &wire), [Ok(std::vec![0x81, 0x02, 0x01])]);
    }

    #[test]
    fn garbage_between_frames_resyncs() {
        let a = enc(&[0x80, 0x06, 0x00, 0x70]);
        let b = enc(&[0x81, 0x02, 0x05]);
        // Garbage after a's closing flag looks like a frame with a bad FCS, then b decodes.
        let mut wire = a.clone();
        wire.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        wire.extend(b.clone());
        let mut d = SpinelDecoder::new();
        assert_eq!(
            dec_all(&mut d, &wire),
            [Ok(std::vec![0x80, 0x06, 0x00, 0x70]), Err(DecodeError::BadFcs), Ok(std::vec![0x81, 0x02, 0x05]),]
        );
    }

    #[test]
    fn shared_flag_between_frames_and_repeated_flags() {
        let a = enc(&[0x80, 0x01, 0x02]);
        let b = enc(&[0x81, 0x00]);
        let mut wire = std::vec![0x7e, 0x7e, 0x7e];
        wire.extend_from_slice(&a[..a.len() - 1]); // a's closing flag doubles as b's opening one
        wire.extend(b);
        wire.extend([0x7e, 0x7e]);
        let mut d = SpinelDecoder::new();
        assert_eq!(dec_all(&mut d, &wire), [Ok(std::vec![0x80, 0x01, 0x02]), Ok(std::vec![0x81, 0x00])]);
    }

    #[test]
    fn bad_fcs_rejected() {
        let mut wire = enc(&[0x81, 0x06, 0x01, 0x04, 0x03]);
        let n = wire.len();
        wire[n - 2] ^= 0x01; // flip a bit in the FCS high byte
        let mut d = SpinelDecoder::new();
        assert_eq!(dec_all(&mut d, &wire), [Err(DecodeError::BadFcs)]);
        // A payload bit flip is caught too, and the next frame still decodes.
        let mut wire = enc(&[0x81, 0x06, 0x01, 0x04, 0x03]);
        wire[2] ^= 0x40;
        wire.extend(enc(&[0x81, 0x00]));
        assert_eq!(dec_all(&mut d, &wire), [Err(DecodeError::BadFcs), Ok(std::vec![0x81, 0x00])]);
    }

    #[test]
    fn too_short_and_abort() {
        let mut d = SpinelDecoder::new();
        assert_eq!(dec_all(&mut d, &[0x7e, 0x81, 0x7e]), [Err(DecodeError::TooShort)]);
        let mut wire = std::vec![0x7e, 0x81, 0x02, 0x7d, 0x7e];
        wire.extend_from_slice(&enc(&[0x81, 0x00])[1..]); // abort flag opens the next frame
        assert_eq!(dec_all(&mut d, &wire), [Err(DecodeError::Aborted), Ok(std::vec![0x81, 0x00])]);
    }

    #[test]
    fn over_long_frame_rejected_then_resync() {
        let big = std::vec![0x42u8; MAX_FRAME_LEN + 1];
        let mut out = std::vec![0u8; encoded_len(&big)];
        assert_eq!(encode(&big, &mut out), Err(EncodeError::TooLong { len: MAX_FRAME_LEN + 1 }));
        // Hand-build the over-long frame: the decoder must refuse it, then recover.
        let mut wire = std::vec![0x7e];
        wire.extend_from_slice(&big);
        wire.extend_from_slice(&fcs(&big).to_le_bytes());
        wire.push(0x7e);
        wire.extend(enc(&[0x81, 0x00]));
        let mut d = SpinelDecoder::new();
        assert_eq!(dec_all(&mut d, &wire), [Err(DecodeError::TooLong), Ok(std::vec![0x81, 0x00])]);
        // Exactly MAX_FRAME_LEN fits.
        let max = std::vec![0x7eu8; MAX_FRAME_LEN];
        assert_eq!(dec_all(&mut d, &enc(&max)), [Ok(max)]);
    }

    #[test]
    fn encode_buffer_too_small() {
        let mut out = [0u8; 6];
        assert_eq!(encode(&[0x81, 0x02, 0x01], &mut out), Err(EncodeError::BufferTooSmall { needed: 7 }));
    }

    /// xorshift32: deterministic, good enough to spread test inputs.
    fn rng(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    #[test]
    fn randomised_round_trip_and_chunking() {
        let mut s = 0x1234_5678;
        let mut d = Decoder::<256>::new();
        for _ in 0..2000 {
            let len = (rng(&mut s) % 257) as usize;
            // Bias towards special bytes so escaping is exercised heavily.
            let payload: Vec<u8> = (0..len)
                .map(|_| match rng(&mut s) % 4 {
                    0 => [0x7e, 0x7d, 0x11, 0x13, 0xf8][(rng(&mut s) % 5) as usize],
                    _ => rng(&mut s) as u8,
                })
                .collect();
            let wire = enc(&payload);
            // Feed in random chunk sizes.
            let mut rest = &wire[..];
            let mut got = Vec::new();
            while !rest.is_empty() {
                let take = 1 + (rng(&mut s) as usize % rest.len());
                let mut chunk = &rest[..take];
                while !chunk.is_empty() {
                    let (n, ev) = d.feed(chunk);
                    if let Some(ev) = ev {
                        got.push(ev.map(|f| f.to_vec()));
                    }
                    chunk = &chunk[n..];
                }
                rest = &rest[take..];
            }
            // An empty payload is still a valid frame (flag, FCS, flag).
            assert_eq!(got, [Ok(payload)]);
        }
    }

    #[test]
    fn random_garbage_never_panics_and_recovers() {
        let mut s = 0xdead_beef;
        let mut d = Decoder::<64>::new();
        for _ in 0..200 {
            let garbage: Vec<u8> = (0..(rng(&mut s) % 300))
                .map(|_| match rng(&mut s) % 8 {
                    0 => 0x7e,
                    1 => 0x7d,
                    _ => rng(&mut s) as u8,
                })
                .collect();
            let _ = dec_all(&mut d, &garbage);
            // Whatever state the garbage left, a flag-led good frame decodes after at most one
            // error from the garbage's own tail.
            let good = enc(&[0x81, 0x06, 0x00, 0x00]);
            let got = dec_all(&mut d, &good);
            assert_eq!(got.last(), Some(&Ok(std::vec![0x81, 0x06, 0x00, 0x00])));
            assert!(got.len() <= 2);
        }
    }
}
