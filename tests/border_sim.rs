//! The border router end to end in virtual time: the real host stack (Spinel client over a
//! 460 800-baud UART model, `BorderRouter`) drives the simulator's gateway RCP, and a node
//! attached with `World::add_external` runs its own `net::Interface` and CoAP endpoint. The
//! node pings the gateway, each side GETs a 1 kB resource from the other (6LoWPAN fragments in
//! both directions), and a sleepy node gets its held datagram right after its Data Request.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::Path;
use std::time::Instant;

use ferry::border::COAP_PORT;
use ferry::coap::{self, content_format, Endpoint, Event, FetchOptions, Request, Router, StaticResource};
use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::{Interface, InterfaceConfig, RxMeta};
use ferry::sim::host::{HostConfig, SimHost};
use ferry::sim::{NodeId, Scenario, World};

const NODE: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x42];
const SCENARIO: &str = r#"
seed = 7
channel = 26
pan_id = 0xface
[gateway]
eui64 = "f0:0d:fe:77:00:00:00:01"
short = 0x0000
"#;

/// A 1 kB body whose bytes depend on their position, so a misplaced fragment shows.
fn body(salt: u8) -> Vec<u8> {
    (0..1024u32).map(|i| (i.wrapping_mul(31) as u8) ^ salt).collect()
}

/// The node: an interface that is not a root and a CoAP endpoint, driven by the test.
struct Node {
    id: NodeId,
    iface: Interface,
    coap: Endpoint<SocketAddrV6>,
    events: Vec<Event<SocketAddrV6>>,
    /// Medium µs at which each UDP datagram arrived.
    udp_at: Vec<u64>,
}

impl Node {
    fn new(host: &mut SimHost, router: Router) -> Node {
        let id = host.world_mut().add_external(Some(NODE)).unwrap();
        let pan = host.world().scenario().pan_id;
        let mut cfg = InterfaceConfig::new(pan, NODE, Some(ferry::config::NetworkConfig::default().prefix.network()));
        cfg.router = false;
        Node {
            id,
            iface: Interface::new(cfg),
            coap: Endpoint::new(coap::Config { rng_seed: 42, ..coap::Config::default() }, router),
            events: Vec::new(),
            udp_at: Vec::new(),
        }
    }

    fn address(&self) -> Ipv6Addr {
        self.iface.global().unwrap()
    }

    /// Takes what the node heard, answers, and puts its frames on air.
    fn step(&mut self, host: &mut SimHost) {
        let now: Instant = host.now();
        let ts = host.now_us();
        for f in host.world_mut().take_external_frames() {
            if f.node == self.id {
                let _ = self.iface.handle_frame(now, &f.psdu, RxMeta { rssi: -60, lqi: f.lqi, timestamp_us: ts });
            }
        }
        while let Some(d) = self.iface.poll_udp() {
            self.udp_at.push(ts);
            self.coap.handle_datagram(now, SocketAddrV6::new(d.src.0, d.src.1, 0, 0), &d.payload);
        }
        if self.coap.poll_timeout().is_some_and(|t| t <= now) {
            self.coap.handle_timeout(now);
        }
        if self.iface.poll_timeout().is_some_and(|t| t <= now) {
            self.iface.handle_timeout(now);
        }
        while let Some(ev) = self.coap.poll_event() {
            self.events.push(ev);
        }
        while let Some(t) = self.coap.poll_transmit(now) {
            self.iface.send_udp(now, COAP_PORT, (*t.peer.ip(), t.peer.port()), &t.bytes).unwrap();
        }
        while let Some(t) = self.iface.poll_transmit(now) {
            assert!(host.world_mut().external_transmit(self.id, &t.psdu), "node TX queue overflow");
        }
    }

    fn send_raw(&mut self, host: &mut SimHost, psdu: &[u8]) {
        assert!(host.world_mut().external_transmit(self.id, psdu));
    }
}

fn host() -> SimHost {
    let scenario = Scenario::parse(Path::new("border.toml"), SCENARIO).unwrap();
    let world = World::new(&scenario).unwrap();
    let mut router = Router::new();
    router.insert_static("fw/blob", StaticResource::new(body(0x5a), content_format::OCTET_STREAM));
    let mut host = SimHost::new(world, HostConfig::for_scenario(&scenario), router);
    assert!(host.run_until_with(2_000_000, |h| h.is_ready()), "Spinel handshake with the simulated RCP");
    host
}

/// Runs host and node until `done` or `limit_us` of medium time more.
fn drive(host: &mut SimHost, node: &mut Node, limit_us: u64, mut done: impl FnMut(&mut Node) -> bool) -> bool {
    let limit = host.now_us() + limit_us;
    host.run_until_with(limit, |h| {
        node.step(h);
        done(node)
    })
}

fn response_body(ev: &Event<SocketAddrV6>) -> Vec<u8> {
    match ev {
        Event::Response { response, .. } => {
            assert_eq!(response.code, coap::Code::Content);
            response.payload.to_vec()
        }
        other => panic!("expected a response, got {other:?}"),
    }
}

#[test]
fn node_pings_and_fetches_1k_both_ways_through_the_simulated_rcp() {
    let mut host = host();
    let mut node_router = Router::new();
    node_router.insert_static("sensor/log", StaticResource::new(body(0xa5), content_format::OCTET_STREAM));
    let mut node = Node::new(&mut host, node_router);
    let gw = host.border().address();

    // Ping: the echo reply comes back from the gateway's address.
    let now = host.now();
    let t_ping = host.now_us();
    node.iface.send_ping(now, gw, 7, 1, b"ferry").unwrap();
    assert!(drive(&mut host, &mut node, 1_000_000, |n| n.iface.stats().rx_echo_replies == 1), "echo reply");
    assert_eq!(host.border().interface().stats().rx_echo_requests, 1);
    let ping_us = host.now_us() - t_ping;

    // Downward: the node fetches 1 kB in one 1024-byte block, fragmented by the border router.
    let peer = SocketAddrV6::new(gw, COAP_PORT, 0, 0);
    let now = host.now();
    let t_down = host.now_us();
    node.coap.start_fetch(now, peer, Request::get("fw/blob"), FetchOptions { szx: 6, max_size: 4096 }).unwrap();
    assert!(drive(&mut host, &mut node, 5_000_000, |n| !n.events.is_empty()), "downward fetch finishes");
    let down_us = host.now_us() - t_down;
    assert_eq!(response_body(&node.events.remove(0)), body(0x5a));
    let tx_frag = host.border().interface().stats().tx_fragmented;
    assert!(tx_frag >= 1, "the response was fragmented downward");

    // Upward: the border router's client fetches 1 kB from the node, reassembled at the root.
    let node_peer = SocketAddrV6::new(node.address(), COAP_PORT, 0, 0);
    let now = host.now();
    host.border_mut()
        .start_fetch(now, node_peer, Request::get("sensor/log"), FetchOptions { szx: 6, max_size: 4096 })
        .unwrap();
    let mut got = None;
    let t_up = host.now_us();
    let limit = t_up + 5_000_000;
    let done = host.run_until_with(limit, |h| {
        node.step(h);
        got = got.take().or_else(|| h.border_mut().poll_event());
        got.is_some()
    });
    assert!(done, "upward fetch finishes");
    let up_us = host.now_us() - t_up;
    // Air time bounds these: ~10 full frames of 4.3 ms each way plus CSMA-CA, ACKs and the
    // UART (a 127-byte frame takes ~3 ms at 460 800 baud). Measured: ping 13.5 ms, 1 kB down
    // 120 ms, up 92 ms (seed 7).
    assert!(ping_us < 30_000, "ping took {ping_us} µs");
    assert!(down_us < 300_000 && up_us < 300_000, "1 kB took {down_us} µs down, {up_us} µs up");
    assert_eq!(response_body(got.as_ref().unwrap()), body(0xa5));
    assert!(host.border().interface().reassembly_stats().completed >= 1, "reassembled upward");
    // How the border router hears the node, by the node's own address (no DODAG route needed).
    let (heard, _) = host.border().heard_from(&node.address()).expect("heard from the node's address");
    assert!(heard.rssi < 0 && heard.lqi > 0, "{heard:?}");
    assert!(host.border().heard_from(&gw).is_none());

    // The LoWPAN side lists its resources (RFC 6690).
    let now = host.now();
    node.coap.start_request(now, peer, Request::get("/.well-known/core")).unwrap();
    assert!(drive(&mut host, &mut node, 2_000_000, |n| !n.events.is_empty()), "discovery answered");
    let links = String::from_utf8(response_body(&node.events.remove(0))).unwrap();
    assert!(links.contains("</fw/blob>"), "{links}");

    // Nothing was lost on the way and the link to the node is perfect.
    let br = host.border().stats();
    assert_eq!(br.tx_failures, 0);
    assert_eq!(br.coap_send_errors, 0);
    let link = host.border().link_stats(&MacAddr::Ext(NODE)).unwrap();
    assert_eq!(link.delivery_ratio(), Some(1.0));
    let topo = host.border().topology(host.now());
    let n = topo.neighbors.iter().find(|n| n.mac == MacAddr::Ext(NODE).to_string()).expect("node heard");
    assert_eq!(n.link.delivery_ratio, Some(1.0));
    assert!(host.uart_stats().frames_to_host > 20);
    // The root announces itself: Trickle's first DIO falls within Imin (4.1 s).
    host.run_until(host.now_us().max(6_000_000));
    assert!(host.border().interface().rpl().unwrap().stats().dio_sent >= 1, "DIOs on air");
}

#[test]
fn sleepy_node_gets_its_held_datagram_right_after_its_data_request() {
    let mut host = host();
    let mut node = Node::new(&mut host, Router::new());
    host.border_mut().set_sleepy(MacAddr::Ext(NODE), true);
    let pan = host.world().scenario().pan_id;

    // The border router sends a CoAP GET to the sleeping node: held, not sent.
    let now = host.now();
    let peer = SocketAddrV6::new(node.address(), COAP_PORT, 0, 0);
    host.border_mut().start_request(now, peer, Request::get("sensor/log")).unwrap();
    let t0 = host.now_us();
    host.run_until(t0 + 500_000);
    node.step(&mut host);
    assert!(node.udp_at.is_empty(), "nothing reaches a sleeping node");
    assert_eq!(host.border().interface().mac().held(&MacAddr::Ext(NODE)), 1);

    // The node polls; the RCP ACKs with Frame Pending and the frame follows at once.
    let poll = MacFrame::data_request(9, pan, MacAddr::Short(0x0000), MacAddr::Ext(NODE)).emit(&[]).unwrap();
    let polled_at = host.now_us();
    node.send_raw(&mut host, &poll);
    let mut acked_pending = false;
    let got = host.run_until_with(polled_at + 1_000_000, |h| {
        let now = h.now();
        let ts = h.now_us();
        for f in h.world_mut().take_external_frames() {
            if f.node != node.id {
                continue;
            }
            // The ACK of the poll: frame type 2, Frame Pending bit 4 of the first octet.
            if f.psdu.len() == 5 && f.psdu[0] & 0x07 == 2 {
                acked_pending |= f.psdu[0] & 0x10 != 0;
            }
            let _ = node.iface.handle_frame(now, &f.psdu, RxMeta { rssi: -60, lqi: f.lqi, timestamp_us: ts });
        }
        if node.iface.poll_udp().is_some() {
            node.udp_at.push(ts);
        }
        !node.udp_at.is_empty()
    });
    assert!(got, "held datagram delivered after the poll");
    assert!(acked_pending, "the RCP set Frame Pending from its source-match table");
    let delay_us = node.udp_at[0] - polled_at;
    // One poll's listen window (macMaxFrameTotalWaitTime is ~16 ms at 2.4 GHz); the host
    // round trip over the UART must fit inside it.
    assert!(delay_us < 16_000, "delivered {delay_us} µs after the poll");
    assert_eq!(host.border().interface().mac().held(&MacAddr::Ext(NODE)), 0);
    assert_eq!(host.border().interface().mac_stats().indirect_delivered, 1);
}

/// The scenario file's flat for a minute of virtual time, twice: a seed is a run.
fn flat_minute() -> (String, ferry::border::BorderStats, ferry::sim::host::UartStats, std::time::Duration) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sim/home.toml");
    let scenario = Scenario::load(&path).unwrap();
    let world = World::new(&scenario).unwrap();
    let started = Instant::now();
    let mut host = SimHost::new(world, HostConfig::for_scenario(&scenario), Router::new());
    host.run_until(60_000_000);
    let report = format!("{:?}", host.world().report());
    let t = host.border().topology(host.now());
    assert!(!t.neighbors.is_empty(), "the flat's devices are heard");
    (report, host.border().stats(), host.uart_stats(), started.elapsed())
}

#[test]
fn same_seed_same_run_and_cheap() {
    // Benchmarks may run hosts on worker threads.
    fn assert_send<T: Send>() {}
    assert_send::<SimHost>();

    let (a, stats_a, uart_a, wall) = flat_minute();
    let (b, stats_b, uart_b, _) = flat_minute();
    assert_eq!(a, b);
    assert_eq!((stats_a, uart_a), (stats_b, uart_b));
    assert!(stats_a.frames_rx > 10 && stats_a.frames_tx >= 1, "{stats_a:?}");
    // A virtual minute of the 12-device flat with its host stack costs well under a second
    // even in a debug build.
    assert!(wall < std::time::Duration::from_secs(5), "took {wall:?}");
}

#[test]
fn a_node_that_polls_is_served_on_its_next_poll_without_being_declared_sleepy() {
    let mut host = host();
    let mut node = Node::new(&mut host, Router::new());
    let pan = host.world().scenario().pan_id;
    let poll =
        |seq: u8| MacFrame::data_request(seq, pan, MacAddr::Short(0x0000), MacAddr::Ext(NODE)).emit(&[]).unwrap();

    // An empty poll: the border router learns the node sleeps between polls.
    node.send_raw(&mut host, &poll(1));
    let t = host.now_us();
    host.run_until(t + 100_000);
    assert!(host.border().interface().mac().is_sleepy(&MacAddr::Ext(NODE)));

    // So a request for it waits for the next poll instead of going out into the void.
    let now = host.now();
    let peer = SocketAddrV6::new(node.address(), COAP_PORT, 0, 0);
    host.border_mut().start_request(now, peer, Request::get("sensor/log")).unwrap();
    let t = host.now_us();
    host.run_until(t + 200_000);
    assert_eq!(host.border().interface().mac().held(&MacAddr::Ext(NODE)), 1);
    node.send_raw(&mut host, &poll(2));
    assert!(drive(&mut host, &mut node, 1_000_000, |n| !n.udp_at.is_empty()), "served on the poll");
    assert_eq!(host.border().interface().mac_stats().indirect_delivered, 1);
}
