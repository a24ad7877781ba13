//! Devices behind the kernel's IP stack (`[[kernel_device]]`): an existing Thread network behind
//! OTBR, a Linux `wpan` interface, RIOT `native` on a tap. ferry's radio never carries their
//! traffic: they are asked, triggered and served over `[coap] listen`, with the same delivery
//! engine (its peer is their UDP socket address) and the same catalog of verified content.
//!
//! What ferry cannot learn about them through the kernel it does not invent: their topology
//! behind OTBR is unknown (the planner sees them one hop from the root, with no subtree, since
//! none of ferry's air is theirs), their duty cycle is unknown unless a later report says
//! otherwise, and battery, storage and installed sequence number come from `/ferry/status` or,
//! for devices that cannot report them (RIOT native), from the configuration. A device without
//! `/suit/slot/*` or `/ferry/status` ends "delivered, unconfirmed", never done.
//!
//! Devices can also be found where the link carries multicast: `[coap] discover` lists
//! addresses (all-CoAP-nodes `ff02::fd%IFACE`, RFC 7252 §12.8, or unicast ones) asked
//! `GET /.well-known/core` every few minutes; every answer that lists `/suit/trigger` is a kernel
//! device at the answer's source address, recorded as discovered (its EUI-64 from the
//! address's interface ID) for an operator to admit.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::coap::udp::{ShellError, ShellHandle, UdpPeer};
use crate::coap::{self, RequestId, StartError};
use crate::config::{Config, KernelDeviceConfig};
use crate::fleet::commission::{self, Heard};
use crate::fleet::device::{Eui64, LinkQuality, Parent, Source};
use crate::fleet::InMemoryTopology;
use crate::schedule::plan::PlanDevice;
use crate::store::Store;

/// RIOT's single SUIT component, as `plan::component_name` writes it.
const RIOT_COMPONENT: &str = "00";

/// The link the planner sees for a kernel device whose link ferry cannot measure: the group's
/// radio thresholds guard ferry's own air, which none of its traffic takes.
const KERNEL_LINK: LinkQuality = LinkQuality { rssi_dbm: 0, lqi: u8::MAX, etx: 1.0 };

/// One configured kernel device.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KernelDevice {
    pub eui64: Eui64,
    pub peer: SocketAddrV6,
}

/// The configured kernel devices (entries that do not resolve are refused by `Config::parse`).
pub(super) fn configured(config: &Config) -> Vec<KernelDevice> {
    config
        .kernel_devices
        .iter()
        .filter_map(|k| Some(KernelDevice { eui64: k.eui64().ok()?, peer: k.socket_addr() }))
        .collect()
}

/// The planner's view of kernel devices: one hop from the root with no subtree (their
/// topology behind the kernel is unknown), the configured facts where the device reports none.
pub(super) fn complete_plan_view(config: &Config, topology: &mut InMemoryTopology, devices: &mut [PlanDevice]) {
    for k in &config.kernel_devices {
        let Ok(eui) = k.eui64() else { continue };
        if crate::fleet::Topology::hops(topology, eui).is_none() {
            topology.set_parent(eui, Parent::BorderRouter);
        }
        let Some(device) = devices.iter_mut().find(|d| d.eui64 == eui) else { continue };
        device.mains_powered |= k.mains_powered;
        device.free_storage_bytes = device.free_storage_bytes.or(k.free_storage_bytes);
        device.link = device.link.or(Some(KERNEL_LINK));
        if let Some(seq) = k.installed_sequence {
            device.installed.entry(RIOT_COMPONENT.to_owned()).or_insert(seq);
        }
    }
}

/// Where a request to a device goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Lowpan,
    Kernel(UdpPeer),
    /// A kernel device, but `[coap] listen` has no IPv6 socket to reach it from.
    Unreachable,
}

/// The kernel side of the delivery room: which peers are reached over `[coap] listen`, and
/// requests to them.
pub(super) struct KernelSide {
    udp: Option<ShellHandle>,
    /// Configured and discovered devices (a configured entry wins for its EUI-64).
    devices: Vec<KernelDevice>,
    /// Devices that answered a discovery query.
    discovered: Discovered,
    /// The discovery query running now, and when the next is due.
    discovering: Option<tokio::task::JoinHandle<Vec<SocketAddrV6>>>,
    next_discovery: Instant,
}

impl KernelSide {
    pub(super) fn new(udp: Option<ShellHandle>) -> Self {
        Self {
            udp,
            devices: Vec::new(),
            discovered: Discovered::default(),
            discovering: None,
            next_discovery: Instant::now(),
        }
    }

    /// Takes the devices the configuration lists now and those discovery found; those not
    /// known yet are recorded as discovered, and true is returned when any was new.
    pub(super) async fn refresh(&mut self, config: &Config, store: &Store) -> bool {
        self.poll_discovery(config).await;
        let mut devices = configured(config);
        for d in self.discovered.devices() {
            if !devices.iter().any(|c| c.eui64 == d.eui64) {
                devices.push(d.clone());
            }
        }
        if devices == self.devices {
            return false;
        }
        if self.udp.is_none() && !devices.is_empty() {
            tracing::warn!("kernel devices need [coap] listen to be reached; they are not updated");
        }
        let mut new = false;
        for d in devices.iter().filter(|d| !self.devices.contains(d)) {
            let listed = configured(config).contains(d);
            let source = if listed { Source::Config } else { Source::DeviceReport };
            match commission::discovered(store, d.eui64, Timestamp::now(), source).await {
                Ok(Heard::New(_)) | Ok(Heard::Rediscovered(_)) => {
                    let how = if listed { "listed in ferry.toml" } else { "answered a discovery query" };
                    tracing::info!(device = %d.eui64, address = %d.peer, "kernel device {how}");
                    new = true;
                }
                Ok(Heard::Known(_)) => {}
                Err(e) => tracing::warn!(device = %d.eui64, "cannot record the kernel device: {e}"),
            }
        }
        self.devices = devices;
        new
    }

    /// Collects a finished discovery query's answers and starts the next when it is due.
    async fn poll_discovery(&mut self, config: &Config) {
        let now = Instant::now();
        if let Some(task) = self.discovering.take_if(|task| task.is_finished()) {
            if let Ok(found) = task.await {
                self.discovered.heard(&found, now);
            }
        }
        self.discovered.expire(now);
        if self.discovering.is_some() || now < self.next_discovery || config.coap.discover.is_empty() {
            return;
        }
        // Checked when the configuration was read: every entry parses here.
        let targets: Vec<SocketAddrV6> =
            config.coap.discover.iter().filter_map(|t| crate::config::parse_discover_target(t).ok()).collect();
        let seed = crate::daemon::now_ms() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        self.discovering = Some(tokio::spawn(discover(targets, seed)));
        self.next_discovery = now + DISCOVER_PERIOD;
    }

    /// The kernel devices known now (configured and discovered).
    pub(super) fn devices(&self) -> &[KernelDevice] {
        &self.devices
    }

    /// The CoAP address of a kernel device.
    pub(super) fn peer_of(&self, device: Eui64) -> Option<SocketAddrV6> {
        self.devices.iter().find(|d| d.eui64 == device).map(|d| d.peer)
    }

    /// Where a request to `peer` goes: over the first IPv6 socket of `[coap] listen` for a
    /// kernel device, else on the LoWPAN.
    pub(super) fn route(&self, peer: &SocketAddrV6) -> Route {
        if !self.devices.iter().any(|d| d.peer == *peer) {
            return Route::Lowpan;
        }
        let socket = self.udp.as_ref().and_then(|udp| udp.local_addrs().iter().position(SocketAddr::is_ipv6));
        match socket {
            Some(socket) => Route::Kernel(UdpPeer { socket, addr: SocketAddr::V6(*peer) }),
            None => Route::Unreachable,
        }
    }

    /// The kernel device a datagram from `from` came from: its exact address, or the one
    /// device at that IP (a RIOT node fetches from an ephemeral port). Several devices behind
    /// one IP are told apart by port only.
    pub(super) fn device_at(&self, from: &SocketAddr) -> Option<SocketAddrV6> {
        let ip = match from.ip() {
            IpAddr::V6(ip) => ip,
            IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        };
        if let Some(d) = self.devices.iter().find(|d| SocketAddr::V6(d.peer) == *from) {
            return Some(d.peer);
        }
        let mut at_ip = self.devices.iter().filter(|d| *d.peer.ip() == ip);
        match (at_ip.next(), at_ip.next()) {
            (Some(only), None) => Some(only.peer),
            _ => None,
        }
    }

    /// Starts `request` to a kernel peer on the `[coap] listen` endpoint.
    pub(super) async fn start_request(
        &self,
        peer: UdpPeer,
        request: coap::Request,
    ) -> Result<Result<RequestId, StartError>, ShellError> {
        let udp = self.udp.as_ref().ok_or(ShellError::Stopped)?;
        udp.with(move |endpoint, now| endpoint.start_request(now, peer, request)).await
    }
}

/// How often `[coap] discover` targets are asked again.
const DISCOVER_PERIOD: Duration = Duration::from_secs(5 * 60);
/// How long answers to one query are collected (a multicast query is answered by many).
const DISCOVER_WAIT: Duration = Duration::from_secs(2);
/// Discovered devices kept at most (each becomes a device row). Anyone on the link who reads a
/// multicast query can answer it from made-up addresses; beyond this, new answers are dropped.
const MAX_DISCOVERED: usize = 512;

/// A discovered device that answered no query for this long is dropped (288 queries at
/// [`DISCOVER_PERIOD`]): it left, or its address changed to one with another interface ID
/// (which is another EUI-64, so another device row).
const DISCOVERED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The devices that answered discovery queries: for each EUI-64 the address it last answered
/// from, and when.
#[derive(Debug, Default)]
struct Discovered {
    entries: Vec<(KernelDevice, Instant)>,
}

impl Discovered {
    fn devices(&self) -> impl Iterator<Item = &KernelDevice> {
        self.entries.iter().map(|(d, _)| d)
    }

    /// Notes the answers to one query at `now`. A device answering from a new address with
    /// the same interface ID (the network was renumbered) is asked there from now on; one that
    /// answers from two (a link-local and a routable address) keeps the first.
    fn heard(&mut self, found: &[SocketAddrV6], now: Instant) {
        for &peer in found {
            let device = KernelDevice { eui64: KernelDeviceConfig::eui64_of(peer.ip()), peer };
            if let Some((known, at)) = self.entries.iter_mut().find(|(d, _)| d.eui64 == device.eui64) {
                if *at == now {
                    continue;
                }
                if known.peer != peer {
                    tracing::info!(device = %device.eui64, from = %known.peer, to = %peer, "kernel device moved");
                    known.peer = peer;
                }
                *at = now;
                continue;
            }
            if self.entries.len() >= MAX_DISCOVERED {
                tracing::warn!(address = %peer, "{MAX_DISCOVERED} kernel devices discovered already; ignoring more");
                break;
            }
            tracing::debug!(address = %peer, "a SUIT device answered the discovery query");
            self.entries.push((device, now));
        }
    }

    /// Drops the devices that have not answered for [`DISCOVERED_TTL`].
    fn expire(&mut self, now: Instant) {
        self.entries.retain(|(device, at)| {
            let keep = now.saturating_duration_since(*at) < DISCOVERED_TTL;
            if !keep {
                tracing::info!(device = %device.eui64, address = %device.peer, "kernel device no longer answers discovery");
            }
            keep
        });
    }
}

/// The query: NON GET `/.well-known/core` (RFC 7252 §8.1: multicast requests are NON).
pub fn discovery_request(message_id: u16, token: [u8; 4]) -> Vec<u8> {
    let mut pkt = coap_lite::Packet::new();
    pkt.header.set_version(1);
    pkt.header.set_type(coap::MessageType::NonConfirmable);
    pkt.header.message_id = message_id;
    pkt.set_token(token.to_vec());
    coap::Request { confirmable: false, ..coap::Request::get(coap::resource::WELL_KNOWN_CORE) }.write_into(&mut pkt);
    pkt.to_bytes().unwrap_or_default()
}

/// Whether `datagram` answers our query with `token` and lists `/suit/trigger`: a SUIT device.
pub fn answers_as_suit_device(datagram: &[u8], token: [u8; 4]) -> bool {
    let Ok(pkt) = coap_lite::Packet::from_bytes(datagram) else { return false };
    if pkt.get_token() != token {
        return false;
    }
    let Ok(response) = coap::Response::from_packet(&pkt) else { return false };
    if response.code != coap::Code::Content {
        return false;
    }
    let Ok(links) = std::str::from_utf8(&response.payload) else { return false };
    links.split(',').any(|link| link.trim().split(';').next() == Some("</suit/trigger>"))
}

/// Sends the query to every target and collects, for [`DISCOVER_WAIT`], who answers as a SUIT
/// device. Runs as its own task; a multicast query's answers come from the devices' own
/// addresses, which the CoAP endpoint (answers matched to the peer asked) does not take.
async fn discover(targets: Vec<SocketAddrV6>, seed: u64) -> Vec<SocketAddrV6> {
    let socket = match tokio::net::UdpSocket::bind("[::]:0").await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot discover kernel devices: {e}");
            return Vec::new();
        }
    };
    let token = (seed as u32).to_be_bytes();
    let request = discovery_request((seed >> 32) as u16, token);
    for target in &targets {
        if let Err(e) = socket.send_to(&request, SocketAddr::V6(*target)).await {
            tracing::debug!(%target, "discovery query not sent: {e}");
        }
    }
    let mut found = Vec::new();
    let mut buf = vec![0u8; 2048];
    let until = tokio::time::Instant::now() + DISCOVER_WAIT;
    loop {
        match tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, SocketAddr::V6(from)))) => {
                if answers_as_suit_device(&buf[..n], token) && !found.contains(&from) && found.len() < MAX_DISCOVERED {
                    found.push(from);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("discovery: {e}"),
            Err(_) => return found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let base = "[radio]\nurl = \"sim:sim/home.toml\"\n";
        Config::parse(std::path::Path::new("ferry.toml"), &format!("{base}{text}")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_kernel_device_is_named_by_its_address() {
        let c = config(
            "[[kernel_device]]\naddress = \"fd00:1::200:fe77:0:5\"\n\
             [[kernel_device]]\naddress = \"::1\"\nport = 5700\neui64 = \"02:00:00:00:00:00:00:07\"\n",
        );
        let devices = configured(&c);
        // The interface ID 0200:fe77:0000:0005 with the U/L bit flipped back.
        assert_eq!(devices[0].eui64.to_string(), "00:00:fe:77:00:00:00:05");
        assert_eq!(devices[0].peer.port(), 5683);
        assert_eq!(devices[1].eui64.to_string(), "02:00:00:00:00:00:00:07");

        let mut side = KernelSide::new(None);
        side.devices = devices;
        let native: SocketAddr = "[::1]:5700".parse().unwrap_or_else(|e| panic!("{e}"));
        let ephemeral: SocketAddr = "[::1]:40000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(side.device_at(&native).map(|p| p.port()), Some(5700));
        assert_eq!(side.device_at(&ephemeral).map(|p| p.port()), Some(5700), "the one device at ::1");
        assert_eq!(side.device_at(&"[fd00::9]:5683".parse().unwrap_or_else(|e| panic!("{e}"))), None);
        // Without [coap] listen nothing is routed over the kernel.
        assert_eq!(side.route(&devices_peer(&side, 1)), Route::Unreachable);
        assert_eq!(side.route(&"[fd00::9]:5683".parse().unwrap_or_else(|e| panic!("{e}"))), Route::Lowpan);
    }

    fn devices_peer(side: &KernelSide, i: usize) -> SocketAddrV6 {
        side.devices[i].peer
    }

    #[test]
    fn a_kernel_device_listed_twice_is_refused() {
        let base = "[radio]\nurl = \"sim:sim/home.toml\"\n";
        let text =
            format!("{base}[[kernel_device]]\naddress = \"fd00::2\"\n[[kernel_device]]\naddress = \"fd00::2\"\n");
        let err = Config::parse(std::path::Path::new("ferry.toml"), &text).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("kernel_device[1]") && err.contains("listed once"), "{err}");
        let text = format!("{base}[[kernel_device]]\naddress = \"ff02::fd\"\n");
        let err = Config::parse(std::path::Path::new("ferry.toml"), &text).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("unicast"), "{err}");
    }

    #[test]
    fn the_planner_sees_a_kernel_device_one_hop_away_with_its_configured_facts() {
        let c = config(
            "[[kernel_device]]\naddress = \"::1\"\nport = 5700\neui64 = \"02:00:00:00:00:00:00:07\"\n\
             mains_powered = true\nfree_storage_bytes = 4096\ninstalled_sequence = 5\n",
        );
        let eui = Eui64([2, 0, 0, 0, 0, 0, 0, 7]);
        let mut device = PlanDevice {
            eui64: eui,
            name: None,
            group: "g".into(),
            lifecycle: crate::fleet::Lifecycle::Active,
            vendor_id: None,
            class_id: None,
            installed: Default::default(),
            mains_powered: false,
            battery_percent: None,
            free_storage_bytes: None,
            link: None,
            wake_period_ms: None,
        };
        let mut topology = InMemoryTopology::new();
        complete_plan_view(&c, &mut topology, std::slice::from_mut(&mut device));
        assert_eq!(crate::fleet::Topology::hops(&topology, eui), Some(1));
        assert!(device.mains_powered);
        assert_eq!((device.free_storage_bytes, device.installed.get("00")), (Some(4096), Some(&5)));
        // What the device reports wins over the configuration.
        device.installed.insert("00".into(), 9);
        device.free_storage_bytes = Some(1);
        complete_plan_view(&c, &mut topology, std::slice::from_mut(&mut device));
        assert_eq!((device.free_storage_bytes, device.installed.get("00")), (Some(1), Some(&9)));
    }

    #[test]
    fn discover_targets_name_their_interface() {
        use crate::config::parse_discover_target;
        let lo = crate::config::interface_index("lo").unwrap_or(1);
        assert_eq!(
            parse_discover_target("ff02::fd%lo"),
            Ok(SocketAddrV6::new("ff02::fd".parse().expect("ip"), 5683, 0, lo))
        );
        assert_eq!(parse_discover_target("[ff02::fd%7]:5700").map(|a| (a.port(), a.scope_id())), Ok((5700, 7)));
        assert_eq!(parse_discover_target("fd00::2").map(|a| a.port()), Ok(5683));
        assert!(parse_discover_target("ff02::fd").unwrap_err().contains("needs its interface"));
        assert!(parse_discover_target("ff05::fd").is_ok(), "site-local multicast is routed");
        assert!(parse_discover_target("ff02::fd%no-such-if0").unwrap_err().contains("no network interface"));
        assert!(parse_discover_target("[::1]x").is_err());
    }

    #[test]
    fn a_suit_device_answers_discovery_with_suit_trigger() {
        let token = [1, 2, 3, 4];
        let query = coap_lite::Packet::from_bytes(&discovery_request(0x1234, token)).expect("packet");
        assert_eq!(query.header.get_type(), coap::MessageType::NonConfirmable);
        assert_eq!(coap::Request::from_packet(&query).expect("request").path_string(), ".well-known/core");
        let answer = |links: &str, token: [u8; 4]| {
            let mut pkt = coap_lite::Packet::new();
            pkt.header.set_type(coap::MessageType::NonConfirmable);
            pkt.set_token(token.to_vec());
            coap::Response::content(coap::content_format::LINK_FORMAT, links.as_bytes().to_vec())
                .write_into(&mut pkt, links.as_bytes());
            pkt.to_bytes().expect("bytes")
        };
        // RIOT's suit_update example.
        let riot = "</suit/trigger>,</suit/slot/active>;ct=0,</riot/board>";
        assert!(answers_as_suit_device(&answer(riot, token), token));
        assert!(!answers_as_suit_device(&answer(riot, [9, 9, 9, 9]), token), "another query's answer");
        assert!(!answers_as_suit_device(&answer("</suit/triggers>,</riot/board>", token), token));
        assert!(!answers_as_suit_device(b"\xff\x00", token));
    }

    #[test]
    fn a_discovered_device_follows_its_address_and_is_dropped_when_silent() {
        let addr = |text: &str| SocketAddrV6::new(text.parse().expect("address"), 5683, 0, 0);
        let t0 = Instant::now();
        let mut book = Discovered::default();
        let link_local = SocketAddrV6::new("fe80::200:fe77:0:6".parse().expect("address"), 5683, 0, 2);
        book.heard(&[addr("fd00:1::200:fe77:0:5"), addr("fd00:1::200:fe77:0:6"), link_local], t0);
        // The network was renumbered: the same interface ID answers under a new prefix.
        let later = t0 + Duration::from_secs(3600);
        book.heard(&[addr("fd00:2::200:fe77:0:5")], later);
        let peers: Vec<SocketAddrV6> = book.devices().map(|d| d.peer).collect();
        assert_eq!(peers, [addr("fd00:2::200:fe77:0:5"), addr("fd00:1::200:fe77:0:6")]);
        assert_eq!(
            book.devices().next().map(|d| d.eui64),
            Some(KernelDeviceConfig::eui64_of(&"fd00:1::200:fe77:0:5".parse().expect("address")))
        );
        book.expire(t0 + DISCOVERED_TTL);
        let peers: Vec<SocketAddrV6> = book.devices().map(|d| d.peer).collect();
        assert_eq!(peers, [addr("fd00:2::200:fe77:0:5")], "the silent one is dropped, the moved one kept");
        book.expire(later + DISCOVERED_TTL);
        assert_eq!(book.devices().count(), 0);
    }
}
