//! The border router's topology read model, sans-IO: DIOs and DAOs from a three-level tree fed
//! into `BorderRouter::handle_frame` become the table `ferry topology` prints (parents, ranks,
//! hops, path lifetimes, link quality of the root's neighbours), its JSON round-trips, and the
//! fleet's tree walks (subtree, hops) run on it. Also: one transmission in flight at a time.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ferry::border::{BorderConfig, BorderRouter, NetTopology, RadioCommand};
use ferry::coap::Router;
use ferry::config::NetworkConfig;
use ferry::fleet::{Eui64, Parent, Topology};
use ferry::net::ipv6;
use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::rpl::{RplOption, RplRepr};
use ferry::net::{sixlowpan, RxMeta};
use ferry::radio::{TxAck, TxError};

const BR: [u8; 8] = [0xf0, 0x0d, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x01];
/// N1 hangs under the root, N2 under N1, N3 under N2.
const N1: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x11];
const N2: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x12];
const N3: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x13];

fn network() -> NetworkConfig {
    NetworkConfig::default()
}

fn global(mac: [u8; 8]) -> Ipv6Addr {
    ipv6::with_iid(network().prefix.network(), ipv6::iid_from_mac(MacAddr::Ext(mac)))
}

/// An IPv6 datagram from `src` as the one-hop neighbour N1 puts it on air to the root.
fn frame_from_n1(seq: u8, d: &[u8]) -> Vec<u8> {
    let c = sixlowpan::compress(d, MacAddr::Ext(N1), MacAddr::Short(0), None).unwrap();
    MacFrame::data(seq, network().pan_id.0, MacAddr::Short(0), MacAddr::Ext(N1)).emit(&c.bytes).unwrap()
}

fn dao(seq: u8, target: [u8; 8], parent: Ipv6Addr, br: Ipv6Addr) -> Vec<u8> {
    let dao = RplRepr::Dao {
        instance: 0,
        ack_requested: true,
        sequence: seq,
        dodag_id: None,
        options: vec![
            RplOption::Target { prefix_len: 128, prefix: global(target) },
            RplOption::Transit {
                external: false,
                path_control: 0,
                path_sequence: seq,
                path_lifetime: 30,
                parent: Some(parent),
            },
        ],
    };
    frame_from_n1(seq, &ipv6::build_icmpv6(global(target), br, 64, dao.emit()))
}

fn dio_from_n1(br: Ipv6Addr, rank: u16) -> Vec<u8> {
    let dio = RplRepr::Dio {
        instance: 0,
        version: 240,
        rank,
        grounded: true,
        mop: 1,
        preference: 0,
        dtsn: 0,
        dodag_id: br,
        options: vec![],
    };
    let src = ipv6::link_local(MacAddr::Ext(N1));
    frame_from_n1(40, &ipv6::build_icmpv6(src, ipv6::ALL_RPL_NODES, 255, dio.emit()))
}

#[test]
fn daos_become_the_topology_table_and_tree() {
    let t0 = Instant::now();
    let mut br = BorderRouter::new(BorderConfig::new(&network(), BR), Router::new(), t0);
    let root = br.address();
    assert_eq!(root, global(BR));
    let meta = RxMeta { rssi: -71, lqi: 200, timestamp_us: 1 };
    br.handle_frame(t0, &dio_from_n1(root, 512), meta).unwrap();
    br.handle_frame(t0, &dao(1, N1, root, root), meta).unwrap();
    br.handle_frame(t0, &dao(2, N2, global(N1), root), meta).unwrap();
    br.handle_frame(t0, &dao(3, N3, global(N2), root), meta).unwrap();

    // Three DAO-ACKs, one transmission at a time: the next only after the previous is done.
    let mut acks = 0;
    while let Some(cmd) = br.poll_radio(t0) {
        let RadioCommand::Transmit { ack_request, .. } = cmd else { panic!("unexpected {cmd:?}") };
        assert!(ack_request);
        assert!(br.poll_radio(t0).is_none(), "a second frame while one is in flight");
        let result: Result<TxAck, TxError> = if acks == 0 {
            Err(TxError::NoAck)
        } else {
            Ok(TxAck { frame_pending: false, header_updated: false, ack: None, security: None })
        };
        br.handle_tx_done(t0, &result);
        acks += 1;
    }
    assert_eq!(acks, 3);
    assert_eq!(br.stats().tx_failures, 1);

    let now = t0 + Duration::from_secs(10);
    let topo = br.topology(now);
    assert_eq!(topo.root, root);
    assert_eq!(topo.nodes.len(), 3);
    let n = |mac: [u8; 8]| topo.node(Eui64(mac)).unwrap();
    assert_eq!((n(N1).parent, n(N1).hops, n(N1).rank), (root, Some(1), Some(512)));
    assert_eq!((n(N2).parent, n(N2).hops, n(N2).rank), (global(N1), Some(2), None));
    assert_eq!((n(N3).parent, n(N3).hops), (global(N2), Some(3)));
    // 30 lifetime units of 60 s, 10 s gone.
    assert_eq!(n(N3).path_lifetime_s, 30 * 60 - 10);
    // N1 is heard directly; the DAO-ACKs to N1 went 1 of 3 unACKed (the others route via N1).
    let link = n(N1).link.expect("N1 is a neighbour");
    assert_eq!((link.rssi_dbm, link.lqi, link.last_heard_ms_ago), (-71, 200, 10_000));
    assert!((link.delivery_ratio.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(n(N2).link.is_none());
    assert_eq!(topo.neighbors.len(), 1);

    // The tree walks the planner uses.
    let fleet = topo.to_fleet();
    assert_eq!(fleet.parent(Eui64(N1)), Some(Parent::BorderRouter));
    assert_eq!(fleet.parent(Eui64(N3)), Some(Parent::Node(Eui64(N2))));
    assert_eq!(fleet.hops(Eui64(N3)), Some(3));
    let mut sub = fleet.subtree(Eui64(N1));
    sub.sort_by_key(|e| e.0);
    assert_eq!(sub, vec![Eui64(N2), Eui64(N3)]);

    // The JSON the control API serves reads back the same.
    let json = serde_json::to_string(&topo).unwrap();
    assert!(json.contains("\"eui64\":\"02:00:fe:77:00:00:00:13\""), "{json}");
    let back: NetTopology = serde_json::from_str(&json).unwrap();
    assert_eq!(back, topo);
}
