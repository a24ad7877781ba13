//! Frames emitted by `net::Interface` — a CoAP request and responses, one fragmented — written
//! with the simulator's pcap writer and decoded by Wireshark's dissectors (via `tshark -V`) as
//! IEEE 802.15.4 → 6LoWPAN → IPv6 → UDP → CoAP without complaints. Without `tshark` the check
//! is skipped with a message, unless `FERRY_REQUIRE_TOOLS=1`.

use std::net::Ipv6Addr;
use std::process::Command;
use std::time::Instant;

use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::rpl::{RplOption, RplRepr};
use ferry::net::rpl_root::RplRootConfig;
use ferry::net::{ipv6, sixlowpan, Interface, InterfaceConfig, RxMeta, Transmit};
use ferry::sim::frame::Psdu;
use ferry::sim::medium::{AirFrame, NodeId};
use ferry::sim::pcap::PcapWriter;

const PAN: u16 = 0x23;
const BR: [u8; 8] = [0x02, 0x00, 0x5e, 0xff, 0xfe, 0x00, 0x00, 0x01];
const NODE: [u8; 8] = [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55];

/// CoAP (RFC 7252): CON GET /riot/board, token 0x7f.
fn coap_get(mid: u16) -> Vec<u8> {
    let mut m = vec![0x41, 0x01, (mid >> 8) as u8, mid as u8, 0x7f];
    m.extend_from_slice(&[0xb4, b'r', b'i', b'o', b't', 0x05, b'b', b'o', b'a', b'r', b'd']);
    m
}

/// CoAP ACK 2.05 Content with a payload.
fn coap_content(mid: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0x61, 0x45, (mid >> 8) as u8, mid as u8, 0x7f, 0xff];
    m.extend_from_slice(payload);
    m
}

struct Capture {
    w: PcapWriter<Vec<u8>>,
    t_us: u64,
}

impl Capture {
    fn carry(&mut self, from: &mut Interface, sender: usize, to: &mut Interface, now: Instant) -> usize {
        let frames: Vec<Transmit> = std::iter::from_fn(|| from.poll_transmit(now)).collect();
        for t in &frames {
            let psdu = Psdu::new(&t.psdu).expect("interface emits valid PSDUs");
            let dur = (t.psdu.len() as u64 + 6) * 32;
            let f =
                AirFrame { start_us: self.t_us, end_us: self.t_us + dur, channel: 26, sender: NodeId(sender), psdu };
            self.w.write_frame(&f).unwrap();
            self.t_us += dur + 2_000;
            to.handle_frame(now, &t.psdu, RxMeta::default()).unwrap();
        }
        frames.len()
    }
}

#[test]
fn tshark_decodes_interface_frames_as_coap() {
    let now = Instant::now();
    let prefix: Ipv6Addr = "2001:db8:f:1::".parse().unwrap();
    let mut br = Interface::new(InterfaceConfig::new(PAN, BR, Some(prefix)));
    let mut nd = Interface::new(InterfaceConfig::new(PAN, NODE, Some(prefix)));
    let mut cap = Capture { w: PcapWriter::new(Vec::new(), 1_700_000_000_000_000).unwrap(), t_us: 0 };

    // Node asks over link-local; the border router answers small, then with 1 kB (fragmented).
    nd.send_udp(now, 49197, (br.link_local(), 5683), &coap_get(1)).unwrap();
    assert_eq!(cap.carry(&mut nd, 1, &mut br, now), 1);
    let req = br.poll_udp().unwrap();
    br.send_udp(now, 5683, req.src, &coap_content(1, b"nrf52840dk")).unwrap();
    assert_eq!(cap.carry(&mut br, 0, &mut nd, now), 1);
    assert_eq!(nd.poll_udp().unwrap().payload, coap_content(1, b"nrf52840dk"));

    // Same over global addresses, with a 1 kB response.
    let nd_global = ipv6::with_iid(prefix, ipv6::iid_from_mac(MacAddr::Ext(NODE)));
    nd.send_udp(now, 49197, (br.global().unwrap(), 5683), &coap_get(2)).unwrap();
    cap.carry(&mut nd, 1, &mut br, now);
    let req = br.poll_udp().unwrap();
    assert_eq!(req.src, (nd_global, 49197));
    let body: Vec<u8> = (0..1024u32).map(|i| b'a' + (i % 26) as u8).collect();
    br.send_udp(now, 5683, req.src, &coap_content(2, &body)).unwrap();
    let n = cap.carry(&mut br, 0, &mut nd, now);
    assert!(n > 10, "fragmented into {n} frames");
    assert_eq!(nd.poll_udp().unwrap().payload, coap_content(2, &body));

    let Some(text) = tshark(cap.w.into_inner()) else { return };
    for layer in [
        "IEEE 802.15.4 Data",
        "6LoWPAN",
        "IPHC Header",
        "Internet Protocol Version 6",
        "User Datagram Protocol",
        "Constrained Application Protocol",
        "Reassembled 6LoWPAN",
        "Uri-Path: riot",
        "2.05 Content",
    ] {
        assert!(text.contains(layer), "tshark output lacks {layer:?}:\n{text}");
    }
    no_complaints(&text);
}

fn no_complaints(text: &str) {
    for complaint in ["Malformed", "Expert Info (Error", "Bad FCS", "[incorrect"] {
        assert!(!text.contains(complaint), "tshark complains ({complaint}):\n{text}");
    }
}

/// Runs `tshark -V` over a capture; None (after a message) when tshark is missing and not
/// required.
fn tshark(pcap: Vec<u8>) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.pcap");
    std::fs::write(&path, pcap).unwrap();
    let output = match Command::new("tshark").arg("-r").arg(&path).arg("-V").output() {
        Ok(o) => o,
        Err(e) => {
            if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("tshark is required (FERRY_REQUIRE_TOOLS=1) but cannot run: {e}");
            }
            println!("SKIPPED: tshark not available ({e}); install it with `apt-get install -y tshark`");
            return None;
        }
    };
    assert!(output.status.success(), "tshark failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if std::env::var_os("FERRY_NET_DUMP").is_some() {
        println!("{text}");
    }
    Some(text)
}

#[test]
fn tshark_decodes_rpl_dio_dao_ack_and_source_routing() {
    let now = Instant::now();
    let prefix: Ipv6Addr = "2001:db8:f:1::".parse().unwrap();
    let mut br = Interface::new(InterfaceConfig::new(PAN, BR, Some(prefix)));
    let br_global = br.global().unwrap();
    br.enable_rpl_root(now, RplRootConfig::new(br_global, prefix));
    let mut nd = Interface::new(InterfaceConfig::new(PAN, NODE, Some(prefix)));
    let mut cap = Capture { w: PcapWriter::new(Vec::new(), 1_700_000_000_000_000).unwrap(), t_us: 0 };

    // DIO.
    let t = br.poll_timeout().unwrap();
    br.handle_timeout(t);
    cap.carry(&mut br, 0, &mut nd, t);

    // DAOs from the node for itself and for a child behind it (as it forwards them up).
    let nd_global = ipv6::with_iid(prefix, ipv6::iid_from_mac(MacAddr::Ext(NODE)));
    let child = ipv6::with_iid(prefix, [0, 0, 0, 0xff, 0xfe, 0, 0, 0x42]);
    for (seq, target, parent) in [(1u8, nd_global, br_global), (2, child, nd_global)] {
        let dao = RplRepr::Dao {
            instance: 0,
            ack_requested: true,
            sequence: seq,
            dodag_id: Some(br_global),
            options: vec![
                RplOption::Target { prefix_len: 128, prefix: target },
                RplOption::Transit {
                    external: false,
                    path_control: 0,
                    path_sequence: seq,
                    path_lifetime: 30,
                    parent: Some(parent),
                },
            ],
        };
        let d = ipv6::build_icmpv6(target, br_global, 64, dao.emit());
        let c = sixlowpan::compress(&d, MacAddr::Ext(NODE), MacAddr::Ext(BR), None).unwrap();
        let f = MacFrame::data(seq, PAN, MacAddr::Ext(BR), MacAddr::Ext(NODE)).emit(&c.bytes).unwrap();
        let psdu = Psdu::new(&f).unwrap();
        cap.w
            .write_frame(&AirFrame {
                start_us: cap.t_us,
                end_us: cap.t_us + 1000,
                channel: 26,
                sender: NodeId(1),
                psdu,
            })
            .unwrap();
        cap.t_us += 3000;
        br.handle_frame(now, &f, RxMeta::default()).unwrap();
    }
    // DAO-ACKs (the second one source-routed), then a source-routed CoAP message.
    br.send_udp(now, 5683, (child, 5683), &coap_content(9, b"to the grandchild")).unwrap();
    let frames: Vec<Transmit> = std::iter::from_fn(|| br.poll_transmit(now)).collect();
    assert_eq!(frames.len(), 3);
    for t in &frames {
        let psdu = Psdu::new(&t.psdu).unwrap();
        cap.w
            .write_frame(&AirFrame {
                start_us: cap.t_us,
                end_us: cap.t_us + 1000,
                channel: 26,
                sender: NodeId(0),
                psdu,
            })
            .unwrap();
        cap.t_us += 3000;
    }

    let Some(text) = tshark(cap.w.into_inner()) else { return };
    for layer in [
        "Code: 1 (DODAG Information Object)",
        "ICMPv6 RPL Option (DODAG configuration)",
        "ICMPv6 RPL Option (Prefix Information 2001:db8:f:1::/64)",
        "Code: 2 (Destination Advertisement Object)",
        "ICMPv6 RPL Option (Transit Information 2001:db8:f:1:11:22ff:fe33:4455)",
        "Code: 3 (Destination Advertisement Object Acknowledgment)",
        "Routing Header for IPv6 (RPL Source Route)",
        "Constrained Application Protocol",
    ] {
        assert!(text.contains(layer), "tshark output lacks {layer:?}:\n{text}");
    }
    no_complaints(&text);
}
