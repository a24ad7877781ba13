//! A capture of simulated traffic that Wireshark's dissector (via `tshark`) decodes as
//! IEEE 802.15.4 with correct FCSs. Without `tshark` the decoding check is skipped with a
//! message, unless `FERRY_REQUIRE_TOOLS=1`.

use std::process::Command;

use ferry::sim::frame::{Address, FrameType, Header, CMD_DATA_REQUEST};
use ferry::sim::medium::{Medium, NodeConfig, NodeEvent, TxRequest};
use ferry::sim::pcap::PcapWriter;
use ferry::sim::{Link, Timing};

const PAN: u16 = 0xface;
const CHANNEL: u8 = 20;

/// A few exchanges: data with ACK (short and extended addresses), a broadcast, a data request
/// answered with Frame Pending. Returns the pcap bytes and the number of frames.
fn capture() -> (Vec<u8>, u64) {
    let mut m = Medium::new(1, Timing::STANDARD);
    m.set_capture(true);
    let ext = [0x00, 0x12, 0x4b, 0x00, 0x01, 0x02, 0x03, 0x04];
    let a = m.add_node(NodeConfig { pan_id: PAN, short_addr: 1, ..NodeConfig::default() }).unwrap();
    let b = m.add_node(NodeConfig { pan_id: PAN, short_addr: 2, ext_addr: ext, ..NodeConfig::default() }).unwrap();
    m.config_mut(a).unwrap().src_match.set_enabled(false); // every data request gets Frame Pending
    m.set_link_both(a, b, Some(Link::perfect())).unwrap();
    m.receive(a, CHANNEL).unwrap();
    m.receive(b, CHANNEL).unwrap();
    let mut poll = Header::data(3, PAN, Address::Short(1), Address::Extended(ext), true);
    poll.frame_type = FrameType::Command;
    // Payloads open with a NALP dispatch (RFC 4944 §5.1, "not a LoWPAN frame") so Wireshark does
    // not read test bytes as 6LoWPAN.
    let frames = [
        (a, Header::data(1, PAN, Address::Short(2), Address::Short(1), true).emit_frame(b"\x00hello").unwrap()),
        (a, Header::data(2, PAN, Address::Extended(ext), Address::Short(1), true).emit_frame(&[0x01; 100]).unwrap()),
        (b, Header::data(9, PAN, Address::Short(0xffff), Address::Short(2), false).emit_frame(b"\x00bcast").unwrap()),
        (b, poll.emit_frame(&[CMD_DATA_REQUEST]).unwrap()),
    ];
    let mut out = PcapWriter::new(Vec::new(), 1_764_000_000_000_000).unwrap();
    for (sender, psdu) in frames {
        m.transmit(sender, TxRequest::new(psdu, CHANNEL)).unwrap();
        'run: while let Some(t) = m.next_event_time() {
            for d in m.advance(t) {
                if d.node == sender && matches!(d.event, NodeEvent::TxDone(Ok(_))) {
                    break 'run;
                }
            }
        }
        // Let the ACK finish before the next frame.
        m.advance(m.now() + 2_000);
        let (air, dropped) = m.take_air_frames();
        assert_eq!(dropped, 0);
        for f in &air {
            assert!(f.psdu.fcs_ok());
            out.write_frame(f).unwrap();
        }
    }
    let n = out.frames();
    (out.into_inner(), n)
}

#[test]
fn tshark_decodes_the_capture() {
    let (bytes, frames) = capture();
    assert_eq!(frames, 7, "4 frames + 3 ACKs");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("air.pcap");
    std::fs::write(&path, &bytes).unwrap();

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
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "tshark failed: {}", String::from_utf8_lossy(&output.stderr));
    // The wpan dissector's top line per frame, e.g. "IEEE 802.15.4 Ack, Sequence Number: 1".
    assert_eq!(text.lines().filter(|l| l.starts_with("IEEE 802.15.4 ")).count(), 7, "{text}");
    for complaint in ["Malformed", "Bad FCS", "Incorrect", "Expert Info (Warn", "Expert Info (Error"] {
        assert!(!text.contains(complaint), "tshark complains ({complaint}):\n{text}");
    }
    // Each frame's FCS was checked and found correct.
    let good_fcs = text.lines().filter(|l| l.trim_start().starts_with("FCS: 0x") && l.ends_with("(Correct)")).count();
    assert_eq!(good_fcs, 7, "{text}");
    assert!(text.contains("Data Request"), "{text}");
    assert!(text.contains("Frame Pending: True"), "{text}");
}
