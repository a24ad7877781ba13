//! ferry's forward proxy on the LoWPAN side, in virtual time: the border router serves RIOT's
//! signed vector from its catalog, and a node configured to fetch through a proxy asks for the
//! signed upstream URI (`coap://[2001:db8::1]/…`) with Proxy-Uri, block-wise at RIOT's 64 bytes
//! over the simulated RCP. The bytes come from ferry's verified cache; an URI ferry did not
//! verify gets 5.05 and nothing is forwarded.

use std::net::SocketAddrV6;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use ferry::border::COAP_PORT;
use ferry::coap::{self, Endpoint, Event, FetchOptions, Request, Router};
use ferry::deliver::Catalog;
use ferry::net::{Interface, InterfaceConfig, RxMeta};
use ferry::repo::BlobDigest;
use ferry::sim::host::{HostConfig, SimHost};
use ferry::sim::{NodeId, Scenario, World};
use ferry::suit::{Envelope, PublicKey};

const ENVELOPE: &[u8] = include_bytes!("../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
const SLOT0: &[u8] = include_bytes!("../src/suit/testdata/riot_payload_slot0.bin");
const SLOT1: &[u8] = include_bytes!("../src/suit/testdata/riot_payload_slot1.bin");
const PUBLIC_KEY: &str = include_str!("../src/suit/testdata/test_ed25519_public.pem");
const SIGNED_SLOT1: &str = "coap://[2001:db8::1]/fw/suit_update/samr21-xpro/slot1.bin";

const NODE: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x43];
const SCENARIO: &str = "seed = 7\nchannel = 26\npan_id = 0xface\n[gateway]\neui64 = \"f0:0d:fe:77:00:00:00:01\"\n\
                        short = 0x0000\n";

struct Node {
    id: NodeId,
    iface: Interface,
    coap: Endpoint<SocketAddrV6>,
    events: Vec<Event<SocketAddrV6>>,
}

impl Node {
    fn step(&mut self, host: &mut SimHost) {
        let now: Instant = host.now();
        let ts = host.now_us();
        for f in host.world_mut().take_external_frames() {
            if f.node == self.id {
                let _ = self.iface.handle_frame(now, &f.psdu, RxMeta { rssi: -60, lqi: f.lqi, timestamp_us: ts });
            }
        }
        while let Some(d) = self.iface.poll_udp() {
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
            self.iface.send_udp(now, COAP_PORT, (*t.peer.ip(), t.peer.port()), &t.bytes).expect("send");
        }
        while let Some(t) = self.iface.poll_transmit(now) {
            assert!(host.world_mut().external_transmit(self.id, &t.psdu), "node TX queue overflow");
        }
    }

    /// Fetches `uri` through ferry's proxy at 64-byte blocks; the response or the failure.
    fn fetch_via_proxy(&mut self, host: &mut SimHost, uri: &str) -> coap::Response {
        let ferry = SocketAddrV6::new(host.border().address(), COAP_PORT, 0, 0);
        let request = Request { proxy_uri: Some(uri.to_owned()), ..Request::get("") };
        let now = host.now();
        self.coap.start_fetch(now, ferry, request, FetchOptions { szx: 2, max_size: 64 * 1024 }).expect("fetch");
        let limit = host.now_us() + 60_000_000;
        assert!(
            host.run_until_with(limit, |h| {
                self.step(h);
                !self.events.is_empty()
            }),
            "the proxied fetch of {uri} finished"
        );
        match self.events.remove(0) {
            Event::Response { response, .. } => response,
            other => panic!("{uri}: {other:?}"),
        }
    }
}

#[test]
fn a_node_fetches_a_signed_uri_through_ferrys_proxy_over_the_lowpan() {
    let scenario = Scenario::parse(Path::new("proxy.toml"), SCENARIO).expect("scenario");
    let world = World::new(&scenario).expect("world");
    let mut router = Router::new();
    let catalog: Catalog<SocketAddrV6> = Catalog::new(coap::Config::default().default_szx);
    let manifest = Envelope::parse(ENVELOPE)
        .expect("parse")
        .authenticate(&[PublicKey::from_pem(PUBLIC_KEY).expect("key")])
        .expect("verifies")
        .into_manifest();
    let payloads =
        [(BlobDigest::of(SLOT0), Bytes::from_static(SLOT0)), (BlobDigest::of(SLOT1), Bytes::from_static(SLOT1))];
    catalog
        .add_manifest(&mut router, "samr21-xpro/riot.suit.2.bin", Bytes::from_static(ENVELOPE), &manifest, &payloads)
        .expect("served");
    let mut host = SimHost::new(world, HostConfig::for_scenario(&scenario), router);
    assert!(host.run_until_with(2_000_000, |h| h.is_ready()), "Spinel handshake with the simulated RCP");

    let id = host.world_mut().add_external(Some(NODE)).expect("node");
    let mut cfg =
        InterfaceConfig::new(scenario.pan_id, NODE, Some(ferry::config::NetworkConfig::default().prefix.network()));
    cfg.router = false;
    let mut node = Node {
        id,
        iface: Interface::new(cfg),
        coap: Endpoint::new(coap::Config { rng_seed: 43, ..coap::Config::default() }, Router::new()),
        events: Vec::new(),
    };

    let t0 = host.now_us();
    let got = node.fetch_via_proxy(&mut host, SIGNED_SLOT1);
    let took_us = host.now_us() - t0;
    assert_eq!(got.code, coap::Code::Content);
    assert!(got.payload == SLOT1, "{} bytes, not slot1's {}", got.payload.len(), SLOT1.len());
    // Every block was served from the catalog, at the node's 64 bytes.
    let served = catalog.drain_served();
    assert_eq!(served.len(), SLOT1.len().div_ceil(64), "{served:?}");
    assert!(served.iter().all(|s| s.path == "fw/suit_update/samr21-xpro/slot1.bin" && s.len <= 64));
    eprintln!("{} bytes through the proxy at 64-byte blocks: {} ms of simulated time", SLOT1.len(), took_us / 1000);

    for uri in ["coap://[2001:db8::1]/fw/suit_update/samr21-xpro/other.bin", "coap://[2001:db8::2]/fw/x.bin"] {
        let refused = node.fetch_via_proxy(&mut host, uri);
        assert_eq!(refused.code, coap::Code::ProxyingNotSupported, "{uri}");
    }
    assert!(catalog.drain_served().is_empty(), "nothing served for refused URIs");
}
