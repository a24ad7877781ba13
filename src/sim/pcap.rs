//! Capture files of everything the medium put on air, in the classic libpcap format
//! (draft-ietf-opsawg-pcap §4 file header, §5 packet record) with link type
//! `LINKTYPE_IEEE802_15_4_WITHFCS` (195): each record is a PSDU, FCS included, which Wireshark
//! decodes as IEEE 802.15.4 and checks against the CRC-16/ITU-T (KERMIT) FCS.
//!
//! Timestamps are the medium's virtual time (µs) at the start of the frame's SHR, plus a
//! caller-chosen epoch so captures can line up with wall-clock logs.

use std::io::{self, Write};

use super::medium::AirFrame;

/// `LINKTYPE_IEEE802_15_4_WITHFCS`.
pub const LINKTYPE_IEEE802_15_4_WITHFCS: u32 = 195;
/// Microsecond-resolution pcap magic.
const MAGIC_US: u32 = 0xa1b2_c3d4;
/// Larger than any PSDU (127), as the link type demands nothing bigger.
const SNAPLEN: u32 = 256;

/// The 24-byte file header, little-endian.
pub fn file_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_US.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_IEEE802_15_4_WITHFCS.to_le_bytes());
    h
}

/// One packet record: 16-byte header (seconds, microseconds, captured and original length) and
/// the PSDU.
pub fn record(frame: &AirFrame, epoch_us: u64) -> Vec<u8> {
    let t = epoch_us.saturating_add(frame.start_us);
    let psdu = frame.psdu.as_slice();
    let len = psdu.len() as u32;
    let mut r = Vec::with_capacity(16 + psdu.len());
    // pcap's 32-bit seconds wrap in 2106; saturate rather than wrap.
    r.extend_from_slice(&u32::try_from(t / 1_000_000).unwrap_or(u32::MAX).to_le_bytes());
    r.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(psdu);
    r
}

/// Writes a capture to any `Write` (a file, a FIFO Wireshark reads live, a `Vec`).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    epoch_us: u64,
    frames: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header; records get `epoch_us` added to their virtual time.
    pub fn new(mut out: W, epoch_us: u64) -> io::Result<Self> {
        out.write_all(&file_header())?;
        Ok(PcapWriter { out, epoch_us, frames: 0 })
    }

    pub fn write_frame(&mut self, frame: &AirFrame) -> io::Result<()> {
        self.out.write_all(&record(frame, self.epoch_us))?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::frame::Header;
    use crate::sim::medium::NodeId;

    #[test]
    fn header_and_record_layout() {
        assert_eq!(
            file_header(),
            [
                0xd4, 0xc3, 0xb2, 0xa1, // magic, µs timestamps, little-endian
                0x02, 0x00, 0x04, 0x00, // version 2.4
                0, 0, 0, 0, 0, 0, 0, 0, // thiszone, sigfigs
                0x00, 0x01, 0x00, 0x00, // snaplen 256
                0xc3, 0x00, 0x00, 0x00, // LINKTYPE_IEEE802_15_4_WITHFCS
            ]
        );
        let psdu = Header::ack(5, false).emit_frame(&[]).unwrap();
        let f = AirFrame { start_us: 2_500_001, end_us: 2_500_353, channel: 15, sender: NodeId(0), psdu };
        let r = record(&f, 1_000_000);
        assert_eq!(r[..16], [3, 0, 0, 0, 0x21, 0xa1, 0x07, 0, 5, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(&r[16..], psdu.as_slice());
    }
}
