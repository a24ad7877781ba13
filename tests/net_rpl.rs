//! The border router as RPL root over an in-memory link: DIOs on the Trickle schedule, DAOs
//! from a two-level tree answered with DAO-ACKs, and downward datagrams source-routed
//! (RFC 6554) through the first hop.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ferry::net::ipv6::{self, Ipv6Header, PROTO_ICMPV6, PROTO_ROUTING, PROTO_UDP};
use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::rpl::{RplOption, RplRepr, CODE_DAO_ACK, CODE_DIO};
use ferry::net::rpl_root::RplRootConfig;
use ferry::net::srh::SrhRepr;
use ferry::net::{sixlowpan, Interface, InterfaceConfig, RxMeta};

const PAN: u16 = 0x23;
const BR: [u8; 8] = [0x02, 0x00, 0x5e, 0xff, 0xfe, 0x00, 0x00, 0x01];
const N1: [u8; 8] = [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x00, 0x01];
const N2: [u8; 8] = [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x00, 0x02];

fn prefix() -> Ipv6Addr {
    "2001:db8:f:1::".parse().unwrap()
}

fn global(mac: [u8; 8]) -> Ipv6Addr {
    ipv6::with_iid(prefix(), ipv6::iid_from_mac(MacAddr::Ext(mac)))
}

/// A DAO for `target` with `parent`, as sent (or forwarded upwards) by the one-hop node N1.
fn dao_frame(seq: u8, target: Ipv6Addr, parent: Ipv6Addr, br: Ipv6Addr) -> Vec<u8> {
    let dao = RplRepr::Dao {
        instance: 0,
        ack_requested: true,
        sequence: seq,
        dodag_id: None,
        options: vec![
            RplOption::Target { prefix_len: 128, prefix: target },
            RplOption::Transit {
                external: false,
                path_control: 0,
                path_sequence: seq,
                path_lifetime: 30,
                parent: Some(parent),
            },
        ],
    };
    let d = ipv6::build_icmpv6(target, br, 64, dao.emit());
    let c = sixlowpan::compress(&d, MacAddr::Ext(N1), MacAddr::Ext(BR), None).unwrap();
    MacFrame::data(seq, PAN, MacAddr::Ext(BR), MacAddr::Ext(N1)).emit(&c.bytes).unwrap()
}

/// Decompresses a transmitted frame into (MAC dst, IPv6 datagram).
fn open(psdu: &[u8]) -> (MacAddr, Vec<u8>) {
    let (f, p) = MacFrame::parse(psdu).unwrap();
    let d = sixlowpan::decompress_datagram(p, f.src.unwrap(), f.dst.unwrap(), Some(prefix())).unwrap();
    (f.dst.unwrap(), d)
}

const LEAF: [u8; 8] = [0x02, 0x11, 0x22, 0x00, 0x00, 0x33, 0x00, 0x03];

/// The root (BR), an RPL router (N1) and a leaf (LEAF), started at `t0`; and the root's address.
fn root_router_leaf(t0: Instant) -> ([Interface; 3], Ipv6Addr) {
    let mut nodes = [BR, N1, LEAF].map(|mac| Interface::new(InterfaceConfig::new(PAN, mac, Some(prefix()))));
    let root_addr = nodes[0].global().unwrap();
    nodes[0].enable_rpl_root(t0, RplRootConfig::new(root_addr, prefix()));
    nodes[1].enable_rpl_node(t0, true, 1);
    nodes[2].enable_rpl_node(t0, false, 2);
    (nodes, root_addr)
}

/// Virtual time over an in-memory link until `until`: every node's timers, each frame delivered
/// to the nodes that `hears(from, to)` and it addresses, and each sender told the MAC's outcome
/// (only a receiver that hears the sender ACKs it).
fn run_links(
    nodes: &mut [Interface; 3],
    macs: &[MacAddr; 3],
    hears: impl Fn(usize, usize) -> bool,
    until: Instant,
    now: &mut Instant,
) {
    for _ in 0..200_000 {
        let mut moved = false;
        for i in 0..3 {
            while let Some(tx) = nodes[i].poll_transmit(*now) {
                moved = true;
                let mut acked = false;
                for j in (0..3).filter(|&j| j != i && hears(i, j)) {
                    if tx.dst == macs[j] || tx.dst.is_broadcast() {
                        acked |= tx.dst == macs[j];
                        let _ = nodes[j].handle_frame(*now, &tx.psdu, RxMeta::default());
                    }
                }
                nodes[i].handle_tx_outcome(*now, tx.dst, acked || tx.dst.is_broadcast());
            }
        }
        if moved {
            continue;
        }
        let Some(next) = nodes.iter().filter_map(Interface::poll_timeout).min().filter(|t| *t <= until) else {
            return;
        };
        *now = next.max(*now);
        for n in nodes.iter_mut() {
            n.handle_timeout(*now);
        }
    }
    panic!("no progress");
}

#[test]
fn root_announces_learns_and_source_routes() {
    let now = Instant::now();
    let mut br = Interface::new(InterfaceConfig::new(PAN, BR, Some(prefix())));
    let br_global = br.global().unwrap();
    br.enable_rpl_root(now, RplRootConfig::new(br_global, prefix()));

    // DIO on Trickle's first transmission time, multicast to all RPL nodes.
    let t = br.poll_timeout().unwrap();
    assert!(t > now && t <= now + Duration::from_secs(5));
    br.handle_timeout(t);
    let dio = br.poll_transmit(t).expect("a DIO");
    let (mac_dst, d) = open(&dio.psdu);
    assert_eq!(mac_dst, MacAddr::BROADCAST);
    let (h, msg) = Ipv6Header::parse(&d).unwrap();
    assert_eq!((h.dst, h.next_header), (ipv6::ALL_RPL_NODES, PROTO_ICMPV6));
    assert_eq!(msg[1], CODE_DIO);
    match RplRepr::parse(msg[1], &msg[4..]).unwrap() {
        RplRepr::Dio { dodag_id, options, .. } => {
            assert_eq!(dodag_id, br_global);
            assert!(options.iter().any(|o| matches!(o, RplOption::PrefixInfo(p) if p.prefix == prefix())));
        }
        other => panic!("{other:?}"),
    }

    // N1 (parent: root) and N2 (parent: N1) announce themselves; each DAO is acknowledged.
    br.handle_frame(now, &dao_frame(1, global(N1), br_global, br_global), RxMeta::default()).unwrap();
    let (mac_dst, d) = open(&br.poll_transmit(now).expect("DAO-ACK to N1").psdu);
    assert_eq!(mac_dst, MacAddr::Ext(N1));
    let (h, msg) = Ipv6Header::parse(&d).unwrap();
    assert_eq!((h.dst, msg[1]), (global(N1), CODE_DAO_ACK));

    br.handle_frame(now, &dao_frame(2, global(N2), global(N1), br_global), RxMeta::default()).unwrap();
    let (mac_dst, d) = open(&br.poll_transmit(now).expect("DAO-ACK to N2").psdu);
    assert_eq!(mac_dst, MacAddr::Ext(N1), "through N1");
    let (h, _) = Ipv6Header::parse(&d).unwrap();
    assert_eq!((h.dst, h.next_header), (global(N1), PROTO_ROUTING));
    assert_eq!(br.rpl().unwrap().route(&global(N2)), Some(vec![global(N1), global(N2)]));

    // A CoAP datagram to N2 goes to N1's MAC with a source routing header naming N2.
    br.send_udp(now, 5683, (global(N2), 5683), b"down the tree").unwrap();
    let (mac_dst, d) = open(&br.poll_transmit(now).unwrap().psdu);
    assert_eq!(mac_dst, MacAddr::Ext(N1));
    let (h, payload) = Ipv6Header::parse(&d).unwrap();
    assert_eq!((h.dst, h.next_header), (global(N1), PROTO_ROUTING));
    let (srh, len) = SrhRepr::parse(payload, &h.dst).unwrap();
    assert_eq!((srh.next_header, srh.segments_left, srh.addresses), (PROTO_UDP, 1, vec![global(N2)]));
    // The UDP checksum covers the final destination (RFC 8200 §8.1).
    assert_eq!(ipv6::pseudo_checksum(&h.src, &global(N2), PROTO_UDP, &payload[len..]), 0);
    assert_eq!(&payload[len + 8..], b"down the tree");

    // One-hop destinations are sent directly.
    br.send_udp(now, 5683, (global(N1), 5683), b"direct").unwrap();
    let (_, d) = open(&br.poll_transmit(now).unwrap().psdu);
    assert_eq!(Ipv6Header::parse(&d).unwrap().0.next_header, PROTO_UDP);
}

/// Root — router — leaf over in-memory links (the leaf cannot hear the root): the router joins
/// on the root's DIO, the leaf on the router's; both DAOs reach the root (the leaf's forwarded
/// upwards), and datagrams go down the source route and up through the router.
#[test]
fn nodes_join_announce_and_forward() {
    let t0 = Instant::now();
    let (mut nodes, root_addr) = root_router_leaf(t0);
    let hears = |from: usize, to: usize| from.abs_diff(to) == 1;
    let macs = [BR, N1, LEAF].map(MacAddr::Ext);
    let run =
        |nodes: &mut [Interface; 3], until: Instant, now: &mut Instant| run_links(nodes, &macs, hears, until, now);

    let mut now = t0;
    run(&mut nodes, t0 + Duration::from_secs(120), &mut now);

    let router = nodes[1].rpl_node().unwrap().joined().copied().expect("router joined");
    assert_eq!((router.parent_mac, router.rank), (MacAddr::Ext(BR), 512));
    let leaf = nodes[2].rpl_node().unwrap().joined().copied().expect("leaf joined");
    assert_eq!((leaf.parent_mac, leaf.rank), (MacAddr::Ext(N1), 768));
    let (r, l) = (global(N1), nodes[2].global().unwrap());
    assert_eq!(nodes[0].rpl().unwrap().route(&l), Some(vec![r, l]));
    assert!(nodes[1].stats().forwarded >= 1, "the leaf's DAO went through the router");

    // Down the source route, then up through the router.
    nodes[0].send_udp(now, 5683, (l, 5683), b"down").unwrap();
    run(&mut nodes, now, &mut now);
    let got = nodes[2].poll_udp().expect("the leaf got it");
    assert_eq!((got.src.0, &got.payload[..]), (root_addr, &b"down"[..]));
    nodes[2].send_udp(now, 5683, (root_addr, 5683), b"up").unwrap();
    run(&mut nodes, now, &mut now);
    let got = nodes[0].poll_udp().expect("the root got it");
    assert_eq!((got.src.0, &got.payload[..]), (l, &b"up"[..]));
}

#[test]
fn a_leaf_that_hears_the_root_one_way_joins_through_its_router() {
    // The root's 0 dBm reaches the leaf, the leaf's -15 dBm does not reach the root: the
    // root's DIOs advertise a better rank than the router's, over a link that cannot carry
    // the leaf's DAO back.
    let t0 = Instant::now();
    let (mut nodes, _) = root_router_leaf(t0);
    nodes[2].set_default_router(Some(MacAddr::Ext(N1)));
    let hears = |from: usize, to: usize| from.abs_diff(to) == 1 || (from, to) == (0, 2);
    let macs = [BR, N1, LEAF].map(MacAddr::Ext);

    let mut now = t0;
    run_links(&mut nodes, &macs, hears, t0 + Duration::from_secs(900), &mut now);

    let leaf = nodes[2].rpl_node().unwrap().joined().copied().expect("the leaf joined");
    assert_eq!((leaf.parent_mac, leaf.rank), (MacAddr::Ext(N1), 768), "through the router, not the one-way root");
    let (r, l) = (global(N1), nodes[2].global().unwrap());
    assert_eq!(nodes[0].rpl().unwrap().route(&l), Some(vec![r, l]), "its DAO reached the root");
    let router = nodes[1].rpl_node().unwrap().joined().copied().expect("router joined");
    assert_eq!(router.parent_mac, MacAddr::Ext(BR));
}

#[test]
fn a_parent_that_answered_once_is_taken_back_as_soon_as_it_hears_again() {
    // A router that acknowledged the leaf once, then stops hearing it for a while (it reboots
    // for its update, or is busy), is a two-way link that failed: the leaf leaves it, but
    // takes it back at its next DIO once it hears again, not after a one-way hold-off.
    let t0 = Instant::now();
    let (mut nodes, root_addr) = root_router_leaf(t0);
    nodes[2].set_default_router(Some(MacAddr::Ext(N1)));
    let macs = [BR, N1, LEAF].map(MacAddr::Ext);
    let chain = |from: usize, to: usize| from.abs_diff(to) == 1;
    let mut now = t0;
    run_links(&mut nodes, &macs, chain, t0 + Duration::from_secs(300), &mut now);
    assert_eq!(nodes[2].rpl_node().unwrap().joined().map(|j| j.parent_mac), Some(MacAddr::Ext(N1)));

    // For three minutes the router hears nothing from the leaf, which keeps sending.
    let deaf_router = |from: usize, to: usize| chain(from, to) && (from, to) != (2, 1);
    let deaf_until = now + Duration::from_secs(180);
    while now < deaf_until {
        let _ = nodes[2].send_udp(now, 5683, (root_addr, 5683), b"reading");
        let next = now + Duration::from_secs(5);
        run_links(&mut nodes, &macs, deaf_router, next, &mut now);
        now = now.max(next);
    }
    assert!(nodes[2].stats().parents_lost >= 1, "the leaf left the router that stopped answering");

    // It hears again: within two minutes the leaf is back under it, and its DAO reached the root.
    run_links(&mut nodes, &macs, chain, now + Duration::from_secs(120), &mut now);
    let leaf = nodes[2].rpl_node().unwrap().joined().copied().expect("the leaf joined again");
    assert_eq!(leaf.parent_mac, MacAddr::Ext(N1));
    let (r, l) = (global(N1), nodes[2].global().unwrap());
    assert_eq!(nodes[0].rpl().unwrap().route(&l), Some(vec![r, l]));
}

/// An RPL router is a 6LR to its children and a host to its parent: the RA that answers its
/// solicitation and the NA that accepts its registration end both, instead of an RS every
/// minute and an NS every 10 s for as long as it runs.
#[test]
fn a_router_that_solicits_and_registers_like_a_host_stops_once_answered() {
    let t0 = Instant::now();
    let (mut nodes, _) = root_router_leaf(t0);
    nodes[1].start_router_discovery(t0, 7);
    nodes[2].start_router_discovery(t0, 9);
    let hears = |from: usize, to: usize| from.abs_diff(to) == 1;
    let macs = [BR, N1, LEAF].map(MacAddr::Ext);
    let mut now = t0;
    run_links(&mut nodes, &macs, hears, t0 + Duration::from_secs(600), &mut now);

    assert_eq!(nodes[1].ra_router().map(|(_, mac)| mac), Some(MacAddr::Ext(BR)), "the router took the root's RA");
    assert_eq!(nodes[2].ra_router().map(|(_, mac)| mac), Some(MacAddr::Ext(N1)));
    // Ten minutes: one RS answered by each parent and one registration each (refreshed at
    // half its hour), not sixty.
    assert!(nodes[0].stats().rs_answered <= 2, "root answered {} RSs", nodes[0].stats().rs_answered);
    assert!(nodes[0].stats().ns_answered <= 2, "root answered {} NSs", nodes[0].stats().ns_answered);
    assert!(nodes[1].stats().ns_answered <= 2, "router answered {} NSs", nodes[1].stats().ns_answered);
    assert!(nodes[0].registered().any(|r| r.eui64 == N1), "the router registered with the root");
}
