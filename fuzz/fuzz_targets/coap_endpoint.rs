//! Arbitrary datagrams into a CoAP endpoint (server resources, Block1/Block2, Observe, and a
//! client request in flight so responses are matched too), plus the Block option decoder.
//! Nothing may panic, and every datagram the endpoint emits must parse again.
#![no_main]

use std::time::{Duration, Instant};

use ferry::coap::{content_format, BlockOpt, Config, Endpoint, FetchOptions, Request, Router, StaticResource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&first, rest)) = data.split_first() {
        if first == 0xb1 {
            // Block option decoding alone: decode, and re-encoding must round-trip.
            if let Ok(b) = BlockOpt::decode(rest) {
                assert_eq!(BlockOpt::decode(&b.encode()), Ok(b));
            }
            return;
        }
    }
    let mut r = Router::new();
    r.insert_static("a", StaticResource::new(vec![7u8; 3000], content_format::OCTET_STREAM).observable());
    r.insert_static("b", StaticResource::new("x", content_format::TEXT_PLAIN));
    let cfg = Config { max_upload: 4096, dedup_capacity: 64, ..Config::default() };
    let mut ep: Endpoint<u8> = Endpoint::new(cfg, r);
    let mut now = Instant::now();
    let _ = ep.start_fetch(now, 1, Request::get("a"), FetchOptions { szx: 2, max_size: 8192 });
    // Datagrams are length-prefixed: [peer, len, bytes…]*; time advances between them.
    let mut rest = data;
    while rest.len() >= 2 {
        let peer = rest[0] & 3;
        let len = usize::from(rest[1]).min(rest.len() - 2);
        let (dgram, tail) = rest[2..].split_at(len);
        ep.handle_datagram(now, peer, dgram);
        if peer == 3 {
            ep.set_static(now, "a", dgram.to_vec());
        }
        while let Some(t) = ep.poll_transmit(now) {
            assert!(coap_lite::Packet::from_bytes(&t.bytes).is_ok(), "emitted an unparsable datagram");
        }
        while ep.poll_event().is_some() {}
        now += Duration::from_millis(u64::from(rest[0] >> 2) * 100);
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        rest = tail;
    }
});
