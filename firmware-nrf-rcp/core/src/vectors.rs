//! Byte-exact checks against the shared vector files, read at test time from
//! `shared/vectors/spinel-frames.txt` and `shared/vectors/spinel-primitives.txt`
//! (`<repo>/../shared/vectors`, i.e. three levels above this crate).
//!
//! Every non-comment line of both files must be understood by these parsers; an unknown line
//! fails the test, so a vector added later cannot be skipped silently.

use std::string::String;
use std::vec::Vec;
use std::{format, fs, vec};

use crate::hdlc::{self, SpinelDecoder};
use crate::spinel::data::{Reader, Writer};
use crate::spinel::frame::Payload;
use crate::spinel::stream_raw::{RxFrame, TxDone, TxRequest};
use crate::spinel::{packed, Command, Header, Property, Repr, ResetType, Status};

fn read_vectors(name: &str) -> String {
    let path = format!("{}/../../../shared/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Parses leading hex byte tokens, stopping at the first token that is not a hex byte.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map_while(|t| (t.len() == 2).then(|| u8::from_str_radix(t, 16).ok()).flatten()).collect()
}

fn hdlc_encode(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; hdlc::encoded_len(payload)];
    let n = hdlc::encode(payload, &mut out).expect("encode");
    out.truncate(n);
    out
}

/// Decodes `wire` and asserts it holds exactly one good frame, returned.
fn hdlc_decode_one(wire: &[u8]) -> Vec<u8> {
    let mut d = SpinelDecoder::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let (n, ev) = d.feed(rest);
        if let Some(ev) = ev {
            frames.push(ev.expect("vector decodes").to_vec());
        }
        rest = &rest[n..];
    }
    assert_eq!(frames.len(), 1, "one frame in {wire:02x?}");
    frames.remove(0)
}

/// The HDLC and Spinel checks every frame vector gets.
fn check_frame(spinel: &[u8], wire: &[u8]) {
    assert_eq!(hdlc_encode(spinel), wire, "HDLC encode of {spinel:02x?}");
    assert_eq!(hdlc_decode_one(wire), spinel, "HDLC decode of {wire:02x?}");
    let repr = Repr::parse(spinel).expect("Spinel parse");
    let mut out = vec![0u8; repr.buffer_len()];
    assert_eq!(repr.emit(&mut out), Ok(spinel.len()));
    assert_eq!(out, spinel, "Spinel re-emit");
}

fn rewrite(f: impl FnOnce(&mut Writer<'_>) -> crate::spinel::Result<()>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf);
    f(&mut w).expect("emit");
    w.written().to_vec()
}

/// Decodes the frame's value with the type the reference gives its property and re-encodes it;
/// the bytes must match. Panics on a frame it has no type for.
fn check_typed_value(repr: &Repr<'_>, title: &str) {
    let value = repr.value();
    let mut r = Reader::new(value);
    let again = match (repr.command, repr.prop()) {
        (Command::Reset, None) => {
            let t = r.optional(|r| r.u8().map(ResetType::from)).unwrap();
            assert_eq!(t, Some(ResetType::Stack), "{title}");
            rewrite(|w| t.map_or(Ok(()), |t| w.u8(t.into())))
        }
        (Command::Noop, None) => Vec::new(),
        (Command::PropValueGet, Some(Property::RcpTimestamp)) => {
            let dummy = r.u64().unwrap(); // the host's 8-byte placeholder
            rewrite(|w| w.u64(dummy))
        }
        (Command::PropValueGet, Some(_)) => Vec::new(),
        (_, Some(Property::LastStatus)) => {
            // A bare status, or a TX-done report when more follows.
            let status = Status::from(r.packed().unwrap());
            if r.is_empty() {
                rewrite(|w| w.packed(status.into()))
            } else {
                let done = TxDone::parse(value).unwrap();
                assert_eq!(done.status, status);
                if title.contains("ACK frame") {
                    let ack = done.ack.expect("ACK present");
                    assert_eq!(ack.psdu, [0x02, 0x00, 0x2a, 0x00, 0x00]);
                    assert_eq!((ack.rssi, ack.channel, ack.lqi), (-50, 15, 0xff));
                }
                rewrite(|w| done.emit(w))
            }
        }
        (_, Some(Property::ProtocolVersion)) => {
            let (major, minor) = (r.packed().unwrap(), r.packed().unwrap());
            assert_eq!((major, minor), (4, 3));
            rewrite(|w| {
                w.packed(major)?;
                w.packed(minor)
            })
        }
        (_, Some(Property::NcpVersion)) => {
            let s = r.utf8().unwrap();
            rewrite(|w| w.utf8(s))
        }
        (_, Some(Property::Caps)) => {
            let mut caps = Vec::new();
            while !r.is_empty() {
                caps.push(r.packed().unwrap());
            }
            assert!(caps.contains(&34) && caps.contains(&513), "CONFIG_RADIO and MAC_RAW");
            rewrite(|w| caps.iter().try_for_each(|&c| w.packed(c)))
        }
        (_, Some(Property::HwAddr | Property::Mac15_4Laddr)) | (_, Some(Property::MacSrcMatchExtendedAddresses)) => {
            let mut addrs = Vec::new();
            while !r.is_empty() {
                addrs.push(r.eui64().unwrap());
            }
            rewrite(|w| addrs.iter().try_for_each(|a| w.eui64(a)))
        }
        (_, Some(Property::RcpApiVersion | Property::RcpMinHostApiVersion)) | (_, Some(Property::RadioCaps)) => {
            let v = r.packed().unwrap();
            rewrite(|w| w.packed(v))
        }
        (_, Some(Property::PhyEnabled | Property::MacRawStreamEnabled | Property::MacSrcMatchEnabled)) => {
            let b = r.bool().unwrap();
            rewrite(|w| w.bool(b))
        }
        (_, Some(Property::Mac15_4Panid | Property::Mac15_4Saddr | Property::MacScanPeriod))
        | (_, Some(Property::MacSrcMatchShortAddresses)) => {
            let mut v = Vec::new();
            while !r.is_empty() {
                v.push(r.u16().unwrap());
            }
            rewrite(|w| v.iter().try_for_each(|&s| w.u16(s)))
        }
        (_, Some(Property::PhyChan | Property::MacScanState | Property::MacScanMask)) => {
            let c = r.u8().unwrap();
            rewrite(|w| w.u8(c))
        }
        (_, Some(Property::MacEnergyScanResult)) => {
            let (ch, rssi) = (r.u8().unwrap(), r.i8().unwrap());
            assert_eq!((ch, rssi), (11, -70));
            rewrite(|w| {
                w.u8(ch)?;
                w.i8(rssi)
            })
        }
        (Command::PropValueSet, Some(Property::StreamRaw)) => {
            let req = TxRequest::parse(value).unwrap();
            assert_eq!((req.channel, req.max_frame_retries), (15, 3));
            rewrite(|w| req.emit(w))
        }
        (Command::PropValueIs, Some(Property::StreamRaw)) => {
            let rx = RxFrame::parse(value).unwrap();
            assert_eq!((rx.rssi, rx.timestamp_us), (-60, 123_456_789));
            rewrite(|w| rx.emit(w))
        }
        (_, Some(Property::RcpTimestamp)) => {
            let t = r.u64().unwrap();
            rewrite(|w| w.u64(t))
        }
        (_, Some(Property::RcpMacFrameCounter)) => {
            let fc = r.u32().unwrap();
            let only_if_larger = r.optional(|r| r.bool()).unwrap();
            rewrite(|w| {
                w.u32(fc)?;
                only_if_larger.map_or(Ok(()), |b| w.bool(b))
            })
        }
        (_, Some(Property::RcpMacKey)) => {
            let (mode, key_id) = (r.u8().unwrap(), r.u8().unwrap());
            assert_eq!(mode, 1, "keyIdMode 1");
            let keys: Vec<&[u8]> = (0..3).map(|_| r.data_with_len().unwrap()).collect();
            assert!(keys.iter().all(|k| k.len() == 16));
            rewrite(|w| {
                w.u8(mode)?;
                w.u8(key_id)?;
                keys.iter().try_for_each(|k| w.data_with_len(k))
            })
        }
        other => panic!("no typed check for {other:?} ({title})"),
    };
    assert_eq!(again, value, "typed re-encode of {title}");
}

#[test]
fn spinel_frames_file() {
    let text = read_vectors("spinel-frames.txt");
    let mut title = String::new();
    let mut spinel: Option<Vec<u8>> = None;
    let mut count = 0;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(h) = trimmed.strip_prefix("spinel:") {
            spinel = Some(hex(h));
        } else if let Some(w) = trimmed.strip_prefix("hdlc:") {
            let s = spinel.take().expect("spinel: line before hdlc:");
            let wire = hex(w);
            check_frame(&s, &wire);
            let repr = Repr::parse(&s).unwrap();
            check_typed_value(&repr, &title);
            // Unsolicited frames and the host's reset use TID 0; everything else a real TID.
            let tid0 = title.contains("TID 0");
            assert_eq!(repr.header.tid() == 0, tid0, "{title}");
            count += 1;
        } else if trimmed.starts_with("note:") {
            // Free text.
        } else if !line.starts_with(' ') {
            title = trimmed.into();
        } else {
            panic!("unrecognised vector line: {line}");
        }
    }
    assert_eq!(count, 44, "every frame vector checked");
}

fn parse_number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[test]
fn spinel_primitives_file() {
    let text = read_vectors("spinel-primitives.txt");
    let (mut fcs, mut frames, mut packed_n, mut headers, mut escape) = (0, 0, 0, 0, 0);
    let mut escape_payload: Vec<u8> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(rest) = t.strip_prefix("check \"123456789\"") {
            let want = rest.split("->").nth(1).and_then(|s| s.split_whitespace().next());
            assert_eq!(want.and_then(parse_number), Some(0x906E));
            assert_eq!(hdlc::fcs(b"123456789"), 0x906E);
            fcs += 1;
        } else if t.starts_with("residue") {
            assert!(t.contains("0xF0B8"));
            assert_eq!(hdlc::GOOD_FCS, 0xF0B8);
            fcs += 1;
        } else if let Some(p) = t.strip_prefix("payload ") {
            escape_payload = hex(p);
            let fcs_hex = p.split("FCS 0x").nth(1).map(|s| &s[..4]);
            assert_eq!(fcs_hex.and_then(|h| u16::from_str_radix(h, 16).ok()), Some(hdlc::fcs(&escape_payload)));
        } else if let Some(w) = t.strip_prefix("OpenThread/aiospinel:") {
            // Our encoder escapes exactly OpenThread's set.
            check_frame(&escape_payload, &hex(w));
            escape += 1;
        } else if let Some(w) = t.strip_prefix("pyspinel:") {
            // pyspinel leaves 11 13 F8 bare; we must still decode it.
            assert_eq!(hdlc_decode_one(&hex(w)), escape_payload);
            escape += 1;
        } else if let Some(d) = t.strip_prefix("decode ") {
            let bytes = hex(d.split(':').next().unwrap_or(""));
            assert_eq!(bytes, [0xff, 0xff, 0xff, 0x7f]);
            assert!(packed::decode(&bytes).is_err());
            packed_n += 1;
        } else if t.starts_with("IID") {
            for item in t.split(';') {
                let (lhs, rhs) = item.split_once("->").expect("IIDa TIDb -> hh");
                let mut it = lhs.split_whitespace();
                let iid = it.next().and_then(|s| s.strip_prefix("IID")?.parse().ok());
                let tid = it.next().and_then(|s| s.strip_prefix("TID")?.parse().ok());
                let h = Header::new(iid.expect("iid"), tid.expect("tid")).expect("in range");
                assert_eq!(vec![h.to_byte()], hex(rhs));
                assert_eq!(Header::parse(h.to_byte()), Ok(h));
                headers += 1;
            }
        } else if let Some((lhs, rhs)) = t.split_once("->") {
            let lhs = lhs.trim();
            let rhs_bytes = hex(rhs);
            if let Some(n) = parse_number(lhs).filter(|_| !lhs.contains(' ')) {
                // Packed uint: "N -> bytes".
                let mut buf = [0u8; 3];
                let len = packed::encode(n, &mut buf).unwrap();
                assert_eq!(&buf[..len], &rhs_bytes[..], "packed {n}");
                assert_eq!(packed::decode(&rhs_bytes), Ok((n, len)));
                packed_n += 1;
            } else {
                // HDLC frame: "payload bytes -> 7e ... 7e".
                check_frame(&hex(lhs), &rhs_bytes);
                frames += 1;
            }
        } else {
            panic!("unrecognised vector line: {line}");
        }
    }
    assert_eq!(fcs, 2);
    assert_eq!(escape, 2);
    assert_eq!(headers, 5);
    assert_eq!(packed_n, 16);
    assert_eq!(frames, 2 + 9);
}

#[test]
fn reset_status_frame_is_a_reset_reason() {
    // 80 06 00 70: the handshake's reset answer.
    let repr = Repr::parse(&[0x80, 0x06, 0x00, 0x70]).unwrap();
    assert_eq!(repr.payload, Payload::Property { property: Property::LastStatus, value: &[0x70] });
    let status = Status::from(Reader::new(repr.value()).packed().unwrap());
    assert_eq!(status, Status::ResetPowerOn);
    assert!(status.is_reset());
}
