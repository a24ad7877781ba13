//! Unit tests of the sans-IO Spinel client over byte vectors and a virtual clock.
//!
//! The handshake is checked byte for byte against `shared/vectors/spinel-frames.txt`
//! (otbr-agent's order: reset, PROTOCOL_VERSION, NCP_VERSION, CAPS with TID 1, then HWADDR,
//! RCP API versions, RADIO_CAPS and the configuration with TIDs 2, 3, …).

use std::time::{Duration, Instant};

use ferry::radio::client::{
    Client, ClientError, Event, LinkState, Op, Settings, SrcAddr, TimedTx, TxError, TxOptions, KEEPALIVE_INTERVAL,
    MAX_TRANSMIT_LEN, RESPONSE_TIMEOUT,
};
use ferry_rcp_core::hdlc::{self, SpinelDecoder};
use ferry_rcp_core::spinel::{Command, Header, Property, Repr, Status};

// ---------------------------------------------------------------------------------------------
// Vectors

fn vectors() -> String {
    let path = format!("{}/../shared/vectors/spinel-frames.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|t| u8::from_str_radix(t, 16).expect("hex byte")).collect()
}

/// `(spinel, hdlc)` of the vector whose title starts with `title`.
fn vector(title: &str) -> (Vec<u8>, Vec<u8>) {
    let text = vectors();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with(title) {
            let spinel = lines.next().and_then(|l| l.trim().strip_prefix("spinel:")).expect("spinel line");
            let wire = lines.next().and_then(|l| l.trim().strip_prefix("hdlc:")).expect("hdlc line");
            return (hex(spinel), hex(wire));
        }
    }
    panic!("no vector titled {title:?}")
}

fn hdlc_encode(spinel: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; hdlc::encoded_len(spinel)];
    let n = hdlc::encode(spinel, &mut out).expect("encode");
    out.truncate(n);
    out
}

/// The same Spinel frame with another TID.
fn with_tid(spinel: &[u8], tid: u8) -> Vec<u8> {
    let mut f = spinel.to_vec();
    f[0] = Header::parse(f[0]).expect("header").with_tid(tid).to_byte();
    f
}

// ---------------------------------------------------------------------------------------------
// Rig: a client, a virtual clock, and helpers to see what it sends.

struct Rig {
    c: Client,
    now: Instant,
}

impl Rig {
    fn new(settings: Settings) -> Rig {
        let now = Instant::now();
        Rig { c: Client::new(settings, now), now }
    }

    /// HDLC frames the client wants to send.
    fn sent_hdlc(&mut self) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; MAX_TRANSMIT_LEN];
        let mut out = Vec::new();
        while let Some(n) = self.c.poll_transmit(self.now, &mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    /// Spinel frames the client wants to send.
    fn sent(&mut self) -> Vec<Vec<u8>> {
        self.sent_hdlc()
            .into_iter()
            .map(|w| {
                let mut d = SpinelDecoder::new();
                let (n, f) = d.feed(&w);
                assert_eq!(n, w.len(), "one frame per transmit");
                f.expect("one frame").expect("good FCS").to_vec()
            })
            .collect()
    }

    /// Exactly one Spinel frame sent.
    fn one(&mut self) -> Vec<u8> {
        let mut s = self.sent();
        assert_eq!(s.len(), 1, "expected one frame, got {s:02x?}");
        s.remove(0)
    }

    fn feed_wire(&mut self, wire: &[u8]) {
        self.c.handle_input(self.now, wire);
    }

    fn feed(&mut self, spinel: &[u8]) {
        let wire = hdlc_encode(spinel);
        self.feed_wire(&wire);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.c.poll_event()).collect()
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.c.handle_timeout(self.now);
    }

    /// Answers every request like a healthy ot-rcp until the client is quiet; returns the
    /// requests it saw.
    fn serve(&mut self) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        for _ in 0..64 {
            let sent = self.sent();
            if sent.is_empty() {
                return seen;
            }
            for req in sent {
                if let Some(reply) = auto_reply(&req) {
                    self.feed(&reply);
                }
                seen.push(req);
            }
        }
        panic!("client never went quiet")
    }
}

/// A healthy ot-rcp's answer to one request (no answer to STREAM_RAW: tests play TX-done).
fn auto_reply(req: &[u8]) -> Option<Vec<u8>> {
    let r = Repr::parse(req).expect("client sends valid Spinel");
    let h = r.header.to_byte();
    let is = |prop: &[u8], v: &[u8]| [&[h, 0x06][..], prop, v].concat();
    match (r.command, r.prop()) {
        (Command::Reset, _) => Some(vec![0x80, 0x06, 0x00, 0x70]),
        (Command::Noop, _) => Some(vec![h, 0x06, 0x00, 0x00]),
        (Command::PropValueGet, Some(p)) => Some(match p {
            Property::ProtocolVersion => is(&[0x01], &[0x04, 0x03]),
            Property::NcpVersion => is(&[0x02], b"RUST-RCP/0.1\0"),
            Property::Caps => is(&[0x05], &[0x05, 0x0c, 0x18, 0x22, 0x81, 0x04, 0x40, 0x41]),
            Property::HwAddr => is(&[0x08], &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]),
            Property::RcpApiVersion => is(&[0xb0, 0x01], &[0x0b]),
            Property::RcpMinHostApiVersion => is(&[0xb1, 0x01], &[0x04]),
            Property::RadioCaps => is(&[0x8b, 0x24], &[0x6f]),
            other => panic!("unexpected GET {other:?}"),
        }),
        (Command::PropValueSet, Some(Property::StreamRaw)) => None,
        (Command::PropValueSet, Some(_)) => Some(vec![h, 0x06, 0x00, 0x00]),
        (Command::PropValueInsert | Command::PropValueRemove, Some(_)) => {
            let mut f = req.to_vec();
            f[1] = if r.command == Command::PropValueInsert { 0x07 } else { 0x08 };
            Some(f)
        }
        other => panic!("unexpected request {other:?}"),
    }
}

fn vector_settings() -> Settings {
    Settings {
        channel: 15,
        pan_id: 0x1234,
        short_address: 0xFFFE,
        ext_address: Some([1, 2, 3, 4, 5, 6, 7, 8]),
        ..Settings::default()
    }
}

/// A client through the handshake with `auto_reply`.
fn ready(settings: Settings) -> Rig {
    let mut rig = Rig::new(settings);
    rig.serve();
    assert_eq!(rig.c.state(), &LinkState::Ready);
    rig.events();
    rig
}

// ---------------------------------------------------------------------------------------------
// Handshake

#[test]
fn handshake_happy_path_is_byte_exact() {
    let mut rig = Rig::new(vector_settings());
    assert_eq!(rig.c.state(), &LinkState::Initializing { attempt: 1 });
    // Each exchange: (what the client must send, what the RCP answers) as vector titles or
    // literal frames where the shared file has no vector.
    let v = |t: &str| vector(t);
    let steps: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (v("host->RCP CMD_RESET").1, v("RCP->host VALUE_IS LAST_STATUS = STATUS_RESET_POWER_ON").1),
        (v("host->RCP GET PROTOCOL_VERSION").1, v("RCP->host VALUE_IS PROTOCOL_VERSION 4.3").1),
        (v("host->RCP GET NCP_VERSION").1, v("RCP->host VALUE_IS NCP_VERSION").1),
        (v("host->RCP GET CAPS").1, v("RCP->host VALUE_IS CAPS").1),
        (v("host->RCP GET HWADDR").1, v("RCP->host VALUE_IS HWADDR").1),
        (v("host->RCP GET RCP_API_VERSION").1, v("RCP->host VALUE_IS RCP_API_VERSION").1),
        (v("host->RCP GET RCP_MIN_HOST_API_VERSION").1, v("RCP->host VALUE_IS RCP_MIN_HOST_API_VERSION").1),
        (v("host->RCP GET RADIO_CAPS").1, v("RCP->host VALUE_IS RADIO_CAPS").1),
        (v("host->RCP SET PHY_ENABLED").1, v("RCP->host VALUE_IS PHY_ENABLED").1),
        (v("host->RCP SET MAC_15_4_PANID").1, hdlc_encode(&[0x87, 0x06, 0x36, 0x34, 0x12])),
        (v("host->RCP SET MAC_15_4_SADDR").1, hdlc_encode(&[0x88, 0x06, 0x35, 0xfe, 0xff])),
        (v("host->RCP SET MAC_15_4_LADDR").1, hdlc_encode(&[0x89, 0x06, 0x34, 1, 2, 3, 4, 5, 6, 7, 8])),
        (v("host->RCP SET PHY_CHAN").1, hdlc_encode(&[0x8a, 0x06, 0x21, 0x0f])),
        (v("host->RCP SET MAC_RAW_STREAM_ENABLED").1, v("RCP->host VALUE_IS LAST_STATUS OK(0), TID 11").1),
        (v("host->RCP SET MAC_SRC_MATCH_ENABLED").1, hdlc_encode(&[0x8c, 0x06, 0x83, 0x26, 0x01])),
        // Empty tables: the vector's clear frame (TID 15) under TIDs 13 and 14.
        (
            hdlc_encode(&with_tid(&v("host->RCP SET MAC_SRC_MATCH_SHORT_ADDRESSES A(S)=[]").0, 13)),
            hdlc_encode(&[0x8d, 0x06, 0x00, 0x00]),
        ),
        (hdlc_encode(&[0x8e, 0x03, 0x85, 0x26]), hdlc_encode(&[0x8e, 0x06, 0x00, 0x00])),
    ];
    for (i, (expect, answer)) in steps.iter().enumerate() {
        let sent = rig.sent_hdlc();
        assert_eq!(sent, std::slice::from_ref(expect), "step {i}");
        assert_ne!(rig.c.state(), &LinkState::Ready, "step {i}");
        rig.feed_wire(answer);
    }
    assert!(rig.sent().is_empty());
    assert_eq!(rig.c.state(), &LinkState::Ready);
    assert_eq!(rig.events(), [Event::State(LinkState::Ready)]);
    let info = rig.c.info().expect("info");
    assert_eq!(info.ncp_version, "RUST-RCP/0.1");
    assert_eq!(info.hwaddr, [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
    assert_eq!((info.rcp_api_version, info.rcp_min_host_api_version), (Some(11), Some(4)));
    assert_eq!(info.radio_caps.0, 0x6f);
    assert_eq!(rig.c.poll_timeout(), Some(rig.now + KEEPALIVE_INTERVAL), "only the keepalive");
}

#[test]
fn ext_address_defaults_to_hwaddr() {
    let mut rig = Rig::new(Settings::default());
    let seen = rig.serve();
    let laddr = seen.iter().find(|f| Repr::parse(f).unwrap().prop() == Some(Property::Mac15_4Laddr)).unwrap();
    assert_eq!(&laddr[3..], [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
}

#[test]
fn frames_other_than_a_reset_status_are_ignored_while_resetting() {
    let mut rig = Rig::new(vector_settings());
    assert_eq!(rig.sent().len(), 1);
    rig.feed(&[0x81, 0x06, 0x01, 0x04, 0x03]); // a stale answer
    rig.feed(&vector("RCP->host VALUE_IS STREAM_RAW").0);
    assert!(rig.sent().is_empty());
    rig.feed(&[0x80, 0x06, 0x00, 0x71]); // RESET_EXTERNAL also ends the wait
    assert_eq!(rig.one(), vector("host->RCP GET PROTOCOL_VERSION").0);
}

#[test]
fn garbage_on_the_line_is_skipped() {
    let mut rig = Rig::new(vector_settings());
    rig.sent();
    let mut wire = vec![0x00, 0x13, 0x7e, 0x55, 0x7d, 0xff, 0x7e, 0x7e];
    wire.extend(vector("RCP->host VALUE_IS LAST_STATUS = STATUS_RESET_POWER_ON").1);
    wire.extend([0x12, 0x34, 0x7e, 0x40, 0x01, 0x02]); // not Spinel, bad FCS, a truncated frame
                                                       // The answer arrives in single bytes.
    for b in &wire {
        rig.feed_wire(std::slice::from_ref(b));
    }
    assert_eq!(rig.one(), vector("host->RCP GET PROTOCOL_VERSION").0);
    assert!(rig.c.stats().rx_garbage >= 2);
    // A non-Spinel frame with a good FCS is garbage too.
    rig.feed(&[0x40, 0x06, 0x01]);
    rig.feed(&vector("RCP->host VALUE_IS PROTOCOL_VERSION 4.3").0);
    assert_eq!(rig.one(), vector("host->RCP GET NCP_VERSION").0);
}

fn fail_at(reply_to: Property, reply: &[u8]) -> ClientError {
    let mut rig = Rig::new(Settings::default());
    for _ in 0..32 {
        for req in rig.sent() {
            let r = Repr::parse(&req).unwrap();
            let answer = if r.prop() == Some(reply_to) {
                with_tid(reply, r.header.tid())
            } else {
                auto_reply(&req).expect("answer")
            };
            rig.feed(&answer);
        }
        if let LinkState::Failed(e) = rig.c.state() {
            let e = e.clone();
            assert!(rig.sent().is_empty(), "a failed client sends nothing");
            assert!(rig.events().contains(&Event::State(LinkState::Failed(e.clone()))));
            return e;
        }
    }
    panic!("the handshake did not fail")
}

#[test]
fn protocol_version_mismatch_is_a_clear_error() {
    let e = fail_at(Property::ProtocolVersion, &[0x81, 0x06, 0x01, 0x04, 0x02]);
    assert_eq!(e, ClientError::ProtocolVersion { major: 4, minor: 2 });
    let msg = e.to_string();
    assert!(msg.contains("protocol 4.2") && msg.contains("needs 4.3") && msg.contains("flash"), "{msg}");
    assert!(e.is_incompatible());
}

#[test]
fn missing_caps_name_what_the_rcp_lacks() {
    // CAPS without MAC_RAW (513).
    let e = fail_at(Property::Caps, &[0x81, 0x06, 0x05, 0x05, 0x18, 0x22, 0x40, 0x41]);
    assert!(matches!(e, ClientError::MissingCapability { missing, .. } if missing.starts_with("MAC_RAW")), "{e}");
    assert!(e.to_string().contains("MAC_RAW (513)"));
    // An NCP: no CONFIG_RADIO (34), but CONFIG_FTD (32).
    let e = fail_at(Property::Caps, &[0x81, 0x06, 0x05, 0x05, 0x18, 0x20, 0x81, 0x04]);
    assert!(e.to_string().contains("CONFIG_RADIO (34)"), "{e}");
    assert!(e.to_string().contains("NCP"), "{e}");
}

#[test]
fn rcp_api_versions_are_checked_both_ways() {
    let e = fail_at(Property::RcpApiVersion, &[0x83, 0x06, 0xb0, 0x01, 0x03]);
    assert_eq!(e, ClientError::RcpApiTooOld { rcp: 3 });
    assert!(e.to_string().contains("RCP API version 3") && e.to_string().contains("update the RCP"), "{e}");
    let e = fail_at(Property::RcpMinHostApiVersion, &[0x84, 0x06, 0xb1, 0x01, 0x0c]);
    assert_eq!(e, ClientError::HostApiTooOld { required: 12 });
    assert!(e.to_string().contains("update ferry"), "{e}");
}

#[test]
fn missing_radio_caps_are_named() {
    // Only ENERGY_SCAN|TRANSMIT_RETRIES.
    let e = fail_at(Property::RadioCaps, &[0x85, 0x06, 0x8b, 0x24, 0x06]);
    let msg = e.to_string();
    assert!(msg.contains("ACK_TIMEOUT|CSMA_BACKOFF"), "{msg}");
}

#[test]
fn caps_without_rcp_api_version_skip_those_queries() {
    let mut rig = Rig::new(Settings::default());
    let mut gets = Vec::new();
    for _ in 0..32 {
        for req in rig.sent() {
            let r = Repr::parse(&req).unwrap();
            if r.command == Command::PropValueGet {
                gets.push(r.prop().unwrap());
            }
            let answer = if r.prop() == Some(Property::Caps) {
                with_tid(&[0x81, 0x06, 0x05, 0x22, 0x81, 0x04], r.header.tid())
            } else {
                auto_reply(&req).unwrap()
            };
            rig.feed(&answer);
        }
    }
    assert_eq!(rig.c.state(), &LinkState::Ready);
    assert!(!gets.contains(&Property::RcpApiVersion) && !gets.contains(&Property::RcpMinHostApiVersion));
    assert!(gets.contains(&Property::RadioCaps));
}

#[test]
fn refused_configuration_fails_the_attempt_and_retries() {
    let mut rig = Rig::new(Settings::default());
    let mut refusals = 0;
    for _ in 0..128 {
        for req in rig.sent() {
            let r = Repr::parse(&req).unwrap();
            if r.prop() == Some(Property::PhyChan) {
                refusals += 1;
                rig.feed(&[r.header.to_byte(), 0x06, 0x00, 0x03]); // INVALID_ARGUMENT
            } else if let Some(a) = auto_reply(&req) {
                rig.feed(&a);
            }
        }
    }
    assert_eq!(refusals, 3, "three attempts");
    match rig.c.state() {
        LinkState::Failed(ClientError::Refused { what, status }) => {
            assert_eq!((*what, *status), ("SET PHY_CHAN", Status::InvalidArgument));
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts

#[test]
fn reset_timeout_retries_then_fails() {
    let mut rig = Rig::new(Settings::default());
    let reset = vector("host->RCP CMD_RESET").0;
    let t0 = rig.now;
    assert_eq!(rig.one(), reset);
    assert_eq!(rig.c.poll_timeout(), Some(t0 + RESPONSE_TIMEOUT));
    // Early calls are harmless.
    rig.advance(Duration::from_millis(1999));
    assert!(rig.sent().is_empty());
    rig.advance(Duration::from_millis(1));
    assert_eq!(rig.one(), reset, "second attempt");
    assert_eq!(rig.c.state(), &LinkState::Initializing { attempt: 2 });
    rig.advance(RESPONSE_TIMEOUT);
    assert_eq!(rig.one(), reset, "third attempt");
    rig.advance(RESPONSE_TIMEOUT);
    assert!(rig.sent().is_empty());
    match rig.c.state() {
        LinkState::Failed(e @ ClientError::Timeout { what: "CMD_RESET", timeout_ms: 2000 }) => {
            assert!(e.to_string().contains("uart-baudrate"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rig.c.poll_timeout(), None);
    // The shell reopens the device and restarts.
    rig.c.restart(rig.now);
    assert_eq!(rig.one(), reset);
    assert_eq!(rig.c.state(), &LinkState::Initializing { attempt: 1 });
}

#[test]
fn a_silent_rcp_mid_handshake_is_reset_again() {
    let mut rig = Rig::new(Settings::default());
    rig.sent();
    rig.feed(&[0x80, 0x06, 0x00, 0x70]);
    assert_eq!(rig.one(), vector("host->RCP GET PROTOCOL_VERSION").0);
    rig.advance(RESPONSE_TIMEOUT);
    assert_eq!(rig.serve()[0], vector("host->RCP CMD_RESET").0);
    assert_eq!(rig.c.state(), &LinkState::Ready);
}

#[test]
fn tx_timeout_fails_the_frame_and_resets_the_rcp() {
    let mut rig = ready(Settings::default());
    let id = rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default()).unwrap();
    assert_eq!(rig.sent().len(), 1);
    rig.advance(RESPONSE_TIMEOUT);
    let ev = rig.events();
    assert!(ev.contains(&Event::TxDone { id, result: Err(TxError::Timeout) }), "{ev:?}");
    assert!(ev.contains(&Event::State(LinkState::Initializing { attempt: 1 })));
    assert_eq!(rig.serve()[0], vector("host->RCP CMD_RESET").0);
    assert_eq!(rig.c.state(), &LinkState::Ready);
}

#[test]
fn a_silent_ready_rcp_is_checked_with_noop_and_reset_when_it_does_not_answer() {
    let mut rig = ready(Settings::default());
    let t0 = rig.now;
    assert_eq!(rig.c.poll_timeout(), Some(t0 + KEEPALIVE_INTERVAL));
    // Traffic from the RCP pushes the check back.
    rig.advance(Duration::from_secs(10));
    rig.feed(&vector("RCP->host VALUE_IS STREAM_RAW (received frame)").0);
    rig.events();
    assert_eq!(rig.c.poll_timeout(), Some(rig.now + KEEPALIVE_INTERVAL));
    rig.advance(KEEPALIVE_INTERVAL);
    let noop = rig.one();
    assert_eq!(noop[1..], [0x00], "CMD_NOOP");
    assert_ne!(noop[0] & 0x0f, 0);
    rig.feed(&[noop[0], 0x06, 0x00, 0x00]); // LAST_STATUS OK
    assert_eq!(rig.c.state(), &LinkState::Ready);
    assert_eq!(rig.c.poll_timeout(), Some(rig.now + KEEPALIVE_INTERVAL));
    // No answer this time: the RCP is reset and re-initialised.
    rig.advance(KEEPALIVE_INTERVAL);
    assert_eq!(rig.one()[1..], [0x00]);
    rig.advance(RESPONSE_TIMEOUT);
    assert_eq!(rig.c.state(), &LinkState::Initializing { attempt: 1 });
    assert_eq!(rig.one(), vector("host->RCP CMD_RESET").0);
    // Disabled: no timer at all once Ready.
    let rig = ready(Settings { keepalive: None, ..Settings::default() });
    assert_eq!(rig.c.poll_timeout(), None);
}

#[test]
fn timed_tx_waits_longer() {
    let mut rig = ready(Settings::default());
    let opts = TxOptions { timed: Some(TimedTx { base_time_us: 1000, delay_us: 500_000 }), ..TxOptions::default() };
    rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], opts).unwrap();
    let f = rig.one();
    let value = &f[3..];
    // d(4 bytes) C C C b b b b L(delay) L(base)
    assert_eq!(&value[2 + 4 + 7..2 + 4 + 15], [0x20, 0xa1, 0x07, 0x00, 0xe8, 0x03, 0x00, 0x00]);
    assert_eq!(rig.c.poll_timeout(), Some(rig.now + RESPONSE_TIMEOUT + Duration::from_millis(500)));
}

// ---------------------------------------------------------------------------------------------
// TX and RX

#[test]
fn tx_request_and_done_with_ack_match_the_vectors() {
    let mut rig = ready(vector_settings());
    let (req, _) = vector("host->RCP SET STREAM_RAW (transmit)");
    let psdu = &req[5..5 + 0x14];
    let id = rig.c.transmit(rig.now, psdu, TxOptions::default()).unwrap();
    let sent = rig.one();
    let tid = Header::parse(sent[0]).unwrap().tid();
    assert_ne!(tid, 0);
    assert_eq!(sent, with_tid(&req, tid), "TX request byte-exact apart from the TID");
    assert_eq!(rig.c.poll_timeout(), Some(rig.now + RESPONSE_TIMEOUT));
    let (done, _) = vector("RCP->host VALUE_IS LAST_STATUS (TX done OK + ACK frame)");
    rig.feed(&with_tid(&done, tid));
    let ev = rig.events();
    let [Event::TxDone { id: got, result: Ok(ack) }] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(*got, id);
    assert!(!ack.frame_pending);
    let ack_frame = ack.ack.as_ref().expect("ACK frame");
    assert_eq!(ack_frame.psdu, [0x02, 0x00, 0x2a, 0x00, 0x00]);
    assert_eq!((ack_frame.rssi, ack_frame.lqi, ack_frame.channel), (-50, 0xff, 15));
    assert_eq!(rig.c.poll_timeout(), Some(rig.now + KEEPALIVE_INTERVAL));
}

#[test]
fn tx_queue_is_bounded_and_each_frame_gets_its_result() {
    let mut rig = ready(Settings { tx_queue_len: 2, ..vector_settings() });
    let psdu = [0x41, 0xd8, 0x01, 0x34, 0x12, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00];
    let a = rig.c.transmit(rig.now, &psdu, TxOptions::default()).unwrap();
    let b = rig.c.transmit(rig.now, &psdu, TxOptions::default()).unwrap();
    let c = rig.c.transmit(rig.now, &psdu, TxOptions::default()).unwrap();
    assert_eq!(rig.c.transmit(rig.now, &psdu, TxOptions::default()), Err(TxError::QueueFull(2)));
    // Only one transmission is in flight at a time.
    let first = rig.one();
    let (no_ack, _) = vector("RCP->host VALUE_IS LAST_STATUS NO_ACK(17)");
    rig.feed(&with_tid(&no_ack, first[0] & 0x0f));
    let second = rig.one();
    assert_ne!(first[0], second[0], "a fresh TID");
    let (cca, _) = vector("RCP->host VALUE_IS LAST_STATUS CCA_FAILURE(18)");
    rig.feed(&with_tid(&cca, second[0] & 0x0f));
    let third = rig.one();
    // OK with an ACK whose FP bit is set: status, fp=1, hdr=0, then an ACK in RX layout.
    let mut done = vec![third[0], 0x06, 0x00, 0x00, 0x01, 0x00];
    done.extend([0x05, 0x00, 0x12, 0x00, 0x2a, 0xaa, 0xbb]); // d(ACK psdu, FP bit 0x10)
    done.extend([0xce, 0x80, 0x00, 0x00]); // rssi -50, noise -128, flags 0
    done.extend([0x0a, 0x00, 0x0f, 0xf0, 0x01, 0, 0, 0, 0, 0, 0, 0]); // t(chan, lqi, ts)
    done.extend([0x01, 0x00, 0x00, 0x05, 0x00, 0, 0, 0, 0, 0]); // t(rxError) t(keyId, fc)
    rig.feed(&done);
    let ev = rig.events();
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[0], Event::TxDone { id: a, result: Err(TxError::NoAck) });
    assert_eq!(ev[1], Event::TxDone { id: b, result: Err(TxError::ChannelAccessFailure) });
    let Event::TxDone { id, result: Ok(ack) } = &ev[2] else { panic!("{ev:?}") };
    assert_eq!(*id, c);
    assert!(ack.frame_pending);
    assert_eq!(ack.ack.as_ref().unwrap().lqi, 0xf0);
    // Refusals from the client itself.
    assert_eq!(rig.c.transmit(rig.now, &[0x41], TxOptions::default()), Err(TxError::BadLength(1)));
    let bad = TxOptions { channel: Some(27), ..TxOptions::default() };
    assert_eq!(rig.c.transmit(rig.now, &psdu, bad), Err(TxError::BadChannel(27)));
}

#[test]
fn tx_refused_at_once_by_the_rcp() {
    let mut rig = ready(Settings::default());
    let id = rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default()).unwrap();
    let req = rig.one();
    rig.feed(&[req[0], 0x06, 0x00, 0x04]); // bare LAST_STATUS INVALID_STATE
    assert_eq!(rig.events(), [Event::TxDone { id, result: Err(TxError::Rejected(Status::InvalidState)) }]);
    assert_eq!(rig.c.state(), &LinkState::Ready);
}

#[test]
fn tx_is_refused_before_the_handshake() {
    let mut rig = Rig::new(Settings::default());
    assert_eq!(rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default()), Err(TxError::NotReady));
}

#[test]
fn received_frames_are_events_with_metadata() {
    let mut rig = ready(vector_settings());
    let (_, wire) = vector("RCP->host VALUE_IS STREAM_RAW (received frame)");
    rig.feed_wire(&wire);
    let ev = rig.events();
    let [Event::Received(f)] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(f.psdu.len(), 0x13);
    assert_eq!(&f.psdu[..3], [0x41, 0xd8, 0x2b]);
    assert_eq!((f.rssi, f.noise_floor, f.lqi, f.channel), (-60, -128, 0xe0, 15));
    assert_eq!(f.timestamp_us, 123_456_789);
    assert!(f.acked_frame_pending && !f.acked_secure);
    // A STREAM_RAW with a receive error or garbage is counted, not delivered.
    let mut bad = vector("RCP->host VALUE_IS STREAM_RAW (received frame)").0;
    bad.truncate(10);
    rig.feed(&bad);
    assert!(rig.events().is_empty());
    assert_eq!(rig.c.stats().rx_malformed, 1);
    // RX notifications with a non-zero TID are not RX frames.
    let mut tid5 = vector("RCP->host VALUE_IS STREAM_RAW (received frame)").0;
    tid5[0] = 0x85;
    rig.feed(&tid5);
    assert!(rig.events().is_empty());
    assert_eq!(rig.c.stats().rx_frames, 1);
}

// ---------------------------------------------------------------------------------------------
// Configuration ops and reset recovery

#[test]
fn src_match_insert_matches_the_vector_and_completes() {
    let mut rig = ready(vector_settings());
    let id = rig.c.submit(rig.now, Op::SrcMatchInsert(SrcAddr::Short(0x0401))).unwrap();
    let sent = rig.one();
    let (req, _) = vector("host->RCP INSERT MAC_SRC_MATCH_SHORT_ADDRESSES S=0x0401");
    assert_eq!(sent, with_tid(&req, sent[0] & 0x0f));
    let (answer, _) = vector("RCP->host VALUE_INSERTED MAC_SRC_MATCH_SHORT_ADDRESSES");
    rig.feed(&with_tid(&answer, sent[0] & 0x0f));
    assert_eq!(rig.events(), [Event::OpDone { id, result: Ok(()) }]);
    let ext = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    rig.c.submit(rig.now, Op::SrcMatchInsert(SrcAddr::Extended(ext))).unwrap();
    rig.serve();
    let id = rig.c.submit(rig.now, Op::SrcMatchRemove(SrcAddr::Extended(ext))).unwrap();
    let sent = rig.one();
    let (req, _) = vector("host->RCP REMOVE MAC_SRC_MATCH_EXTENDED_ADDRESSES");
    assert_eq!(sent, with_tid(&req, sent[0] & 0x0f));
    rig.feed(&[sent[0], 0x06, 0x00, 0x14]); // ITEM_NOT_FOUND: already gone is fine
    assert_eq!(rig.events().last(), Some(&Event::OpDone { id, result: Ok(()) }));
    assert_eq!(rig.c.src_match_entries().collect::<Vec<_>>(), [SrcAddr::Short(0x0401)]);
    // A bad channel is refused before anything is sent.
    assert_eq!(rig.c.submit(rig.now, Op::SetChannel(10)), Err(ClientError::BadChannel(10)));
}

#[test]
fn ops_run_one_at_a_time_alongside_a_transmission() {
    let mut rig = ready(vector_settings());
    rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default()).unwrap();
    rig.c.submit(rig.now, Op::SetChannel(20)).unwrap();
    rig.c.submit(rig.now, Op::SetPanId(0xabcd)).unwrap();
    let sent = rig.sent();
    assert_eq!(sent.len(), 2, "the TX and the first op");
    let tids: Vec<u8> = sent.iter().map(|f| f[0] & 0x0f).collect();
    assert_ne!(tids[0], tids[1]);
    assert_eq!(&sent[1][1..], [0x03, 0x21, 20]);
    rig.feed(&[sent[1][0], 0x06, 0x21, 20]);
    assert_eq!(&rig.one()[1..], [0x03, 0x36, 0xcd, 0xab]);
    assert_eq!(rig.c.channel(), 20);
}

#[test]
fn tids_wrap_from_15_to_1_and_skip_the_one_in_flight() {
    let mut rig = ready(vector_settings()); // the handshake used TIDs up to 14
    let _tx = rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default()).unwrap();
    let tx_tid = rig.one()[0] & 0x0f;
    assert_eq!(tx_tid, 15);
    let mut tids = Vec::new();
    for i in 0..20u16 {
        rig.c.submit(rig.now, Op::SetPanId(i)).unwrap();
        let f = rig.one();
        tids.push(f[0] & 0x0f);
        rig.feed(&auto_reply(&f).unwrap());
    }
    assert!(!tids.contains(&0) && !tids.contains(&15), "{tids:?}");
    assert_eq!(&tids[..3], [1, 2, 3]);
}

#[test]
fn unsolicited_reset_rehandshakes_and_restores_tables() {
    let mut rig = ready(vector_settings());
    for op in [
        Op::SetChannel(25),
        Op::SrcMatchInsert(SrcAddr::Short(0x0401)),
        Op::SrcMatchInsert(SrcAddr::Short(0x0002)),
        Op::SrcMatchInsert(SrcAddr::Extended([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])),
        Op::SrcMatchRemove(SrcAddr::Short(0x0002)),
    ] {
        rig.c.submit(rig.now, op).unwrap();
    }
    rig.serve();
    let tx = rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default()).unwrap();
    assert_eq!(rig.sent().len(), 1);
    // A queued op that the reset interrupts is not lost either.
    rig.c.submit(rig.now, Op::SetPanId(0x4321)).unwrap();
    assert_eq!(rig.sent().len(), 1);
    rig.events();

    rig.feed(&[0x80, 0x06, 0x00, 0x72]); // LAST_STATUS RESET_SOFTWARE, TID 0
    let ev = rig.events();
    assert!(ev.contains(&Event::RcpReset { reason: Status::ResetSoftware }), "{ev:?}");
    assert!(ev.contains(&Event::TxDone { id: tx, result: Err(TxError::Aborted) }), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, Event::OpDone { result: Ok(()), .. })), "{ev:?}");
    assert!(ev.contains(&Event::State(LinkState::Initializing { attempt: 1 })), "{ev:?}");
    assert_eq!(rig.c.stats().rcp_resets, 1);

    let seen = rig.serve();
    // The RCP has just reset: the client goes straight to PROTOCOL_VERSION.
    assert_eq!(seen[0], vector("host->RCP GET PROTOCOL_VERSION").0);
    assert_eq!(rig.c.state(), &LinkState::Ready);
    let set = |p: Property| {
        seen.iter()
            .filter_map(|f| Repr::parse(f).ok())
            .find(|r| r.command == Command::PropValueSet && r.prop() == Some(p))
            .map(|r| r.value().to_vec())
            .unwrap_or_else(|| panic!("no SET {p:?} in {seen:02x?}"))
    };
    assert_eq!(set(Property::PhyChan), [25]);
    assert_eq!(set(Property::Mac15_4Panid), [0x21, 0x43]);
    assert_eq!(set(Property::Mac15_4Laddr), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(set(Property::MacRawStreamEnabled), [1]);
    assert_eq!(set(Property::MacSrcMatchShortAddresses), [0x01, 0x04]);
    assert_eq!(set(Property::MacSrcMatchExtendedAddresses), [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    // TX works again.
    rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default()).unwrap();
    assert_eq!(rig.sent().len(), 1);
}

#[test]
fn the_twin_reset_status_during_the_handshake_is_not_counted() {
    let mut rig = Rig::new(vector_settings());
    assert_eq!(rig.one(), vector("host->RCP CMD_RESET").0);
    // Boot announcement and the answer to CMD_RESET arrive back to back.
    rig.feed(&[0x80, 0x06, 0x00, 0x70]);
    assert_eq!(rig.one(), vector("host->RCP GET PROTOCOL_VERSION").0);
    rig.feed(&[0x80, 0x06, 0x00, 0x70]);
    assert_eq!(rig.one(), vector("host->RCP GET PROTOCOL_VERSION").0, "asked again, no new reset");
    rig.feed(&vector("RCP->host VALUE_IS PROTOCOL_VERSION 4.3").0);
    rig.serve();
    assert_eq!(rig.c.state(), &LinkState::Ready);
    assert_eq!(rig.c.stats().rcp_resets, 0);
    assert!(!rig.events().iter().any(|e| matches!(e, Event::RcpReset { .. })));
}

#[test]
fn reset_with_a_nonzero_tid_outside_a_reset_wait_is_not_a_reset() {
    let mut rig = ready(Settings::default());
    rig.feed(&[0x83, 0x06, 0x00, 0x70]);
    assert!(rig.events().is_empty());
    assert_eq!(rig.c.state(), &LinkState::Ready);
}

#[test]
fn src_match_restore_failure_is_reported_not_fatal() {
    let mut rig = Rig::new(Settings::default());
    rig.c.submit(rig.now, Op::SrcMatchInsert(SrcAddr::Short(7))).unwrap();
    for _ in 0..32 {
        for req in rig.sent() {
            let r = Repr::parse(&req).unwrap();
            if r.prop() == Some(Property::MacSrcMatchShortAddresses) {
                rig.feed(&[r.header.to_byte(), 0x06, 0x00, 0x0b]); // NOMEM
            } else if let Some(a) = auto_reply(&req) {
                rig.feed(&a);
            }
        }
    }
    assert_eq!(rig.c.state(), &LinkState::Ready);
    let ev = rig.events();
    assert!(ev.contains(&Event::SrcMatchRestoreFailed { addr: SrcAddr::Short(7), status: Status::Nomem }));
}

#[test]
fn ops_while_down_are_recorded_and_applied_by_the_handshake() {
    let mut rig = Rig::new(vector_settings());
    let id = rig.c.submit(rig.now, Op::SetChannel(26)).unwrap();
    assert_eq!(rig.events(), [Event::OpDone { id, result: Ok(()) }]);
    let seen = rig.serve();
    assert!(seen.iter().any(|f| f[1..] == [0x03, 0x21, 26]));
}

#[test]
fn stray_and_other_interface_frames_are_ignored() {
    let mut rig = ready(Settings::default());
    rig.feed(&[0x87, 0x06, 0x21, 0x0b]); // nothing outstanding with TID 7
    rig.feed(&[0x90, 0x06, 0x00, 0x70]); // IID 1
    rig.feed(&[0x80, 0x06, 0x39, 0x0b, 0xba]); // energy-scan result
    assert!(rig.events().is_empty());
    assert_eq!(rig.c.stats().stray_responses, 1);
    assert_eq!(rig.c.state(), &LinkState::Ready);
}

#[test]
fn random_line_noise_never_panics_and_the_client_recovers() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut rig = ready(Settings::default());
    for round in 0..3000 {
        // Alternate raw noise and well-framed random Spinel-ish frames (valid FCS).
        let len = (next() % 40) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            if let Some(b) = bytes.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            bytes = hdlc_encode(&bytes);
        }
        rig.feed_wire(&bytes);
        for req in rig.sent() {
            if round % 7 == 0 {
                if let Some(a) = auto_reply(&req) {
                    rig.feed(&a);
                }
            }
        }
        rig.events();
        if round % 100 == 0 {
            rig.advance(Duration::from_millis(700));
        }
        if round % 5 == 0 {
            let _ = rig.c.transmit(rig.now, &[0x41, 0xd8, 0, 0], TxOptions::default());
        }
    }
    // Whatever state the noise left, a healthy RCP brings the client back.
    rig.c.restart(rig.now);
    rig.serve();
    assert_eq!(rig.c.state(), &LinkState::Ready);
    assert!(rig.c.stats().rx_garbage > 0);
}

#[test]
fn settings_from_the_network_section() {
    let network = ferry::config::NetworkConfig::default();
    let s = Settings::for_network(&network);
    assert_eq!((s.channel, s.pan_id, s.short_address), (26, 0xface, 0x0000));
}
