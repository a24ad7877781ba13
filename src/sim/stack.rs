//! A simulated node's network stack on medium time: the node side of [`net::Interface`]
//! (6LoWPAN, IPv6, UDP) under a [`coap::Endpoint`], the same sans-IO cores ferryd runs.
//!
//! The cores take `std::time::Instant`; the medium counts µs. A stack keeps one epoch and maps
//! `now_us` to `epoch + now_us`, so only differences matter and a run stays deterministic.
//!
//! # Call order
//!
//! [`handle_frame`](NodeStack::handle_frame) for every PSDU the MAC hands up, then take the UDP
//! datagrams with [`poll_udp`](NodeStack::poll_udp) and give them to CoAP with
//! [`deliver`](NodeStack::deliver) (a node may hold them while its CPU is busy);
//! [`flush`](NodeStack::flush) moves CoAP's datagrams into the interface, and
//! [`poll_transmit`](NodeStack::poll_transmit) yields frames for the radio.
//! [`handle_timeout`](NodeStack::handle_timeout) at [`poll_timeout`](NodeStack::poll_timeout).
//!
//! A stack can also ride kernel UDP instead of the radio ([`attach_udp`](NodeStack::attach_udp)),
//! as a RIOT `native` node on a tap does: its shell gives it datagrams with
//! [`push_udp`](NodeStack::push_udp) and sends what [`take_udp`](NodeStack::take_udp) yields;
//! the interface then carries nothing.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::coap::{self, Endpoint, Router};
use crate::net::{Interface, InterfaceConfig, MacAddr, RxMeta, UdpDatagram};

/// The CoAP port every simulated node serves and requests from.
pub const COAP_PORT: u16 = 5683;

/// A CoAP peer over 6LoWPAN: its IPv6 address and UDP port.
pub type Peer = (Ipv6Addr, u16);

/// What a node's stack is configured with.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub pan_id: u16,
    pub eui64: [u8; 8],
    /// Accept frames for this short address too, and send from it (as the MAC polls do).
    pub short: Option<u16>,
    /// The PAN's /64: the node's global address is this prefix and its EUI-64.
    pub prefix: Ipv6Addr,
    /// Where datagrams off the link go (the parent); `None` on a star's server.
    pub default_router: Option<MacAddr>,
    /// Run RPL as a node: `Some(true)` for a router (forwards, sends DIOs), `Some(false)` for a
    /// leaf; `None` without RPL. A node that never hears a DIO behaves as without.
    pub rpl: Option<bool>,
    /// Answer router solicitations and registrations as a border router does (a test's
    /// stand-in for ferry); nodes leave this off.
    pub router: bool,
    /// Boot as a RIOT 6LN does: router solicitations until an RA answers, then the global
    /// address registered (NS with ARO) with the router that answered.
    pub router_discovery: bool,
    pub coap: coap::Config,
}

/// A node's IPv6/6LoWPAN interface and CoAP endpoint. See the module docs.
pub struct NodeStack {
    iface: Interface,
    coap: Endpoint<Peer>,
    epoch: Instant,
    /// Datagrams to and from kernel UDP, when the stack rides it instead of the radio.
    udp: Option<UdpLink>,
}

/// Datagrams a stack on kernel UDP exchanges with its shell (bounded like a socket buffer).
#[derive(Debug, Default)]
struct UdpLink {
    received: VecDeque<UdpDatagram>,
    to_send: VecDeque<(Peer, Vec<u8>)>,
}

/// Datagrams a stack on kernel UDP holds each way before dropping (UDP loses, CoAP retries).
const UDP_QUEUE: usize = 256;

impl std::fmt::Debug for NodeStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStack").field("address", &self.iface.global()).finish_non_exhaustive()
    }
}

impl NodeStack {
    pub fn new(cfg: StackConfig, router: Router) -> NodeStack {
        let mut icfg = InterfaceConfig::new(cfg.pan_id, cfg.eui64, Some(cfg.prefix));
        icfg.mac.short_addr = cfg.short;
        // A node, not a router (no router flag in its neighbour advertisements), unless it
        // stands in for one.
        // A 6LR (an RPL router) answers its children's router solicitations too (RFC 6775 §6).
        icfg.router = cfg.router || cfg.rpl == Some(true);
        // RIOT's GNRC_SIXLOWPAN_FRAG_RBUF_TIMEOUT_US: a datagram that lost a fragment frees its
        // buffer soon, so the retransmission can be reassembled.
        icfg.reassembly.timeout = Duration::from_secs(3);
        let mut iface = Interface::new(icfg);
        iface.set_default_router(cfg.default_router);
        let epoch = Instant::now();
        if let Some(rpl_router) = cfg.rpl {
            iface.enable_rpl_node(epoch, rpl_router, cfg.coap.rng_seed);
        }
        if cfg.router_discovery {
            iface.start_router_discovery(epoch, cfg.coap.rng_seed >> 8);
        }
        NodeStack { iface, coap: Endpoint::new(cfg.coap, router), epoch, udp: None }
    }

    /// From now on the stack's CoAP rides kernel UDP through [`push_udp`](Self::push_udp) and
    /// [`take_udp`](Self::take_udp) instead of the interface.
    pub fn attach_udp(&mut self) {
        self.udp.get_or_insert_with(UdpLink::default);
    }

    /// A datagram from `src` arrived on the node's UDP socket.
    pub fn push_udp(&mut self, src: Peer, payload: Vec<u8>) {
        let Some(udp) = &mut self.udp else { return };
        if udp.received.len() < UDP_QUEUE {
            let dst = (self.iface.link_local(), COAP_PORT);
            udp.received.push_back(UdpDatagram { src, dst, payload, link_src: MacAddr::Short(0xffff) });
        }
    }

    /// The next datagram for the node's UDP socket to send.
    pub fn take_udp(&mut self) -> Option<(Peer, Vec<u8>)> {
        self.udp.as_mut()?.to_send.pop_front()
    }

    /// The stack's `Instant` for medium µs.
    pub fn instant(&self, now_us: u64) -> Instant {
        self.epoch + Duration::from_micros(now_us)
    }

    /// Medium µs of `t`, rounded up so a deadline is never reported before it is due.
    fn micros(&self, t: Instant) -> u64 {
        let ns = t.saturating_duration_since(self.epoch).as_nanos().div_ceil(1000);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The node's global address (prefix and EUI-64).
    pub fn address(&self) -> Ipv6Addr {
        self.iface.global().unwrap_or_else(|| self.iface.link_local())
    }

    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    pub fn coap(&self) -> &Endpoint<Peer> {
        &self.coap
    }

    pub fn coap_mut(&mut self) -> &mut Endpoint<Peer> {
        &mut self.coap
    }

    /// One received PSDU (FCS included). Malformed frames are counted by the interface.
    pub fn handle_frame(&mut self, now_us: u64, psdu: &[u8], rssi: i8, lqi: u8) {
        let meta = RxMeta { rssi, lqi, timestamp_us: now_us };
        let _ = self.iface.handle_frame(self.instant(now_us), psdu, meta);
    }

    /// The next UDP datagram the interface received.
    pub fn poll_udp(&mut self) -> Option<UdpDatagram> {
        match &mut self.udp {
            Some(udp) => udp.received.pop_front(),
            None => self.iface.poll_udp(),
        }
    }

    /// Hands one datagram to CoAP (only those for the CoAP port; others are dropped, as a
    /// closed port would).
    pub fn deliver(&mut self, now_us: u64, d: &UdpDatagram) {
        if d.dst.1 == COAP_PORT {
            self.coap.handle_datagram(self.instant(now_us), d.src, &d.payload);
        }
    }

    /// Delivers every datagram waiting, then flushes: for nodes that answer at once.
    pub fn run(&mut self, now_us: u64) {
        while let Some(d) = self.poll_udp() {
            self.deliver(now_us, &d);
        }
        self.flush(now_us);
    }

    /// Moves CoAP's datagrams into the interface (fragmented there as needed). A datagram
    /// without a route or room is lost; CoAP retransmits.
    pub fn flush(&mut self, now_us: u64) {
        let now = self.instant(now_us);
        while let Some(t) = self.coap.poll_transmit(now) {
            match &mut self.udp {
                Some(udp) if udp.to_send.len() < UDP_QUEUE => udp.to_send.push_back((t.peer, t.bytes)),
                Some(_) => {}
                None => {
                    let _ = self.iface.send_udp(now, COAP_PORT, t.peer, &t.bytes);
                }
            }
        }
    }

    /// The next frame for the radio (FCS included).
    pub fn poll_transmit(&mut self, now_us: u64) -> Option<Vec<u8>> {
        self.iface.poll_transmit(self.instant(now_us)).map(|t| t.psdu)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due, in medium µs.
    pub fn poll_timeout(&self) -> Option<u64> {
        let t = [self.iface.poll_timeout(), self.coap.poll_timeout()].into_iter().flatten().min()?;
        Some(self.micros(t))
    }

    /// True while a solicitation of the node's (RS, NS with ARO, DIS) waits for its answer,
    /// which a sleepy node must poll for.
    pub fn expects_answer(&self, now_us: u64) -> bool {
        self.iface.expects_answer(self.instant(now_us))
    }

    /// When [`expects_answer`](Self::expects_answer) turns false, in medium µs.
    pub fn expecting_until(&self) -> Option<u64> {
        self.iface.expecting_until().map(|t| self.micros(t))
    }

    pub fn handle_timeout(&mut self, now_us: u64) {
        let now = self.instant(now_us);
        self.iface.handle_timeout(now);
        self.coap.handle_timeout(now);
    }
}

/// `coap://[addr]:port/path` split into the peer and the path (no query). `None` for other
/// schemes or host names: a simulated node has no DNS.
pub fn parse_coap_url(url: &str) -> Option<(Peer, String)> {
    let rest = url.strip_prefix("coap://")?;
    let rest = rest.strip_prefix('[')?;
    let (host, rest) = rest.split_once(']')?;
    let addr: Ipv6Addr = host.parse().ok()?;
    let (port, path) = match rest.strip_prefix(':') {
        Some(r) => {
            let end = r.find('/').unwrap_or(r.len());
            (r[..end].parse().ok()?, &r[end..])
        }
        None => (COAP_PORT, rest),
    };
    let path = path.split('?').next().unwrap_or("");
    Some(((addr, port), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coap_urls() {
        let a: Ipv6Addr = "fd00::1".parse().unwrap();
        assert_eq!(parse_coap_url("coap://[fd00::1]/fw/a.bin"), Some(((a, 5683), "/fw/a.bin".into())));
        assert_eq!(parse_coap_url("coap://[fd00::1]:5684/x?y=1"), Some(((a, 5684), "/x".into())));
        assert_eq!(parse_coap_url("coaps://[fd00::1]/x"), None);
        assert_eq!(parse_coap_url("coap://host/x"), None);
        assert_eq!(parse_coap_url("coap://[fd00::1]:99999/x"), None);
    }
}
