//! Arbitrary bytes into the IPv6 layer of an RPL root: the IPv6 header, ICMPv6 and RPL control
//! messages (DIS/DIO/DAO/DAO-ACK), the RPL source routing header, and whole uncompressed IPv6
//! datagrams (6LoWPAN dispatch 0x41) through an `Interface` with the root enabled, so DAOs reach
//! the topology table. Nothing may panic; every frame the root emits must parse.
#![no_main]

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ferry::net::icmpv6::Icmpv6Repr;
use ferry::net::ipv6::Ipv6Header;
use ferry::net::mac::{MacAddr, MacFrame};
use ferry::net::rpl::RplRepr;
use ferry::net::rpl_root::RplRootConfig;
use ferry::net::sixlowpan::DISPATCH_IPV6;
use ferry::net::srh::SrhRepr;
use ferry::net::{Interface, InterfaceConfig, RxMeta};
use libfuzzer_sys::fuzz_target;

const BR: [u8; 8] = [2, 0, 0, 0, 0, 0, 0, 1];

fuzz_target!(|data: &[u8]| {
    let prefix: Ipv6Addr = "fd00:f022::".parse().expect("prefix");
    let root: Ipv6Addr = "fd00:f022::1".parse().expect("root");
    if let Some((&code, rest)) = data.split_first() {
        let _ = RplRepr::parse(code, rest);
    }
    let _ = SrhRepr::parse(data, &root);
    let _ = Icmpv6Repr::parse(&root, &Ipv6Addr::UNSPECIFIED, data);
    if let Ok((header, payload)) = Ipv6Header::parse(data) {
        let _ = Icmpv6Repr::parse(&header.src, &header.dst, payload);
    }

    let now = Instant::now();
    let mut iface = Interface::new(InterfaceConfig::new(0x23, BR, Some(prefix)));
    iface.enable_rpl_root(now, RplRootConfig::new(root, prefix));
    for (i, chunk) in data.split(|b| *b == 0x7e).enumerate() {
        let src = MacAddr::Ext([2, 0, 0, 0, 0, 0, 1, i as u8]);
        let mut payload = Vec::with_capacity(chunk.len() + 1);
        payload.push(DISPATCH_IPV6);
        payload.extend_from_slice(chunk);
        if let Ok(f) = MacFrame::data(i as u8, 0x23, MacAddr::Ext(BR), src).emit(&payload) {
            let _ = iface.handle_frame(now, &f, RxMeta::default());
        }
    }
    let later = now + Duration::from_secs(30);
    iface.handle_timeout(later);
    while let Some(t) = iface.poll_transmit(later) {
        MacFrame::parse(&t.psdu).expect("emitted frame parses");
    }
    while iface.poll_udp().is_some() {}
    if let Some(rpl) = iface.rpl() {
        let _ = rpl.poll_timeout();
    }
});
