//! Arbitrary PSDUs into the 802.15.4 frame parser and the MAC layer. Nothing may panic, and a
//! parsed data frame must emit again and re-parse to the same header.
#![no_main]

use std::time::Instant;

use ferry::net::mac::{FrameKind, MacFrame};
use ferry::net::{MacConfig, MacLayer, RxMeta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((f, payload)) = MacFrame::parse(data) {
        if f.kind == FrameKind::Data && f.dst.is_some() && f.src.is_some() {
            if let Ok(again) = f.emit(payload) {
                let (g, p) = MacFrame::parse(&again).expect("emitted frame parses");
                assert_eq!((g.dst, g.src, g.seq, p), (f.dst, f.src, f.seq, payload));
            }
        }
    }
    let mut mac = MacLayer::new(MacConfig::new(0x23, [2, 0, 0, 0, 0, 0, 0, 1]));
    let now = Instant::now();
    for chunk in data.split(|b| *b == 0x7e) {
        let _ = mac.handle_rx(now, chunk, RxMeta::default());
    }
    while mac.poll_transmit().is_some() {}
});
