//! Two endpoints over an in-memory link with seeded loss and latency; the clock jumps to the
//! next deadline (quinn-proto `tests/util.rs` style).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, Packet};
use ferry::coap::{
    content_format, BlockOpt, Config, Endpoint, Event, FetchOptions, Request, RequestError, Router, StaticResource,
};

const CLIENT: u8 = 1;
const SERVER: u8 = 2;

/// Seeded: the same loss pattern every run.
type Rng = ferry::seeded::SplitMix64;

/// Datagrams on the wire: (arrival, sequence, destination, bytes), earliest first.
type InFlight = BinaryHeap<Reverse<(Instant, u64, u8, Vec<u8>)>>;

struct Link {
    rng: Rng,
    loss: f64,
    latency: Duration,
    in_flight: InFlight,
    seq: u64,
    dropped: u64,
    /// Largest Block2 SZX seen in server→client datagrams.
    max_server_szx: u8,
}

impl Link {
    fn send(&mut self, now: Instant, to: u8, bytes: Vec<u8>) {
        if to == CLIENT {
            if let Ok(p) = Packet::from_bytes(&bytes) {
                if let Some(b) = p.get_first_option(CoapOption::Block2).and_then(|v| BlockOpt::decode(v).ok()) {
                    self.max_server_szx = self.max_server_szx.max(b.szx);
                }
            }
        }
        if self.rng.chance(self.loss) {
            self.dropped += 1;
            return;
        }
        self.seq += 1;
        self.in_flight.push(Reverse((now + self.latency, self.seq, to, bytes)));
    }
}

/// Runs both endpoints until the client raises an event; bounded in steps.
fn drive(
    client: &mut Endpoint<u8>,
    server: &mut Endpoint<u8>,
    link: &mut Link,
    mut now: Instant,
    max_steps: usize,
) -> (Event<u8>, Instant) {
    for _ in 0..max_steps {
        while let Some(t) = client.poll_transmit(now) {
            assert_eq!(t.peer, SERVER);
            link.send(now, SERVER, t.bytes);
        }
        while let Some(t) = server.poll_transmit(now) {
            assert_eq!(t.peer, CLIENT);
            link.send(now, CLIENT, t.bytes);
        }
        if let Some(e) = client.poll_event() {
            return (e, now);
        }
        let next = [link.in_flight.peek().map(|Reverse((at, ..))| *at), client.poll_timeout(), server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { panic!("deadlock: nothing in flight and no timers") };
        now = now.max(next);
        while link.in_flight.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
            let Some(Reverse((_, _, to, bytes))) = link.in_flight.pop() else {
                break;
            };
            match to {
                SERVER => server.handle_datagram(now, CLIENT, &bytes),
                _ => client.handle_datagram(now, SERVER, &bytes),
            }
        }
        client.handle_timeout(now);
        server.handle_timeout(now);
    }
    panic!("drive: no result after {max_steps} steps");
}

fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..len).map(|_| r.next_u64() as u8).collect()
}

fn fetch_over_lossy_link(szx: u8, loss: f64, seed: u64) {
    let image = body(200 * 1024, seed);
    let mut router = Router::new();
    router.insert_static("fw/image.bin", StaticResource::new(image.clone(), content_format::OCTET_STREAM));
    let mut server = Endpoint::new(Config { rng_seed: seed ^ 1, default_szx: 6, ..Config::default() }, router);
    let mut client: Endpoint<u8> = Endpoint::new(Config { rng_seed: seed ^ 2, ..Config::default() }, Router::new());
    let mut link = Link {
        rng: Rng::new(seed),
        loss,
        latency: Duration::from_millis(5),
        in_flight: BinaryHeap::new(),
        seq: 0,
        dropped: 0,
        max_server_szx: 0,
    };
    let t0 = Instant::now();
    let id = client
        .start_fetch(t0, SERVER, Request::get("/fw/image.bin"), FetchOptions { szx, max_size: 1 << 20 })
        .unwrap_or_else(|e| panic!("{e}"));
    let (ev, t1) = drive(&mut client, &mut server, &mut link, t0, 2_000_000);
    match ev {
        Event::Response { id: got, response, .. } => {
            assert_eq!(got, id);
            assert_eq!(response.payload.len(), image.len());
            assert!(response.payload[..] == image[..], "body differs");
        }
        other => panic!("fetch failed: {other:?}"),
    }
    let blocks = image.len().div_ceil(16 << szx) as u64;
    let m = client.metrics();
    assert_eq!(m.fetches_completed, 1);
    assert!(link.max_server_szx <= szx, "server sent SZX {} to a client asking {szx}", link.max_server_szx);
    assert!(server.metrics().block2_blocks_served >= blocks);
    if loss > 0.0 {
        assert!(link.dropped > 0 && m.retransmissions > 0);
    }
    eprintln!(
        "szx {szx}: {blocks} blocks, {} datagrams lost, {} client retransmissions, {} duplicates at server, {:?} virtual",
        link.dropped,
        m.retransmissions,
        server.metrics().rx_duplicates,
        t1 - t0
    );
}

#[test]
fn fetch_200k_at_64_bytes_with_20_percent_loss() {
    fetch_over_lossy_link(2, 0.2, 64);
}

#[test]
fn fetch_200k_at_1024_bytes_with_20_percent_loss() {
    fetch_over_lossy_link(6, 0.2, 1024);
}

#[test]
fn fetch_without_loss_and_size_limit() {
    fetch_over_lossy_link(4, 0.0, 7);
    // The client refuses a body beyond its limit (Size2 on block 0 tells it early).
    let mut router = Router::new();
    router.insert_static("big", StaticResource::new(vec![1u8; 5000], content_format::OCTET_STREAM));
    let mut server = Endpoint::new(Config::default(), router);
    let mut client: Endpoint<u8> = Endpoint::new(Config::default(), Router::new());
    let mut link = Link {
        rng: Rng::new(3),
        loss: 0.0,
        latency: Duration::from_millis(1),
        in_flight: BinaryHeap::new(),
        seq: 0,
        dropped: 0,
        max_server_szx: 0,
    };
    let t0 = Instant::now();
    client
        .start_fetch(t0, SERVER, Request::get("big"), FetchOptions { szx: 2, max_size: 4096 })
        .unwrap_or_else(|e| panic!("{e}"));
    let (ev, _) = drive(&mut client, &mut server, &mut link, t0, 10_000);
    assert!(matches!(ev, Event::Failed { error: RequestError::TooLarge(4096), .. }), "{ev:?}");
}

#[test]
fn observe_across_the_link() {
    let mut router = Router::new();
    router.insert_static("state", StaticResource::new("v0", content_format::TEXT_PLAIN).observable());
    let mut server = Endpoint::new(Config::default(), router);
    let mut client: Endpoint<u8> = Endpoint::new(Config::default(), Router::new());
    let mut link = Link {
        rng: Rng::new(9),
        loss: 0.0,
        latency: Duration::from_millis(1),
        in_flight: BinaryHeap::new(),
        seq: 0,
        dropped: 0,
        max_server_szx: 0,
    };
    let t0 = Instant::now();
    let mut req = Request::get("state");
    req.observe = Some(0);
    let id = client.start_request(t0, SERVER, req).unwrap_or_else(|e| panic!("{e}"));
    let (ev, now) = drive(&mut client, &mut server, &mut link, t0, 1000);
    assert!(
        matches!(&ev, Event::Response { id: i, response, .. } if *i == id && response.observe.is_some() && &response.payload[..] == b"v0")
    );
    let mut now = now;
    for v in 1..=10 {
        server.set_static(now, "state", format!("v{v}"));
        let (ev, t) = drive(&mut client, &mut server, &mut link, now, 1000);
        now = t;
        match ev {
            Event::Response { id: i, response, .. } => {
                assert_eq!(i, id);
                assert_eq!(response.payload, format!("v{v}").into_bytes());
            }
            other => panic!("{other:?}"),
        }
    }
    // Cancel locally: the next notification is answered with RST and the server forgets us.
    assert!(client.cancel(now, id));
    server.set_static(now, "state", "gone");
    for _ in 0..10 {
        while let Some(t) = server.poll_transmit(now) {
            link.send(now, CLIENT, t.bytes);
        }
        while let Some(t) = client.poll_transmit(now) {
            link.send(now, SERVER, t.bytes);
        }
        now += Duration::from_millis(1);
        while let Some(Reverse((_, _, to, bytes))) = link.in_flight.pop() {
            match to {
                SERVER => server.handle_datagram(now, CLIENT, &bytes),
                _ => client.handle_datagram(now, SERVER, &bytes),
            }
        }
    }
    assert_eq!(server.observer_count(), 0);
}
