//! RCP machine tests: the otbr-agent start-up handshake (reference §5) and the raw radio
//! datapath (§4), byte-exact against `shared/vectors/spinel-frames.txt` where it has a vector.

use std::vec::Vec;

use super::*;
use crate::radio::{SrcMatchTable, TxError};
use crate::spinel::RadioCaps;

/// What the mock saw of the last `transmit` call, with the PSDU copied out.
#[derive(Debug, Clone, PartialEq)]
struct SentFrame {
    psdu: Vec<u8>,
    channel: u8,
    csma_ca: bool,
    max_csma_backoffs: u8,
    max_frame_retries: u8,
    start_at_us: Option<u64>,
    tx_power: Option<i8>,
}

/// A radio that records configuration and operations; tests play the medium by hand.
#[derive(Debug, Default)]
struct MockRadio {
    enabled: bool,
    channel: u8,
    receiving: bool,
    pan_id: u16,
    short_addr: u16,
    ext_addr: [u8; 8],
    promiscuous: bool,
    tx_power: i8,
    table: SrcMatchTable<4, 2>,
    sent: Vec<SentFrame>,
    scans: Vec<(u8, u16)>,
    frame_counter: Option<(u32, bool)>,
    key_id: Option<u8>,
    /// Refuse the next `transmit` with this error.
    refuse_tx: Option<RadioError>,
}

impl Radio for MockRadio {
    fn eui64(&self) -> [u8; 8] {
        [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
    }
    fn caps(&self) -> RadioCaps {
        RadioCaps(0x6F)
    }
    fn rx_sensitivity(&self) -> i8 {
        -100
    }
    fn rssi(&mut self) -> i8 {
        -95
    }
    fn set_enabled(&mut self, enabled: bool) -> core::result::Result<(), RadioError> {
        self.enabled = enabled;
        Ok(())
    }
    fn set_channel(&mut self, channel: u8) -> core::result::Result<(), RadioError> {
        self.channel = channel;
        Ok(())
    }
    fn set_tx_power(&mut self, dbm: i8) -> core::result::Result<i8, RadioError> {
        // Pretend the hardware only has even steps.
        self.tx_power = dbm & !1;
        Ok(self.tx_power)
    }
    fn set_cca_threshold(&mut self, dbm: i8) -> core::result::Result<i8, RadioError> {
        Ok(dbm)
    }
    fn set_pan_id(&mut self, pan_id: u16) {
        self.pan_id = pan_id;
    }
    fn set_short_address(&mut self, addr: u16) {
        self.short_addr = addr;
    }
    fn set_extended_address(&mut self, addr: [u8; 8]) {
        self.ext_addr = addr;
    }
    fn set_promiscuous(&mut self, on: bool) {
        self.promiscuous = on;
    }
    fn receive(&mut self, channel: u8) -> core::result::Result<(), RadioError> {
        if !self.enabled {
            return Err(RadioError::InvalidState);
        }
        self.channel = channel;
        self.receiving = true;
        Ok(())
    }
    fn sleep(&mut self) -> core::result::Result<(), RadioError> {
        self.receiving = false;
        Ok(())
    }
    fn transmit(&mut self, f: &TxFrame<'_>) -> core::result::Result<(), RadioError> {
        if let Some(e) = self.refuse_tx.take() {
            return Err(e);
        }
        self.sent.push(SentFrame {
            psdu: f.psdu.to_vec(),
            channel: f.channel,
            csma_ca: f.csma_ca,
            max_csma_backoffs: f.max_csma_backoffs,
            max_frame_retries: f.max_frame_retries,
            start_at_us: f.start_at_us,
            tx_power: f.tx_power,
        });
        Ok(())
    }
    fn energy_scan(&mut self, channel: u8, duration_ms: u16) -> core::result::Result<(), RadioError> {
        self.scans.push((channel, duration_ms));
        Ok(())
    }
    fn set_src_match_enabled(&mut self, enabled: bool) {
        self.table.set_enabled(enabled);
    }
    fn add_src_match_short(&mut self, addr: u16) -> core::result::Result<(), RadioError> {
        self.table.add_short(addr)
    }
    fn remove_src_match_short(&mut self, addr: u16) -> core::result::Result<(), RadioError> {
        self.table.remove_short(addr)
    }
    fn clear_src_match_short(&mut self) {
        self.table.clear_short();
    }
    fn add_src_match_extended(&mut self, addr: [u8; 8]) -> core::result::Result<(), RadioError> {
        self.table.add_extended(addr)
    }
    fn remove_src_match_extended(&mut self, addr: [u8; 8]) -> core::result::Result<(), RadioError> {
        self.table.remove_extended(addr)
    }
    fn clear_src_match_extended(&mut self) {
        self.table.clear_extended();
    }
    fn set_mac_keys(&mut self, key_id: u8, _: &[u8; 16], _: &[u8; 16], _: &[u8; 16]) {
        self.key_id = Some(key_id);
    }
    fn set_mac_frame_counter(&mut self, counter: u32, only_if_larger: bool) {
        self.frame_counter = Some((counter, only_if_larger));
    }
}

/// The capability list ot-rcp reports, which the CAPS vector encodes.
const OT_RCP_CAPS: &[Capability] = &[
    Capability::Counters,
    Capability::UnsolUpdateFilter,
    Capability::Ieee802154_2450MhzOqpsk,
    Capability::ConfigRadio,
    Capability::MacRaw,
    Capability::RcpApiVersion,
    Capability::RcpMinHostApiVersion,
];

fn h(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|t| u8::from_str_radix(t, 16).expect("hex")).collect()
}

struct Harness {
    rcp: Rcp<MockRadio>,
    now_us: u64,
}

impl Harness {
    /// A booted RCP whose boot notification has been checked and drained.
    fn new(caps: &'static [Capability]) -> Self {
        let config = Config { ncp_version: "RUST-RCP/0.1", caps, boot_reason: Status::ResetPowerOn };
        let mut h = Harness { rcp: Rcp::new(MockRadio::default(), config), now_us: 0 };
        assert_eq!(h.poll(), [self::h("80 06 00 70")]);
        h
    }

    /// Sends one host frame; returns the reply, if any.
    fn host(&mut self, req: &str) -> Option<Vec<u8>> {
        let mut out = [0u8; 1400];
        match self.rcp.handle_host_frame(self.now_us, &h(req), &mut out).unwrap() {
            ToHost::Send(n) => Some(out[..n].to_vec()),
            ToHost::Nothing => None,
        }
    }

    /// Sends a host frame and asserts the exact reply.
    fn exchange(&mut self, req: &str, resp: &str) {
        assert_eq!(self.host(req), Some(h(resp)), "reply to {req}");
        assert!(self.poll().is_empty());
    }

    fn radio_event(&mut self, ev: RadioEvent<'_>) -> Option<Vec<u8>> {
        let mut out = [0u8; 1400];
        match self.rcp.handle_radio_event(&ev, &mut out).unwrap() {
            ToHost::Send(n) => Some(out[..n].to_vec()),
            ToHost::Nothing => None,
        }
    }

    fn poll(&mut self) -> Vec<Vec<u8>> {
        let mut out = [0u8; 1400];
        let mut frames = Vec::new();
        while let Some(n) = self.rcp.poll_host(&mut out).unwrap() {
            frames.push(out[..n].to_vec());
        }
        frames
    }

    /// Radio up and receiving on channel 15, as after `RadioSpinel::Enable` + `Receive`.
    fn enable_raw_stream(&mut self) {
        self.exchange("86 03 20 01", "86 06 20 01");
        self.exchange("8a 03 21 0f", "8a 06 21 0f");
        self.exchange("8b 03 37 01", "8b 06 00 00");
    }
}

#[test]
fn otbr_agent_handshake() {
    let mut t = Harness::new(OT_RCP_CAPS);
    // 1. Reset (STACK, TID 0); the host waits for a reset reason.
    t.exchange("80 01 02", "80 06 00 70");
    // 2–4. Protocol version 4.3, NCP version, CAPS (with TID 1).
    t.exchange("81 02 01", "81 06 01 04 03");
    t.exchange("81 02 02", "81 06 02 52 55 53 54 2d 52 43 50 2f 30 2e 31 00");
    t.exchange("81 02 05", "81 06 05 05 0c 18 22 81 04 40 41");
    // 5. HWADDR, RCP API version 11, min host API version 4.
    t.exchange("82 02 08", "82 06 08 00 11 22 33 44 55 66 77");
    t.exchange("83 02 b0 01", "83 06 b0 01 0b");
    t.exchange("84 02 b1 01", "84 06 b1 01 04");
    // 6. RADIO_CAPS 0x6F covers kRequiredRadioCaps for Thread >= 1.2.
    t.exchange("85 02 8b 24", "85 06 8b 24 6f");
    // 7. Enable: PHY_ENABLED, PANID, SADDR, LADDR; Receive: channel, raw stream on.
    t.exchange("86 03 20 01", "86 06 20 01");
    t.exchange("87 03 36 34 12", "87 06 36 34 12");
    t.exchange("88 03 35 fe ff", "88 06 35 fe ff");
    t.exchange("89 03 34 01 02 03 04 05 06 07 08", "89 06 34 01 02 03 04 05 06 07 08");
    t.exchange("8a 03 21 0f", "8a 06 21 0f");
    t.exchange("8b 03 37 01", "8b 06 00 00");
    let radio = t.rcp.radio();
    assert!(radio.enabled && radio.receiving);
    assert_eq!((radio.channel, radio.pan_id, radio.short_addr), (15, 0x1234, 0xfffe));
    assert_eq!(radio.ext_addr, [1, 2, 3, 4, 5, 6, 7, 8]);
    // Source match: enable, insert a short address, add then remove an extended one, clear.
    t.exchange("8c 03 83 26 01", "8c 06 83 26 01");
    t.exchange("8d 04 84 26 01 04", "8d 07 84 26 01 04");
    assert_eq!(t.rcp.radio().table.shorts(), [0x0401]);
    t.exchange("8e 04 85 26 11 22 33 44 55 66 77 88", "8e 07 85 26 11 22 33 44 55 66 77 88");
    t.exchange("8e 05 85 26 11 22 33 44 55 66 77 88", "8e 08 85 26 11 22 33 44 55 66 77 88");
    t.exchange("8f 03 84 26", "8f 06 00 00");
    assert!(t.rcp.radio().table.shorts().is_empty());
    // Time sync: GET RCP_TIMESTAMP with the 8-byte dummy.
    t.now_us = 1_000_000;
    t.exchange("83 02 82 10 00 00 00 00 00 00 00 00", "83 06 82 10 40 42 0f 00 00 00 00 00");
    // Keys and frame counter (no getter: LAST_STATUS OK).
    t.exchange("84 03 81 10 04 03 02 01 01", "84 06 00 00");
    assert_eq!(t.rcp.radio().frame_counter, Some((0x0102_0304, true)));
    let mut key_req = std::string::String::from("85 03 80 10 01 02");
    for _ in 0..3 {
        key_req.push_str(" 10 00 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f");
    }
    t.exchange(&key_req, "85 06 00 00");
    assert_eq!(t.rcp.radio().key_id, Some(2));
    // NOOP.
    t.exchange("81 00", "81 06 00 00");
}

#[test]
fn default_caps_satisfy_the_host() {
    let mut t = Harness::new(DEFAULT_CAPS);
    let reply = t.host("81 02 05").unwrap();
    let repr = Repr::parse(&reply).unwrap();
    let mut r = Reader::new(repr.value());
    let mut caps = Vec::new();
    while !r.is_empty() {
        caps.push(Capability::from(r.packed().unwrap()));
    }
    assert!(caps.contains(&Capability::ConfigRadio) && caps.contains(&Capability::MacRaw));
    assert!(caps.contains(&Capability::RcpApiVersion));
}

#[test]
fn transmit_with_ack_no_ack_and_cca_failure() {
    let mut t = Harness::new(OT_RCP_CAPS);
    t.enable_raw_stream();
    let tx = "82 03 71 14 00 41 d8 2a 34 12 ff ff 08 07 06 05 04 03 02 01 01 02 03 00 00 \
              0f 04 03 01 00 00 00 00 00 00 00 00 00 00 00 0f 7f";
    // No immediate reply: the TX-done comes when the radio finishes.
    assert_eq!(t.host(tx), None);
    let sent = t.rcp.radio().sent.last().cloned().unwrap();
    assert_eq!(
        sent,
        SentFrame {
            psdu: h("41 d8 2a 34 12 ff ff 08 07 06 05 04 03 02 01 01 02 03 00 00"),
            channel: 15,
            csma_ca: true,
            max_csma_backoffs: 4,
            max_frame_retries: 3,
            start_at_us: None,
            tx_power: None,
        }
    );
    // Like ot-rcp (one TX buffer), a second request while one is outstanding is refused at
    // once, with its own TID.
    assert_eq!(t.host("83 03 71 02 00 00 00 0f"), Some(h("83 06 00 0c")));
    let ack_psdu = h("02 00 2a 00 00");
    let ack = ReceivedFrame {
        psdu: &ack_psdu,
        channel: 15,
        rssi: -50,
        lqi: 0xff,
        timestamp_us: 0x11_2233_4455,
        acked_with_frame_pending: false,
    };
    assert_eq!(
        t.radio_event(RadioEvent::TransmitDone(Ok(Some(ack)))),
        Some(h("82 06 00 00 00 00 05 00 02 00 2a 00 00 ce 80 00 00 0a 00 0f ff \
                55 44 33 22 11 00 00 00 01 00 00 05 00 00 00 00 00 00"))
    );
    // A stray completion with nothing outstanding is ignored.
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Err(TxError::NoAck))), None);

    // A frame without an ACK request: OK plus ot-rcp's empty ACK part.
    assert_eq!(t.host(tx), None);
    assert_eq!(
        t.radio_event(RadioEvent::TransmitDone(Ok(None))),
        Some(h(concat!(
            "82 06 00 ",                            // VALUE_IS LAST_STATUS
            "00 00 00 ",                            // OK, framePending 0, headerUpdated 0
            "00 00 00 80 00 00 ",                   // d(empty) rssi 0, noise -128, flags 0
            "0a 00 00 00 00 00 00 00 00 00 00 00 ", // t(chan 0, lqi 0, ts 0)
            "01 00 00 ",                            // t(rxError 0)
            "05 00 00 00 00 00 00",                 // t(ackKeyId 0, ackFrameCounter 0)
        )))
    );
    assert_eq!(t.host(tx), None);
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Err(TxError::NoAck))), Some(h("82 06 00 11 00 00")));
    assert_eq!(t.host(tx), None);
    assert_eq!(
        t.radio_event(RadioEvent::TransmitDone(Err(TxError::ChannelAccessFailure))),
        Some(h("82 06 00 12 00 00"))
    );
    assert_eq!(t.host(tx), None);
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Err(TxError::Abort))), Some(h("82 06 00 8b 80 01 00 00")));
}

#[test]
fn a_second_transmission_waits_for_the_first_and_a_third_is_refused() {
    let mut t = Harness::new(DEFAULT_CAPS);
    t.enable_raw_stream();
    let first = "82 03 71 04 00 01 88 00 00 0f";
    let second = "83 03 71 04 00 02 88 00 00 0f";
    assert_eq!(t.host(first), None);
    // Taken while the first is on air; nothing goes to the radio yet.
    assert_eq!(t.host(second), None);
    assert_eq!(t.rcp.radio().sent.len(), 1);
    assert_eq!(t.host("84 03 71 04 00 03 88 00 00 0f"), Some(h("84 06 00 0c")), "only one is held");
    // The first's TX-done (its own TID), and the second is on air before it is sent.
    let done = t.radio_event(RadioEvent::TransmitDone(Err(TxError::NoAck)));
    assert_eq!(done, Some(h("82 06 00 11 00 00")));
    assert!(t.poll().is_empty());
    let sent = &t.rcp.radio().sent;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].psdu, h("02 88 00 00"));
    assert_eq!(sent[1].channel, 15);
    assert_eq!(
        t.radio_event(RadioEvent::TransmitDone(Err(TxError::ChannelAccessFailure))),
        Some(h("83 06 00 12 00 00"))
    );
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Err(TxError::NoAck))), None, "nothing is outstanding");

    // The radio refuses the held one: the first's TX-done, then the second's refusal.
    assert_eq!(t.host(first), None);
    assert_eq!(t.host(second), None);
    t.rcp.radio_mut().refuse_tx = Some(RadioError::InvalidState);
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Err(TxError::NoAck))), Some(h("82 06 00 11 00 00")));
    assert_eq!(t.poll(), [h("83 06 00 04")]);
    assert_eq!(t.rcp.radio().sent.len(), 3);
    // And the machine takes the next pair as usual.
    assert_eq!(t.host(first), None);
    assert_eq!(t.host(second), None);
    assert_eq!(t.rcp.radio().sent.len(), 4);

    // A reset forgets the held one.
    t.exchange("80 01", "80 06 00 70");
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Err(TxError::Abort))), None);
    assert!(t.poll().is_empty());
    assert_eq!(t.rcp.radio().sent.len(), 4);
}

#[test]
fn ack_with_frame_pending_sets_the_flag() {
    let mut t = Harness::new(DEFAULT_CAPS);
    t.enable_raw_stream();
    assert_eq!(t.host("81 03 71 04 00 63 88 00 00 0f"), None);
    let ack_psdu = h("12 00 2a 00 00"); // FCF 0x0012: ACK with Frame Pending
    let ack = ReceivedFrame {
        psdu: &ack_psdu,
        channel: 15,
        rssi: -40,
        lqi: 200,
        timestamp_us: 5,
        acked_with_frame_pending: false,
    };
    let reply = t.radio_event(RadioEvent::TransmitDone(Ok(Some(ack)))).unwrap();
    let repr = Repr::parse(&reply).unwrap();
    let done = TxDone::parse(repr.value()).unwrap();
    assert!(done.frame_pending);
    assert_eq!(done.ack.map(|a| a.psdu), Some(&ack_psdu[..]));
}

#[test]
fn transmit_refused_when_stream_off_or_malformed() {
    let mut t = Harness::new(DEFAULT_CAPS);
    // Raw stream not enabled: INVALID_STATE with the request's TID.
    assert_eq!(t.host("82 03 71 02 00 00 00 0f"), Some(h("82 06 00 04")));
    t.enable_raw_stream();
    // Channel 27 is not O-QPSK 2.4 GHz.
    assert_eq!(t.host("82 03 71 02 00 00 00 1b"), Some(h("82 06 00 03")));
    // PSDU longer than the value, or than 127 bytes: PARSE_ERROR.
    assert_eq!(t.host("82 03 71 09 00 00 00 0f"), Some(h("82 06 00 09")));
    let mut long = std::string::String::from("82 03 71 80 00");
    long.push_str(&" 00".repeat(128));
    long.push_str(" 0f");
    assert_eq!(t.host(&long), Some(h("82 06 00 09")));
    // TID 0 transmissions are sent but, as on ot-rcp, get no TX-done.
    assert_eq!(t.host("80 03 71 02 00 00 00 0f"), None);
    assert_eq!(t.rcp.radio().sent.len(), 1);
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Ok(None))), None);
}

#[test]
fn timed_transmit_and_power() {
    let mut t = Harness::new(DEFAULT_CAPS);
    t.enable_raw_stream();
    t.now_us = 0x1_0000_1000;
    // txDelay 500 µs after base time 0x0000_0F00 (low 32 bits of a recent radio time);
    // txPower 8 dBm.
    let req = "81 03 71 02 00 00 00 0f 04 03 01 00 00 00 f4 01 00 00 00 0f 00 00 0f 08";
    assert_eq!(t.host(req), None);
    let sent = t.rcp.radio().sent.last().cloned().unwrap();
    assert_eq!(sent.start_at_us, Some(0x1_0000_0F00 + 500));
    assert_eq!(sent.tx_power, Some(8));
}

#[test]
fn tx_time_recovers_high_bits() {
    assert_eq!(tx_time(1_000_000, 999_000, 2_000), 1_001_000);
    // Base just before a 32-bit wrap of the radio clock.
    assert_eq!(tx_time(0x2_0000_0010, 0xFFFF_FFF0, 0x40), 0x2_0000_0030);
    // Base slightly ahead of now (host clock estimate ahead of ours).
    assert_eq!(tx_time(0x5_0000_0000, 0x0000_0100, 0), 0x5_0000_0100);
}

#[test]
fn received_frames_are_forwarded_with_metadata() {
    let mut t = Harness::new(DEFAULT_CAPS);
    let psdu = h("41 d8 2b 34 12 fe ff 08 07 06 05 04 03 02 01 aa bb 12 34");
    let frame = ReceivedFrame {
        psdu: &psdu,
        channel: 15,
        rssi: -60,
        lqi: 0xe0,
        timestamp_us: 123_456_789,
        acked_with_frame_pending: true,
    };
    // Raw stream off: the host is not listening.
    assert_eq!(t.radio_event(RadioEvent::Received(frame)), None);
    t.enable_raw_stream();
    assert_eq!(
        t.radio_event(RadioEvent::Received(frame)),
        Some(h("80 06 71 13 00 41 d8 2b 34 12 fe ff 08 07 06 05 04 03 02 01 aa bb 12 34 \
                c4 80 10 00 0a 00 0f e0 15 cd 5b 07 00 00 00 00 01 00 00 05 00 00 00 00 00 00"))
    );
}

#[test]
fn energy_scan_reports_result_then_idle() {
    let mut t = Harness::new(DEFAULT_CAPS);
    t.enable_raw_stream();
    t.exchange("81 03 31 0b", "81 06 31 0b");
    t.exchange("82 03 32 64 00", "82 06 32 64 00");
    t.exchange("83 03 30 02", "83 06 30 02");
    assert_eq!(t.rcp.radio().scans, [(11, 100)]);
    assert_eq!(t.radio_event(RadioEvent::EnergyScanDone { channel: 11, max_rssi: -70 }), Some(h("80 06 39 0b ba")));
    assert_eq!(t.poll(), [h("80 06 30 00")]);
    assert!(t.rcp.radio().receiving);
    // A late second result is ignored.
    assert_eq!(t.radio_event(RadioEvent::EnergyScanDone { channel: 11, max_rssi: -70 }), None);
}

#[test]
fn errors_as_ot_rcp_reports_them() {
    let mut t = Harness::new(DEFAULT_CAPS);
    // Unknown and getter-less properties: PROP_NOT_FOUND (13).
    t.exchange("81 02 80 7f", "81 06 00 0d");
    t.exchange("82 03 80 7f 01", "82 06 00 0d");
    t.exchange("83 02 b2 01", "83 06 00 0d"); // RCP_LOG_CRASH_DUMP: not claimed
    t.exchange("84 04 21 0f", "84 06 00 0d"); // INSERT on PHY_CHAN
                                              // IID 1 on a single-PAN RCP: INVALID_INTERFACE (6), same header.
    t.exchange("91 02 01", "91 06 00 06");
    // Malformed values: PARSE_ERROR (9).
    t.exchange("85 03 20 02", "85 06 00 09"); // bool 2
    t.exchange("86 03 36 34", "86 06 00 09"); // PANID one byte short
    t.exchange("87 04 84 26 01", "87 06 00 09"); // INSERT short address one byte short
    t.exchange("88 02", "88 06 00 09"); // GET without a property
                                        // Out of range: INVALID_ARGUMENT (3).
    t.exchange("89 03 21 0a", "89 06 00 03");
    // Removing an absent entry: ITEM_NOT_FOUND (20).
    t.exchange("8a 05 84 26 01 04", "8a 06 00 14");
    // Full table: NOMEM (11).
    for (i, addr) in ["01 00", "02 00", "03 00", "04 00"].iter().enumerate() {
        let tid = 0x81 + i;
        t.exchange(&std::format!("{tid:02x} 04 84 26 {addr}"), &std::format!("{tid:02x} 07 84 26 {addr}"));
    }
    t.exchange("8b 04 84 26 05 00", "8b 06 00 0b");
    // Host-side commands sent to the RCP: INVALID_COMMAND (5).
    t.exchange("8c 06 00 00", "8c 06 00 05");
    t.exchange("8d 15 01", "8d 06 00 05");
    // Not Spinel at all, or empty: silently dropped.
    assert_eq!(t.host("41 02 01"), None);
    assert_eq!(t.host(""), None);
    // Bootloader reset is not supported.
    t.exchange("80 01 03", "80 06 00 02");
}

#[test]
fn reset_clears_configuration_and_outstanding_tx() {
    let mut t = Harness::new(DEFAULT_CAPS);
    t.enable_raw_stream();
    t.exchange("8c 03 83 26 01", "8c 06 83 26 01");
    t.exchange("8d 04 84 26 01 04", "8d 07 84 26 01 04");
    assert_eq!(t.host("82 03 71 02 00 00 00 0f"), None);
    t.exchange("80 01", "80 06 00 70"); // no payload = stack reset
    let radio = t.rcp.radio();
    assert!(!radio.receiving && !radio.enabled);
    assert!(radio.table.shorts().is_empty() && !radio.table.is_enabled());
    // The aborted transmission's completion is not reported after the reset.
    assert_eq!(t.radio_event(RadioEvent::TransmitDone(Err(TxError::Abort))), None);
    t.exchange("81 02 37", "81 06 37 00");
    t.exchange("82 02 21", "82 06 21 0b");
}

#[test]
fn getters_round_trip_through_set() {
    let mut t = Harness::new(DEFAULT_CAPS);
    t.exchange("81 03 25 07", "81 06 25 06"); // TX power snapped to the radio's step
    t.exchange("82 02 25", "82 06 25 06");
    t.exchange("83 03 24 b5", "83 06 24 b5"); // CCA threshold -75
    t.exchange("84 03 38 02", "84 06 38 02"); // promiscuous FULL
    assert!(t.rcp.radio().promiscuous);
    t.exchange("85 02 26", "85 06 26 a1"); // PHY_RSSI -95
    t.exchange("86 02 27", "86 06 27 9c"); // RX sensitivity -100
    t.exchange("87 02 03", "87 06 03 03"); // INTERFACE_TYPE THREAD
    let chans = t.host("88 02 22").unwrap();
    assert_eq!(&chans[3..], (11..=26).collect::<Vec<u8>>());
}

/// xorshift32 for the robustness test.
fn rng(s: &mut u32) -> u32 {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    *s
}

#[test]
fn random_host_frames_and_events_never_panic() {
    let mut t = Harness::new(DEFAULT_CAPS);
    t.enable_raw_stream();
    let mut s = 0x0bad_5eed;
    let props = [0x00, 0x01, 0x05, 0x20, 0x21, 0x30, 0x31, 0x37, 0x71, 0xb0];
    let mut out = [0u8; 64];
    for i in 0..20_000u32 {
        // Mostly well-formed headers and commands, random values.
        let mut f = std::vec![0x80 | (rng(&mut s) as u8 & 0x1f), (rng(&mut s) % 7) as u8];
        f.push(props[(rng(&mut s) as usize) % props.len()]);
        f.extend((0..rng(&mut s) % 12).map(|_| rng(&mut s) as u8));
        // A short output buffer must give an error, never a panic or a bad write.
        let _ = t.rcp.handle_host_frame(u64::from(i), &f, &mut out);
        if rng(&mut s).is_multiple_of(8) {
            let ev = match rng(&mut s) % 3 {
                0 => RadioEvent::TransmitDone(Err(TxError::NoAck)),
                1 => RadioEvent::EnergyScanDone { channel: 11, max_rssi: -1 },
                _ => RadioEvent::TransmitDone(Ok(None)),
            };
            let _ = t.rcp.handle_radio_event(&ev, &mut out);
            while let Ok(Some(_)) = t.rcp.poll_host(&mut out) {}
        }
    }
}
