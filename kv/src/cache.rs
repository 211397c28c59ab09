//! Decoded nodes kept in memory, bounded in bytes.
//!
//! Eviction is CLOCK (second chance): a hit only marks its entry, so a
//! lookup touches the map's entry and nothing else, where a
//! least-recently-used list would relink three entries on every hit; a
//! random read of a large tree is bound by those cache misses.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use hydra_dag::Cid;

use crate::node::Node;

/// A map of CIDs keyed by their digest: the bytes are a hash already.
type CidMap<V> = HashMap<Cid, V, BuildHasherDefault<CidHasher>>;

/// Folds the bytes written into a word (the input is BLAKE3 output).
#[derive(Default)]
struct CidHasher(u64);

impl Hasher for CidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

#[derive(Debug)]
struct Entry {
    node: Arc<Node>,
    size: usize,
    referenced: bool,
}

/// Decoded nodes by CID, at most `max` bytes of them.
#[derive(Debug)]
pub struct NodeCache {
    /// The nodes; a hit reads and marks only its entry here.
    map: CidMap<Entry>,
    /// The order the hand walks (`None`: a free place).
    ring: Vec<Option<Cid>>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
    max: usize,
}

impl NodeCache {
    /// An empty cache holding up to `max` bytes.
    pub fn new(max: usize) -> NodeCache {
        NodeCache {
            map: CidMap::default(),
            ring: Vec::new(),
            free: Vec::new(),
            hand: 0,
            bytes: 0,
            max,
        }
    }

    /// The node `cid`, if it is here.
    pub fn get(&mut self, cid: &Cid) -> Option<Arc<Node>> {
        let entry = self.map.get_mut(cid)?;
        entry.referenced = true;
        Some(entry.node.clone())
    }

    /// Keeps `node` (of about `size` bytes) as `cid`, evicting nodes not
    /// used since the hand last passed them. Nodes over a quarter of the
    /// cache are not kept.
    pub fn put(&mut self, cid: Cid, node: Arc<Node>, size: usize) {
        if size > self.max / 4 || self.map.contains_key(&cid) {
            return;
        }
        while self.bytes + size > self.max && self.evict_one() {}
        match self.free.pop() {
            Some(i) => self.ring[i] = Some(cid),
            None => self.ring.push(Some(cid)),
        }
        self.map.insert(
            cid,
            Entry {
                node,
                size,
                referenced: false,
            },
        );
        self.bytes += size;
    }

    /// Advances the hand to the next unreferenced node and drops it;
    /// false when nothing is left to drop.
    fn evict_one(&mut self) -> bool {
        if self.map.is_empty() {
            return false;
        }
        loop {
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            let Some(cid) = self.ring[i] else {
                continue;
            };
            match self.map.get_mut(&cid) {
                Some(entry) if entry.referenced => entry.referenced = false,
                Some(_) => {
                    if let Some(entry) = self.map.remove(&cid) {
                        self.bytes -= entry.size;
                    }
                    self.ring[i] = None;
                    self.free.push(i);
                    return true;
                }
                None => {
                    self.ring[i] = None;
                    self.free.push(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hydra_dag::Codec;

    use super::*;
    use crate::node::Item;

    fn node(i: u32) -> (Cid, Arc<Node>) {
        let n = Node::new(
            0,
            vec![Bytes::from(i.to_be_bytes().to_vec())],
            vec![Item::Value(Bytes::new())],
        );
        (Cid::hash(Codec::RAW, &i.to_le_bytes()), Arc::new(n))
    }

    #[test]
    fn stays_within_its_bytes_and_keeps_what_is_used() {
        let mut c = NodeCache::new(1000);
        let (hot, hot_node) = node(0);
        c.put(hot, hot_node, 100);
        for i in 1..200 {
            assert!(c.get(&hot).is_some(), "the node read each time stays");
            let (cid, n) = node(i);
            c.put(cid, n, 100);
            assert!(c.bytes <= 1000);
        }
        assert!(c.get(&node(199).0).is_some());
        assert_eq!(c.map.len(), 10);
        assert!(c.get(&node(1).0).is_none());
        // Too large to keep.
        let (big, n) = node(999);
        c.put(big, n, 251);
        assert!(c.get(&big).is_none());
    }
}
