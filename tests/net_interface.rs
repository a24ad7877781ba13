//! Two or more `net::Interface`s over an in-memory 802.15.4 link: fragmentation both ways with
//! reordering and loss of whole datagrams, concurrent reassemblies, fragment floods, duplicate
//! frames, the indirect queue for a sleepy child, ICMPv6 echo and neighbour discovery.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ferry::net::icmpv6::{Icmpv6Repr, NdOption};
use ferry::net::ipv6::{self, Ipv6Header};
use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::{
    sixlowpan, Interface, InterfaceConfig, Reassembler, ReassemblyConfig, RxMeta, SourceMatch, Transmit, UdpDatagram,
};

const PAN: u16 = 0x23;
const BR: [u8; 8] = [0x02, 0x00, 0x5e, 0xff, 0xfe, 0x00, 0x00, 0x01];
const NODE: [u8; 8] = [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55];

fn prefix() -> Ipv6Addr {
    "2001:db8:f:1::".parse().unwrap()
}

fn iface(ext: [u8; 8]) -> Interface {
    Interface::new(InterfaceConfig::new(PAN, ext, Some(prefix())))
}

fn node(i: u8) -> [u8; 8] {
    [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x00, i]
}

/// Frames one interface has queued.
fn drain(i: &mut Interface, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| i.poll_transmit(now)).collect()
}

fn deliver(to: &mut Interface, now: Instant, frames: &[Transmit]) {
    for t in frames {
        let _ = to.handle_frame(now, &t.psdu, RxMeta { rssi: -50, lqi: 255, timestamp_us: 0 });
    }
}

fn udp(i: &mut Interface) -> Vec<UdpDatagram> {
    std::iter::from_fn(|| i.poll_udp()).collect()
}

/// Deterministic shuffle (xorshift) so reordering is seeded.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// A CoAP message: CON 2.05 or GET with a payload (RFC 7252 §3).
fn coap(code: u8, mid: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0x41, code, (mid >> 8) as u8, mid as u8, 0x7f];
    if !payload.is_empty() {
        m.push(0xff);
        m.extend_from_slice(payload);
    }
    m
}

#[test]
fn one_kilobyte_coap_both_ways_with_reordering_and_loss() {
    let now = Instant::now();
    let mut br = iface(BR);
    let mut nd = iface(NODE);
    let body: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    let msg = coap(0x45, 1, &body);
    let nd_addr = ipv6::with_iid(prefix(), ipv6::iid_from_mac(MacAddr::Ext(NODE)));

    // Border router → node: five datagrams, the second lost whole, the rest reordered.
    for k in 0..5u16 {
        br.send_udp(now, 5683, (nd_addr, 5683), &coap(0x45, k, &body)).unwrap();
    }
    let frames = drain(&mut br, now);
    assert!(frames.len() >= 5 * 10, "1 kB needs ten or more fragments: {}", frames.len());
    let per = frames.len() / 5;
    let mut kept: Vec<Transmit> =
        frames.chunks(per).enumerate().filter(|(k, _)| *k != 1).flat_map(|(_, c)| c.to_vec()).collect();
    shuffle(&mut kept, 0x5eed);
    deliver(&mut nd, now, &kept);
    let got = udp(&mut nd);
    assert_eq!(got.len(), 4);
    for g in &got {
        assert_eq!(g.payload.len(), msg.len());
        assert_eq!(&g.payload[5..], &msg[5..]);
        assert_eq!(g.src, (br.global().unwrap(), 5683));
        assert_eq!(g.link_src, MacAddr::Ext(BR));
    }
    assert_eq!(nd.reassembly_stats().completed, 4);

    // Node → border router, link-local: one fragment lost, so that datagram times out.
    nd.send_udp(now, 5683, (br.link_local(), 5683), &msg).unwrap();
    nd.send_udp(now, 5683, (br.link_local(), 5683), &msg).unwrap();
    let mut frames = drain(&mut nd, now);
    let _lost = frames.remove(3);
    frames.reverse();
    deliver(&mut br, now, &frames);
    let got = udp(&mut br);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, msg);
    assert_eq!(got[0].src, (nd.link_local(), 5683));
    assert_eq!(br.reassembly_stats().started, 2);
    let deadline = br.poll_timeout().unwrap();
    assert!(deadline >= now + Duration::from_secs(60));
    br.handle_timeout(deadline);
    assert_eq!(br.reassembly_stats().timed_out, 1);
}

#[test]
fn many_children_reassemble_at_once() {
    let now = Instant::now();
    let mut br = iface(BR);
    let mut nodes: Vec<Interface> = (1..=12).map(|i| iface(node(i))).collect();
    let mut queues: Vec<Vec<Transmit>> = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        n.send_udp(now, 5683, (br.link_local(), 5683), &vec![i as u8; 400 + i]).unwrap();
        queues.push(drain(n, now));
    }
    // Round-robin: every child's first fragment, then every child's second, …
    let longest = queues.iter().map(Vec::len).max().unwrap();
    for k in 0..longest {
        for q in &queues {
            if let Some(t) = q.get(k) {
                deliver(&mut br, now, std::slice::from_ref(t));
            }
        }
    }
    let mut got = udp(&mut br);
    got.sort_by_key(|d| d.payload.len());
    assert_eq!(got.len(), 12);
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.payload, vec![i as u8; 400 + i]);
    }
    assert_eq!(br.reassembly_stats().completed, 12);
}

#[test]
fn fragment_flood_is_bounded_and_service_continues() {
    let now = Instant::now();
    let mut br = iface(BR);
    // 2000 first-fragments-that-never-finish from 500 sources, 4 tags each.
    for s in 0..500u16 {
        for tag in 0..4u16 {
            let mut p = vec![0xc5, 0x00, (tag >> 8) as u8, tag as u8];
            p.extend_from_slice(&[0x7e, 0x33, 0xf0, 0x16, 0x33, 0x16, 0x33, 0, 0]);
            p.extend_from_slice(&[0; 64]); // 48 uncompressed header bytes + 64 = 8-byte aligned
            let f = MacFrame::data(tag as u8, PAN, MacAddr::Ext(BR), MacAddr::Short(0x100 + s)).emit(&p).unwrap();
            let _ = br.handle_frame(now, &f, RxMeta::default());
        }
    }
    let st = br.reassembly_stats();
    assert!(st.refused_full > 1900, "{st:?}");
    // A legitimate unfragmented datagram still gets through.
    let mut nd = iface(NODE);
    nd.send_udp(now, 1, (br.link_local(), 5683), b"still here").unwrap();
    deliver(&mut br, now, &drain(&mut nd, now));
    assert_eq!(udp(&mut br)[0].payload, b"still here");
    // And once the flood's buffers expire, fragmented datagrams are accepted again.
    br.handle_timeout(now + Duration::from_secs(61));
    nd.send_udp(now, 1, (br.link_local(), 5683), &[1; 300]).unwrap();
    deliver(&mut br, now, &drain(&mut nd, now));
    assert_eq!(udp(&mut br)[0].payload, vec![1; 300]);
}

#[test]
fn duplicate_frames_are_dropped() {
    let now = Instant::now();
    let mut br = iface(BR);
    let mut nd = iface(NODE);
    nd.send_udp(now, 5683, (br.link_local(), 5683), b"once").unwrap();
    let f = drain(&mut nd, now);
    deliver(&mut br, now, &f);
    deliver(&mut br, now, &f); // the node missed our ACK and retransmitted
    assert_eq!(udp(&mut br).len(), 1);
    assert_eq!(br.mac_stats().rx_duplicates, 1);
    let n = br.mac().neighbor(&MacAddr::Ext(NODE)).unwrap();
    assert_eq!((n.rssi, n.lqi, n.frames), (-50, 255, 2));
}

#[test]
fn sleepy_child_gets_its_frames_after_the_poll() {
    let now = Instant::now();
    let mut br = iface(BR);
    let mut nd = iface(NODE);
    let child = MacAddr::Ext(NODE);
    br.set_sleepy(child, true);
    br.send_udp(now, 5683, (nd.link_local(), 5683), &[3; 200]).unwrap();
    assert!(drain(&mut br, now).is_empty(), "held until the child polls");
    assert_eq!(br.poll_source_match(), Some(SourceMatch::Insert(child)));
    assert_eq!(br.mac().held(&child), 3);

    let poll = MacFrame::data_request(9, PAN, MacAddr::Ext(BR), child).emit(&[]).unwrap();
    br.handle_frame(now, &poll, RxMeta::default()).unwrap();
    assert_eq!(br.poll_source_match(), Some(SourceMatch::Remove(child)));
    let frames = drain(&mut br, now);
    assert_eq!(frames.len(), 3);
    let pending: Vec<bool> = frames.iter().map(|t| MacFrame::parse(&t.psdu).unwrap().0.frame_pending).collect();
    assert_eq!(pending, [true, true, false]);
    deliver(&mut nd, now, &frames);
    assert_eq!(udp(&mut nd)[0].payload, vec![3; 200]);

    // Nothing held past the persistence time.
    br.send_udp(now, 5683, (nd.link_local(), 5683), b"late").unwrap();
    br.handle_timeout(br.poll_timeout().unwrap());
    assert_eq!(br.mac_stats().indirect_timed_out, 1);
}

#[test]
fn echo_request_is_answered() {
    let now = Instant::now();
    let mut br = iface(BR);
    let mut nd = iface(NODE);
    // Link-local, global and a fragmented ping.
    nd.send_ping(now, br.link_local(), 1, 1, b"hello").unwrap();
    nd.send_ping(now, br.global().unwrap(), 1, 2, b"hello").unwrap();
    nd.send_ping(now, br.global().unwrap(), 1, 3, &[0xaa; 500]).unwrap();
    deliver(&mut br, now, &drain(&mut nd, now));
    assert_eq!(br.stats().rx_echo_requests, 3);
    deliver(&mut nd, now, &drain(&mut br, now));
    assert_eq!(nd.stats().rx_echo_replies, 3);
}

fn ns_frame(seq: u8, src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, options: Vec<NdOption>) -> Vec<u8> {
    let d = ipv6::build_icmpv6(src, dst, 255, Icmpv6Repr::NeighborSolicit { target, options }.emit());
    let c = sixlowpan::compress(&d, MacAddr::Ext(NODE), MacAddr::Ext(BR), None).unwrap();
    MacFrame::data(seq, PAN, MacAddr::Ext(BR), MacAddr::Ext(NODE)).emit(&c.bytes).unwrap()
}

fn na_from(br: &mut Interface, now: Instant) -> (Ipv6Header, Vec<u8>) {
    let t = br.poll_transmit(now).expect("an NA");
    let (f, p) = MacFrame::parse(&t.psdu).unwrap();
    let d = sixlowpan::decompress_datagram(p, f.src.unwrap(), f.dst.unwrap(), Some(prefix())).unwrap();
    let (h, msg) = Ipv6Header::parse(&d).unwrap();
    (h, msg.to_vec())
}

#[test]
fn address_registration_and_neighbor_solicitation() {
    let now = Instant::now();
    let mut br = iface(BR);
    // The ARO carries the node's EUI-64, which is also its extended MAC address.
    let eui = NODE;
    let global = ipv6::with_iid(prefix(), ipv6::iid_from_mac(MacAddr::Ext(NODE)));
    // RFC 6775 style, as RIOT sends it: source = the address to register, target = the router.
    let aro = NdOption::Aro { status: 0, rest: [0, 0, 7], lifetime_min: 10, eui64: eui };
    let f = ns_frame(1, global, br.link_local(), br.link_local(), vec![NdOption::SourceLla(MacAddr::Ext(NODE)), aro]);
    br.handle_frame(now, &f, RxMeta::default()).unwrap();
    let (h, msg) = na_from(&mut br, now);
    assert_eq!((h.dst, h.hop_limit), (global, 255));
    match Icmpv6Repr::parse(&h.src, &h.dst, &msg).unwrap() {
        Icmpv6Repr::NeighborAdvert { router, solicited, target, options, .. } => {
            assert!(router && solicited);
            assert_eq!(target, br.link_local());
            assert!(options.contains(&NdOption::Aro { status: 0, rest: [0, 0, 7], lifetime_min: 10, eui64: eui }));
        }
        other => panic!("expected NA, got {other:?}"),
    }
    assert_eq!(br.registrations().collect::<Vec<_>>(), vec![(&global, MacAddr::Ext(eui))]);
    assert_eq!(br.resolve(&global), Some(MacAddr::Ext(eui)));

    // Plain NS for our global address from an unspecified source (DAD) → NA to all-nodes.
    let f =
        ns_frame(2, Ipv6Addr::UNSPECIFIED, ipv6::solicited_node(&br.global().unwrap()), br.global().unwrap(), vec![]);
    br.handle_frame(now, &f, RxMeta::default()).unwrap();
    let (h, msg) = na_from(&mut br, now);
    assert_eq!(h.dst, ipv6::ALL_NODES);
    match Icmpv6Repr::parse(&h.src, &h.dst, &msg).unwrap() {
        Icmpv6Repr::NeighborAdvert { solicited, target, options, .. } => {
            assert!(!solicited);
            assert_eq!(target, br.global().unwrap());
            assert_eq!(options, vec![NdOption::TargetLla(MacAddr::Ext(BR))]);
        }
        other => panic!("expected NA, got {other:?}"),
    }
    // NS for someone else's address without ARO: ignored.
    let f = ns_frame(3, global, br.link_local(), "2001:db8:f:1::99".parse().unwrap(), vec![]);
    br.handle_frame(now, &f, RxMeta::default()).unwrap();
    assert!(br.poll_transmit(now).is_none());
    // Lifetime expiry removes the registration.
    br.handle_timeout(now + Duration::from_secs(601));
    assert_eq!(br.registrations().count(), 0);
}

#[test]
fn garbage_frames_are_errors_not_panics() {
    let now = Instant::now();
    let mut br = iface(BR);
    let mut seed = 1u64;
    for len in 0..200usize {
        let mut v = vec![0u8; len % 128];
        for b in v.iter_mut() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *b = (seed >> 56) as u8;
        }
        let _ = br.handle_frame(now, &v, RxMeta::default());
        // Make it a valid frame to us with random 6LoWPAN content.
        if let Ok(f) = MacFrame::data(len as u8, PAN, MacAddr::Ext(BR), MacAddr::Short(7)).emit(&v[..v.len().min(100)])
        {
            let _ = br.handle_frame(now, &f, RxMeta::default());
        }
    }
}

#[test]
fn unroutable_and_oversized_sends_are_refused() {
    let now = Instant::now();
    let mut br = iface(BR);
    let far: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
    assert!(matches!(br.send_udp(now, 1, (far, 1), b"x"), Err(ferry::net::SendError::NoRoute(_))));
    let ll = ipv6::link_local(MacAddr::Ext(NODE));
    assert!(matches!(br.send_udp(now, 1, (ll, 1), &[0; 1233]), Err(ferry::net::SendError::TooLong(_))));
    assert!(br.send_udp(now, 1, (ll, 1), &[0; 1232]).is_ok());
}

#[test]
fn router_solicitation_gets_prefix_context_and_abro() {
    let now = Instant::now();
    let mut br = iface(BR);
    let node_ll = ipv6::link_local(MacAddr::Ext(NODE));
    let rs = Icmpv6Repr::RouterSolicit { options: vec![NdOption::SourceLla(MacAddr::Ext(NODE))] };
    let d = ipv6::build_icmpv6(node_ll, ipv6::ALL_ROUTERS, 255, rs.emit());
    let c = sixlowpan::compress(&d, MacAddr::Ext(NODE), MacAddr::BROADCAST, None).unwrap();
    let frame = MacFrame::data(1, PAN, MacAddr::BROADCAST, MacAddr::Ext(NODE)).emit(&c.bytes).unwrap();
    br.handle_frame(now, &frame, RxMeta::default()).unwrap();
    assert_eq!(br.stats().rs_answered, 1);

    // A unicast RA from the border router's link-local address to the soliciting node; with
    // all four options it is a little larger than one frame.
    let mut reasm = Reassembler::new(ReassemblyConfig::default());
    let mut datagram = None;
    for t in drain(&mut br, now) {
        let (f, p) = MacFrame::parse(&t.psdu).unwrap();
        assert_eq!(f.dst, Some(MacAddr::Ext(NODE)));
        datagram = reasm.accept(now, f.src.unwrap(), f.dst.unwrap(), p, Some(prefix())).unwrap().or(datagram);
    }
    let datagram = datagram.expect("a whole RA");
    let (h, msg) = Ipv6Header::parse(&datagram).unwrap();
    assert_eq!((h.src, h.dst, h.hop_limit), (ipv6::link_local(MacAddr::Ext(BR)), node_ll, 255));
    let Icmpv6Repr::RouterAdvert { router_lifetime_s, options, .. } = Icmpv6Repr::parse(&h.src, &h.dst, msg).unwrap()
    else {
        panic!("not an RA");
    };
    assert!(router_lifetime_s > 0);
    assert!(options.contains(&NdOption::SourceLla(MacAddr::Ext(BR))));
    assert!(options.iter().any(|o| matches!(o,
        NdOption::PrefixInfo { prefix_len: 64, on_link: false, autonomous: true, prefix: p, .. } if *p == prefix())));
    assert!(options.iter().any(|o| matches!(o,
        NdOption::SixCo { context_len: 64, cid: 0, compress: true, prefix: p, .. } if *p == prefix())));
    let global = ipv6::with_iid(prefix(), ipv6::iid_from_mac(MacAddr::Ext(BR)));
    assert!(options.iter().any(|o| matches!(o, NdOption::Abro { border_router, .. } if *border_router == global)));
}
