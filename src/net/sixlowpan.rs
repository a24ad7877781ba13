//! 6LoWPAN adaptation (RFC 4944, RFC 6282): dispatch, IPHC + UDP NHC compression of whole
//! IPv6 datagrams, and FRAG1/FRAGN fragmentation of the compressed datagram.
//!
//! ```text
//!  IPHC (RFC 6282 §3.1.1)                    FRAG1 (RFC 4944 §5.3)        FRAGN
//!   0   1   2   3 4   5   6   7 8 ...      +-----+------------+-----+   +-----+------+-----+------+
//!  +---+---+---+-----+---+-----+---+---+   |11000| size (11b) | tag |   |11100| size | tag |offset|
//!  | 0 | 1 | 1 | TF  |NH | HLIM|CID|SAC|   +-----+------------+-----+   +-----+------+-----+------+
//!  |SAM| M |DAC| DAM |  inline fields...    4 bytes, offset 0             5 bytes, offset in 8-byte units
//! ```
//!
//! Decoding IPHC is smoltcp's (UDP NHC is ours, see `udp_nhc`), with one gap handled here: with
//! a context, a 16-bit inline address (SAM/DAM = 10) must expand to `prefix:0000:00ff:fe00:XXXX`;
//! smoltcp 0.12 leaves the `ff:fe` out, so we put it back.
//!
//! Encoding IPHC is ours: smoltcp's emitter ignores contexts, so every global address would go
//! inline (16 bytes each way), which pushes a 64-byte CoAP block over one 802.15.4 frame. With
//! the LoWPAN prefix as context 0, addresses under it compress like link-local ones: elided when
//! the IID follows from the MAC address, 2 or 8 bytes otherwise.
//!
//! Decompression rebuilds the uncompressed IPv6 (+UDP) header so that the rest of `net` handles
//! plain IPv6 bytes, and so fragment offsets (counted in the uncompressed datagram) line up.

use std::net::Ipv6Addr;

use smoltcp::wire::{SixlowpanAddressContext, SixlowpanIphcPacket, SixlowpanIphcRepr, SixlowpanNextHeader};

use super::ipv6::{self, Ipv6Header, HEADER_LEN, PROTO_UDP, UDP_HEADER_LEN};
use super::mac::MacAddr;
use super::udp_nhc::UdpNhcRepr;

/// Dispatch values (RFC 4944 §5.1, RFC 6282 §3.1).
pub const DISPATCH_IPV6: u8 = 0x41;
pub const DISPATCH_FRAG1: u8 = 0b1100_0000;
pub const DISPATCH_FRAGN: u8 = 0b1110_0000;
pub const FRAG1_HEADER_LEN: usize = 4;
pub const FRAGN_HEADER_LEN: usize = 5;

/// The 6LoWPAN header type a MAC payload starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    Ipv6,
    Iphc,
    Frag1,
    FragN,
    /// NALP, mesh, broadcast and reserved dispatches.
    Unknown(u8),
}

impl Dispatch {
    pub fn of(payload: &[u8]) -> Option<Dispatch> {
        let &b = payload.first()?;
        Some(match b {
            DISPATCH_IPV6 => Dispatch::Ipv6,
            _ if b >> 5 == 0b011 => Dispatch::Iphc,
            _ if b >> 3 == DISPATCH_FRAG1 >> 3 => Dispatch::Frag1,
            _ if b >> 3 == DISPATCH_FRAGN >> 3 => Dispatch::FragN,
            _ => Dispatch::Unknown(b),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SixlowpanError {
    #[error("malformed IPHC header")]
    Iphc,
    #[error("malformed or unsupported next-header compression")]
    Nhc,
    #[error("malformed fragment header")]
    Fragment,
    #[error("datagram length {0} is inconsistent")]
    Length(usize),
    #[error("not a valid IPv6 datagram")]
    Ipv6,
    #[error("compressed headers ({0} bytes) do not fit one frame")]
    HeaderTooLong(usize),
}

/// A compressed datagram ready for the MAC layer (whole or fragmented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// IPHC header, NHC header, then the upper-layer payload.
    pub bytes: Vec<u8>,
    /// Length of the compressed headers at the start of `bytes`.
    pub header_len: usize,
    /// Length of the same headers uncompressed (40, or 48 with UDP).
    pub uncompressed_header_len: usize,
    /// Size of the uncompressed datagram (the FRAG `datagram_size`).
    pub datagram_size: usize,
}

fn ll(mac: MacAddr) -> smoltcp::wire::Ieee802154Address {
    match mac {
        MacAddr::Short(s) => smoltcp::wire::Ieee802154Address::Short(s.to_be_bytes()),
        MacAddr::Ext(e) => smoltcp::wire::Ieee802154Address::Extended(e),
    }
}

/// IPHC dispatch (`011`) in the first byte.
const IPHC_DISPATCH: u8 = 0b0110_0000;
/// First byte: traffic class and flow label elided (TF = 11).
const IPHC_TF_ELIDED: u8 = 0b0001_1000;
/// First byte: next header compressed with NHC.
const IPHC_NH: u8 = 0b0000_0100;
/// Second byte: source / destination address stateful (context 0), multicast destination.
const IPHC_SAC: u8 = 0b0100_0000;
const IPHC_M: u8 = 0b0000_1000;
const IPHC_DAC: u8 = 0b0000_0100;

/// The address mode bits (SAM or DAM, before shifting) and the inline bytes of a unicast
/// address whose first 64 bits are implied (link-local or context 0), RFC 6282 §3.1.1.
fn unicast_iid_mode(addr: &Ipv6Addr, mac: MacAddr, inline: &mut Vec<u8>) -> u8 {
    let o = addr.octets();
    if o[8..] == ipv6::iid_from_mac(mac) {
        0b11
    } else if o[8..14] == [0, 0, 0, 0xff, 0xfe, 0] {
        inline.extend_from_slice(&o[14..]);
        0b10
    } else {
        inline.extend_from_slice(&o[8..]);
        0b01
    }
}

/// Encodes one unicast address: (stateful flag, mode) with the inline bytes appended.
fn unicast_mode(addr: &Ipv6Addr, mac: MacAddr, context0: Option<&[u8]>, inline: &mut Vec<u8>) -> (bool, u8) {
    let o = addr.octets();
    if addr.is_unspecified() {
        return (true, 0b00);
    }
    if o[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0] {
        return (false, unicast_iid_mode(addr, mac, inline));
    }
    if context0.is_some_and(|c| o[..8] == *c) {
        return (true, unicast_iid_mode(addr, mac, inline));
    }
    inline.extend_from_slice(&o);
    (false, 0b00)
}

/// DAM for a multicast destination, with the inline bytes appended (RFC 6282 §3.1.1, M = 1).
fn multicast_mode(addr: &Ipv6Addr, inline: &mut Vec<u8>) -> u8 {
    let o = addr.octets();
    if o[1] == 0x02 && o[2..15].iter().all(|&b| b == 0) {
        inline.push(o[15]);
        0b11
    } else if o[2..13].iter().all(|&b| b == 0) {
        inline.extend_from_slice(&[o[1], o[13], o[14], o[15]]);
        0b10
    } else if o[2..11].iter().all(|&b| b == 0) {
        inline.extend_from_slice(&[o[1], o[11], o[12], o[13], o[14], o[15]]);
        0b01
    } else {
        inline.extend_from_slice(&o);
        0b00
    }
}

/// The IPHC header for `h` on the link `ll_src → ll_dst` (no CID: only context 0 is used).
fn iphc_header(h: &Ipv6Header, udp: bool, ll_src: MacAddr, ll_dst: MacAddr, context0: Option<Ipv6Addr>) -> Vec<u8> {
    let ctx = context0.map(|p| p.octets());
    let ctx = ctx.as_ref().map(|o| &o[..8]);
    let mut out = vec![IPHC_DISPATCH, 0];
    let flow_label = h.flow_label & 0x000f_ffff;
    if h.traffic_class == 0 && flow_label == 0 {
        out[0] |= IPHC_TF_ELIDED;
    } else {
        // TF = 00: ECN and DSCP (swapped from the IPv6 order), 4 pad bits, the 20-bit flow label.
        let tc = h.traffic_class;
        let reordered = ((tc & 0x03) << 6) | (tc >> 2);
        out.push(reordered);
        out.extend_from_slice(&flow_label.to_be_bytes()[1..]);
    }
    if udp {
        out[0] |= IPHC_NH;
    } else {
        out.push(h.next_header);
    }
    match h.hop_limit {
        1 => out[0] |= 0b01,
        64 => out[0] |= 0b10,
        255 => out[0] |= 0b11,
        other => out.push(other),
    }
    let mut inline = Vec::with_capacity(32);
    let (sac, sam) = unicast_mode(&h.src, ll_src, ctx, &mut inline);
    out[1] |= sam << 4;
    if sac {
        out[1] |= IPHC_SAC;
    }
    if h.dst.is_multicast() {
        out[1] |= IPHC_M | multicast_mode(&h.dst, &mut inline);
    } else {
        let (dac, dam) = unicast_mode(&h.dst, ll_dst, ctx, &mut inline);
        out[1] |= dam;
        if dac {
            out[1] |= IPHC_DAC;
        }
    }
    out.extend_from_slice(&inline);
    out
}

/// Compresses an IPv6 datagram for the link `ll_src → ll_dst`: IPHC always (addresses under
/// `context0`, the LoWPAN prefix, compressed statefully), UDP NHC for UDP (checksum kept inline,
/// as RFC 6282 §4.3.2 requires without an upper-layer integrity check).
pub fn compress(
    datagram: &[u8],
    ll_src: MacAddr,
    ll_dst: MacAddr,
    context0: Option<Ipv6Addr>,
) -> Result<Compressed, SixlowpanError> {
    let (h, payload) = Ipv6Header::parse(datagram).map_err(|_| SixlowpanError::Ipv6)?;
    let udp = h.next_header == PROTO_UDP && payload.len() >= UDP_HEADER_LEN;
    let mut bytes = iphc_header(&h, udp, ll_src, ll_dst, context0);
    let (header_len, uncompressed_header_len);
    if udp {
        let (uh, data) = payload.split_at(UDP_HEADER_LEN);
        let nhc = UdpNhcRepr {
            src_port: u16::from_be_bytes([uh[0], uh[1]]),
            dst_port: u16::from_be_bytes([uh[2], uh[3]]),
            checksum: Some(u16::from_be_bytes([uh[6], uh[7]])),
        };
        nhc.emit(&mut bytes);
        header_len = bytes.len();
        bytes.extend_from_slice(data);
        uncompressed_header_len = HEADER_LEN + UDP_HEADER_LEN;
    } else {
        header_len = bytes.len();
        bytes.extend_from_slice(payload);
        uncompressed_header_len = HEADER_LEN;
    }
    Ok(Compressed { bytes, header_len, uncompressed_header_len, datagram_size: HEADER_LEN + payload.len() })
}

/// Headers recovered from an IPHC-compressed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decompressed {
    /// The uncompressed IPv6 header (and UDP header when NHC was used).
    pub headers: Vec<u8>,
    /// Bytes of the input taken by the compressed headers; the rest is upper-layer payload.
    pub consumed: usize,
    /// The UDP checksum was elided and must be computed over the whole datagram.
    pub udp_checksum_elided: bool,
}

/// Decompresses the headers at the start of `bytes` (which starts with the IPHC dispatch).
/// `datagram_size` is the FRAG1 size when fragmented; otherwise the size follows from `bytes`.
pub fn decompress(
    bytes: &[u8],
    ll_src: MacAddr,
    ll_dst: MacAddr,
    context0: Option<Ipv6Addr>,
    datagram_size: Option<usize>,
) -> Result<Decompressed, SixlowpanError> {
    // smoltcp gap: stateful addresses without a CID byte mean context 0 (RFC 6282 §3.1.1, and
    // what RIOT and Contiki send), but smoltcp 0.12 refuses them; give it an explicit CID 0.
    let with_cid;
    let (bytes, added) = match bytes {
        [b0, b1, rest @ ..] if b1 & 0x80 == 0 && b1 & (IPHC_SAC | IPHC_DAC) != 0 => {
            with_cid = [&[*b0, b1 | 0x80, 0x00][..], rest].concat();
            (&with_cid[..], 1)
        }
        _ => (bytes, 0),
    };
    let pkt = SixlowpanIphcPacket::new_checked(bytes).map_err(|_| SixlowpanError::Iphc)?;
    let ctx: Vec<SixlowpanAddressContext> = context0
        .map(|p| {
            let mut c = [0u8; 8];
            c.copy_from_slice(&p.octets()[..8]);
            SixlowpanAddressContext(c)
        })
        .into_iter()
        .collect();
    let repr =
        SixlowpanIphcRepr::parse(&pkt, Some(ll(ll_src)), Some(ll(ll_dst)), &ctx).map_err(|_| SixlowpanError::Iphc)?;
    let mut src = repr.src_addr;
    let mut dst = repr.dst_addr;
    // smoltcp gap: context-based 16-bit addresses lack the 0000:00ff:fe00 middle.
    // Second IPHC byte: CID SAC SAM(2) M DAC DAM(2); check_len guaranteed two bytes.
    let b1 = bytes[1];
    if b1 & 0x70 == 0x60 {
        src = fix_ctx16(src);
    }
    if b1 & 0x0f == 0x06 {
        dst = fix_ctx16(dst);
    }
    let mut consumed = pkt.header_len();
    let rest = bytes.get(consumed..).ok_or(SixlowpanError::Iphc)?;
    let mut udp: Option<(u16, u16, Option<u16>)> = None;
    let next = match repr.next_header {
        SixlowpanNextHeader::Uncompressed(p) => u8::from(p),
        // Compressed extension headers (NHC EH) are not supported yet.
        SixlowpanNextHeader::Compressed => {
            let (u, len) = UdpNhcRepr::parse(rest).ok_or(SixlowpanError::Nhc)?;
            consumed += len;
            udp = Some((u.src_port, u.dst_port, u.checksum));
            PROTO_UDP
        }
    };
    let uncompressed_hdr = HEADER_LEN + if udp.is_some() { UDP_HEADER_LEN } else { 0 };
    let size = match datagram_size {
        Some(s) => s,
        None => uncompressed_hdr + (bytes.len() - consumed),
    };
    if size < uncompressed_hdr || size > usize::from(u16::MAX) + HEADER_LEN {
        return Err(SixlowpanError::Length(size));
    }
    let payload_len = size - HEADER_LEN;
    let (traffic_class, flow_label) = traffic_fields(bytes);
    let h = Ipv6Header {
        traffic_class,
        flow_label,
        payload_len: u16::try_from(payload_len).map_err(|_| SixlowpanError::Length(size))?,
        next_header: next,
        hop_limit: repr.hop_limit,
        src,
        dst,
    };
    let mut hb = [0u8; HEADER_LEN];
    h.emit(&mut hb);
    let mut headers = hb.to_vec();
    let mut udp_checksum_elided = false;
    if let Some((sp, dp, ck)) = udp {
        headers.extend_from_slice(&sp.to_be_bytes());
        headers.extend_from_slice(&dp.to_be_bytes());
        headers.extend_from_slice(&(payload_len as u16).to_be_bytes());
        headers.extend_from_slice(&ck.unwrap_or(0).to_be_bytes());
        udp_checksum_elided = ck.is_none();
    }
    // `consumed` counts in the (possibly CID-patched) buffer; the caller's bytes lack that byte.
    Ok(Decompressed { headers, consumed: consumed - added, udp_checksum_elided })
}

/// Traffic class (in IPv6 order) and flow label of an IPHC header that smoltcp has already
/// checked. smoltcp 0.12 leaves the ECN bits unshifted and keeps only 16 bits of the flow label,
/// so they are read here (RFC 6282 §3.1.1, TF).
fn traffic_fields(iphc: &[u8]) -> (u8, u32) {
    let start = if iphc[1] & 0x80 != 0 { 3 } else { 2 };
    let f = |i: usize| iphc.get(start + i).copied().unwrap_or(0);
    let flow = |hi: u8, mid: u8, lo: u8| (u32::from(hi & 0x0f) << 16) | (u32::from(mid) << 8) | u32::from(lo);
    let ecn_dscp = |b: u8| ((b & 0x3f) << 2) | (b >> 6);
    match (iphc[0] >> 3) & 0b11 {
        0b00 => (ecn_dscp(f(0)), flow(f(1), f(2), f(3))),
        0b01 => ((f(0) >> 6), flow(f(0), f(1), f(2))),
        0b10 => (ecn_dscp(f(0)), 0),
        _ => (0, 0),
    }
}

fn fix_ctx16(a: Ipv6Addr) -> Ipv6Addr {
    let mut o = a.octets();
    o[8..14].copy_from_slice(&[0, 0, 0, 0xff, 0xfe, 0]);
    Ipv6Addr::from(o)
}

/// Fills in an elided UDP checksum once the whole datagram is known.
pub fn fill_udp_checksum(datagram: &mut [u8]) {
    let Ok((h, _)) = Ipv6Header::parse(datagram) else { return };
    if h.next_header != PROTO_UDP || datagram.len() < HEADER_LEN + UDP_HEADER_LEN {
        return;
    }
    let end = HEADER_LEN + usize::from(h.payload_len);
    // The length field may have been overwritten by a later fragment: it must still hold a
    // UDP header.
    let Some(u) = datagram.get_mut(HEADER_LEN..end).filter(|u| u.len() >= UDP_HEADER_LEN) else { return };
    u[6] = 0;
    u[7] = 0;
    let mut c = ipv6::pseudo_checksum(&h.src, &h.dst, PROTO_UDP, u);
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
}

/// Decompresses a whole (unfragmented) 6LoWPAN packet into an IPv6 datagram.
pub fn decompress_datagram(
    payload: &[u8],
    ll_src: MacAddr,
    ll_dst: MacAddr,
    context0: Option<Ipv6Addr>,
) -> Result<Vec<u8>, SixlowpanError> {
    match Dispatch::of(payload) {
        Some(Dispatch::Ipv6) => Ok(payload[1..].to_vec()),
        Some(Dispatch::Iphc) => {
            let d = decompress(payload, ll_src, ll_dst, context0, None)?;
            let mut out = d.headers;
            out.extend_from_slice(&payload[d.consumed..]);
            if d.udp_checksum_elided {
                fill_udp_checksum(&mut out);
            }
            Ok(out)
        }
        _ => Err(SixlowpanError::Iphc),
    }
}

/// A parsed fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragHeader {
    pub size: u16,
    pub tag: u16,
    /// Offset in bytes of the uncompressed datagram (0 for FRAG1).
    pub offset: usize,
    pub first: bool,
}

impl FragHeader {
    pub fn header_len(&self) -> usize {
        if self.first {
            FRAG1_HEADER_LEN
        } else {
            FRAGN_HEADER_LEN
        }
    }

    pub fn parse(b: &[u8]) -> Result<FragHeader, SixlowpanError> {
        let first = match Dispatch::of(b) {
            Some(Dispatch::Frag1) => true,
            Some(Dispatch::FragN) => false,
            _ => return Err(SixlowpanError::Fragment),
        };
        let h = b.get(..if first { FRAG1_HEADER_LEN } else { FRAGN_HEADER_LEN }).ok_or(SixlowpanError::Fragment)?;
        Ok(FragHeader {
            size: u16::from_be_bytes([h[0] & 0x07, h[1]]),
            tag: u16::from_be_bytes([h[2], h[3]]),
            offset: if first { 0 } else { usize::from(h[4]) * 8 },
            first,
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        let [hi, lo] = self.size.to_be_bytes();
        let d = if self.first { DISPATCH_FRAG1 } else { DISPATCH_FRAGN };
        out.push(d | (hi & 0x07));
        out.push(lo);
        out.extend_from_slice(&self.tag.to_be_bytes());
        if !self.first {
            out.push((self.offset / 8) as u8);
        }
    }
}

/// Splits a compressed datagram into MAC payloads of at most `max_payload` bytes: as is when it
/// fits, else FRAG1 (compressed headers + data up to an 8-byte boundary of the uncompressed
/// datagram) and FRAGNs (multiples of 8 bytes, the last one shorter).
pub fn fragment(c: &Compressed, tag: u16, max_payload: usize) -> Result<Vec<Vec<u8>>, SixlowpanError> {
    if c.bytes.len() <= max_payload {
        return Ok(vec![c.bytes.clone()]);
    }
    let size =
        u16::try_from(c.datagram_size).ok().filter(|&s| s <= 0x07ff).ok_or(SixlowpanError::Length(c.datagram_size))?;
    let room1 = max_payload.saturating_sub(FRAG1_HEADER_LEN);
    let data_room = room1.checked_sub(c.header_len).ok_or(SixlowpanError::HeaderTooLong(c.header_len))?;
    // First fragment ends on an 8-byte boundary of the uncompressed datagram.
    let end_u = (c.uncompressed_header_len + data_room) & !7;
    let first_data = end_u
        .checked_sub(c.uncompressed_header_len)
        .filter(|&k| k > 0)
        .ok_or(SixlowpanError::HeaderTooLong(c.header_len))?;
    let chunk = max_payload.saturating_sub(FRAGN_HEADER_LEN) & !7;
    if chunk == 0 {
        return Err(SixlowpanError::HeaderTooLong(c.header_len));
    }
    let data = &c.bytes[c.header_len..];
    let mut out = Vec::new();
    let mut f = Vec::with_capacity(max_payload);
    FragHeader { size, tag, offset: 0, first: true }.emit(&mut f);
    f.extend_from_slice(&c.bytes[..c.header_len]);
    f.extend_from_slice(&data[..first_data.min(data.len())]);
    out.push(f);
    let mut sent = first_data;
    while sent < data.len() {
        let n = chunk.min(data.len() - sent);
        let mut f = Vec::with_capacity(FRAGN_HEADER_LEN + n);
        FragHeader { size, tag, offset: c.uncompressed_header_len + sent, first: false }.emit(&mut f);
        f.extend_from_slice(&data[sent..sent + n]);
        out.push(f);
        sent += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: MacAddr = MacAddr::Ext([0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]);
    const BR: MacAddr = MacAddr::Ext([0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);

    // A CoAP GET /riot/board (CON, MID 0x1234, token 0xab) from a RIOT node's link-local address
    // (derived from its EUI-64) to the border router's, addresses fully elided. This is the form
    // RIOT's gnrc_sixlowpan_iphc sends without the `gnrc_sixlowpan_iphc_nhc` module (UDP header
    // inline); with it, the UDP NHC form checked below.
    #[rustfmt::skip]
    const RIOT_COAP_GET: [u8; 27] = [
        0x7a, 0x33, // IPHC: TF=11 (elided), NH=0 (inline), HLIM=10 (64), CID=0 SAC=0 SAM=11 M=0 DAC=0 DAM=11
        0x11,       // next header: UDP, inline
        0xc0, 0x2d, // UDP src port 49197
        0x16, 0x33, // UDP dst port 5683
        0x00, 0x18, // UDP length 24
        0x00, 0x00, // UDP checksum (filled in by the test)
        0x41, 0x01, 0x12, 0x34, // CoAP: ver 1, CON, TKL 1, GET, MID 0x1234
        0xab,                   // token
        0xb4, b'r', b'i', b'o', b't', // Uri-Path "riot"
        0x05, b'b', b'o', b'a', b'r', b'd', // Uri-Path "board"
    ];

    #[test]
    fn riot_coap_get_decompresses() {
        let src = ipv6::link_local(NODE);
        let dst = ipv6::link_local(BR);
        let mut v = RIOT_COAP_GET;
        let full = ipv6::build_udp((src, 49197), (dst, 5683), 64, &v[11..]);
        v[9..11].copy_from_slice(&full[46..48]);
        let d = decompress_datagram(&v, NODE, BR, None).unwrap();
        assert_eq!(d, full);
        // Our own compression picks UDP NHC instead of an inline UDP header.
        let c = compress(&full, NODE, BR, None).unwrap();
        #[rustfmt::skip]
        let want_hdr = [
            0x7e, 0x33, // IPHC as above but NH=1 (NHC follows)
            0xf0,       // UDP NHC: ports inline (16/16), checksum inline
            0xc0, 0x2d, 0x16, 0x33, // ports
        ];
        assert_eq!(&c.bytes[..7], &want_hdr);
        assert_eq!(c.header_len, 9);
        assert_eq!(decompress_datagram(&c.bytes, NODE, BR, None).unwrap(), full);
    }

    #[test]
    fn context0_prefix_and_short_address() {
        let prefix: Ipv6Addr = "2001:db8:1:2::".parse().unwrap();
        #[rustfmt::skip]
        let v = [
            0x7a, 0xe6, // IPHC: TF=11, NH=0, HLIM=10, CID=1; SAC=1 SAM=10; M=0 DAC=1 DAM=10
            0x00,       // CID: SCI 0, DCI 0
            0x3a,       // next header ICMPv6, inline
            0x00, 0x07, // src: 16 bits inline
            0x00, 0x01, // dst: 16 bits inline
            0x80, 0x00, 0x00, 0x00, // ICMPv6 echo request, checksum not checked here
        ];
        let d = decompress_datagram(&v, MacAddr::Short(7), MacAddr::Short(1), Some(prefix)).unwrap();
        let (h, p) = Ipv6Header::parse(&d).unwrap();
        assert_eq!(h.src, "2001:db8:1:2::ff:fe00:7".parse::<Ipv6Addr>().unwrap());
        assert_eq!(h.dst, "2001:db8:1:2::ff:fe00:1".parse::<Ipv6Addr>().unwrap());
        assert_eq!((h.next_header, p.len()), (58, 4));
        // Without a context 0, this cannot be decompressed.
        assert_eq!(decompress_datagram(&v, MacAddr::Short(7), MacAddr::Short(1), None), Err(SixlowpanError::Iphc));
    }

    #[test]
    fn context0_compresses_prefix_addresses_to_nothing() {
        let prefix: Ipv6Addr = "fd00:f022:1:2::".parse().unwrap();
        let global = |mac| {
            let mut o = prefix.octets();
            o[8..].copy_from_slice(&ipv6::iid_from_mac(mac));
            Ipv6Addr::from(o)
        };
        let full = ipv6::build_udp((global(NODE), 5683), (global(BR), 5683), 64, b"block");
        let c = compress(&full, NODE, BR, Some(prefix)).unwrap();
        // TF=11 NH=1 HLIM=10; SAC=1 SAM=11, DAC=1 DAM=11: both addresses elided.
        assert_eq!(&c.bytes[..2], &[0x7e, 0x77]);
        assert_eq!(c.header_len, 2 + 7); // IPHC, then NHC: ports 16/16 and the checksum inline
        assert_eq!(decompress_datagram(&c.bytes, NODE, BR, Some(prefix)).unwrap(), full);
        // Without the context on our side, the addresses go inline and still decode.
        let inline = compress(&full, NODE, BR, None).unwrap();
        assert_eq!(inline.header_len, c.header_len + 32);
        assert_eq!(decompress_datagram(&inline.bytes, NODE, BR, Some(prefix)).unwrap(), full);
    }

    #[test]
    fn iphc_encoder_round_trips_through_smoltcps_decoder() {
        let prefix: Ipv6Addr = "fd00:f022::".parse().unwrap();
        let short = MacAddr::Short(0x0042);
        let cases: Vec<(Ipv6Addr, MacAddr, Ipv6Addr, MacAddr, u8)> = vec![
            // Short-address IID under the context: 2 bytes inline... or elided when it matches.
            ("fd00:f022::ff:fe00:42".parse().unwrap(), short, "fd00:f022::ff:fe00:7".parse().unwrap(), BR, 64),
            // An IID that follows from nothing: 8 bytes.
            ("fd00:f022::1234:5678:9abc:def0".parse().unwrap(), NODE, "fe80::1".parse().unwrap(), BR, 255),
            // Outside the context: inline; multicast forms of every length; odd hop limit.
            ("2001:db8::1".parse().unwrap(), NODE, "ff02::1a".parse().unwrap(), MacAddr::BROADCAST, 1),
            (ipv6::link_local(NODE), NODE, "ff05::1:3".parse().unwrap(), MacAddr::BROADCAST, 7),
            (ipv6::link_local(NODE), NODE, "ff08::12:3456:789a".parse().unwrap(), MacAddr::BROADCAST, 64),
            (ipv6::link_local(NODE), NODE, "ff0e:1::2".parse().unwrap(), MacAddr::BROADCAST, 64),
        ];
        for (src, ll_src, dst, ll_dst, hops) in cases {
            let full = ipv6::build_udp((src, 61616), (dst, 5683), hops, b"payload");
            let c = compress(&full, ll_src, ll_dst, Some(prefix)).unwrap();
            let back = decompress_datagram(&c.bytes, ll_src, ll_dst, Some(prefix)).unwrap();
            assert_eq!(back, full, "{src} -> {dst}");
        }
        // Traffic class and flow label inline (TF = 00), ECN/DSCP in RFC 6282's order.
        let mut full = ipv6::build_udp((ipv6::link_local(NODE), 1), (ipv6::link_local(BR), 2), 64, b"x");
        let (mut h, payload) = Ipv6Header::parse(&full).map(|(h, p)| (h, p.to_vec())).unwrap();
        h.traffic_class = 0xb9; // DSCP 46 (EF), ECN 01
        h.flow_label = 0x1_2345;
        let mut hb = [0u8; HEADER_LEN];
        h.emit(&mut hb);
        full = [hb.as_slice(), &payload].concat();
        let c = compress(&full, NODE, BR, None).unwrap();
        assert_eq!(&c.bytes[2..6], &[0x6e, 0x01, 0x23, 0x45]);
        assert_eq!(decompress_datagram(&c.bytes, NODE, BR, None).unwrap(), full);
    }

    #[test]
    fn elided_udp_checksum_is_recomputed() {
        #[rustfmt::skip]
        let v = [
            0x7e, 0x33, // IPHC, NH=1, link-local from MAC
            0xf7,       // UDP NHC: C=1 (checksum elided), ports 0xf0bX/0xf0bX
            0x12,       // src 0xf0b1, dst 0xf0b2
            b'h', b'i',
        ];
        let d = decompress_datagram(&v, NODE, BR, None).unwrap();
        let (h, p) = Ipv6Header::parse(&d).unwrap();
        assert_eq!(&p[..4], &[0xf0, 0xb1, 0xf0, 0xb2]);
        assert_eq!(ipv6::pseudo_checksum(&h.src, &h.dst, PROTO_UDP, p), 0);
    }

    #[test]
    fn frag_header_vectors() {
        let mut b = Vec::new();
        FragHeader { size: 1000, tag: 0x1234, offset: 0, first: true }.emit(&mut b);
        assert_eq!(b, [0xc3, 0xe8, 0x12, 0x34]); // FRAG1, size 0x3e8, tag
        let mut b = Vec::new();
        FragHeader { size: 1000, tag: 0x1234, offset: 96, first: false }.emit(&mut b);
        assert_eq!(b, [0xe3, 0xe8, 0x12, 0x34, 12]); // FRAGN, offset 96/8
        assert_eq!(FragHeader::parse(&b).unwrap().offset, 96);
        assert_eq!(FragHeader::parse(&b[..4]), Err(SixlowpanError::Fragment));
    }

    #[test]
    fn fragments_line_up_on_8_bytes() {
        let src = ipv6::link_local(NODE);
        let dst = ipv6::link_local(BR);
        let full = ipv6::build_udp((src, 5683), (dst, 5683), 64, &[7u8; 1000]);
        let c = compress(&full, BR, NODE, None).unwrap();
        let frags = fragment(&c, 9, 102).unwrap();
        assert!(frags.len() > 9);
        let mut covered = 0usize;
        for f in &frags {
            assert!(f.len() <= 102);
            let h = FragHeader::parse(f).unwrap();
            assert_eq!(usize::from(h.size), full.len());
            if h.first {
                covered = c.uncompressed_header_len + f.len() - 4 - c.header_len;
            } else {
                assert_eq!(h.offset, covered);
                covered += f.len() - 5;
            }
            assert!(covered.is_multiple_of(8) || covered == full.len());
        }
        assert_eq!(covered, full.len());
    }
}
