//! Two ferry UDP shells on loopback, no external tools: a block-wise fetch, Observe, and shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use ferry::coap::udp::{self, UdpPeer};
use ferry::coap::{content_format, Config, Endpoint, Event, FetchOptions, Request, Router, StaticResource};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_to_shell_fetch_and_observe() {
    let body: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let mut r = Router::new();
    r.insert_static("img", StaticResource::new(body.clone(), content_format::OCTET_STREAM));
    r.insert_static("state", StaticResource::new("a", content_format::TEXT_PLAIN).observable());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    let (srv, srv_h, _srv_ev) =
        udp::bind(&[any], Endpoint::new(Config::default(), r)).await.unwrap_or_else(|e| panic!("{e}"));
    let (cli, cli_h, mut cli_ev) =
        udp::bind(&[any], Endpoint::new(Config { rng_seed: 2, ..Config::default() }, Router::new()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let stop = CancellationToken::new();
    let srv_task = tokio::spawn(srv.run(stop.clone()));
    let cli_task = tokio::spawn(cli.run(stop.clone()));
    let peer = UdpPeer { socket: 0, addr: srv_h.local_addrs()[0] };

    let id = cli_h
        .with(move |ep, now| ep.start_fetch(now, peer, Request::get("img"), FetchOptions { szx: 6, max_size: 1 << 20 }))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = tokio::time::timeout(Duration::from_secs(30), cli_ev.recv()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&ev, Some(Event::Response { id: i, response, .. }) if *i == id && response.payload[..] == body[..]),
        "{ev:?}"
    );

    let mut obs = Request::get("state");
    obs.observe = Some(0);
    let oid = cli_h
        .with(move |ep, now| ep.start_request(now, peer, obs))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let first = tokio::time::timeout(Duration::from_secs(30), cli_ev.recv()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&first, Some(Event::Response { id, response, .. }) if *id == oid && &response.payload[..] == b"a")
    );
    srv_h.with(|ep, now| ep.set_static(now, "state", "b")).await.unwrap_or_else(|e| panic!("{e}"));
    let note = tokio::time::timeout(Duration::from_secs(30), cli_ev.recv()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&note, Some(Event::Response { id, response, .. }) if *id == oid && &response.payload[..] == b"b"));

    stop.cancel();
    let srv_ep = srv_task.await.unwrap_or_else(|e| panic!("{e}"));
    let _ = cli_task.await;
    assert!(srv_ep.metrics().block2_blocks_served >= 49);
    assert!(srv_h.with(|_, _| ()).await.is_err(), "handle reports a stopped shell");
}
