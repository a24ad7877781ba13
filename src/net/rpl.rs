//! RPL control messages (RFC 6550 §6): ICMPv6 type 155 with code DIS, DIO, DAO, DAO-ACK, and
//! the options a non-storing root needs (§6.7): DODAG configuration, prefix information, RPL
//! target, transit information. Other options are kept as `Unknown` and skipped.
//!
//! ```text
//! DIO base (§6.3.1)                                 DAO base (§6.4.1)
//! +-----------+---------+-------------------+       +-----------+-----+----------+--------+
//! | instance  | version |       rank        |       | instance  |K|D| | reserved | DAOSeq |
//! +-+-+-------+---+-----+-------------------+       +-----------+-----+----------+--------+
//! |G|0| MOP | Prf |  DTSN | flags | reserved|       | DODAGID (16, if D)                  |
//! +-----------------------------------------+       | options...                          |
//! | DODAGID (16)                            |       +-------------------------------------+
//! | options (type, length, value)...        |
//! +-----------------------------------------+
//! ```
//!
//! Panic rules: `RplRepr::parse` takes untrusted bytes (the ICMPv6 body after the 4-byte
//! header); `emit` returns the whole ICMPv6 message with a zero checksum.

use std::net::Ipv6Addr;

use super::icmpv6::TYPE_RPL;

pub const CODE_DIS: u8 = 0x00;
pub const CODE_DIO: u8 = 0x01;
pub const CODE_DAO: u8 = 0x02;
pub const CODE_DAO_ACK: u8 = 0x03;

pub const OPT_PAD1: u8 = 0x00;
pub const OPT_PADN: u8 = 0x01;
pub const OPT_DODAG_CONFIG: u8 = 0x04;
pub const OPT_TARGET: u8 = 0x05;
pub const OPT_TRANSIT: u8 = 0x06;
pub const OPT_PREFIX_INFO: u8 = 0x08;

/// Mode of operation 1: non-storing (§6.3.1).
pub const MOP_NON_STORING: u8 = 1;
/// Bound on options parsed from one message.
const MAX_OPTIONS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RplError {
    #[error("RPL message truncated")]
    Truncated,
    #[error("malformed RPL option")]
    Option,
}

/// DODAG configuration option (§6.7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DodagConfig {
    /// Authentication-enabled flag and path-control size, as one byte (A bit 3, PCS bits 0-2).
    pub flags: u8,
    pub dio_interval_doublings: u8,
    pub dio_interval_min: u8,
    pub dio_redundancy: u8,
    pub max_rank_increase: u16,
    pub min_hop_rank_increase: u16,
    /// Objective code point; 0 is OF0 (RFC 6552).
    pub ocp: u16,
    pub default_lifetime: u8,
    /// Seconds per lifetime unit.
    pub lifetime_unit: u16,
}

/// Prefix information option (§6.7.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    /// L (on-link), A (autonomous), R (router address) in bits 7, 6, 5.
    pub flags: u8,
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RplOption {
    DodagConfig(DodagConfig),
    PrefixInfo(PrefixInfo),
    /// Target prefix (§6.7.7): the bits beyond `prefix_len` are zero.
    Target {
        prefix_len: u8,
        prefix: Ipv6Addr,
    },
    /// Transit information (§6.7.8); `parent` is present in non-storing mode.
    Transit {
        external: bool,
        path_control: u8,
        path_sequence: u8,
        path_lifetime: u8,
        parent: Option<Ipv6Addr>,
    },
    Unknown {
        kind: u8,
        len: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RplRepr {
    Dis,
    Dio {
        instance: u8,
        version: u8,
        rank: u16,
        grounded: bool,
        mop: u8,
        preference: u8,
        dtsn: u8,
        dodag_id: Ipv6Addr,
        options: Vec<RplOption>,
    },
    Dao {
        instance: u8,
        ack_requested: bool,
        sequence: u8,
        dodag_id: Option<Ipv6Addr>,
        options: Vec<RplOption>,
    },
    DaoAck {
        instance: u8,
        sequence: u8,
        status: u8,
        dodag_id: Option<Ipv6Addr>,
    },
    /// Secure variants and unknown codes.
    Unknown {
        code: u8,
    },
}

fn addr_at(b: &[u8], at: usize) -> Result<Ipv6Addr, RplError> {
    let s = b.get(at..at + 16).ok_or(RplError::Truncated)?;
    let mut o = [0u8; 16];
    o.copy_from_slice(s);
    Ok(Ipv6Addr::from(o))
}

fn parse_options(mut b: &[u8]) -> Result<Vec<RplOption>, RplError> {
    let mut out = Vec::new();
    while let Some(&kind) = b.first() {
        if out.len() >= MAX_OPTIONS {
            return Err(RplError::Option);
        }
        if kind == OPT_PAD1 {
            b = &b[1..];
            continue;
        }
        let len = *b.get(1).ok_or(RplError::Option)?;
        let v = b.get(2..2 + usize::from(len)).ok_or(RplError::Option)?;
        let u16_at = |i: usize| u16::from_be_bytes([v[i], v[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        let opt = match kind {
            OPT_PADN => None,
            OPT_DODAG_CONFIG if v.len() >= 14 => Some(RplOption::DodagConfig(DodagConfig {
                flags: v[0],
                dio_interval_doublings: v[1],
                dio_interval_min: v[2],
                dio_redundancy: v[3],
                max_rank_increase: u16_at(4),
                min_hop_rank_increase: u16_at(6),
                ocp: u16_at(8),
                default_lifetime: v[11],
                lifetime_unit: u16_at(12),
            })),
            OPT_PREFIX_INFO if v.len() >= 30 => Some(RplOption::PrefixInfo(PrefixInfo {
                prefix_len: v[0],
                flags: v[1],
                valid_lifetime: u32_at(2),
                preferred_lifetime: u32_at(6),
                prefix: addr_at(v, 14)?,
            })),
            OPT_TARGET if v.len() >= 2 => {
                let prefix_len = v[1];
                if prefix_len > 128 {
                    return Err(RplError::Option);
                }
                let n = usize::from(prefix_len).div_ceil(8);
                let bytes = v.get(2..2 + n).ok_or(RplError::Option)?;
                let mut o = [0u8; 16];
                o[..n].copy_from_slice(bytes);
                Some(RplOption::Target { prefix_len, prefix: Ipv6Addr::from(o) })
            }
            OPT_TRANSIT if v.len() >= 4 => Some(RplOption::Transit {
                external: v[0] & 0x80 != 0,
                path_control: v[1],
                path_sequence: v[2],
                path_lifetime: v[3],
                parent: if v.len() >= 20 { Some(addr_at(v, 4)?) } else { None },
            }),
            OPT_DODAG_CONFIG | OPT_PREFIX_INFO | OPT_TARGET | OPT_TRANSIT => return Err(RplError::Option),
            k => Some(RplOption::Unknown { kind: k, len }),
        };
        out.extend(opt);
        b = &b[2 + usize::from(len)..];
    }
    Ok(out)
}

fn emit_option(o: &RplOption, out: &mut Vec<u8>) {
    match o {
        RplOption::DodagConfig(c) => {
            out.extend_from_slice(&[
                OPT_DODAG_CONFIG,
                14,
                c.flags,
                c.dio_interval_doublings,
                c.dio_interval_min,
                c.dio_redundancy,
            ]);
            out.extend_from_slice(&c.max_rank_increase.to_be_bytes());
            out.extend_from_slice(&c.min_hop_rank_increase.to_be_bytes());
            out.extend_from_slice(&c.ocp.to_be_bytes());
            out.extend_from_slice(&[0, c.default_lifetime]);
            out.extend_from_slice(&c.lifetime_unit.to_be_bytes());
        }
        RplOption::PrefixInfo(p) => {
            out.extend_from_slice(&[OPT_PREFIX_INFO, 30, p.prefix_len, p.flags]);
            out.extend_from_slice(&p.valid_lifetime.to_be_bytes());
            out.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&p.prefix.octets());
        }
        RplOption::Target { prefix_len, prefix } => {
            let n = usize::from((*prefix_len).min(128)).div_ceil(8);
            out.extend_from_slice(&[OPT_TARGET, 2 + n as u8, 0, *prefix_len]);
            out.extend_from_slice(&prefix.octets()[..n]);
        }
        RplOption::Transit { external, path_control, path_sequence, path_lifetime, parent } => {
            let len = if parent.is_some() { 20 } else { 4 };
            out.extend_from_slice(&[
                OPT_TRANSIT,
                len,
                u8::from(*external) << 7,
                *path_control,
                *path_sequence,
                *path_lifetime,
            ]);
            if let Some(p) = parent {
                out.extend_from_slice(&p.octets());
            }
        }
        // Unknown options are not kept, so not re-emitted.
        RplOption::Unknown { .. } => {}
    }
}

impl RplRepr {
    /// Parses the body of an ICMPv6 RPL message of `code` (the bytes after type, code and
    /// checksum).
    pub fn parse(code: u8, b: &[u8]) -> Result<RplRepr, RplError> {
        let byte = |i: usize| b.get(i).copied().ok_or(RplError::Truncated);
        Ok(match code {
            CODE_DIS => RplRepr::Dis,
            CODE_DIO => {
                let flags = byte(4)?;
                RplRepr::Dio {
                    instance: byte(0)?,
                    version: byte(1)?,
                    rank: u16::from_be_bytes([byte(2)?, byte(3)?]),
                    grounded: flags & 0x80 != 0,
                    mop: (flags >> 3) & 0x07,
                    preference: flags & 0x07,
                    dtsn: byte(5)?,
                    dodag_id: addr_at(b, 8)?,
                    options: parse_options(&b[24..])?,
                }
            }
            CODE_DAO => {
                let flags = byte(1)?;
                let d = flags & 0x40 != 0;
                let start = if d { 20 } else { 4 };
                RplRepr::Dao {
                    instance: byte(0)?,
                    ack_requested: flags & 0x80 != 0,
                    sequence: byte(3)?,
                    dodag_id: if d { Some(addr_at(b, 4)?) } else { None },
                    options: parse_options(b.get(start..).ok_or(RplError::Truncated)?)?,
                }
            }
            CODE_DAO_ACK => {
                let d = byte(1)? & 0x80 != 0;
                RplRepr::DaoAck {
                    instance: byte(0)?,
                    sequence: byte(2)?,
                    status: byte(3)?,
                    dodag_id: if d { Some(addr_at(b, 4)?) } else { None },
                }
            }
            c => RplRepr::Unknown { code: c },
        })
    }

    /// The whole ICMPv6 message, checksum zero.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = vec![TYPE_RPL, 0, 0, 0];
        match self {
            RplRepr::Dis => {
                out[1] = CODE_DIS;
                out.extend_from_slice(&[0, 0]);
            }
            RplRepr::Dio { instance, version, rank, grounded, mop, preference, dtsn, dodag_id, options } => {
                out[1] = CODE_DIO;
                let flags = (u8::from(*grounded) << 7) | ((mop & 7) << 3) | (preference & 7);
                out.extend_from_slice(&[*instance, *version]);
                out.extend_from_slice(&rank.to_be_bytes());
                out.extend_from_slice(&[flags, *dtsn, 0, 0]);
                out.extend_from_slice(&dodag_id.octets());
                options.iter().for_each(|o| emit_option(o, &mut out));
            }
            RplRepr::Dao { instance, ack_requested, sequence, dodag_id, options } => {
                out[1] = CODE_DAO;
                let flags = (u8::from(*ack_requested) << 7) | (u8::from(dodag_id.is_some()) << 6);
                out.extend_from_slice(&[*instance, flags, 0, *sequence]);
                if let Some(d) = dodag_id {
                    out.extend_from_slice(&d.octets());
                }
                options.iter().for_each(|o| emit_option(o, &mut out));
            }
            RplRepr::DaoAck { instance, sequence, status, dodag_id } => {
                out[1] = CODE_DAO_ACK;
                out.extend_from_slice(&[*instance, u8::from(dodag_id.is_some()) << 7, *sequence, *status]);
                if let Some(d) = dodag_id {
                    out.extend_from_slice(&d.octets());
                }
            }
            RplRepr::Unknown { code } => out[1] = *code,
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn dio_vector_round_trips() {
        #[rustfmt::skip]
        let v = [
            155, 0x01, 0, 0,  // ICMPv6 RPL, DIO, checksum 0
            0x00, 0xf0,       // instance 0, version 240
            0x01, 0x00,       // rank 256 (root with MinHopRankIncrease 256)
            0x88,             // G=1, MOP=1 (non-storing), Prf=0
            0x00, 0x00, 0x00, // DTSN, flags, reserved
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // DODAGID 2001:db8::1
            0x04, 14,         // DODAG configuration, length 14
            0x00, 20, 8, 10,  // flags/PCS, DIOIntDoubl 20, DIOIntMin 8, DIORedundancy 10
            0x07, 0x00,       // MaxRankIncrease 1792
            0x01, 0x00,       // MinHopRankIncrease 256
            0x00, 0x00,       // OCP 0 (OF0)
            0x00, 0xff,       // reserved, default lifetime 255
            0x00, 0x3c,       // lifetime unit 60 s
            0x08, 30,         // prefix information, length 30
            64, 0x40,         // /64, A flag
            0xff, 0xff, 0xff, 0xff, // valid lifetime infinite
            0xff, 0xff, 0xff, 0xff, // preferred lifetime infinite
            0, 0, 0, 0,       // reserved
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 2001:db8::/64
        ];
        let r = RplRepr::parse(v[1], &v[4..]).unwrap();
        match &r {
            RplRepr::Dio { version, rank, grounded, mop, dodag_id, options, .. } => {
                assert_eq!((*version, *rank, *grounded, *mop), (240, 256, true, MOP_NON_STORING));
                assert_eq!(*dodag_id, a("2001:db8::1"));
                assert_eq!(options.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.emit(), v);
    }

    #[test]
    fn non_storing_dao_vector() {
        #[rustfmt::skip]
        let v = [
            155, 0x02, 0, 0,  // RPL DAO
            0x00, 0xc0, 0x00, 0x07, // instance 0, K=1 D=1, reserved, DAOSequence 7
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // DODAGID
            0x05, 18, 0x00, 128, // target, length 18, flags, /128
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, // 2001:db8::3
            0x06, 20, 0x00, 0x00, 0x00, 0x1e, // transit: E=0, path control 0, path seq 0, lifetime 30
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // parent 2001:db8::2
        ];
        let r = RplRepr::parse(v[1], &v[4..]).unwrap();
        assert_eq!(
            r,
            RplRepr::Dao {
                instance: 0,
                ack_requested: true,
                sequence: 7,
                dodag_id: Some(a("2001:db8::1")),
                options: vec![
                    RplOption::Target { prefix_len: 128, prefix: a("2001:db8::3") },
                    RplOption::Transit {
                        external: false,
                        path_control: 0,
                        path_sequence: 0,
                        path_lifetime: 30,
                        parent: Some(a("2001:db8::2"))
                    },
                ],
            }
        );
        assert_eq!(r.emit(), v);
    }

    #[test]
    fn dao_ack_and_truncation() {
        let r = RplRepr::DaoAck { instance: 0, sequence: 7, status: 0, dodag_id: None };
        assert_eq!(r.emit(), [155, 3, 0, 0, 0, 0, 7, 0]);
        assert_eq!(RplRepr::parse(CODE_DAO_ACK, &[0, 0, 7, 0]).unwrap(), r);
        assert_eq!(RplRepr::parse(CODE_DIO, &[0; 23]), Err(RplError::Truncated));
        // An option claiming more bytes than there are.
        let mut dao = vec![0, 0, 0, 1, 0x05, 40, 0, 128];
        assert_eq!(RplRepr::parse(CODE_DAO, &dao), Err(RplError::Option));
        dao[5] = 2;
        dao[7] = 129;
        assert_eq!(RplRepr::parse(CODE_DAO, &dao), Err(RplError::Option));
    }
}
