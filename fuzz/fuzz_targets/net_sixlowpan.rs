//! Arbitrary MAC payloads into 6LoWPAN decompression and the whole `Interface` (fragments,
//! IPHC, ICMPv6, ND). Nothing may panic; every frame the interface emits must parse.
#![no_main]

use std::time::{Duration, Instant};

use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::{sixlowpan, Interface, InterfaceConfig, RxMeta};
use libfuzzer_sys::fuzz_target;

const BR: [u8; 8] = [2, 0, 0, 0, 0, 0, 0, 1];

fuzz_target!(|data: &[u8]| {
    let prefix = "2001:db8::".parse().ok();
    let _ = sixlowpan::decompress_datagram(data, MacAddr::Short(7), MacAddr::Ext(BR), prefix);
    let mut iface = Interface::new(InterfaceConfig::new(0x23, BR, prefix));
    let now = Instant::now();
    // Each chunk becomes the payload of a valid frame to us. Most come from one source, so
    // fragments of one datagram (same source, size and tag) meet in the reassembly buffer.
    for (i, chunk) in data.split(|b| *b == 0x7e).enumerate() {
        let src = match i % 4 {
            0 | 1 => MacAddr::Short(1),
            2 => MacAddr::Short(2),
            _ => MacAddr::Ext([i as u8; 8]),
        };
        if let Ok(f) = MacFrame::data(i as u8, 0x23, MacAddr::Ext(BR), src).emit(chunk) {
            let _ = iface.handle_frame(now, &f, RxMeta::default());
        }
        let _ = iface.handle_frame(now, chunk, RxMeta::default());
    }
    while let Some(t) = iface.poll_transmit(now) {
        MacFrame::parse(&t.psdu).expect("emitted frame parses");
    }
    while iface.poll_udp().is_some() {}
    iface.handle_timeout(now + Duration::from_secs(120));
});
