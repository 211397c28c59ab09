//! Prolly tree nodes: their DAG-CBOR form and where they end.
//!
//! A node is `{"l": level, "k": [keys], "v": [items]}`. At level 0 an item
//! is a value: inline bytes, or a link to the blob of a large value; above,
//! an item is a link to the child whose first key is the key beside it.
//!
//! A node ends after an entry whose key is a *boundary* at that level:
//! the first four bytes of BLAKE3(level, key) fall under 2^32 / FANOUT.
//! Whether a key ends a node depends on nothing but the key, so every
//! level's partition, and so the root CID, is a function of the contents
//! alone, whatever order they were written in.

use std::collections::BTreeMap;

use bytes::Bytes;
use hydra_dag::{Block, Cid, Codec, Ipld};

use crate::error::{KvError, KvResult};

/// Entries per node on average.
pub const FANOUT: u32 = 64;

/// What a key maps to in a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A value stored in the leaf.
    Value(Bytes),
    /// A large value: the root of its blob.
    Blob(Cid),
    /// A child node (above level 0).
    Child(Cid),
}

/// One decoded node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// 0 for leaves.
    pub level: u8,
    /// Sorted, distinct keys.
    pub keys: Vec<Bytes>,
    /// One item per key.
    pub items: Vec<Item>,
}

/// Whether `key` ends a node at `level`.
pub fn is_boundary(level: u8, key: &[u8]) -> bool {
    let mut h = blake3::Hasher::new();
    h.update(&[level]);
    h.update(key);
    let d = h.finalize();
    let b = d.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) < u32::MAX / FANOUT
}

impl Node {
    /// Encodes the node as a DAG-CBOR block.
    pub fn to_block(&self) -> KvResult<Block> {
        let keys = self.keys.iter().map(|k| Ipld::Bytes(k.to_vec())).collect();
        let items = self
            .items
            .iter()
            .map(|i| match i {
                Item::Value(v) => Ipld::Bytes(v.to_vec()),
                Item::Blob(c) | Item::Child(c) => Ipld::Link(*c),
            })
            .collect();
        let mut map = BTreeMap::new();
        map.insert("l".to_string(), Ipld::Integer(i128::from(self.level)));
        map.insert("k".to_string(), Ipld::List(keys));
        map.insert("v".to_string(), Ipld::List(items));
        Ok(Block::new(Codec::DAG_CBOR, Ipld::Map(map).encode())?)
    }

    /// Decodes the node stored as `cid`.
    pub fn decode(cid: &Cid, data: &[u8]) -> KvResult<Node> {
        let bad = |reason: &str| KvError::Corrupt {
            cid: *cid,
            reason: reason.to_string(),
        };
        if cid.codec() != Codec::DAG_CBOR {
            return Err(bad("not dag-cbor"));
        }
        let ipld = Ipld::decode(data)?;
        let level = match ipld.get("l") {
            Some(Ipld::Integer(l)) => u8::try_from(*l).map_err(|_| bad("level out of range"))?,
            _ => return Err(bad("no level")),
        };
        let (Some(Ipld::List(keys)), Some(Ipld::List(items))) = (ipld.get("k"), ipld.get("v"))
        else {
            return Err(bad("no keys or items"));
        };
        if keys.len() != items.len() || keys.is_empty() {
            return Err(bad("keys and items differ in number, or none"));
        }
        let keys = keys
            .iter()
            .map(|k| match k {
                Ipld::Bytes(b) => Ok(Bytes::copy_from_slice(b)),
                _ => Err(bad("a key that is not bytes")),
            })
            .collect::<KvResult<Vec<Bytes>>>()?;
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("keys out of order"));
        }
        let items = items
            .iter()
            .map(|i| match (i, level) {
                (Ipld::Bytes(b), 0) => Ok(Item::Value(Bytes::copy_from_slice(b))),
                (Ipld::Link(c), 0) => Ok(Item::Blob(*c)),
                (Ipld::Link(c), _) => Ok(Item::Child(*c)),
                _ => Err(bad("an item of the wrong kind for its level")),
            })
            .collect::<KvResult<Vec<Item>>>()?;
        Ok(Node { level, keys, items })
    }

    /// The index of the child whose range holds `key` (the last whose
    /// first key is ≤ `key`; the first when `key` sorts before them all).
    pub fn child_index(&self, key: &[u8]) -> usize {
        match self.keys.binary_search_by(|k| k.as_ref().cmp(key)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        }
    }
}

/// Cuts a sorted stream of entries into nodes of one level.
#[derive(Debug)]
pub struct Chunker {
    level: u8,
    keys: Vec<Bytes>,
    items: Vec<Item>,
}

impl Chunker {
    /// A chunker for nodes of `level`.
    pub fn new(level: u8) -> Chunker {
        Chunker {
            level,
            keys: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Adds an entry; returns the node it ends, if its key is a boundary.
    pub fn push(&mut self, key: Bytes, item: Item) -> Option<Node> {
        let ends = is_boundary(self.level, &key);
        self.keys.push(key);
        self.items.push(item);
        if ends { self.take() } else { None }
    }

    /// Whether nothing is pending (the last entry ended a node).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The pending entries as a node (the end of the level).
    pub fn take(&mut self) -> Option<Node> {
        if self.keys.is_empty() {
            return None;
        }
        Some(Node {
            level: self.level,
            keys: std::mem::take(&mut self.keys),
            items: std::mem::take(&mut self.items),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip_and_bad_ones_are_refused() {
        let node = Node {
            level: 0,
            keys: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            items: vec![
                Item::Value(Bytes::from_static(b"1")),
                Item::Blob(Cid::hash(Codec::RAW, b"x")),
            ],
        };
        let block = node.to_block().expect("encodes");
        assert_eq!(
            Node::decode(block.cid(), block.data()).expect("decodes"),
            node
        );
        let unsorted = Node {
            keys: vec![Bytes::from_static(b"b"), Bytes::from_static(b"a")],
            ..node
        };
        let block = unsorted.to_block().expect("encodes");
        assert!(Node::decode(block.cid(), block.data()).is_err());
    }

    #[test]
    fn boundaries_come_about_once_per_fanout() {
        let hits = (0u32..100_000)
            .filter(|i| is_boundary(0, &i.to_be_bytes()))
            .count();
        assert!(
            (1200..1950).contains(&hits),
            "{hits} boundaries in 100k keys"
        );
    }
}
