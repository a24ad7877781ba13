//! The mesh as the planner needs it: who forwards for whom.
//!
//! [`Topology`] is a read model: the RPL root (in `net`) will implement it over its DODAG; tests
//! and the offline `ferry plan` use [`InMemoryTopology`]. All walks guard against cycles, since
//! a DODAG being repaired can briefly contain one.

use std::collections::{BTreeMap, BTreeSet};

use super::device::{Eui64, Parent};

/// Who forwards for whom in the PAN.
pub trait Topology {
    /// The next hop of `device` towards the border router, if known.
    fn parent(&self, device: Eui64) -> Option<Parent>;

    /// Devices whose parent is `device`, in EUI-64 order.
    fn children(&self, device: Eui64) -> Vec<Eui64>;

    /// Whether anything routes through `device`.
    fn is_router(&self, device: Eui64) -> bool {
        !self.children(device).is_empty()
    }

    /// Hops to the border router (1 for its children); `None` when the chain is broken or loops.
    fn hops(&self, device: Eui64) -> Option<u8> {
        // A loop never reaches the border router, so it runs the count past `u8::MAX` and ends
        // as `None` like a broken chain: no set of visited nodes to allocate on every call.
        let mut hops: u8 = 1;
        let mut at = device;
        loop {
            match self.parent(at)? {
                Parent::BorderRouter => return Some(hops),
                Parent::Node(up) => {
                    hops = hops.checked_add(1)?;
                    at = up;
                }
            }
        }
    }

    /// The routers between `device` and the border router, nearest first.
    fn ancestors(&self, device: Eui64) -> Vec<Eui64> {
        let mut out = Vec::new();
        let mut at = device;
        while let Some(Parent::Node(up)) = self.parent(at) {
            // The path found so far is the set of visited nodes (paths are a few hops long).
            if up == device || out.contains(&up) {
                break;
            }
            out.push(up);
            at = up;
        }
        out
    }

    /// Every device that routes through `device` (not `device` itself).
    fn subtree(&self, device: Eui64) -> Vec<Eui64> {
        if !self.is_router(device) {
            // A leaf, the common case: no walk, no allocation.
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([device.0]);
        let mut queue = vec![device];
        while let Some(at) = queue.pop() {
            for child in self.children(at) {
                if seen.insert(child.0) {
                    out.push(child);
                    queue.push(child);
                }
            }
        }
        out
    }
}

/// A topology held in memory: each device's parent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InMemoryTopology {
    /// Keyed by the EUI-64 as a big-endian integer: the same order as the bytes, compared in
    /// one instruction (the planner looks parents up for every device on every pass).
    parents: BTreeMap<u64, Parent>,
    children: BTreeMap<u64, Vec<Eui64>>,
}

fn key(device: Eui64) -> u64 {
    u64::from_be_bytes(device.0)
}

impl InMemoryTopology {
    pub fn new() -> InMemoryTopology {
        InMemoryTopology::default()
    }

    /// Sets (or moves) `device` under `parent`.
    pub fn set_parent(&mut self, device: Eui64, parent: Parent) {
        if let Some(Parent::Node(old)) = self.parents.insert(key(device), parent) {
            if let Some(siblings) = self.children.get_mut(&key(old)) {
                siblings.retain(|c| *c != device);
            }
        }
        if let Parent::Node(up) = parent {
            let siblings = self.children.entry(key(up)).or_default();
            siblings.push(device);
            siblings.sort_by_key(|e| e.0);
        }
    }

    /// Every device with a known parent, in EUI-64 order.
    pub fn parents(&self) -> impl Iterator<Item = (Eui64, Parent)> + '_ {
        self.parents.iter().map(|(eui, parent)| (Eui64(eui.to_be_bytes()), *parent))
    }

    pub fn from_parents(parents: impl IntoIterator<Item = (Eui64, Parent)>) -> InMemoryTopology {
        let mut topology = InMemoryTopology::new();
        for (device, parent) in parents {
            topology.set_parent(device, parent);
        }
        topology
    }
}

impl Topology for InMemoryTopology {
    fn parent(&self, device: Eui64) -> Option<Parent> {
        self.parents.get(&key(device)).copied()
    }

    fn children(&self, device: Eui64) -> Vec<Eui64> {
        self.children.get(&key(device)).cloned().unwrap_or_default()
    }

    fn is_router(&self, device: Eui64) -> bool {
        self.children.get(&key(device)).is_some_and(|c| !c.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: u8) -> Eui64 {
        Eui64([n; 8])
    }

    #[test]
    fn walks_a_three_level_tree_and_survives_a_loop() {
        let mut t = InMemoryTopology::from_parents([
            (e(1), Parent::BorderRouter),
            (e(2), Parent::Node(e(1))),
            (e(3), Parent::Node(e(2))),
            (e(4), Parent::Node(e(1))),
        ]);
        assert_eq!(t.hops(e(3)), Some(3));
        assert_eq!(t.ancestors(e(3)), vec![e(2), e(1)]);
        let mut sub = t.subtree(e(1));
        sub.sort_by_key(|x| x.0);
        assert_eq!(sub, vec![e(2), e(3), e(4)]);
        assert!(t.is_router(e(2)) && !t.is_router(e(3)));
        // Repair in progress: 1 now hangs under 3, a loop.
        t.set_parent(e(1), Parent::Node(e(3)));
        assert_eq!(t.hops(e(3)), None);
        assert_eq!(t.ancestors(e(3)).len(), 2);
        assert_eq!(t.subtree(e(1)).len(), 3);
        assert_eq!(t.hops(e(9)), None);
    }
}
