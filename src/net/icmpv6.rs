//! ICMPv6 (RFC 4443) messages the interface handles: echo request/reply, and neighbour
//! solicitation/advertisement (RFC 4861 §4.3, §4.4) with the options 6LoWPAN nodes use:
//! source/target link-layer address (RFC 4944 §8) and the Address Registration Option
//! (RFC 6775 §4.1, RFC 8505 §4.1).
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
pub const OPT_ARO: u8 = 33;

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
    Unknown {
        kind: u8,
        len: u8,
    },
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
            // Unknown options are never emitted: their bodies are not kept.
            NdOption::Unknown { .. } => {}
        }
    }
}

/// The ICMPv6 messages the interface parses; others are kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    EchoRequest { ident: u16, seq: u16, data: &'a [u8] },
    EchoReply { ident: u16, seq: u16, data: &'a [u8] },
    NeighborSolicit { target: Ipv6Addr, options: Vec<NdOption> },
    NeighborAdvert { router: bool, solicited: bool, override_: bool, target: Ipv6Addr, options: Vec<NdOption> },
    Other { kind: u8, code: u8, body: &'a [u8] },
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
