//! The RPL source routing header (RFC 6554 §3), IPv6 routing type 3, used by the non-storing
//! root to send downwards: the IPv6 destination is the first hop, the header lists the rest.
//!
//! ```text
//! +---------------+---------------+---------------+---------------+
//! |  Next Header  |  Hdr Ext Len  | Routing Type=3| Segments Left |
//! +-------+-------+-------+-------+---------------+---------------+
//! | CmprI | CmprE |  Pad  |               Reserved                |
//! +-------+-------+-------+---------------------------------------+
//! |  Addresses[1..n-1], 16-CmprI bytes each; Addresses[n], 16-CmprE |
//! |  bytes; Pad bytes                                               |
//! +-----------------------------------------------------------------+
//! ```
//! Elided prefix bytes are those of the IPv6 destination address.

use std::net::Ipv6Addr;

pub const ROUTING_TYPE_RPL: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrhError {
    #[error("source routing header truncated")]
    Truncated,
    #[error("not an RPL source routing header (routing type {0})")]
    Type(u8),
    #[error("source routing header length inconsistent")]
    Length,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrhRepr {
    pub next_header: u8,
    pub segments_left: u8,
    pub addresses: Vec<Ipv6Addr>,
}

fn common_prefix(a: &Ipv6Addr, b: &Ipv6Addr) -> usize {
    a.octets().iter().zip(b.octets().iter()).take_while(|(x, y)| x == y).count().min(15)
}

impl SrhRepr {
    /// Emits the header, compressing against the IPv6 destination `da` it will travel with.
    pub fn emit(&self, da: &Ipv6Addr) -> Vec<u8> {
        let n = self.addresses.len();
        let (init, last) = match self.addresses.split_last() {
            Some((l, i)) => (i, Some(l)),
            None => (&self.addresses[..], None),
        };
        let cmpr_i = init.iter().map(|a| common_prefix(a, da)).min().unwrap_or(0);
        let cmpr_e = last.map_or(0, |a| common_prefix(a, da));
        let body = init.len() * (16 - cmpr_i) + if n > 0 { 16 - cmpr_e } else { 0 };
        let pad = (8 - (body % 8)) % 8;
        let total = 8 + body + pad;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&[self.next_header, (total / 8 - 1) as u8, ROUTING_TYPE_RPL, self.segments_left]);
        out.extend_from_slice(&[((cmpr_i as u8) << 4) | cmpr_e as u8, (pad as u8) << 4, 0, 0]);
        for a in init {
            out.extend_from_slice(&a.octets()[cmpr_i..]);
        }
        if let Some(a) = last {
            out.extend_from_slice(&a.octets()[cmpr_e..]);
        }
        out.resize(total, 0);
        out
    }

    /// Parses a header that arrived with IPv6 destination `da`; returns it and its length.
    pub fn parse(b: &[u8], da: &Ipv6Addr) -> Result<(SrhRepr, usize), SrhError> {
        let h = b.get(..8).ok_or(SrhError::Truncated)?;
        if h[2] != ROUTING_TYPE_RPL {
            return Err(SrhError::Type(h[2]));
        }
        let total = (usize::from(h[1]) + 1) * 8;
        let body = b.get(8..total).ok_or(SrhError::Truncated)?;
        let (cmpr_i, cmpr_e, pad) = (usize::from(h[4] >> 4), usize::from(h[4] & 0x0f), usize::from(h[5] >> 4));
        let len = body.len().checked_sub(pad).ok_or(SrhError::Length)?;
        let (si, se) = (16 - cmpr_i, 16 - cmpr_e);
        if len < se || (len - se) % si != 0 {
            return Err(SrhError::Length);
        }
        let n = (len - se) / si + 1;
        let mut addresses = Vec::with_capacity(n);
        let expand = |bytes: &[u8], k: usize| {
            let mut o = da.octets();
            o[k..].copy_from_slice(bytes);
            Ipv6Addr::from(o)
        };
        for i in 0..n - 1 {
            addresses.push(expand(&body[i * si..(i + 1) * si], cmpr_i));
        }
        addresses.push(expand(&body[(n - 1) * si..(n - 1) * si + se], cmpr_e));
        if usize::from(h[3]) > n {
            return Err(SrhError::Length);
        }
        Ok((SrhRepr { next_header: h[0], segments_left: h[3], addresses }, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn two_hops_compressed_vector() {
        // Root → 2001:db8::2 (IPv6 DA) → ::3 → ::4 (final).
        let r = SrhRepr { next_header: 17, segments_left: 2, addresses: vec![a("2001:db8::3"), a("2001:db8::4")] };
        let da = a("2001:db8::2");
        let v = r.emit(&da);
        #[rustfmt::skip]
        let want = [
            17, 1, 3, 2,       // next header UDP, Hdr Ext Len 1 (16 bytes), type 3, 2 segments left
            0xff, 0x60, 0, 0,  // CmprI 15, CmprE 15, Pad 6, reserved
            0x03,              // ::3 with 15 prefix bytes elided
            0x04,              // ::4 likewise
            0, 0, 0, 0, 0, 0,  // padding
        ];
        assert_eq!(v, want);
        assert_eq!(SrhRepr::parse(&v, &da).unwrap(), (r, 16));
    }

    #[test]
    fn uncompressible_and_truncated() {
        let r = SrhRepr { next_header: 58, segments_left: 1, addresses: vec![a("fd00::9")] };
        let da = a("2001:db8::2");
        let v = r.emit(&da);
        assert_eq!(v.len(), 24);
        assert_eq!(SrhRepr::parse(&v, &da).unwrap().0, r);
        assert_eq!(SrhRepr::parse(&v[..20], &da), Err(SrhError::Truncated));
        let mut bad = v.clone();
        bad[2] = 0;
        assert_eq!(SrhRepr::parse(&bad, &da), Err(SrhError::Type(0)));
    }
}
