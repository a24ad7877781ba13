//! The sans-IO LoWPAN interface of the border router: MAC frames in, UDP datagrams out to the
//! CoAP endpoint; UDP datagrams in, MAC frames (fragmented as needed) out to the radio. It
//! answers ICMPv6 echo and neighbour solicitations for its addresses, and accepts RFC 6775
//! address registrations as RIOT 6LNs send them.
//!
//! Call order (see also the module doc of `net`):
//! `handle_frame(now, psdu, meta)` → `poll_udp()` / `poll_source_match()` / `poll_transmit(now)`;
//! `send_udp(now, …)` → `poll_transmit(now)`; `handle_timeout(now)` at `poll_timeout()`.
//!
//! Neighbour discovery is deliberately minimal: router solicitations are answered with an RA
//! carrying the prefix, context 0 (6CO) and the ABRO, as 6LNs expect. Missing: duplicate address detection
//! (DAR/DAC), neighbour unreachability detection, and compressed IPv6 extension headers (NHC
//! EH); uncompressed extension headers (RPL hop-by-hop option) are skipped, and a received
//! source routing header is not acted on (the root is every packet's last hop).
//!
//! With an RPL root enabled (`enable_rpl_root`), DIOs go out on Trickle's schedule, DAOs build
//! the topology, and datagrams to nodes more than one hop away get an RFC 6554 source routing
//! header and go to the first hop. Other destinations must be registered or have an address
//! derived from their MAC address (`SendError::NoRoute` otherwise).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::icmpv6::{Icmpv6Error, Icmpv6Repr, NdOption, ARO_SUCCESS, TYPE_RPL};
use super::ipv6::{self, Ipv6Error, Ipv6Header, PROTO_ICMPV6, PROTO_ROUTING, PROTO_UDP, UDP_HEADER_LEN};
use super::mac::{MacAddr, MacError};
use super::mac_layer::{MacConfig, MacLayer, MacStats, RxEvent, RxMeta, SourceMatch, Transmit};
use super::reassembly::{Reassembler, ReassemblyConfig, ReassemblyError, ReassemblyStats};
use super::rpl::RplRepr;
use super::rpl_node::{RplActions, RplNode};
use super::rpl_root::{RplRoot, RplRootConfig};
use super::sixlowpan::{self, Dispatch, SixlowpanError};
use super::srh::SrhRepr;

/// ARO status "neighbour cache full" (RFC 6775 §4.1).
const ARO_CACHE_FULL: u8 = 2;
/// Hop limit required on neighbour discovery messages (RFC 4861 §7.1).
const ND_HOP_LIMIT: u8 = 255;
/// Lifetime a node asks for when it registers with its parent, minutes.
const NODE_REGISTRATION_MIN: u16 = 60;
/// A registration not answered by an NA is sent again after this.
const REGISTRATION_RETRY: Duration = Duration::from_secs(10);
/// Router advertisement lifetimes (RFC 4861 defaults; contexts and ABRO per RFC 6775 §9).
const RA_ROUTER_LIFETIME_S: u16 = 1800;
const RA_PREFIX_VALID_S: u32 = 86_400;
const RA_PREFIX_PREFERRED_S: u32 = 14_400;
const RA_CONTEXT_MIN: u16 = 24 * 60;
const RA_ABRO_MIN: u16 = 10_000;
/// A 6LN's router solicitations (RFC 6775 §5.3): the first after a random delay of up to
/// MAX_RTR_SOLICITATION_DELAY, then RTR_SOLICITATION_INTERVAL apart for MAX_RTR_SOLICITATIONS,
/// then doubling up to MAX_RTR_SOLICITATION_INTERVAL until an RA arrives.
const RTR_SOLICITATION_DELAY_MS: u64 = 1000;
const RTR_SOLICITATION_INTERVAL: Duration = Duration::from_secs(10);
const MAX_RTR_SOLICITATIONS: u32 = 3;
const MAX_RTR_SOLICITATION_INTERVAL: Duration = Duration::from_secs(60);
/// Unicast frames to one neighbour that may go unacknowledged in a row (each after the MAC's
/// own retries) before a node stops using it as its RPL parent or router (RFC 4861's
/// MAX_UNICAST_SOLICIT).
const MAX_UNACKED_IN_A_ROW: u8 = 3;
/// How long a neighbour that never acknowledged us is not chosen again as parent or router;
/// each time it happens again the hold doubles, up to [`UNREACHABLE_HOLD_MAX`] (a one-way link
/// stays one-way; trying it again costs three frames an hour).
const UNREACHABLE_HOLD: Duration = Duration::from_secs(600);
const UNREACHABLE_HOLD_MAX: Duration = Duration::from_secs(3_600);
/// A candidate parent that has not acknowledged us is asked for a DIO at most this often.
const PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// Neighbours tracked for unacknowledged frames (a node has a handful of candidate parents).
const MAX_TRACKED_LINKS: usize = 16;
/// How long a node that sent a solicitation (RS, NS with ARO, DIS) keeps expecting the answer:
/// a sleepy node polls its router meanwhile, since the answer waits there for its poll.
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    pub mac: MacConfig,
    /// The /64 prefix of the LoWPAN; also 6LoWPAN context 0.
    pub prefix: Option<Ipv6Addr>,
    pub reassembly: ReassemblyConfig,
    pub hop_limit: u8,
    /// UDP datagrams waiting for `poll_udp`.
    pub rx_queue: usize,
    /// Address registrations kept (RFC 6775).
    pub max_registrations: usize,
    /// Set the router flag in neighbour advertisements.
    pub router: bool,
}

impl InterfaceConfig {
    pub fn new(pan: u16, ext_addr: [u8; 8], prefix: Option<Ipv6Addr>) -> InterfaceConfig {
        InterfaceConfig {
            mac: MacConfig::new(pan, ext_addr),
            prefix,
            reassembly: ReassemblyConfig::default(),
            hop_limit: 64,
            rx_queue: 64,
            max_registrations: 256,
            router: true,
        }
    }
}

/// A UDP datagram received for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    pub src: (Ipv6Addr, u16),
    pub dst: (Ipv6Addr, u16),
    pub payload: Vec<u8>,
    /// The MAC neighbour it came from.
    pub link_src: MacAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no link-layer address known for {0}")]
    NoRoute(Ipv6Addr),
    #[error("datagram of {0} bytes exceeds the 1280-byte IPv6 MTU")]
    TooLong(usize),
    #[error(transparent)]
    Sixlowpan(#[from] SixlowpanError),
    #[error(transparent)]
    Mac(#[from] MacError),
    #[error("transmit queue full")]
    QueueFull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RxError {
    #[error(transparent)]
    Mac(#[from] MacError),
    #[error(transparent)]
    Sixlowpan(#[from] SixlowpanError),
    #[error(transparent)]
    Reassembly(#[from] ReassemblyError),
    #[error(transparent)]
    Ipv6(#[from] Ipv6Error),
    #[error(transparent)]
    Icmpv6(#[from] Icmpv6Error),
    #[error("UDP header malformed or checksum wrong")]
    Udp,
    #[error("unsupported 6LoWPAN dispatch 0x{0:02x}")]
    Dispatch(u8),
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    pub rx_datagrams: u64,
    pub rx_udp: u64,
    pub rx_errors: u64,
    pub rx_not_for_us: u64,
    pub rx_queue_full: u64,
    pub rx_echo_requests: u64,
    pub rx_echo_replies: u64,
    pub rx_icmp_other: u64,
    pub ns_answered: u64,
    pub rs_answered: u64,
    pub registrations: u64,
    pub registrations_refused: u64,
    pub tx_datagrams: u64,
    pub tx_fragmented: u64,
    pub tx_frames_dropped: u64,
    /// Datagrams an RPL router passed on (upwards or along a source route).
    pub forwarded: u64,
    /// RPL parents left because they stopped acknowledging our frames.
    pub parents_lost: u64,
}

#[derive(Debug, Clone, Copy)]
struct Registration {
    mac: MacAddr,
    /// The EUI-64 of the ARO (RFC 6775 §4.1), for registrations; `None` for configured
    /// neighbours.
    eui64: Option<[u8; 8]>,
    expires: Instant,
}

/// An RFC 6775 address registration as the router holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisteredAddress {
    pub address: Ipv6Addr,
    /// Where the node is reached (its SLLAO: the address it polls from).
    pub mac: MacAddr,
    /// The EUI-64 the node registered with.
    pub eui64: [u8; 8],
    pub expires: Instant,
}

/// A 6LN's router discovery: the next RS and the wait after it, until an RA arrives.
#[derive(Debug, Clone, Copy)]
struct Solicitation {
    due: Instant,
    sent: u32,
}

pub struct Interface {
    cfg: InterfaceConfig,
    mac: MacLayer,
    reasm: Reassembler,
    rpl: Option<RplRoot>,
    rpl_node: Option<RplNode>,
    rx: VecDeque<UdpDatagram>,
    regs: BTreeMap<Ipv6Addr, Registration>,
    /// Where a node sends what is not on its link (its RPL parent or the border router).
    default_router: Option<MacAddr>,
    /// A node's RFC 6775 registration with its RPL parent: the parent it was sent to and when
    /// to refresh it.
    registered_with: Option<(MacAddr, Instant)>,
    /// A 6LN's pending router solicitation (until an RA arrives).
    solicit: Option<Solicitation>,
    /// The router whose RA configured us (link-local address, MAC address): registered with
    /// while no RPL parent is known.
    ra_router: Option<(Ipv6Addr, MacAddr)>,
    /// A solicitation went out; its answer is expected until then.
    expecting_until: Option<Instant>,
    /// Unicast frames in a row each neighbour left unacknowledged.
    unacked: BTreeMap<MacAddr, u8>,
    /// Neighbours that stopped acknowledging us: not chosen as parent or router until then,
    /// and how many times it happened.
    unreachable: BTreeMap<MacAddr, (Instant, u32)>,
    /// Neighbours that acknowledged our frames since they last failed us.
    confirmed: BTreeSet<MacAddr>,
    /// Neighbours that ever acknowledged a frame of ours: the link works both ways, so a
    /// neighbour that fails us later is busy, rebooting or gone, never held off as one-way.
    acked_ever: BTreeSet<MacAddr>,
    /// Candidate parents we sent a DIS to, and when.
    probed: BTreeMap<MacAddr, Instant>,
    tag: u16,
    stats: InterfaceStats,
}

impl Interface {
    pub fn new(cfg: InterfaceConfig) -> Interface {
        Interface {
            mac: MacLayer::new(cfg.mac.clone()),
            reasm: Reassembler::new(cfg.reassembly.clone()),
            rpl: None,
            rpl_node: None,
            cfg,
            rx: VecDeque::new(),
            regs: BTreeMap::new(),
            default_router: None,
            registered_with: None,
            solicit: None,
            ra_router: None,
            expecting_until: None,
            unacked: BTreeMap::new(),
            unreachable: BTreeMap::new(),
            confirmed: BTreeSet::new(),
            acked_ever: BTreeSet::new(),
            probed: BTreeMap::new(),
            tag: 0,
            stats: InterfaceStats::default(),
        }
    }

    pub fn stats(&self) -> InterfaceStats {
        self.stats
    }

    pub fn mac_stats(&self) -> MacStats {
        self.mac.stats()
    }

    pub fn reassembly_stats(&self) -> ReassemblyStats {
        self.reasm.stats()
    }

    /// The MAC layer, for neighbour metadata and sleepy-child configuration.
    pub fn mac(&self) -> &MacLayer {
        &self.mac
    }

    pub fn mac_mut(&mut self) -> &mut MacLayer {
        &mut self.mac
    }

    /// Makes this interface the RPL DODAG root (non-storing mode).
    pub fn enable_rpl_root(&mut self, now: Instant, cfg: RplRootConfig) {
        self.rpl = Some(RplRoot::new(now, cfg));
    }

    pub fn rpl(&self) -> Option<&RplRoot> {
        self.rpl.as_ref()
    }

    /// Makes this interface an RPL node (non-storing mode): it joins on a DIO, announces
    /// itself with DAOs, and once joined sends everything off its link to its parent. A
    /// `router` also forwards upwards and along received source routes, and sends DIOs.
    pub fn enable_rpl_node(&mut self, now: Instant, router: bool, seed: u64) {
        self.rpl_node = Some(RplNode::new(now, router, seed));
    }

    pub fn rpl_node(&self) -> Option<&RplNode> {
        self.rpl_node.as_ref()
    }

    /// Makes this interface a 6LN that discovers its router (RFC 6775 §5.3, as RIOT's 6LN does
    /// at boot): router solicitations with backoff until an RA arrives, then its global address
    /// under the RA's prefix registered (NS with ARO) with the router that answered. `seed`
    /// spreads the first RS of nodes booted together.
    pub fn start_router_discovery(&mut self, now: Instant, seed: u64) {
        let delay = Duration::from_millis(seed % RTR_SOLICITATION_DELAY_MS);
        self.solicit = Some(Solicitation { due: now + delay, sent: 0 });
    }

    /// The router whose RA configured this node, once one answered.
    pub fn ra_router(&self) -> Option<(Ipv6Addr, MacAddr)> {
        self.ra_router
    }

    /// True while a solicitation of ours (RS, NS with ARO, DIS) waits for its answer: a sleepy
    /// node should poll its router until then.
    pub fn expects_answer(&self, now: Instant) -> bool {
        self.expecting_until.is_some_and(|t| t > now)
    }

    /// When [`expects_answer`](Self::expects_answer) turns false.
    pub fn expecting_until(&self) -> Option<Instant> {
        self.expecting_until
    }

    fn expect_answer(&mut self, now: Instant) {
        self.expecting_until = Some(now + ANSWER_WAIT);
    }

    /// The outcome of a unicast frame to `dst` (after the MAC's retries). A neighbour that
    /// acknowledged us is *confirmed*: the link works both ways. A node leaves an RPL parent or
    /// router that leaves [`MAX_UNACKED_IN_A_ROW`] frames in a row unacknowledged (it leaves the
    /// DODAG and solicits a DIO, or solicits routers again). A neighbour that never
    /// acknowledged us and does so is held off for [`UNREACHABLE_HOLD`] (doubling each time,
    /// at most [`UNREACHABLE_HOLD_MAX`]): its DIOs and RAs are ignored, since a link heard one
    /// way only (a 0 dBm router's DIO reaching a -15 dBm leaf) is not a link. One that did
    /// acknowledge us once is only left: a router that reboots for its update comes back.
    pub fn handle_tx_outcome(&mut self, now: Instant, dst: MacAddr, acked: bool) {
        if dst == MacAddr::BROADCAST {
            return;
        }
        if acked {
            self.unacked.remove(&dst);
            if !self.confirmed.contains(&dst) {
                if self.confirmed.len() >= MAX_TRACKED_LINKS {
                    self.confirmed.pop_first();
                }
                self.confirmed.insert(dst);
            }
            if !self.acked_ever.contains(&dst) {
                if self.acked_ever.len() >= MAX_TRACKED_LINKS {
                    self.acked_ever.pop_first();
                }
                self.acked_ever.insert(dst);
            }
            return;
        }
        if !self.unacked.contains_key(&dst) && self.unacked.len() >= MAX_TRACKED_LINKS {
            return;
        }
        let n = self.unacked.entry(dst).or_default();
        *n = n.saturating_add(1);
        if *n < MAX_UNACKED_IN_A_ROW {
            return;
        }
        self.unacked.remove(&dst);
        let confirmed = self.confirmed.remove(&dst);
        if !self.acked_ever.contains(&dst) {
            self.hold_off(now, dst);
        }
        let parent = self.rpl_node.as_ref().and_then(RplNode::joined).map(|j| j.parent_mac);
        let router = self.ra_router.map(|(_, mac)| mac);
        if parent == Some(dst) {
            self.stats.parents_lost += 1;
            if let Some(node) = self.rpl_node.as_mut() {
                node.parent_unreachable(now, confirmed);
            }
        }
        if router == Some(dst) {
            self.ra_router = None;
            self.solicit = Some(Solicitation { due: now, sent: 0 });
        }
        if self.registered_with.is_some_and(|(mac, _)| mac == dst) {
            self.registered_with = None;
        }
    }

    /// Ignores `mac` as parent or router for a while, longer each time.
    fn hold_off(&mut self, now: Instant, mac: MacAddr) {
        let strikes = self.unreachable.get(&mac).map_or(0, |(_, n)| *n);
        if !self.unreachable.contains_key(&mac) && self.unreachable.len() >= MAX_TRACKED_LINKS {
            // Forget the neighbour whose hold ends soonest.
            let oldest = self.unreachable.iter().min_by_key(|(_, (until, _))| *until).map(|(m, _)| *m);
            if let Some(m) = oldest {
                self.unreachable.remove(&m);
            }
        }
        let hold = UNREACHABLE_HOLD.saturating_mul(1 << strikes.min(8)).min(UNREACHABLE_HOLD_MAX);
        self.unreachable.insert(mac, (now + hold, strikes.saturating_add(1)));
    }

    /// A DIO from `link_src`, a neighbour that has not acknowledged us yet, while we have a
    /// parent: we ask it for a DIO with a unicast DIS instead of switching to it. The DIS's
    /// ACK confirms the link, and the answering DIO is then considered like any other.
    fn probe_candidate(&mut self, now: Instant, src: Ipv6Addr, link_src: MacAddr) {
        if self.probed.get(&link_src).is_some_and(|at| now.saturating_duration_since(*at) < PROBE_INTERVAL) {
            return;
        }
        if !self.probed.contains_key(&link_src) && self.probed.len() >= MAX_TRACKED_LINKS {
            let oldest = self.probed.iter().min_by_key(|(_, at)| **at).map(|(m, _)| *m);
            if let Some(m) = oldest {
                self.probed.remove(&m);
            }
        }
        self.probed.insert(link_src, now);
        let d = ipv6::build_icmpv6(self.link_local(), src, ND_HOP_LIMIT, RplRepr::Dis.emit());
        let _ = self.send_ip(now, &d, link_src);
    }

    fn is_unreachable(&self, mac: &MacAddr, now: Instant) -> bool {
        self.unreachable.get(mac).is_some_and(|(until, _)| *until > now)
    }

    /// A joined RPL router forwards.
    fn forwards(&self) -> bool {
        self.rpl_node.as_ref().is_some_and(|n| n.is_router() && n.joined().is_some())
    }

    pub fn link_local(&self) -> Ipv6Addr {
        ipv6::link_local(MacAddr::Ext(self.cfg.mac.ext_addr))
    }

    /// Our address under the configured prefix.
    pub fn global(&self) -> Option<Ipv6Addr> {
        self.cfg.prefix.map(|p| ipv6::with_iid(p, ipv6::iid_from_mac(MacAddr::Ext(self.cfg.mac.ext_addr))))
    }

    fn is_own(&self, a: &Ipv6Addr) -> bool {
        let iid = ipv6::iid(a);
        let ours = |m: MacAddr| ipv6::iid_from_mac(m) == iid;
        let iid_ok = ours(MacAddr::Ext(self.cfg.mac.ext_addr))
            || self.cfg.mac.short_addr.is_some_and(|s| ours(MacAddr::Short(s)));
        let prefix_ok = ipv6::is_link_local(a) || self.cfg.prefix.is_some_and(|p| ipv6::same_prefix64(&p, a));
        iid_ok && prefix_ok
    }

    fn accepts(&self, dst: &Ipv6Addr) -> bool {
        if dst.is_multicast() {
            let sn = |m: MacAddr| ipv6::solicited_node(&ipv6::link_local(m)) == *dst;
            return *dst == ipv6::ALL_NODES
                || (self.cfg.router && *dst == ipv6::ALL_ROUTERS)
                || *dst == ipv6::ALL_RPL_NODES
                || sn(MacAddr::Ext(self.cfg.mac.ext_addr))
                || self.cfg.mac.short_addr.is_some_and(|s| sn(MacAddr::Short(s)));
        }
        self.is_own(dst)
    }

    /// Source address for a destination: link-local on the link, else our prefix address.
    fn source_for(&self, dst: &Ipv6Addr) -> Ipv6Addr {
        if ipv6::is_link_local(dst) || dst.is_multicast() {
            return self.link_local();
        }
        self.global().unwrap_or_else(|| self.link_local())
    }

    /// The MAC address an IPv6 destination is reached at, if it is one hop away.
    pub fn resolve(&self, dst: &Ipv6Addr) -> Option<MacAddr> {
        if dst.is_multicast() {
            return Some(MacAddr::BROADCAST);
        }
        if let Some(r) = self.regs.get(dst) {
            return Some(r.mac);
        }
        // A registered node's link-local address (from its EUI-64) is reached where it
        // registered, e.g. the short address it polls from (RFC 6775 §5.6: no NS for it).
        if ipv6::is_link_local(dst) {
            if let MacAddr::Ext(e) = ipv6::mac_from_iid(&ipv6::iid(dst)) {
                if let Some(r) = self.regs.values().find(|r| r.eui64 == Some(e)) {
                    return Some(r.mac);
                }
            }
        }
        // In the DODAG the prefix is not on-link: everything goes through the parent.
        if let Some(j) = self.rpl_node.as_ref().and_then(RplNode::joined) {
            if !ipv6::is_link_local(dst) {
                return Some(j.parent_mac);
            }
        }
        if ipv6::is_link_local(dst) {
            return Some(ipv6::mac_from_iid(&ipv6::iid(dst)));
        }
        // A 6LoWPAN host does not treat the prefix as on-link: all goes to its router.
        if self.default_router.is_some() {
            return self.default_router;
        }
        let on_link = self.cfg.prefix.is_some_and(|p| ipv6::same_prefix64(&p, dst));
        on_link.then(|| ipv6::mac_from_iid(&ipv6::iid(dst)))
    }

    /// A node's default route: datagrams for anything but link-local and registered addresses
    /// go to this neighbour, as a 6LN sends them to its router (RFC 6775 §5.6: the prefix is
    /// not on-link). Without one, the prefix is on-link (the border router's view).
    pub fn set_default_router(&mut self, router: Option<MacAddr>) {
        self.default_router = router;
    }

    /// A neighbour known by configuration (like `ip neigh add ... nud permanent`), e.g. a
    /// sleepy child whose polls come from its short address: it never expires.
    pub fn add_neighbor(&mut self, now: Instant, addr: Ipv6Addr, mac: MacAddr) {
        // About 136 years: "never" without risking an Instant overflow.
        let expires = now + Duration::from_secs(u64::from(u32::MAX));
        self.regs.insert(addr, Registration { mac, eui64: None, expires });
    }

    /// Registered addresses and the MAC address each was registered with.
    pub fn registrations(&self) -> impl Iterator<Item = (&Ipv6Addr, MacAddr)> {
        self.regs.iter().map(|(a, r)| (a, r.mac))
    }

    /// The RFC 6775 registrations nodes made (configured neighbours left out).
    pub fn registered(&self) -> impl Iterator<Item = RegisteredAddress> + '_ {
        self.regs.iter().filter_map(|(a, r)| {
            Some(RegisteredAddress { address: *a, mac: r.mac, eui64: r.eui64?, expires: r.expires })
        })
    }

    /// Marks a child as sleepy (frames held until it polls) or awake.
    pub fn set_sleepy(&mut self, child: MacAddr, sleepy: bool) {
        self.mac.set_sleepy(child, sleepy);
    }

    /// Sends a UDP datagram from our address for `dst`.
    pub fn send_udp(
        &mut self,
        now: Instant,
        src_port: u16,
        dst: (Ipv6Addr, u16),
        payload: &[u8],
    ) -> Result<(), SendError> {
        let len = ipv6::HEADER_LEN + UDP_HEADER_LEN + payload.len();
        if len > ipv6::MIN_MTU {
            return Err(SendError::TooLong(len));
        }
        let src = self.source_for(&dst.0);
        let d = ipv6::build_udp((src, src_port), dst, self.cfg.hop_limit, payload);
        self.send_datagram(now, d)
    }

    /// Sends an ICMPv6 echo request.
    pub fn send_ping(
        &mut self,
        now: Instant,
        dst: Ipv6Addr,
        ident: u16,
        seq: u16,
        data: &[u8],
    ) -> Result<(), SendError> {
        let msg = Icmpv6Repr::EchoRequest { ident, seq, data }.emit();
        let d = ipv6::build_icmpv6(self.source_for(&dst), dst, self.cfg.hop_limit, msg);
        self.send_datagram(now, d)
    }

    /// Sends a datagram (checksums computed for its final destination): downwards along an RPL
    /// source route when the destination is more than one hop away, else directly.
    fn send_datagram(&mut self, now: Instant, d: Vec<u8>) -> Result<(), SendError> {
        let (h, payload) = Ipv6Header::parse(&d).map_err(|_| SendError::TooLong(d.len()))?;
        let hops = self.rpl.as_ref().and_then(|r| r.route(&h.dst)).filter(|hops| hops.len() > 1);
        let Some(hops) = hops else {
            let ll = self.resolve(&h.dst).ok_or(SendError::NoRoute(h.dst))?;
            return self.send_ip(now, &d, ll);
        };
        let first = hops[0];
        let srh = SrhRepr {
            next_header: h.next_header,
            segments_left: (hops.len() - 1).min(255) as u8,
            addresses: hops[1..].to_vec(),
        }
        .emit(&first);
        let total = d.len() + srh.len();
        if total > ipv6::MIN_MTU {
            return Err(SendError::TooLong(total));
        }
        let routed =
            Ipv6Header { next_header: PROTO_ROUTING, dst: first, payload_len: (payload.len() + srh.len()) as u16, ..h };
        let mut hb = [0u8; ipv6::HEADER_LEN];
        routed.emit(&mut hb);
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&hb);
        out.extend_from_slice(&srh);
        out.extend_from_slice(payload);
        let ll = self.resolve(&first).ok_or(SendError::NoRoute(first))?;
        self.send_ip(now, &out, ll)
    }

    /// Compresses, fragments if needed, frames and queues one IPv6 datagram.
    fn send_ip(&mut self, now: Instant, datagram: &[u8], ll_dst: MacAddr) -> Result<(), SendError> {
        if datagram.len() > ipv6::MIN_MTU {
            return Err(SendError::TooLong(datagram.len()));
        }
        let c = sixlowpan::compress(datagram, self.mac.own_addr(), ll_dst, self.cfg.prefix)?;
        let max = self.mac.max_payload(ll_dst);
        let pieces = sixlowpan::fragment(&c, self.tag, max)?;
        if pieces.len() > 1 {
            self.tag = self.tag.wrapping_add(1);
            self.stats.tx_fragmented += 1;
        }
        self.stats.tx_datagrams += 1;
        let mut ok = true;
        for p in pieces {
            let psdu = self.mac.build_data(ll_dst, &p)?;
            if !self.mac.enqueue(now, ll_dst, psdu) {
                self.stats.tx_frames_dropped += 1;
                ok = false;
            }
        }
        if ok {
            Ok(())
        } else {
            Err(SendError::QueueFull)
        }
    }

    /// Handles one received PSDU (FCS included).
    pub fn handle_frame(&mut self, now: Instant, psdu: &[u8], meta: RxMeta) -> Result<(), RxError> {
        let r = self.handle_frame_inner(now, psdu, meta);
        if r.is_err() {
            self.stats.rx_errors += 1;
        }
        self.register_with_parent(now);
        r
    }

    /// A node in a DODAG registers its global address with its parent (RFC 6775 §5.5: NS with
    /// the ARO and its source link-layer address), as RIOT's 6LN does, and refreshes it at half
    /// the lifetime or when the parent changes. The parent then reaches it at the link-layer
    /// address it polls from, which may be its short address.
    /// Without a parent, the router whose RA configured the node is registered with instead
    /// (RFC 6775 §5.5).
    fn register_with_parent(&mut self, now: Instant) {
        let parent = self.rpl_node.as_ref().and_then(RplNode::joined).map(|j| (j.parent, j.parent_mac));
        let Some((parent, parent_mac)) = parent.or(self.ra_router) else { return };
        let Some(global) = self.global() else { return };
        if matches!(self.registered_with, Some((mac, due)) if mac == parent_mac && due > now) {
            return;
        }
        let aro = NdOption::Aro {
            status: ARO_SUCCESS,
            rest: [0; 3],
            lifetime_min: NODE_REGISTRATION_MIN,
            eui64: self.cfg.mac.ext_addr,
        };
        let ns = Icmpv6Repr::NeighborSolicit {
            target: parent,
            options: vec![NdOption::SourceLla(self.mac.own_addr()), aro],
        };
        let d = ipv6::build_icmpv6(global, parent, ND_HOP_LIMIT, ns.emit());
        // Sent again unless its NA (with the ARO's status) comes back first; then refreshed at
        // half the lifetime.
        if self.send_ip(now, &d, parent_mac).is_ok() {
            self.expect_answer(now);
        }
        let again = REGISTRATION_RETRY;
        self.registered_with = Some((parent_mac, now + again));
    }

    fn handle_frame_inner(&mut self, now: Instant, psdu: &[u8], meta: RxMeta) -> Result<(), RxError> {
        let (src, dst, payload) = match self.mac.handle_rx(now, psdu, meta)? {
            RxEvent::Data { src, dst, payload } => (src, dst, payload),
            _ => return Ok(()),
        };
        let ctx = self.cfg.prefix;
        let datagram = match Dispatch::of(payload) {
            Some(Dispatch::Frag1 | Dispatch::FragN) => match self.reasm.accept(now, src, dst, payload, ctx)? {
                Some(d) => d,
                None => return Ok(()),
            },
            Some(Dispatch::Iphc | Dispatch::Ipv6) => sixlowpan::decompress_datagram(payload, src, dst, ctx)?,
            Some(Dispatch::Unknown(b)) => return Err(RxError::Dispatch(b)),
            None => return Ok(()),
        };
        self.handle_ipv6(now, src, &datagram)
    }

    fn handle_ipv6(&mut self, now: Instant, link_src: MacAddr, d: &[u8]) -> Result<(), RxError> {
        let (h, payload) = Ipv6Header::parse(d)?;
        self.stats.rx_datagrams += 1;
        if !self.accepts(&h.dst) {
            if self.forwards() && !h.dst.is_multicast() && h.hop_limit > 1 {
                // Upwards: towards the root.
                let mut fwd = d.to_vec();
                fwd[7] = h.hop_limit - 1;
                let parent = self.rpl_node.as_ref().and_then(RplNode::joined).map(|j| j.parent_mac);
                if let Some(parent) = parent {
                    self.stats.forwarded += 1;
                    let _ = self.send_ip(now, &fwd, parent);
                    return Ok(());
                }
            }
            self.stats.rx_not_for_us += 1;
            return Ok(());
        }
        if h.next_header == PROTO_ROUTING && self.forwards() && h.hop_limit > 1 {
            if let Ok((srh, len)) = SrhRepr::parse(payload, &h.dst) {
                if srh.segments_left > 0 {
                    self.forward_source_routed(now, &h, srh, &payload[len..]);
                    return Ok(());
                }
            }
        }
        let (proto, upper) = ipv6::skip_extension_headers(h.next_header, payload)?;
        match proto {
            PROTO_UDP => {
                let u = upper.get(..UDP_HEADER_LEN).ok_or(RxError::Udp)?;
                let ulen = usize::from(u16::from_be_bytes([u[4], u[5]]));
                if ulen != upper.len() || ipv6::pseudo_checksum(&h.src, &h.dst, PROTO_UDP, upper) != 0 {
                    return Err(RxError::Udp);
                }
                if self.rx.len() >= self.cfg.rx_queue {
                    self.stats.rx_queue_full += 1;
                    return Ok(());
                }
                self.stats.rx_udp += 1;
                self.rx.push_back(UdpDatagram {
                    src: (h.src, u16::from_be_bytes([u[0], u[1]])),
                    dst: (h.dst, u16::from_be_bytes([u[2], u[3]])),
                    payload: upper[UDP_HEADER_LEN..].to_vec(),
                    link_src,
                });
                Ok(())
            }
            PROTO_ICMPV6 => self.handle_icmpv6(now, link_src, &h, upper),
            p => Err(RxError::Dispatch(p)),
        }
    }

    /// RFC 6554 §4.2: swap the destination with the next address, one segment less, to the
    /// next hop (a neighbour by construction).
    fn forward_source_routed(&mut self, now: Instant, h: &Ipv6Header, mut srh: SrhRepr, rest: &[u8]) {
        let n = srh.addresses.len();
        let left = usize::from(srh.segments_left);
        if left > n {
            self.stats.rx_errors += 1;
            return;
        }
        let i = n - left;
        let next = std::mem::replace(&mut srh.addresses[i], h.dst);
        srh.segments_left -= 1;
        let srh_bytes = srh.emit(&next);
        let out_h = Ipv6Header {
            dst: next,
            hop_limit: h.hop_limit - 1,
            payload_len: (srh_bytes.len() + rest.len()).min(usize::from(u16::MAX)) as u16,
            ..*h
        };
        let mut hb = [0u8; ipv6::HEADER_LEN];
        out_h.emit(&mut hb);
        let mut out = Vec::with_capacity(hb.len() + srh_bytes.len() + rest.len());
        out.extend_from_slice(&hb);
        out.extend_from_slice(&srh_bytes);
        out.extend_from_slice(rest);
        self.stats.forwarded += 1;
        let _ = self.send_ip(now, &out, ipv6::mac_from_iid(&ipv6::iid(&next)));
    }

    /// Sends what the RPL node asked for: a DAO to the root, a DIO to all RPL nodes.
    fn rpl_act(&mut self, now: Instant, a: RplActions) {
        let (Some(prefix), own) = (self.cfg.prefix, self.global()) else { return };
        let Some(node) = self.rpl_node.as_mut() else { return };
        if a.send_dao {
            let parent = node.joined().map(|j| ipv6::with_iid(prefix, ipv6::iid(&j.parent)));
            if let (Some(target), Some(parent)) = (own, parent) {
                if let Some((root, dao)) = node.dao(now, target, parent) {
                    let d = ipv6::build_icmpv6(target, root, self.cfg.hop_limit, dao.emit());
                    if self.send_datagram(now, d).is_ok() {
                        // Its DAO-ACK waits at the parent for a sleepy node's poll.
                        self.expect_answer(now);
                    }
                }
            }
        }
        if let (true, Some(router)) = (a.send_dis, self.default_router) {
            let ll = ipv6::link_local(router);
            let d = ipv6::build_icmpv6(self.link_local(), ll, ND_HOP_LIMIT, RplRepr::Dis.emit());
            if self.send_ip(now, &d, router).is_ok() {
                self.expect_answer(now);
            }
        }
        let dio = if a.send_dio { self.rpl_node.as_ref().and_then(RplNode::dio) } else { None };
        if let Some(dio) = dio {
            let d = ipv6::build_icmpv6(self.link_local(), ipv6::ALL_RPL_NODES, ND_HOP_LIMIT, dio.emit());
            let _ = self.send_ip(now, &d, MacAddr::BROADCAST);
        }
    }

    fn handle_icmpv6(&mut self, now: Instant, link_src: MacAddr, h: &Ipv6Header, msg: &[u8]) -> Result<(), RxError> {
        match Icmpv6Repr::parse(&h.src, &h.dst, msg)? {
            Icmpv6Repr::EchoRequest { ident, seq, data } => {
                self.stats.rx_echo_requests += 1;
                // Reply from the address that was pinged unless it was multicast.
                let src = if h.dst.is_multicast() { self.source_for(&h.src) } else { h.dst };
                let reply = Icmpv6Repr::EchoReply { ident, seq, data }.emit();
                let d = ipv6::build_icmpv6(src, h.src, self.cfg.hop_limit, reply);
                let ll = self.resolve(&h.src).unwrap_or(link_src);
                // A reply that cannot be queued is lost like any other frame.
                let _ = self.send_ip(now, &d, ll);
            }
            Icmpv6Repr::EchoReply { .. } => self.stats.rx_echo_replies += 1,
            Icmpv6Repr::RouterSolicit { options } if h.hop_limit == ND_HOP_LIMIT && self.cfg.router => {
                self.answer_rs(now, link_src, h, &options);
            }
            Icmpv6Repr::NeighborSolicit { target, options } if h.hop_limit == ND_HOP_LIMIT => {
                self.handle_ns(now, link_src, h, target, &options);
            }
            // A 6LR (an RPL router) is a host towards its own parent: it discovers its router
            // and registers like a 6LN. (The border router never solicits, so ignores both.)
            Icmpv6Repr::RouterAdvert { options, .. } if h.hop_limit == ND_HOP_LIMIT && ipv6::is_link_local(&h.src) => {
                self.handle_ra(now, link_src, h, &options);
            }
            Icmpv6Repr::NeighborAdvert { options, .. } if self.registered_with.is_some() => {
                // The answer to our registration: refreshed at half its lifetime from now on,
                // and a sleepy node may sleep again.
                let accepted = options.iter().any(|o| matches!(o, NdOption::Aro { status: ARO_SUCCESS, .. }));
                if let (true, Some((mac, _))) = (accepted, self.registered_with) {
                    let refresh = Duration::from_secs(30 * u64::from(NODE_REGISTRATION_MIN));
                    self.registered_with = Some((mac, now + refresh));
                }
                self.expecting_until = None;
            }
            Icmpv6Repr::Other { kind: TYPE_RPL, code, body } if self.rpl.is_some() => {
                let Ok(msg) = RplRepr::parse(code, body) else {
                    self.stats.rx_icmp_other += 1;
                    return Ok(());
                };
                // A unicast DIS is answered with a unicast DIO (RFC 6550 §8.3), which waits for a
                // sleepy node's poll where a multicast one would be missed.
                if msg == RplRepr::Dis && !h.dst.is_multicast() {
                    if let Some(dio) = self.rpl.as_ref().map(|r| r.dio().emit()) {
                        let d = ipv6::build_icmpv6(self.link_local(), h.src, ND_HOP_LIMIT, dio);
                        let ll = self.resolve(&h.src).unwrap_or(link_src);
                        let _ = self.send_ip(now, &d, ll);
                    }
                    return Ok(());
                }
                let reply = self.rpl.as_mut().and_then(|r| r.handle_message(now, h.src, &msg));
                if let Some((dst, reply)) = reply {
                    let src = self.source_for(&dst);
                    let d = ipv6::build_icmpv6(src, dst, self.cfg.hop_limit, reply.emit());
                    // A DAO-ACK that cannot be routed is lost; the node retries its DAO.
                    let _ = self.send_datagram(now, d);
                }
            }
            Icmpv6Repr::Other { kind: TYPE_RPL, code, body } if self.rpl_node.is_some() => {
                let (Ok(msg), Some(node)) = (RplRepr::parse(code, body), self.rpl_node.as_mut()) else {
                    self.stats.rx_icmp_other += 1;
                    return Ok(());
                };
                if msg == RplRepr::Dis {
                    // Unicast DIS: a unicast DIO back (a multicast one goes out on Trickle).
                    let dio = node.handle_dis().filter(|_| !h.dst.is_multicast());
                    if let Some(dio) = dio {
                        let d = ipv6::build_icmpv6(self.link_local(), h.src, ND_HOP_LIMIT, dio.emit());
                        let ll = self.resolve(&h.src).unwrap_or(link_src);
                        let _ = self.send_ip(now, &d, ll);
                    }
                    return Ok(());
                }
                if matches!(msg, RplRepr::Dio { .. }) {
                    if self.is_unreachable(&link_src, now) {
                        return Ok(());
                    }
                    let joined = self.rpl_node.as_ref().and_then(RplNode::joined).map(|j| j.parent_mac);
                    if joined.is_some_and(|p| p != link_src) && !self.confirmed.contains(&link_src) {
                        self.probe_candidate(now, h.src, link_src);
                        return Ok(());
                    }
                }
                let Some(node) = self.rpl_node.as_mut() else { return Ok(()) };
                let a = node.handle_dio(now, h.src, link_src, &msg);
                if matches!(msg, RplRepr::Dio { .. } | RplRepr::DaoAck { .. }) {
                    self.expecting_until = None;
                }
                self.rpl_act(now, a);
            }
            _ => self.stats.rx_icmp_other += 1,
        }
        Ok(())
    }

    /// Answers a router solicitation as a 6LoWPAN border router does (RFC 6775 §6.5, §8.1):
    /// a unicast RA carrying our link-layer address and, with a prefix, the prefix for address
    /// autoconfiguration (off-link, as 6LoWPAN-ND wants), that prefix as compression context 0,
    /// and the ABRO naming us as its source. RIOT and Contiki 6LNs send an RS at boot and
    /// configure their global address and context from this answer.
    fn answer_rs(&mut self, now: Instant, link_src: MacAddr, h: &Ipv6Header, options: &[NdOption]) {
        let sllao = options.iter().find_map(|o| match o {
            NdOption::SourceLla(m) => Some(*m),
            _ => None,
        });
        let mut reply_opts = vec![NdOption::SourceLla(self.mac.own_addr())];
        if let Some(prefix) = self.cfg.prefix {
            reply_opts.push(NdOption::PrefixInfo {
                prefix_len: 64,
                on_link: false,
                autonomous: true,
                valid_s: RA_PREFIX_VALID_S,
                preferred_s: RA_PREFIX_PREFERRED_S,
                prefix,
            });
            reply_opts.push(NdOption::SixCo {
                context_len: 64,
                cid: 0,
                compress: true,
                valid_min: RA_CONTEXT_MIN,
                prefix,
            });
            // A 6LR names the DODAG's root, the 6LBR; the 6LBR names itself.
            let root = self.rpl_node.as_ref().and_then(RplNode::joined).map(|j| j.dodag_id);
            let border_router = root.or_else(|| self.global()).unwrap_or_else(|| self.link_local());
            reply_opts.push(NdOption::Abro { version: 1, lifetime_min: RA_ABRO_MIN, border_router });
        }
        let ra = Icmpv6Repr::RouterAdvert {
            cur_hop_limit: self.cfg.hop_limit,
            managed: false,
            other: false,
            router_lifetime_s: RA_ROUTER_LIFETIME_S,
            reachable_ms: 0,
            retrans_ms: 0,
            options: reply_opts,
        };
        let dst = if h.src.is_unspecified() { ipv6::ALL_NODES } else { h.src };
        let ll_dst = if dst.is_multicast() { MacAddr::BROADCAST } else { sllao.unwrap_or(link_src) };
        let d = ipv6::build_icmpv6(self.link_local(), dst, ND_HOP_LIMIT, ra.emit());
        if self.send_ip(now, &d, ll_dst).is_ok() {
            self.stats.rs_answered += 1;
        }
    }

    /// A 6LN configures itself from an RA (RFC 6775 §5.4, §5.5): the prefix of its PIO
    /// (autonomous) becomes its own and context 0, solicitations stop, and its global address
    /// is registered with the router that answered (at the RA's SLLAO).
    fn handle_ra(&mut self, now: Instant, link_src: MacAddr, h: &Ipv6Header, options: &[NdOption]) {
        if self.solicit.is_none() && self.ra_router.is_none() {
            return;
        }
        let mac = options
            .iter()
            .find_map(|o| match o {
                NdOption::SourceLla(m) => Some(*m),
                _ => None,
            })
            .unwrap_or(link_src);
        if self.is_unreachable(&mac, now) {
            return;
        }
        // Keep a router that answers us; another one's RA (heard, perhaps, one way) does not
        // move the registration.
        if self.ra_router.is_some_and(|(_, m)| m != mac && self.confirmed.contains(&m)) {
            return;
        }
        let prefix = options.iter().find_map(|o| match o {
            NdOption::PrefixInfo { prefix_len: 64, autonomous: true, valid_s, prefix, .. } if *valid_s > 0 => {
                Some(*prefix)
            }
            _ => None,
        });
        if let Some(p) = prefix {
            self.cfg.prefix = Some(p);
        }
        self.solicit = None;
        self.expecting_until = None;
        if self.ra_router != Some((h.src, mac)) {
            self.ra_router = Some((h.src, mac));
            // A new router: register with it now (unless an RPL parent is registered with).
            if self.rpl_node.as_ref().and_then(RplNode::joined).is_none() {
                self.registered_with = None;
            }
        }
        self.register_with_parent(now);
    }

    /// Sends a router solicitation to all routers, with our link-layer address (RFC 6775 §5.3).
    fn send_rs(&mut self, now: Instant) {
        let rs = Icmpv6Repr::RouterSolicit { options: vec![NdOption::SourceLla(self.mac.own_addr())] };
        let d = ipv6::build_icmpv6(self.link_local(), ipv6::ALL_ROUTERS, ND_HOP_LIMIT, rs.emit());
        if self.send_ip(now, &d, MacAddr::BROADCAST).is_ok() {
            self.expect_answer(now);
        }
    }

    fn solicit_due(&mut self, now: Instant) {
        let Some(s) = self.solicit.filter(|s| s.due <= now) else { return };
        self.send_rs(now);
        let sent = s.sent + 1;
        let wait = if sent < MAX_RTR_SOLICITATIONS {
            RTR_SOLICITATION_INTERVAL
        } else {
            (RTR_SOLICITATION_INTERVAL * 2u32.saturating_pow(sent - MAX_RTR_SOLICITATIONS + 1))
                .min(MAX_RTR_SOLICITATION_INTERVAL)
        };
        self.solicit = Some(Solicitation { due: now + wait, sent });
    }

    fn handle_ns(&mut self, now: Instant, link_src: MacAddr, h: &Ipv6Header, target: Ipv6Addr, options: &[NdOption]) {
        let sllao = options.iter().find_map(|o| match o {
            NdOption::SourceLla(m) => Some(*m),
            _ => None,
        });
        let aro = options.iter().find_map(|o| match o {
            NdOption::Aro { rest, lifetime_min, eui64, .. } => Some((*rest, *lifetime_min, *eui64)),
            _ => None,
        });
        let ll_dst = sllao.unwrap_or(link_src);
        let mut reply_opts = Vec::new();
        if let (Some((rest, lifetime_min, eui64)), false) = (aro, h.src.is_unspecified()) {
            // RFC 6775 registers the NS source; RFC 8505 the target. Accept both.
            let registered = if self.is_own(&target) { h.src } else { target };
            // Reach it where it says it listens (SLLAO, e.g. the short address it polls from).
            let status = self.register(now, registered, sllao.unwrap_or(MacAddr::Ext(eui64)), eui64, lifetime_min);
            reply_opts.push(NdOption::Aro { status, rest, lifetime_min, eui64 });
        } else if !self.is_own(&target) {
            return;
        }
        if self.is_own(&target) {
            reply_opts.push(NdOption::TargetLla(self.mac.own_addr()));
        }
        let (dst, solicited) = if h.src.is_unspecified() { (ipv6::ALL_NODES, false) } else { (h.src, true) };
        let na = Icmpv6Repr::NeighborAdvert {
            router: self.cfg.router,
            solicited,
            override_: true,
            target,
            options: reply_opts,
        };
        let src = if self.is_own(&target) { target } else { self.source_for(&dst) };
        let d = ipv6::build_icmpv6(src, dst, ND_HOP_LIMIT, na.emit());
        let ll = if dst.is_multicast() { MacAddr::BROADCAST } else { ll_dst };
        if self.send_ip(now, &d, ll).is_ok() {
            self.stats.ns_answered += 1;
        }
    }

    /// Records or refreshes an address registration; lifetime 0 removes it. Returns the ARO
    /// status to answer with.
    fn register(&mut self, now: Instant, addr: Ipv6Addr, mac: MacAddr, eui64: [u8; 8], lifetime_min: u16) -> u8 {
        if lifetime_min == 0 {
            self.regs.remove(&addr);
            return ARO_SUCCESS;
        }
        let expires = now + Duration::from_secs(60 * u64::from(lifetime_min));
        if !self.regs.contains_key(&addr) {
            self.regs.retain(|_, r| r.expires > now);
            if self.regs.len() >= self.cfg.max_registrations {
                self.stats.registrations_refused += 1;
                return ARO_CACHE_FULL;
            }
        }
        self.regs.insert(addr, Registration { mac, eui64: Some(eui64), expires });
        self.stats.registrations += 1;
        ARO_SUCCESS
    }

    /// Next UDP datagram for the CoAP endpoint.
    pub fn poll_udp(&mut self) -> Option<UdpDatagram> {
        self.rx.pop_front()
    }

    /// Next frame for the radio.
    pub fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        self.mac.poll_transmit()
    }

    /// Next change for the RCP's source-match table.
    pub fn poll_source_match(&mut self) -> Option<SourceMatch> {
        self.mac.poll_source_match()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let rpl = self.rpl.as_ref().map(RplRoot::poll_timeout);
        let node = self.rpl_node.as_ref().and_then(RplNode::poll_timeout);
        let refresh = self.registered_with.map(|(_, due)| due);
        let solicit = self.solicit.map(|s| s.due);
        let timers = [self.mac.poll_timeout(), self.reasm.poll_timeout(), rpl, node, refresh, solicit];
        timers.into_iter().chain([self.expecting_until]).flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.mac.handle_timeout(now);
        self.reasm.handle_timeout(now);
        self.regs.retain(|_, r| r.expires > now);
        let dio = self.rpl.as_mut().and_then(|r| r.handle_timeout(now).then(|| r.dio().emit()));
        if let Some(msg) = dio {
            let d = ipv6::build_icmpv6(self.link_local(), ipv6::ALL_RPL_NODES, ND_HOP_LIMIT, msg);
            let _ = self.send_ip(now, &d, MacAddr::BROADCAST);
        }
        if let Some(a) = self.rpl_node.as_mut().map(|n| n.handle_timeout(now)) {
            self.rpl_act(now, a);
        }
        self.solicit_due(now);
        if self.expecting_until.is_some_and(|t| t <= now) {
            self.expecting_until = None;
        }
        self.register_with_parent(now);
    }
}
