//! The real RCP state machine (`ferry_rcp_core::rcp::Rcp`) over `SimRadio` on the simulated
//! medium: a host speaks Spinel, frames cross the virtual air, peers ACK them.

use ferry::sim::frame::{Address, FrameType, Header, Psdu, CMD_DATA_REQUEST};
use ferry::sim::medium::{Delivery, Medium, NodeConfig, NodeEvent, NodeId, TxRequest};
use ferry::sim::{Link, RcpNode, Timing};
use ferry_rcp_core::rcp::Config;
use ferry_rcp_core::spinel::data::Writer;
use ferry_rcp_core::spinel::frame::emit_property;
use ferry_rcp_core::spinel::stream_raw::{self, RxFrame, TxDone, FLAG_ACKED_FP};
use ferry_rcp_core::spinel::{Command, Header as SpinelHeader, Property, Repr, Status};

const PAN: u16 = 0xface;
const CHANNEL: u8 = 15;
const GW_SHORT: u16 = 0x0001;
const GW_EUI64: [u8; 8] = [0xf0, 0x0d, 0, 0, 0, 0, 0, 1];

struct Bed {
    m: Medium,
    gw: RcpNode,
    peers: Vec<NodeId>,
    jammers: Vec<NodeId>,
    /// Medium events of nodes other than the gateway.
    peer_events: Vec<Delivery>,
    tid: u8,
}

impl Bed {
    /// A gateway RCP and `n` peers (short addresses 2, 3, ...) all in range of each other, the
    /// gateway configured by its host as otbr-agent would: enabled, channel, PAN, address,
    /// raw stream on.
    fn new(n: usize) -> Bed {
        let mut m = Medium::new(0xfe77, Timing::STANDARD);
        let gw_node = m.add_node(NodeConfig::default()).unwrap();
        let gw = RcpNode::new(&m, gw_node, GW_EUI64, Config::default()).unwrap();
        let mut bed = Bed { m, gw, peers: Vec::new(), jammers: Vec::new(), peer_events: Vec::new(), tid: 0 };
        for i in 0..n {
            let p =
                bed.m.add_node(NodeConfig { pan_id: PAN, short_addr: 2 + i as u16, ..NodeConfig::default() }).unwrap();
            bed.m.receive(p, CHANNEL).unwrap();
            for other in std::iter::once(gw_node).chain(bed.peers.iter().copied()) {
                bed.m.set_link_both(p, other, Some(Link::perfect())).unwrap();
            }
            bed.peers.push(p);
        }
        let boot = bed.gw.take_to_host();
        assert_eq!(boot, [vec![0x80, 0x06, 0x00, 0x70]], "boot LAST_STATUS RESET_POWER_ON");
        bed.configure();
        bed
    }

    fn configure(&mut self) {
        let bed = self;
        bed.set(Property::PhyEnabled, |w| w.bool(true));
        bed.set(Property::PhyChan, |w| w.u8(CHANNEL));
        bed.set(Property::Mac15_4Panid, |w| w.u16(PAN));
        bed.set(Property::Mac15_4Saddr, |w| w.u16(GW_SHORT));
        bed.set(Property::Mac15_4Laddr, |w| w.eui64(&GW_EUI64));
        bed.set(Property::MacRawStreamEnabled, |w| w.bool(true));
    }

    fn next_tid(&mut self) -> u8 {
        self.tid = self.tid % 15 + 1;
        self.tid
    }

    /// Sends a property command and returns the immediate reply.
    fn command(
        &mut self,
        cmd: Command,
        prop: Property,
        value: impl FnOnce(&mut Writer<'_>) -> ferry_rcp_core::spinel::Result<()>,
    ) -> (u8, Vec<Vec<u8>>) {
        let tid = self.next_tid();
        let mut buf = [0u8; 1400];
        let n = emit_property(&mut buf, SpinelHeader::new(0, tid).unwrap(), cmd, prop, value).unwrap();
        self.gw.host_frame(&mut self.m, &buf[..n]);
        (tid, self.gw.take_to_host())
    }

    /// A SET that must be answered at once with VALUE_IS of the property or LAST_STATUS OK.
    fn set(&mut self, prop: Property, value: impl FnOnce(&mut Writer<'_>) -> ferry_rcp_core::spinel::Result<()>) {
        let (_, replies) = self.command(Command::PropValueSet, prop, value);
        assert_eq!(replies.len(), 1, "{prop:?}");
        let r = Repr::parse(&replies[0]).unwrap();
        let ok = r.prop() == Some(prop)
            || (r.prop() == Some(Property::LastStatus) && r.value() == [u8::try_from(u32::from(Status::Ok)).unwrap()]);
        assert!(ok && r.command == Command::PropValueIs, "SET {prop:?} answered {replies:?}");
    }

    /// STREAM_RAW SET; returns the TID its TX-done will carry.
    fn host_transmit(&mut self, req: stream_raw::TxRequest<'_>) -> u8 {
        let (tid, replies) = self.command(Command::PropValueSet, Property::StreamRaw, |w| req.emit(w));
        assert!(replies.is_empty(), "TX-done comes later, got {replies:?}");
        tid
    }

    /// Runs the next batch of events if it is due by `limit_us`; false when none is.
    fn step(&mut self, limit_us: u64) -> bool {
        let Some(t) = self.m.next_event_time().filter(|&t| t <= limit_us) else { return false };
        for d in self.m.advance(t) {
            self.gw.on_delivery(&mut self.m, &d);
            if d.node == self.gw.node() {
                continue;
            }
            if let (true, NodeEvent::TxDone(_)) = (self.jammers.contains(&d.node), d.event) {
                jam(&mut self.m, d.node, d.time_us);
                continue;
            }
            self.peer_events.push(d);
        }
        true
    }

    /// Runs every event up to `t`, then sets the clock to `t`.
    fn run_for(&mut self, t: u64) {
        while self.step(t) {}
        self.m.advance(t);
    }

    /// Runs the medium until `f` accepts a frame the host reads, or `limit_us` passes.
    fn run_until<T>(&mut self, limit_us: u64, mut f: impl FnMut(&Repr<'_>) -> Option<T>) -> T {
        loop {
            for frame in self.gw.take_to_host() {
                let repr = Repr::parse(&frame).expect("the RCP sends valid Spinel");
                if let Some(t) = f(&repr) {
                    return t;
                }
            }
            assert!(self.step(limit_us), "no host answer before {limit_us} µs");
        }
    }

    /// Waits for the TX-done of request `tid`.
    fn tx_done(&mut self, tid: u8) -> (Status, bool, Option<Vec<u8>>) {
        let limit = self.m.now() + 1_000_000;
        self.run_until(limit, |r| {
            (r.header.tid() == tid && r.prop() == Some(Property::LastStatus)).then(|| {
                let done = TxDone::parse(r.value()).expect("TX-done layout");
                (done.status, done.frame_pending, done.ack.map(|a| a.psdu.to_vec()))
            })
        })
    }

    /// Runs until peer `node` reports a TX-done.
    fn peer_tx_done(&mut self, node: NodeId) -> NodeEvent {
        let limit = self.m.now() + 1_000_000;
        loop {
            if let Some(i) =
                self.peer_events.iter().position(|d| d.node == node && matches!(d.event, NodeEvent::TxDone(_)))
            {
                return self.peer_events.remove(i).event;
            }
            assert!(self.step(limit), "no peer TX-done before {limit} µs");
        }
    }
}

fn data_frame(seq: u8, dst: u16, src: u16) -> Psdu {
    Header::data(seq, PAN, Address::Short(dst), Address::Short(src), true).emit_frame(b"ferry over the air").unwrap()
}

fn jam(m: &mut Medium, j: NodeId, at: u64) {
    let frame =
        Header::data(0, PAN, Address::Short(0xffff), Address::Short(0x0bad), false).emit_frame(&[0; 100]).unwrap();
    let mut req = TxRequest::new(frame, CHANNEL);
    req.csma_ca = false;
    req.start_at_us = Some(at);
    m.transmit(j, req).unwrap();
}

#[test]
fn host_transmit_is_acked_by_the_peer() {
    let mut bed = Bed::new(1);
    let frame = data_frame(0x33, 2, GW_SHORT);
    let mut req = stream_raw::TxRequest::new(frame.as_slice(), CHANNEL);
    req.max_frame_retries = 3;
    let tid = bed.host_transmit(req);
    let (status, frame_pending, ack) = bed.tx_done(tid);
    assert_eq!((status, frame_pending), (Status::Ok, false));
    let ack = ack.expect("ACK in the TX-done");
    assert_eq!(ack[..3], [0x02, 0x00, 0x33], "Imm-ACK for seq 0x33");
    assert!(Psdu::new(&ack).unwrap().fcs_ok());
    // The peer received exactly the host's frame, with a valid FCS computed by the radio.
    let rx = bed
        .peer_events
        .iter()
        .find_map(|d| match d.event {
            NodeEvent::Received(info) if d.node == bed.peers[0] => Some(info),
            _ => None,
        })
        .expect("peer received the frame");
    assert_eq!(rx.psdu, frame);
    assert!(rx.psdu.fcs_ok());
    let gw = bed.m.stats(bed.gw.node()).unwrap();
    assert_eq!((gw.frames_sent, gw.tx_ok, gw.retries), (1, 1, 0));
    assert_eq!(bed.gw.errors(), 0);
}

#[test]
fn frames_from_peers_reach_the_host() {
    let mut bed = Bed::new(1);
    let peer = bed.peers[0];
    bed.m.transmit(peer, TxRequest::new(data_frame(9, GW_SHORT, 2), CHANNEL)).unwrap();
    let limit = bed.m.now() + 100_000;
    let rx = bed.run_until(limit, |r| {
        (r.prop() == Some(Property::StreamRaw)).then(|| {
            let f = RxFrame::parse(r.value()).unwrap();
            (f.psdu.to_vec(), f.rssi, f.channel)
        })
    });
    assert_eq!(rx, (data_frame(9, GW_SHORT, 2).as_slice().to_vec(), -50, CHANNEL));
    // The gateway's radio ACKed it without the host.
    assert!(matches!(bed.peer_tx_done(peer), NodeEvent::TxDone(Ok(Some(_)))));
}

#[test]
fn data_request_from_source_match_entry_gets_frame_pending() {
    let mut bed = Bed::new(2);
    let (sleepy, other) = (bed.peers[0], bed.peers[1]);
    // The host holds frames for 0x0002 (INSERT answers VALUE_INSERTED), not for 0x0003.
    let (_, replies) = bed.command(Command::PropValueInsert, Property::MacSrcMatchShortAddresses, |w| w.u16(2));
    assert_eq!(Repr::parse(&replies[0]).unwrap().command, Command::PropValueInserted);
    bed.set(Property::MacSrcMatchEnabled, |w| w.bool(true));

    let data_request = |seq: u8, src: u16| {
        let mut h = Header::data(seq, PAN, Address::Short(GW_SHORT), Address::Short(src), true);
        h.frame_type = FrameType::Command;
        h.emit_frame(&[CMD_DATA_REQUEST]).unwrap()
    };
    for (node, src, pending) in [(sleepy, 2, true), (other, 3, false)] {
        bed.m.transmit(node, TxRequest::new(data_request(0x40 + src as u8, src), CHANNEL)).unwrap();
        let NodeEvent::TxDone(Ok(Some(ack))) = bed.peer_tx_done(node) else { panic!("no ACK") };
        let h = Header::parse(ack.psdu.as_slice()).unwrap();
        assert_eq!((h.frame_type, h.frame_pending), (FrameType::Ack, pending), "ACK to 0x{src:04x}");
        // The host learns the ACK it did not see had Frame Pending.
        let limit = bed.m.now() + 10_000;
        let flags = bed.run_until(limit, |r| {
            (r.prop() == Some(Property::StreamRaw)).then(|| RxFrame::parse(r.value()).unwrap().flags)
        });
        assert_eq!(flags & FLAG_ACKED_FP != 0, pending);
    }
    // An ordinary data frame from the table entry gets no Frame Pending.
    bed.m.transmit(sleepy, TxRequest::new(data_frame(1, GW_SHORT, 2), CHANNEL)).unwrap();
    let NodeEvent::TxDone(Ok(Some(ack))) = bed.peer_tx_done(sleepy) else { panic!("no ACK") };
    assert!(!Header::parse(ack.psdu.as_slice()).unwrap().frame_pending);
}

#[test]
fn no_ack_after_retries() {
    let mut bed = Bed::new(1);
    let frame = data_frame(7, 0x0009, GW_SHORT); // nobody has 0x0009
    let mut req = stream_raw::TxRequest::new(frame.as_slice(), CHANNEL);
    req.max_frame_retries = 3;
    let tid = bed.host_transmit(req);
    assert_eq!(bed.tx_done(tid), (Status::NoAck, false, None));
    let gw = bed.m.stats(bed.gw.node()).unwrap();
    assert_eq!((gw.frames_sent, gw.retries, gw.no_acks), (4, 3, 1));
}

#[test]
fn busy_channel_gives_cca_failure() {
    let mut bed = Bed::new(0);
    let gw = bed.gw.node();
    for start in [0, 1_700] {
        let j = bed.m.add_node(NodeConfig::default()).unwrap();
        bed.m.set_link(j, gw, Some(Link::perfect())).unwrap();
        let at = bed.m.now() + start;
        jam(&mut bed.m, j, at);
        bed.jammers.push(j);
    }
    bed.run_for(bed.m.now() + 2_000);
    let frame = data_frame(1, 2, GW_SHORT);
    let tid = bed.host_transmit(stream_raw::TxRequest::new(frame.as_slice(), CHANNEL));
    assert_eq!(bed.tx_done(tid), (Status::CcaFailure, false, None));
    let s = bed.m.stats(gw).unwrap();
    assert_eq!((s.cca_failures, s.channel_access_failures, s.frames_sent), (5, 1, 0));
}

#[test]
fn timed_transmit_starts_at_the_requested_time() {
    let mut bed = Bed::new(1);
    bed.run_for(5_000);
    let now = bed.m.now();
    let frame = data_frame(3, 2, GW_SHORT);
    let mut req = stream_raw::TxRequest::new(frame.as_slice(), CHANNEL);
    req.csma_ca_enabled = false;
    req.tx_delay_base_time = now as u32;
    req.tx_delay = 10_000;
    let tid = bed.host_transmit(req);
    assert_eq!(bed.tx_done(tid).0, Status::Ok);
    let rx = bed
        .peer_events
        .iter()
        .find_map(|d| match d.event {
            NodeEvent::Received(info) => Some(info),
            _ => None,
        })
        .unwrap();
    // Timestamp is the end of the SFD: 5 bytes after the frame starts.
    assert_eq!(rx.timestamp_us, now + 10_000 + 160);
}

#[test]
fn energy_scan_and_sleep() {
    let mut bed = Bed::new(1);
    let peer = bed.peers[0];
    bed.m.set_link(peer, bed.gw.node(), Some(Link::new(1.0, -61))).unwrap();
    bed.set(Property::MacScanMask, |w| w.u8(CHANNEL));
    bed.set(Property::MacScanPeriod, |w| w.u16(10));
    bed.set(Property::MacScanState, |w| w.u8(2));
    // The peer transmits during the 10 ms scan.
    let mut req = TxRequest::new(data_frame(5, 0xffff, 2), CHANNEL);
    req.csma_ca = false;
    req.start_at_us = Some(bed.m.now() + 3_000);
    bed.m.transmit(peer, req).unwrap();
    let limit = bed.m.now() + 20_000;
    let result =
        bed.run_until(limit, |r| (r.prop() == Some(Property::MacEnergyScanResult)).then(|| r.value().to_vec()));
    assert_eq!(result, [CHANNEL, (-61i8) as u8]);

    // Raw stream off puts the radio to sleep: radio-on time stops growing.
    bed.set(Property::MacRawStreamEnabled, |w| w.bool(false));
    let gw = bed.gw.node();
    let before = bed.m.stats(gw).unwrap().radio_on_us;
    bed.m.advance(bed.m.now() + 1_000_000);
    assert_eq!(bed.m.stats(gw).unwrap().radio_on_us, before);
    assert!(before > 0);
}

#[test]
fn reset_during_a_transmission_then_transmit_again() {
    let mut bed = Bed::new(1);
    let frame = data_frame(0x10, 2, GW_SHORT);
    let tid = bed.host_transmit(stream_raw::TxRequest::new(frame.as_slice(), CHANNEL));
    // Until the frame is on air, then CMD_RESET (stack).
    while bed.m.stats(bed.gw.node()).unwrap().frames_sent == 0 {
        assert!(bed.step(10_000_000));
    }
    bed.gw.host_frame(&mut bed.m, &[0x80 | 1, 0x01, 0x02]);
    assert_eq!(bed.gw.take_to_host(), [vec![0x81, 0x06, 0x00, 0x70]], "RESET_POWER_ON");
    bed.configure();
    // A new transmission is accepted at once and completes; the old one's Abort is swallowed.
    let frame = data_frame(0x11, 2, GW_SHORT);
    let tid2 = bed.host_transmit(stream_raw::TxRequest::new(frame.as_slice(), CHANNEL));
    assert_ne!(tid, tid2);
    let (status, _, ack) = bed.tx_done(tid2);
    assert_eq!(status, Status::Ok);
    assert_eq!(ack.unwrap()[2], 0x11);
    // Nothing else (no TX-done for the first request) reached the host.
    let t = bed.m.now() + 100_000;
    bed.run_for(t);
    assert!(bed.gw.take_to_host().is_empty());
}

#[test]
fn reset_during_an_energy_scan() {
    let mut bed = Bed::new(0);
    bed.set(Property::MacScanMask, |w| w.u8(CHANNEL));
    bed.set(Property::MacScanPeriod, |w| w.u16(100));
    bed.set(Property::MacScanState, |w| w.u8(2));
    let t = bed.m.now() + 10_000;
    bed.run_for(t);
    bed.gw.host_frame(&mut bed.m, &[0x80 | 1, 0x01, 0x02]);
    assert_eq!(bed.gw.take_to_host().len(), 1);
    bed.configure();
    // A new scan (the reset forgot the scan settings) is accepted and reports once.
    bed.set(Property::MacScanMask, |w| w.u8(CHANNEL));
    bed.set(Property::MacScanPeriod, |w| w.u16(5));
    bed.set(Property::MacScanState, |w| w.u8(2));
    let limit = bed.m.now() + 50_000;
    let result =
        bed.run_until(limit, |r| (r.prop() == Some(Property::MacEnergyScanResult)).then(|| r.value().to_vec()));
    assert_eq!(result, [CHANNEL, (-100i8) as u8]);
    let t = bed.m.now() + 200_000;
    bed.run_for(t);
    let later: Vec<_> = bed.gw.take_to_host();
    assert!(later.iter().all(|f| Repr::parse(f).unwrap().prop() != Some(Property::MacEnergyScanResult)), "{later:?}");
}
