//! The RPL DODAG root (RFC 6550) in non-storing mode: DIOs paced by Trickle with the DODAG
//! configuration and prefix information options, DAOs (target + transit with parent) into a
//! topology table, DAO-ACKs, and source routes for downward packets (RFC 6554).
//!
//! Sans-IO: `handle_message(now, src, repr)` returns a reply to send; `handle_timeout(now)`
//! returns whether a DIO is due (`dio()` builds it); randomness comes from a seeded generator
//! in the config. Missing: DIS-triggered unicast DIO, version increments (global repair), DAO
//! path-sequence freshness (the latest DAO wins), secure RPL, storing mode, and P2P/multicast
//! MOPs.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::rpl::{DodagConfig, PrefixInfo, RplOption, RplRepr, MOP_NON_STORING};
use super::trickle::Trickle;

/// DAO-ACK status: accepted.
pub const DAO_ACK_OK: u8 = 0;
/// DAO-ACK status ≥ 128 rejects; we use it when the topology table is full.
pub const DAO_ACK_REJECT: u8 = 128;

#[derive(Debug, Clone)]
pub struct RplRootConfig {
    pub instance: u8,
    /// The DODAG ID: the root's global address.
    pub dodag_id: Ipv6Addr,
    pub prefix: Ipv6Addr,
    pub version: u8,
    /// Imin = 2^dio_int_min ms (RFC 6550 default 3; RIOT uses 12).
    pub dio_int_min: u8,
    pub dio_int_doublings: u8,
    pub dio_redundancy: u8,
    pub min_hop_rank_increase: u16,
    pub max_rank_increase: u16,
    pub default_lifetime: u8,
    pub lifetime_unit: u16,
    pub max_routes: usize,
    /// Seed of the generator that randomises Trickle.
    pub seed: u64,
}

impl RplRootConfig {
    pub fn new(dodag_id: Ipv6Addr, prefix: Ipv6Addr) -> RplRootConfig {
        RplRootConfig {
            instance: 0,
            dodag_id,
            prefix,
            version: 240, // the lollipop start value (RFC 6550 §7.2)
            dio_int_min: 12,
            dio_int_doublings: 8,
            dio_redundancy: 10,
            min_hop_rank_increase: 256,
            max_rank_increase: 0,
            default_lifetime: 60,
            lifetime_unit: 60,
            max_routes: 512,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// A node's downward route: its DAO parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub parent: Ipv6Addr,
    pub path_sequence: u8,
    pub expires: Instant,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RplStats {
    pub dio_sent: u64,
    pub dao_received: u64,
    pub dao_ack_sent: u64,
    pub routes_rejected: u64,
    pub routes_expired: u64,
    pub dis_received: u64,
}

pub struct RplRoot {
    cfg: RplRootConfig,
    trickle: Trickle,
    rng: u64,
    dtsn: u8,
    routes: BTreeMap<Ipv6Addr, Route>,
    /// Ranks advertised in the DIOs of our neighbours, by interface identifier (DIOs come from
    /// link-local addresses, DAO targets are global).
    ranks: BTreeMap<[u8; 8], u16>,
    stats: RplStats,
}

impl RplRoot {
    pub fn new(now: Instant, cfg: RplRootConfig) -> RplRoot {
        let mut rng = cfg.seed | 1;
        let r = xorshift(&mut rng);
        let trickle = Trickle::new(now, cfg.dio_int_min, cfg.dio_int_doublings, cfg.dio_redundancy, r);
        RplRoot {
            cfg,
            trickle,
            rng,
            dtsn: 0,
            routes: BTreeMap::new(),
            ranks: BTreeMap::new(),
            stats: RplStats::default(),
        }
    }

    pub fn stats(&self) -> RplStats {
        self.stats
    }

    pub fn dodag_id(&self) -> Ipv6Addr {
        self.cfg.dodag_id
    }

    /// The DIO the root multicasts (rank = MinHopRankIncrease, grounded, non-storing).
    pub fn dio(&self) -> RplRepr {
        let c = &self.cfg;
        RplRepr::Dio {
            instance: c.instance,
            version: c.version,
            rank: c.min_hop_rank_increase,
            grounded: true,
            mop: MOP_NON_STORING,
            preference: 0,
            dtsn: self.dtsn,
            dodag_id: c.dodag_id,
            options: vec![
                RplOption::DodagConfig(DodagConfig {
                    flags: 0,
                    dio_interval_doublings: c.dio_int_doublings,
                    dio_interval_min: c.dio_int_min,
                    dio_redundancy: c.dio_redundancy,
                    max_rank_increase: c.max_rank_increase,
                    min_hop_rank_increase: c.min_hop_rank_increase,
                    ocp: 0,
                    default_lifetime: c.default_lifetime,
                    lifetime_unit: c.lifetime_unit,
                }),
                RplOption::PrefixInfo(PrefixInfo {
                    prefix_len: 64,
                    flags: 0x40 | 0x20, // autonomous configuration, router address (the DODAG ID)
                    valid_lifetime: u32::MAX,
                    preferred_lifetime: u32::MAX,
                    prefix: c.prefix,
                }),
            ],
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        self.trickle.poll_timeout()
    }

    /// Returns true when a DIO should be multicast now.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let r = xorshift(&mut self.rng);
        let send = self.trickle.handle_timeout(now, r);
        if send {
            self.stats.dio_sent += 1;
        }
        let before = self.routes.len();
        self.routes.retain(|_, r| r.expires > now);
        self.stats.routes_expired += (before - self.routes.len()) as u64;
        send
    }

    /// Handles an RPL message from `src`. Returns a reply (destination, message).
    pub fn handle_message(&mut self, now: Instant, src: Ipv6Addr, msg: &RplRepr) -> Option<(Ipv6Addr, RplRepr)> {
        match msg {
            RplRepr::Dis => {
                self.stats.dis_received += 1;
                let r = xorshift(&mut self.rng);
                self.trickle.reset(now, r);
                None
            }
            RplRepr::Dio { instance, version, dodag_id, rank, .. } => {
                // Another node's DIO for our DODAG and version is consistent.
                if *instance == self.cfg.instance && *dodag_id == self.cfg.dodag_id && *version == self.cfg.version {
                    self.trickle.hear_consistent();
                    let iid = super::ipv6::iid(&src);
                    if self.ranks.contains_key(&iid) || self.ranks.len() < self.cfg.max_routes {
                        self.ranks.insert(iid, *rank);
                    }
                }
                None
            }
            RplRepr::Dao { instance, ack_requested, sequence, options, .. } if *instance == self.cfg.instance => {
                self.stats.dao_received += 1;
                let status = self.apply_dao(now, options);
                if !ack_requested {
                    return None;
                }
                self.stats.dao_ack_sent += 1;
                Some((src, RplRepr::DaoAck { instance: *instance, sequence: *sequence, status, dodag_id: None }))
            }
            _ => None,
        }
    }

    /// Non-storing DAO: each run of Target options is followed by the Transit options that
    /// name the targets' parent (RFC 6550 §6.7.8, §9.7).
    fn apply_dao(&mut self, now: Instant, options: &[RplOption]) -> u8 {
        let mut targets: Vec<Ipv6Addr> = Vec::new();
        let mut after_transit = false;
        let mut status = DAO_ACK_OK;
        for o in options {
            match o {
                RplOption::Target { prefix, .. } => {
                    if after_transit {
                        targets.clear();
                        after_transit = false;
                    }
                    targets.push(*prefix);
                }
                RplOption::Transit { path_sequence, path_lifetime, parent, .. } => {
                    // Only the first transit (the preferred parent) of a group is used.
                    if after_transit {
                        continue;
                    }
                    after_transit = true;
                    let Some(parent) = parent else { continue };
                    for t in &targets {
                        if *path_lifetime == 0 {
                            self.routes.remove(t); // No-Path DAO
                            continue;
                        }
                        if !self.routes.contains_key(t) && self.routes.len() >= self.cfg.max_routes {
                            self.stats.routes_rejected += 1;
                            status = DAO_ACK_REJECT;
                            continue;
                        }
                        let life = if *path_lifetime == 0xff {
                            Duration::from_secs(u64::from(u32::MAX))
                        } else {
                            Duration::from_secs(u64::from(*path_lifetime) * u64::from(self.cfg.lifetime_unit))
                        };
                        self.routes
                            .insert(*t, Route { parent: *parent, path_sequence: *path_sequence, expires: now + life });
                    }
                }
                _ => {}
            }
        }
        status
    }

    /// The rank `node` last advertised in a DIO we heard (only neighbours' DIOs reach the root).
    pub fn rank_of(&self, node: &Ipv6Addr) -> Option<u16> {
        self.ranks.get(&super::ipv6::iid(node)).copied()
    }

    /// The root's own rank (MinHopRankIncrease, RFC 6550 §8.2.2.2).
    pub fn rank(&self) -> u16 {
        self.cfg.min_hop_rank_increase
    }

    /// The topology table.
    pub fn routes(&self) -> impl Iterator<Item = (&Ipv6Addr, &Route)> {
        self.routes.iter()
    }

    /// Hops from the root to `dst`: `[first hop, …, dst]`. None when the path does not reach
    /// the root (unknown node, broken chain or a loop).
    pub fn route(&self, dst: &Ipv6Addr) -> Option<Vec<Ipv6Addr>> {
        let mut hops = vec![*dst];
        let mut at = *dst;
        for _ in 0..=self.routes.len() {
            let parent = self.routes.get(&at)?.parent;
            if parent == self.cfg.dodag_id {
                hops.reverse();
                return Some(hops);
            }
            if hops.contains(&parent) {
                return None;
            }
            hops.push(parent);
            at = parent;
        }
        None
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn dao(target: &str, parent: &str, lifetime: u8) -> RplRepr {
        RplRepr::Dao {
            instance: 0,
            ack_requested: true,
            sequence: 1,
            dodag_id: None,
            options: vec![
                RplOption::Target { prefix_len: 128, prefix: a(target) },
                RplOption::Transit {
                    external: false,
                    path_control: 0,
                    path_sequence: 0,
                    path_lifetime: lifetime,
                    parent: Some(a(parent)),
                },
            ],
        }
    }

    #[test]
    fn daos_build_source_routes() {
        let now = Instant::now();
        let mut root = RplRoot::new(now, RplRootConfig::new(a("2001:db8::1"), a("2001:db8::")));
        let ack = root.handle_message(now, a("2001:db8::2"), &dao("2001:db8::2", "2001:db8::1", 30));
        assert_eq!(
            ack,
            Some((a("2001:db8::2"), RplRepr::DaoAck { instance: 0, sequence: 1, status: 0, dodag_id: None }))
        );
        root.handle_message(now, a("2001:db8::3"), &dao("2001:db8::3", "2001:db8::2", 30));
        root.handle_message(now, a("2001:db8::4"), &dao("2001:db8::4", "2001:db8::3", 30));
        assert_eq!(root.route(&a("2001:db8::4")), Some(vec![a("2001:db8::2"), a("2001:db8::3"), a("2001:db8::4")]));
        assert_eq!(root.route(&a("2001:db8::2")), Some(vec![a("2001:db8::2")]));
        assert_eq!(root.route(&a("2001:db8::9")), None);
        // A loop is not a route.
        root.handle_message(now, a("2001:db8::2"), &dao("2001:db8::2", "2001:db8::4", 30));
        assert_eq!(root.route(&a("2001:db8::4")), None);
        // No-Path DAO removes; lifetimes expire.
        root.handle_message(now, a("2001:db8::2"), &dao("2001:db8::2", "2001:db8::1", 0));
        assert_eq!(root.routes().count(), 2);
        root.handle_timeout(now + Duration::from_secs(30 * 60));
        assert_eq!(root.routes().count(), 0);
    }

    #[test]
    fn dio_carries_config_and_prefix_and_is_paced() {
        let now = Instant::now();
        let mut root = RplRoot::new(now, RplRootConfig::new(a("2001:db8::1"), a("2001:db8::")));
        let bytes = root.dio().emit();
        let parsed = RplRepr::parse(bytes[1], &bytes[4..]).unwrap();
        assert_eq!(parsed, root.dio());
        let mut sent = 0;
        let mut t = now;
        while t < now + Duration::from_secs(60) {
            t = root.poll_timeout();
            sent += usize::from(root.handle_timeout(t));
        }
        // Imin 4 s doubling: 4, 8, 16, 32 s intervals → about four DIOs in the first minute.
        assert!((3..=5).contains(&sent), "{sent}");
    }
}
