//! The world in real time behind an in-memory byte stream, opened by ferryd's own radio
//! driver: the Spinel handshake runs against the simulated RCP, and a frame to a simulated
//! always-on device comes back ACKed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry::radio::client::{Settings, TxError, TxOptions};
use ferry::radio::link::{spawn_with, Connection, Opener};
use ferry::radio::RadioMetrics;
use ferry::sim::frame::{Address, Header};
use ferry::sim::{spawn_realtime, Scenario, WorldHandle};
use tokio::io::DuplexStream;
use tokio_util::sync::CancellationToken;

fn home() -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sim/home.toml");
    Scenario::load(&path).unwrap()
}

/// The first open takes the stream `spawn_realtime` returned; reopens attach a fresh one.
fn opener(first: DuplexStream, handle: WorldHandle) -> Opener {
    let first = Arc::new(Mutex::new(Some(first)));
    Box::new(move || {
        let (first, handle) = (first.clone(), handle.clone());
        Box::pin(async move {
            let taken = first.lock().ok().and_then(|mut f| f.take());
            let io = match taken {
                Some(io) => io,
                None => handle.connect().await.map_err(std::io::Error::other)?,
            };
            Ok(Connection::new(io))
        })
    })
}

fn data_frame(seq: u8, s: &Scenario, dst: u16) -> Vec<u8> {
    Header::data(seq, s.pan_id, Address::Short(dst), Address::Short(s.gateway.short), true)
        .emit_frame(b"hello from ferryd")
        .unwrap()
        .as_slice()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferryd_radio_driver_talks_to_the_simulated_rcp() {
    let scenario = home();
    let shutdown = CancellationToken::new();
    let (stream, world) = spawn_realtime(scenario.clone(), shutdown.clone()).unwrap();
    let settings = Settings {
        channel: scenario.channel,
        pan_id: scenario.pan_id,
        short_address: scenario.gateway.short,
        ..Settings::default()
    };
    let (radio, _frames) =
        spawn_with(opener(stream, world.clone()), "sim".into(), settings, RadioMetrics::standalone(), shutdown.clone());
    let ready = tokio::time::timeout(Duration::from_secs(10), radio.wait_ready()).await;
    assert_eq!(ready, Ok(true), "Spinel handshake with the simulated RCP");
    let info = radio.state().borrow().info.clone().unwrap();
    assert_eq!(info.hwaddr, scenario.gateway.eui64.0);

    let plug = scenario.node("plug-kitchen").unwrap().short;
    let ack = tokio::time::timeout(
        Duration::from_secs(5),
        radio.send_frame(&data_frame(1, &scenario, plug), TxOptions::default()),
    )
    .await
    .unwrap();
    let ack = ack.expect("the always-on plug ACKs");
    assert!(!ack.frame_pending);
    assert!(ack.ack.is_some());

    // Nobody has short address 0x0777: no ACK after the retries.
    let lost = radio.send_frame(&data_frame(2, &scenario, 0x0777), TxOptions::default()).await;
    assert_eq!(lost, Err(TxError::NoAck));

    // The frame crossed the simulated air: the plug's counters saw it.
    let report = world.report().await.unwrap();
    let plug_row = report.nodes.iter().find(|n| n.name == "plug-kitchen").unwrap();
    assert!(plug_row.radio.acks_sent >= 1 && plug_row.mac.frames_to_upper >= 1, "{plug_row:?}");
    shutdown.cancel();
}

/// The one call ferryd needs for `sim:FILE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_url_opener_reconnects() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sim/home.toml");
    let scenario = home();
    let shutdown = CancellationToken::new();
    let (mut opener, world) = ferry::sim::world::sim_opener(&path, shutdown.clone()).unwrap();
    // A first connection that goes away at once: the next open attaches a new stream.
    drop(opener().await.unwrap());
    let settings = Settings { channel: scenario.channel, pan_id: scenario.pan_id, ..Settings::default() };
    let (radio, _frames) = spawn_with(opener, "sim".into(), settings, RadioMetrics::standalone(), shutdown.clone());
    let ready = tokio::time::timeout(Duration::from_secs(10), radio.wait_ready()).await;
    assert_eq!(ready, Ok(true));
    assert!(world.report().await.is_ok());
    shutdown.cancel();
}
