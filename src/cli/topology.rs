//! `ferry topology`: the DODAG as a tree (root → routers → leaves) with rank, hops, link
//! quality and route lifetime, then the neighbours heard that have no route yet; `--json` prints
//! ferryd's `GET /v1/topology` answer as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv6Addr;

use crate::border::{NeighborLink, NetTopology, RegisteredNode, TopologyNode};
use crate::control::client::ControlClient;

pub async fn run(client: &ControlClient, json: bool) -> anyhow::Result<()> {
    let topology = client.topology().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&topology)?);
    } else {
        print!("{}", render(&topology));
    }
    Ok(())
}

pub(crate) fn render(t: &NetTopology) -> String {
    let mut children: BTreeMap<Ipv6Addr, Vec<&TopologyNode>> = BTreeMap::new();
    for n in &t.nodes {
        children.entry(n.parent).or_default().push(n);
    }
    let mut out = String::new();
    let rank = t.root_rank.map_or(String::new(), |r| format!(", rank {r}"));
    let _ = writeln!(out, "{} (ferry, RPL root{rank}): {} nodes", t.root, t.nodes.len());
    let mut shown = BTreeSet::new();
    tree(&mut out, t, &children, t.root, "", &mut shown);
    let unattached: Vec<&TopologyNode> = t.nodes.iter().filter(|n| !shown.contains(&n.address)).collect();
    if !unattached.is_empty() {
        let _ = writeln!(out, "no path to the root (parent unknown or a loop):");
        for n in unattached {
            let _ = writeln!(out, "  {} (parent {})", line(t, n), n.parent);
        }
    }
    let unrouted: Vec<&RegisteredNode> = t
        .registered
        .iter()
        .filter(|r| t.node(r.eui64).is_none() && !crate::net::ipv6::is_link_local(&r.address))
        .collect();
    if !unrouted.is_empty() {
        let _ = writeln!(out, "registered with ferry, not in the DODAG:");
        for r in unrouted {
            let mut parts = vec![format!("at {}", r.mac)];
            parts.extend(sleep_text(r));
            if let Some(l) = &r.link {
                parts.push(link(l));
            }
            parts.push(format!("registration {} s", r.lifetime_s));
            let _ = writeln!(out, "  {} {}: {}", r.eui64, r.address, parts.join(", "));
        }
    }
    let mut routed: BTreeSet<String> = t.nodes.iter().filter_map(|n| n.eui64.map(|e| e.to_string())).collect();
    routed.extend(t.registered.iter().flat_map(|r| [r.eui64.to_string(), r.mac.clone()]));
    let heard: Vec<_> = t.neighbors.iter().filter(|n| !routed.contains(&n.mac)).collect();
    if !heard.is_empty() {
        let _ = writeln!(out, "heard, no route yet:");
        for n in heard {
            let _ = writeln!(out, "  {} {} frames, {}", n.mac, n.frames, link(&n.link));
        }
    }
    out
}

fn tree(
    out: &mut String,
    t: &NetTopology,
    children: &BTreeMap<Ipv6Addr, Vec<&TopologyNode>>,
    at: Ipv6Addr,
    indent: &str,
    shown: &mut BTreeSet<Ipv6Addr>,
) {
    let Some(kids) = children.get(&at) else { return };
    for (i, n) in kids.iter().enumerate() {
        if !shown.insert(n.address) {
            continue; // a loop while the DODAG repairs
        }
        let last = i + 1 == kids.len();
        let _ = writeln!(out, "{indent}{} {}", if last { "└─" } else { "├─" }, line(t, n));
        let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
        tree(out, t, children, n.address, &deeper, shown);
    }
}

/// "sleepy, wakes every 30.0 s (learned from 12 wakes)", from its polls.
fn sleep_text(r: &RegisteredNode) -> Option<String> {
    if !r.sleepy {
        return None;
    }
    Some(match (&r.duty_cycle, r.poll_gap_ms) {
        (Some(d), _) => format!(
            "sleepy, wakes every {:.1} s, awake {} ms (learned from {} wakes, confidence {:.2})",
            d.period_us / 1e6,
            d.awake_us / 1000,
            d.wakes_used,
            d.confidence
        ),
        (None, Some(gap)) => format!("sleepy, sleeps up to {:.1} s (duty cycle not learned yet)", gap as f64 / 1e3),
        (None, None) => "sleepy (duty cycle not learned yet)".into(),
    })
}

fn line(t: &NetTopology, n: &TopologyNode) -> String {
    let name = n.eui64.map_or_else(|| n.address.to_string(), |e| format!("{e} {}", n.address));
    let role = if n.hops.is_some() { "" } else { " (broken chain)" };
    let mut parts = Vec::new();
    if let Some(r) = n.rank {
        parts.push(format!("rank {r}"));
    }
    if let Some(h) = n.hops {
        parts.push(format!("{h} hop{}", if h == 1 { "" } else { "s" }));
    }
    if let Some(l) = &n.link {
        parts.push(link(l));
    }
    parts.extend(n.eui64.and_then(|e| t.registration(e)).and_then(sleep_text));
    parts.push(format!("route {} s", n.path_lifetime_s));
    format!("{name}{role}: {}", parts.join(", "))
}

fn link(l: &NeighborLink) -> String {
    let mut s = format!("RSSI {} dBm, LQI {}, heard {} s ago", l.rssi_dbm, l.lqi, l.last_heard_ms_ago / 1000);
    if let Some(r) = l.delivery_ratio {
        let _ = write!(s, ", {:.0} % ACKed", r * 100.0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::border::topology::eui64_of;

    fn node(addr: &str, parent: &str, hops: Option<u8>) -> TopologyNode {
        let address: Ipv6Addr = addr.parse().unwrap();
        TopologyNode {
            address,
            eui64: eui64_of(&address),
            parent: parent.parse().unwrap(),
            rank: None,
            hops,
            path_lifetime_s: 1790,
            link: None,
            answer_wait_ms: None,
        }
    }

    #[test]
    fn draws_root_routers_and_leaves() {
        let root = "fd00::1";
        let mut r1 = node("fd00::11", root, Some(1));
        r1.rank = Some(512);
        r1.link = Some(NeighborLink { rssi_dbm: -70, lqi: 200, last_heard_ms_ago: 2500, delivery_ratio: Some(0.5) });
        let t = NetTopology {
            root: root.parse().unwrap(),
            root_rank: Some(256),
            nodes: vec![
                r1,
                node("fd00::12", "fd00::11", Some(2)),
                node("fd00::13", root, Some(1)),
                node("fd00::14", "fd00::99", None),
            ],
            neighbors: vec![],
            registered: vec![],
        };
        let text = render(&t);
        let want = "fd00::1 (ferry, RPL root, rank 256): 4 nodes\n\
                    ├─ 02:00:00:00:00:00:00:11 fd00::11: rank 512, 1 hop, RSSI -70 dBm, LQI 200, heard 2 s ago, 50 % ACKed, route 1790 s\n\
                    │  └─ 02:00:00:00:00:00:00:12 fd00::12: 2 hops, route 1790 s\n\
                    └─ 02:00:00:00:00:00:00:13 fd00::13: 1 hop, route 1790 s\n\
                    no path to the root (parent unknown or a loop):\n  \
                    02:00:00:00:00:00:00:14 fd00::14 (broken chain): route 1790 s (parent fd00::99)\n";
        assert_eq!(text, want);
    }

    #[test]
    fn registered_children_show_with_their_sleep() {
        let root = "fd00::1";
        let registered = |addr: &str, mac: &str, gap: Option<u64>| RegisteredNode {
            address: addr.parse().unwrap(),
            eui64: eui64_of(&addr.parse().unwrap()).unwrap(),
            mac: mac.into(),
            lifetime_s: 3500,
            sleepy: gap.is_some(),
            poll_gap_ms: gap,
            duty_cycle: None,
            link: None,
        };
        let t = NetTopology {
            root: root.parse().unwrap(),
            root_rank: Some(256),
            nodes: vec![node("fd00::13", root, Some(1))],
            neighbors: vec![],
            registered: vec![
                registered("fd00::13", "0013", Some(30_000)),
                registered("fd00::14", "0014", Some(299_500)),
            ],
        };
        let text = render(&t);
        assert!(
            text.contains("fd00::13: 1 hop, sleepy, sleeps up to 30.0 s (duty cycle not learned yet), route"),
            "{text}"
        );
        assert!(
            text.contains("registered with ferry, not in the DODAG:\n  02:00:00:00:00:00:00:14 fd00::14: at 0014, sleepy, sleeps up to 299.5 s"),
            "{text}"
        );
    }
}
