//! The ZEP v2 bridge with ZEP peers written here on loopback (as RIOT `native` nodes would
//! speak it): HELLO and first-frame learning, frames between peers and simulated devices
//! through the medium, ACKs from the medium, LQI rewritten, no echo to the sender.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferry::sim::device::{RxMeta, Upper};
use ferry::sim::frame::{Address, FrameType, Header};
use ferry::sim::world::spawn_world;
use ferry::sim::zep::{spawn_bridge, ZepRepr, ZepType};
use ferry::sim::{Scenario, World};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const PEER_A: u16 = 0x0099;
const PEER_B_EUI: [u8; 8] = [0x02, 0, 0, 0, 0, 0, 0xbb, 0x01];

fn home() -> Scenario {
    Scenario::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sim/home.toml")).unwrap()
}

fn zep(kind: ZepType, payload: Vec<u8>) -> Vec<u8> {
    ZepRepr { kind, channel: 26, device_id: 1, lqi_mode: 1, lqi: 0xff, timestamp: 0, seq: 1, payload }.emit().unwrap()
}

fn frame(seq: u8, dst: u16, src: u16, ack: bool, payload: &[u8]) -> Vec<u8> {
    Header::data(seq, 0xface, Address::Short(dst), Address::Short(src), ack)
        .emit_frame(payload)
        .unwrap()
        .as_slice()
        .to_vec()
}

/// The next frame for a peer within `wait`, skipping the flat's own broadcasts: its RIOT
/// nodes solicit routers and DIOs at boot, and a peer linked to everyone hears them.
async fn recv(sock: &UdpSocket, wait: Duration) -> Option<ZepRepr> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 512];
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await.ok()?.ok()?;
        let repr = ZepRepr::parse(&buf[..n]).expect("the bridge sends valid ZEP v2");
        let boot_traffic = Header::parse(&repr.payload)
            .is_ok_and(|h| h.dst == Address::Short(0xffff) && h.src != Address::Short(PEER_A));
        if !boot_traffic {
            return Some(repr);
        }
    }
}

/// Sends one frame from a simulated device.
struct OneFrame(Option<Vec<u8>>);

impl Upper for OneFrame {
    fn on_frame(&mut self, _now_us: u64, _psdu: &[u8], _meta: &RxMeta) {}
    fn poll_transmit(&mut self, _now_us: u64) -> Option<Vec<u8>> {
        self.0.take()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zep_peers_share_the_simulated_air() {
    let shutdown = CancellationToken::new();
    let world = spawn_world(World::new(&home()).unwrap(), None, shutdown.clone());
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (bridge, _task) = spawn_bridge(listen, world.clone(), 26, shutdown.clone()).await.unwrap();
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let short = Duration::from_millis(300);

    // B announces itself; A is learnt from its first frame, a unicast to an always-on plug.
    b.send_to(&zep(ZepType::Hello, PEER_B_EUI.to_vec()), bridge).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let plug = home().node("plug-kitchen").unwrap().short;
    a.send_to(&zep(ZepType::Data, frame(7, plug, PEER_A, true, b"hi plug")), bridge).await.unwrap();
    let ack = recv(&a, Duration::from_secs(2)).await.expect("A gets the plug's ACK");
    let h = Header::parse(&ack.payload).unwrap();
    assert_eq!((h.frame_type, h.seq), (FrameType::Ack, Some(7)));
    assert_eq!(ack.lqi, 170, "LQI of a -60 dBm link, rewritten by the bridge");
    assert!(recv(&a, short).await.is_none(), "no echo of A's own frame");
    // B is not addressed: the bridge forwards only what B's simulated radio accepts.
    assert!(recv(&b, short).await.is_none());

    // A broadcast from A reaches B with the same bytes, not A.
    // A broadcast is not acknowledged: one that collides with the flat's boot traffic is lost,
    // so A sends it again, as a stack would its next DIS or RS.
    let bcast = frame(8, 0xffff, PEER_A, false, b"to everyone");
    let mut got = None;
    for _ in 0..4 {
        a.send_to(&zep(ZepType::Data, bcast.clone()), bridge).await.unwrap();
        got = recv(&b, Duration::from_millis(700)).await;
        if got.is_some() {
            break;
        }
    }
    let got = got.expect("B hears A's broadcast");
    assert_eq!(got.payload, bcast);
    assert_eq!(got.kind, ZepType::Data);
    assert!(recv(&a, short).await.is_none(), "no echo");

    // A simulated device sends to A; the medium ACKs on A's behalf in air time. Counted from
    // here: the plug solicited a router at boot.
    let plug_row = |r: &ferry::sim::world::Report| {
        let row = r.nodes.iter().find(|n| n.name == "plug-kitchen").unwrap();
        (row.mac.upper_frames_sent, row.radio.tx_ok, row.radio.no_acks)
    };
    let before = plug_row(&world.report().await.unwrap());
    let to_a = frame(9, PEER_A, plug, true, b"hi A");
    world
        .with(move |w| {
            let (d, m) = w.device_mut("plug-kitchen").unwrap();
            d.set_upper(Box::new(OneFrame(Some(to_a))));
            d.poll(m);
        })
        .await
        .unwrap();
    let got = recv(&a, Duration::from_secs(2)).await.expect("A gets the plug's frame");
    let h = Header::parse(&got.payload).unwrap();
    assert_eq!((h.dst, h.src), (Address::Short(PEER_A), Address::Short(plug)));
    // A's own ACK over ZEP is dropped (the medium already sent one).
    let own_ack = Header::ack(9, false).emit_frame(&[]).unwrap();
    a.send_to(&zep(ZepType::Data, own_ack.as_slice().to_vec()), bridge).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = plug_row(&world.report().await.unwrap());
    assert_eq!((after.0 - before.0, after.1 - before.1, after.2 - before.2), (1, 1, 0), "{before:?} {after:?}");
    assert!(recv(&b, short).await.is_none(), "B is not addressed by the unicast or A's ACK");

    // Garbage and other channels are ignored, and the bridge keeps serving.
    a.send_to(b"not zep", bridge).await.unwrap();
    let mut other = ZepRepr::parse(&zep(ZepType::Data, bcast.clone())).unwrap();
    other.channel = 11;
    a.send_to(&other.emit().unwrap(), bridge).await.unwrap();
    assert!(recv(&b, short).await.is_none());
    // A broadcast has no retries: one that collided with the flat's own traffic is sent again.
    let mut heard = false;
    for _ in 0..5 {
        a.send_to(&zep(ZepType::Data, bcast.clone()), bridge).await.unwrap();
        if recv(&b, Duration::from_millis(500)).await.is_some_and(|got| got.payload == bcast) {
            heard = true;
            break;
        }
    }
    assert!(heard, "the bridge kept serving after garbage and another channel");
    shutdown.cancel();
}
