//! Frames emitted by `net::Interface` — a CoAP request and responses, one fragmented — written
//! with the simulator's pcap writer and decoded by Wireshark's dissectors (via `tshark -V`) as
//! IEEE 802.15.4 → 6LoWPAN → IPv6 → UDP → CoAP without complaints. Without `tshark` the check
//! is skipped with a message, unless `FERRY_REQUIRE_TOOLS=1`.

use std::net::Ipv6Addr;
use std::process::Command;
use std::time::Instant;

use ferry::net::mac::MacAddr;
use ferry::net::{ipv6, Interface, InterfaceConfig, RxMeta, Transmit};
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

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.pcap");
    std::fs::write(&path, cap.w.into_inner()).unwrap();

    let output = match Command::new("tshark").arg("-r").arg(&path).arg("-V").output() {
        Ok(o) => o,
        Err(e) => {
            if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("tshark is required (FERRY_REQUIRE_TOOLS=1) but cannot run: {e}");
            }
            println!("SKIPPED: tshark not available ({e}); install it with `apt-get install -y tshark`");
            return;
        }
    };
    assert!(output.status.success(), "tshark failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
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
    for complaint in ["Malformed", "Expert Info (Error", "Bad FCS", "[incorrect"] {
        assert!(!text.contains(complaint), "tshark complains ({complaint}):\n{text}");
    }
}
