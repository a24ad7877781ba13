//! Unit tests of the endpoint with annotated byte vectors and a virtual clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

use super::*;

type Ep = Endpoint<u8>;
const PEER: u8 = 7;

fn server(body_len: usize, cfg: Config) -> Ep {
    let mut r = Router::new();
    let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
    r.insert_static("fw/image", StaticResource::new(body, content_format::OCTET_STREAM).observable());
    Endpoint::new(cfg, r)
}

fn drain(ep: &mut Ep, now: Instant) -> Vec<Packet> {
    std::iter::from_fn(|| ep.poll_transmit(now))
        .map(|t| {
            assert_eq!(t.peer, PEER);
            Packet::from_bytes(&t.bytes).unwrap_or_else(|e| panic!("we emitted garbage: {e:?}"))
        })
        .collect()
}

fn drain_raw(ep: &mut Ep, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| ep.poll_transmit(now)).map(|t| t.bytes).collect()
}

fn block2(p: &Packet) -> Option<BlockOpt> {
    p.get_first_option(CoapOption::Block2).map(|v| BlockOpt::decode(v).unwrap_or_else(|e| panic!("{e}")))
}

fn uint_opt(p: &Packet, o: CoapOption) -> Option<u32> {
    p.get_first_option(o).and_then(|v| msg::decode_uint(v))
}

fn events(ep: &mut Ep) -> Vec<Event<u8>> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// CON GET /fw/image, MID 0x1234, token 0xaa, optional Block2 value bytes.
fn get_image(mid: u16, block2: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x41, // ver 1, CON, TKL 1
        0x01, // GET
        (mid >> 8) as u8,
        mid as u8,
        0xaa, // token
        0xb2,
        b'f',
        b'w', // Uri-Path (11) "fw"
        0x05,
        b'i',
        b'm',
        b'a',
        b'g',
        b'e', // Uri-Path "image"
    ];
    if !block2.is_empty() {
        // delta 23 - 11 = 12, length n
        v.push(0xc0 | block2.len() as u8);
        v.extend_from_slice(block2);
    }
    v
}

#[test]
fn retransmission_schedule_then_timeout() {
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    let id = ep.start_request(t0, PEER, Request::get("riot/board")).unwrap_or_else(|e| panic!("{e}"));
    let first = drain_raw(&mut ep, t0);
    assert_eq!(first.len(), 1);
    // 0x4? = ver 1, CON
    assert_eq!(first[0][0] >> 4, 0x4);
    let t_first = ep.poll_timeout().unwrap_or_else(|| panic!("no timer"));
    let initial = t_first - t0;
    // ACK_TIMEOUT 2 s × [1, 1.5)
    assert!(initial >= Duration::from_secs(2) && initial < Duration::from_secs(3), "{initial:?}");
    let mut now = t0;
    let mut gap = initial;
    for n in 1..=4 {
        // Calling early changes nothing.
        ep.handle_timeout(now + gap - Duration::from_millis(1));
        assert!(drain_raw(&mut ep, now).is_empty());
        now += gap;
        assert_eq!(ep.poll_timeout(), Some(now));
        ep.handle_timeout(now);
        let again = drain_raw(&mut ep, now);
        assert_eq!(again, first, "retransmission {n} must be the same bytes");
        gap *= 2;
    }
    assert_eq!(ep.metrics().retransmissions, 4);
    now += gap; // total 31 × initial
    assert_eq!(now - t0, initial * 31);
    assert_eq!(ep.poll_timeout(), Some(now));
    ep.handle_timeout(now);
    assert!(drain_raw(&mut ep, now).is_empty());
    assert_eq!(events(&mut ep), vec![Event::Failed { id, peer: PEER, error: RequestError::Timeout(5) }]);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn duplicate_con_gets_same_response_replayed() {
    let t0 = Instant::now();
    let mut ep = server(10, Config::default());
    let req = get_image(0x1234, &[]);
    ep.handle_datagram(t0, PEER, &req);
    let r1 = drain_raw(&mut ep, t0);
    assert_eq!(r1.len(), 1);
    // 0x61: ver 1, ACK, TKL 1 | 0x45: 2.05 | MID 0x1234 echoed | token 0xaa
    assert_eq!(&r1[0][..5], &[0x61, 0x45, 0x12, 0x34, 0xaa]);
    // 0x48: ETag (4), 8 bytes of body hash
    assert_eq!(r1[0][5], 0x48);
    // 0x81: Content-Format (4 + 8 = 12), len 1, 42 | 0xff payload marker | 10 bytes body
    assert_eq!(&r1[0][14..17], &[0x81, 42, 0xff]);
    assert_eq!(r1[0].len(), 17 + 10);
    let t1 = t0 + Duration::from_secs(5);
    ep.handle_datagram(t1, PEER, &req);
    assert_eq!(drain_raw(&mut ep, t1), r1);
    assert_eq!(ep.metrics().rx_duplicates, 1);
    assert_eq!(ep.metrics().tx.of_type(MessageType::Acknowledgement), 2);
    // After EXCHANGE_LIFETIME the ID is forgotten and the request is served afresh.
    let t2 = t0 + Duration::from_secs(248);
    ep.handle_timeout(t2);
    ep.handle_datagram(t2, PEER, &req);
    assert_eq!(drain_raw(&mut ep, t2), r1);
    assert_eq!(ep.metrics().rx_duplicates, 1);
}

#[test]
fn reset_fails_request_and_ping_gets_reset() {
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    let id = ep.start_request(t0, PEER, Request::get("x")).unwrap_or_else(|e| panic!("{e}"));
    let sent = drain(&mut ep, t0);
    let mid = sent[0].header.message_id;
    // 0x70: ver 1, RST, TKL 0 | 0x00 empty | MID
    ep.handle_datagram(t0, PEER, &[0x70, 0x00, (mid >> 8) as u8, mid as u8]);
    assert_eq!(events(&mut ep), vec![Event::Failed { id, peer: PEER, error: RequestError::Reset }]);
    assert_eq!(ep.poll_timeout(), None);
    // CoAP ping: 0x40 CON, empty, MID 0xbeef → RST 0x70 with the same MID.
    ep.handle_datagram(t0, PEER, &[0x40, 0x00, 0xbe, 0xef]);
    assert_eq!(drain_raw(&mut ep, t0), vec![vec![0x70, 0x00, 0xbe, 0xef]]);
    // Malformed CON (token length 9): rejected with RST too.
    ep.handle_datagram(t0, PEER, &[0x49, 0x01, 0x00, 0x01]);
    assert_eq!(drain_raw(&mut ep, t0), vec![vec![0x70, 0x00, 0x00, 0x01]]);
    assert_eq!(ep.metrics().rx_malformed, 1);
}

#[test]
fn nstart_one_queues_requests_per_peer() {
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    let a = ep.start_request(t0, PEER, Request::get("a")).unwrap_or_else(|e| panic!("{e}"));
    let b = ep.start_request(t0, PEER, Request::get("b")).unwrap_or_else(|e| panic!("{e}"));
    let c = ep.start_request(t0, PEER + 1, Request::get("c")).unwrap_or_else(|e| panic!("{e}"));
    let out: Vec<_> = std::iter::from_fn(|| ep.poll_transmit(t0)).collect();
    // One to PEER (a), one to the other peer (c); b waits.
    assert_eq!(out.len(), 2);
    let first = Packet::from_bytes(&out[0].bytes).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(first.get_first_option(CoapOption::UriPath).map(Vec::as_slice), Some(&b"a"[..]));
    // Piggybacked 2.05 for a: 0x6? ACK with the request's token and MID.
    let mut ack = Packet::new();
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.code = MessageClass::Response(ResponseType::Content);
    ack.header.message_id = first.header.message_id;
    ack.set_token(first.get_token().to_vec());
    ack.payload = b"A".to_vec();
    ep.handle_datagram(t0, PEER, &ack.to_bytes().unwrap_or_default());
    let evs = events(&mut ep);
    assert!(matches!(&evs[..], [Event::Response { id, response, .. }] if *id == a && &response.payload[..] == b"A"));
    let next = drain(&mut ep, t0);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].get_first_option(CoapOption::UriPath).map(Vec::as_slice), Some(&b"b"[..]));
    let _ = (b, c);
    // Bounded queue.
    let cfg = Config { max_queue_per_peer: 1, ..Config::default() };
    let mut ep: Ep = Endpoint::new(cfg, Router::new());
    for _ in 0..2 {
        assert!(ep.start_request(t0, PEER, Request::get("q")).is_ok());
    }
    assert_eq!(ep.start_request(t0, PEER, Request::get("q")), Err(StartError::PeerQueueFull(1)));
}

#[test]
fn block2_never_larger_than_asked() {
    let t0 = Instant::now();
    // Server prefers 1024-byte blocks; the client (RIOT) asks for 64.
    let mut ep = server(300, Config { default_szx: 6, ..Config::default() });
    // Block2 0x02: NUM 0, M 0, SZX 2 — RIOT sends Block2 on block 0 already.
    ep.handle_datagram(t0, PEER, &get_image(1, &[0x02]));
    let r = drain(&mut ep, t0);
    assert_eq!(r[0].payload.len(), 64);
    assert_eq!(block2(&r[0]), Some(BlockOpt { num: 0, more: true, szx: 2 }));
    assert_eq!(uint_opt(&r[0], CoapOption::Size2), Some(300));
    // Block2 0x42: NUM 4, M 0, SZX 2 → bytes 256..300, last block.
    ep.handle_datagram(t0, PEER, &get_image(2, &[0x42]));
    let r = drain(&mut ep, t0);
    assert_eq!(r[0].payload.len(), 44);
    assert_eq!(r[0].payload[0], (256 % 251) as u8);
    assert_eq!(block2(&r[0]), Some(BlockOpt { num: 4, more: false, szx: 2 }));
    assert_eq!(uint_opt(&r[0], CoapOption::Size2), None);
    // Block2 0x52: NUM 5 is past the end → 4.02.
    ep.handle_datagram(t0, PEER, &get_image(3, &[0x52]));
    let r = drain(&mut ep, t0);
    assert_eq!(r[0].header.code, MessageClass::Response(ResponseType::BadOption));
    // No Block2 and a body larger than the default block: block 0 at the default SZX.
    let mut ep = server(3000, Config { default_szx: 6, ..Config::default() });
    ep.handle_datagram(t0, PEER, &get_image(4, &[]));
    let r = drain(&mut ep, t0);
    assert_eq!(block2(&r[0]), Some(BlockOpt { num: 0, more: true, szx: 6 }));
    assert_eq!(r[0].payload.len(), 1024);
    assert_eq!(uint_opt(&r[0], CoapOption::Size2), Some(3000));
    // Client asks 1024 for a 300-byte body: the whole body, Block2 M=0.
    let mut ep = server(300, Config::default());
    ep.handle_datagram(t0, PEER, &get_image(5, &[0x06]));
    let r = drain(&mut ep, t0);
    assert_eq!(r[0].payload.len(), 300);
    assert_eq!(block2(&r[0]), Some(BlockOpt { num: 0, more: false, szx: 6 }));
    // Every block size 16..1024 is honoured exactly.
    for szx in 0..=6u8 {
        let mut ep = server(5000, Config { default_szx: 6, ..Config::default() });
        ep.handle_datagram(t0, PEER, &get_image(6, &[0x10 | szx]));
        let r = drain(&mut ep, t0);
        assert_eq!(r[0].payload.len(), 16 << szx);
        assert_eq!(block2(&r[0]), Some(BlockOpt { num: 1, more: true, szx }));
    }
}

/// Echoes the length of what was uploaded.
struct Sink;
impl Resource for Sink {
    fn handle(&mut self, req: &Request) -> Outcome {
        Outcome::Respond(Response {
            payload: Bytes::from(format!(
                "{}:{}",
                req.payload.len(),
                req.payload.iter().map(|b| u32::from(*b)).sum::<u32>()
            )),
            ..Response::new(ResponseType::Changed)
        })
    }
}

fn put_block(mid: u16, num: u32, more: bool, szx: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Put);
    p.header.message_id = mid;
    p.set_token(vec![0x0b]);
    p.add_option(CoapOption::UriPath, b"up".to_vec());
    p.add_option(CoapOption::Block1, BlockOpt { num, more, szx }.encode());
    p.payload = payload.to_vec();
    p.to_bytes().unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn block1_reassembly_and_limit() {
    let t0 = Instant::now();
    let mut r = Router::new();
    r.insert("up", Box::new(Sink));
    let mut ep: Ep = Endpoint::new(Config { max_upload: 200, ..Config::default() }, r);
    let data: Vec<u8> = (0..150u8).collect();
    // Blocks of 64: 0..64 (M), 64..128 (M), 128..150 (last).
    for (i, chunk) in data.chunks(64).enumerate() {
        let num = i as u32;
        let more = (i + 1) * 64 < data.len();
        ep.handle_datagram(t0, PEER, &put_block(10 + i as u16, num, more, 2, chunk));
        let r = drain(&mut ep, t0);
        let b1 = r[0].get_first_option(CoapOption::Block1).map(|v| BlockOpt::decode(v));
        if more {
            assert_eq!(r[0].header.code, MessageClass::Response(ResponseType::Continue));
            assert_eq!(b1, Some(Ok(BlockOpt { num, more: true, szx: 2 })));
        } else {
            assert_eq!(r[0].header.code, MessageClass::Response(ResponseType::Changed));
            assert_eq!(b1, Some(Ok(BlockOpt { num, more: false, szx: 2 })));
            let sum: u32 = data.iter().map(|b| u32::from(*b)).sum();
            assert_eq!(r[0].payload, format!("150:{sum}").into_bytes());
        }
    }
    assert_eq!(ep.metrics().block1_transfers_completed, 1);
    // Out of order: block 2 without 0 and 1 → 4.08.
    ep.handle_datagram(t0, PEER, &put_block(20, 2, false, 2, &[1]));
    assert_eq!(drain(&mut ep, t0)[0].header.code, MessageClass::Response(ResponseType::RequestEntityIncomplete));
    // Beyond max_upload (200): 4.13 with Size1 200.
    for i in 0..3u16 {
        ep.handle_datagram(t0, PEER, &put_block(30 + i, u32::from(i), true, 2, &[0u8; 64]));
    }
    let r = drain(&mut ep, t0);
    assert_eq!(r[2].header.code, MessageClass::Response(ResponseType::Continue));
    ep.handle_datagram(t0, PEER, &put_block(33, 3, true, 2, &[0u8; 64]));
    let r = drain(&mut ep, t0);
    assert_eq!(r[0].header.code, MessageClass::Response(ResponseType::RequestEntityTooLarge));
    assert_eq!(uint_opt(&r[0], CoapOption::Size1), Some(200));
}

#[test]
fn observe_register_notify_and_reset() {
    let t0 = Instant::now();
    let mut ep = server(10, Config { observe_con_every: 3, ..Config::default() });
    // CON GET /fw/image with Observe 0 (option 6, empty value): 0x60 → delta 6, len 0;
    // then Uri-Path delta 5 (11).
    let reg = [0x41, 0x01, 0x00, 0x01, 0xcc, 0x60, 0x52, b'f', b'w', 0x05, b'i', b'm', b'a', b'g', b'e'];
    ep.handle_datagram(t0, PEER, &reg);
    let r = drain(&mut ep, t0);
    let first_seq = uint_opt(&r[0], CoapOption::Observe).unwrap_or_else(|| panic!("no Observe in answer"));
    assert_eq!(ep.observer_count(), 1);
    let mut last = first_seq;
    let mut types = Vec::new();
    for i in 0..3u8 {
        assert!(ep.set_static(t0, "fw/image", vec![i; 4]));
        let n = drain(&mut ep, t0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].get_token(), &[0xcc]);
        assert_eq!(n[0].payload, vec![i; 4]);
        let seq = uint_opt(&n[0], CoapOption::Observe).unwrap_or(0);
        assert!(seq > last, "sequence numbers increase");
        last = seq;
        types.push(n[0].header.get_type());
        if n[0].header.get_type() == MessageType::Confirmable {
            // The client ACKs the CON notification.
            let mid = n[0].header.message_id;
            ep.handle_datagram(t0, PEER, &[0x60, 0x00, (mid >> 8) as u8, mid as u8]);
        }
    }
    // Every third notification is confirmable.
    assert_eq!(types, [MessageType::NonConfirmable, MessageType::NonConfirmable, MessageType::Confirmable]);
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(247)), "only the dedup timer remains");
    // The client forgot the token: it answers the next notification with RST.
    ep.set_static(t0, "fw/image", b"new".to_vec());
    let n = drain(&mut ep, t0);
    let mid = n[0].header.message_id;
    ep.handle_datagram(t0, PEER, &[0x70, 0x00, (mid >> 8) as u8, mid as u8]);
    assert_eq!(ep.observer_count(), 0);
    assert_eq!(ep.notify(t0, "fw/image"), 0);
}

/// Defers every request.
struct Later;
impl Resource for Later {
    fn handle(&mut self, _req: &Request) -> Outcome {
        Outcome::Defer
    }
}

#[test]
fn separate_response_server_and_client() {
    let t0 = Instant::now();
    let mut r = Router::new();
    r.insert("slow", Box::new(Later));
    let mut srv: Ep = Endpoint::new(Config::default(), r);
    // CON GET /slow, MID 0x0042, token 0x77 0x88
    let req = [0x42, 0x01, 0x00, 0x42, 0x77, 0x88, 0xb4, b's', b'l', b'o', b'w'];
    srv.handle_datagram(t0, PEER, &req);
    // Empty ACK first: 0x60 ACK TKL 0, code 0, same MID.
    assert_eq!(drain_raw(&mut srv, t0), vec![vec![0x60, 0x00, 0x00, 0x42]]);
    // A duplicate gets the empty ACK again.
    srv.handle_datagram(t0, PEER, &req);
    assert_eq!(drain_raw(&mut srv, t0), vec![vec![0x60, 0x00, 0x00, 0x42]]);
    let evs = events(&mut srv);
    let Some(Event::Deferred { id, .. }) = evs.first() else { panic!("no Deferred event: {evs:?}") };
    assert!(srv.respond(t0, *id, Response::content(0, "done")).is_ok());
    assert_eq!(srv.respond(t0, *id, Response::content(0, "twice")), Err(RespondError::Unknown));
    let sep = drain(&mut srv, t0);
    assert_eq!(sep[0].header.get_type(), MessageType::Confirmable);
    assert_eq!(sep[0].get_token(), &[0x77, 0x88]);
    assert_eq!(sep[0].payload, b"done");
    // Unacknowledged separate responses are retransmitted; the ACK stops that.
    assert!(srv.poll_timeout().is_some_and(|t| t < t0 + Duration::from_secs(3)));
    let mid = sep[0].header.message_id;
    srv.handle_datagram(t0, PEER, &[0x60, 0x00, (mid >> 8) as u8, mid as u8]);
    assert!(srv.poll_timeout().is_some_and(|t| t > t0 + Duration::from_secs(200)));

    // Client side: empty ACK, then the CON response, which the client ACKs.
    let mut cli: Ep = Endpoint::new(Config::default(), Router::new());
    let id = cli.start_request(t0, PEER, Request::get("slow")).unwrap_or_else(|e| panic!("{e}"));
    let out = drain(&mut cli, t0);
    let (cmid, tok) = (out[0].header.message_id, out[0].get_token().to_vec());
    cli.handle_datagram(t0, PEER, &[0x60, 0x00, (cmid >> 8) as u8, cmid as u8]);
    assert!(drain(&mut cli, t0).is_empty());
    let mut resp = Packet::new();
    resp.header.set_type(MessageType::Confirmable);
    resp.header.code = MessageClass::Response(ResponseType::Content);
    resp.header.message_id = 0x5151;
    resp.set_token(tok);
    resp.payload = b"late".to_vec();
    cli.handle_datagram(t0, PEER, &resp.to_bytes().unwrap_or_default());
    assert_eq!(drain_raw(&mut cli, t0), vec![vec![0x60, 0x00, 0x51, 0x51]]);
    let evs = events(&mut cli);
    assert!(
        matches!(&evs[..], [Event::Response { id: i, response, .. }] if *i == id && &response.payload[..] == b"late")
    );
    // An unknown token is rejected with RST.
    resp.set_token(vec![1, 2, 3]);
    resp.header.message_id = 0x5152;
    cli.handle_datagram(t0, PEER, &resp.to_bytes().unwrap_or_default());
    assert_eq!(drain_raw(&mut cli, t0), vec![vec![0x70, 0x00, 0x51, 0x52]]);
}

#[test]
fn unknown_critical_option_and_proxy() {
    let t0 = Instant::now();
    let mut ep = server(1, Config::default());
    // CON GET, option 2049? keep small: option 13 (odd, unknown) via delta 13 ext 0 → 0xd0 0x00
    ep.handle_datagram(t0, PEER, &[0x40, 0x01, 0x00, 0x09, 0xd0, 0x00]);
    assert_eq!(drain(&mut ep, t0)[0].header.code, MessageClass::Response(ResponseType::BadOption));
    // Proxy-Uri (35): delta 13 ext 22, len 1 "x"
    ep.handle_datagram(t0, PEER, &[0x40, 0x01, 0x00, 0x0a, 0xd1, 22, b'x']);
    assert_eq!(drain(&mut ep, t0)[0].header.code, MessageClass::Response(ResponseType::ProxyingNotSupported));
}

/// A stable-toolchain stand-in for the cargo-fuzz target: mutated valid datagrams and random
/// bytes must never panic the endpoint, and all it emits must parse.
#[test]
fn random_datagrams_never_panic() {
    let mut rng = crate::seeded::SplitMix64::new(0x1234_5678_9abc_def0);
    let mut next = move || rng.next_u64();
    let seeds: Vec<Vec<u8>> = vec![
        get_image(1, &[0x02]),
        get_image(2, &[0x0c, 0x80, 0x02]),
        put_block(3, 0, true, 2, &[0u8; 64]),
        vec![0x41, 0x01, 0x00, 0x01, 0xcc, 0x60, 0x52, b'f', b'w', 0x05, b'i', b'm', b'a', b'g', b'e'],
        vec![0x60, 0x45, 0x00, 0x01, 0xff, 1, 2, 3],
        vec![0x70, 0x00, 0x00, 0x01],
    ];
    let t0 = Instant::now();
    let mut ep = server(3000, Config { max_upload: 1024, dedup_capacity: 32, ..Config::default() });
    ep.router_mut().insert("up", Box::new(Sink));
    let mut now = t0;
    for i in 0..50_000u32 {
        if i % 1000 == 0 {
            let _ = ep.start_fetch(now, PEER, Request::get("x"), FetchOptions { szx: 2, max_size: 4096 });
        }
        let r = next();
        let mut d = if r % 5 == 0 {
            (0..(r >> 8) % 40).map(|_| next() as u8).collect()
        } else {
            seeds[(r as usize >> 3) % seeds.len()].clone()
        };
        for _ in 0..(r >> 16) % 4 {
            if d.is_empty() {
                break;
            }
            let at = next() as usize % d.len();
            d[at] = next() as u8;
        }
        ep.handle_datagram(now, PEER, &d);
        if i % 97 == 0 {
            ep.set_static(now, "fw/image", d.clone());
        }
        for t in std::iter::from_fn(|| ep.poll_transmit(now)) {
            assert!(Packet::from_bytes(&t.bytes).is_ok());
        }
        while ep.poll_event().is_some() {}
        now += Duration::from_millis(next() % 3000);
        ep.handle_timeout(now);
    }
}

#[test]
fn cancel_hands_the_nstart_slot_on() {
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    let a = ep.start_request(t0, PEER, Request::get("a")).unwrap_or_else(|e| panic!("{e}"));
    let _b = ep.start_request(t0, PEER, Request::get("b")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(drain(&mut ep, t0).len(), 1);
    assert!(ep.cancel(t0, a));
    let next = drain(&mut ep, t0);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].get_first_option(CoapOption::UriPath).map(Vec::as_slice), Some(&b"b"[..]));
    assert!(!ep.cancel(t0, a));
}

#[test]
fn fetch_fails_when_the_etag_changes_mid_transfer() {
    let t0 = Instant::now();
    let mut srv = server(1000, Config::default());
    let mut cli: Ep = Endpoint::new(Config { rng_seed: 3, ..Config::default() }, Router::new());
    let id = cli
        .start_fetch(t0, PEER, Request::get("fw/image"), FetchOptions { szx: 2, max_size: 4096 })
        .unwrap_or_else(|e| panic!("{e}"));
    for round in 0..20 {
        if round == 3 {
            srv.router_mut().set_static("fw/image", vec![9u8; 1000]);
        }
        for t in std::iter::from_fn(|| cli.poll_transmit(t0)).collect::<Vec<_>>() {
            srv.handle_datagram(t0, PEER, &t.bytes);
        }
        for t in std::iter::from_fn(|| srv.poll_transmit(t0)).collect::<Vec<_>>() {
            cli.handle_datagram(t0, PEER, &t.bytes);
        }
        if let Some(ev) = cli.poll_event() {
            assert_eq!(
                ev,
                Event::Failed {
                    id,
                    peer: PEER,
                    error: RequestError::BadBlock("representation changed during the transfer (ETag)")
                }
            );
            return;
        }
    }
    panic!("the fetch did not notice the change");
}

/// A piggybacked 2.05 answering `req` (one of our CONs), as a sleepy device sends it.
fn piggybacked_answer(req: &Packet) -> Vec<u8> {
    let mut ans = Packet::new();
    ans.header.set_version(1);
    ans.header.set_type(MessageType::Acknowledgement);
    ans.header.code = MessageClass::Response(ResponseType::Content);
    ans.header.message_id = req.header.message_id;
    ans.set_token(req.get_token().to_vec());
    ans.payload = b"ok".to_vec();
    ans.to_bytes().unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn an_answer_after_we_gave_up_teaches_the_peers_wait() {
    // A sleepy device behind a router polls every 300 s: its router holds our request until
    // then, long after our four retransmissions (31 × 2-3 s) ran out.
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    let first = ep.start_request(t0, PEER, Request::get("ferry/status")).unwrap_or_else(|e| panic!("{e}"));
    let sent = drain(&mut ep, t0);
    while let Some(t) = ep.poll_timeout() {
        ep.handle_timeout(t);
        drain(&mut ep, t);
    }
    assert!(
        matches!(events(&mut ep).as_slice(), [Event::Failed { id, error: RequestError::Timeout(5), .. }] if *id == first)
    );
    assert_eq!(ep.answer_latency(&PEER), None);

    // The device wakes 300 s after the first copy and answers it.
    let woke = t0 + Duration::from_secs(300);
    ep.handle_datagram(woke, PEER, &piggybacked_answer(&sent[0]));
    assert!(events(&mut ep).is_empty(), "a late answer completes nothing");
    assert_eq!(ep.metrics().late_answers, 1);
    assert_eq!(ep.answer_latency(&PEER), Some(Duration::from_secs(300)));

    // The next request waits 300-450 s before its first retransmission and is answered.
    let t1 = woke + Duration::from_secs(10);
    let second = ep.start_request(t1, PEER, Request::get("ferry/status")).unwrap_or_else(|e| panic!("{e}"));
    let sent = drain(&mut ep, t1);
    let wait = ep.poll_timeout().map(|t| t - t1).unwrap_or_default();
    assert!(wait >= Duration::from_secs(300) && wait < Duration::from_secs(450), "{wait:?}");
    let answered = t1 + Duration::from_secs(290);
    ep.handle_timeout(answered);
    assert!(drain(&mut ep, answered).is_empty(), "no copy piles up at the router");
    ep.handle_datagram(answered, PEER, &piggybacked_answer(&sent[0]));
    assert!(matches!(events(&mut ep).as_slice(), [Event::Response { id, .. }] if *id == second));

    // Prompt answers (the device now polls fast) shorten the wait again, halving it.
    let mut now = answered;
    for _ in 0..8 {
        let id = ep.start_request(now, PEER, Request::get("suit/slot/active")).unwrap_or_else(|e| panic!("{e}"));
        let sent = drain(&mut ep, now);
        now += Duration::from_millis(100);
        ep.handle_datagram(now, PEER, &piggybacked_answer(&sent[0]));
        assert!(matches!(events(&mut ep).as_slice(), [Event::Response { id: got, .. }] if *got == id));
    }
    assert_eq!(ep.answer_latency(&PEER), None);
}

#[test]
fn an_unsolicited_answer_teaches_nothing() {
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    let mut stray = Packet::new();
    stray.header.set_version(1);
    stray.header.message_id = 0x4242;
    stray.set_token(vec![1, 2, 3]);
    ep.handle_datagram(t0, PEER, &piggybacked_answer(&stray));
    assert_eq!(ep.metrics().late_answers, 0);
    assert_eq!(ep.answer_latency(&PEER), None);
}

/// A CON GET of `path` with message ID `mid` and token 0xbb.
fn con_get(mid: u16, path: &str) -> Vec<u8> {
    let mut pkt = Packet::new();
    pkt.header.set_version(1);
    pkt.header.set_type(MessageType::Confirmable);
    pkt.header.message_id = mid;
    pkt.set_token(vec![0xbb]);
    Request::get(path).write_into(&mut pkt);
    pkt.to_bytes().unwrap_or_else(|e| panic!("{e:?}"))
}

/// A restarted server holds requests for what it does not serve yet: the client's
/// retransmission of the same message is served once the resource is there, and unknown paths
/// get 4.04 again when the hold ends (or runs out).
#[test]
fn requests_for_paths_not_served_yet_are_held_until_they_are() {
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    ep.router_mut().insert_static("ferry/version", StaticResource::new(&b"1"[..], content_format::TEXT_PLAIN));
    ep.hold_unknown_until(t0 + Duration::from_secs(30));
    let req = get_image(0x0101, &[]);
    ep.handle_datagram(t0, PEER, &req);
    assert!(drain_raw(&mut ep, t0).is_empty(), "an unknown path is not answered while held");
    assert_eq!(ep.metrics().rx_held, 1);
    // What is served is answered as usual meanwhile.
    ep.handle_datagram(t0, PEER, &con_get(0x0102, "ferry/version"));
    let answered = drain(&mut ep, t0);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].header.code, MessageClass::Response(ResponseType::Content));

    // The image is added; the client's retransmission (same message ID) is served, not taken
    // for a duplicate of a request answered with nothing.
    ep.router_mut().insert_static("fw/image", StaticResource::new(vec![9u8; 10], content_format::OCTET_STREAM));
    let t1 = t0 + Duration::from_secs(2);
    ep.handle_datagram(t1, PEER, &req);
    let served = drain(&mut ep, t1);
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].header.code, MessageClass::Response(ResponseType::Content));
    assert_eq!(served[0].header.message_id, 0x0101);
    assert_eq!(served[0].payload, vec![9u8; 10]);

    // Once released, an unknown path gets 4.04 at once.
    ep.answer_unknown();
    ep.handle_datagram(t1, PEER, &con_get(0x0103, "fw/other"));
    let not_found = drain(&mut ep, t1);
    assert_eq!(not_found.len(), 1);
    assert_eq!(not_found[0].header.code, MessageClass::Response(ResponseType::NotFound));

    // A hold that is never released runs out on its own.
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    ep.hold_unknown_until(t0 + Duration::from_secs(30));
    let late = t0 + Duration::from_secs(31);
    ep.handle_datagram(late, PEER, &req);
    let not_found = drain(&mut ep, late);
    assert_eq!(not_found.len(), 1);
    assert_eq!(not_found[0].header.code, MessageClass::Response(ResponseType::NotFound));
    assert_eq!(ep.metrics().rx_held, 0);
}

/// Sends a request to PEER at `now`; returns its first copy and the wait before the first
/// retransmission.
fn request_and_wait(ep: &mut Ep, now: Instant) -> (Packet, Duration) {
    ep.start_request(now, PEER, Request::get("suit/version")).unwrap_or_else(|e| panic!("{e}"));
    let sent = drain(ep, now);
    assert_eq!(sent.len(), 1);
    let wait = ep.poll_timeout().map(|t| t - now).unwrap_or_else(|| panic!("no retransmission timer"));
    (sent[0].clone(), wait)
}

#[test]
fn a_peer_that_answers_promptly_is_retransmitted_to_sooner() {
    let t0 = Instant::now();
    let mut ep: Ep = Endpoint::new(Config::default(), Router::new());
    let secs = Duration::from_secs;
    // Unknown peer: RFC 7252's 2-3 s.
    let (req, wait) = request_and_wait(&mut ep, t0);
    assert!(wait >= secs(2) && wait < secs(3), "{wait:?}");
    assert_eq!(ep.learned_ack_timeout(&PEER), None);
    // It answers in 40 ms: SRTT + 4 × RTTVAR is 120 ms, held at the 1 s floor.
    let mut now = t0 + Duration::from_millis(40);
    ep.handle_datagram(now, PEER, &piggybacked_answer(&req));
    events(&mut ep);
    assert_eq!(ep.learned_ack_timeout(&PEER), Some(secs(1)));
    let (req, wait) = request_and_wait(&mut ep, now);
    assert!(wait >= secs(1) && wait < Duration::from_millis(1500), "{wait:?}");

    // Lost on a busy channel: the copy 1-1.5 s later is answered. That answer may be to
    // either copy, so it teaches nothing (Karn).
    now += wait;
    ep.handle_timeout(now);
    assert_eq!(drain(&mut ep, now).len(), 1, "retransmitted after the learned timeout");
    now += Duration::from_millis(900);
    ep.handle_datagram(now, PEER, &piggybacked_answer(&req));
    assert!(matches!(events(&mut ep).as_slice(), [Event::Response { .. }]));
    assert_eq!(ep.learned_ack_timeout(&PEER), Some(secs(1)));

    // Answers slow to 700 ms (a loaded multi-hop path): the wait grows with them, never past
    // ACK_TIMEOUT.
    for _ in 0..6 {
        let (req, _) = request_and_wait(&mut ep, now);
        now += Duration::from_millis(700);
        ep.handle_datagram(now, PEER, &piggybacked_answer(&req));
        events(&mut ep);
    }
    let learned = ep.learned_ack_timeout(&PEER).unwrap_or_default();
    assert!(learned > secs(1) && learned <= secs(2), "{learned:?}");
    for _ in 0..6 {
        let (req, _) = request_and_wait(&mut ep, now);
        now += Duration::from_millis(1900);
        ep.handle_datagram(now, PEER, &piggybacked_answer(&req));
        events(&mut ep);
    }
    assert_eq!(ep.learned_ack_timeout(&PEER), Some(secs(2)));
}

#[test]
fn an_empty_ack_is_a_round_trip_and_a_fixed_timeout_stays_fixed() {
    let t0 = Instant::now();
    let secs = Duration::from_secs;
    let fixed = Config { min_ack_timeout: secs(2), ..Config::default() };
    for (cfg, expected) in [(Config::default(), secs(1)), (fixed, secs(2))] {
        let mut ep: Ep = Endpoint::new(cfg, Router::new());
        let (req, _) = request_and_wait(&mut ep, t0);
        // The server acknowledges at once and answers separately later.
        let mut ack = Packet::new();
        ack.header.set_version(1);
        ack.header.set_type(MessageType::Acknowledgement);
        ack.header.code = MessageClass::Empty;
        ack.header.message_id = req.header.message_id;
        let now = t0 + Duration::from_millis(30);
        ep.handle_datagram(now, PEER, &ack.to_bytes().unwrap_or_else(|e| panic!("{e:?}")));
        assert_eq!(ep.learned_ack_timeout(&PEER), Some(expected));
        let mut separate = Packet::new();
        separate.header.set_version(1);
        separate.header.set_type(MessageType::NonConfirmable);
        separate.header.code = MessageClass::Response(ResponseType::Content);
        separate.set_token(req.get_token().to_vec());
        let now = now + secs(5);
        ep.handle_datagram(now, PEER, &separate.to_bytes().unwrap_or_else(|e| panic!("{e:?}")));
        assert!(matches!(events(&mut ep).as_slice(), [Event::Response { .. }]));
        assert_eq!(ep.learned_ack_timeout(&PEER), Some(expected), "a separate response is no round trip");
        let (_, wait) = request_and_wait(&mut ep, now);
        assert!(wait >= expected && wait < expected.mul_f64(1.5), "{wait:?}");
    }
}
