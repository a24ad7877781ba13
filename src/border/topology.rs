//! The topology read model: a snapshot of the RPL root's table (each node's parent, rank, hops,
//! path lifetime) joined with what the MAC heard of the root's neighbours (RSSI, LQI, last
//! heard) and the TX outcomes towards them. It is plain data (serde) so the control API can
//! ship it and `ferry topology` can print it; tree walks go through
//! [`crate::fleet::topology::InMemoryTopology`] ([`NetTopology::to_fleet`]) rather than a
//! second tree type.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::BorderRouter;
use crate::fleet::device::{Eui64, Parent};
use crate::fleet::topology::InMemoryTopology;
use crate::net::ipv6;
use crate::net::MacAddr;

/// The DODAG and the root's neighbours at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetTopology {
    /// The root's (ferry's) address, the DODAG ID.
    pub root: Ipv6Addr,
    pub root_rank: Option<u16>,
    /// Nodes with a downward route, in address order.
    pub nodes: Vec<TopologyNode>,
    /// Neighbours heard, in MAC address order.
    pub neighbors: Vec<NeighborInfo>,
    /// Nodes registered with ferry (RFC 6775 NS with ARO), in address order: ferry's own
    /// children whether or not they are in the DODAG, e.g. sleepy ones that never hear a DIO.
    #[serde(default)]
    pub registered: Vec<RegisteredNode>,
}

/// An address a node registered with ferry (RFC 6775).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredNode {
    pub address: Ipv6Addr,
    /// The EUI-64 of its ARO.
    #[serde(with = "eui64_text")]
    pub eui64: Eui64,
    /// Where ferry reaches it (the address it polls from), as `NeighborInfo::mac` writes it.
    pub mac: String,
    /// Seconds until the registration expires without a refresh.
    pub lifetime_s: u64,
    /// It polls (MAC Data Requests): its frames wait for its polls.
    pub sleepy: bool,
    /// The longest sleep heard between two of its polls, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_gap_ms: Option<u64>,
    /// Learned from its polls, once enough wakes were heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duty_cycle: Option<crate::fleet::duty_cycle::DutyCycle>,
    /// The link to ferry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<NeighborLink>,
}

/// One node of the DODAG (from its DAO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyNode {
    pub address: Ipv6Addr,
    /// From the interface identifier, when it was derived from an EUI-64.
    #[serde(with = "opt_eui64_text", default)]
    pub eui64: Option<Eui64>,
    /// Its DAO parent: the root's address for the root's children.
    pub parent: Ipv6Addr,
    /// The rank of its last DIO we heard (only neighbours' DIOs reach the root).
    pub rank: Option<u16>,
    /// Hops from the root; `None` while the chain to the root is broken.
    pub hops: Option<u8>,
    /// Seconds until the route expires without a fresh DAO.
    pub path_lifetime_s: u64,
    /// The link to the root, when it is a neighbour.
    pub link: Option<NeighborLink>,
    /// How long it took to answer ferry's CoAP requests, when it answered late: a sleepy node
    /// behind a router answers at its next wake, so this stands for its wake period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_wait_ms: Option<u64>,
}

/// What the root's radio sees of a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NeighborLink {
    pub rssi_dbm: i8,
    pub lqi: u8,
    pub last_heard_ms_ago: u64,
    /// Share of our unicast frames it ACKed, once we sent some.
    pub delivery_ratio: Option<f64>,
}

/// A neighbour heard on the air.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighborInfo {
    /// MAC address (`xx:…` extended, 4 hex digits short).
    pub mac: String,
    pub frames: u64,
    pub link: NeighborLink,
    pub tx_acked: u64,
    pub tx_failed: u64,
    /// Learned from its Data Requests, for a sleepy child heard polling often enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duty_cycle: Option<crate::fleet::duty_cycle::DutyCycle>,
}

impl NetTopology {
    /// The node with this EUI-64.
    pub fn node(&self, eui: Eui64) -> Option<&TopologyNode> {
        self.nodes.iter().find(|n| n.eui64 == Some(eui))
    }

    /// The registration of the node with this EUI-64 (its global address, if several).
    pub fn registration(&self, eui: Eui64) -> Option<&RegisteredNode> {
        self.registered.iter().filter(|r| r.eui64 == eui).max_by_key(|r| !crate::net::ipv6::is_link_local(&r.address))
    }

    /// The parent relation for the planner and tree walks (subtree, hops, ancestors). Nodes
    /// whose address does not carry their EUI-64 are left out.
    pub fn to_fleet(&self) -> InMemoryTopology {
        let eui_of = |a: &Ipv6Addr| self.nodes.iter().find(|n| n.address == *a).and_then(|n| n.eui64);
        let routed = self.nodes.iter().filter_map(|n| {
            let parent = if n.parent == self.root { Parent::BorderRouter } else { Parent::Node(eui_of(&n.parent)?) };
            Some((n.eui64?, parent))
        });
        // A node registered with ferry but not in the DODAG is ferry's own child.
        let registered_only =
            self.registered.iter().filter(|r| self.node(r.eui64).is_none()).map(|r| (r.eui64, Parent::BorderRouter));
        InMemoryTopology::from_parents(routed.chain(registered_only))
    }
}

/// The EUI-64 behind an address, if its IID was formed from one (RFC 4944 §6).
pub fn eui64_of(addr: &Ipv6Addr) -> Option<Eui64> {
    match ipv6::mac_from_iid(&ipv6::iid(addr)) {
        MacAddr::Ext(e) => Some(Eui64(e)),
        MacAddr::Short(_) => None,
    }
}

pub(super) fn build(br: &BorderRouter, now: Instant) -> NetTopology {
    let iface = br.interface();
    let link_of = |mac: &MacAddr| {
        let n = iface.mac().neighbor(mac)?;
        Some(NeighborLink {
            rssi_dbm: n.rssi,
            lqi: n.lqi,
            last_heard_ms_ago: now.saturating_duration_since(n.last_heard).as_millis() as u64,
            delivery_ratio: br.link_stats(mac).and_then(|l| l.delivery_ratio()),
        })
    };
    let rpl = iface.rpl();
    let nodes = rpl
        .map(|r| {
            r.routes()
                .map(|(addr, route)| TopologyNode {
                    address: *addr,
                    eui64: eui64_of(addr),
                    parent: route.parent,
                    rank: r.rank_of(addr),
                    hops: r.route(addr).and_then(|h| u8::try_from(h.len()).ok()),
                    path_lifetime_s: route.expires.saturating_duration_since(now).as_secs(),
                    // A child is heard at the address it registered (e.g. its short address).
                    link: if route.parent == r.dodag_id() {
                        let registered = iface.resolve(addr).filter(|m| iface.mac().neighbor(m).is_some());
                        link_of(&registered.unwrap_or_else(|| ipv6::mac_from_iid(&ipv6::iid(addr))))
                    } else {
                        None
                    },
                    answer_wait_ms: br
                        .endpoint()
                        .answer_latency(&SocketAddrV6::new(*addr, super::COAP_PORT, 0, 0))
                        .map(|d| d.as_millis() as u64),
                })
                .collect()
        })
        .unwrap_or_default();
    let neighbors = iface
        .mac()
        .neighbors()
        .filter_map(|(mac, n)| {
            let tx = br.link_stats(mac).unwrap_or_default();
            Some(NeighborInfo {
                mac: mac.to_string(),
                frames: n.frames,
                link: link_of(mac)?,
                tx_acked: tx.tx_acked,
                tx_failed: tx.tx_failed,
                duty_cycle: br.duty_cycle(mac),
            })
        })
        .collect();
    let registered = iface
        .registered()
        .map(|r| RegisteredNode {
            address: r.address,
            eui64: Eui64(r.eui64),
            mac: r.mac.to_string(),
            lifetime_s: r.expires.saturating_duration_since(now).as_secs(),
            sleepy: iface.mac().is_sleepy(&r.mac),
            poll_gap_ms: br.poll_gap(&r.mac).map(|g| g.as_millis() as u64),
            duty_cycle: br.duty_cycle(&r.mac),
            link: link_of(&r.mac),
        })
        .collect();
    NetTopology { root: br.address(), root_rank: rpl.map(|r| r.rank()), nodes, neighbors, registered }
}

/// `Eui64` as `"00:11:…:77"`.
mod eui64_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::fleet::device::{parse_eui64, Eui64};

    pub fn serialize<S: Serializer>(eui: &Eui64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(eui)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Eui64, D::Error> {
        parse_eui64(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `Option<Eui64>` as `"00:11:…:77"` or null.
mod opt_eui64_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::fleet::device::{parse_eui64, Eui64};

    pub fn serialize<S: Serializer>(eui: &Option<Eui64>, s: S) -> Result<S::Ok, S::Error> {
        match eui {
            Some(e) => s.collect_str(e),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Eui64>, D::Error> {
        Option::<String>::deserialize(d)?.map(|t| parse_eui64(&t).map_err(serde::de::Error::custom)).transpose()
    }
}
