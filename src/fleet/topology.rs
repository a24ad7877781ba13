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
        let mut hops: u8 = 1;
        let mut seen = BTreeSet::from([device.0]);
        let mut at = device;
        loop {
            match self.parent(at)? {
                Parent::BorderRouter => return Some(hops),
                Parent::Node(up) => {
                    if !seen.insert(up.0) {
                        return None;
                    }
                    hops = hops.checked_add(1)?;
                    at = up;
                }
            }
        }
    }

    /// The routers between `device` and the border router, nearest first.
    fn ancestors(&self, device: Eui64) -> Vec<Eui64> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([device.0]);
        let mut at = device;
        while let Some(Parent::Node(up)) = self.parent(at) {
            if !seen.insert(up.0) {
                break;
            }
            out.push(up);
            at = up;
        }
        out
    }

    /// Every device that routes through `device` (not `device` itself).
    fn subtree(&self, device: Eui64) -> Vec<Eui64> {
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
    parents: BTreeMap<[u8; 8], Parent>,
    children: BTreeMap<[u8; 8], Vec<Eui64>>,
}

impl InMemoryTopology {
    pub fn new() -> InMemoryTopology {
        InMemoryTopology::default()
    }

    /// Sets (or moves) `device` under `parent`.
    pub fn set_parent(&mut self, device: Eui64, parent: Parent) {
        if let Some(Parent::Node(old)) = self.parents.insert(device.0, parent) {
            if let Some(siblings) = self.children.get_mut(&old.0) {
                siblings.retain(|c| *c != device);
            }
        }
        if let Parent::Node(up) = parent {
            let siblings = self.children.entry(up.0).or_default();
            siblings.push(device);
            siblings.sort_by_key(|e| e.0);
        }
    }

    /// Every device with a known parent, in EUI-64 order.
    pub fn parents(&self) -> impl Iterator<Item = (Eui64, Parent)> + '_ {
        self.parents.iter().map(|(eui, parent)| (Eui64(*eui), *parent))
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
        self.parents.get(&device.0).copied()
    }

    fn children(&self, device: Eui64) -> Vec<Eui64> {
        self.children.get(&device.0).cloned().unwrap_or_default()
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
