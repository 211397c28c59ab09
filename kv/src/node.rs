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

use bytes::Bytes;
use hydra_dag::{Block, Cid, Codec, Ipld};

use crate::error::{KvError, KvResult};

/// Entries per node on average.
pub const FANOUT: u32 = 64;

/// A node ends once its entries reach this many bytes, boundary or not
/// (so a node stays well within a block whatever the sizes of its keys
/// and values; the cut depends only on the entries since the last one,
/// so the tree stays a function of its contents).
pub const MAX_NODE_BYTES: usize = 256 * 1024;

/// What a key maps to in a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A value stored in the leaf.
    Value(Bytes),
    /// A large value: the root of its blob.
    Blob(Cid),
    /// A DAG-CBOR value other than a byte string, kept in its encoded
    /// form (so the links in it are links of the node, seen by whatever
    /// walks the DAG): what a tree of structured records holds.
    Cbor(Bytes),
    /// A child node (above level 0).
    Child(Cid),
}

impl Item {
    /// About how many bytes the item takes in its node.
    pub fn encoded_len(&self) -> usize {
        match self {
            Item::Value(v) => v.len() + 9,
            Item::Cbor(v) => v.len(),
            Item::Blob(_) | Item::Child(_) => 50,
        }
    }
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
    /// Where to search the keys (a function of them).
    index: KeyIndex,
}

/// The keys in a form a binary search reads from a few cache lines: the
/// length of the prefix all keys share, and for each key the eight bytes
/// after it as a big-endian word. Words order as the keys do (with ties),
/// so a search compares whole keys only among equal words.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct KeyIndex {
    common: usize,
    words: Vec<u64>,
}

/// The eight bytes at the start of `s` (zeros past its end), big-endian.
fn word(s: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = s.len().min(8);
    w[..n].copy_from_slice(&s[..n]);
    u64::from_be_bytes(w)
}

impl KeyIndex {
    fn new(keys: &[Bytes]) -> KeyIndex {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return KeyIndex::default();
        };
        // Sorted keys: what the first and last share, all share.
        let common = first
            .iter()
            .zip(last.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let words = keys.iter().map(|k| word(&k[common..])).collect();
        KeyIndex { common, words }
    }
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
    /// Encodes the node as a DAG-CBOR block: `{"k": [..], "l": level,
    /// "v": [..]}`, written directly (the same bytes the generic encoder
    /// gives, without building a value tree).
    pub fn to_block(&self) -> KvResult<Block> {
        let size: usize = self.keys.iter().map(|k| k.len() + 9).sum::<usize>()
            + self.items.iter().map(Item::encoded_len).sum::<usize>()
            + 32;
        let mut out = Vec::with_capacity(size);
        out.push(0xa3); // a map of three
        out.extend_from_slice(&[0x61, b'k']);
        head(&mut out, 4, self.keys.len() as u64);
        for k in &self.keys {
            head(&mut out, 2, k.len() as u64);
            out.extend_from_slice(k);
        }
        out.extend_from_slice(&[0x61, b'l']);
        head(&mut out, 0, u64::from(self.level));
        out.extend_from_slice(&[0x61, b'v']);
        head(&mut out, 4, self.items.len() as u64);
        let mut cid_bytes = Vec::with_capacity(40);
        for i in &self.items {
            match i {
                Item::Value(v) => {
                    head(&mut out, 2, v.len() as u64);
                    out.extend_from_slice(v);
                }
                Item::Cbor(v) => out.extend_from_slice(v),
                Item::Blob(c) | Item::Child(c) => {
                    cid_bytes.clear();
                    cid_bytes.push(0); // the multibase identity prefix
                    c.write_bytes(&mut cid_bytes);
                    head(&mut out, 6, 42);
                    head(&mut out, 2, cid_bytes.len() as u64);
                    out.extend_from_slice(&cid_bytes);
                }
            }
        }
        Ok(Block::new(Codec::DAG_CBOR, out)?)
    }

    /// Decodes the node stored as `cid`; keys and values are slices of
    /// `data`, not copies.
    pub fn decode(cid: &Cid, data: Bytes) -> KvResult<Node> {
        let bad = |reason: &str| KvError::Corrupt {
            cid: *cid,
            reason: reason.to_string(),
        };
        if cid.codec() != Codec::DAG_CBOR {
            return Err(bad("not dag-cbor"));
        }
        let mut r = Reader {
            data: &data,
            pos: 0,
        };
        let truncated = || bad("truncated or not a tree node");
        if r.byte().ok_or_else(truncated)? != 0xa3
            || r.take(2).ok_or_else(truncated)? != [0x61, b'k']
        {
            return Err(bad("not a tree node"));
        }
        let n = r.head(4).ok_or_else(truncated)? as usize;
        if n == 0 || n > data.len() {
            return Err(bad("a node with no keys, or more than it can hold"));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.head(2).ok_or_else(truncated)? as usize;
            let at = r.pos;
            r.take(len).ok_or_else(truncated)?;
            keys.push(data.slice(at..at + len));
        }
        if r.take(2).ok_or_else(truncated)? != [0x61, b'l'] {
            return Err(bad("no level"));
        }
        let level = u8::try_from(r.head(0).ok_or_else(truncated)?)
            .map_err(|_| bad("level out of range"))?;
        if r.take(2).ok_or_else(truncated)? != [0x61, b'v']
            || r.head(4).ok_or_else(truncated)? as usize != n
        {
            return Err(bad("keys and items differ in number"));
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let first = *data.get(r.pos).ok_or_else(truncated)?;
            if first >> 5 == 6 {
                if r.head(6).ok_or_else(truncated)? != 42 {
                    return Err(bad("a tag other than a link"));
                }
                let len = r.head(2).ok_or_else(truncated)? as usize;
                let raw = r.take(len).ok_or_else(truncated)?;
                let (0, rest) = (
                    raw.first().copied().unwrap_or(1),
                    raw.get(1..).unwrap_or(&[]),
                ) else {
                    return Err(bad("a link without its identity prefix"));
                };
                let c = Cid::from_bytes(rest)?;
                items.push(if level == 0 {
                    Item::Blob(c)
                } else {
                    Item::Child(c)
                });
            } else {
                if level > 0 {
                    return Err(bad("a value in an inner node"));
                }
                if first >> 5 == 2 {
                    let len = r.head(2).ok_or_else(truncated)? as usize;
                    let at = r.pos;
                    r.take(len).ok_or_else(truncated)?;
                    items.push(Item::Value(data.slice(at..at + len)));
                } else {
                    let (_, len) = Ipld::decode_prefix(&data[r.pos..])
                        .map_err(|e| bad(&format!("a bad value: {e}")))?;
                    let at = r.pos;
                    r.take(len).ok_or_else(truncated)?;
                    items.push(Item::Cbor(data.slice(at..at + len)));
                }
            }
        }
        if r.pos != data.len() {
            return Err(bad("bytes after the node"));
        }
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("keys out of order"));
        }
        Ok(Node::new(level, keys, items))
    }

    /// A node of sorted, distinct `keys` and one item each.
    pub fn new(level: u8, keys: Vec<Bytes>, items: Vec<Item>) -> Node {
        let index = KeyIndex::new(&keys);
        Node {
            level,
            keys,
            items,
            index,
        }
    }

    /// Bytes the decoded form takes beside its block.
    pub fn decoded_size(&self) -> usize {
        std::mem::size_of::<Node>()
            + self.keys.len() * (std::mem::size_of::<Bytes>() + std::mem::size_of::<Item>() + 8)
    }

    /// Where `key` is among the keys: `Ok(i)` when it is key `i`, else
    /// `Err(i)` where it would go (as `slice::binary_search`).
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let c = self.index.common;
        if c > 0 {
            let head = &self.keys[0][..c];
            match key[..c.min(key.len())].cmp(head) {
                std::cmp::Ordering::Less => return Err(0),
                std::cmp::Ordering::Greater => return Err(self.keys.len()),
                std::cmp::Ordering::Equal => {}
            }
        }
        let words = &self.index.words;
        let w = word(key.get(c..).unwrap_or(&[]));
        let lo = words.partition_point(|&x| x < w);
        let ties = words[lo..].partition_point(|&x| x == w);
        match self.keys[lo..lo + ties].binary_search_by(|k| k.as_ref().cmp(key)) {
            Ok(i) => Ok(lo + i),
            Err(i) => Err(lo + i),
        }
    }

    /// The index of the child whose range holds `key` (the last whose
    /// first key is ≤ `key`; the first when `key` sorts before them all).
    pub fn child_index(&self, key: &[u8]) -> usize {
        match self.search(key) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        }
    }
}

/// Appends a CBOR head: major type `major`, argument `n`, shortest form.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n < 1 << 8 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n < 1 << 16 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n < 1 << 32 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// A head of major type `major` in its shortest form; its argument.
    fn head(&mut self, major: u8) -> Option<u64> {
        let b = self.byte()?;
        if b >> 5 != major {
            return None;
        }
        let (n, min) = match b & 0x1f {
            v @ 0..=23 => (u64::from(v), 0),
            24 => (u64::from(self.byte()?), 24),
            25 => (
                u64::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?)),
                1 << 8,
            ),
            26 => (
                u64::from(u32::from_be_bytes(self.take(4)?.try_into().ok()?)),
                1 << 16,
            ),
            27 => (u64::from_be_bytes(self.take(8)?.try_into().ok()?), 1 << 32),
            _ => return None,
        };
        // Canonical: the shortest head only.
        (n >= min).then_some(n)
    }
}

/// Cuts a sorted stream of entries into nodes of one level.
#[derive(Debug)]
pub struct Chunker {
    level: u8,
    keys: Vec<Bytes>,
    items: Vec<Item>,
    bytes: usize,
}

impl Chunker {
    /// A chunker for nodes of `level`.
    pub fn new(level: u8) -> Chunker {
        Chunker {
            level,
            keys: Vec::new(),
            items: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds an entry; returns the node it ends, if its key is a boundary
    /// or the node has reached [`MAX_NODE_BYTES`].
    pub fn push(&mut self, key: Bytes, item: Item) -> Option<Node> {
        self.bytes += key.len() + 9 + item.encoded_len();
        let ends = self.bytes >= MAX_NODE_BYTES || is_boundary(self.level, &key);
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
        self.bytes = 0;
        Some(Node::new(
            self.level,
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.items),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hydra_dag::Ipld;

    use super::*;

    #[test]
    fn nodes_round_trip_and_bad_ones_are_refused() {
        let node = Node::new(
            0,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            vec![
                Item::Value(Bytes::from_static(b"1")),
                Item::Blob(Cid::hash(Codec::RAW, b"x")),
            ],
        );
        let block = node.to_block().expect("encodes");
        assert_eq!(
            Node::decode(block.cid(), block.data().clone()).expect("decodes"),
            node
        );
        // Byte for byte what the generic DAG-CBOR encoder writes.
        let mut map = BTreeMap::new();
        map.insert("l".to_string(), Ipld::Integer(0));
        map.insert(
            "k".to_string(),
            Ipld::List(vec![Ipld::Bytes(b"a".to_vec()), Ipld::Bytes(b"b".to_vec())]),
        );
        map.insert(
            "v".to_string(),
            Ipld::List(vec![
                Ipld::Bytes(b"1".to_vec()),
                Ipld::Link(Cid::hash(Codec::RAW, b"x")),
            ]),
        );
        assert_eq!(block.data().as_ref(), Ipld::Map(map).encode().as_slice());
        let unsorted = Node::new(
            0,
            vec![Bytes::from_static(b"b"), Bytes::from_static(b"a")],
            node.items.clone(),
        );
        let block = unsorted.to_block().expect("encodes");
        assert!(Node::decode(block.cid(), block.data().clone()).is_err());
        // Every truncation is an error, not a panic.
        let good = node_block();
        for cut in 0..good.data().len() {
            let short = good.data().slice(..cut);
            assert!(Node::decode(good.cid(), short).is_err(), "cut at {cut}");
        }
    }

    fn node_block() -> Block {
        Node::new(
            1,
            (0..300u32)
                .map(|i| Bytes::from(i.to_be_bytes().to_vec()))
                .collect(),
            (0..300u32)
                .map(|i| Item::Child(Cid::hash(Codec::RAW, &i.to_le_bytes())))
                .collect(),
        )
        .to_block()
        .expect("encodes")
    }

    #[test]
    fn search_agrees_with_a_binary_search_of_the_keys() {
        // Shared prefixes, keys that are prefixes of others, equal words
        // (keys longer than the common prefix plus eight bytes), empty key.
        let mut r = 7u64;
        let mut next = move || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        for round in 0..300 {
            let prefix: &[u8] = [&b""[..], b"graph\0spog\0<http://x/", b"ab"][round % 3];
            let mut keys: Vec<Vec<u8>> = (0..1 + next() % 80)
                .map(|_| {
                    let mut k = prefix.to_vec();
                    let len = (next() % 14) as usize;
                    k.extend((0..len).map(|_| b"abc\0\xff"[(next() % 5) as usize]));
                    k
                })
                .collect();
            keys.sort();
            keys.dedup();
            let node = Node::new(
                0,
                keys.iter().map(|k| Bytes::from(k.clone())).collect(),
                keys.iter().map(|_| Item::Value(Bytes::new())).collect(),
            );
            let mut probes = keys.clone();
            probes.extend((0..40).map(|_| {
                let mut k = if next() % 2 == 0 {
                    prefix.to_vec()
                } else {
                    Vec::new()
                };
                let len = (next() % 16) as usize;
                k.extend((0..len).map(|_| b"abc\0\xff`"[(next() % 6) as usize]));
                k
            }));
            for p in &probes {
                assert_eq!(node.search(p), keys.binary_search(p), "{p:?} in {keys:?}");
            }
        }
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
