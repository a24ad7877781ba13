//! UDP next-header compression (RFC 6282 §4.3).
//!
//! ```text
//!   0   1   2   3   4   5   6   7
//! +---+---+---+---+---+---+---+---+
//! | 1 | 1 | 1 | 1 | 0 | C |   P   |   then ports (P), then checksum unless C
//! +---+---+---+---+---+---+---+---+
//!  P=00: src 16, dst 16   P=01: src 16, dst 0xf0XX (8)
//!  P=10: src 0xf0XX (8), dst 16   P=11: src and dst 0xf0bX (4 + 4)
//! ```
//!
//! Ours rather than smoltcp's: smoltcp 0.12 mis-encodes and mis-decodes the P=11 form (it ANDs
//! the nibbles on emit and adds the whole byte to the destination on parse).

pub const DISPATCH: u8 = 0b1111_0000;
const DISPATCH_MASK: u8 = 0b1111_1000;
const FLAG_C: u8 = 0b100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpNhcRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// `None` when the checksum was elided (C=1).
    pub checksum: Option<u16>,
}

fn ports_mode(src: u16, dst: u16) -> u8 {
    match (src, dst) {
        (0xf0b0..=0xf0bf, 0xf0b0..=0xf0bf) => 0b11,
        (0xf000..=0xf0ff, _) => 0b10,
        (_, 0xf000..=0xf0ff) => 0b01,
        _ => 0b00,
    }
}

impl UdpNhcRepr {
    /// Whether `b` starts with the UDP NHC dispatch.
    pub fn is_udp(b: &[u8]) -> bool {
        b.first().is_some_and(|d| d & DISPATCH_MASK == DISPATCH)
    }

    /// Parses the header; returns it and its length.
    pub fn parse(b: &[u8]) -> Option<(UdpNhcRepr, usize)> {
        let &d = b.first().filter(|d| **d & DISPATCH_MASK == DISPATCH)?;
        let u16_at = |i: usize| b.get(i..i + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
        let (src_port, dst_port, at) = match d & 0b11 {
            0b00 => (u16_at(1)?, u16_at(3)?, 5),
            0b01 => (u16_at(1)?, 0xf000 | u16::from(*b.get(3)?), 4),
            0b10 => (0xf000 | u16::from(*b.get(1)?), u16_at(2)?, 4),
            _ => {
                let n = *b.get(1)?;
                (0xf0b0 | u16::from(n >> 4), 0xf0b0 | u16::from(n & 0x0f), 2)
            }
        };
        if d & FLAG_C != 0 {
            Some((UdpNhcRepr { src_port, dst_port, checksum: None }, at))
        } else {
            Some((UdpNhcRepr { src_port, dst_port, checksum: Some(u16_at(at)?) }, at + 2))
        }
    }

    pub fn header_len(&self) -> usize {
        let ports = match ports_mode(self.src_port, self.dst_port) {
            0b00 => 4,
            0b11 => 1,
            _ => 3,
        };
        1 + ports + if self.checksum.is_some() { 2 } else { 0 }
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        let mode = ports_mode(self.src_port, self.dst_port);
        let c = if self.checksum.is_none() { FLAG_C } else { 0 };
        out.push(DISPATCH | c | mode);
        let (s, d) = (self.src_port.to_be_bytes(), self.dst_port.to_be_bytes());
        match mode {
            0b00 => out.extend_from_slice(&[s[0], s[1], d[0], d[1]]),
            0b01 => out.extend_from_slice(&[s[0], s[1], d[1]]),
            0b10 => out.extend_from_slice(&[s[1], d[0], d[1]]),
            _ => out.push(((s[1] & 0x0f) << 4) | (d[1] & 0x0f)),
        }
        if let Some(ck) = self.checksum {
            out.extend_from_slice(&ck.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip() {
        let cases: [(&[u8], UdpNhcRepr); 4] = [
            // P=00: both ports inline, checksum inline.
            (
                &[0xf0, 0x16, 0x33, 0xc0, 0x2d, 0xbe, 0xef],
                UdpNhcRepr { src_port: 5683, dst_port: 49197, checksum: Some(0xbeef) },
            ),
            // P=01: dst 0xf0 + 0x12.
            (&[0xf1, 0x16, 0x33, 0x12, 0x00, 0x01], UdpNhcRepr { src_port: 5683, dst_port: 0xf012, checksum: Some(1) }),
            // P=10: src 0xf0 + 0x34.
            (&[0xf2, 0x34, 0x16, 0x33, 0x00, 0x02], UdpNhcRepr { src_port: 0xf034, dst_port: 5683, checksum: Some(2) }),
            // P=11, C=1: 0xf0b1 → 0xf0b2, checksum elided.
            (&[0xf7, 0x12], UdpNhcRepr { src_port: 0xf0b1, dst_port: 0xf0b2, checksum: None }),
        ];
        for (bytes, repr) in cases {
            assert_eq!(UdpNhcRepr::parse(bytes), Some((repr, bytes.len())));
            let mut out = Vec::new();
            repr.emit(&mut out);
            assert_eq!(out, bytes);
            assert_eq!(repr.header_len(), bytes.len());
        }
        assert_eq!(UdpNhcRepr::parse(&[0xf0, 0x16]), None);
        assert_eq!(UdpNhcRepr::parse(&[0xe0, 0, 0, 0, 0, 0, 0]), None);
    }
}
