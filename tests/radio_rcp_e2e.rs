//! In-memory end to end: ferry's Spinel client against the real RCP state machine
//! (`ferry_rcp_core::rcp::Rcp`), HDLC-encoded both ways, on a virtual clock. The radio under
//! the RCP is a small recording stand-in (the simulator's medium lives elsewhere).

use std::time::{Duration, Instant};

use ferry::radio::client::{
    Client, Event, LinkState, Op, Settings, SrcAddr, TxError, TxId, TxOptions, MAX_TRANSMIT_LEN,
};
use ferry_rcp_core::hdlc::SpinelDecoder;
use ferry_rcp_core::radio::{RadioEvent, ReceivedFrame};
use ferry_rcp_core::rcp::{Config, Rcp, ToHost};
use ferry_rcp_core::spinel::{Status, FRAME_MAX_LEN};

mod radio_support;
use radio_support::{finish_transmit, hdlc_encode, Medium, TestRadio};

/// Client and RCP joined by HDLC byte streams, with a virtual clock.
struct Link {
    client: Client,
    rcp: Rcp<TestRadio>,
    now: Instant,
    start: Instant,
    rcp_decoder: Box<SpinelDecoder>,
    /// Bytes on their way to the client (tests may add garbage).
    to_client: Vec<u8>,
    events: Vec<Event>,
}

impl Link {
    fn new(settings: Settings) -> Link {
        let now = Instant::now();
        Link {
            client: Client::new(settings, now),
            rcp: Rcp::new(TestRadio::new(), Config::default()),
            now,
            start: now,
            rcp_decoder: Box::new(SpinelDecoder::new()),
            to_client: Vec::new(),
            events: Vec::new(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.now.duration_since(self.start).as_micros()).expect("fits")
    }

    fn rcp_out(&mut self, reply: ToHost, out: &[u8]) {
        if let ToHost::Send(n) = reply {
            self.to_client.extend(hdlc_encode(&out[..n]));
        }
    }

    /// Moves what the client wrote to the RCP; returns whether there was anything.
    fn client_to_rcp(&mut self) -> bool {
        let mut wire = vec![0u8; MAX_TRANSMIT_LEN];
        let mut out = vec![0u8; FRAME_MAX_LEN];
        let mut moved = false;
        while let Some(n) = self.client.poll_transmit(self.now, &mut wire) {
            moved = true;
            let mut rest = &wire[..n];
            while !rest.is_empty() {
                let (used, frame) = self.rcp_decoder.feed(rest);
                rest = &rest[used..];
                if let Some(Ok(frame)) = frame {
                    let frame = frame.to_vec();
                    let reply = self.rcp.handle_host_frame(self.now_us(), &frame, &mut out).expect("buffer");
                    self.rcp_out(reply, &out);
                }
            }
        }
        moved
    }

    /// Moves bytes until both sides are quiet (bounded), 1 ms of virtual time per round.
    fn drive(&mut self) {
        let mut out = vec![0u8; FRAME_MAX_LEN];
        for _ in 0..200 {
            let mut moved = self.client_to_rcp();
            // The radio finishes a transmission.
            if let Some(done) = finish_transmit(&mut self.rcp) {
                moved = true;
                self.to_client.extend(done);
            }
            while let Some(n) = self.rcp.poll_host(&mut out).expect("buffer") {
                self.to_client.extend(hdlc_encode(&out[..n]));
            }
            // RCP -> client, in two pieces to exercise partial frames.
            if !self.to_client.is_empty() {
                moved = true;
                let bytes = std::mem::take(&mut self.to_client);
                let (a, b) = bytes.split_at(bytes.len() / 2);
                self.client.handle_input(self.now, a);
                self.client.handle_input(self.now, b);
            }
            self.events.extend(std::iter::from_fn(|| self.client.poll_event()));
            if !moved {
                return;
            }
            self.now += Duration::from_millis(1);
            self.client.handle_timeout(self.now);
        }
        panic!("the link never went quiet");
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn settings() -> Settings {
    Settings { channel: 15, pan_id: 0x1234, short_address: 0x0000, ..Settings::default() }
}

/// Data frame, ACK requested, PAN ID compression, short dst and src: `61 88 seq pan dst src`.
fn data_frame(seq: u8, dst: u16) -> Vec<u8> {
    let mut f = vec![0x61, 0x88, seq, 0x34, 0x12];
    f.extend(dst.to_le_bytes());
    f.extend([0x00, 0x00, b'h', b'i', 0x00, 0x00]);
    f
}

#[test]
fn handshake_against_the_real_rcp_configures_the_radio() {
    let mut link = Link::new(settings());
    link.drive();
    assert_eq!(link.client.state(), &LinkState::Ready);
    assert_eq!(link.take_events(), [Event::State(LinkState::Ready)]);
    let info = link.client.info().expect("info");
    assert!(info.ncp_version.starts_with("FERRY-RCP/"), "{}", info.ncp_version);
    assert_eq!(info.hwaddr, [0xf4, 0xce, 0x36, 0, 0, 0, 0, 1]);
    assert_eq!(info.rcp_api_version, Some(11));
    let radio = link.rcp.radio();
    assert!(radio.enabled && radio.receiving);
    assert_eq!((radio.channel, radio.pan_id, radio.short_addr), (15, 0x1234, 0x0000));
    assert_eq!(radio.ext_addr, [0xf4, 0xce, 0x36, 0, 0, 0, 0, 1], "HWADDR by default");
    assert!(radio.table.is_enabled());
    assert!(link.client.poll_timeout().is_some_and(|t| t > link.now), "only the keepalive");
}

#[test]
fn transmissions_get_ack_and_frame_pending_from_src_match() {
    let mut link = Link::new(settings());
    link.drive();
    link.take_events();
    let now = link.now;
    link.client.submit(now, Op::SrcMatchInsert(SrcAddr::Short(0x0007))).unwrap();
    link.drive();
    assert!(matches!(link.take_events()[..], [Event::OpDone { result: Ok(()), .. }]));
    assert_eq!(link.rcp.radio().table.shorts(), [0x0007]);

    let a = link.client.transmit(now, &data_frame(1, 0x0007), TxOptions::default()).unwrap();
    let b = link.client.transmit(now, &data_frame(2, 0x0009), TxOptions::default()).unwrap();
    link.drive();
    let ev = link.take_events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    let Event::TxDone { id, result: Ok(ack) } = &ev[0] else { panic!("{ev:?}") };
    assert_eq!(*id, a);
    assert!(ack.frame_pending, "0x0007 is in the table");
    let ack_frame = ack.ack.as_ref().expect("ACK");
    assert_eq!((ack_frame.psdu[2], ack_frame.rssi, ack_frame.lqi), (1, -40, 200));
    let Event::TxDone { id, result: Ok(ack) } = &ev[1] else { panic!("{ev:?}") };
    assert_eq!(*id, b);
    assert!(!ack.frame_pending);
    let sent = &link.rcp.radio().sent;
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].1, sent[0].2, sent[0].3), (15, 3, true), "channel, retries, CSMA from TxOptions");

    link.rcp.radio_mut().medium = Medium::NoAck;
    let c = link.client.transmit(link.now, &data_frame(3, 1), TxOptions::default()).unwrap();
    link.drive();
    assert_eq!(link.take_events(), [Event::TxDone { id: c, result: Err(TxError::NoAck) }]);
    link.rcp.radio_mut().medium = Medium::Busy;
    let d = link.client.transmit(link.now, &data_frame(4, 1), TxOptions::default()).unwrap();
    link.drive();
    assert_eq!(link.take_events(), [Event::TxDone { id: d, result: Err(TxError::ChannelAccessFailure) }]);
}

#[test]
fn the_next_frame_waits_in_the_rcp_while_one_is_on_air() {
    let mut link = Link::new(settings());
    link.drive();
    link.take_events();
    assert_eq!(link.client.info().map(|i| i.tx_window()), Some(2), "ferry's RCP holds one more");
    let a = link.client.transmit(link.now, &data_frame(1, 0x0007), TxOptions::default()).unwrap();
    let b = link.client.transmit(link.now, &data_frame(2, 0x0009), TxOptions::default()).unwrap();
    // Both cross the line before the first is done; the radio has the first.
    link.client_to_rcp();
    assert_eq!(link.rcp.radio().sent.len(), 1);
    // The RCP starts the second the moment the first is done, without asking the host.
    let done = finish_transmit(&mut link.rcp).expect("TX-done");
    assert_eq!(link.rcp.radio().sent.len(), 2);
    assert_eq!(link.rcp.radio().sent[1].0[2], 2, "sequence number of the second frame");
    link.to_client.extend(done);
    link.drive();
    let ids: Vec<TxId> = link
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::TxDone { id, result: Ok(_) } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [a, b], "in order, both acknowledged");

    // ot-rcp's capabilities (no FerryTxQueue): one at a time, the host waits for each.
    let mut ot = Link::new(settings());
    let caps = &ferry_rcp_core::rcp::DEFAULT_CAPS[..ferry_rcp_core::rcp::DEFAULT_CAPS.len() - 1];
    assert!(!caps.contains(&ferry_rcp_core::spinel::Capability::FerryTxQueue));
    ot.rcp = Rcp::new(TestRadio::new(), Config { caps, ..Config::default() });
    ot.drive();
    ot.take_events();
    assert_eq!(ot.client.info().map(|i| i.tx_window()), Some(1));
    ot.client.transmit(ot.now, &data_frame(1, 0x0007), TxOptions::default()).unwrap();
    ot.client.transmit(ot.now, &data_frame(2, 0x0009), TxOptions::default()).unwrap();
    ot.client_to_rcp();
    let done = finish_transmit(&mut ot.rcp).expect("TX-done");
    assert_eq!(ot.rcp.radio().sent.len(), 1, "the second is still with the host");
    ot.to_client.extend(done);
    ot.drive();
    assert_eq!(ot.rcp.radio().sent.len(), 2);
    assert_eq!(ot.take_events().len(), 2);
}

#[test]
fn received_frames_reach_the_client_with_metadata() {
    let mut link = Link::new(settings());
    link.drive();
    link.take_events();
    let psdu = data_frame(9, 0x0000);
    let mut out = vec![0u8; FRAME_MAX_LEN];
    let ev = RadioEvent::Received(ReceivedFrame {
        psdu: &psdu,
        channel: 15,
        rssi: -71,
        lqi: 180,
        timestamp_us: 9_876_543_210,
        acked_with_frame_pending: true,
    });
    let reply = link.rcp.handle_radio_event(&ev, &mut out).unwrap();
    link.rcp_out(reply, &out);
    // Garbage on the line in front of it is skipped.
    let mut bytes = vec![0x7e, 0xde, 0xad, 0x7e, 0x11];
    bytes.append(&mut link.to_client);
    link.to_client = bytes;
    link.drive();
    let ev = link.take_events();
    let [Event::Received(f)] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(f.psdu, psdu);
    assert_eq!((f.channel, f.rssi, f.lqi, f.timestamp_us), (15, -71, 180, 9_876_543_210));
    assert!(f.acked_frame_pending);
    assert!(link.client.stats().rx_garbage >= 1);
}

#[test]
fn an_rcp_reboot_is_reinitialised_with_tables_restored() {
    let mut link = Link::new(settings());
    link.drive();
    let now = link.now;
    for op in [
        Op::SetChannel(20),
        Op::SetPanId(0xbeef),
        Op::SrcMatchInsert(SrcAddr::Short(0x0102)),
        Op::SrcMatchInsert(SrcAddr::Extended([1, 2, 3, 4, 5, 6, 7, 8])),
    ] {
        link.client.submit(now, op).unwrap();
    }
    link.drive();
    link.take_events();
    // The chip reboots (watchdog): a fresh RCP with a fresh radio announces its reset reason.
    link.rcp = Rcp::new(TestRadio::new(), Config { boot_reason: Status::ResetWatchdog, ..Config::default() });
    link.drive();
    let ev = link.take_events();
    assert!(ev.contains(&Event::RcpReset { reason: Status::ResetWatchdog }), "{ev:?}");
    assert_eq!(ev.last(), Some(&Event::State(LinkState::Ready)));
    assert_eq!(link.client.stats().rcp_resets, 1);
    let radio = link.rcp.radio();
    assert!(radio.enabled && radio.receiving);
    assert_eq!((radio.channel, radio.pan_id), (20, 0xbeef));
    assert_eq!(radio.table.shorts(), [0x0102]);
    assert_eq!(radio.table.extendeds(), [[1, 2, 3, 4, 5, 6, 7, 8]]);
    // And it transmits.
    let id = link.client.transmit(link.now, &data_frame(5, 0x0102), TxOptions::default()).unwrap();
    link.drive();
    let ev = link.take_events();
    assert!(
        matches!(&ev[..], [Event::TxDone { id: got, result: Ok(ack) }] if *got == id && ack.frame_pending),
        "{ev:?}"
    );
}

#[test]
fn a_transmission_cut_by_a_reboot_is_aborted() {
    let mut link = Link::new(settings());
    link.drive();
    link.take_events();
    // Start a TX but let the RCP reboot before the radio finishes it.
    let id = link.client.transmit(link.now, &data_frame(1, 2), TxOptions::default()).unwrap();
    let mut wire = vec![0u8; MAX_TRANSMIT_LEN];
    let n = link.client.poll_transmit(link.now, &mut wire).expect("TX request");
    assert!(n > 0);
    link.rcp = Rcp::new(TestRadio::new(), Config { boot_reason: Status::ResetCrash, ..Config::default() });
    link.drive();
    let ev = link.take_events();
    assert!(ev.contains(&Event::TxDone { id, result: Err(TxError::Aborted) }), "{ev:?}");
    assert_eq!(link.client.state(), &LinkState::Ready);
}
