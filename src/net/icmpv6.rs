//! ICMPv6 (RFC 4443) messages the interface handles: echo request/reply, router solicitation and
//! advertisement (RFC 4861 §4.1, §4.2), and neighbour solicitation/advertisement (§4.3, §4.4),
//! with the options 6LoWPAN nodes use: source/target link-layer address (RFC 4944 §8), prefix
//! information (RFC 4861 §4.6.2), and from RFC 6775 the Address Registration Option (§4.1,
//! RFC 8505 §4.1), the 6LoWPAN Context Option (§4.2) and the Authoritative Border Router
//! Option (§4.3).
//!
//! ```text
//!  common header              NS / NA body                       ARO (type 33, length 2)
//! +------+------+--------+   +-------------------------------+  +------+-----+--------+-----------+
//! | type | code | cksum  |   | R|S|O flags (NA) / reserved   |  | 33   | 2   | status | opaque,   |
//! +------+------+--------+   | target address (16)           |  +------+-----+--------+ flags,TID |
//!                            | options (type, len*8 bytes)...|  | lifetime (min)| EUI-64 (8)      |
//!                            +-------------------------------+  +---------------+-----------------+
//! ```
//!
//! Panic rules: `Icmpv6Repr::parse` takes untrusted bytes; `emit` returns the message with a
//! zero checksum that `ipv6::build_icmpv6` fills in.

use std::net::Ipv6Addr;

use super::ipv6::{self, PROTO_ICMPV6};
use super::mac::MacAddr;

pub const TYPE_ECHO_REQUEST: u8 = 128;
pub const TYPE_ECHO_REPLY: u8 = 129;
pub const TYPE_ROUTER_SOLICIT: u8 = 133;
pub const TYPE_ROUTER_ADVERT: u8 = 134;
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
pub const TYPE_RPL: u8 = 155;

pub const OPT_SOURCE_LLA: u8 = 1;
pub const OPT_TARGET_LLA: u8 = 2;
pub const OPT_PREFIX_INFO: u8 = 3;
pub const OPT_ARO: u8 = 33;
pub const OPT_6CO: u8 = 34;
pub const OPT_ABRO: u8 = 35;

/// ARO status: success (RFC 6775 §4.1).
pub const ARO_SUCCESS: u8 = 0;

/// Bound on options parsed from one message.
const MAX_OPTIONS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Icmpv6Error {
    #[error("ICMPv6 message truncated")]
    Truncated,
    #[error("ICMPv6 checksum mismatch")]
    Checksum,
    #[error("malformed ND option")]
    Option,
}

/// A neighbour discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdOption {
    SourceLla(MacAddr),
    TargetLla(MacAddr),
    /// Address registration: status, the 3 bytes after it (RFC 8505 opaque, flags and TID,
    /// echoed back), lifetime in minutes, the registering node's EUI-64.
    Aro {
        status: u8,
        rest: [u8; 3],
        lifetime_min: u16,
        eui64: [u8; 8],
    },
    /// Prefix information: on-link (L) and autonomous address-configuration (A) flags,
    /// lifetimes in seconds.
    PrefixInfo {
        prefix_len: u8,
        on_link: bool,
        autonomous: bool,
        valid_s: u32,
        preferred_s: u32,
        prefix: Ipv6Addr,
    },
    /// A 6LoWPAN header-compression context; at most 64 prefix bits are carried (we never use
    /// longer contexts), lifetime in minutes.
    SixCo {
        context_len: u8,
        cid: u8,
        compress: bool,
        valid_min: u16,
        prefix: Ipv6Addr,
    },
    /// The border router the prefix and contexts come from, and their version.
    Abro {
        version: u32,
        lifetime_min: u16,
        border_router: Ipv6Addr,
    },
    Unknown {
        kind: u8,
        len: u8,
    },
}

/// Reads a 16-byte address at `at` in `b`.
fn addr_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let raw: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(raw))
}

impl NdOption {
    fn parse(kind: u8, body: &[u8]) -> Result<NdOption, Icmpv6Error> {
        // `body` excludes the type and length bytes.
        let lla = || match body.len() {
            6 => body.get(..2).map(|b| MacAddr::Short(u16::from_be_bytes([b[0], b[1]]))),
            14 => body.get(..8).map(|b| {
                let mut e = [0u8; 8];
                e.copy_from_slice(b);
                MacAddr::Ext(e)
            }),
            _ => None,
        };
        Ok(match kind {
            OPT_SOURCE_LLA => NdOption::SourceLla(lla().ok_or(Icmpv6Error::Option)?),
            OPT_TARGET_LLA => NdOption::TargetLla(lla().ok_or(Icmpv6Error::Option)?),
            OPT_ARO => {
                let b = body.get(..14).filter(|_| body.len() == 14).ok_or(Icmpv6Error::Option)?;
                let mut eui64 = [0u8; 8];
                eui64.copy_from_slice(&b[6..14]);
                NdOption::Aro {
                    status: b[0],
                    rest: [b[1], b[2], b[3]],
                    lifetime_min: u16::from_be_bytes([b[4], b[5]]),
                    eui64,
                }
            }
            OPT_PREFIX_INFO => {
                let b = body.get(..30).filter(|_| body.len() == 30).ok_or(Icmpv6Error::Option)?;
                let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                NdOption::PrefixInfo {
                    prefix_len: b[0],
                    on_link: b[1] & 0x80 != 0,
                    autonomous: b[1] & 0x40 != 0,
                    valid_s: u32_at(2),
                    preferred_s: u32_at(6),
                    prefix: addr_at(b, 14).ok_or(Icmpv6Error::Option)?,
                }
            }
            OPT_6CO => {
                // Length 2 (64 prefix bits) or 3 (128); the prefix is zero-padded.
                if body.len() != 14 && body.len() != 22 {
                    return Err(Icmpv6Error::Option);
                }
                let mut raw = [0u8; 16];
                let n = body.len() - 6;
                raw[..n].copy_from_slice(&body[6..]);
                NdOption::SixCo {
                    context_len: body[0],
                    cid: body[1] & 0x0f,
                    compress: body[1] & 0x10 != 0,
                    valid_min: u16::from_be_bytes([body[4], body[5]]),
                    prefix: Ipv6Addr::from(raw),
                }
            }
            OPT_ABRO => {
                let b = body.get(..22).filter(|_| body.len() == 22).ok_or(Icmpv6Error::Option)?;
                let low = u32::from(u16::from_be_bytes([b[0], b[1]]));
                let high = u32::from(u16::from_be_bytes([b[2], b[3]]));
                NdOption::Abro {
                    version: (high << 16) | low,
                    lifetime_min: u16::from_be_bytes([b[4], b[5]]),
                    border_router: addr_at(b, 6).ok_or(Icmpv6Error::Option)?,
                }
            }
            k => NdOption::Unknown { kind: k, len: ((body.len() + 2) / 8) as u8 },
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        let lla = |out: &mut Vec<u8>, kind: u8, a: &MacAddr| match a {
            MacAddr::Short(s) => {
                out.extend_from_slice(&[kind, 1]);
                out.extend_from_slice(&s.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
            }
            MacAddr::Ext(e) => {
                out.extend_from_slice(&[kind, 2]);
                out.extend_from_slice(e);
                out.extend_from_slice(&[0; 6]);
            }
        };
        match self {
            NdOption::SourceLla(a) => lla(out, OPT_SOURCE_LLA, a),
            NdOption::TargetLla(a) => lla(out, OPT_TARGET_LLA, a),
            NdOption::Aro { status, rest, lifetime_min, eui64 } => {
                out.extend_from_slice(&[OPT_ARO, 2, *status]);
                out.extend_from_slice(rest);
                out.extend_from_slice(&lifetime_min.to_be_bytes());
                out.extend_from_slice(eui64);
            }
            NdOption::PrefixInfo { prefix_len, on_link, autonomous, valid_s, preferred_s, prefix } => {
                let flags = (u8::from(*on_link) << 7) | (u8::from(*autonomous) << 6);
                out.extend_from_slice(&[OPT_PREFIX_INFO, 4, *prefix_len, flags]);
                out.extend_from_slice(&valid_s.to_be_bytes());
                out.extend_from_slice(&preferred_s.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&prefix.octets());
            }
            NdOption::SixCo { context_len, cid, compress, valid_min, prefix } => {
                out.extend_from_slice(&[OPT_6CO, 2, *context_len, (u8::from(*compress) << 4) | (cid & 0x0f), 0, 0]);
                out.extend_from_slice(&valid_min.to_be_bytes());
                out.extend_from_slice(&prefix.octets()[..8]);
            }
            NdOption::Abro { version, lifetime_min, border_router } => {
                out.extend_from_slice(&[OPT_ABRO, 3]);
                out.extend_from_slice(&((version & 0xffff) as u16).to_be_bytes());
                out.extend_from_slice(&((version >> 16) as u16).to_be_bytes());
                out.extend_from_slice(&lifetime_min.to_be_bytes());
                out.extend_from_slice(&border_router.octets());
            }
            // Unknown options are never emitted: their bodies are not kept.
            NdOption::Unknown { .. } => {}
        }
    }
}

/// The ICMPv6 messages the interface parses; others are kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    RouterSolicit {
        options: Vec<NdOption>,
    },
    RouterAdvert {
        cur_hop_limit: u8,
        managed: bool,
        other: bool,
        router_lifetime_s: u16,
        reachable_ms: u32,
        retrans_ms: u32,
        options: Vec<NdOption>,
    },
    NeighborSolicit {
        target: Ipv6Addr,
        options: Vec<NdOption>,
    },
    NeighborAdvert {
        router: bool,
        solicited: bool,
        override_: bool,
        target: Ipv6Addr,
        options: Vec<NdOption>,
    },
    Other {
        kind: u8,
        code: u8,
        body: &'a [u8],
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses and verifies the checksum against the IPv6 pseudo-header.
    pub fn parse(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &'a [u8]) -> Result<Icmpv6Repr<'a>, Icmpv6Error> {
        if msg.len() < 4 {
            return Err(Icmpv6Error::Truncated);
        }
        if ipv6::pseudo_checksum(src, dst, PROTO_ICMPV6, msg) != 0 {
            return Err(Icmpv6Error::Checksum);
        }
        let (kind, code, body) = (msg[0], msg[1], &msg[4..]);
        let u16_at = |i: usize| body.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        Ok(match kind {
            TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY => {
                let ident = u16_at(0).ok_or(Icmpv6Error::Truncated)?;
                let seq = u16_at(2).ok_or(Icmpv6Error::Truncated)?;
                let data = &body[4..];
                if kind == TYPE_ECHO_REQUEST {
                    Icmpv6Repr::EchoRequest { ident, seq, data }
                } else {
                    Icmpv6Repr::EchoReply { ident, seq, data }
                }
            }
            TYPE_ROUTER_SOLICIT if code == 0 => {
                let options = parse_options(body.get(4..).ok_or(Icmpv6Error::Truncated)?)?;
                Icmpv6Repr::RouterSolicit { options }
            }
            TYPE_ROUTER_ADVERT if code == 0 => {
                let f = body.get(..12).ok_or(Icmpv6Error::Truncated)?;
                Icmpv6Repr::RouterAdvert {
                    cur_hop_limit: f[0],
                    managed: f[1] & 0x80 != 0,
                    other: f[1] & 0x40 != 0,
                    router_lifetime_s: u16::from_be_bytes([f[2], f[3]]),
                    reachable_ms: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                    retrans_ms: u32::from_be_bytes([f[8], f[9], f[10], f[11]]),
                    options: parse_options(&body[12..])?,
                }
            }
            TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT if code == 0 => {
                let fixed = body.get(..20).ok_or(Icmpv6Error::Truncated)?;
                let mut t = [0u8; 16];
                t.copy_from_slice(&fixed[4..20]);
                let target = Ipv6Addr::from(t);
                let options = parse_options(&body[20..])?;
                if kind == TYPE_NEIGHBOR_SOLICIT {
                    Icmpv6Repr::NeighborSolicit { target, options }
                } else {
                    Icmpv6Repr::NeighborAdvert {
                        router: fixed[0] & 0x80 != 0,
                        solicited: fixed[0] & 0x40 != 0,
                        override_: fixed[0] & 0x20 != 0,
                        target,
                        options,
                    }
                }
            }
            _ => Icmpv6Repr::Other { kind, code, body },
        })
    }

    /// Emits the message with a zero checksum.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Icmpv6Repr::EchoRequest { ident, seq, data } | Icmpv6Repr::EchoReply { ident, seq, data } => {
                let t =
                    if matches!(self, Icmpv6Repr::EchoRequest { .. }) { TYPE_ECHO_REQUEST } else { TYPE_ECHO_REPLY };
                out.extend_from_slice(&[t, 0, 0, 0]);
                out.extend_from_slice(&ident.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(data);
            }
            Icmpv6Repr::RouterSolicit { options } => {
                out.extend_from_slice(&[TYPE_ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0]);
                options.iter().for_each(|o| o.emit(&mut out));
            }
            Icmpv6Repr::RouterAdvert {
                cur_hop_limit,
                managed,
                other,
                router_lifetime_s,
                reachable_ms,
                retrans_ms,
                options,
            } => {
                let flags = (u8::from(*managed) << 7) | (u8::from(*other) << 6);
                out.extend_from_slice(&[TYPE_ROUTER_ADVERT, 0, 0, 0, *cur_hop_limit, flags]);
                out.extend_from_slice(&router_lifetime_s.to_be_bytes());
                out.extend_from_slice(&reachable_ms.to_be_bytes());
                out.extend_from_slice(&retrans_ms.to_be_bytes());
                options.iter().for_each(|o| o.emit(&mut out));
            }
            Icmpv6Repr::NeighborSolicit { target, options } => {
                out.extend_from_slice(&[TYPE_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&target.octets());
                options.iter().for_each(|o| o.emit(&mut out));
            }
            Icmpv6Repr::NeighborAdvert { router, solicited, override_, target, options } => {
                let flags = (u8::from(*router) << 7) | (u8::from(*solicited) << 6) | (u8::from(*override_) << 5);
                out.extend_from_slice(&[TYPE_NEIGHBOR_ADVERT, 0, 0, 0, flags, 0, 0, 0]);
                out.extend_from_slice(&target.octets());
                options.iter().for_each(|o| o.emit(&mut out));
            }
            Icmpv6Repr::Other { kind, code, body } => {
                out.extend_from_slice(&[*kind, *code, 0, 0]);
                out.extend_from_slice(body);
            }
        }
        out
    }
}

fn parse_options(mut b: &[u8]) -> Result<Vec<NdOption>, Icmpv6Error> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if out.len() >= MAX_OPTIONS {
            return Err(Icmpv6Error::Option);
        }
        let kind = b[0];
        let len = usize::from(*b.get(1).ok_or(Icmpv6Error::Option)?) * 8;
        // Length 0 is invalid (RFC 4861 §4.6) and would loop forever.
        if len == 0 {
            return Err(Icmpv6Error::Option);
        }
        let opt = b.get(..len).ok_or(Icmpv6Error::Option)?;
        out.push(NdOption::parse(kind, &opt[2..])?);
        b = &b[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_with_aro_vector() {
        let src: Ipv6Addr = "2001:db8::211:22ff:fe33:4455".parse().unwrap();
        let dst: Ipv6Addr = "fe80::1".parse().unwrap();
        #[rustfmt::skip]
        let mut msg = vec![
            135, 0, 0x00, 0x00, // NS, code 0, checksum (filled below)
            0, 0, 0, 0,         // reserved
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55, // target
            1, 2, 0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55, 0, 0, 0, 0, 0, 0, // SLLAO, EUI-64
            33, 2, 0, 0, 0, 0, 0x00, 0x0f, // ARO: status 0, lifetime 15 min
            0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55, // ARO EUI-64
        ];
        let c = ipv6::pseudo_checksum(&src, &dst, PROTO_ICMPV6, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let r = Icmpv6Repr::parse(&src, &dst, &msg).unwrap();
        let eui = [0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55];
        assert_eq!(
            r,
            Icmpv6Repr::NeighborSolicit {
                target: src,
                options: vec![
                    NdOption::SourceLla(MacAddr::Ext(eui)),
                    NdOption::Aro { status: 0, rest: [0; 3], lifetime_min: 15, eui64: eui },
                ],
            }
        );
        let mut again = r.emit();
        again[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(again, msg);
        msg[10] ^= 1;
        assert_eq!(Icmpv6Repr::parse(&src, &dst, &msg), Err(Icmpv6Error::Checksum));
    }

    #[test]
    fn router_advert_with_6lowpan_options_round_trips() {
        let br: Ipv6Addr = "fd00:f022::1".parse().unwrap();
        let prefix: Ipv6Addr = "fd00:f022::".parse().unwrap();
        let ra = Icmpv6Repr::RouterAdvert {
            cur_hop_limit: 64,
            managed: false,
            other: false,
            router_lifetime_s: 1800,
            reachable_ms: 0,
            retrans_ms: 0,
            options: vec![
                NdOption::SourceLla(MacAddr::Ext([2, 0, 0, 0, 0, 0, 0, 1])),
                NdOption::PrefixInfo {
                    prefix_len: 64,
                    on_link: false,
                    autonomous: true,
                    valid_s: 86_400,
                    preferred_s: 14_400,
                    prefix,
                },
                NdOption::SixCo { context_len: 64, cid: 0, compress: true, valid_min: 1440, prefix },
                NdOption::Abro { version: 0x0001_0002, lifetime_min: 10_000, border_router: br },
            ],
        };
        let msg = ra.emit();
        // RFC 4861/6775 sizes: 16 fixed + SLLAO 16 + PIO 32 + 6CO 16 + ABRO 24.
        assert_eq!(msg.len(), 16 + 16 + 32 + 16 + 24);
        assert_eq!(&msg[32..36], &[3, 4, 64, 0x40]);
        assert_eq!(&msg[64..68], &[34, 2, 64, 0x10]);
        assert_eq!(&msg[80..86], &[35, 3, 0x00, 0x02, 0x00, 0x01]);
        let d = ipv6::build_icmpv6(br, ipv6::ALL_NODES, 255, msg);
        assert_eq!(Icmpv6Repr::parse(&br, &ipv6::ALL_NODES, &d[40..]).unwrap(), ra);

        let rs = Icmpv6Repr::RouterSolicit { options: vec![NdOption::SourceLla(MacAddr::Short(7))] };
        let d = ipv6::build_icmpv6(Ipv6Addr::UNSPECIFIED, ipv6::ALL_ROUTERS, 255, rs.emit());
        assert_eq!(Icmpv6Repr::parse(&Ipv6Addr::UNSPECIFIED, &ipv6::ALL_ROUTERS, &d[40..]).unwrap(), rs);
    }

    #[test]
    fn zero_length_option_is_rejected() {
        let a = Ipv6Addr::LOCALHOST;
        let mut msg = vec![135, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&[0; 16]);
        msg.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        let c = ipv6::pseudo_checksum(&a, &a, PROTO_ICMPV6, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(Icmpv6Repr::parse(&a, &a, &msg), Err(Icmpv6Error::Option));
    }

    #[test]
    fn echo_round_trip() {
        let r = Icmpv6Repr::EchoRequest { ident: 0x1234, seq: 7, data: b"ping" };
        let msg = r.emit();
        assert_eq!(&msg[..8], &[128, 0, 0, 0, 0x12, 0x34, 0, 7]);
        let d = ipv6::build_icmpv6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, 64, msg);
        let parsed = Icmpv6Repr::parse(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST, &d[40..]).unwrap();
        assert_eq!(parsed, r);
    }
}
