//! Decoded tree nodes kept between edits of the same blobs.
//!
//! An edit walks from the blob's root to the chunks it changes, and each
//! commit of a database's file makes new nodes on those paths, which the
//! next commit's edit walks again. Kept here, decoded, as they are read
//! (verified) or made, they need neither a read nor a decode the next
//! time. A node made by an edit may not be stored yet (its commit stores
//! it), but only a blob whose blocks are stored is ever edited or read,
//! and such a blob names only stored nodes: a CID names the same bytes
//! wherever they come from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hydra_dag::Cid;

use crate::tree::Node;

/// Bytes a kept node is counted as, per link (its CID, length and end).
const LINK_BYTES: usize = 64;

/// A bounded set of decoded nodes, shared by clones.
#[derive(Clone, Debug)]
pub struct NodeCache {
    inner: Arc<Mutex<Generations>>,
}

/// Two generations: nodes go into the young one; when it fills, the old
/// one is dropped and the young one becomes old. A node found in the old
/// one moves back into the young one.
#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Cid, Arc<Node>>,
    young_bytes: usize,
    old: HashMap<Cid, Arc<Node>>,
    /// Bytes each generation holds at most (half the budget).
    half: usize,
}

impl NodeCache {
    /// A cache of about `budget` bytes of nodes.
    pub fn new(budget: usize) -> NodeCache {
        NodeCache {
            inner: Arc::new(Mutex::new(Generations {
                half: budget / 2,
                ..Generations::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node `cid`, if kept.
    pub fn get(&self, cid: &Cid) -> Option<Arc<Node>> {
        let mut g = self.lock();
        if let Some(node) = g.young.get(cid) {
            return Some(node.clone());
        }
        let node = g.old.remove(cid)?;
        g.put(*cid, node.clone());
        Some(node)
    }

    /// Keeps `node` as `cid`'s decoded form.
    pub fn insert(&self, cid: Cid, node: Arc<Node>) {
        self.lock().put(cid, node);
    }

    /// How many nodes are kept.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }

    /// Whether no node is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Generations {
    fn put(&mut self, cid: Cid, node: Arc<Node>) {
        let bytes = node.links.len() * LINK_BYTES;
        if bytes > self.half {
            return;
        }
        if self.young_bytes + bytes > self.half {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        if self.young.insert(cid, node).is_none() {
            self.young_bytes += bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydra_dag::Codec;

    fn node(links: usize, seed: u32) -> (Cid, Arc<Node>) {
        let links: Vec<(Cid, u64)> = (0..links)
            .map(|i| {
                let key = [seed.to_le_bytes(), (i as u32).to_le_bytes()].concat();
                (Cid::hash(Codec::RAW, &key), 1)
            })
            .collect();
        let cid = Cid::hash(Codec::DAG_CBOR, &seed.to_le_bytes());
        (cid, Arc::new(Node::new(links)))
    }

    #[test]
    fn keeps_recent_nodes_within_its_budget() {
        // Room for two generations of ten 10-link nodes.
        let cache = NodeCache::new(2 * 10 * 10 * LINK_BYTES);
        let nodes: Vec<_> = (0..25).map(|i| node(10, i)).collect();
        for (cid, n) in &nodes {
            cache.insert(*cid, n.clone());
        }
        assert!(cache.len() <= 20, "{} kept", cache.len());
        assert!(cache.get(&nodes[24].0).is_some());
        assert!(cache.get(&nodes[0].0).is_none());
        // A node found in the old generation survives the next turnover.
        let survivor = nodes[15].0;
        assert!(cache.get(&survivor).is_some());
        for i in 100..109 {
            let (cid, n) = node(10, i);
            cache.insert(cid, n);
        }
        assert!(cache.get(&survivor).is_some());
        // A node larger than a generation is not kept.
        let (big, n) = node(1000, 7);
        cache.insert(big, n);
        assert!(cache.get(&big).is_none());
    }
}
