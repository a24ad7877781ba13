//! IPv6 (RFC 8200) header handling for the LoWPAN interface, and the mapping between MAC and
//! IPv6 addresses (RFC 4944 §6, RFC 6282 §3.2.2): an EUI-64 becomes an interface identifier with
//! the U/L bit flipped; a short address `XXXX` becomes `0000:00ff:fe00:XXXX`.
//!
//! ```text
//!  0       4       12      16              24              32
//! +-------+---------------+-------------------------------+
//! |version| traffic class |          flow label           |
//! +-------+-------+-------+-------+---------------+-------+
//! |        payload length         |  next header  | hop l.|
//! +-------------------------------+---------------+-------+
//! |                source address (16)                    |
//! |              destination address (16)                 |
//! +-------------------------------------------------------+
//! ```

use std::net::Ipv6Addr;

use super::mac::MacAddr;

pub const HEADER_LEN: usize = 40;
/// IPv6 minimum MTU, the largest datagram we send or reassemble.
pub const MIN_MTU: usize = 1280;

pub const PROTO_HOPOPT: u8 = 0;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ROUTING: u8 = 43;
pub const PROTO_FRAGMENT: u8 = 44;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_DSTOPTS: u8 = 60;

pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
pub const ALL_RPL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x1a);

/// The interface identifier derived from a MAC address.
pub fn iid_from_mac(mac: MacAddr) -> [u8; 8] {
    match mac {
        MacAddr::Ext(mut e) => {
            e[0] ^= 0x02;
            e
        }
        MacAddr::Short(s) => {
            let [hi, lo] = s.to_be_bytes();
            [0, 0, 0, 0xff, 0xfe, 0, hi, lo]
        }
    }
}

/// The MAC address an interface identifier was derived from.
pub fn mac_from_iid(iid: &[u8; 8]) -> MacAddr {
    if iid[..6] == [0, 0, 0, 0xff, 0xfe, 0] {
        MacAddr::Short(u16::from_be_bytes([iid[6], iid[7]]))
    } else {
        let mut e = *iid;
        e[0] ^= 0x02;
        MacAddr::Ext(e)
    }
}

/// `prefix::IID` for a /64 prefix (only the first 8 bytes of `prefix` are used).
pub fn with_iid(prefix: Ipv6Addr, iid: [u8; 8]) -> Ipv6Addr {
    let mut o = prefix.octets();
    o[8..].copy_from_slice(&iid);
    Ipv6Addr::from(o)
}

pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    with_iid(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), iid_from_mac(mac))
}

pub fn iid(addr: &Ipv6Addr) -> [u8; 8] {
    let o = addr.octets();
    let mut i = [0u8; 8];
    i.copy_from_slice(&o[8..]);
    i
}

pub fn same_prefix64(a: &Ipv6Addr, b: &Ipv6Addr) -> bool {
    a.octets()[..8] == b.octets()[..8]
}

pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The solicited-node multicast group of an address (RFC 4291 §2.7.1).
pub fn solicited_node(a: &Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// Internet checksum over the IPv6 pseudo-header and `payload` (RFC 8200 §8.1), with the
/// checksum field inside `payload` taken as it is (zero it to compute, keep it to verify: a
/// correct packet then sums to 0).
pub fn pseudo_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, payload: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(payload.len() as u32).to_be_bytes());
    add(&[0, 0, 0, proto]);
    add(payload);
    !(sum as u16)
}

/// A parsed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ipv6Error {
    #[error("IPv6 datagram truncated")]
    Truncated,
    #[error("not IPv6 (version {0})")]
    Version(u8),
    #[error("IPv6 payload length {0} disagrees with the datagram")]
    Length(u16),
}

impl Ipv6Header {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, hop_limit: u8, payload_len: usize) -> Self {
        Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: payload_len as u16,
            next_header,
            hop_limit,
            src,
            dst,
        }
    }

    /// Parses the fixed header and returns it with the payload (trailing bytes beyond the
    /// payload length are cut, as RFC 8200 allows link padding).
    pub fn parse(d: &[u8]) -> Result<(Ipv6Header, &[u8]), Ipv6Error> {
        let h = d.get(..HEADER_LEN).ok_or(Ipv6Error::Truncated)?;
        if h[0] >> 4 != 6 {
            return Err(Ipv6Error::Version(h[0] >> 4));
        }
        let payload_len = u16::from_be_bytes([h[4], h[5]]);
        let payload = d.get(HEADER_LEN..HEADER_LEN + usize::from(payload_len)).ok_or(Ipv6Error::Length(payload_len))?;
        let mut src = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&h[24..40]);
        Ok((
            Ipv6Header {
                traffic_class: (h[0] << 4) | (h[1] >> 4),
                flow_label: u32::from_be_bytes([0, h[1] & 0x0f, h[2], h[3]]),
                payload_len,
                next_header: h[6],
                hop_limit: h[7],
                src: src.into(),
                dst: dst.into(),
            },
            payload,
        ))
    }

    pub fn emit(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = 0x60 | (self.traffic_class >> 4);
        out[1] = (self.traffic_class << 4) | ((self.flow_label >> 16) as u8 & 0x0f);
        out[2..4].copy_from_slice(&(self.flow_label as u16).to_be_bytes());
        out[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        out[6] = self.next_header;
        out[7] = self.hop_limit;
        out[8..24].copy_from_slice(&self.src.octets());
        out[24..40].copy_from_slice(&self.dst.octets());
    }
}

/// Skips hop-by-hop, routing and destination-options headers (RPL nodes add an RFC 6553
/// hop-by-hop option upwards). Returns the upper-layer protocol and its bytes.
pub fn skip_extension_headers(mut next: u8, mut d: &[u8]) -> Result<(u8, &[u8]), Ipv6Error> {
    // Bounded: each header is at least 8 bytes, and at most a handful are allowed.
    for _ in 0..8 {
        match next {
            PROTO_HOPOPT | PROTO_ROUTING | PROTO_DSTOPTS => {
                let nh = *d.first().ok_or(Ipv6Error::Truncated)?;
                let len = (usize::from(*d.get(1).ok_or(Ipv6Error::Truncated)?) + 1) * 8;
                d = d.get(len..).ok_or(Ipv6Error::Truncated)?;
                next = nh;
            }
            _ => return Ok((next, d)),
        }
    }
    Err(Ipv6Error::Truncated)
}

/// UDP header (RFC 768).
pub const UDP_HEADER_LEN: usize = 8;

/// Emits an IPv6+UDP datagram with a correct checksum.
pub fn build_udp(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let ulen = UDP_HEADER_LEN + payload.len();
    let mut d = vec![0u8; HEADER_LEN + ulen];
    let mut h = [0u8; HEADER_LEN];
    Ipv6Header::new(src.0, dst.0, PROTO_UDP, hop_limit, ulen).emit(&mut h);
    d[..HEADER_LEN].copy_from_slice(&h);
    let u = &mut d[HEADER_LEN..];
    u[0..2].copy_from_slice(&src.1.to_be_bytes());
    u[2..4].copy_from_slice(&dst.1.to_be_bytes());
    u[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    u[8..].copy_from_slice(payload);
    let mut c = pseudo_checksum(&src.0, &dst.0, PROTO_UDP, u);
    if c == 0 {
        c = 0xffff; // 0 means "no checksum", which IPv6 forbids.
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

/// Emits an IPv6 datagram around an ICMPv6 message whose checksum field is filled here.
pub fn build_icmpv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, mut msg: Vec<u8>) -> Vec<u8> {
    if msg.len() >= 4 {
        msg[2] = 0;
        msg[3] = 0;
        let c = pseudo_checksum(&src, &dst, PROTO_ICMPV6, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let mut h = [0u8; HEADER_LEN];
    Ipv6Header::new(src, dst, PROTO_ICMPV6, hop_limit, msg.len()).emit(&mut h);
    let mut d = h.to_vec();
    d.extend_from_slice(&msg);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_from_eui64_flips_ul_bit() {
        let mac = MacAddr::Ext([0x00, 0x12, 0x4b, 0x00, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(link_local(mac), "fe80::212:4b00:102:304".parse::<Ipv6Addr>().unwrap());
        assert_eq!(mac_from_iid(&iid(&link_local(mac))), mac);
    }

    #[test]
    fn link_local_from_short() {
        let mac = MacAddr::Short(0xbeef);
        assert_eq!(link_local(mac), "fe80::ff:fe00:beef".parse::<Ipv6Addr>().unwrap());
        assert_eq!(mac_from_iid(&iid(&link_local(mac))), mac);
    }

    #[test]
    fn udp_checksum_verifies_to_zero() {
        let a: Ipv6Addr = "fe80::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let d = build_udp((a, 5683), (b, 61616), 64, b"hello");
        let (h, p) = Ipv6Header::parse(&d).unwrap();
        assert_eq!((h.src, h.dst, h.next_header, h.payload_len), (a, b, PROTO_UDP, 13));
        assert_eq!(pseudo_checksum(&a, &b, PROTO_UDP, p), 0);
    }

    #[test]
    fn header_vector() {
        #[rustfmt::skip]
        let v = [
            0x60, 0x00, 0x00, 0x00, // version 6, TC 0, flow 0
            0x00, 0x08, 0x11, 0x40, // payload 8, UDP, hop limit 64
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src fe80::1
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst fe80::2
            0x16, 0x33, 0x16, 0x33, 0x00, 0x08, 0x00, 0x00, // UDP header
        ];
        let (h, p) = Ipv6Header::parse(&v).unwrap();
        assert_eq!(p.len(), 8);
        let mut out = [0u8; HEADER_LEN];
        h.emit(&mut out);
        assert_eq!(&out[..], &v[..HEADER_LEN]);
        assert_eq!(Ipv6Header::parse(&v[..47]), Err(Ipv6Error::Length(8)));
    }
}
