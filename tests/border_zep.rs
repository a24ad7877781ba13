//! ferryd's border router end to end in real time, with a node of our own on the air: `ferry
//! sim --pty --zep` runs a gateway-only PAN, ferryd opens its RCP as a serial port, and this
//! test speaks ZEP v2 as a RIOT `native` node N1 would. N1 pings ferry and gets the echo reply,
//! then sends the DAOs of a three-level tree (its own, and those it forwards for N2 and N3);
//! ferry ACKs them (N3's DAO-ACK source-routed through N1 and N2), and `ferry topology [--json]`
//! shows the tree.

mod common;

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ferry, Ferryd};
use ferry::border::NetTopology;
use ferry::net::icmpv6::Icmpv6Repr;
use ferry::net::ipv6::{self, Ipv6Header, PROTO_ICMPV6, PROTO_ROUTING};
use ferry::net::mac::{FrameKind, MacAddr, MacFrame};
use ferry::net::rpl::{RplOption, RplRepr, CODE_DAO_ACK};
use ferry::net::sixlowpan;
use ferry::sim::zep::{ZepRepr, ZepType};

const PAN: u16 = 0xface;
const GW: [u8; 8] = [0xf0, 0x0d, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x01];
const N1: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x21];
const N2: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x22];
const N3: [u8; 8] = [0x02, 0x00, 0xfe, 0x77, 0x00, 0x00, 0x00, 0x23];
const SCENARIO: &str =
    "seed = 3\nchannel = 26\npan_id = 0xface\n[gateway]\neui64 = \"f0:0d:fe:77:00:00:00:01\"\nshort = 0\n";

fn prefix() -> Ipv6Addr {
    "fd00:f3:e5::".parse().unwrap()
}

fn global(mac: [u8; 8]) -> Ipv6Addr {
    ipv6::with_iid(prefix(), ipv6::iid_from_mac(MacAddr::Ext(mac)))
}

/// Kills the simulator when the test ends.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// N1 on the air through the ZEP bridge.
struct Node {
    sock: UdpSocket,
    bridge: SocketAddr,
    seq: u8,
}

impl Node {
    fn send_frame(&mut self, psdu: Vec<u8>) {
        let zep = ZepRepr {
            kind: ZepType::Data,
            channel: 26,
            device_id: 1,
            lqi_mode: 1,
            lqi: 0xff,
            timestamp: 0,
            seq: u32::from(self.seq),
            payload: psdu,
        };
        self.sock.send_to(&zep.emit().unwrap(), self.bridge).unwrap();
    }

    /// Sends an IPv6 datagram to ferry (MAC short address 0, the PAN coordinator).
    fn send(&mut self, datagram: &[u8]) {
        self.seq = self.seq.wrapping_add(1);
        let c = sixlowpan::compress(datagram, MacAddr::Ext(N1), MacAddr::Short(0), None).unwrap();
        let psdu = MacFrame::data(self.seq, PAN, MacAddr::Short(0), MacAddr::Ext(N1)).emit(&c.bytes).unwrap();
        self.send_frame(psdu);
    }

    /// The next IPv6 datagram ferry sends N1 that `want` accepts, within `wait`.
    fn recv(&self, wait: Duration, mut want: impl FnMut(&Ipv6Header, &[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            self.sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else { continue };
            let Ok(zep) = ZepRepr::parse(&buf[..n]) else { continue };
            let Ok((f, payload)) = MacFrame::parse(&zep.payload) else { continue };
            if f.kind != FrameKind::Data || f.dst != Some(MacAddr::Ext(N1)) {
                continue;
            }
            let Ok(d) = sixlowpan::decompress_datagram(payload, f.src.unwrap(), MacAddr::Ext(N1), Some(prefix()))
            else {
                continue;
            };
            let Ok((h, rest)) = Ipv6Header::parse(&d) else { continue };
            if want(&h, rest) {
                return Some(d);
            }
        }
        None
    }
}

fn dao(seq: u8, target: [u8; 8], parent: Ipv6Addr) -> Vec<u8> {
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
    ipv6::build_icmpv6(global(target), global(GW), 64, dao.emit())
}

fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bridge's port from `ferry sim`'s log line.
fn bridge_port(log: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("ZEP v2 bridge on udp ").nth(1) {
            let addr: SocketAddr = rest.split(';').next().unwrap().trim().parse().unwrap();
            return addr.port();
        }
        assert!(Instant::now() < deadline, "ferry sim never announced its ZEP bridge:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_zep_node_pings_ferryd_and_its_daos_become_ferry_topology() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("gateway.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let pty = dir.path().join("ttySIM0");
    let sim_log = dir.path().join("sim.log");
    let _sim = Sim(Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sim", "--scenario"])
        .arg(&scenario)
        .arg("--pty")
        .arg(&pty)
        .args(["--zep", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&sim_log).unwrap())
        .spawn()
        .unwrap());
    wait_for(&pty, "the simulator's pty");
    let bridge: SocketAddr = ([127, 0, 0, 1], bridge_port(&sim_log)).into();

    let config = format!(
        "[radio]\nurl = \"spinel+hdlc+uart://{}\"\n[store]\nstate_dir = \"state\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [control]\nsocket = \"control.sock\"\n",
        pty.display()
    );
    let mut ferryd = Ferryd::spawn(dir.path(), &config);
    ferryd.wait_radio_up();
    ferryd.wait_log("LoWPAN up");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut n1 = Node { sock, bridge, seq: 0 };
    let hello = ZepRepr {
        kind: ZepType::Hello,
        channel: 26,
        device_id: 1,
        lqi_mode: 1,
        lqi: 0xff,
        timestamp: 0,
        seq: 0,
        payload: N1.to_vec(),
    };
    n1.sock.send_to(&hello.emit().unwrap(), bridge).unwrap();

    // Ping: ferry answers from its prefix address.
    let echo = Icmpv6Repr::EchoRequest { ident: 3, seq: 1, data: b"ferry?" }.emit();
    n1.send(&ipv6::build_icmpv6(global(N1), global(GW), 64, echo));
    let reply = n1.recv(Duration::from_secs(5), |h, m| h.next_header == PROTO_ICMPV6 && m.first() == Some(&129));
    let reply = reply.unwrap_or_else(|| panic!("no echo reply; log:\n{}", ferryd.log()));
    let (h, _) = Ipv6Header::parse(&reply).unwrap();
    assert_eq!((h.src, h.dst), (global(GW), global(N1)));

    // DAOs of the tree root ← N1 ← N2 ← N3, each answered with a DAO-ACK.
    for (seq, target, parent) in [(1, N1, global(GW)), (2, N2, global(N1)), (3, N3, global(N2))] {
        n1.send(&dao(seq, target, parent));
        let ack = n1.recv(Duration::from_secs(5), |h, rest| {
            let (proto, msg) = ipv6::skip_extension_headers(h.next_header, rest).unwrap();
            proto == PROTO_ICMPV6 && msg.get(1) == Some(&CODE_DAO_ACK)
        });
        let ack = ack.unwrap_or_else(|| panic!("no DAO-ACK for {target:02x?}; log:\n{}", ferryd.log()));
        let (h, _) = Ipv6Header::parse(&ack).unwrap();
        // Deeper nodes' ACKs carry a source routing header via N1.
        assert_eq!(h.next_header == PROTO_ROUTING, seq > 1, "{h:?}");
    }

    // The read model is republished every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let topology = loop {
        let out = ferry(&ferryd.socket(), &["topology", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let t: NetTopology = serde_json::from_slice(&out.stdout).unwrap();
        if t.nodes.len() == 3 {
            break t;
        }
        assert!(Instant::now() < deadline, "topology never had 3 nodes: {t:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(topology.root, global(GW));
    let hops: Vec<_> = [N1, N2, N3].iter().map(|m| topology.node(ferry::fleet::Eui64(*m)).unwrap().hops).collect();
    assert_eq!(hops, vec![Some(1), Some(2), Some(3)]);
    let n1_link = topology.node(ferry::fleet::Eui64(N1)).unwrap().link.expect("N1 is heard directly");
    assert_eq!(n1_link.delivery_ratio, Some(1.0), "the medium ACKs every frame to N1");

    let out = ferry(&ferryd.socket(), &["topology"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(&format!("{} (ferry, RPL root, rank 256): 3 nodes", global(GW))), "{text}");
    assert!(lines[1].starts_with("└─ 02:00:fe:77:00:00:00:21"), "{text}");
    assert!(lines[2].starts_with("   └─ 02:00:fe:77:00:00:00:22") && lines[2].contains("2 hops"), "{text}");
    assert!(lines[3].starts_with("      └─ 02:00:fe:77:00:00:00:23") && lines[3].contains("3 hops"), "{text}");
}
