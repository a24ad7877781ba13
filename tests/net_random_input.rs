//! Random bytes into the `net` parsers and the `Interface` (what the `net_mac` and
//! `net_sixlowpan` fuzz targets do, here on every test run): errors, never panics, and every
//! frame the interface emits parses again.

use std::time::{Duration, Instant};

use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::{sixlowpan, Interface, InterfaceConfig, RxMeta};
use proptest::prelude::*;

const BR: [u8; 8] = [2, 0, 0, 0, 0, 0, 0, 1];

/// Payloads biased towards the dispatches that reach deep code: IPHC, FRAG1, FRAGN, IPv6.
fn lowpan_payload() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![0x60u8..0x80, 0xc0u8..0xc8, 0xe0u8..0xe8, Just(0x41u8), any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..110),
    )
        .prop_map(|(d, mut rest)| {
            rest.insert(0, d);
            rest
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mac_parser_never_panics(psdu in proptest::collection::vec(any::<u8>(), 0..140)) {
        if let Ok((f, p)) = MacFrame::parse(&psdu) {
            prop_assert!(p.len() <= psdu.len());
            let _ = f.emit(p);
        }
    }

    #[test]
    fn interface_never_panics(payloads in proptest::collection::vec((lowpan_payload(), 0u16..4), 1..12)) {
        let prefix = "2001:db8::".parse().ok();
        let now = Instant::now();
        let mut iface = Interface::new(InterfaceConfig::new(0x23, BR, prefix));
        for (i, (p, src)) in payloads.iter().enumerate() {
            let _ = sixlowpan::decompress_datagram(p, MacAddr::Short(*src), MacAddr::Ext(BR), prefix);
            let src = if src % 2 == 0 { MacAddr::Short(*src) } else { MacAddr::Ext([*src as u8; 8]) };
            if let Ok(f) = MacFrame::data(i as u8, 0x23, MacAddr::Ext(BR), src).emit(p) {
                let _ = iface.handle_frame(now, &f, RxMeta::default());
            }
        }
        while let Some(t) = iface.poll_transmit(now) {
            prop_assert!(MacFrame::parse(&t.psdu).is_ok());
        }
        iface.handle_timeout(now + Duration::from_secs(120));
    }
}
