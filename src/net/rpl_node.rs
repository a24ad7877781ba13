//! The node side of RPL (RFC 6550) in non-storing mode, as much as a RIOT node in ferry's PAN
//! needs: join the DODAG on a DIO (the sender becomes the preferred parent), announce itself
//! with a DAO to the root naming that parent (§9.7), refresh the DAO, and — on routers —
//! multicast DIOs on the Trickle schedule so that nodes further down can join.
//!
//! A node that has not joined solicits a DIO from its default router with a unicast DIS
//! ([`DIS_INTERVAL`], backing off); a joined router answers with a unicast DIO (§8.3), which a parent
//! holds for a sleepy child until it polls, where a multicast DIO would be missed.
//!
//! Sleepy leaves join this way too, and announce themselves with their own DAO: in non-storing
//! mode the root learns each node only from that node's DAO (§9.7), so a parent cannot cover
//! its children, and RIOT's leaf mode (`GNRC_RPL_LEAF_NODE`) likewise solicits with DIS, joins
//! and sends DAOs without sending DIOs. The parent reaches the DIO, the DAO-ACK and the NA of
//! the node's registration at the address it registered (the one it polls from), and the node
//! polls for them while they are due (`Interface::expects_answer`).
//!
//! Parent choice is deliberately simple: the first grounded DIO, replaced only by one whose
//! rank is at least one hop lower. A parent that stops acknowledging our frames is left
//! ([`RplNode::parent_unreachable`]); its DIOs are ignored for a while (a DIO heard over an
//! asymmetric link, from a router whose 0 dBm reaches a -15 dBm leaf that cannot answer). DAOs ask for a DAO-ACK and are repeated without one. No
//! poisoning, no version changes beyond joining the newer one.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::mac::MacAddr;
use super::rpl::{RplOption, RplRepr};
use super::trickle::Trickle;

/// Where a node stands in the DODAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub instance: u8,
    pub version: u8,
    pub dodag_id: Ipv6Addr,
    pub rank: u16,
    /// The preferred parent's link-local address (the DIO's source) and MAC address.
    pub parent: Ipv6Addr,
    pub parent_mac: MacAddr,
    pub min_hop_rank_increase: u16,
    /// DAO path lifetime in lifetime units, and the unit in seconds.
    pub default_lifetime: u8,
    pub lifetime_unit: u16,
    dio_int_min: u8,
    dio_int_doublings: u8,
    dio_redundancy: u8,
}

/// What the node has to send after a timeout or a DIO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct RplActions {
    pub send_dao: bool,
    pub send_dio: bool,
    pub send_dis: bool,
}

/// How long a node that has not joined waits after its first DIS; each further wait doubles
/// up to [`DIS_INTERVAL_MAX`] (a PAN without RPL is not flooded with solicitations).
pub const DIS_INTERVAL: Duration = Duration::from_secs(30);
/// How long a DAO waits for its DAO-ACK before it is sent again, and how often (RIOT's
/// GNRC_RPL_DEFAULT_WAIT_FOR_DAO_ACK and GNRC_RPL_DAO_SEND_RETRIES): a lost DAO would
/// otherwise leave the node out of the root's routes until the next refresh.
pub const DAO_ACK_WAIT: Duration = Duration::from_secs(3);
pub const DAO_RETRIES: u8 = 4;
pub const DIS_INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// The node's RPL state. Call order: [`handle_dio`](Self::handle_dio) for each DIO heard;
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout); both say
/// what to send ([`dao`](Self::dao), [`dio`](Self::dio)).
#[derive(Debug)]
pub struct RplNode {
    /// Routers forward and send DIOs; leaves only join.
    router: bool,
    joined: Option<Joined>,
    dao_seq: u8,
    dao_due: Option<Instant>,
    /// A DAO waits for its DAO-ACK: when to send it again, and how many more times.
    dao_ack: Option<(Instant, u8)>,
    /// Next DIS while not joined, and the wait after it.
    dis_due: Option<Instant>,
    dis_wait: Duration,
    trickle: Option<Trickle>,
    /// A router's lowest rank in the DODAG version it joined. After leaving a parent that had
    /// answered it, it rejoins that version only below that rank (RFC 6550 §8.2.2.4; our
    /// DIOs' MaxRankIncrease is 0): otherwise it could take its own child as parent, and the
    /// two would pass DAOs back and forth.
    lowest_rank: Option<(Ipv6Addr, u8, u16)>,
    rng: u64,
}

const INFINITE_RANK: u16 = 0xffff;

impl RplNode {
    /// A node that starts at `now`; its first DIS goes out within 5 s unless a DIO comes first.
    pub fn new(now: Instant, router: bool, seed: u64) -> RplNode {
        let mut n = RplNode {
            router,
            joined: None,
            dao_seq: 0,
            dao_due: None,
            dao_ack: None,
            dis_due: None,
            dis_wait: DIS_INTERVAL,
            trickle: None,
            lowest_rank: None,
            rng: seed | 1,
        };
        let first = Duration::from_millis(500 + n.random() % 4500);
        n.dis_due = Some(now + first);
        n
    }

    pub fn joined(&self) -> Option<&Joined> {
        self.joined.as_ref()
    }

    pub fn is_router(&self) -> bool {
        self.router
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// A DIO from `src` (link-local) heard from `link_src`. Joins or switches parent when it is
    /// better; the returned actions then include a DAO.
    pub fn handle_dio(&mut self, now: Instant, src: Ipv6Addr, link_src: MacAddr, dio: &RplRepr) -> RplActions {
        if let RplRepr::DaoAck { sequence, .. } = dio {
            if *sequence == self.dao_seq {
                self.dao_ack = None;
            }
            return RplActions::default();
        }
        let RplRepr::Dio { instance, version, rank, grounded, dodag_id, options, .. } = dio else {
            return RplActions::default();
        };
        let cfg = options.iter().find_map(|o| match o {
            RplOption::DodagConfig(c) => Some(*c),
            _ => None,
        });
        let Some(cfg) = cfg.filter(|c| c.min_hop_rank_increase > 0) else { return RplActions::default() };
        if !grounded || *rank == INFINITE_RANK {
            return RplActions::default();
        }
        let my_rank = rank.saturating_add(cfg.min_hop_rank_increase);
        let floor = self.lowest_rank.filter(|(id, v, _)| id == dodag_id && v == version).map(|(_, _, r)| r);
        if self.router && floor.is_some_and(|floor| my_rank > floor) {
            return RplActions::default();
        }
        let better = match &self.joined {
            None => true,
            Some(j) if j.dodag_id != *dodag_id => false,
            Some(j) if *version != j.version => version.wrapping_sub(j.version) < 128,
            Some(j) if j.parent == src => my_rank != j.rank,
            Some(j) => my_rank.saturating_add(cfg.min_hop_rank_increase) <= j.rank,
        };
        if !better {
            if let (Some(j), Some(t)) = (&self.joined, self.trickle.as_mut()) {
                if j.dodag_id == *dodag_id && j.version == *version {
                    t.hear_consistent();
                }
            }
            return RplActions::default();
        }
        self.joined = Some(Joined {
            instance: *instance,
            version: *version,
            dodag_id: *dodag_id,
            rank: my_rank,
            parent: src,
            parent_mac: link_src,
            min_hop_rank_increase: cfg.min_hop_rank_increase,
            default_lifetime: cfg.default_lifetime,
            lifetime_unit: cfg.lifetime_unit,
            dio_int_min: cfg.dio_interval_min,
            dio_int_doublings: cfg.dio_interval_doublings,
            dio_redundancy: cfg.dio_redundancy,
        });
        if self.router {
            let r = self.random();
            self.trickle =
                Some(Trickle::new(now, cfg.dio_interval_min, cfg.dio_interval_doublings, cfg.dio_redundancy, r));
        }
        self.lowest_rank = Some((*dodag_id, *version, floor.map_or(my_rank, |f| f.min(my_rank))));
        self.dao_due = Some(now + self.dao_refresh());
        self.dis_due = None;
        RplActions { send_dao: true, ..RplActions::default() }
    }

    /// Our preferred parent stopped acknowledging our frames: leave it and solicit a DIO at
    /// once (from the default router), as a node whose parent's link metric went bad would.
    /// The caller ignores that parent's DIOs for a while, or it would be chosen again.
    /// `confirmed`: the parent had acknowledged us before (it is busy or gone, not one-way);
    /// else the rank we had through it was never real and does not bound our next one.
    pub fn parent_unreachable(&mut self, now: Instant, confirmed: bool) {
        if !confirmed {
            self.lowest_rank = None;
        }
        if self.joined.take().is_some() {
            self.trickle = None;
            self.dao_due = None;
            self.dao_ack = None;
            self.dis_wait = DIS_INTERVAL;
            self.dis_due = Some(now);
        }
    }

    /// The unicast DIO a joined router answers a DIS with.
    pub fn handle_dis(&self) -> Option<RplRepr> {
        self.dio()
    }

    /// Half the path lifetime, so the root's route never lapses.
    fn dao_refresh(&self) -> Duration {
        let life = self.joined.map_or(0, |j| u64::from(j.default_lifetime) * u64::from(j.lifetime_unit));
        Duration::from_secs((life / 2).max(10))
    }

    /// The non-storing DAO for `target` (our global address) naming `parent_global`, to the
    /// DODAG root, sent at `now`; it asks for a DAO-ACK and is repeated until one comes.
    pub fn dao(&mut self, now: Instant, target: Ipv6Addr, parent_global: Ipv6Addr) -> Option<(Ipv6Addr, RplRepr)> {
        let j = self.joined?;
        self.dao_seq = self.dao_seq.wrapping_add(1);
        let left = match self.dao_ack {
            Some((_, left)) => left.saturating_sub(1),
            None => DAO_RETRIES,
        };
        self.dao_ack = (left > 0).then_some((now + DAO_ACK_WAIT, left));
        let dao = RplRepr::Dao {
            instance: j.instance,
            ack_requested: true,
            sequence: self.dao_seq,
            dodag_id: None,
            options: vec![
                RplOption::Target { prefix_len: 128, prefix: target },
                RplOption::Transit {
                    external: false,
                    path_control: 0,
                    path_sequence: self.dao_seq,
                    path_lifetime: j.default_lifetime,
                    parent: Some(parent_global),
                },
            ],
        };
        Some((j.dodag_id, dao))
    }

    /// The DIO a joined router multicasts: the root's parameters at our rank.
    pub fn dio(&self) -> Option<RplRepr> {
        let j = self.joined.filter(|_| self.router)?;
        Some(RplRepr::Dio {
            instance: j.instance,
            version: j.version,
            rank: j.rank,
            grounded: true,
            mop: super::rpl::MOP_NON_STORING,
            preference: 0,
            dtsn: 0,
            dodag_id: j.dodag_id,
            options: vec![RplOption::DodagConfig(super::rpl::DodagConfig {
                flags: 0,
                dio_interval_doublings: j.dio_int_doublings,
                dio_interval_min: j.dio_int_min,
                dio_redundancy: j.dio_redundancy,
                max_rank_increase: 0,
                min_hop_rank_increase: j.min_hop_rank_increase,
                ocp: 0,
                default_lifetime: j.default_lifetime,
                lifetime_unit: j.lifetime_unit,
            })],
        })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let dio = self.trickle.as_ref().map(Trickle::poll_timeout);
        let retry = self.dao_ack.map(|(t, _)| t);
        [self.dao_due, dio, self.dis_due, retry].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> RplActions {
        let mut a = RplActions::default();
        if self.dao_due.is_some_and(|t| t <= now) {
            a.send_dao = true;
            self.dao_ack = None;
            self.dao_due = Some(now + self.dao_refresh());
        }
        if self.dao_ack.is_some_and(|(t, _)| t <= now) {
            a.send_dao = true;
        }
        if self.dis_due.is_some_and(|t| t <= now) {
            a.send_dis = true;
            self.dis_due = Some(now + self.dis_wait);
            self.dis_wait = (self.dis_wait * 2).min(DIS_INTERVAL_MAX);
        }
        let r = self.random();
        if let Some(t) = self.trickle.as_mut() {
            a.send_dio = t.handle_timeout(now, r);
        }
        a
    }
}
